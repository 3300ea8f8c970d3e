//! The ticket store behind a trait: tickets and their events, responder
//! presence, liaisons and the token-signing key. SQLite is the embedded
//! implementation; the trait leaves room for a shared database.

use async_trait::async_trait;

use super::{liaison::Liaison, Availability, Event, Ticket, TicketState};
use crate::error::Result;

/// Filters and paging of an admin ticket listing.
#[derive(Debug, Clone, Default)]
pub struct TicketFilter {
    pub state: Option<TicketState>,
    pub assignee: Option<String>,
    /// `created_at_ms:id` of the last ticket of the previous page.
    pub after: Option<(i64, String)>,
    pub limit: usize,
}

#[async_trait]
pub trait TicketStore: Send + Sync + 'static {
    /// Commits a new ticket with its first events. When its idempotency key
    /// is already taken nothing is written and the existing ticket's id is
    /// returned.
    async fn insert(&self, ticket: &Ticket, events: &[Event]) -> Result<Option<String>>;
    /// Commits a ticket's new row and the events that led to it, together.
    async fn update(&self, ticket: &Ticket, events: &[Event]) -> Result<()>;
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
    /// Replaces every liaison at once.
    async fn replace_liaisons(&self, liaisons: &[Liaison]) -> Result<()>;
    async fn liaisons(&self) -> Result<Vec<Liaison>>;
    /// The key tokens are signed with: made once, then kept.
    async fn signing_key(&self) -> Result<Vec<u8>>;
}
