//! The roster log on PostgreSQL ([`RosterLog`]): every roster change,
//! numbered by version, appended under an advisory lock and announced on
//! the roster channel.

use async_trait::async_trait;
use tokio::sync::watch;

use super::{bad, PgStore, ROSTER_CHANNEL, ROSTER_LOCK};
use crate::{
    error::Result,
    roster::log::{RosterLog, RosterOp},
    roster::RosterFormat,
    tickets::now_ms,
};

fn op_parts(op: &RosterOp) -> (&'static str, &'static str, Vec<u8>) {
    match op {
        RosterOp::Import { format, data } => ("import", format.key(), data.clone()),
        RosterOp::Upsert(talents) => (
            "upsert",
            "json",
            serde_json::to_vec(talents).expect("talents serialize"),
        ),
        RosterOp::Remove(ids) => (
            "remove",
            "json",
            serde_json::to_vec(ids).expect("ids serialize"),
        ),
    }
}

fn op_of(op: &str, format: &str, body: Vec<u8>) -> Result<RosterOp> {
    let json = |what: &str, e: serde_json::Error| bad(what, &e.to_string());
    Ok(match op {
        "import" => RosterOp::Import {
            format: RosterFormat::parse(format).ok_or_else(|| bad("roster format", format))?,
            data: body,
        },
        "upsert" => RosterOp::Upsert(serde_json::from_slice(&body).map_err(|e| json("upsert", e))?),
        "remove" => {
            RosterOp::Remove(serde_json::from_slice(&body).map_err(|e| json("removal", e))?)
        }
        other => return Err(bad("roster operation", other)),
    })
}

#[async_trait]
impl RosterLog for PgStore {
    async fn append(&self, op: &RosterOp, only_if_empty: bool) -> Result<Option<u64>> {
        let (kind, format, body) = op_parts(op);
        let mut c = self.pool.lease().await?;
        c.begin().await?;
        c.execute("SELECT pg_advisory_xact_lock($1)", &[&ROSTER_LOCK])
            .await?;
        let last: i64 = c
            .query("SELECT coalesce(max(version), 0) FROM roster_log", &[])
            .await?[0]
            .get(0);
        if only_if_empty && last > 0 {
            c.rollback().await?;
            return Ok(None);
        }
        let version = last + 1;
        c.execute(
            "INSERT INTO roster_log (version, op, format, body, at_ms) VALUES ($1, $2, $3, $4, $5)",
            &[&version, &kind, &format, &body, &now_ms()],
        )
        .await?;
        c.execute(
            "SELECT pg_notify($1, $2)",
            &[&ROSTER_CHANNEL, &version.to_string()],
        )
        .await?;
        c.commit().await?;
        Ok(Some(version as u64))
    }

    async fn next_after(&self, version: u64) -> Result<Option<(u64, RosterOp)>> {
        let mut c = self.pool.lease().await?;
        let rows = c
            .query(
                "SELECT version, op, format, body FROM roster_log WHERE version > $1 \
                 ORDER BY version LIMIT 1",
                &[&(version as i64)],
            )
            .await?;
        let Some(r) = rows.first() else {
            return Ok(None);
        };
        let v: i64 = r.get(0);
        Ok(Some((v as u64, op_of(r.get(1), r.get(2), r.get(3))?)))
    }

    async fn bounds(&self) -> Result<(u64, u64)> {
        let mut c = self.pool.lease().await?;
        let row = &c
            .query(
                "SELECT coalesce(max(version) FILTER (WHERE op = 'import'), 0), \
                 coalesce(max(version), 0) FROM roster_log",
                &[],
            )
            .await?[0];
        Ok((row.get::<_, i64>(0) as u64, row.get::<_, i64>(1) as u64))
    }

    fn notifications(&self) -> watch::Receiver<u64> {
        self.roster.subscribe()
    }
}
