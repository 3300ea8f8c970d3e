//! Photos in PostgreSQL ([`Blobs`]), so every replica serves every photo:
//! the re-encoded JPEG and its thumbnail as `bytea` in `photos`, upload
//! keys in `photo_keys`. (An S3-compatible store is not offered.)

use super::PgStore;
use crate::{
    error::Result,
    photos::{Blobs, Stored},
    tickets::now_ms,
};

#[async_trait::async_trait]
impl Blobs for PgStore {
    async fn put(&self, id: &str, full: Vec<u8>, thumb: Vec<u8>) -> Result<()> {
        let mut c = self.pool.lease().await?;
        c.execute(
            "INSERT INTO photos (id, full_jpeg, thumb_jpeg, touched_ms) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (id) DO UPDATE SET touched_ms = EXCLUDED.touched_ms",
            &[&id, &full, &thumb, &now_ms()],
        )
        .await?;
        Ok(())
    }

    async fn get(&self, id: &str, thumb: bool) -> Result<Option<Vec<u8>>> {
        let mut c = self.pool.lease().await?;
        let rows = if thumb {
            c.query("SELECT thumb_jpeg FROM photos WHERE id = $1", &[&id])
                .await?
        } else {
            c.query("SELECT full_jpeg FROM photos WHERE id = $1", &[&id])
                .await?
        };
        Ok(rows.first().map(|r| r.get(0)))
    }

    async fn delete(&self, id: &str) -> Result<bool> {
        let mut c = self.pool.lease().await?;
        let n = c
            .execute("DELETE FROM photos WHERE id = $1", &[&id])
            .await?;
        Ok(n > 0)
    }

    async fn keyed(&self, key_digest: &str) -> Result<Option<String>> {
        let mut c = self.pool.lease().await?;
        let rows = c
            .query(
                "SELECT photo_id FROM photo_keys WHERE key_digest = $1",
                &[&key_digest],
            )
            .await?;
        Ok(rows.first().map(|r| r.get(0)))
    }

    async fn set_key(&self, key_digest: &str, id: &str) -> Result<()> {
        let mut c = self.pool.lease().await?;
        c.execute(
            "INSERT INTO photo_keys (key_digest, photo_id) VALUES ($1, $2) \
             ON CONFLICT (key_digest) DO NOTHING",
            &[&key_digest, &id],
        )
        .await?;
        Ok(())
    }

    async fn touch(&self, ids: &[String], now_ms: i64) -> Result<Vec<String>> {
        let mut c = self.pool.lease().await?;
        let ids = ids.to_vec();
        let rows = c
            .query(
                "UPDATE photos SET touched_ms = $2 WHERE id = ANY($1) RETURNING id",
                &[&ids, &now_ms],
            )
            .await?;
        let held: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        Ok(ids.into_iter().filter(|id| !held.contains(id)).collect())
    }

    async fn list(&self) -> Result<Vec<Stored>> {
        let mut c = self.pool.lease().await?;
        let rows = c.query("SELECT id, touched_ms FROM photos", &[]).await?;
        Ok(rows
            .iter()
            .map(|r| Stored {
                id: r.get(0),
                touched_ms: r.get(1),
            })
            .collect())
    }

    async fn remove_stale(&self, id: &str, before_ms: i64) -> Result<bool> {
        let mut c = self.pool.lease().await?;
        let n = c
            .execute(
                "DELETE FROM photos WHERE id = $1 AND touched_ms < $2",
                &[&id, &before_ms],
            )
            .await?;
        Ok(n > 0)
    }
}
