//! Photos on the shared store ([`Blobs`]), so every replica serves every
//! photo: an upload is a row of `photo_uploads` naming its content by
//! hash; the re-encoded JPEG and its thumbnail are kept once per hash,
//! as `bytea` in `photo_content` or (`[photos] store = "s3"`) as objects
//! `<hash>.jpg` and `<hash>.thumb.jpg` of an S3-compatible store, whose
//! `photo_content` row then holds no bytes; upload keys are in
//! `photo_keys`.
//!
//! The bytes of a hash go with the last upload naming them. A writer of an
//! upload locks its content row (inserting it or not) and, holding it,
//! stores the objects; a remover locks it before asking whether another
//! upload names it, in a statement that begins after the lock is granted,
//! and deletes the objects holding it. So a concurrent upload of the same
//! bytes either is seen and keeps them, or finds them gone and stores
//! them again; and an upload is acknowledged only once its bytes are
//! stored.

use std::sync::Arc;

use super::PgStore;
use crate::{
    error::Result,
    outbound::s3::ObjectStore,
    photos::{Blobs, Stored},
    tickets::now_ms,
};

const PUT_CONTENT: &str = "INSERT INTO photo_content (hash, full_jpeg, thumb_jpeg) \
     VALUES ($1, $2, $3) ON CONFLICT (hash) DO UPDATE SET hash = EXCLUDED.hash";
const PUT_UPLOAD: &str = "INSERT INTO photo_uploads (id, hash, touched_ms) VALUES ($1, $2, $3) \
     ON CONFLICT (id) DO UPDATE SET touched_ms = EXCLUDED.touched_ms";
const LOCK_CONTENT: &str = "SELECT 1 FROM photo_content WHERE hash = $1 FOR UPDATE";
const DROP_UNNAMED: &str = "DELETE FROM photo_content WHERE hash = $1 \
     AND NOT EXISTS (SELECT 1 FROM photo_uploads WHERE hash = $1) RETURNING hash";

/// The photos of a shared store: rows in PostgreSQL, bytes there or in an
/// object store.
#[derive(Debug)]
pub struct PgPhotos {
    store: Arc<PgStore>,
    objects: Option<ObjectStore>,
}

/// The object names of a content's whole JPEG and thumbnail.
fn object_names(hash: &str) -> [String; 2] {
    [format!("{hash}.jpg"), format!("{hash}.thumb.jpg")]
}

impl PgPhotos {
    /// Photos in `store`, their bytes in `objects` when given.
    pub fn new(store: Arc<PgStore>, objects: Option<ObjectStore>) -> PgPhotos {
        PgPhotos { store, objects }
    }

    /// Removes upload `id` if `before_ms` is none or it was last touched
    /// before it, and its content if no other upload names it; whether
    /// the upload went.
    async fn remove_upload(&self, id: &str, before_ms: Option<i64>) -> Result<bool> {
        let mut c = self.store.pool.lease().await?;
        c.begin().await?;
        let rows = c
            .query(
                "DELETE FROM photo_uploads WHERE id = $1 AND ($2::BIGINT IS NULL OR touched_ms < $2) \
                 RETURNING hash",
                &[&id, &before_ms],
            )
            .await?;
        let Some(hash) = rows.first().map(|r| r.get::<_, String>(0)) else {
            c.rollback().await?;
            return Ok(false);
        };
        c.query(LOCK_CONTENT, &[&hash]).await?;
        let dropped = c.query(DROP_UNNAMED, &[&hash]).await?;
        if let (Some(objects), false) = (&self.objects, dropped.is_empty()) {
            // The whole JPEG first: bytes whose whole JPEG exists are whole.
            for name in object_names(&hash) {
                objects.delete(&name).await?;
            }
        }
        c.commit().await?;
        Ok(true)
    }
}

#[async_trait::async_trait]
impl Blobs for PgPhotos {
    async fn put(&self, id: &str, hash: &str, full: Vec<u8>, thumb: Vec<u8>) -> Result<()> {
        let mut c = self.store.pool.lease().await?;
        c.begin().await?;
        match &self.objects {
            None => {
                c.execute(PUT_CONTENT, &[&hash, &full, &thumb]).await?;
            }
            Some(objects) => {
                let none: Option<Vec<u8>> = None;
                c.execute(PUT_CONTENT, &[&hash, &none, &none]).await?;
                // Holding the content row's lock: no removal runs meanwhile.
                let [full_name, thumb_name] = object_names(hash);
                if !objects.exists(&full_name).await? {
                    // The thumbnail first: bytes whose whole JPEG exists are whole.
                    objects.put(&thumb_name, thumb).await?;
                    objects.put(&full_name, full).await?;
                }
            }
        }
        c.execute(PUT_UPLOAD, &[&id, &hash, &now_ms()]).await?;
        c.commit().await
    }

    async fn get(&self, id: &str, thumb: bool) -> Result<Option<Vec<u8>>> {
        let mut c = self.store.pool.lease().await?;
        if let Some(objects) = &self.objects {
            let rows = c
                .query("SELECT hash FROM photo_uploads WHERE id = $1", &[&id])
                .await?;
            drop(c);
            let Some(hash) = rows.first().map(|r| r.get::<_, String>(0)) else {
                return Ok(None);
            };
            let [full, small] = object_names(&hash);
            return objects.get(if thumb { &small } else { &full }).await;
        }
        let rows = if thumb {
            c.query(
                "SELECT c.thumb_jpeg FROM photo_uploads u JOIN photo_content c USING (hash) \
                 WHERE u.id = $1",
                &[&id],
            )
            .await?
        } else {
            c.query(
                "SELECT c.full_jpeg FROM photo_uploads u JOIN photo_content c USING (hash) \
                 WHERE u.id = $1",
                &[&id],
            )
            .await?
        };
        Ok(rows.first().and_then(|r| r.get(0)))
    }

    async fn delete(&self, id: &str) -> Result<bool> {
        self.remove_upload(id, None).await
    }

    async fn keyed(&self, key_digest: &str) -> Result<Option<String>> {
        let mut c = self.store.pool.lease().await?;
        let rows = c
            .query(
                "SELECT photo_id FROM photo_keys WHERE key_digest = $1",
                &[&key_digest],
            )
            .await?;
        Ok(rows.first().map(|r| r.get(0)))
    }

    async fn set_key(&self, key_digest: &str, id: &str) -> Result<()> {
        let mut c = self.store.pool.lease().await?;
        c.execute(
            "INSERT INTO photo_keys (key_digest, photo_id) VALUES ($1, $2) \
             ON CONFLICT (key_digest) DO NOTHING",
            &[&key_digest, &id],
        )
        .await?;
        Ok(())
    }

    async fn touch(&self, ids: &[String], now_ms: i64) -> Result<Vec<String>> {
        let mut c = self.store.pool.lease().await?;
        let ids = ids.to_vec();
        let rows = c
            .query(
                "UPDATE photo_uploads SET touched_ms = $2 WHERE id = ANY($1) RETURNING id",
                &[&ids, &now_ms],
            )
            .await?;
        let held: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        Ok(ids.into_iter().filter(|id| !held.contains(id)).collect())
    }

    async fn list(&self) -> Result<Vec<Stored>> {
        let mut c = self.store.pool.lease().await?;
        let rows = c
            .query("SELECT id, touched_ms FROM photo_uploads", &[])
            .await?;
        Ok(rows
            .iter()
            .map(|r| Stored {
                id: r.get(0),
                touched_ms: r.get(1),
            })
            .collect())
    }

    async fn remove_stale(&self, id: &str, before_ms: i64) -> Result<bool> {
        self.remove_upload(id, Some(before_ms)).await
    }
}
