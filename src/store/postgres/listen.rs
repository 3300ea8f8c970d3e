//! LISTEN/NOTIFY wake-ups: one connection per store listens on the change
//! and roster channels and ticks the store's watchers; it also prunes the
//! change log.

use std::time::Duration;

use tokio_postgres::AsyncMessage;

use super::{pool::connect, PgStore, CHANGES_CHANNEL, CHANGE_RETENTION_MS, ROSTER_CHANNEL};
use crate::tickets::now_ms;

/// Holds a LISTEN connection while the store lives, ticking the change and
/// roster channels on each notification and after each reconnect (anything
/// may have been missed meanwhile); prunes old change-log entries.
pub(super) async fn listen(weak: std::sync::Weak<PgStore>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let Some(store) = weak.upgrade() else { return };
        let url = store.pool.url().to_string();
        drop(store);
        match connect(&url).await {
            Ok((client, mut connection)) => {
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
                let driver = tokio::spawn(async move {
                    loop {
                        let message = std::future::poll_fn(|cx| connection.poll_message(cx)).await;
                        match message {
                            Some(Ok(AsyncMessage::Notification(n))) => {
                                if tx.send(n.channel().to_string()).is_err() {
                                    return;
                                }
                            }
                            Some(Ok(_)) => {}
                            Some(Err(e)) => {
                                tracing::warn!(error = %e, "PostgreSQL LISTEN connection failed");
                                return;
                            }
                            None => return,
                        }
                    }
                });
                let listening = client
                    .batch_execute(&format!(
                        "LISTEN {CHANGES_CHANNEL}; LISTEN {ROSTER_CHANNEL}"
                    ))
                    .await;
                if let Err(e) = listening {
                    tracing::warn!(error = %e, "cannot LISTEN on PostgreSQL");
                } else {
                    backoff = Duration::from_millis(100);
                    let Some(store) = weak.upgrade() else { return };
                    store.changes.send_modify(|n| *n += 1);
                    store.roster.send_modify(|n| *n += 1);
                    drop(store);
                    let mut prune = tokio::time::interval(Duration::from_secs(600));
                    loop {
                        tokio::select! {
                            channel = rx.recv() => {
                                let Some(channel) = channel else { break };
                                let Some(store) = weak.upgrade() else { return };
                                let tick = if channel == ROSTER_CHANNEL { &store.roster } else { &store.changes };
                                tick.send_modify(|n| *n += 1);
                            }
                            _ = prune.tick() => {
                                let cutoff = now_ms() - CHANGE_RETENTION_MS;
                                if let Err(e) = client.execute("DELETE FROM changes WHERE at_ms < $1", &[&cutoff]).await {
                                    tracing::warn!(error = %e, "cannot prune the change log");
                                }
                            }
                        }
                    }
                }
                driver.abort();
            }
            Err(e) => tracing::warn!(error = %e, "cannot reach PostgreSQL to listen"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
