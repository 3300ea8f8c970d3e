//! The outbox on SQLite ([`Outbox`]): rows written in the ticket's
//! transaction, leased and finished by the one process that writes. A lease
//! held by another owner can only be a dead process's (the data directory
//! has one server), so it is taken over at once, and counted.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, Row, Transaction};

use super::{bad, SqliteStore};
use crate::{
    error::Result,
    store::outbox::{
        Attempt, Claimed, Delivery, DeliveryFilter, DeliveryState, EndpointCounts, Note, Outbox,
        Outcome,
    },
};

/// Writes each note's row per endpoint, inside the ticket's transaction.
pub(super) fn write_notes(tx: &Transaction<'_>, notes: &[Note]) -> rusqlite::Result<()> {
    if notes.is_empty() {
        return Ok(());
    }
    let mut stmt = tx.prepare_cached(
        "INSERT INTO outbox (id, endpoint, ticket_id, seq, kind, body, created_at_ms, state, \
         next_at_ms, deadline_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending', ?7, ?8)",
    )?;
    for n in notes {
        for e in &n.endpoints {
            stmt.execute(params![
                n.id,
                e,
                n.ticket_id,
                n.seq,
                n.kind,
                n.body,
                n.created_at_ms,
                n.deadline_ms
            ])?;
        }
    }
    Ok(())
}

fn json_list(items: &[String]) -> String {
    serde_json::to_string(items).expect("strings serialize")
}

/// The rows `claim` may lease: pending, due, of a wanted and enabled
/// endpoint, not leased by a live claim of this process, and first of
/// their ticket's pending rows for that endpoint.
const DUE: &str = "FROM outbox o WHERE o.state = 'pending' AND o.next_at_ms <= ?1 \
     AND (o.lease_owner IS NULL OR o.lease_owner != ?2 OR o.lease_until_ms < ?1) \
     AND o.endpoint IN (SELECT value FROM json_each(?3)) \
     AND o.endpoint NOT IN (SELECT name FROM webhook_endpoints WHERE disabled_at_ms IS NOT NULL) \
     AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.ticket_id = o.ticket_id \
         AND p.endpoint = o.endpoint AND p.state = 'pending' AND p.seq < o.seq)";

/// The oldest `?2` delivered rows finished before `?1`. A delivered row's
/// next_at_ms is its done_at_ms, so the due index finds them.
const PRUNED: &str = "SELECT id, endpoint FROM outbox WHERE state = 'delivered' \
     AND next_at_ms < ?1 AND done_at_ms < ?1 ORDER BY next_at_ms, rowid LIMIT ?2";

const DELIVERY_COLUMNS: &str = "id, endpoint, ticket_id, kind, state, attempts, takeovers, \
     last_status, last_error, created_at_ms, next_at_ms, done_at_ms";

fn delivery_row(r: &Row<'_>) -> rusqlite::Result<Delivery> {
    let state: String = r.get(4)?;
    Ok(Delivery {
        id: r.get(0)?,
        endpoint: r.get(1)?,
        ticket_id: r.get(2)?,
        kind: r.get(3)?,
        state: DeliveryState::parse(&state).ok_or_else(|| bad("delivery state", &state))?,
        attempts: r.get(5)?,
        takeovers: r.get(6)?,
        last_status: r.get(7)?,
        last_error: r.get(8)?,
        created_at_ms: r.get(9)?,
        next_at_ms: r.get(10)?,
        done_at_ms: r.get(11)?,
    })
}

#[async_trait]
impl Outbox for SqliteStore {
    async fn claim(
        &self,
        owner: &str,
        endpoints: &[String],
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<Claimed>> {
        let (owner, endpoints) = (owner.to_string(), json_list(endpoints));
        self.with(move |conn| {
            let tx = conn.transaction()?;
            let claimed: Vec<Claimed> = {
                let mut stmt = tx.prepare_cached(&format!(
                    "SELECT id, endpoint, ticket_id, kind, body, attempts, deadline_ms, \
                     lease_owner IS NOT NULL, o.created_at_ms {DUE} ORDER BY o.next_at_ms, o.created_at_ms LIMIT ?4"
                ))?;
                let rows =
                    stmt.query_map(params![now_ms, owner, endpoints, limit as i64], |r| {
                        Ok(Claimed {
                            id: r.get(0)?,
                            endpoint: r.get(1)?,
                            ticket_id: r.get(2)?,
                            kind: r.get(3)?,
                            body: r.get(4)?,
                            attempts: r.get(5)?,
                            deadline_ms: r.get(6)?,
                            took_over: r.get(7)?,
                            created_at_ms: r.get(8)?,
                        })
                    })?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            {
                let mut lease = tx.prepare_cached(
                    "UPDATE outbox SET takeovers = takeovers + (lease_owner IS NOT NULL), \
                     lease_owner = ?1, lease_until_ms = ?2 WHERE id = ?3 AND endpoint = ?4",
                )?;
                for c in &claimed {
                    lease.execute(params![owner, now_ms + lease_ms, c.id, c.endpoint])?;
                }
            }
            tx.commit()?;
            Ok(claimed)
        })
        .await
    }

    async fn finish(
        &self,
        owner: &str,
        claimed: &Claimed,
        outcome: &Outcome,
        at_ms: i64,
    ) -> Result<bool> {
        let (owner, c, outcome) = (owner.to_string(), claimed.clone(), outcome.clone());
        self.with(move |conn| {
            let tx = conn.transaction()?;
            let (state, next_at, done_at) = outcome.settle(at_ms);
            let (status, error) = outcome.recorded();
            tx.execute(
                "INSERT INTO outbox_attempts (id, endpoint, at_ms, status, error, owner, took_over) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![c.id, c.endpoint, at_ms, status, error, owner, c.took_over],
            )?;
            let changed = tx.execute(
                "UPDATE outbox SET state = ?1, next_at_ms = ?2, done_at_ms = ?3, \
                 attempts = attempts + 1, last_status = ?4, last_error = ?5, \
                 lease_owner = NULL, lease_until_ms = NULL \
                 WHERE id = ?6 AND endpoint = ?7 AND lease_owner = ?8",
                params![state, next_at, done_at, status, error, c.id, c.endpoint, owner],
            )?;
            if outcome == Outcome::Gone {
                tx.execute(
                    "INSERT INTO webhook_endpoints (name, disabled_at_ms, reason) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (name) DO UPDATE SET disabled_at_ms = ?2, reason = ?3",
                    params![c.endpoint, at_ms, "410 Gone"],
                )?;
            }
            tx.commit()?;
            Ok(changed == 1)
        })
        .await
    }

    async fn next_due(&self, endpoints: &[String]) -> Result<Option<i64>> {
        let endpoints = json_list(endpoints);
        self.with(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT min(o.next_at_ms) FROM outbox o WHERE o.state = 'pending' \
                     AND o.lease_owner IS NULL \
                     AND o.endpoint IN (SELECT value FROM json_each(?1)) \
                     AND o.endpoint NOT IN \
                         (SELECT name FROM webhook_endpoints WHERE disabled_at_ms IS NOT NULL) \
                     AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.ticket_id = o.ticket_id \
                         AND p.endpoint = o.endpoint AND p.state = 'pending' AND p.seq < o.seq)",
                    [endpoints],
                    |r| r.get(0),
                )
                .optional()?
                .flatten())
        })
        .await
    }

    async fn deliveries(&self, filter: &DeliveryFilter) -> Result<Vec<Delivery>> {
        let filter = filter.clone();
        self.with(move |conn| {
            let (after_ms, after_id, after_endpoint) =
                filter.after.clone().unwrap_or((i64::MAX, String::new(), String::new()));
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {DELIVERY_COLUMNS} FROM outbox \
                 WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR endpoint = ?2) \
                 AND (?3 OR created_at_ms < ?4 OR (created_at_ms = ?4 AND (id, endpoint) < (?5, ?6))) \
                 ORDER BY created_at_ms DESC, id DESC, endpoint DESC LIMIT ?7"
            ))?;
            let rows = stmt.query_map(
                params![
                    filter.state.map(DeliveryState::key),
                    filter.endpoint,
                    filter.after.is_none(),
                    after_ms,
                    after_id,
                    after_endpoint,
                    filter.limit as i64
                ],
                delivery_row,
            )?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn attempts(&self, id: &str, endpoint: &str) -> Result<Vec<Attempt>> {
        let (id, endpoint) = (id.to_string(), endpoint.to_string());
        self.with(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT at_ms, status, error, owner, took_over FROM outbox_attempts \
                 WHERE id = ?1 AND endpoint = ?2 ORDER BY at_ms, rowid",
            )?;
            let rows = stmt.query_map(params![id, endpoint], |r| {
                Ok(Attempt {
                    at_ms: r.get(0)?,
                    status: r.get(1)?,
                    error: r.get(2)?,
                    owner: r.get(3)?,
                    took_over: r.get(4)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn endpoint_counts(&self) -> Result<Vec<EndpointCounts>> {
        self.with(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT n.name, \
                   (SELECT count(*) FROM outbox WHERE endpoint = n.name AND state = 'pending'), \
                   (SELECT count(*) FROM outbox WHERE endpoint = n.name AND state = 'delivered'), \
                   (SELECT count(*) FROM outbox WHERE endpoint = n.name AND state = 'failed'), \
                   (SELECT coalesce(sum(takeovers), 0) FROM outbox WHERE endpoint = n.name), \
                   w.disabled_at_ms, coalesce(w.reason, '') \
                 FROM (SELECT DISTINCT endpoint AS name FROM outbox \
                       UNION SELECT name FROM webhook_endpoints) n \
                 LEFT JOIN webhook_endpoints w ON w.name = n.name ORDER BY n.name",
            )?;
            let count = |r: &Row<'_>, i: usize| r.get::<_, i64>(i).map(|n| n.max(0) as u64);
            let rows = stmt.query_map([], |r| {
                Ok(EndpointCounts {
                    name: r.get(0)?,
                    pending: count(r, 1)?,
                    delivered: count(r, 2)?,
                    failed: count(r, 3)?,
                    takeovers: count(r, 4)?,
                    disabled_at_ms: r.get(5)?,
                    disabled_reason: r.get(6)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn retry(
        &self,
        endpoint: &str,
        id: Option<&str>,
        now_ms: i64,
        deadline_ms: i64,
    ) -> Result<u64> {
        let (endpoint, id) = (endpoint.to_string(), id.map(str::to_string));
        self.with(move |conn| {
            let tx = conn.transaction()?;
            tx.execute(
                "UPDATE webhook_endpoints SET disabled_at_ms = NULL, reason = '' WHERE name = ?1",
                [&endpoint],
            )?;
            let n = tx.execute(
                "UPDATE outbox SET state = 'pending', next_at_ms = ?1, deadline_ms = ?2, \
                 done_at_ms = NULL WHERE endpoint = ?3 AND state = 'failed' \
                 AND (?4 IS NULL OR id = ?4)",
                params![now_ms, deadline_ms, endpoint, id],
            )?;
            tx.commit()?;
            Ok(n as u64)
        })
        .await
    }

    async fn prune_delivered(&self, before_ms: i64, limit: usize) -> Result<u64> {
        self.with(move |conn| {
            // The same rows twice in one transaction (one writer, a total
            // order): their attempts, then them.
            let tx = conn.transaction()?;
            let limit = limit as i64;
            let args = params![before_ms, limit];
            tx.execute(
                &format!("DELETE FROM outbox_attempts WHERE (id, endpoint) IN ({PRUNED})"),
                args,
            )?;
            let n = tx.execute(
                &format!("DELETE FROM outbox WHERE (id, endpoint) IN ({PRUNED})"),
                args,
            )?;
            tx.commit()?;
            Ok(n as u64)
        })
        .await
    }
}
