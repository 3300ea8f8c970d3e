//! Knowledge entries on PostgreSQL ([`KnowledgeStore`]), shared by
//! replicas: writes take an advisory lock, so `seq` order is commit order
//! and a replica reading the rows past its last `seq` misses none.

use async_trait::async_trait;

use super::{PgStore, KNOWLEDGE_LOCK};
use crate::{
    error::Result,
    knowledge::Entry,
    store::knowledge::{entry_of, keys, KnowledgeStore},
    tickets::now_ms,
};

const PUT: &str = "INSERT INTO knowledge (seq, published, id, text, subject, corps, county_code, \
     county_name, answer, tier, resolved_at_ms, rating, published_by, updated_at_ms) \
     VALUES ((SELECT coalesce(max(seq), 0) + 1 FROM knowledge), true, $1, $2, $3, $4, $5, $6, \
     $7, $8, $9, $10, $11, $12) \
     ON CONFLICT (id) DO UPDATE SET seq = EXCLUDED.seq, published = true, text = EXCLUDED.text, \
     subject = EXCLUDED.subject, corps = EXCLUDED.corps, county_code = EXCLUDED.county_code, \
     county_name = EXCLUDED.county_name, answer = EXCLUDED.answer, tier = EXCLUDED.tier, \
     resolved_at_ms = EXCLUDED.resolved_at_ms, rating = EXCLUDED.rating, published_by = EXCLUDED.published_by, \
     updated_at_ms = EXCLUDED.updated_at_ms";

const RATE: &str = "UPDATE knowledge SET rating = $2, \
     seq = (SELECT coalesce(max(seq), 0) + 1 FROM knowledge), updated_at_ms = $3 \
     WHERE id = $1 AND published";

const UNPUBLISH: &str = "UPDATE knowledge SET published = false, \
     seq = (SELECT coalesce(max(seq), 0) + 1 FROM knowledge), updated_at_ms = $2 \
     WHERE id = $1 AND published";

const SINCE: &str = "SELECT seq, published, id, text, subject, corps, county_code, county_name, \
     answer, tier, resolved_at_ms, rating, published_by FROM knowledge WHERE seq > $1 ORDER BY seq";

#[async_trait]
impl KnowledgeStore for PgStore {
    async fn put_knowledge(&self, e: &Entry) -> Result<()> {
        let (corps, tier, by) = keys(e);
        // The column is an INTEGER (int4): bound and read as i32.
        let rating = e.rating.map(i32::from);
        let mut c = self.pool.lease().await?;
        c.begin().await?;
        c.execute("SELECT pg_advisory_xact_lock($1)", &[&KNOWLEDGE_LOCK])
            .await?;
        c.execute(
            PUT,
            &[
                &e.id,
                &e.text,
                &e.subject,
                &corps,
                &e.county_code,
                &e.county_name,
                &e.answer,
                &tier,
                &e.resolved_at_ms,
                &rating,
                &by,
                &now_ms(),
            ],
        )
        .await?;
        c.commit().await
    }

    async fn rate_knowledge(&self, id: &str, stars: u8) -> Result<bool> {
        let mut c = self.pool.lease().await?;
        c.begin().await?;
        c.execute("SELECT pg_advisory_xact_lock($1)", &[&KNOWLEDGE_LOCK])
            .await?;
        let n = c
            .execute(RATE, &[&id, &i32::from(stars), &now_ms()])
            .await?;
        c.commit().await?;
        Ok(n > 0)
    }

    async fn unpublish_knowledge(&self, id: &str) -> Result<bool> {
        let mut c = self.pool.lease().await?;
        c.begin().await?;
        c.execute("SELECT pg_advisory_xact_lock($1)", &[&KNOWLEDGE_LOCK])
            .await?;
        let n = c.execute(UNPUBLISH, &[&id, &now_ms()]).await?;
        c.commit().await?;
        Ok(n > 0)
    }

    async fn knowledge_since(&self, seq: u64) -> Result<Vec<(u64, Entry, bool)>> {
        let mut c = self.pool.lease().await?;
        let rows = c.query(SINCE, &[&(seq as i64)]).await?;
        rows.iter()
            .map(|r| {
                let corps: String = r.get(5);
                let tier: String = r.get(9);
                let by: String = r.get(12);
                let entry = entry_of(
                    r.get(2),
                    r.get(3),
                    r.get(4),
                    &corps,
                    r.get(6),
                    r.get(7),
                    r.get(8),
                    &tier,
                    r.get(10),
                    r.get::<_, Option<i32>>(11).map(i64::from),
                    &by,
                )?;
                Ok((r.get::<_, i64>(0) as u64, entry, r.get::<_, bool>(1)))
            })
            .collect()
    }
}
