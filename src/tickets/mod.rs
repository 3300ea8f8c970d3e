//! Tickets: a farmer's problem as it moves from submission through offers,
//! acceptance and escalation to an answer; the store that keeps them; the
//! dispatcher that routes them; responder tokens; party-member liaisons.

pub mod dispatch;
pub mod liaison;
pub mod token;
pub mod view;

use serde::{Deserialize, Serialize};

use crate::{model::Corps, model::Location, model::Tier};

/// Where a ticket is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketState {
    Queued,
    Offered,
    Accepted,
    Resolved,
    Unroutable,
    Cancelled,
}

impl TicketState {
    pub const ALL: [TicketState; 6] = [
        TicketState::Queued,
        TicketState::Offered,
        TicketState::Accepted,
        TicketState::Resolved,
        TicketState::Unroutable,
        TicketState::Cancelled,
    ];

    pub fn key(self) -> &'static str {
        match self {
            TicketState::Queued => "queued",
            TicketState::Offered => "offered",
            TicketState::Accepted => "accepted",
            TicketState::Resolved => "resolved",
            TicketState::Unroutable => "unroutable",
            TicketState::Cancelled => "cancelled",
        }
    }

    pub fn parse(key: &str) -> Option<TicketState> {
        TicketState::ALL.into_iter().find(|s| s.key() == key)
    }

    /// Still moving: queued, offered or accepted.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            TicketState::Queued | TicketState::Offered | TicketState::Accepted
        )
    }
}

/// What happened to a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Submitted,
    Queued,
    Offered,
    Declined,
    OfferTimedOut,
    Accepted,
    Escalated,
    Resolved,
    Unroutable,
    Cancelled,
    Rerouted,
}

impl EventKind {
    pub const ALL: [EventKind; 11] = [
        EventKind::Submitted,
        EventKind::Queued,
        EventKind::Offered,
        EventKind::Declined,
        EventKind::OfferTimedOut,
        EventKind::Accepted,
        EventKind::Escalated,
        EventKind::Resolved,
        EventKind::Unroutable,
        EventKind::Cancelled,
        EventKind::Rerouted,
    ];

    pub fn key(self) -> &'static str {
        match self {
            EventKind::Submitted => "submitted",
            EventKind::Queued => "queued",
            EventKind::Offered => "offered",
            EventKind::Declined => "declined",
            EventKind::OfferTimedOut => "offer_timed_out",
            EventKind::Accepted => "accepted",
            EventKind::Escalated => "escalated",
            EventKind::Resolved => "resolved",
            EventKind::Unroutable => "unroutable",
            EventKind::Cancelled => "cancelled",
            EventKind::Rerouted => "rerouted",
        }
    }

    pub fn parse(key: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.key() == key)
    }
}

/// A responder's presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Availability {
    Online,
    Away,
    Offline,
}

impl Availability {
    pub fn key(self) -> &'static str {
        match self {
            Availability::Online => "online",
            Availability::Away => "away",
            Availability::Offline => "offline",
        }
    }

    pub fn parse(key: &str) -> Option<Availability> {
        [
            Availability::Online,
            Availability::Away,
            Availability::Offline,
        ]
        .into_iter()
        .find(|a| a.key() == key)
    }
}

/// One change of a ticket, as stored and as streamed.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub ticket_id: String,
    pub seq: u64,
    pub kind: EventKind,
    /// `farmer`, `system`, `admin` or `responder:<talent id>`.
    pub actor: String,
    pub at_ms: i64,
    pub reason: String,
    pub state: TicketState,
    /// The responder the change is about.
    pub talent_id: Option<String>,
    pub tier: Tier,
}

/// A ticket's row.
#[derive(Debug, Clone, PartialEq)]
pub struct Ticket {
    pub id: String,
    pub text: String,
    pub location: Location,
    /// The division the location falls in, when given as a code.
    pub division_code: Option<String>,
    pub subject: Option<String>,
    pub corps: Option<Corps>,
    pub contact: String,
    pub idempotency_key: Option<String>,
    pub state: TicketState,
    pub assignee: Option<String>,
    /// Lowest tier eligible now.
    pub tier: Tier,
    /// Offers made at the current tier without acceptance.
    pub offers_in_tier: u32,
    pub offer_deadline_ms: Option<i64>,
    pub answer: String,
    pub reason: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// Unix time in milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// `n` random bytes as lowercase hex.
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    hex::encode(bytes)
}
