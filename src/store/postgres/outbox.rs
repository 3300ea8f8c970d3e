//! The outbox on PostgreSQL ([`Outbox`]), shared by replicas: a worker
//! leases due rows with `FOR UPDATE SKIP LOCKED` (so two replicas never
//! claim the same row at once) and a lease (`lease_until_ms`) that another
//! replica takes over once it has expired: its holder died or hung. Such a
//! takeover is counted on the row (`takeovers`): the endpoint may have got
//! that notification twice.

use async_trait::async_trait;
use tokio_postgres::Row;

use super::{bad, PgStore};
use crate::{
    error::Result,
    store::outbox::{
        Attempt, Claimed, Delivery, DeliveryFilter, DeliveryState, EndpointCounts, Outbox, Outcome,
    },
};

const CLAIM: &str = "WITH c AS (SELECT o.id, o.endpoint, o.lease_owner IS NOT NULL AS took \
     FROM outbox o WHERE o.state = 'pending' AND o.next_at_ms <= $1 \
     AND (o.lease_until_ms IS NULL OR o.lease_until_ms < $1) \
     AND o.endpoint = ANY($2::TEXT[]) \
     AND o.endpoint NOT IN (SELECT name FROM webhook_endpoints WHERE disabled_at_ms IS NOT NULL) \
     AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.ticket_id = o.ticket_id \
         AND p.endpoint = o.endpoint AND p.state = 'pending' AND p.seq < o.seq) \
     ORDER BY o.next_at_ms, o.created_at_ms LIMIT $3 FOR UPDATE OF o SKIP LOCKED) \
     UPDATE outbox u SET takeovers = u.takeovers + CASE WHEN c.took THEN 1 ELSE 0 END, \
     lease_owner = $4, lease_until_ms = $5 FROM c WHERE u.id = c.id AND u.endpoint = c.endpoint \
     RETURNING u.id, u.endpoint, u.ticket_id, u.kind, u.body, u.attempts, u.deadline_ms, c.took, u.created_at_ms";

/// Deletes a batch of old delivered rows and their attempts in one
/// statement; rows another replica is deleting are skipped, not waited on.
/// A delivered row's next_at_ms is its done_at_ms: the due index finds the
/// oldest.
const PRUNE: &str = "WITH gone AS (DELETE FROM outbox WHERE (id, endpoint) IN \
     (SELECT id, endpoint FROM outbox WHERE state = 'delivered' AND next_at_ms < $1 \
     AND done_at_ms < $1 ORDER BY next_at_ms LIMIT $2 FOR UPDATE SKIP LOCKED) \
     RETURNING id, endpoint), \
     attempts AS (DELETE FROM outbox_attempts a USING gone \
     WHERE a.id = gone.id AND a.endpoint = gone.endpoint) \
     SELECT count(*) FROM gone";

const DELIVERIES: &str = "SELECT id, endpoint, ticket_id, kind, state, attempts, takeovers, \
     last_status, last_error, created_at_ms, next_at_ms, done_at_ms FROM outbox \
     WHERE ($1::TEXT IS NULL OR state = $1) AND ($2::TEXT IS NULL OR endpoint = $2) \
     AND ($3 OR created_at_ms < $4 OR (created_at_ms = $4 AND (id, endpoint) < ($5, $6))) \
     ORDER BY created_at_ms DESC, id DESC, endpoint DESC LIMIT $7";

const COUNTS: &str = "SELECT n.name, \
     (SELECT count(*) FROM outbox WHERE endpoint = n.name AND state = 'pending'), \
     (SELECT count(*) FROM outbox WHERE endpoint = n.name AND state = 'delivered'), \
     (SELECT count(*) FROM outbox WHERE endpoint = n.name AND state = 'failed'), \
     (SELECT coalesce(sum(takeovers), 0)::BIGINT FROM outbox WHERE endpoint = n.name), \
     w.disabled_at_ms, coalesce(w.reason, '') \
     FROM (SELECT DISTINCT endpoint AS name FROM outbox UNION SELECT name FROM webhook_endpoints) n \
     LEFT JOIN webhook_endpoints w ON w.name = n.name ORDER BY n.name";

fn small(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn status(n: Option<i64>) -> Option<u16> {
    n.and_then(|n| u16::try_from(n).ok())
}

fn delivery_of(r: &Row) -> Result<Delivery> {
    let state: String = r.get(4);
    Ok(Delivery {
        id: r.get(0),
        endpoint: r.get(1),
        ticket_id: r.get(2),
        kind: r.get(3),
        state: DeliveryState::parse(&state).ok_or_else(|| bad("delivery state", &state))?,
        attempts: small(r.get(5)),
        takeovers: small(r.get(6)),
        last_status: status(r.get(7)),
        last_error: r.get(8),
        created_at_ms: r.get(9),
        next_at_ms: r.get(10),
        done_at_ms: r.get(11),
    })
}

#[async_trait]
impl Outbox for PgStore {
    async fn claim(
        &self,
        owner: &str,
        endpoints: &[String],
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<Claimed>> {
        let mut c = self.pool.lease().await?;
        let (limit, until) = (limit as i64, now_ms + lease_ms);
        let rows = c
            .query(CLAIM, &[&now_ms, &endpoints, &limit, &owner, &until])
            .await?;
        Ok(rows
            .iter()
            .map(|r| Claimed {
                id: r.get(0),
                endpoint: r.get(1),
                ticket_id: r.get(2),
                kind: r.get(3),
                body: r.get(4),
                attempts: small(r.get(5)),
                deadline_ms: r.get(6),
                took_over: r.get(7),
                created_at_ms: r.get(8),
            })
            .collect())
    }

    async fn finish(
        &self,
        owner: &str,
        claimed: &Claimed,
        outcome: &Outcome,
        at_ms: i64,
    ) -> Result<bool> {
        let (state, next_at, done_at) = outcome.settle(at_ms);
        let (code, error) = outcome.recorded();
        let code = code.map(i64::from);
        let took = i64::from(claimed.took_over);
        let mut c = self.pool.lease().await?;
        c.begin().await?;
        c.execute(
            "INSERT INTO outbox_attempts (id, endpoint, at_ms, status, error, owner, took_over) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &claimed.id,
                &claimed.endpoint,
                &at_ms,
                &code,
                &error,
                &owner,
                &took,
            ],
        )
        .await?;
        let changed = c
            .execute(
                "UPDATE outbox SET state = $1, next_at_ms = $2, done_at_ms = $3, \
                 attempts = attempts + 1, last_status = $4, last_error = $5, \
                 lease_owner = NULL, lease_until_ms = NULL \
                 WHERE id = $6 AND endpoint = $7 AND lease_owner = $8",
                &[
                    &state,
                    &next_at,
                    &done_at,
                    &code,
                    &error,
                    &claimed.id,
                    &claimed.endpoint,
                    &owner,
                ],
            )
            .await?;
        if *outcome == Outcome::Gone {
            c.execute(
                "INSERT INTO webhook_endpoints (name, disabled_at_ms, reason) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO UPDATE SET disabled_at_ms = $2, reason = $3",
                &[&claimed.endpoint, &at_ms, &"410 Gone"],
            )
            .await?;
        }
        c.commit().await?;
        Ok(changed == 1)
    }

    async fn next_due(&self, endpoints: &[String]) -> Result<Option<i64>> {
        let mut c = self.pool.lease().await?;
        let rows = c
            .query(
                "SELECT min(o.next_at_ms) FROM outbox o WHERE o.state = 'pending' \
                 AND o.lease_owner IS NULL AND o.endpoint = ANY($1::TEXT[]) \
                 AND o.endpoint NOT IN \
                     (SELECT name FROM webhook_endpoints WHERE disabled_at_ms IS NOT NULL) \
                 AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.ticket_id = o.ticket_id \
                     AND p.endpoint = o.endpoint AND p.state = 'pending' AND p.seq < o.seq)",
                &[&endpoints],
            )
            .await?;
        Ok(rows.first().and_then(|r| r.get(0)))
    }

    async fn deliveries(&self, filter: &DeliveryFilter) -> Result<Vec<Delivery>> {
        let mut c = self.pool.lease().await?;
        let (after_ms, after_id, after_endpoint) =
            filter
                .after
                .clone()
                .unwrap_or((i64::MAX, String::new(), String::new()));
        let rows = c
            .query(
                DELIVERIES,
                &[
                    &filter.state.map(DeliveryState::key),
                    &filter.endpoint,
                    &filter.after.is_none(),
                    &after_ms,
                    &after_id,
                    &after_endpoint,
                    &(filter.limit as i64),
                ],
            )
            .await?;
        rows.iter().map(delivery_of).collect()
    }

    async fn attempts(&self, id: &str, endpoint: &str) -> Result<Vec<Attempt>> {
        let mut c = self.pool.lease().await?;
        let rows = c
            .query(
                "SELECT at_ms, status, error, owner, took_over FROM outbox_attempts \
                 WHERE id = $1 AND endpoint = $2 ORDER BY at_ms",
                &[&id, &endpoint],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| Attempt {
                at_ms: r.get(0),
                status: status(r.get(1)),
                error: r.get(2),
                owner: r.get(3),
                took_over: r.get::<_, i64>(4) != 0,
            })
            .collect())
    }

    async fn endpoint_counts(&self) -> Result<Vec<EndpointCounts>> {
        let mut c = self.pool.lease().await?;
        let rows = c.query(COUNTS, &[]).await?;
        let count = |r: &Row, i: usize| r.get::<_, i64>(i).max(0) as u64;
        Ok(rows
            .iter()
            .map(|r| EndpointCounts {
                name: r.get(0),
                pending: count(r, 1),
                delivered: count(r, 2),
                failed: count(r, 3),
                takeovers: count(r, 4),
                disabled_at_ms: r.get(5),
                disabled_reason: r.get(6),
            })
            .collect())
    }

    async fn retry(
        &self,
        endpoint: &str,
        id: Option<&str>,
        now_ms: i64,
        deadline_ms: i64,
    ) -> Result<u64> {
        let mut c = self.pool.lease().await?;
        c.begin().await?;
        c.execute(
            "UPDATE webhook_endpoints SET disabled_at_ms = NULL, reason = '' WHERE name = $1",
            &[&endpoint],
        )
        .await?;
        let n = c
            .execute(
                "UPDATE outbox SET state = 'pending', next_at_ms = $1, deadline_ms = $2, \
                 done_at_ms = NULL WHERE endpoint = $3 AND state = 'failed' \
                 AND ($4::TEXT IS NULL OR id = $4)",
                &[&now_ms, &deadline_ms, &endpoint, &id],
            )
            .await?;
        c.commit().await?;
        Ok(n)
    }

    async fn prune_delivered(&self, before_ms: i64, limit: usize) -> Result<u64> {
        let mut c = self.pool.lease().await?;
        let rows = c.query(PRUNE, &[&before_ms, &(limit as i64)]).await?;
        Ok(rows.first().map_or(0, |r| r.get::<_, i64>(0)) as u64)
    }
}
