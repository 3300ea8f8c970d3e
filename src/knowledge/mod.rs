//! Answers that help the next farmer: a resolved ticket's problem and
//! answer become a knowledge entry when its responder marks it shareable or
//! an admin publishes it; farmers find similar solved problems beside the
//! candidates of `MatchProblem` and through `SearchKnowledge`.
//!
//! An entry holds the problem, subject, corps, county, answer, the
//! responder's tier, the date it was resolved and a rating (empty until
//! rated, and updated when the farmer rates after publishing); never the
//! farmer's contact or a phone number (`redact`). Entries are stored in the
//! ticket store ([`crate::store::KnowledgeStore`]) and searched in their
//! own index (`index`); with replicas each one re-reads the rows changed
//! since the last it holds every [`FOLLOW_EVERY`].

pub mod eval;
pub mod index;
pub(crate) mod redact;

use std::{sync::Arc, time::Duration};

use serde::{Deserialize, Serialize};

use crate::{
    error::{Error, Result},
    matching::Matcher,
    model::{
        divisions::Divisions,
        ids::{TalentId, TicketId},
        Corps, Location, Tier,
    },
    reading::lexicon::Lexicon,
    store::{KnowledgeStore, TicketStore},
    tickets::{Dispatcher, Event, EventKind, Ticket, TicketState},
};

pub use index::{Hit, KnowledgeIndex, Query};

/// How often a replica reads the entries other replicas changed.
pub const FOLLOW_EVERY: Duration = Duration::from_secs(2);
/// Hits a search returns by default, and at most.
pub const DEFAULT_LIMIT: usize = 3;
pub const MAX_LIMIT: usize = 20;
pub(crate) const MAX_QUERY_CHARS: usize = 4_000;

/// Who published an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Publisher {
    /// The responder, marking the answer shareable as they resolved it.
    Responder,
    Admin,
}

impl Publisher {
    pub fn key(self) -> &'static str {
        match self {
            Publisher::Responder => "responder",
            Publisher::Admin => "admin",
        }
    }

    pub(crate) fn parse(key: &str) -> Option<Publisher> {
        [Publisher::Responder, Publisher::Admin]
            .into_iter()
            .find(|p| p.key() == key)
    }
}

/// A solved problem shared with farmers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The ticket's id.
    pub id: String,
    /// The problem, phone-like numbers and the contact removed.
    pub text: String,
    /// The canonical subject, empty when none was read.
    pub subject: String,
    pub corps: Option<Corps>,
    /// The county's 12-digit code, empty when not known.
    pub county_code: String,
    pub county_name: String,
    /// The answer, phone-like numbers and the contact removed.
    pub answer: String,
    /// The tier of the responder who answered.
    pub tier: Option<Tier>,
    /// When the ticket was resolved (its `Resolved` event), not when it
    /// last changed: a later rating does not move it.
    pub resolved_at_ms: i64,
    /// 1 to 5 once the farmer rated the answer, whether before or after
    /// the entry was published ([`Library::rate`]).
    pub rating: Option<u8>,
    pub published_by: Publisher,
}

impl Entry {
    /// The entry a resolved ticket with its `history` makes; `tier` is its
    /// responder's.
    pub fn of_ticket(
        ticket: &Ticket,
        history: &[Event],
        tier: Option<Tier>,
        divisions: &Divisions,
        by: Publisher,
    ) -> Result<Entry> {
        if ticket.state != TicketState::Resolved {
            return Err(Error::FailedPrecondition(format!(
                "ticket {} is not resolved: only an answered problem can be shared",
                ticket.id
            )));
        }
        let county = match &ticket.location {
            Location::Division(code) => crate::model::divisions::DivisionCode::parse(code)
                .and_then(|c| divisions.county_of(c)),
            Location::Point { lat, lon } => crate::model::geo::GeoPoint::new(*lat, *lon)
                .ok()
                .and_then(|p| divisions.county_near(None, p)),
        };
        Ok(Entry {
            id: ticket.id.clone(),
            text: redact::redact(&ticket.text, &ticket.contact),
            subject: ticket.subject.clone().unwrap_or_default(),
            corps: ticket.corps,
            county_code: county.map(|c| c.code.to_string()).unwrap_or_default(),
            county_name: county.map(|c| c.name.clone()).unwrap_or_default(),
            answer: redact::redact(&ticket.answer, &ticket.contact),
            tier,
            resolved_at_ms: resolved_at_ms(ticket, history),
            rating: ticket.rating.as_ref().map(|r| r.stars),
            published_by: by,
        })
    }
}

/// When `ticket` was resolved: its last `Resolved` event's time (the
/// time it last changed for a history without one, which a resolved
/// ticket always has).
fn resolved_at_ms(ticket: &Ticket, history: &[Event]) -> i64 {
    (history.iter())
        .rfind(|e| e.kind == EventKind::Resolved)
        .map_or(ticket.updated_at_ms, |e| e.at_ms)
}

/// The knowledge base: its store and its index, kept in step.
pub struct Library {
    store: Arc<dyn KnowledgeStore>,
    /// Where resolved tickets are read from, and who answered them.
    tickets: Arc<dyn TicketStore>,
    matcher: Arc<Matcher>,
    index: Arc<KnowledgeIndex>,
    /// The last store change the index holds.
    cursor: tokio::sync::Mutex<u64>,
    lexicon: &'static Lexicon,
}

impl std::fmt::Debug for Library {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Library")
            .field("entries", &self.index.len())
            .finish_non_exhaustive()
    }
}

impl Library {
    /// Loads every published entry of the store into a new index; with
    /// `follow`, keeps reading what other replicas change.
    pub async fn open(
        store: Arc<dyn KnowledgeStore>,
        tickets: Arc<dyn TicketStore>,
        matcher: Arc<Matcher>,
        follow: bool,
    ) -> Result<Arc<Library>> {
        let lexicon = Lexicon::embedded();
        let library = Arc::new(Library {
            store,
            tickets,
            matcher,
            index: Arc::new(KnowledgeIndex::new(lexicon)?),
            cursor: tokio::sync::Mutex::new(0),
            lexicon,
        });
        library.catch_up().await?;
        if follow {
            let weak = Arc::downgrade(&library);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(FOLLOW_EVERY);
                loop {
                    tick.tick().await;
                    let Some(library) = weak.upgrade() else {
                        return;
                    };
                    if let Err(e) = library.catch_up().await {
                        tracing::warn!(cause = %e, "cannot read the knowledge entries");
                    }
                }
            });
        }
        Ok(library)
    }

    /// Applies the store's changes since the last one the index holds.
    pub async fn catch_up(&self) -> Result<()> {
        let mut cursor = self.cursor.lock().await;
        let changes = self.store.knowledge_since(*cursor).await?;
        let Some(last) = changes.last().map(|c| c.0) else {
            return Ok(());
        };
        let (mut put, mut remove) = (Vec::new(), Vec::new());
        for (_, entry, published) in changes {
            if published {
                put.retain(|e: &Entry| e.id != entry.id);
                remove.retain(|id| id != &entry.id);
                put.push(entry);
            } else {
                put.retain(|e: &Entry| e.id != entry.id);
                remove.push(entry.id);
            }
        }
        let index = self.index.clone();
        crate::error::blocking("knowledge index", move || index.apply(put, &remove)).await?;
        *cursor = last;
        Ok(())
    }

    /// Resolves a ticket through the dispatcher and, when its responder
    /// marks the answer `shareable`, publishes it; the ticket stays resolved
    /// if publishing fails (logged).
    pub async fn resolve(
        &self,
        dispatcher: &Dispatcher,
        me: &TalentId,
        id: &TicketId,
        answer: &str,
        shareable: bool,
    ) -> Result<Ticket> {
        let ticket = dispatcher.resolve(me, id, answer).await?;
        if shareable {
            if let Err(e) = self.share(&ticket.id, Publisher::Responder).await {
                tracing::warn!(cause = %e, ticket = %ticket.id, "cannot publish the shared answer");
            }
        }
        Ok(ticket)
    }

    /// Records the farmer's rating through the dispatcher
    /// ([`Dispatcher::rate`]) and carries it to the ticket's published
    /// entry, if it has one; the rating stands if that fails (logged: the
    /// entry takes it when next published).
    pub async fn rate(
        &self,
        dispatcher: &Dispatcher,
        id: &TicketId,
        secret: &str,
        stars: u32,
        comment: &str,
    ) -> Result<(Ticket, Vec<Event>)> {
        let (ticket, history) = dispatcher.rate(id, secret, stars, comment).await?;
        if let Some(rating) = &ticket.rating {
            if let Err(e) = self.rerate(&ticket.id, rating.stars).await {
                tracing::warn!(cause = %e, ticket = %ticket.id, "cannot rate the published entry");
            }
        }
        Ok((ticket, history))
    }

    /// Sets the rating of the published entry `id`, if there is one.
    async fn rerate(&self, id: &str, stars: u8) -> Result<bool> {
        let rated = self.store.rate_knowledge(id, stars).await?;
        if rated {
            self.catch_up().await?;
        }
        Ok(rated)
    }

    /// Shares a resolved ticket's problem and answer, as the store holds
    /// them; `by` says who did.
    async fn share(&self, id: &str, by: Publisher) -> Result<Entry> {
        let not_found =
            || Error::NotFound(format!("no ticket has the id {}", crate::error::quote(id)));
        let (ticket, history) = self.tickets.get(id).await?.ok_or_else(not_found)?;
        let snapshot = self.matcher.snapshot();
        let tier = match ticket.assignee.as_deref().and_then(|id| snapshot.get(id)) {
            Some(talent) => Some(talent.tier),
            // The responder left the roster since: the tier it was offered at.
            None => Some(ticket.tier),
        };
        let mut entry = Entry::of_ticket(&ticket, &history, tier, Divisions::embedded(), by)?;
        self.publish(entry.clone()).await?;
        if entry.rating.is_none() {
            // A rating committed after the ticket was read above found no
            // entry to carry it to (`rate`): the entry takes it now.
            let (ticket, _) = self.tickets.get(id).await?.ok_or_else(not_found)?;
            if let Some(rating) = ticket.rating {
                self.rerate(id, rating.stars).await?;
                entry.rating = Some(rating.stars);
            }
        }
        Ok(entry)
    }

    /// Publishes a resolved ticket's answer (again, if it was unpublished).
    pub async fn publish_ticket(&self, id: &str, by: Publisher) -> Result<Entry> {
        crate::error::check_id("ticket_id", id, crate::error::MAX_ID_BYTES)?;
        if id.is_empty() {
            return Err(Error::invalid(
                "ticket_id",
                "missing: name the resolved ticket",
            ));
        }
        self.share(id, by).await
    }

    /// Stores an entry and makes it searchable.
    pub async fn publish(&self, entry: Entry) -> Result<Entry> {
        self.store.put_knowledge(&entry).await?;
        self.catch_up().await?;
        Ok(entry)
    }

    /// Takes an entry out; false when no published entry had that id.
    pub async fn unpublish(&self, id: &str) -> Result<bool> {
        crate::error::check_id("ticket_id", id, crate::error::MAX_ID_BYTES)?;
        let removed = self.store.unpublish_knowledge(id).await?;
        self.catch_up().await?;
        Ok(removed)
    }

    /// Similar solved problems ([`KnowledgeIndex::find`]).
    pub fn search(&self, query: &Query<'_>) -> Result<Vec<Hit>> {
        self.index.find(query)
    }

    /// Up to [`DEFAULT_LIMIT`] solved problems like a report MatchProblem
    /// read as `subject`; nothing when none is similar enough.
    pub fn similar(&self, text: &str, subject: Option<&str>) -> Result<Vec<Hit>> {
        self.index.search(&Query {
            text,
            hint_subject: subject,
            limit: DEFAULT_LIMIT,
            ..Query::default()
        })
    }

    pub fn lexicon(&self) -> &'static Lexicon {
        self.lexicon
    }

    /// The index, for the evaluation and the benchmark.
    pub fn index(&self) -> &KnowledgeIndex {
        &self.index
    }
}
