//! The notification outbox as both stores keep it: the rows a ticket change
//! writes in its own transaction ([`Note`]), and what the delivery worker
//! (`notify`) and the admin listing do with them ([`Outbox`]).
//!
//! One row per notification and endpoint that wants its type: endpoints
//! are resolved when the change commits, so each endpoint's progress,
//! attempts and order are its own row's. A row is `pending` until a 2xx
//! (`delivered`) or its deadline passes (`failed`); a worker leases the
//! rows it sends (`lease_owner`, `lease_until_ms`), and a row of a ticket
//! waits while an earlier row of the same ticket and endpoint is pending.

use async_trait::async_trait;

use crate::error::Result;

/// A notification written with the ticket change it tells of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// `msg_…`: the `webhook-id` of every attempt to every endpoint.
    pub id: String,
    pub ticket_id: String,
    /// Order within the ticket (event seq × 256 + place among the event's).
    pub seq: i64,
    /// One of [`crate::config::NOTIFICATION_TYPES`].
    pub kind: String,
    /// The JSON body as it will be POSTed.
    pub body: String,
    /// The endpoints that want this type.
    pub endpoints: Vec<String>,
    pub created_at_ms: i64,
    /// Retried until then.
    pub deadline_ms: i64,
}

/// Where a delivery row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryState {
    Pending,
    Delivered,
    /// Given up after its deadline.
    Failed,
}

impl DeliveryState {
    pub fn key(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
        }
    }

    pub fn parse(key: &str) -> Option<DeliveryState> {
        [
            DeliveryState::Pending,
            DeliveryState::Delivered,
            DeliveryState::Failed,
        ]
        .into_iter()
        .find(|s| s.key() == key)
    }
}

/// A row leased for one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub id: String,
    pub endpoint: String,
    pub ticket_id: String,
    pub kind: String,
    pub body: String,
    /// Attempts made before this one.
    pub attempts: u32,
    pub deadline_ms: i64,
    /// When the change it tells of was committed (the delivery lag's start).
    pub created_at_ms: i64,
    /// Claimed while another claim was unfinished (its lease expired, or
    /// its process died): the endpoint may get it twice.
    pub took_over: bool,
}

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx answer.
    Delivered { status: u16 },
    /// Another answer or none: tried again at `next_at_ms`.
    Retry {
        status: Option<u16>,
        error: String,
        next_at_ms: i64,
    },
    /// Another answer or none, past the deadline: given up.
    GiveUp { status: Option<u16>, error: String },
    /// 410 Gone: the endpoint is disabled; the row waits, pending, for an
    /// admin to re-enable it.
    Gone,
}

impl Outcome {
    /// The row's new state, next time and finish time.
    pub(crate) fn settle(&self, at_ms: i64) -> (&'static str, i64, Option<i64>) {
        match self {
            Outcome::Delivered { .. } => ("delivered", at_ms, Some(at_ms)),
            Outcome::Retry { next_at_ms, .. } => ("pending", *next_at_ms, None),
            Outcome::GiveUp { .. } => ("failed", at_ms, Some(at_ms)),
            Outcome::Gone => ("pending", at_ms, None),
        }
    }

    /// The status and error the attempt records.
    pub(crate) fn recorded(&self) -> (Option<u16>, &str) {
        match self {
            Outcome::Delivered { status } => (Some(*status), ""),
            Outcome::Retry { status, error, .. } | Outcome::GiveUp { status, error } => {
                (*status, error.as_str())
            }
            Outcome::Gone => (Some(410), "410 Gone: endpoint disabled"),
        }
    }
}

/// A row as the admin listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: String,
    pub endpoint: String,
    pub ticket_id: String,
    pub kind: String,
    pub state: DeliveryState,
    pub attempts: u32,
    pub takeovers: u32,
    pub last_status: Option<u16>,
    pub last_error: String,
    pub created_at_ms: i64,
    pub next_at_ms: i64,
    pub done_at_ms: Option<i64>,
}

/// One attempt, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub at_ms: i64,
    pub status: Option<u16>,
    pub error: String,
    pub owner: String,
    pub took_over: bool,
}

/// An endpoint's rows, counted, and whether a 410 disabled it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointCounts {
    pub name: String,
    pub pending: u64,
    pub delivered: u64,
    pub failed: u64,
    /// Claims that took over an unfinished one (possible duplicates).
    pub takeovers: u64,
    pub disabled_at_ms: Option<i64>,
    pub disabled_reason: String,
}

/// Filters and paging of the admin listing (newest first).
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub state: Option<DeliveryState>,
    pub endpoint: Option<String>,
    /// `created_at_ms`, id and endpoint of the last row of the previous page.
    pub after: Option<(i64, String, String)>,
    pub limit: usize,
}

/// What the delivery worker and the admin calls need of a store.
#[async_trait]
pub trait Outbox: Send + Sync + 'static {
    /// Leases up to `limit` due rows of `endpoints` (enabled ones) to
    /// `owner` until `now_ms + lease_ms`: pending, not leased (or their
    /// lease expired), and first of their ticket's pending rows for their
    /// endpoint.
    async fn claim(
        &self,
        owner: &str,
        endpoints: &[String],
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<Claimed>>;
    /// Records an attempt and its outcome; the row changes only if `owner`
    /// still holds it (false otherwise: another replica took it over).
    async fn finish(
        &self,
        owner: &str,
        claimed: &Claimed,
        outcome: &Outcome,
        at_ms: i64,
    ) -> Result<bool>;
    /// When the next row `claim` could take falls due (rows leased now, of
    /// a disabled endpoint, or behind an earlier pending row of their
    /// ticket are left out: they are not waiting for a time).
    async fn next_due(&self, endpoints: &[String]) -> Result<Option<i64>>;
    async fn deliveries(&self, filter: &DeliveryFilter) -> Result<Vec<Delivery>>;
    /// A row's attempts, oldest first.
    async fn attempts(&self, id: &str, endpoint: &str) -> Result<Vec<Attempt>>;
    /// Counts per endpoint that has rows or was disabled.
    async fn endpoint_counts(&self) -> Result<Vec<EndpointCounts>>;
    /// Re-enables `endpoint` and makes its failed rows (only `id`'s, when
    /// given) pending again, due now, retried until `deadline_ms`. Returns
    /// how many rows it made pending.
    async fn retry(
        &self,
        endpoint: &str,
        id: Option<&str>,
        now_ms: i64,
        deadline_ms: i64,
    ) -> Result<u64>;
    /// Deletes up to `limit` delivered rows finished before `before_ms`,
    /// oldest first, with their attempts; returns how many rows went.
    /// Pending and failed rows are never touched. Safe while another
    /// replica prunes too: each row goes once, and neither waits on rows
    /// the other holds.
    async fn prune_delivered(&self, before_ms: i64, limit: usize) -> Result<u64>;
}
