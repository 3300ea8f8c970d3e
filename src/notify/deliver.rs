//! The delivery worker: leases due outbox rows, POSTs each to its endpoint
//! (HTTP/1.1 through `outbound`: hyper, https through rustls with the
//! system's roots)
//! with Standard Webhooks headers, and records how each attempt ended.
//!
//! It wakes when a change with notifications commits, when the next row
//! falls due, and each second (other replicas' rows, expired leases). Up to
//! [`MAX_IN_FLIGHT`] attempts run at once; a ticket's rows reach an
//! endpoint in order because only the first pending one of each ticket and
//! endpoint can be claimed.

use std::{
    sync::{Arc, Weak},
    time::Duration,
};

use bytes::Bytes;
use http_body_util::Full;
use tokio::{sync::Notify, task::JoinSet};

use super::{sign, Endpoint, Notifier, Timing};
pub(super) use crate::outbound::{connector, Tls};
use crate::{
    metrics::{self, DeliveryOutcome},
    outbound::{exchange, target},
    store::outbox::{Claimed, Outbox, Outcome},
    tickets::{now_ms, random_hex},
};

/// Attempts running at once in one process.
const MAX_IN_FLIGHT: usize = 32;
/// The longest sleep between looks at the outbox.
const POLL: Duration = Duration::from_secs(1);
/// The longest back-off between two attempts.
const MAX_BACKOFF_MS: i64 = 3600 * 1000;

/// Rows deleted at once when pruning: small, so that a prune never holds
/// the store (SQLite's one writer) for long.
const PRUNE_BATCH: usize = 500;
/// The longest wait between two prunes.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// Deletes delivered rows older than `notify.keep_delivered_secs`, a batch
/// at a time, every [`PRUNE_EVERY`] (half the retention when that is
/// shorter); runs until the notifier is dropped. Every replica prunes: the
/// stores make two prunes at once safe, and whichever comes first does the
/// work.
pub(super) async fn prune(weak: Weak<Notifier>, outbox: Arc<dyn Outbox>) {
    loop {
        let Some(keep_ms) = weak.upgrade().map(|n| n.timing.keep_delivered_ms) else {
            return;
        };
        let every = Duration::from_millis((keep_ms / 2).max(100) as u64).min(PRUNE_EVERY);
        tokio::time::sleep(every).await;
        let mut pruned = 0;
        loop {
            match outbox
                .prune_delivered(now_ms().saturating_sub(keep_ms), PRUNE_BATCH)
                .await
            {
                Ok(n) => {
                    pruned += n;
                    if n < PRUNE_BATCH as u64 {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot prune delivered notifications");
                    break;
                }
            }
            // Others' writes go between two batches.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if pruned > 0 {
            tracing::debug!(pruned, "old delivered notifications deleted");
        }
    }
}

/// Runs until the notifier is dropped.
pub(super) async fn run(weak: Weak<Notifier>, outbox: Arc<dyn Outbox>, wake: Arc<Notify>) {
    // Who holds a lease: this process, for as long as it runs.
    let owner = format!("{}-{}", std::process::id(), random_hex(6));
    let mut in_flight: JoinSet<()> = JoinSet::new();
    loop {
        let notified = wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let Some(notifier) = weak.upgrade() else {
            return;
        };
        let names = notifier.names();
        let room = MAX_IN_FLIGHT - in_flight.len();
        let mut full = room == 0;
        if room > 0 {
            match outbox
                .claim(&owner, &names, now_ms(), notifier.timing.lease_ms, room)
                .await
            {
                Ok(claimed) => {
                    full = claimed.len() == room;
                    for c in claimed {
                        let Some(endpoint) =
                            notifier.endpoints.iter().find(|e| e.name == c.endpoint)
                        else {
                            continue;
                        };
                        in_flight.spawn(attempt(
                            outbox.clone(),
                            endpoint.clone(),
                            notifier.timing,
                            owner.clone(),
                            c,
                            wake.clone(),
                        ));
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot claim notifications"),
            }
        }
        let wait = if full {
            POLL
        } else {
            match outbox.next_due(&names).await {
                Ok(Some(at)) => Duration::from_millis((at - now_ms()).clamp(5, 1000) as u64),
                Ok(None) => POLL,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the outbox");
                    POLL
                }
            }
        };
        drop(notifier);
        tokio::select! {
            Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
            _ = &mut notified => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// One attempt of one row: POST, then record the outcome and wake the
/// worker (the ticket's next row may now go).
async fn attempt(
    outbox: Arc<dyn Outbox>,
    endpoint: Endpoint,
    timing: Timing,
    owner: String,
    claimed: Claimed,
    wake: Arc<Notify>,
) {
    let timestamp = now_ms() / 1000;
    let signature = sign::signature(&endpoint.key, &claimed.id, timestamp, &claimed.body);
    let answer = tokio::time::timeout(
        timing.timeout,
        post(&endpoint, &claimed, timestamp, &signature),
    )
    .await
    .unwrap_or_else(|_| {
        Err(format!(
            "no answer within {} ms",
            timing.timeout.as_millis()
        ))
    });
    let now = now_ms();
    let outcome = outcome(&claimed, answer, now, timing.retry_base_ms);
    metrics::notification_delivered(&endpoint.name, counted_as(&outcome));
    if let Outcome::Delivered { .. } = outcome {
        let lag = (now - claimed.created_at_ms).max(0) as u64;
        metrics::notification_lag(&endpoint.name, std::time::Duration::from_millis(lag));
    }
    match &outcome {
        Outcome::Gone => tracing::warn!(
            endpoint = %endpoint.name,
            id = %claimed.id,
            "the webhook answered 410 Gone: endpoint disabled until an admin retries it"
        ),
        Outcome::GiveUp { error, .. } => tracing::warn!(
            endpoint = %endpoint.name,
            id = %claimed.id,
            attempts = claimed.attempts + 1,
            %error,
            "notification given up"
        ),
        Outcome::Retry { error, .. } => tracing::debug!(
            endpoint = %endpoint.name,
            id = %claimed.id,
            %error,
            "notification to be retried"
        ),
        Outcome::Delivered { .. } => {}
    }
    match outbox.finish(&owner, &claimed, &outcome, now).await {
        Ok(true) => {}
        Ok(false) => tracing::warn!(
            endpoint = %endpoint.name,
            id = %claimed.id,
            "another replica took this notification over before the attempt ended"
        ),
        Err(e) => tracing::error!(error = %e, id = %claimed.id, "cannot record a delivery attempt"),
    }
    wake.notify_one();
}

/// How an attempt's outcome is counted in `xwn_notifications_total`.
fn counted_as(outcome: &Outcome) -> DeliveryOutcome {
    match outcome {
        Outcome::Delivered { .. } => DeliveryOutcome::Delivered,
        Outcome::Retry { .. } => DeliveryOutcome::Failed,
        Outcome::GiveUp { .. } => DeliveryOutcome::Expired,
        Outcome::Gone => DeliveryOutcome::Disabled,
    }
}

/// How an attempt that got `answer` (an HTTP status, or why none) ends.
fn outcome(claimed: &Claimed, answer: Result<u16, String>, now: i64, base_ms: i64) -> Outcome {
    let (status, error) = match answer {
        Ok(s) if (200..300).contains(&s) => return Outcome::Delivered { status: s },
        Ok(410) => return Outcome::Gone,
        Ok(s) => (Some(s), format!("HTTP {s}")),
        Err(e) => (None, e),
    };
    if now >= claimed.deadline_ms {
        return Outcome::GiveUp { status, error };
    }
    let delay = backoff(claimed.attempts + 1, base_ms, jitter());
    Outcome::Retry {
        status,
        error,
        next_at_ms: now.saturating_add(delay).min(claimed.deadline_ms),
    }
}

/// A random fraction in [0, 1).
fn jitter() -> f64 {
    let mut b = [0u8; 4];
    getrandom::fill(&mut b).expect("the OS random source works");
    f64::from(u32::from_le_bytes(b)) / (f64::from(u32::MAX) + 1.0)
}

/// The wait before the next attempt after `failures` failures: the base
/// doubled each time up to an hour, then a random half of it taken off
/// ("equal jitter"), so retries of many notifications spread out.
fn backoff(failures: u32, base_ms: i64, jitter: f64) -> i64 {
    let full = base_ms
        .saturating_mul(1i64 << failures.saturating_sub(1).min(30))
        .min(MAX_BACKOFF_MS);
    full - (full as f64 * jitter / 2.0) as i64
}

/// POSTs one notification; the HTTP status, or why there is none.
async fn post(
    endpoint: &Endpoint,
    c: &Claimed,
    timestamp: i64,
    signature: &str,
) -> Result<u16, String> {
    let t = target(&endpoint.url)?;
    let request = http::Request::post(t.path.as_str())
        .header(http::header::HOST, t.authority.as_str())
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::USER_AGENT, "xwn-webhooks/1")
        .header("webhook-id", c.id.as_str())
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(Full::new(Bytes::from(c.body.clone())))
        .map_err(|e| format!("cannot build the request: {e}"))?;
    let (status, _) = exchange(&t, &endpoint.tls, request, false).await?;
    Ok(status.as_u16())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claimed(attempts: u32, deadline_ms: i64) -> Claimed {
        Claimed {
            id: "msg_1".into(),
            endpoint: "gw".into(),
            ticket_id: "tk-1".into(),
            kind: "ticket.queued".into(),
            body: "{}".into(),
            attempts,
            deadline_ms,
            created_at_ms: 0,
            took_over: false,
        }
    }

    #[test]
    fn backoff_doubles_up_to_an_hour_with_at_most_half_taken_off() {
        assert_eq!(backoff(1, 1000, 0.0), 1000);
        assert_eq!(backoff(2, 1000, 0.0), 2000);
        assert_eq!(backoff(4, 1000, 0.0), 8000);
        assert_eq!(backoff(3, 1000, 0.999_999), 2001);
        assert_eq!(backoff(40, 1000, 0.0), MAX_BACKOFF_MS);
    }

    #[test]
    fn answers_become_outcomes() {
        let c = claimed(0, 10_000);
        assert_eq!(
            outcome(&c, Ok(204), 0, 100),
            Outcome::Delivered { status: 204 }
        );
        assert_eq!(outcome(&c, Ok(410), 0, 100), Outcome::Gone);
        let Outcome::Retry {
            next_at_ms, status, ..
        } = outcome(&c, Ok(503), 0, 100)
        else {
            panic!("a 503 is retried");
        };
        assert!((50..=100).contains(&next_at_ms) && status == Some(503));
        let Outcome::Retry { next_at_ms, .. } = outcome(&c, Err("x".into()), 9_990, 100) else {
            panic!("no answer is retried");
        };
        assert_eq!(next_at_ms, 10_000, "never past the deadline");
        assert_eq!(
            outcome(&c, Err("refused".into()), 10_000, 100),
            Outcome::GiveUp {
                status: None,
                error: "refused".into()
            }
        );
    }

    #[test]
    fn urls_become_targets() {
        let t = target("https://gw.example.org/hooks/xwn?a=1").unwrap();
        assert!(t.https && t.port == 443 && t.host == "gw.example.org");
        assert_eq!(t.path, "/hooks/xwn?a=1");
        let t = target("http://127.0.0.1:8080").unwrap();
        assert!(!t.https && t.port == 8080 && t.path == "/");
        assert!(target("ftp://x/").is_err());
    }
}
