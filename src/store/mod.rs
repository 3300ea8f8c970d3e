//! The ticket store behind a trait: tickets and their events, responder
//! presence, liaisons and the token-signing key. SQLite is the embedded
//! implementation; PostgreSQL is the one several replicas share.
//!
//! Replicas keep open tickets in memory and follow a shared change log: a
//! ticket write commits only when the log's head is still the one its
//! replica last read (compare and swap), otherwise the replica catches up
//! and decides again. The SQLite store has one writer and an empty log.
//!
//! The dispatcher writes in batches ([`TicketStore::commit`]): the
//! decisions made while one commit was in flight go out in the next one,
//! one transaction and one flush for all of them (group commit).

use std::sync::Arc;

use async_trait::async_trait;

mod codec;
pub mod knowledge;
pub mod outbox;
pub mod postgres;
pub mod sqlite;

pub use knowledge::KnowledgeStore;
pub use outbox::{Note, Outbox};

use crate::error::Result;
use crate::tickets::{liaison::Liaison, Availability, Event, Ticket, TicketState};

/// Filters and paging of an admin ticket listing.
#[derive(Debug, Clone, Default)]
pub struct TicketFilter {
    pub state: Option<TicketState>,
    pub assignee: Option<String>,
    /// `created_at_ms:id` of the last ticket of the previous page.
    pub after: Option<(i64, String)>,
    pub limit: usize,
}

/// What a ticket write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// Committed; the change log's head is now `head`.
    Done { head: u64 },
    /// Nothing written: the idempotency key belongs to this ticket.
    Duplicate(String),
    /// Nothing written: another replica changed something since `head`.
    Stale,
}

/// One ticket write of a batch: the ticket's new row, the events that led
/// to it and the notifications they make.
#[derive(Debug, Clone)]
pub struct Write {
    pub ticket: Ticket,
    pub events: Vec<Event>,
    pub notes: Vec<Note>,
    /// A new ticket (its idempotency key, if any, must not be taken).
    pub new: bool,
}

/// One entry of the shared change log.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Change {
    Ticket(String),
    Presence(String),
    Liaisons,
}

#[async_trait]
pub trait TicketStore: Send + Sync + 'static {
    /// Commits `writes`, in order, in one transaction (all or none), if
    /// the change log's head is still `head`: each ticket's row, its events
    /// and the notifications they make (the outbox). A new ticket whose
    /// idempotency key is already taken writes nothing at all
    /// ([`Written::Duplicate`] names the ticket holding the key). Shared,
    /// not copied, with a store that writes on another thread.
    async fn commit(&self, writes: Arc<[Write]>, head: u64) -> Result<Written>;
    /// Commits a new ticket with its first events and their notifications
    /// ([`TicketStore::commit`] of one write).
    async fn insert(
        &self,
        ticket: &Ticket,
        events: &[Event],
        notes: &[Note],
        head: u64,
    ) -> Result<Written> {
        let write = Write {
            ticket: ticket.clone(),
            events: events.to_vec(),
            notes: notes.to_vec(),
            new: true,
        };
        self.commit(Arc::from([write]), head).await
    }
    /// Commits a ticket's new row, the events that led to it and their
    /// notifications ([`TicketStore::commit`] of one write).
    async fn update(
        &self,
        ticket: &Ticket,
        events: &[Event],
        notes: &[Note],
        head: u64,
    ) -> Result<Written> {
        let write = Write {
            ticket: ticket.clone(),
            events: events.to_vec(),
            notes: notes.to_vec(),
            new: false,
        };
        self.commit(Arc::from([write]), head).await
    }
    /// Log entries after `cursor`, oldest first, with their numbers.
    async fn changes_since(&self, cursor: u64) -> Result<Vec<(u64, Change)>>;
    /// The number of the last log entry.
    async fn head(&self) -> Result<u64>;
    /// Ticks whenever other replicas may have written (None: nobody else
    /// writes to this store).
    fn notifications(&self) -> Option<tokio::sync::watch::Receiver<u64>>;
    async fn get(&self, id: &str) -> Result<Option<(Ticket, Vec<Event>)>>;
    async fn find_by_idempotency_key(&self, key: &str) -> Result<Option<String>>;
    /// Queued, offered and accepted tickets with their histories, oldest first.
    async fn open_tickets(&self) -> Result<Vec<(Ticket, Vec<Event>)>>;
    /// Tickets newest first.
    async fn list(&self, filter: &TicketFilter) -> Result<Vec<Ticket>>;
    async fn set_availability(
        &self,
        talent_id: &str,
        availability: Availability,
        at_ms: i64,
    ) -> Result<()>;
    async fn availabilities(&self) -> Result<Vec<(String, Availability)>>;
    async fn availability(&self, talent_id: &str) -> Result<Option<Availability>>;
    /// Replaces every liaison at once.
    async fn replace_liaisons(&self, liaisons: &[Liaison]) -> Result<()>;
    async fn liaisons(&self) -> Result<Vec<Liaison>>;
    /// The key tokens are signed with: made once, then kept.
    async fn signing_key(&self) -> Result<Vec<u8>>;
    /// Every event of each ticket that has an event at `from_ms` or later
    /// and before `to_ms`, by ticket and in order: what the responder
    /// figures are tallied from (`tickets::figures`).
    async fn events_between(&self, from_ms: i64, to_ms: i64) -> Result<Vec<Event>>;
    /// Answers when the store can be read now (the readiness probe).
    async fn ping(&self) -> Result<()>;
    /// Every photo id some ticket names (what the photo sweep keeps).
    async fn photo_ids(&self) -> Result<Vec<String>>;
}

/// The ids of the `photos` column's JSON arrays.
pub(crate) fn photo_ids_of(columns: impl IntoIterator<Item = String>) -> Vec<String> {
    columns
        .into_iter()
        .flat_map(|json| serde_json::from_str::<Vec<String>>(&json).unwrap_or_default())
        .collect()
}
