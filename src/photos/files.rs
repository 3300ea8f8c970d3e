//! Photos in the data directory (the embedded store's side). An upload is
//! a file `photos/uploads/<first two digits>/<id>` holding the hash of its
//! content, its modification time when a submit last named it; the bytes
//! are kept once per content, `photos/<first two digits>/<hash>.jpg` and
//! `<hash>.thumb.jpg`, with an empty file per upload naming them in
//! `<hash>.refs/`, so they go with the last upload that names them (and
//! never while a concurrent upload of the same bytes is being kept: one
//! process owns the data directory, and its writes and removals take one
//! lock). An idempotency key's photo is in `photos/keys/<SHA-256 of the
//! key>`.
//!
//! Every file is written whole or not at all: a temporary file in the same
//! folder, fsynced, renamed over its name, the folder fsynced; a crash
//! leaves at most a `.tmp-*` file, which no read ever names and the sweep
//! removes.

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use super::{Blobs, Stored};
use crate::{
    error::{blocking, Error, Result},
    tickets::random_hex,
};

/// The photo folder of a data directory.
pub struct FileBlobs {
    dir: PathBuf,
    /// Held by every write and removal, so a removal that finds no other
    /// upload naming some bytes removes them before, or after, a
    /// concurrent upload of the same bytes is kept whole.
    writing: Arc<Mutex<()>>,
}

/// The paths of one photo's files.
struct Layout {
    dir: PathBuf,
}

impl Layout {
    fn upload(&self, id: &str) -> PathBuf {
        self.dir.join("uploads").join(&id[..2]).join(id)
    }

    fn content(&self, hash: &str, thumb: bool) -> PathBuf {
        let name = if thumb {
            format!("{hash}.thumb.jpg")
        } else {
            format!("{hash}.jpg")
        };
        self.dir.join(&hash[..2]).join(name)
    }

    fn refs(&self, hash: &str) -> PathBuf {
        self.dir.join(&hash[..2]).join(format!("{hash}.refs"))
    }

    /// The content hash upload `id` names, if it is held.
    fn hash_of(&self, id: &str) -> Result<Option<String>> {
        let Some(hash) = read_if_any(&self.upload(id))? else {
            return Ok(None);
        };
        let hash = String::from_utf8_lossy(&hash).trim().to_string();
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::Internal(format!(
                "photo upload {id} names no content hash"
            )));
        }
        Ok(Some(hash))
    }

    /// Removes upload `id` and, when no other upload names its bytes, the
    /// bytes (the caller holds the write lock).
    fn remove(&self, id: &str) -> Result<bool> {
        let Some(hash) = self.hash_of(id)? else {
            return Ok(false);
        };
        remove_if_any(&self.upload(id))?;
        let refs = self.refs(&hash);
        remove_if_any(&refs.join(id))?;
        let named = match fs::read_dir(&refs) {
            Ok(mut entries) => entries.next().is_some(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(e.into()),
        };
        if !named {
            // The full file first: bytes whose full file exists are whole.
            remove_if_any(&self.content(&hash, false))?;
            remove_if_any(&self.content(&hash, true))?;
            let _ = fs::remove_dir(&refs);
        }
        Ok(true)
    }

    /// Photos kept before uploads had their own id (the id was the hash):
    /// each becomes an upload of that id.
    fn adopt_content_ids(&self) -> Result<()> {
        for folder in fs::read_dir(&self.dir)? {
            let folder = folder?;
            if !folder.file_type()?.is_dir() || folder.file_name().len() != 2 {
                continue;
            }
            for file in fs::read_dir(folder.path())? {
                let name = file?.file_name().to_string_lossy().into_owned();
                let Some(hash) = name.strip_suffix(".jpg") else {
                    continue;
                };
                if hash.len() != 64 || self.refs(hash).exists() {
                    continue;
                }
                let upload = self.upload(hash);
                if !upload.exists() {
                    write_atomically(&upload, hash.as_bytes())?;
                    if let Ok(modified) = fs::metadata(self.content(hash, false))?.modified() {
                        fs::File::options()
                            .write(true)
                            .open(&upload)?
                            .set_modified(modified)?;
                    }
                }
                fs::create_dir_all(self.refs(hash))?;
                fs::File::create(self.refs(hash).join(hash))?;
            }
        }
        Ok(())
    }
}

impl FileBlobs {
    /// Opens (creating) `<data_dir>/photos`.
    pub fn open(data_dir: &Path) -> Result<FileBlobs> {
        let dir = data_dir.join("photos");
        fs::create_dir_all(dir.join("keys"))?;
        fs::create_dir_all(dir.join("uploads"))?;
        Layout { dir: dir.clone() }.adopt_content_ids()?;
        Ok(FileBlobs {
            dir,
            writing: Arc::new(Mutex::new(())),
        })
    }

    fn layout(&self) -> Layout {
        Layout {
            dir: self.dir.clone(),
        }
    }

    /// Runs `f` on the blocking pool holding the write lock.
    async fn writing<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Layout) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (layout, lock) = (self.layout(), self.writing.clone());
        blocking("photo store", move || {
            let _held = lock
                .lock()
                .map_err(|_| Error::Internal("the photo write lock is poisoned".into()))?;
            f(&layout)
        })
        .await
    }
}

/// Writes `data` at `path` atomically (see the module doc).
pub(crate) fn write_atomically(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let folder = path.parent().expect("a photo path has a folder");
    fs::create_dir_all(folder)?;
    let tmp = folder.join(format!(".tmp-{}", random_hex(8)));
    let written = (|| {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(data)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        fs::File::open(folder)?.sync_all()
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

fn read_if_any(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(data) => Ok(Some(data)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn remove_if_any(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn mtime_ms(path: &Path) -> Option<i64> {
    let modified = fs::metadata(path).ok()?.modified().ok()?;
    let since = modified.duration_since(std::time::UNIX_EPOCH).ok()?;
    Some(since.as_millis() as i64)
}

#[async_trait::async_trait]
impl Blobs for FileBlobs {
    async fn put(&self, id: &str, hash: &str, full: Vec<u8>, thumb: Vec<u8>) -> Result<()> {
        let (id, hash) = (id.to_string(), hash.to_string());
        self.writing(move |at| {
            let full_path = at.content(&hash, false);
            if !full_path.exists() {
                // The thumbnail first: bytes whose full file exists are whole.
                write_atomically(&at.content(&hash, true), &thumb)?;
                write_atomically(&full_path, &full)?;
            }
            let refs = at.refs(&hash);
            fs::create_dir_all(&refs)?;
            fs::File::create(refs.join(&id))?;
            fs::File::open(&refs)?.sync_all()?;
            // Last: the upload exists once its bytes are kept.
            write_atomically(&at.upload(&id), hash.as_bytes())?;
            Ok(())
        })
        .await
    }

    async fn get(&self, id: &str, thumb: bool) -> Result<Option<Vec<u8>>> {
        let (at, id) = (self.layout(), id.to_string());
        blocking("photo store", move || {
            let Some(hash) = at.hash_of(&id)? else {
                return Ok(None);
            };
            if !at.content(&hash, false).exists() {
                return Ok(None);
            }
            read_if_any(&at.content(&hash, thumb))
        })
        .await
    }

    async fn delete(&self, id: &str) -> Result<bool> {
        let id = id.to_string();
        self.writing(move |at| at.remove(&id)).await
    }

    async fn keyed(&self, key_digest: &str) -> Result<Option<String>> {
        let path = self.dir.join("keys").join(key_digest);
        blocking("photo store", move || {
            Ok(read_if_any(&path)?.map(|id| String::from_utf8_lossy(&id).into_owned()))
        })
        .await
    }

    async fn set_key(&self, key_digest: &str, id: &str) -> Result<()> {
        let (path, id) = (self.dir.join("keys").join(key_digest), id.to_string());
        blocking("photo store", move || {
            // The first photo of a key stays its photo.
            if !path.exists() {
                write_atomically(&path, id.as_bytes())?;
            }
            Ok(())
        })
        .await
    }

    async fn touch(&self, ids: &[String], now_ms: i64) -> Result<Vec<String>> {
        let ids = ids.to_vec();
        self.writing(move |at| {
            let mut missing = Vec::new();
            let when = std::time::UNIX_EPOCH + std::time::Duration::from_millis(now_ms as u64);
            for id in ids {
                match fs::File::options().write(true).open(at.upload(&id)) {
                    Ok(file) => file.set_modified(when)?,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => missing.push(id),
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(missing)
        })
        .await
    }

    async fn remove_stale(&self, id: &str, before_ms: i64) -> Result<bool> {
        let id = id.to_string();
        self.writing(move |at| {
            if mtime_ms(&at.upload(&id)).is_none_or(|touched| touched >= before_ms) {
                return Ok(false);
            }
            at.remove(&id)
        })
        .await
    }

    async fn list(&self) -> Result<Vec<Stored>> {
        let dir = self.dir.clone();
        blocking("photo store", move || {
            let mut found = Vec::new();
            for folder in fs::read_dir(&dir)? {
                let folder = folder?;
                let name = folder.file_name();
                if name == "keys" || !folder.file_type()?.is_dir() {
                    continue;
                }
                let uploads = name == "uploads";
                let inner: Vec<PathBuf> = if uploads {
                    fs::read_dir(folder.path())?
                        .map(|e| e.map(|e| e.path()))
                        .collect::<std::io::Result<_>>()?
                } else {
                    vec![folder.path()]
                };
                for folder in inner {
                    if !folder.is_dir() {
                        continue;
                    }
                    for file in fs::read_dir(&folder)? {
                        let file = file?;
                        let name = file.file_name().to_string_lossy().into_owned();
                        let path = file.path();
                        if name.starts_with(".tmp-") {
                            // A write a crash cut short: never named, gone.
                            let _ = fs::remove_file(&path);
                        } else if uploads {
                            let touched_ms = mtime_ms(&path).unwrap_or(0);
                            found.push(Stored {
                                id: name,
                                touched_ms,
                            });
                        }
                    }
                }
            }
            Ok(found)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_photo_is_whole_or_absent_and_a_leftover_temp_file_is_swept() {
        let dir = std::env::temp_dir().join(format!("xwn-photos-{}", random_hex(6)));
        let blobs = FileBlobs::open(&dir).unwrap();
        let (id, hash) = ("ab".repeat(32), "ef".repeat(32));
        assert_eq!(blobs.get(&id, false).await.unwrap(), None);
        // A crash between the temp file and its rename: a half file that
        // is never visible under the photo's name.
        let folder = dir.join("photos").join("ef");
        fs::create_dir_all(&folder).unwrap();
        fs::write(folder.join(".tmp-deadbeef"), b"half a pho").unwrap();
        assert_eq!(blobs.get(&id, false).await.unwrap(), None);
        assert!(blobs.list().await.unwrap().is_empty());
        assert!(!folder.join(".tmp-deadbeef").exists(), "swept");

        blobs
            .put(&id, &hash, b"full".to_vec(), b"thumb".to_vec())
            .await
            .unwrap();
        assert_eq!(blobs.get(&id, false).await.unwrap().unwrap(), b"full");
        assert_eq!(blobs.get(&id, true).await.unwrap().unwrap(), b"thumb");
        let mut names: Vec<_> = fs::read_dir(&folder)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let expected = [".jpg", ".refs", ".thumb.jpg"].map(|end| format!("{hash}{end}"));
        assert_eq!(names, expected, "no temp file left");
        assert_eq!(
            blobs
                .touch(&[id.clone(), "cd".repeat(32)], 5_000)
                .await
                .unwrap(),
            vec!["cd".repeat(32)]
        );
        let listed = blobs.list().await.unwrap();
        assert_eq!(
            (listed[0].id.as_str(), listed[0].touched_ms),
            (id.as_str(), 5_000)
        );
        assert!(blobs.delete(&id).await.unwrap());
        assert_eq!(blobs.get(&id, true).await.unwrap(), None);
        assert!(!folder.join(format!("{hash}.jpg")).exists());
        let _ = fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn bytes_go_with_the_last_upload_naming_them() {
        let dir = std::env::temp_dir().join(format!("xwn-photos-{}", random_hex(6)));
        let blobs = FileBlobs::open(&dir).unwrap();
        let (a, b, hash) = ("aa".repeat(32), "bb".repeat(32), "ef".repeat(32));
        for id in [&a, &b] {
            blobs
                .put(id, &hash, b"full".to_vec(), b"thumb".to_vec())
                .await
                .unwrap();
        }
        assert!(blobs.delete(&a).await.unwrap());
        assert!(!blobs.delete(&a).await.unwrap(), "already gone");
        assert_eq!(blobs.get(&a, false).await.unwrap(), None);
        assert_eq!(blobs.get(&b, false).await.unwrap().unwrap(), b"full");
        assert!(blobs.remove_stale(&b, i64::MAX).await.unwrap());
        let content = dir.join("photos").join("ef").join(format!("{hash}.jpg"));
        assert!(!content.exists(), "the last upload took the bytes along");
        let _ = fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn photos_kept_by_content_id_become_uploads_of_that_id() {
        let dir = std::env::temp_dir().join(format!("xwn-photos-{}", random_hex(6)));
        let hash = "ef".repeat(32);
        let folder = dir.join("photos").join("ef");
        fs::create_dir_all(&folder).unwrap();
        fs::write(folder.join(format!("{hash}.jpg")), b"full").unwrap();
        fs::write(folder.join(format!("{hash}.thumb.jpg")), b"thumb").unwrap();
        let blobs = FileBlobs::open(&dir).unwrap();
        assert_eq!(blobs.get(&hash, true).await.unwrap().unwrap(), b"thumb");
        assert_eq!(blobs.list().await.unwrap().len(), 1);
        drop(blobs);
        let blobs = FileBlobs::open(&dir).unwrap();
        assert_eq!(blobs.list().await.unwrap().len(), 1, "adopted once");
        let _ = fs::remove_dir_all(dir);
    }
}
