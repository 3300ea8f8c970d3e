//! Group commit. A decision is applied to the dispatcher's in-memory state
//! under its lock and queued here in the order decisions are made; one task
//! per dispatcher commits what queued while the previous commit was in
//! flight, in one transaction with one flush, then (under the lock) pushes
//! each change to streams and answers each decision. A decision is
//! acknowledged only once the commit holding it is durable.
//!
//! A commit that fails (or finds the change log moved, or an idempotency
//! key taken) leaves the in-memory changes of its batch, and of every
//! decision queued after it (which were made on top of them), unconfirmed:
//! none was pushed or acknowledged. Their tickets are marked dirty and
//! reloaded from the store before the next decision; their callers get the
//! error (the failed batch) or decide again (the rest).

use std::{
    sync::{Arc, Weak},
    time::Instant,
};

use tokio::sync::{mpsc, oneshot};

use super::{dispatcher::Dispatcher, Ticket};
use crate::{
    error::Error,
    metrics,
    store::{Write, Written},
};

/// The most decisions one commit holds.
const MAX_BATCH: usize = 1024;

/// A decision applied in memory, waiting for its commit.
pub(super) struct Pending {
    /// The ticket's row before the decision (None: a new ticket).
    pub(super) old: Option<Ticket>,
    pub(super) write: Write,
    /// The change log's head the state reflected when deciding.
    pub(super) cursor: u64,
    pub(super) done: oneshot::Sender<Outcome>,
}

/// How a decision's commit ended.
#[derive(Debug)]
pub(super) enum Outcome {
    /// Durable, pushed to streams.
    Committed,
    /// Not written: decide again (the state it was made on was not).
    Retry,
    /// Not written, or not known to be: the commit failed.
    Failed(Error),
}

/// A copy of a commit's error for each decision it held.
fn copy(e: &Error) -> Error {
    match e {
        Error::Storage(m) => Error::Storage(m.clone()),
        Error::Unavailable(m) => Error::Unavailable(m.clone()),
        other => Error::Internal(other.to_string()),
    }
}

/// Commits batches until the dispatcher is gone. A batch is what queued
/// since the last commit, cut where the decisions' change-log head
/// changes (the state caught up with another replica in between: what came
/// before must commit against the head it was decided at).
pub(super) async fn committer(weak: Weak<Dispatcher>, mut queue: mpsc::UnboundedReceiver<Pending>) {
    // The head after this task's last commit: decisions made before that
    // commit completed saw its changes in memory, so they commit against it.
    let mut committed_head = 0;
    let mut next: Option<Pending> = None;
    loop {
        let first = match next.take() {
            Some(p) => p,
            None => match queue.recv().await {
                Some(p) => p,
                None => return,
            },
        };
        let cursor = first.cursor;
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(p) if p.cursor == cursor => batch.push(p),
                Ok(p) => {
                    next = Some(p);
                    break;
                }
                Err(_) => break,
            }
        }
        let Some(d) = weak.upgrade() else { return };
        let mut writes = Vec::with_capacity(batch.len());
        let mut waiters = Vec::with_capacity(batch.len());
        for p in batch {
            writes.push(p.write);
            waiters.push((p.old, p.done));
        }
        let writes: Arc<[Write]> = writes.into();
        let started = Instant::now();
        let written = d
            .store
            .commit(writes.clone(), committed_head.max(cursor))
            .await;
        metrics::store_committed(writes.len(), started.elapsed());
        let mut state = d.state.lock().await;
        match written {
            Ok(Written::Done { head }) => {
                committed_head = head;
                state.committed(head);
                for (write, (old, done)) in writes.iter().zip(waiters) {
                    state.confirm(old.as_ref(), write);
                    let _ = done.send(Outcome::Committed);
                }
            }
            refused => {
                // Refused (the log moved, a key was taken) or failed: the
                // next submission catches up with the store first.
                state.behind = true;
                let error = match refused {
                    Err(e) => {
                        tracing::warn!(error = %e, decisions = writes.len(), "a group commit failed");
                        Some(e)
                    }
                    Ok(_) => None,
                };
                for (write, (_, done)) in writes.iter().zip(waiters) {
                    state.abandon(write);
                    let outcome = match &error {
                        Some(e) => Outcome::Failed(copy(e)),
                        None => Outcome::Retry,
                    };
                    let _ = done.send(outcome);
                }
                // Everything queued meanwhile was decided on top of this batch.
                while let Some(p) = next.take().or_else(|| queue.try_recv().ok()) {
                    state.abandon(&p.write);
                    let _ = p.done.send(Outcome::Retry);
                }
            }
        }
        drop(state);
        d.settled.notify_waiters();
    }
}
