//! The durable roster: versioned tantivy indexes under `<data_dir>/roster/`,
//! a `CURRENT` pointer switched atomically, and the live [`Snapshot`].
//!
//! A full import builds a new index beside the live one and then switches
//! `CURRENT` with a rename, so a crash at any moment leaves the old or the
//! new roster, never a mix and never nothing. Upserts and removals are
//! single tantivy commits on the live index, which are atomic too. The
//! roster version travels in the commit payload, with the data it versions.

use std::{
    collections::HashMap,
    fs,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{SystemTime, UNIX_EPOCH},
};

use arc_swap::ArcSwap;
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, Term};

use super::table;
use crate::{
    error::{Error, Result},
    metrics::{self, IndexBuild},
    model::Talent,
    reading::lexicon::Lexicon,
    search::{register_tokenizer, Fields, Snapshot},
};

const CURRENT: &str = "CURRENT";
/// Memory for the writer of the live index (single-row changes).
const LIVE_WRITER_BYTES: usize = 32 << 20;
/// Memory of the writer that builds a whole index, shared by its threads
/// (at least 64 MiB each): bounded whatever the machine's core count.
const BUILD_WRITER_BYTES: usize = 384 << 20;

struct Live {
    dir: PathBuf,
    reader: IndexReader,
    writer: IndexWriter,
    fields: Fields,
}

pub struct RosterStore {
    root: PathBuf,
    /// Held while the roster changes: one writer at a time.
    live: Mutex<Live>,
    snapshot: ArcSwap<Snapshot>,
    /// Announces each new roster version.
    versions: tokio::sync::watch::Sender<u64>,
    lexicon: &'static Lexicon,
}

impl std::fmt::Debug for RosterStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RosterStore")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

fn payload(version: u64) -> String {
    format!("{{\"roster_version\":{version}}}")
}

fn version_of(index: &Index) -> Result<u64> {
    let meta = index.load_metas()?;
    let payload = meta.payload.unwrap_or_default();
    let value: serde_json::Value = serde_json::from_str(&payload)
        .map_err(|e| Error::Internal(format!("roster index has no version: {e}")))?;
    value["roster_version"]
        .as_u64()
        .ok_or_else(|| Error::Internal("roster index has no version".into()))
}

fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)?.sync_all()?;
    Ok(())
}

fn storage(context: &str, dir: &Path, e: impl std::fmt::Display) -> Error {
    Error::Storage(format!("{context} {}: {e}", dir.display()))
}

impl RosterStore {
    /// Opens the roster under `data_dir`, or, when there is none yet,
    /// stores `bootstrap()` as version 1.
    pub fn open(
        data_dir: &Path,
        lexicon: &'static Lexicon,
        bootstrap: impl FnOnce() -> Result<Vec<Talent>>,
    ) -> Result<RosterStore> {
        RosterStore::open_with(data_dir, || lexicon, bootstrap)
    }

    /// A store in a fresh `data_dir` holding the CSV roster `csv`, with
    /// the embedded lexicon and divisions (tests).
    #[cfg(test)]
    pub(crate) fn of_csv(data_dir: &Path, csv: &str) -> RosterStore {
        use crate::model::divisions::Divisions;
        let (lex, div) = (Lexicon::embedded(), Divisions::embedded());
        let talents =
            super::parse_roster(super::RosterFormat::Csv, csv.as_bytes(), lex, div).unwrap();
        let _ = fs::remove_dir_all(data_dir);
        RosterStore::open(data_dir, lex, || Ok(talents)).unwrap()
    }

    /// [`RosterStore::open`] with the lexicon made by `lexicon()`, on
    /// another thread while an existing roster's talents are read.
    pub(crate) fn open_with(
        data_dir: &Path,
        lexicon: impl FnOnce() -> &'static Lexicon + Send,
        bootstrap: impl FnOnce() -> Result<Vec<Talent>>,
    ) -> Result<RosterStore> {
        let root = data_dir.join("roster");
        fs::create_dir_all(&root).map_err(|e| storage("cannot create", &root, e))?;
        let current = match fs::read_to_string(root.join(CURRENT)) {
            Ok(name) => Some(root.join(name.trim())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(storage("cannot read", &root.join(CURRENT), e)),
        };
        let (live, snapshot, lexicon) = match current {
            Some(dir) => std::thread::scope(|scope| {
                let lexicon = scope.spawn(lexicon);
                let index = open_index(&dir)?;
                let version = version_of(&index)?;
                let table = read_table(&dir, version);
                let lexicon = lexicon
                    .join()
                    .map_err(|_| Error::Internal("building the lexicon failed".into()))?;
                let live = open_live(dir, index)?;
                let snapshot = load_snapshot(&live, version, table)?;
                Ok::<_, Error>((live, snapshot, lexicon))
            })?,
            None => {
                let lexicon = lexicon();
                let talents = bootstrap()?;
                let started = std::time::Instant::now();
                let dir = build(&root, &talents, 1, lexicon)?;
                metrics::index_built(IndexBuild::Full, started.elapsed());
                switch_current(&root, &dir)?;
                let live = open_live(dir.clone(), open_index(&dir)?)?;
                let snapshot = fresh_snapshot(&live, talents, 1);
                (live, snapshot, lexicon)
            }
        };
        remove_stale(&root, &live.dir);
        metrics::roster_published(snapshot.version(), snapshot.len());
        let (versions, _) = tokio::sync::watch::channel(snapshot.version());
        Ok(RosterStore {
            root,
            live: Mutex::new(live),
            snapshot: ArcSwap::from_pointee(snapshot),
            versions,
            lexicon,
        })
    }

    /// The roster as queries see it now.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// Receives every new roster version.
    pub(crate) fn versions(&self) -> tokio::sync::watch::Receiver<u64> {
        self.versions.subscribe()
    }

    fn publish(&self, snapshot: Snapshot) {
        let version = snapshot.version();
        metrics::roster_published(version, snapshot.len());
        self.snapshot.store(Arc::new(snapshot));
        self.versions.send_replace(version);
    }

    /// Replaces the whole roster; returns the new version. Blocking.
    pub(crate) fn replace(&self, talents: Vec<Talent>) -> Result<u64> {
        self.replace_at(talents, None)
    }

    /// Replaces the whole roster as `version` (default: the next one).
    pub(crate) fn replace_at(&self, talents: Vec<Talent>, version: Option<u64>) -> Result<u64> {
        let mut live = self
            .live
            .lock()
            .map_err(|_| Error::Internal("roster lock poisoned".into()))?;
        let version = version.unwrap_or(self.snapshot().version() + 1);
        let started = std::time::Instant::now();
        let dir = build(&self.root, &talents, version, self.lexicon)?;
        metrics::index_built(IndexBuild::Full, started.elapsed());
        switch_current(&self.root, &dir)?;
        let new_live = open_live(dir.clone(), open_index(&dir)?)?;
        let snapshot = fresh_snapshot(&new_live, talents, version);
        let old = std::mem::replace(&mut *live, new_live);
        self.publish(snapshot);
        drop(old);
        remove_stale(&self.root, &live.dir);
        Ok(version)
    }

    /// Adds or replaces talents by id in one commit; returns the new version.
    pub fn upsert(&self, talents: Vec<Talent>) -> Result<u64> {
        self.upsert_at(talents, None)
    }

    /// Upserts as `version` (default: the next one).
    pub(crate) fn upsert_at(&self, talents: Vec<Talent>, version: Option<u64>) -> Result<u64> {
        self.change(version, |live, table, current, lexicon| {
            let mut added: HashMap<String, usize> = HashMap::new();
            for talent in talents {
                live.writer
                    .delete_term(Term::from_field_text(live.fields.id, &talent.id));
                let old = added
                    .get(&talent.id)
                    .copied()
                    .or_else(|| current.ord(&talent.id));
                if let Some(ord) = old {
                    table[ord] = None;
                }
                let ord = table.len();
                live.writer
                    .add_document(live.fields.document(&talent, ord as u64, lexicon))?;
                added.insert(talent.id.clone(), ord);
                table.push(Some(Arc::new(talent)));
            }
            Ok(())
        })
    }

    /// Removes talents by id in one commit. Returns the ids that were not
    /// there and the new version (unchanged when nothing was removed).
    pub(crate) fn remove(&self, ids: &[String]) -> Result<(Vec<String>, u64)> {
        self.remove_at(ids, None)
    }

    /// Removes as `version`; with a version given, the version is taken
    /// even when nothing was there to remove.
    pub(crate) fn remove_at(
        &self,
        ids: &[String],
        version: Option<u64>,
    ) -> Result<(Vec<String>, u64)> {
        let snapshot = self.snapshot();
        let not_found = snapshot.missing(ids);
        if not_found.len() == ids.len() && version.is_none() {
            return Ok((not_found, snapshot.version()));
        }
        let version = self.change(version, |live, table, current, _| {
            for id in ids {
                live.writer
                    .delete_term(Term::from_field_text(live.fields.id, id));
                if let Some(ord) = current.ord(id) {
                    table[ord] = None;
                }
            }
            Ok(())
        })?;
        Ok((not_found, version))
    }

    fn change(
        &self,
        version: Option<u64>,
        apply: impl FnOnce(&mut Live, &mut Vec<Option<Arc<Talent>>>, &Snapshot, &Lexicon) -> Result<()>,
    ) -> Result<u64> {
        let mut live = self
            .live
            .lock()
            .map_err(|_| Error::Internal("roster lock poisoned".into()))?;
        let started = std::time::Instant::now();
        let current = self.snapshot();
        let version = version.unwrap_or(current.version() + 1);
        let mut table = current.table().to_vec();
        if let Err(e) = apply(&mut live, &mut table, &current, self.lexicon) {
            live.writer.rollback()?;
            return Err(e);
        }
        let mut prepared = live.writer.prepare_commit()?;
        prepared.set_payload(&payload(version));
        if let Err(e) = prepared.commit() {
            live.writer.rollback()?;
            return Err(e.into());
        }
        live.reader.reload()?;
        metrics::index_built(IndexBuild::Change, started.elapsed());
        save_table(&live.dir, version, &table);
        let snapshot = Snapshot::new(version, live.reader.searcher(), live.fields, table);
        self.publish(snapshot);
        Ok(version)
    }
}

/// The talent table file of `dir` at `version`, if there is a sound one.
fn read_table(dir: &Path, version: u64) -> Option<table::Table> {
    match table::read(dir, version) {
        Ok(Some(table)) => return Some(table),
        Ok(None) => tracing::info!(
            dir = %dir.display(),
            "no talent table of this roster version: reading the stored talents"
        ),
        Err(e) => tracing::warn!(
            dir = %dir.display(),
            error = %e,
            "cannot read the talent table: reading the stored talents"
        ),
    }
    None
}

/// The snapshot of the live index at `version`: from its talent `table`
/// when it holds as many talents as the index, else from the index's stored
/// documents, after which the table file is written for the next start.
fn load_snapshot(live: &Live, version: u64, table: Option<table::Table>) -> Result<Snapshot> {
    let searcher = live.reader.searcher();
    if let Some(table) = table {
        if table.iter().flatten().count() as u64 == searcher.num_docs() {
            return Ok(Snapshot::new(version, searcher, live.fields, table));
        }
        tracing::warn!(dir = %live.dir.display(), "the talent table disagrees with the index: reading the stored talents");
    }
    let snapshot = Snapshot::load(&live.reader, live.fields, version)?;
    save_table(&live.dir, version, snapshot.table());
    Ok(snapshot)
}

/// Writes the talent table file of `version`; a failure only costs the
/// next start its speed.
fn save_table(dir: &Path, version: u64, table: &[Option<Arc<Talent>>]) {
    if let Err(e) = table::write(dir, version, table.len(), |o| table[o].as_deref()) {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot write the talent table");
    }
}

fn open_index(dir: &Path) -> Result<Index> {
    Index::open_in_dir(dir).map_err(|e| storage("cannot open the roster index", dir, e))
}

/// The live index of `dir`, already opened as `index`.
fn open_live(dir: PathBuf, index: Index) -> Result<Live> {
    register_tokenizer(&index);
    let fields = Fields::from_schema(&index.schema())?;
    let reader = index
        .reader_builder()
        .reload_policy(ReloadPolicy::Manual)
        .try_into()?;
    let writer = index.writer_with_num_threads(1, LIVE_WRITER_BYTES)?;
    Ok(Live {
        dir,
        reader,
        writer,
        fields,
    })
}

fn fresh_snapshot(live: &Live, talents: Vec<Talent>, version: u64) -> Snapshot {
    let table = talents.into_iter().map(|t| Some(Arc::new(t))).collect();
    Snapshot::new(version, live.reader.searcher(), live.fields, table)
}

/// Builds a complete index in a fresh directory under `root` and returns it.
fn build(root: &Path, talents: &[Talent], version: u64, lexicon: &Lexicon) -> Result<PathBuf> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let tmp = root.join(format!("tmp-{version}-{nanos}"));
    fs::create_dir_all(&tmp).map_err(|e| storage("cannot create", &tmp, e))?;
    let result = (|| -> Result<()> {
        let (schema, fields) = Fields::schema();
        let index = Index::create_in_dir(&tmp, schema)?;
        register_tokenizer(&index);
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(4);
        let threads = if talents.len() < 50_000 { 1 } else { threads };
        let heap = BUILD_WRITER_BYTES.max(threads * (64 << 20));
        let mut writer: IndexWriter = index.writer_with_num_threads(threads, heap)?;
        for (ord, talent) in talents.iter().enumerate() {
            writer.add_document(fields.document(talent, ord as u64, lexicon))?;
        }
        let mut prepared = writer.prepare_commit()?;
        prepared.set_payload(&payload(version));
        prepared.commit()?;
        writer.wait_merging_threads()?;
        table::write(&tmp, version, talents.len(), |o| talents.get(o))?;
        Ok(())
    })();
    if let Err(e) = result {
        // tantivy's worker threads lose the io::Error behind a full disk; a
        // small write, before the partial build is removed, tells whether
        // that was the cause.
        let cause = probe_space(root);
        let _ = fs::remove_dir_all(&tmp);
        return Err(match cause {
            Some(io) => storage("cannot build the new roster index under", root, io),
            None => e,
        });
    }
    let dir = root.join(format!("v{version:020}-{nanos}"));
    fs::rename(&tmp, &dir).map_err(|e| storage("cannot rename", &tmp, e))?;
    sync_dir(root)?;
    Ok(dir)
}

/// Writes and removes 1 MiB under `dir`; the error if that fails.
fn probe_space(dir: &Path) -> Option<std::io::Error> {
    let probe = dir.join(".space-probe");
    let result =
        fs::write(&probe, vec![0u8; 1 << 20]).and_then(|()| fs::File::open(&probe)?.sync_all());
    let _ = fs::remove_file(&probe);
    result.err()
}

/// Points `CURRENT` at `dir`: write, sync, rename, sync.
fn switch_current(root: &Path, dir: &Path) -> Result<()> {
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::Internal("bad index dir".into()))?;
    let tmp = root.join("CURRENT.tmp");
    {
        use std::io::Write;
        let mut f = fs::File::create(&tmp).map_err(|e| storage("cannot write", &tmp, e))?;
        f.write_all(name.as_bytes())
            .map_err(|e| storage("cannot write", &tmp, e))?;
        f.sync_all().map_err(|e| storage("cannot sync", &tmp, e))?;
    }
    fs::rename(&tmp, root.join(CURRENT))
        .map_err(|e| storage("cannot switch", &root.join(CURRENT), e))?;
    sync_dir(root)
}

/// Removes every index directory but the live one (old versions, builds a
/// crash interrupted). Failures only cost disk space.
fn remove_stale(root: &Path, live: &Path) {
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if path != live && path.is_dir() && (name.starts_with('v') || name.starts_with("tmp-")) {
            if let Err(e) = fs::remove_dir_all(&path) {
                tracing::warn!(dir = %path.display(), error = %e, "could not remove a stale roster index");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{model::divisions::Divisions, roster};

    fn talents(csv: &str) -> Vec<Talent> {
        let header = roster::COLUMNS.join(",");
        roster::parse_roster(
            roster::RosterFormat::Csv,
            format!("{header}\n{csv}").as_bytes(),
            Lexicon::embedded(),
            Divisions::embedded(),
        )
        .unwrap()
    }

    #[test]
    fn bootstraps_replaces_upserts_and_reopens() {
        let dir = tempdir();
        let lex = Lexicon::embedded();
        let store = RosterStore::open(&dir, lex, || {
            Ok(talents("a,甲,,village,,苹果,,610527106202,,,,\n"))
        })
        .unwrap();
        assert_eq!((store.snapshot().version(), store.snapshot().len()), (1, 1));
        let v = store
            .replace(talents(
                "b,乙,,village,,梨,,610527106202,,,,\nc,丙,,city,,小麦,,610500000000,,,,\n",
            ))
            .unwrap();
        assert_eq!(v, 2);
        assert!(store.snapshot().get("a").is_none());
        let v = store
            .upsert(talents(
                "b,乙二,,village,,梨,,610527106202,,,,\nd,丁,,village,,猪,,610527106202,,,,\n",
            ))
            .unwrap();
        assert_eq!(v, 3);
        assert_eq!(store.snapshot().get("b").unwrap().name, "乙二");
        let (missing, v) = store.remove(&["c".into(), "zz".into()]).unwrap();
        assert_eq!((missing, v), (vec!["zz".to_string()], 4));
        drop(store);

        let store = RosterStore::open(&dir, lex, || panic!("must not bootstrap again")).unwrap();
        let snap = store.snapshot();
        assert_eq!(snap.version(), 4);
        let mut ids: Vec<&str> = snap.talents().map(|t| t.id.as_str()).collect();
        ids.sort();
        assert_eq!(ids, ["b", "d"]);
        assert_eq!(snap.get("b").unwrap().name, "乙二");
        assert_eq!(snap.indexed_docs(), 2);
        // Exactly one index directory is left.
        let dirs = fs::read_dir(dir.join("roster"))
            .unwrap()
            .flatten()
            .filter(|e| e.path().is_dir())
            .count();
        assert_eq!(dirs, 1);
        fs::remove_dir_all(&dir).unwrap();
    }

    /// The live index directory of a data dir.
    fn live_dir(data: &Path) -> PathBuf {
        let root = data.join("roster");
        root.join(fs::read_to_string(root.join(CURRENT)).unwrap().trim())
    }

    #[test]
    fn a_missing_or_damaged_talent_table_costs_speed_not_talents() {
        let dir = tempdir();
        let lex = Lexicon::embedded();
        let store = RosterStore::open(&dir, lex, || {
            Ok(talents(
                "a,甲,,village,,苹果,,610527106202,,,,\nb,乙,,village,,梨,,610527106202,,,,\n",
            ))
        })
        .unwrap();
        store
            .upsert(talents("c,丙,,city,,小麦,,610500000000,,,,\n"))
            .unwrap();
        store.remove(&["a".into()]).unwrap();
        let want: Vec<Option<Arc<Talent>>> = store.snapshot().table().to_vec();
        drop(store);
        let table = live_dir(&dir).join(roster::table::FILE);
        // Written at the last commit, with the removal's gap.
        assert_eq!(
            roster::table::read(&live_dir(&dir), 3).unwrap(),
            Some(want.clone())
        );
        for damage in [None, Some(b"not a table".to_vec())] {
            match damage {
                None => fs::remove_file(&table).unwrap(),
                Some(bytes) => fs::write(&table, bytes).unwrap(),
            }
            let store = RosterStore::open(&dir, lex, || panic!("must not bootstrap")).unwrap();
            let snap = store.snapshot();
            assert_eq!((snap.version(), snap.table()), (3, &want[..]));
            assert!(snap.get("c").is_some() && snap.get("a").is_none());
            drop(store);
            // Read from the stored documents, then written back for next time.
            assert_eq!(
                roster::table::read(&live_dir(&dir), 3).unwrap(),
                Some(want.clone())
            );
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    fn tempdir() -> PathBuf {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!("xwn-store-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        dir
    }
}
