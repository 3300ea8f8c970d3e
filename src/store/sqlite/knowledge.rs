//! Knowledge entries on SQLite ([`KnowledgeStore`]): one writer, so the
//! next `seq` is the largest plus one.

use async_trait::async_trait;
use rusqlite::params;

use super::SqliteStore;
use crate::{
    error::Result,
    knowledge::Entry,
    store::knowledge::{entry_of, keys, KnowledgeStore, COLUMNS},
    tickets::now_ms,
};

const NEXT_SEQ: &str = "(SELECT coalesce(max(seq), 0) + 1 FROM knowledge)";

#[async_trait]
impl KnowledgeStore for SqliteStore {
    async fn put_knowledge(&self, entry: &Entry) -> Result<()> {
        let e = entry.clone();
        self.with(move |conn| {
            let (corps, tier, by) = keys(&e);
            conn.execute(
                &format!(
                    "INSERT OR REPLACE INTO knowledge (seq, published, {COLUMNS}, updated_at_ms) \
                     VALUES ({NEXT_SEQ}, 1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
                ),
                params![
                    e.id,
                    e.text,
                    e.subject,
                    corps,
                    e.county_code,
                    e.county_name,
                    e.answer,
                    tier,
                    e.resolved_at_ms,
                    e.rating,
                    by,
                    now_ms()
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn rate_knowledge(&self, id: &str, stars: u8) -> Result<bool> {
        let id = id.to_string();
        self.with(move |conn| {
            let n = conn.execute(
                &format!(
                    "UPDATE knowledge SET rating = ?2, seq = {NEXT_SEQ}, updated_at_ms = ?3 \
                     WHERE id = ?1 AND published = 1"
                ),
                params![id, stars, now_ms()],
            )?;
            Ok(n > 0)
        })
        .await
    }

    async fn unpublish_knowledge(&self, id: &str) -> Result<bool> {
        let id = id.to_string();
        self.with(move |conn| {
            let n = conn.execute(
                &format!(
                    "UPDATE knowledge SET published = 0, seq = {NEXT_SEQ}, updated_at_ms = ?2 \
                     WHERE id = ?1 AND published = 1"
                ),
                params![id, now_ms()],
            )?;
            Ok(n > 0)
        })
        .await
    }

    async fn knowledge_since(&self, seq: u64) -> Result<Vec<(u64, Entry, bool)>> {
        self.with(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT seq, published, {COLUMNS} FROM knowledge WHERE seq > ?1 ORDER BY seq"
            ))?;
            let rows = stmt.query_map(params![seq as i64], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, bool>(1)?,
                    (r.get(2)?, r.get(3)?, r.get(4)?, r.get::<_, String>(5)?),
                    (r.get(6)?, r.get(7)?, r.get(8)?, r.get::<_, String>(9)?),
                    (r.get(10)?, r.get(11)?, r.get::<_, String>(12)?),
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (
                    seq,
                    published,
                    (id, text, subject, corps),
                    (cc, cn, answer, tier),
                    (at, rating, by),
                ) = row?;
                let entry = entry_of(
                    id, text, subject, &corps, cc, cn, answer, &tier, at, rating, &by,
                )?;
                out.push((seq as u64, entry, published));
            }
            Ok(out)
        })
        .await
    }
}
