//! Roster changes as admins make them: straight into the local index, or,
//! with replicas, through a shared roster log ([`RosterLog`]) that every
//! replica follows, rebuilding and swapping its own index so that
//! `roster_version` agrees everywhere.
//!
//! A change is validated whole before it is appended (a bad file never
//! reaches the log); the log numbers it with the next roster version; each
//! replica applies the log in order, at exactly those versions.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use tokio::sync::watch;

use crate::{
    error::{blocking, Error, Result},
    model::Talent,
    roster::admin::RosterAdmin,
    roster::{RawRow, RosterFormat},
};

/// One entry of the roster log.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RosterOp {
    /// A whole file, as uploaded: the new roster.
    Import {
        format: RosterFormat,
        data: Vec<u8>,
    },
    Upsert(Vec<Talent>),
    Remove(Vec<String>),
}

#[async_trait]
pub(crate) trait RosterLog: Send + Sync + 'static {
    /// Appends `op` as the next version and returns it; with
    /// `only_if_empty`, appends nothing (None) when the log has entries.
    async fn append(&self, op: &RosterOp, only_if_empty: bool) -> Result<Option<u64>>;
    /// The first entry after `version`.
    async fn next_after(&self, version: u64) -> Result<Option<(u64, RosterOp)>>;
    /// The latest import's version and the latest version (0 when none).
    async fn bounds(&self) -> Result<(u64, u64)>;
    /// Ticks when the log may have grown.
    fn notifications(&self) -> watch::Receiver<u64>;
}

/// Admin-side roster changes.
pub(crate) struct Roster {
    admin: Arc<RosterAdmin>,
    log: Option<Arc<dyn RosterLog>>,
    /// One replay at a time.
    replay: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Roster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Roster")
            .field("shared", &self.log.is_some())
            .finish_non_exhaustive()
    }
}

impl Roster {
    /// Changes go straight into this process's index.
    pub(crate) fn local(admin: Arc<RosterAdmin>) -> Arc<Roster> {
        Arc::new(Roster {
            admin,
            log: None,
            replay: tokio::sync::Mutex::new(()),
        })
    }

    /// Changes go through `log`. Seeds an empty log with `bootstrap` (the
    /// demo roster file), brings the local index to the log's latest
    /// version, then follows the log in the background.
    pub(crate) async fn shared(
        admin: Arc<RosterAdmin>,
        log: Arc<dyn RosterLog>,
        bootstrap: (RosterFormat, Vec<u8>),
    ) -> Result<Arc<Roster>> {
        let (format, data) = bootstrap;
        log.append(&RosterOp::Import { format, data }, true).await?;
        let roster = Arc::new(Roster {
            admin,
            log: Some(log.clone()),
            replay: tokio::sync::Mutex::new(()),
        });
        roster.start().await?;
        tokio::spawn(follow(Arc::downgrade(&roster), log.notifications()));
        Ok(roster)
    }

    fn version(&self) -> u64 {
        self.admin.snapshot().version()
    }

    /// Rebuilds from the latest import unless the local index already sits
    /// between it and the log's end (then only the rest is replayed).
    async fn start(&self) -> Result<()> {
        let log = self.log.as_ref().expect("shared");
        let (import, last) = log.bounds().await?;
        let local = self.version();
        if local < import || local > last {
            let _guard = self.replay.lock().await;
            let Some((version, op)) = log.next_after(import - 1).await? else {
                return Err(Error::Internal("the roster log lost its import".into()));
            };
            tracing::info!(
                local,
                version,
                "rebuilding the roster index from the shared log"
            );
            self.apply(version, op).await?;
        }
        self.catch_up().await
    }

    /// Applies every log entry after the local version, in order.
    pub(crate) async fn catch_up(&self) -> Result<()> {
        let Some(log) = &self.log else { return Ok(()) };
        let _guard = self.replay.lock().await;
        while let Some((version, op)) = log.next_after(self.version()).await? {
            self.apply(version, op).await?;
        }
        Ok(())
    }

    async fn apply(&self, version: u64, op: RosterOp) -> Result<()> {
        let admin = self.admin.clone();
        blocking("roster", move || {
            let store = admin.roster();
            match op {
                RosterOp::Import { format, data } => {
                    let talents = admin.parse_roster(format, &data)?;
                    store.replace_at(talents, Some(version))?;
                }
                RosterOp::Upsert(talents) => {
                    store.upsert_at(talents, Some(version))?;
                }
                RosterOp::Remove(ids) => {
                    store.remove_at(&ids, Some(version))?;
                }
            }
            Ok(())
        })
        .await?;
        tracing::info!(roster_version = version, "roster version applied");
        Ok(())
    }

    /// Appends a validated change and waits until it is applied here.
    async fn append(&self, log: &Arc<dyn RosterLog>, op: RosterOp) -> Result<u64> {
        let version = log
            .append(&op, false)
            .await?
            .ok_or_else(|| Error::Internal("the roster log refused an entry".into()))?;
        self.catch_up().await?;
        Ok(version)
    }

    /// Validates and stores a whole roster file as the new roster; returns
    /// (talents accepted, roster version).
    pub(crate) async fn import(&self, format: RosterFormat, data: Vec<u8>) -> Result<(u64, u64)> {
        let admin = self.admin.clone();
        let Some(log) = &self.log else {
            return blocking("roster", move || admin.import_roster(format, &data)).await;
        };
        let (accepted, data) = blocking("roster", move || {
            let n = admin.parse_roster(format, &data)?.len() as u64;
            Ok((n, data))
        })
        .await?;
        let version = self.append(log, RosterOp::Import { format, data }).await?;
        Ok((accepted, version))
    }

    /// Adds or replaces talents; returns (how many, roster version).
    pub(crate) async fn upsert(&self, rows: Vec<RawRow>) -> Result<(u64, u64)> {
        let admin = self.admin.clone();
        let Some(log) = &self.log else {
            return blocking("roster", move || admin.upsert_talents(rows)).await;
        };
        let talents = blocking("roster", move || admin.validate_rows(rows)).await?;
        let n = talents.len() as u64;
        let version = self.append(log, RosterOp::Upsert(talents)).await?;
        Ok((n, version))
    }

    /// Removes talents by id; returns (removed, not found, roster version).
    pub(crate) async fn remove(&self, ids: Vec<String>) -> Result<(u64, Vec<String>, u64)> {
        let admin = self.admin.clone();
        let Some(log) = &self.log else {
            return blocking("roster", move || admin.remove_talents(&ids)).await;
        };
        let unique = RosterAdmin::unique_ids(&ids)?;
        let snapshot = admin.snapshot();
        let not_found = snapshot.missing(&unique);
        if not_found.len() == unique.len() {
            return Ok((0, not_found, snapshot.version()));
        }
        let removed = (unique.len() - not_found.len()) as u64;
        let version = self.append(log, RosterOp::Remove(unique)).await?;
        Ok((removed, not_found, version))
    }
}

/// Applies the log as it grows: on each notification, and every few
/// seconds in case one was lost.
async fn follow(weak: std::sync::Weak<Roster>, mut notifications: watch::Receiver<u64>) {
    loop {
        tokio::select! {
            changed = notifications.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
        let Some(roster) = weak.upgrade() else { return };
        if let Err(e) = roster.catch_up().await {
            tracing::error!(error = %e, "could not apply the shared roster log");
        }
    }
}
