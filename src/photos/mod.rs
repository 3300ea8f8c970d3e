//! Photos of a problem (README "Photos"): an upload is validated and
//! re-encoded (`clean`) and gets an id of its own (random); its bytes are
//! kept once per content (by the SHA-256 of the JPEG kept) in the data
//! directory (`files`) or in PostgreSQL (`store::postgres::photos`), and go
//! with the last upload naming them. An upload is named by a ticket at
//! submission and read through that ticket only: who may see a ticket's
//! photos is who may see the ticket (`Dispatcher::photo_ticket`). An admin's
//! deletion removes that upload, never the identical photo of another
//! ticket. An upload no ticket names is swept once it is older than
//! `photos.unreferenced_ttl_secs`.

pub mod clean;
pub mod files;

use std::{collections::HashSet, sync::Arc};

use sha2::{Digest, Sha256};

pub use clean::{Cleaned, PhotoLimits};

use crate::{
    error::{blocking, check_id, check_len, Error, Result},
    model::ids::TicketId,
    tickets::{now_ms, random_hex, Asking, Dispatcher, Event, Submission, Ticket},
};

/// The most photos one report may carry.
pub const MAX_PER_TICKET: usize = 6;
const MAX_KEY_CHARS: usize = 128;

/// A photo as a store lists it, for the sweep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub id: String,
    /// When it was uploaded or last named by a submission, Unix ms.
    pub touched_ms: i64,
}

/// Where photos are kept: files, or PostgreSQL for replicas.
#[async_trait::async_trait]
pub trait Blobs: Send + Sync + 'static {
    /// Keeps upload `id` of a photo whose full JPEG's SHA-256 is `hash`,
    /// with its thumbnail; the bytes are kept once per hash. Returns once
    /// both are stored.
    async fn put(&self, id: &str, hash: &str, full: Vec<u8>, thumb: Vec<u8>) -> Result<()>;
    /// The bytes of upload `id` (its thumbnail or its whole JPEG).
    async fn get(&self, id: &str, thumb: bool) -> Result<Option<Vec<u8>>>;
    /// Removes upload `id`, and its bytes when no other upload names them;
    /// whether there was one.
    async fn delete(&self, id: &str) -> Result<bool>;
    /// The photo an upload's idempotency key gave.
    async fn keyed(&self, key_digest: &str) -> Result<Option<String>>;
    /// Remembers the photo of a key (the first one stays).
    async fn set_key(&self, key_digest: &str, id: &str) -> Result<()>;
    /// Marks photos named now; returns the ids it does not hold.
    async fn touch(&self, ids: &[String], now_ms: i64) -> Result<Vec<String>>;
    async fn list(&self) -> Result<Vec<Stored>>;
    /// Deletes an upload (as `delete`) only if it was last touched before
    /// `before_ms` (checked again as it goes, so a photo named meanwhile
    /// stays).
    async fn remove_stale(&self, id: &str, before_ms: i64) -> Result<bool>;
}

/// What an upload gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    pub id: String,
    pub width: u32,
    pub height: u32,
    pub uploaded_type: String,
}

/// The photo service: uploads, reads and deletions, over a [`Blobs`].
pub struct Photos {
    blobs: Arc<dyn Blobs>,
    limits: PhotoLimits,
    unreferenced_ttl_ms: i64,
    /// Held by a submission's [`Photos::reserve`] and by the sweep, so the
    /// sweep never removes a photo a submission has just named.
    sweeping: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Photos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Photos")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Refuses a list of photo ids a ticket cannot carry, naming the field.
pub(crate) fn check_ids(ids: &[String]) -> Result<()> {
    if ids.len() > MAX_PER_TICKET {
        return Err(Error::invalid(
            "photo_ids",
            format!(
                "{} photos; a report carries at most {MAX_PER_TICKET}",
                ids.len()
            ),
        ));
    }
    let mut seen = HashSet::new();
    for (i, id) in ids.iter().enumerate() {
        check_photo_id(&format!("photo_ids[{i}]"), id)?;
        if !seen.insert(id) {
            return Err(Error::invalid(
                &format!("photo_ids[{i}]"),
                "names the same photo twice",
            ));
        }
    }
    Ok(())
}

/// A photo id: 64 lowercase hex digits.
fn check_photo_id(field: &str, id: &str) -> Result<()> {
    check_id(field, id, 64)?;
    if id.len() != 64 || !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(Error::invalid(
            field,
            "is not a photo id (64 hex digits, from UploadPhoto)",
        ));
    }
    Ok(())
}

impl Photos {
    pub fn new(blobs: Arc<dyn Blobs>, limits: PhotoLimits, unreferenced_ttl_secs: u64) -> Photos {
        Photos {
            blobs,
            limits,
            unreferenced_ttl_ms: i64::try_from(unreferenced_ttl_secs.saturating_mul(1000))
                .unwrap_or(i64::MAX),
            sweeping: tokio::sync::Mutex::new(()),
        }
    }

    pub fn limits(&self) -> &PhotoLimits {
        &self.limits
    }

    /// Validates, re-encodes and keeps one photo; the same idempotency key
    /// gives the photo it gave first.
    pub async fn upload(&self, data: Vec<u8>, key: &str) -> Result<Uploaded> {
        check_len("idempotency_key", key, MAX_KEY_CHARS)?;
        check_id("idempotency_key", key, MAX_KEY_CHARS * 4)?;
        let key = key.trim();
        let digest = (!key.is_empty()).then(|| hex::encode(Sha256::digest(key.as_bytes())));
        if let Some(digest) = &digest {
            if let Some(id) = self.blobs.keyed(digest).await? {
                if let Some(full) = self.blobs.get(&id, false).await? {
                    let (width, height) = blocking("photo", move || {
                        let size = image::ImageReader::new(std::io::Cursor::new(full))
                            .with_guessed_format()?
                            .into_dimensions();
                        size.map_err(|e| {
                            Error::Internal(format!("a kept photo is unreadable: {e}"))
                        })
                    })
                    .await?;
                    return Ok(Uploaded {
                        id,
                        width,
                        height,
                        uploaded_type: "image/jpeg".into(),
                    });
                }
            }
        }
        let limits = self.limits;
        let cleaned = blocking("photo", move || clean::clean(&data, &limits)).await?;
        let hash = hex::encode(Sha256::digest(&cleaned.full));
        let id = random_hex(32);
        let uploaded = Uploaded {
            id: id.clone(),
            width: cleaned.width,
            height: cleaned.height,
            uploaded_type: cleaned.uploaded_type.into(),
        };
        self.blobs
            .put(&id, &hash, cleaned.full, cleaned.thumb)
            .await?;
        if let Some(digest) = digest {
            self.blobs.set_key(&digest, &id).await?;
        }
        Ok(uploaded)
    }

    /// Checks the photos a submission names and marks them named, so that
    /// the sweep keeps them from now on; an id that is not held is
    /// refused naming it.
    pub async fn reserve(&self, ids: &[String]) -> Result<()> {
        check_ids(ids)?;
        if ids.is_empty() {
            return Ok(());
        }
        let _sweep = self.sweeping.lock().await;
        let missing = self.blobs.touch(ids, now_ms()).await?;
        if let Some(first) = missing.first() {
            let i = ids.iter().position(|id| id == first).unwrap_or(0);
            return Err(Error::invalid(
                &format!("photo_ids[{i}]"),
                "no such photo: upload it again (photos not named by a report are removed after a while)",
            ));
        }
        Ok(())
    }

    /// Submits a problem with its photos: the photos checked and marked
    /// named, then the ticket committed naming them. Returns what
    /// [`Dispatcher::submit`] returns.
    pub async fn submit(
        &self,
        dispatcher: &Dispatcher,
        submission: Submission,
    ) -> Result<(Ticket, Vec<Event>, String)> {
        self.reserve(&submission.photos).await?;
        dispatcher.submit(submission).await
    }

    /// A photo of ticket `id` for `asking`, if they may see the ticket's
    /// photos ([`Dispatcher::photo_ticket`]).
    pub(crate) async fn get(
        &self,
        dispatcher: &Dispatcher,
        id: &TicketId,
        asking: &Asking,
        photo: &str,
        thumb: bool,
    ) -> Result<Vec<u8>> {
        let ticket = dispatcher.photo_ticket(id, asking).await?;
        self.read(&ticket, photo, thumb).await
    }

    /// An admin's deletion of a photo of ticket `id`.
    pub(crate) async fn remove(
        &self,
        dispatcher: &Dispatcher,
        id: &TicketId,
        photo: &str,
    ) -> Result<()> {
        let ticket = dispatcher.photo_ticket(id, &Asking::Admin).await?;
        self.delete(&ticket, photo).await
    }

    /// A photo of `ticket` (already authorised for the caller): the
    /// thumbnail or the whole JPEG.
    pub async fn read(&self, ticket: &Ticket, id: &str, thumb: bool) -> Result<Vec<u8>> {
        let id = self.of_ticket(ticket, id)?;
        self.blobs
            .get(id, thumb)
            .await?
            .ok_or_else(|| Error::NotFound(format!("photo {id} was deleted")))
    }

    /// Removes a photo of `ticket` (an admin's call): that upload, and its
    /// bytes unless another upload (another ticket's identical photo)
    /// names them. The ticket keeps its id, and reading it then answers
    /// NOT_FOUND.
    pub async fn delete(&self, ticket: &Ticket, id: &str) -> Result<()> {
        let id = self.of_ticket(ticket, id)?;
        if !self.blobs.delete(id).await? {
            return Err(Error::NotFound(format!("photo {id} was already deleted")));
        }
        Ok(())
    }

    fn of_ticket<'a>(&self, ticket: &Ticket, id: &'a str) -> Result<&'a str> {
        check_photo_id("photo_id", id)?;
        if !ticket.photos.iter().any(|p| p == id) {
            return Err(Error::NotFound(format!(
                "ticket {} has no photo {id}",
                ticket.id
            )));
        }
        Ok(id)
    }

    /// Removes the photos no ticket names (`referenced`, read from the
    /// ticket store before this call) that were not touched within the
    /// unreferenced TTL; returns how many went.
    pub async fn sweep(&self, referenced: &HashSet<String>) -> Result<usize> {
        let _sweep = self.sweeping.lock().await;
        let before = now_ms().saturating_sub(self.unreferenced_ttl_ms);
        let mut removed = 0;
        for stored in self.blobs.list().await? {
            if stored.touched_ms < before
                && !referenced.contains(&stored.id)
                && self.blobs.remove_stale(&stored.id, before).await?
            {
                removed += 1;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn photos(ttl_secs: u64) -> (Photos, std::path::PathBuf) {
        let dir =
            std::env::temp_dir().join(format!("xwn-photos-{}", crate::tickets::random_hex(6)));
        let blobs = files::FileBlobs::open(&dir).unwrap();
        (
            Photos::new(Arc::new(blobs), PhotoLimits::default(), ttl_secs),
            dir,
        )
    }

    fn ticket_with(photos: Vec<String>) -> Ticket {
        let mut t = crate::tickets::view::tests_ticket();
        t.photos = photos;
        t
    }

    #[tokio::test]
    async fn an_upload_is_kept_by_its_content_and_its_key() {
        let (photos, dir) = photos(3600);
        let png = clean::fixtures::png(400, 300);
        let first = photos.upload(png.clone(), "k1").await.unwrap();
        assert_eq!((first.width, first.height), (400, 300));
        assert_eq!(first.id.len(), 64);
        // The same bytes again: another upload; the same key: the first.
        let again = photos.upload(png, "").await.unwrap().id;
        assert_ne!(again, first.id);
        let other = clean::fixtures::png(10, 10);
        assert_eq!(
            photos.upload(other.clone(), "k1").await.unwrap().id,
            first.id
        );
        assert_ne!(photos.upload(other, "k2").await.unwrap().id, first.id);

        let ticket = ticket_with(vec![first.id.clone()]);
        let full = photos.read(&ticket, &first.id, false).await.unwrap();
        assert!(full.starts_with(&[0xFF, 0xD8]));
        assert!(photos.read(&ticket, &first.id, true).await.unwrap().len() < full.len());
        let stranger = ticket_with(Vec::new());
        assert!(matches!(
            photos.read(&stranger, &first.id, false).await,
            Err(Error::NotFound(_))
        ));
        photos.delete(&ticket, &first.id).await.unwrap();
        assert!(matches!(
            photos.read(&ticket, &first.id, false).await,
            Err(Error::NotFound(_))
        ));
        // The identical photo another ticket names stays.
        let other_ticket = ticket_with(vec![again.clone()]);
        assert_eq!(
            photos.read(&other_ticket, &again, false).await.unwrap(),
            full
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn submissions_name_at_most_six_held_photos() {
        let (photos, dir) = photos(3600);
        let id = photos
            .upload(clean::fixtures::png(8, 8), "")
            .await
            .unwrap()
            .id;
        photos.reserve(std::slice::from_ref(&id)).await.unwrap();
        let seven = vec![id.clone(); 7];
        assert!(
            matches!(photos.reserve(&seven).await, Err(Error::InvalidArgument { ref field, .. }) if field == "photo_ids")
        );
        let twice = vec![id.clone(), id.clone()];
        assert!(
            matches!(photos.reserve(&twice).await, Err(Error::InvalidArgument { ref field, .. }) if field == "photo_ids[1]")
        );
        let unknown = vec![id.clone(), "0".repeat(64)];
        assert!(
            matches!(photos.reserve(&unknown).await, Err(Error::InvalidArgument { ref field, .. }) if field == "photo_ids[1]")
        );
        let bad = vec!["../../etc/passwd".to_string()];
        assert!(
            matches!(photos.reserve(&bad).await, Err(Error::InvalidArgument { ref field, .. }) if field == "photo_ids[0]")
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn the_sweep_removes_old_photos_no_ticket_names() {
        let (photos, dir) = photos(0);
        let kept = photos
            .upload(clean::fixtures::png(8, 8), "")
            .await
            .unwrap()
            .id;
        let gone = photos
            .upload(clean::fixtures::png(9, 9), "")
            .await
            .unwrap()
            .id;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let referenced = HashSet::from([kept.clone()]);
        assert_eq!(photos.sweep(&referenced).await.unwrap(), 1);
        let ticket = ticket_with(vec![kept.clone(), gone.clone()]);
        assert!(photos.read(&ticket, &kept, false).await.is_ok());
        assert!(photos.read(&ticket, &gone, false).await.is_err());
        // A fresh upload survives a sweep within its TTL.
        let (photos, dir2) = self::photos(3600);
        photos.upload(clean::fixtures::png(8, 8), "").await.unwrap();
        assert_eq!(photos.sweep(&HashSet::new()).await.unwrap(), 0);
        let _ = std::fs::remove_dir_all(dir);
        let _ = std::fs::remove_dir_all(dir2);
    }
}
