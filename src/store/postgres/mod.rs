//! The PostgreSQL store that several replicas share: tickets and their
//! events, presence, liaisons and the signing key
//! ([`TicketStore`](crate::store::TicketStore), in `tickets`), the change
//! log replicas catch up from, the roster log they rebuild their indexes
//! from ([`RosterLog`](crate::roster::log::RosterLog), in `roster_log`),
//! versioned migrations from `migrations/postgres/` (here), and
//! LISTEN/NOTIFY wake-ups (in `listen`). Its connections are in `pool`;
//! `rows` is its side of the row codec.
//!
//! Every write that other replicas must see bumps the one-row `log_head`
//! table and records what changed in `changes`, in the same transaction;
//! the row lock orders those writes, and a ticket write first checks that
//! the head is still the one its replica read (compare and swap).

use std::sync::Arc;

use tokio::sync::watch;

use crate::{
    error::{Error, Result},
    tickets::now_ms,
};

mod knowledge;
mod listen;
mod outbox;
mod photos;
mod pool;
mod roster_log;
mod rows;
mod tickets;

pub use photos::PgPhotos;
use pool::Pool;

/// Versioned migrations; `xwn_migrations` records which ran.
const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/postgres/0001_shared.sql"),
    include_str!("../../../migrations/postgres/0002_ticket_words.sql"),
    include_str!("../../../migrations/postgres/0003_outbox.sql"),
    include_str!("../../../migrations/postgres/0004_ratings.sql"),
    include_str!("../../../migrations/postgres/0005_photos.sql"),
    include_str!("../../../migrations/postgres/0006_knowledge.sql"),
    include_str!("../../../migrations/postgres/0007_photo_uploads.sql"),
];
/// Connections one replica opens at most.
const MAX_CONNECTIONS: usize = 8;
/// Serialises migrations and roster appends across replicas.
const MIGRATION_LOCK: i64 = 0x7877_6e01;
const ROSTER_LOCK: i64 = 0x7877_6e02;
/// Orders knowledge writes, so their `seq` order is their commit order.
const KNOWLEDGE_LOCK: i64 = 0x7877_6e03;
/// Change-log entries older than this are pruned; a replica away longer
/// reloads everything when it starts.
const CHANGE_RETENTION_MS: i64 = 24 * 3600 * 1000;
const CHANGES_CHANNEL: &str = "xwn_changes";
const ROSTER_CHANNEL: &str = "xwn_roster";

fn db(e: tokio_postgres::Error) -> Error {
    match e.as_db_error() {
        Some(d) => Error::Storage(format!("PostgreSQL: {} ({})", d.message(), d.code().code())),
        None => Error::Storage(format!("PostgreSQL: {e}")),
    }
}

fn bad(what: &str, value: &str) -> Error {
    Error::Internal(format!("PostgreSQL holds an unknown {what} {value:?}"))
}

pub struct PgStore {
    pool: Pool,
    changes: watch::Sender<u64>,
    roster: watch::Sender<u64>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PgStore")
    }
}

impl PgStore {
    /// Connects, runs what migrations the database lacks and starts
    /// listening for other replicas' writes.
    pub async fn connect(url: &str) -> Result<Arc<PgStore>> {
        let store = Arc::new(PgStore {
            pool: Pool::new(url, MAX_CONNECTIONS),
            changes: watch::channel(0).0,
            roster: watch::channel(0).0,
        });
        store.migrate().await?;
        tokio::spawn(listen::listen(Arc::downgrade(&store)));
        Ok(store)
    }

    async fn migrate(&self) -> Result<()> {
        let mut c = self.pool.lease().await?;
        // One replica at a time, the bookkeeping table included: two
        // concurrent CREATE TABLE IF NOT EXISTS can collide.
        c.begin().await?;
        c.client
            .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(db)?;
        c.client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS xwn_migrations (version INTEGER PRIMARY KEY, at_ms BIGINT NOT NULL)",
            )
            .await
            .map_err(db)?;
        let done: i32 = c
            .client
            .query_one("SELECT coalesce(max(version), 0) FROM xwn_migrations", &[])
            .await
            .map_err(db)?
            .get(0);
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(done.max(0) as usize) {
            c.client.batch_execute(sql).await.map_err(db)?;
            c.client
                .execute(
                    "INSERT INTO xwn_migrations (version, at_ms) VALUES ($1, $2)",
                    &[&(i as i32 + 1), &now_ms()],
                )
                .await
                .map_err(db)?;
        }
        c.commit().await
    }
}
