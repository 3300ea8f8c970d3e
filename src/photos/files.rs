//! Photos in the data directory (the embedded store's side): content
//! addressed, `photos/<first two digits>/<id>.jpg` and `<id>.thumb.jpg`,
//! and an idempotency key's photo in `photos/keys/<SHA-256 of the key>`.
//! Every file is written whole or not at all: a temporary file in the same
//! folder, fsynced, renamed over its name, the folder fsynced; a crash
//! leaves at most a `.tmp-*` file, which no read ever names and the sweep
//! removes.

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
};

use super::{Blobs, Stored};
use crate::{
    error::{blocking, Result},
    tickets::random_hex,
};

/// The photo folder of a data directory.
pub struct FileBlobs {
    dir: PathBuf,
}

impl FileBlobs {
    /// Opens (creating) `<data_dir>/photos`.
    pub fn open(data_dir: &Path) -> Result<FileBlobs> {
        let dir = data_dir.join("photos");
        fs::create_dir_all(dir.join("keys"))?;
        Ok(FileBlobs { dir })
    }

    fn path(&self, id: &str, thumb: bool) -> PathBuf {
        let name = if thumb {
            format!("{id}.thumb.jpg")
        } else {
            format!("{id}.jpg")
        };
        self.dir.join(&id[..2]).join(name)
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

fn mtime_ms(path: &Path) -> Option<i64> {
    let modified = fs::metadata(path).ok()?.modified().ok()?;
    let since = modified.duration_since(std::time::UNIX_EPOCH).ok()?;
    Some(since.as_millis() as i64)
}

#[async_trait::async_trait]
impl Blobs for FileBlobs {
    async fn put(&self, id: &str, full: Vec<u8>, thumb: Vec<u8>) -> Result<()> {
        let (full_path, thumb_path) = (self.path(id, false), self.path(id, true));
        blocking("photo store", move || {
            // The thumbnail first: a photo whose full file exists is whole.
            write_atomically(&thumb_path, &thumb)?;
            write_atomically(&full_path, &full)?;
            Ok(())
        })
        .await
    }

    async fn get(&self, id: &str, thumb: bool) -> Result<Option<Vec<u8>>> {
        let (full, path) = (self.path(id, false), self.path(id, thumb));
        blocking("photo store", move || {
            if !full.exists() {
                return Ok(None);
            }
            read_if_any(&path)
        })
        .await
    }

    async fn delete(&self, id: &str) -> Result<bool> {
        let (full, thumb) = (self.path(id, false), self.path(id, true));
        blocking("photo store", move || {
            let existed = full.exists();
            for path in [full, thumb] {
                match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(existed)
        })
        .await
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
        let paths: Vec<(String, PathBuf)> = ids
            .iter()
            .map(|id| (id.clone(), self.path(id, false)))
            .collect();
        blocking("photo store", move || {
            let mut missing = Vec::new();
            let when = std::time::UNIX_EPOCH + std::time::Duration::from_millis(now_ms as u64);
            for (id, path) in paths {
                match fs::File::options().write(true).open(&path) {
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
        let (full, thumb) = (self.path(id, false), self.path(id, true));
        blocking("photo store", move || {
            if mtime_ms(&full).is_none_or(|touched| touched >= before_ms) {
                return Ok(false);
            }
            fs::remove_file(&full)?;
            let _ = fs::remove_file(&thumb);
            Ok(true)
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
                for file in fs::read_dir(folder.path())? {
                    let file = file?;
                    let name = file.file_name().to_string_lossy().into_owned();
                    let path = file.path();
                    if name.starts_with(".tmp-") {
                        // A write a crash cut short: never named, gone.
                        let _ = fs::remove_file(&path);
                    } else if let Some(id) = name.strip_suffix(".jpg") {
                        if !id.ends_with(".thumb") {
                            let touched_ms = mtime_ms(&path).unwrap_or(0);
                            found.push(Stored {
                                id: id.to_string(),
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
        let id = "ab".repeat(32);
        assert_eq!(blobs.get(&id, false).await.unwrap(), None);
        // A crash between the temp file and its rename: a half file that
        // is never visible under the photo's name.
        let folder = dir.join("photos").join("ab");
        fs::create_dir_all(&folder).unwrap();
        fs::write(folder.join(".tmp-deadbeef"), b"half a pho").unwrap();
        assert_eq!(blobs.get(&id, false).await.unwrap(), None);
        assert!(blobs.list().await.unwrap().is_empty());
        assert!(!folder.join(".tmp-deadbeef").exists(), "swept");

        blobs
            .put(&id, b"full".to_vec(), b"thumb".to_vec())
            .await
            .unwrap();
        assert_eq!(blobs.get(&id, false).await.unwrap().unwrap(), b"full");
        assert_eq!(blobs.get(&id, true).await.unwrap().unwrap(), b"thumb");
        let names: Vec<_> = fs::read_dir(&folder)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "no temp file left: {names:?}");
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
        let _ = fs::remove_dir_all(dir);
    }
}
