//! Tickets: a farmer's problem as it moves from submission through offers,
//! acceptance and escalation to an answer. The state machine decides each
//! change (`machine`), routing picks the responder (`routing`), the
//! dispatcher commits and applies (`dispatcher`), streams carry the changes
//! (`fanout`), tokens and secrets guard them (`access`, `token`),
//! party-member liaisons watch their villages (`liaison`), and admins read
//! each responder's figures, ratings included (`figures`).

mod access;
mod admin;
mod commit;
pub(crate) mod dispatcher;
mod drain;
mod fanout;
pub(crate) mod figures;
pub mod liaison;
pub(crate) mod machine;
mod routing;
pub(crate) mod token;
pub(crate) mod view;

pub(crate) use access::ACTION_FRAGMENT;
pub(crate) use access::{Asking, Principal};
pub use dispatcher::{Dispatcher, Submission};
pub(crate) use fanout::Push;
pub use machine::DispatchConfig;

use serde::{Deserialize, Serialize};

use crate::{
    matching::Need,
    model::Location,
    model::{ids::TalentId, Corps, Tier},
    reading::lexicon::Lexicon,
    search::tokenizer,
};

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

    pub(crate) fn key(self) -> &'static str {
        match self {
            TicketState::Queued => "queued",
            TicketState::Offered => "offered",
            TicketState::Accepted => "accepted",
            TicketState::Resolved => "resolved",
            TicketState::Unroutable => "unroutable",
            TicketState::Cancelled => "cancelled",
        }
    }

    pub(crate) fn parse(key: &str) -> Option<TicketState> {
        TicketState::ALL.into_iter().find(|s| s.key() == key)
    }

    /// Still moving: queued, offered or accepted.
    pub(crate) fn is_open(self) -> bool {
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
    /// The farmer rated the answer (once, on a resolved ticket).
    Rated,
}

impl EventKind {
    pub const ALL: [EventKind; 12] = [
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
        EventKind::Rated,
    ];

    pub(crate) fn key(self) -> &'static str {
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
            EventKind::Rated => "rated",
        }
    }

    pub(crate) fn parse(key: &str) -> Option<EventKind> {
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
    pub(crate) fn key(self) -> &'static str {
        match self {
            Availability::Online => "online",
            Availability::Away => "away",
            Availability::Offline => "offline",
        }
    }

    pub(crate) fn parse(key: &str) -> Option<Availability> {
        [
            Availability::Online,
            Availability::Away,
            Availability::Offline,
        ]
        .into_iter()
        .find(|a| a.key() == key)
    }
}

/// Who made a change.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Actor {
    Farmer,
    System,
    Admin,
    Responder(TalentId),
}

impl Actor {
    /// Reads the stored spelling back: `farmer`, `system`, `admin` or
    /// `responder:<talent id>`.
    pub(crate) fn parse(text: &str) -> Option<Actor> {
        match text {
            "farmer" => Some(Actor::Farmer),
            "system" => Some(Actor::System),
            "admin" => Some(Actor::Admin),
            _ => text
                .strip_prefix("responder:")
                .map(|id| Actor::Responder(TalentId::new(id))),
        }
    }
}

impl std::fmt::Display for Actor {
    /// The stored and streamed spelling, which [`Actor::parse`] reads.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Actor::Farmer => f.write_str("farmer"),
            Actor::System => f.write_str("system"),
            Actor::Admin => f.write_str("admin"),
            Actor::Responder(id) => write!(f, "responder:{id}"),
        }
    }
}

/// One change of a ticket, as stored and as streamed.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub ticket_id: String,
    pub seq: u64,
    pub kind: EventKind,
    pub actor: Actor,
    pub at_ms: i64,
    pub reason: String,
    pub state: TicketState,
    /// The responder the change is about.
    pub talent_id: Option<String>,
    pub tier: Tier,
    /// The stars of a rating (`Rated` events only).
    pub stars: Option<u8>,
}

/// The farmer's rating of a resolved ticket's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rating {
    /// 1 to 5.
    pub stars: u8,
    /// Optional; empty when the farmer wrote nothing.
    pub comment: String,
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
    /// The words the report was analysed with at submission, which every
    /// re-route ranks with; None for tickets stored before they were kept.
    pub words: Option<Vec<String>>,
    /// The photos the farmer attached (content-addressed ids, `photos`).
    pub photos: Vec<String>,
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
    /// The farmer's rating, once given (resolved tickets only).
    pub rating: Option<Rating>,
}

impl Ticket {
    /// What the ticket needs, as analysed at submission. A ticket stored
    /// before its words were kept takes the search terms of its text. One
    /// with neither subject nor corps is routed only when it went to triage
    /// (a plant or animal problem that named nothing), so it needs triage;
    /// its hint, the corps its symptoms point to, is read again from its
    /// text: the county it was read with then played no part (a county's
    /// prior counts only once something is named).
    pub(crate) fn need(&self, lexicon: &Lexicon) -> Need {
        let subject = self.subject.as_deref().and_then(|s| lexicon.subject_id(s));
        let triage = subject.is_none() && self.corps.is_none();
        Need {
            triage,
            hint: if triage {
                crate::reading::analyzer::analyze(lexicon, &self.text).hint
            } else {
                None
            },
            subject,
            corps: self.corps,
            words: match &self.words {
                Some(words) => words.clone(),
                None => tokenizer::terms(lexicon, &self.text)
                    .into_iter()
                    .map(|(_, _, w)| w)
                    .collect(),
            },
        }
    }

    /// The responder an open offer or acceptance belongs to.
    pub(crate) fn holder(&self) -> Option<&str> {
        match self.state {
            TicketState::Offered | TicketState::Accepted => self.assignee.as_deref(),
            _ => None,
        }
    }
}

/// Unix time in milliseconds.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// `n` random bytes as lowercase hex.
pub(crate) fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actors_read_back_what_they_write() {
        let actors = [
            Actor::Farmer,
            Actor::System,
            Actor::Admin,
            Actor::Responder(TalentId::new("vill-00001")),
        ];
        for actor in actors {
            assert_eq!(Actor::parse(&actor.to_string()), Some(actor));
        }
        assert_eq!(
            Actor::Responder(TalentId::new("a")).to_string(),
            "responder:a"
        );
        assert_eq!(Actor::parse("somebody"), None);
    }
}
