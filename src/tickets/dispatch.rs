//! The dispatcher: turns submitted problems into tickets and moves them,
//! offering each to the nearest qualified responder that is ONLINE and below
//! capacity, re-offering on decline or timeout (never to the same person
//! twice), escalating village → county/town → city, queueing when nobody is
//! free, and streaming every change to farmers, responders and liaisons.
//!
//! Every change is computed on a copy of the ticket, committed to the store
//! together with its events, and only then applied to the in-memory state
//! (load per responder, offer deadlines, exclusions) and pushed to streams.
//! One lock serialises the decisions of this process; across replicas a
//! decision commits only if nobody else committed since this replica last
//! caught up with the store's change log (else it catches up and decides
//! again), so capacity is never exceeded and no ticket is offered twice.

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    sync::{Arc, Weak},
    time::Duration,
};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use tokio::sync::{mpsc, Mutex, Notify};

use super::{
    liaison::{parse_liaisons, Liaison},
    now_ms, random_hex,
    token::{Claims, Role, Signer},
    Availability, Event, EventKind, Ticket, TicketState,
};
use crate::{
    error::{Error, Result},
    matching::{check_len, Location, Need, Service},
    model::{Talent, Tier},
    roster::RosterFormat,
    search::{tokenizer, Ranking, Snapshot},
    store::{Change, TicketFilter, TicketStore, Written},
};

/// Capacity of each live stream; a subscriber this far behind is dropped
/// and catches up by reconnecting (streams replay on connect).
const STREAM_BUFFER: usize = 256;
const MAX_CONTACT_CHARS: usize = 64;
const MAX_KEY_CHARS: usize = 128;
const MAX_ANSWER_CHARS: usize = 4_000;
const MAX_REASON_CHARS: usize = 500;
const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
const MAX_TOKEN_TTL: Duration = Duration::from_secs(365 * 24 * 3600);

#[derive(Debug, Clone, PartialEq)]
pub struct DispatchConfig {
    /// How long an offer waits for acceptance.
    pub offer_timeout: Duration,
    /// Offers at one tier without acceptance before moving a tier up.
    pub escalate_after: u32,
}

impl Default for DispatchConfig {
    fn default() -> DispatchConfig {
        DispatchConfig {
            offer_timeout: Duration::from_secs(600),
            escalate_after: 3,
        }
    }
}

/// Who is calling the responder API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Responder(String),
    Liaison(String),
}

/// A change as a live stream carries it: the ticket after the change.
#[derive(Debug, Clone)]
pub struct Push {
    pub ticket: Ticket,
    pub event: Event,
    pub read_only: bool,
    pub replay: bool,
}

/// A submitted problem.
#[derive(Debug, Clone, Default)]
pub struct Submission {
    pub text: String,
    pub location: Option<Location>,
    pub contact: String,
    pub idempotency_key: String,
}

#[derive(Default)]
struct Subscribers {
    responders: HashMap<String, Vec<mpsc::Sender<Push>>>,
    liaisons: HashMap<String, Vec<mpsc::Sender<Push>>>,
    tickets: HashMap<String, Vec<mpsc::Sender<Event>>>,
}

fn send_all<T: Clone>(subs: &mut HashMap<String, Vec<mpsc::Sender<T>>>, key: &str, item: &T) {
    if let Some(list) = subs.get_mut(key) {
        list.retain(|tx| tx.try_send(item.clone()).is_ok());
        if list.is_empty() {
            subs.remove(key);
        }
    }
}

#[derive(Default)]
struct State {
    /// Queued, offered and accepted tickets.
    open: HashMap<String, Ticket>,
    /// Last event number per open ticket.
    seq: HashMap<String, u64>,
    /// Responders who may not be offered a ticket again.
    excluded: HashMap<String, HashSet<String>>,
    /// Offered and accepted tickets per responder.
    load: HashMap<String, u32>,
    presence: HashMap<String, Availability>,
    /// (deadline, ticket id) of every open offer.
    deadlines: BTreeSet<(i64, String)>,
    liaisons: HashMap<String, Liaison>,
    /// Village code → liaison ids.
    liaisons_by_village: HashMap<String, Vec<String>>,
    subscribers: Subscribers,
    /// The last entry of the store's change log reflected here.
    cursor: u64,
}

impl State {
    fn set_liaisons(&mut self, list: Vec<Liaison>) {
        self.liaisons_by_village.clear();
        for l in &list {
            for v in &l.villages {
                self.liaisons_by_village
                    .entry(v.clone())
                    .or_default()
                    .push(l.id.clone());
            }
        }
        self.liaisons = list.into_iter().map(|l| (l.id.clone(), l)).collect();
    }

    fn holds(ticket: &Ticket) -> Option<&str> {
        match ticket.state {
            TicketState::Offered | TicketState::Accepted => ticket.assignee.as_deref(),
            _ => None,
        }
    }

    /// Applies a committed change: derives load, deadlines and exclusions
    /// from the old and new rows and the events, then pushes to streams.
    fn apply(&mut self, old: Option<&Ticket>, new: &Ticket, events: &[Event]) {
        if let Some(old) = old {
            if let Some(t) = State::holds(old) {
                if let Some(n) = self.load.get_mut(t) {
                    *n = n.saturating_sub(1);
                }
            }
            if let Some(d) = old.offer_deadline_ms {
                self.deadlines.remove(&(d, old.id.clone()));
            }
        }
        if let Some(t) = State::holds(new) {
            *self.load.entry(t.to_string()).or_default() += 1;
        }
        if let (TicketState::Offered, Some(d)) = (new.state, new.offer_deadline_ms) {
            self.deadlines.insert((d, new.id.clone()));
        }
        for e in events {
            if matches!(
                e.kind,
                EventKind::Declined
                    | EventKind::OfferTimedOut
                    | EventKind::Rerouted
                    | EventKind::Escalated
            ) {
                if let Some(t) = &e.talent_id {
                    self.excluded
                        .entry(new.id.clone())
                        .or_default()
                        .insert(t.clone());
                }
            }
        }
        if let Some(last) = events.last() {
            self.seq.insert(new.id.clone(), last.seq);
        }
        if new.state.is_open() {
            self.open.insert(new.id.clone(), new.clone());
        } else {
            self.open.remove(&new.id);
            self.seq.remove(&new.id);
            self.excluded.remove(&new.id);
        }
        self.push(new, events, old.and_then(State::holds));
    }

    /// Sends each event to the ticket's watchers, its liaisons, the
    /// responder it names and the responder holding the ticket before it.
    fn push(&mut self, ticket: &Ticket, events: &[Event], previous_holder: Option<&str>) {
        let liaisons: Vec<String> = ticket
            .division_code
            .as_ref()
            .and_then(|v| self.liaisons_by_village.get(v))
            .cloned()
            .unwrap_or_default();
        let mut holder = previous_holder.map(str::to_string);
        for event in events {
            send_all(&mut self.subscribers.tickets, &ticket.id, event);
            let push = Push {
                ticket: ticket.clone(),
                event: event.clone(),
                read_only: false,
                replay: false,
            };
            let named = event.talent_id.as_deref();
            for who in [named, holder.as_deref().filter(|h| Some(*h) != named)]
                .into_iter()
                .flatten()
            {
                send_all(&mut self.subscribers.responders, who, &push);
            }
            holder = match event.kind {
                EventKind::Offered => event.talent_id.clone(),
                EventKind::Accepted | EventKind::Submitted | EventKind::Queued => holder,
                _ => None,
            };
            let copy = Push {
                read_only: true,
                ..push
            };
            for l in &liaisons {
                send_all(&mut self.subscribers.liaisons, l, &copy);
            }
        }
    }
}

pub struct Dispatcher {
    store: Arc<dyn TicketStore>,
    service: Arc<Service>,
    signer: Signer,
    /// Derives ticket secrets: the secret is never stored.
    secret_key: Vec<u8>,
    config: DispatchConfig,
    state: Mutex<State>,
    timer: Arc<Notify>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn tier_rank(t: Tier) -> u8 {
    match t {
        Tier::Village => 0,
        Tier::CountyTown => 1,
        Tier::City => 2,
    }
}

fn tier_above(t: Tier) -> Option<Tier> {
    match t {
        Tier::Village => Some(Tier::CountyTown),
        Tier::CountyTown => Some(Tier::City),
        Tier::City => None,
    }
}

impl Dispatcher {
    /// Loads open tickets, presence and liaisons from the store, resumes
    /// offer timers from their stored deadlines, and starts the timer and
    /// roster-watch tasks.
    pub async fn start(
        store: Arc<dyn TicketStore>,
        service: Arc<Service>,
        config: DispatchConfig,
    ) -> Result<Arc<Dispatcher>> {
        let key = store.signing_key().await?;
        let mut state = State {
            // Read before the rows: what changes meanwhile is caught up again.
            cursor: store.head().await?,
            ..State::default()
        };
        for (ticket, events) in store.open_tickets().await? {
            state.apply(None, &ticket, &events);
        }
        for (talent, availability) in store.availabilities().await? {
            state.presence.insert(talent, availability);
        }
        state.set_liaisons(store.liaisons().await?);
        let secret_key = {
            let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("any key length");
            mac.update(b"ticket secrets");
            mac.finalize().into_bytes().to_vec()
        };
        let dispatcher = Arc::new(Dispatcher {
            store,
            service,
            signer: Signer::new(key),
            secret_key,
            config,
            state: Mutex::new(state),
            timer: Arc::new(Notify::new()),
        });
        tokio::spawn(timer_loop(
            Arc::downgrade(&dispatcher),
            dispatcher.timer.clone(),
        ));
        tokio::spawn(roster_watch(
            Arc::downgrade(&dispatcher),
            dispatcher.service.roster_versions(),
        ));
        if let Some(notifications) = dispatcher.store.notifications() {
            tokio::spawn(follow_changes(Arc::downgrade(&dispatcher), notifications));
        }
        dispatcher.drain_queue().await?;
        Ok(dispatcher)
    }

    fn secret(&self, ticket_id: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret_key).expect("any key length");
        mac.update(ticket_id.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }

    /// Loads a ticket for its farmer: wrong secrets are refused.
    async fn farmer_ticket(&self, id: &str, secret: &str) -> Result<(Ticket, Vec<Event>)> {
        if id.trim().is_empty() {
            return Err(Error::invalid("ticket_id", "is empty"));
        }
        let found = self.store.get(id).await?;
        let Some((ticket, events)) = found else {
            return Err(Error::NotFound(format!("no ticket {id:?}")));
        };
        let expected = self.secret(id);
        if !bool::from(expected.as_bytes().ct_eq(secret.trim().as_bytes())) {
            return Err(Error::PermissionDenied(
                "the ticket secret does not match this ticket".into(),
            ));
        }
        Ok((ticket, events))
    }

    fn event(
        &self,
        ticket: &Ticket,
        seq: u64,
        kind: EventKind,
        actor: &str,
        reason: &str,
        talent: Option<&str>,
    ) -> Event {
        Event {
            ticket_id: ticket.id.clone(),
            seq,
            kind,
            actor: actor.to_string(),
            at_ms: ticket.updated_at_ms,
            reason: reason.to_string(),
            state: ticket.state,
            talent_id: talent.map(str::to_string),
            tier: ticket.tier,
        }
    }

    /// Submits a problem: analysed, stored and routed before it returns.
    /// Returns the ticket, its history and the farmer's secret.
    pub async fn submit(&self, s: Submission) -> Result<(Ticket, Vec<Event>, String)> {
        Service::check_text(&s.text, "text")?;
        let origin = self
            .service
            .resolve_location(s.location.as_ref(), "location")?;
        check_len("contact", &s.contact, MAX_CONTACT_CHARS)?;
        check_len("idempotency_key", &s.idempotency_key, MAX_KEY_CHARS)?;
        let key =
            (!s.idempotency_key.trim().is_empty()).then(|| s.idempotency_key.trim().to_string());
        let location = s.location.clone().expect("resolved above");
        let analysis = self.service.analyze(&s.text, origin);
        let lexicon = self.service.lexicon();

        let id = new_ticket_id(now_ms());
        let mut state = self.state.lock().await;
        let (ticket, events) = loop {
            self.catch_up(&mut state).await?;
            if let Some(key) = &key {
                if let Some(existing) = self.store.find_by_idempotency_key(key).await? {
                    return self.existing(&existing).await;
                }
            }
            let now = now_ms();
            let mut ticket = Ticket {
                id: id.clone(),
                text: s.text.clone(),
                division_code: match &location {
                    Location::Division(code) => Some(code.trim().to_string()),
                    Location::Point { .. } => None,
                },
                location: location.clone(),
                subject: analysis.subject.map(|id| lexicon.subject(id).name.clone()),
                corps: analysis.corps,
                contact: s.contact.trim().to_string(),
                idempotency_key: key.clone(),
                state: TicketState::Queued,
                assignee: None,
                tier: Tier::Village,
                offers_in_tier: 0,
                offer_deadline_ms: None,
                answer: String::new(),
                reason: String::new(),
                created_at_ms: now,
                updated_at_ms: now,
            };
            let mut events = vec![self.event(&ticket, 1, EventKind::Submitted, "farmer", "", None)];
            let snapshot = self.service.snapshot();
            let need = Need::of(&analysis);
            if need.subject.is_none() && need.corps.is_none() {
                ticket.state = TicketState::Unroutable;
                ticket.reason = if analysis.note.is_empty() {
                    "无法判断问题所属品类".into()
                } else {
                    analysis.note.clone()
                };
                events.push(self.event(
                    &ticket,
                    2,
                    EventKind::Unroutable,
                    "system",
                    &ticket.reason.clone(),
                    None,
                ));
            } else {
                self.route(
                    &state,
                    &snapshot,
                    &need,
                    origin,
                    &mut ticket,
                    &mut events,
                    "system",
                    false,
                )?;
            }
            match self.store.insert(&ticket, &events, state.cursor).await? {
                Written::Done { head } => {
                    state.cursor = head;
                    break (ticket, events);
                }
                // Lost a race on the idempotency key with another replica.
                Written::Duplicate(existing) => return self.existing(&existing).await,
                Written::Stale => continue,
            }
        };
        state.apply(None, &ticket, &events);
        drop(state);
        self.timer.notify_one();
        let secret = self.secret(&ticket.id);
        Ok((ticket, events, secret))
    }

    /// A ticket submitted before under the same idempotency key.
    async fn existing(&self, id: &str) -> Result<(Ticket, Vec<Event>, String)> {
        let (ticket, events) = self
            .store
            .get(id)
            .await?
            .ok_or_else(|| Error::Internal("ticket vanished".into()))?;
        let secret = self.secret(&ticket.id);
        Ok((ticket, events, secret))
    }

    /// Applies what other replicas committed since `state.cursor`: each
    /// changed ticket once, at its stored state, with the events this
    /// process has not seen (which also pushes them to local streams).
    async fn catch_up(&self, state: &mut State) -> Result<()> {
        let changes = self.store.changes_since(state.cursor).await?;
        let Some(&(last, _)) = changes.last() else {
            return Ok(());
        };
        let mut seen = HashSet::new();
        let mut todo: Vec<Change> = changes
            .into_iter()
            .rev()
            .map(|(_, c)| c)
            .filter(|c| seen.insert(c.clone()))
            .collect();
        todo.reverse();
        for change in todo {
            match change {
                Change::Ticket(id) => {
                    let Some((ticket, events)) = self.store.get(&id).await? else {
                        continue;
                    };
                    let known = state.seq.get(&id).copied().unwrap_or(0);
                    let fresh: Vec<Event> = events.into_iter().filter(|e| e.seq > known).collect();
                    if !fresh.is_empty() {
                        let old = state.open.get(&id).cloned();
                        state.apply(old.as_ref(), &ticket, &fresh);
                    }
                }
                Change::Presence(talent) => match self.store.availability(&talent).await? {
                    Some(a) => {
                        state.presence.insert(talent, a);
                    }
                    None => {
                        state.presence.remove(&talent);
                    }
                },
                Change::Liaisons => state.set_liaisons(self.store.liaisons().await?),
            }
        }
        state.cursor = last;
        self.timer.notify_one();
        Ok(())
    }

    /// Catches up with other replicas' changes now.
    pub async fn sync(&self) -> Result<()> {
        let mut state = self.state.lock().await;
        self.catch_up(&mut state).await
    }

    /// Offers the ticket to the best free responder, or queues it, or marks
    /// it unroutable, appending the events. Escalates a tier when everyone
    /// eligible at this tier has declined or timed out.
    #[allow(clippy::too_many_arguments)]
    fn route(
        &self,
        state: &State,
        snapshot: &Snapshot,
        need: &Need,
        origin: crate::search::Origin,
        ticket: &mut Ticket,
        events: &mut Vec<Event>,
        actor: &str,
        queued_already: bool,
    ) -> Result<()> {
        let pool = self.service.qualified_pool(snapshot, need, origin)?;
        let next_seq = |events: &Vec<Event>, state: &State, id: &str| {
            events
                .last()
                .map(|e| e.seq)
                .or_else(|| state.seq.get(id).copied())
                .unwrap_or(0)
                + 1
        };
        let no_one = pool.specialties.is_empty() && pool.corps.is_empty();
        if no_one {
            let reason = match need.subject {
                Some(s) => format!(
                    "花名册中没有{}方面的专长人员",
                    self.service.lexicon().subject(s).name
                ),
                None => format!(
                    "花名册中没有{}组专长人员",
                    need.corps.map_or("", |c| c.chinese())
                ),
            };
            ticket.state = TicketState::Unroutable;
            ticket.assignee = None;
            ticket.offer_deadline_ms = None;
            ticket.reason = reason.clone();
            let seq = next_seq(events, state, &ticket.id);
            events.push(self.event(ticket, seq, EventKind::Unroutable, actor, &reason, None));
            return Ok(());
        }
        let empty = HashSet::new();
        let excluded = state.excluded.get(&ticket.id).unwrap_or(&empty);
        loop {
            let eligible = |t: &Talent| {
                tier_rank(t.tier) >= tier_rank(ticket.tier)
                    && !excluded.contains(&t.id)
                    && !events.iter().any(|e| {
                        e.talent_id.as_deref() == Some(t.id.as_str())
                            && e.kind != EventKind::Offered
                    })
            };
            let free = |t: &Talent| {
                state.presence.get(&t.id) == Some(&Availability::Online)
                    && state.load.get(&t.id).copied().unwrap_or(0) < t.capacity
            };
            let (chosen, any_eligible) = nearest(
                snapshot,
                &pool,
                origin,
                &need.words,
                |t| eligible(t) && free(t),
                eligible,
            )?;
            if let Some(talent) = chosen {
                ticket.state = TicketState::Offered;
                ticket.assignee = Some(talent.id.clone());
                ticket.offers_in_tier += 1;
                ticket.offer_deadline_ms =
                    Some(ticket.updated_at_ms + self.config.offer_timeout.as_millis() as i64);
                ticket.reason.clear();
                let seq = next_seq(events, state, &ticket.id);
                events.push(self.event(
                    ticket,
                    seq,
                    EventKind::Offered,
                    actor,
                    "",
                    Some(&talent.id),
                ));
                return Ok(());
            }
            if any_eligible {
                ticket.assignee = None;
                ticket.offer_deadline_ms = None;
                if !queued_already {
                    ticket.state = TicketState::Queued;
                    ticket.reason =
                        "暂无在线且有空闲的合格专家，已排队，有人空闲时按先后顺序派单".into();
                    let seq = next_seq(events, state, &ticket.id);
                    let reason = ticket.reason.clone();
                    events.push(self.event(ticket, seq, EventKind::Queued, actor, &reason, None));
                }
                return Ok(());
            }
            // Everyone eligible at this tier declined or let the offer lapse.
            match tier_above(ticket.tier) {
                Some(up) => {
                    ticket.tier = up;
                    ticket.offers_in_tier = 0;
                    let reason = "本级合格人员均已谢绝或超时，升级到上一级".to_string();
                    let seq = next_seq(events, state, &ticket.id);
                    events.push(self.event(
                        ticket,
                        seq,
                        EventKind::Escalated,
                        "system",
                        &reason,
                        None,
                    ));
                }
                None => {
                    ticket.state = TicketState::Unroutable;
                    ticket.assignee = None;
                    ticket.offer_deadline_ms = None;
                    ticket.reason = "所有合格专家均已谢绝或未在时限内接单".into();
                    let seq = next_seq(events, state, &ticket.id);
                    let reason = ticket.reason.clone();
                    events.push(self.event(
                        ticket,
                        seq,
                        EventKind::Unroutable,
                        "system",
                        &reason,
                        None,
                    ));
                    return Ok(());
                }
            }
        }
    }
}

impl Dispatcher {
    fn need_of(&self, ticket: &Ticket) -> Need {
        let lexicon = self.service.lexicon();
        Need {
            subject: ticket
                .subject
                .as_deref()
                .and_then(|s| lexicon.subject_id(s)),
            corps: ticket.corps,
            words: tokenizer::terms(lexicon, &ticket.text)
                .into_iter()
                .map(|(_, _, w)| w)
                .collect(),
        }
    }

    /// Moves one open ticket: `decide` edits a copy and appends events
    /// (numbered from `first_seq`); the result is committed, then applied.
    async fn change(
        &self,
        id: &str,
        responder: Option<&str>,
        decide: impl Fn(&Dispatcher, &State, &mut Ticket, &mut Vec<Event>, u64) -> Result<()>,
    ) -> Result<Ticket> {
        let mut state = self.state.lock().await;
        loop {
            self.catch_up(&mut state).await?;
            let old = match state.open.get(id) {
                Some(t) => t.clone(),
                None => {
                    return Err(match self.store.get(id).await? {
                        // A closed ticket's state is only the business of whoever held it.
                        Some((t, _))
                            if responder.is_some_and(|r| t.assignee.as_deref() != Some(r)) =>
                        {
                            Error::PermissionDenied(format!(
                                "ticket {id} is not offered to or accepted by you"
                            ))
                        }
                        Some((t, _)) => Error::FailedPrecondition(format!(
                            "ticket {id} is {} and can no longer change",
                            t.state.key()
                        )),
                        None => Error::NotFound(format!("no ticket {id:?}")),
                    });
                }
            };
            let mut ticket = old.clone();
            ticket.updated_at_ms = now_ms().max(old.updated_at_ms);
            let mut events = Vec::new();
            let first_seq = state.seq.get(id).copied().unwrap_or(0) + 1;
            decide(self, &state, &mut ticket, &mut events, first_seq)?;
            if events.is_empty() {
                return Ok(ticket);
            }
            match self.store.update(&ticket, &events, state.cursor).await? {
                Written::Done { head } => {
                    state.cursor = head;
                    state.apply(Some(&old), &ticket, &events);
                    drop(state);
                    self.timer.notify_one();
                    return Ok(ticket);
                }
                Written::Stale => continue,
                Written::Duplicate(_) => {
                    return Err(Error::Internal("an update hit an idempotency key".into()))
                }
            }
        }
    }

    /// Routes a ticket whose offer ended (declined, lapsed, escalated away,
    /// assignee gone): escalates first when this tier has had its offers.
    fn reroute(
        &self,
        state: &State,
        ticket: &mut Ticket,
        events: &mut Vec<Event>,
        actor: &str,
    ) -> Result<()> {
        ticket.assignee = None;
        ticket.offer_deadline_ms = None;
        if ticket.offers_in_tier >= self.config.escalate_after {
            if let Some(up) = tier_above(ticket.tier) {
                ticket.tier = up;
                ticket.offers_in_tier = 0;
                let seq = events.last().map_or(1, |e| e.seq + 1);
                let reason = format!(
                    "本级已派单{}次无人接单，升级到上一级",
                    self.config.escalate_after
                );
                events.push(self.event(ticket, seq, EventKind::Escalated, "system", &reason, None));
            }
        }
        let origin = self
            .service
            .resolve_location(Some(&ticket.location), "location")?;
        let need = self.need_of(ticket);
        self.route(
            state,
            &self.service.snapshot(),
            &need,
            origin,
            ticket,
            events,
            actor,
            false,
        )
    }

    fn own_offer(ticket: &Ticket, talent: &str, states: &[TicketState]) -> Result<()> {
        if ticket.assignee.as_deref() != Some(talent) || !states.contains(&ticket.state) {
            return Err(Error::PermissionDenied(format!(
                "ticket {} is not {} you",
                ticket.id,
                match states {
                    [TicketState::Offered] => "offered to",
                    [TicketState::Accepted] => "accepted by",
                    _ => "offered to or accepted by",
                }
            )));
        }
        Ok(())
    }

    pub async fn accept(&self, talent: &str, id: &str) -> Result<Ticket> {
        let talent = talent.to_string();
        let who = talent.clone();
        let ticket = self
            .change(id, Some(&who), move |d, _, t, events, seq| {
                if t.state == TicketState::Accepted
                    && t.assignee.as_deref() == Some(talent.as_str())
                {
                    return Err(Error::FailedPrecondition(format!(
                        "you have already accepted ticket {}",
                        t.id
                    )));
                }
                Dispatcher::own_offer(t, &talent, &[TicketState::Offered])?;
                t.state = TicketState::Accepted;
                t.offer_deadline_ms = None;
                events.push(d.event(
                    t,
                    seq,
                    EventKind::Accepted,
                    &format!("responder:{talent}"),
                    "",
                    Some(&talent),
                ));
                Ok(())
            })
            .await?;
        Ok(ticket)
    }

    pub async fn decline(&self, talent: &str, id: &str, reason: &str) -> Result<Ticket> {
        check_len("reason", reason, MAX_REASON_CHARS)?;
        let (talent, reason) = (talent.to_string(), reason.trim().to_string());
        let who = talent.clone();
        let ticket = self
            .change(id, Some(&who), move |d, state, t, events, seq| {
                Dispatcher::own_offer(t, &talent, &[TicketState::Offered])?;
                let actor = format!("responder:{talent}");
                events.push(d.event(t, seq, EventKind::Declined, &actor, &reason, Some(&talent)));
                d.reroute(state, t, events, "system")
            })
            .await?;
        self.drain_queue().await?;
        Ok(ticket)
    }

    pub async fn resolve(&self, talent: &str, id: &str, answer: &str) -> Result<Ticket> {
        if answer.trim().is_empty() {
            return Err(Error::invalid(
                "answer",
                "is empty: tell the farmer what to do",
            ));
        }
        check_len("answer", answer, MAX_ANSWER_CHARS)?;
        let (talent, answer) = (talent.to_string(), answer.trim().to_string());
        let who = talent.clone();
        let ticket = self
            .change(id, Some(&who), move |d, _, t, events, seq| {
                Dispatcher::own_offer(t, &talent, &[TicketState::Accepted])?;
                t.state = TicketState::Resolved;
                t.answer = answer.clone();
                events.push(d.event(
                    t,
                    seq,
                    EventKind::Resolved,
                    &format!("responder:{talent}"),
                    "",
                    Some(&talent),
                ));
                Ok(())
            })
            .await?;
        self.drain_queue().await?;
        Ok(ticket)
    }

    pub async fn escalate(&self, talent: &str, id: &str, reason: &str) -> Result<Ticket> {
        check_len("reason", reason, MAX_REASON_CHARS)?;
        let (talent, reason) = (talent.to_string(), reason.trim().to_string());
        let who = talent.clone();
        let ticket = self
            .change(id, Some(&who), move |d, state, t, events, seq| {
                Dispatcher::own_offer(t, &talent, &[TicketState::Offered, TicketState::Accepted])?;
                let up = tier_above(t.tier).ok_or_else(|| {
                    Error::FailedPrecondition(
                        "the ticket is already at the city tier, the highest".into(),
                    )
                })?;
                t.tier = up;
                t.offers_in_tier = 0;
                t.assignee = None;
                t.offer_deadline_ms = None;
                events.push(d.event(
                    t,
                    seq,
                    EventKind::Escalated,
                    &format!("responder:{talent}"),
                    &reason,
                    Some(&talent),
                ));
                d.reroute(state, t, events, "system")
            })
            .await?;
        self.drain_queue().await?;
        Ok(ticket)
    }

    pub async fn cancel(&self, id: &str, secret: &str) -> Result<Ticket> {
        self.farmer_ticket(id, secret).await?;
        let ticket = self
            .change(id, None, |d, _, t, events, seq| {
                t.state = TicketState::Cancelled;
                t.offer_deadline_ms = None;
                events.push(d.event(t, seq, EventKind::Cancelled, "farmer", "", None));
                Ok(())
            })
            .await?;
        self.drain_queue().await?;
        Ok(ticket)
    }

    /// Lapses every offer whose deadline has passed.
    pub async fn expire_offers(&self) -> Result<()> {
        loop {
            let due = {
                let state = self.state.lock().await;
                state
                    .deadlines
                    .first()
                    .filter(|(at, _)| *at <= now_ms())
                    .map(|(_, id)| id.clone())
            };
            let Some(id) = due else { break };
            let lapsed = self
                .change(&id, None, |d, state, t, events, seq| {
                    // Another replica may have moved it since the deadline was read.
                    if t.state != TicketState::Offered
                        || t.offer_deadline_ms.is_none_or(|at| at > now_ms())
                    {
                        return Ok(());
                    }
                    let talent = t.assignee.clone().unwrap_or_default();
                    let reason = format!("{}秒内未接单", d.config.offer_timeout.as_secs());
                    events.push(d.event(
                        t,
                        seq,
                        EventKind::OfferTimedOut,
                        "system",
                        &reason,
                        Some(&talent),
                    ));
                    d.reroute(state, t, events, "system")
                })
                .await;
            match lapsed {
                // Closed meanwhile by another replica: nothing to lapse.
                Ok(_) | Err(Error::FailedPrecondition(_) | Error::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        self.drain_queue().await
    }

    /// Re-routes open tickets whose responder left the roster, was
    /// deactivated or lost all capacity; then offers queued tickets.
    pub async fn reroute_departed(&self) -> Result<()> {
        let snapshot = self.service.snapshot();
        let departed: Vec<String> = {
            let state = self.state.lock().await;
            state
                .open
                .values()
                .filter(|t| {
                    State::holds(t)
                        .is_some_and(|a| !snapshot.get(a).is_some_and(|x| x.is_available()))
                })
                .map(|t| t.id.clone())
                .collect()
        };
        for id in departed {
            let result = self
                .change(&id, None, |d, state, t, events, seq| {
                    let Some(talent) = State::holds(t).map(str::to_string) else {
                        return Ok(());
                    };
                    let reason = "原应答人员已不在花名册或已停用，重新派单";
                    events.push(d.event(
                        t,
                        seq,
                        EventKind::Rerouted,
                        "system",
                        reason,
                        Some(&talent),
                    ));
                    d.reroute(state, t, events, "system")
                })
                .await;
            if let Err(e) = result {
                tracing::warn!(ticket = %id, error = %e, "could not re-route");
            }
        }
        self.drain_queue().await
    }

    /// Offers queued tickets, oldest first, while anyone is free.
    pub async fn drain_queue(&self) -> Result<()> {
        let queued: Vec<String> = {
            let state = self.state.lock().await;
            let mut q: Vec<&Ticket> = state
                .open
                .values()
                .filter(|t| t.state == TicketState::Queued)
                .collect();
            q.sort_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
            q.into_iter().map(|t| t.id.clone()).collect()
        };
        for id in queued {
            self.change(&id, None, |d, state, t, events, _| {
                if t.state != TicketState::Queued {
                    return Ok(());
                }
                let origin = d.service.resolve_location(Some(&t.location), "location")?;
                let need = d.need_of(t);
                d.route(
                    state,
                    &d.service.snapshot(),
                    &need,
                    origin,
                    t,
                    events,
                    "system",
                    true,
                )
            })
            .await?;
        }
        Ok(())
    }

    pub async fn set_availability(&self, talent: &str, availability: Availability) -> Result<()> {
        self.store
            .set_availability(talent, availability, now_ms())
            .await?;
        self.state
            .lock()
            .await
            .presence
            .insert(talent.to_string(), availability);
        if availability == Availability::Online {
            self.drain_queue().await?;
        }
        Ok(())
    }

    /// A ticket with its history, for its farmer.
    pub async fn get_ticket(&self, id: &str, secret: &str) -> Result<(Ticket, Vec<Event>)> {
        self.farmer_ticket(id, secret).await
    }

    /// The ticket's history so far, then every later event.
    pub async fn watch_ticket(
        &self,
        id: &str,
        secret: &str,
    ) -> Result<(Vec<Event>, mpsc::Receiver<Event>)> {
        self.farmer_ticket(id, secret).await?;
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        // Subscribe and read under the lock, so no event falls between.
        let mut state = self.state.lock().await;
        self.catch_up(&mut state).await?;
        let (_, history) = self
            .store
            .get(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("no ticket {id:?}")))?;
        state
            .subscribers
            .tickets
            .entry(id.to_string())
            .or_default()
            .push(tx);
        Ok((history, rx))
    }

    /// Checks a responder or liaison token.
    pub async fn authenticate(&self, token: &str) -> Result<Principal> {
        let claims = self.signer.verify(token, now_ms())?;
        match claims.role {
            Role::Responder => {
                if self.service.snapshot().get(&claims.sub).is_none() {
                    return Err(Error::PermissionDenied(format!(
                        "talent {} is no longer in the roster",
                        claims.sub
                    )));
                }
                Ok(Principal::Responder(claims.sub))
            }
            Role::Liaison => {
                if !self.state.lock().await.liaisons.contains_key(&claims.sub) {
                    return Err(Error::PermissionDenied(format!(
                        "liaison {} is no longer on the list",
                        claims.sub
                    )));
                }
                Ok(Principal::Liaison(claims.sub))
            }
        }
    }

    /// What is pending for the caller, then every later change.
    pub async fn watch_assignments(
        &self,
        who: &Principal,
    ) -> Result<(Vec<Push>, mpsc::Receiver<Push>)> {
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let mut state = self.state.lock().await;
        self.catch_up(&mut state).await?;
        let mut tickets: Vec<&Ticket> = match who {
            Principal::Responder(id) => state
                .open
                .values()
                .filter(|t| State::holds(t) == Some(id.as_str()))
                .collect(),
            Principal::Liaison(id) => {
                let villages = state
                    .liaisons
                    .get(id)
                    .map(|l| l.villages.clone())
                    .unwrap_or_default();
                state
                    .open
                    .values()
                    .filter(|t| {
                        t.division_code
                            .as_ref()
                            .is_some_and(|v| villages.contains(v))
                    })
                    .collect()
            }
        };
        tickets.sort_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
        let mut replay = Vec::new();
        for t in tickets {
            let events = self
                .store
                .get(&t.id)
                .await?
                .map(|(_, e)| e)
                .unwrap_or_default();
            if let Some(last) = events.last() {
                let read_only = matches!(who, Principal::Liaison(_));
                replay.push(Push {
                    ticket: t.clone(),
                    event: last.clone(),
                    read_only,
                    replay: true,
                });
            }
        }
        match who {
            Principal::Responder(id) => state
                .subscribers
                .responders
                .entry(id.clone())
                .or_default()
                .push(tx),
            Principal::Liaison(id) => state
                .subscribers
                .liaisons
                .entry(id.clone())
                .or_default()
                .push(tx),
        }
        Ok((replay, rx))
    }

    /// Issues a token for a talent of the roster, or else a liaison.
    pub async fn issue_token(&self, id: &str, ttl_seconds: u64) -> Result<(String, i64, Role)> {
        let ttl = match ttl_seconds {
            0 => DEFAULT_TOKEN_TTL,
            s if Duration::from_secs(s) > MAX_TOKEN_TTL => {
                return Err(Error::invalid(
                    "ttl_seconds",
                    format!("{s} is above the maximum of {}", MAX_TOKEN_TTL.as_secs()),
                ))
            }
            s => Duration::from_secs(s),
        };
        let role = if self.service.snapshot().get(id).is_some() {
            Role::Responder
        } else if self.state.lock().await.liaisons.contains_key(id) {
            Role::Liaison
        } else {
            return Err(Error::NotFound(format!("no talent or liaison {id:?}")));
        };
        let exp = now_ms() + ttl.as_millis() as i64;
        Ok((
            self.signer.issue(&Claims {
                sub: id.to_string(),
                role,
                exp,
            }),
            exp,
            role,
        ))
    }

    /// Replaces the liaison list; returns how many were stored.
    pub async fn import_liaisons(&self, format: RosterFormat, data: &[u8]) -> Result<u64> {
        let list = parse_liaisons(format, data, crate::model::divisions::Divisions::embedded())
            .map_err(Error::invalid_roster)?;
        let mut state = self.state.lock().await;
        self.store.replace_liaisons(&list).await?;
        let n = list.len() as u64;
        state.set_liaisons(list);
        Ok(n)
    }

    /// Tickets newest first; the token is the last ticket's `created:id`.
    pub async fn list_tickets(
        &self,
        state: Option<TicketState>,
        assignee: &str,
        page_size: u32,
        page_token: &str,
    ) -> Result<(Vec<Ticket>, Option<String>)> {
        let limit = match page_size {
            0 => 50,
            n if n > 500 => {
                return Err(Error::invalid(
                    "page_size",
                    format!("{n} is above the maximum of 500"),
                ))
            }
            n => n as usize,
        };
        let after = match page_token.split_once(':') {
            None if page_token.is_empty() => None,
            Some((ms, id)) if ms.parse::<i64>().is_ok() => {
                Some((ms.parse().expect("checked"), id.to_string()))
            }
            _ => {
                return Err(Error::invalid(
                    "page_token",
                    "is not a token this server gave out",
                ))
            }
        };
        let filter = TicketFilter {
            state,
            assignee: (!assignee.is_empty()).then(|| assignee.to_string()),
            after,
            limit: limit + 1,
        };
        let mut tickets = self.store.list(&filter).await?;
        let next = if tickets.len() > limit {
            tickets.truncate(limit);
            tickets
                .last()
                .map(|t| format!("{}:{}", t.created_at_ms, t.id))
        } else {
            None
        };
        Ok((tickets, next))
    }

    /// Ends every live stream (at shutdown); clients reconnect and replay.
    pub async fn close_streams(&self) {
        self.state.lock().await.subscribers = Subscribers::default();
    }

    /// Checks, under the lock, that memory agrees with the store: the same
    /// open tickets in the same states, each responder's load equal to the
    /// tickets it holds, and no load above capacity. Returns what disagrees.
    pub async fn self_check(&self) -> Result<(), String> {
        let mut state = self.state.lock().await;
        self.catch_up(&mut state).await.map_err(|e| e.to_string())?;
        let stored = self.store.open_tickets().await.map_err(|e| e.to_string())?;
        let mut held: HashMap<String, u32> = HashMap::new();
        for (t, _) in &stored {
            match state.open.get(&t.id) {
                Some(m) if m.state == t.state && m.assignee == t.assignee => {}
                other => {
                    let memory = other.map(|m| m.state);
                    return Err(format!(
                        "ticket {}: memory {memory:?}, store {:?}",
                        t.id, t.state
                    ));
                }
            }
            if let Some(h) = State::holds(t) {
                *held.entry(h.to_string()).or_default() += 1;
            }
        }
        if stored.len() != state.open.len() {
            return Err(format!(
                "{} open tickets in memory, {} in the store",
                state.open.len(),
                stored.len()
            ));
        }
        let snapshot = self.service.snapshot();
        for (who, &n) in &held {
            if let Some(t) = snapshot.get(who).filter(|t| n > t.capacity) {
                return Err(format!("{who} holds {n} tickets, capacity {}", t.capacity));
            }
        }
        let loads = state
            .load
            .iter()
            .filter(|(_, &n)| n > 0)
            .map(|(w, &n)| (w.clone(), n));
        if loads.collect::<HashMap<_, _>>() != held {
            return Err(format!(
                "loads in memory {:?}, tickets held in the store {held:?}",
                state.load
            ));
        }
        Ok(())
    }

    /// Current load of a responder (offered plus accepted tickets).
    pub async fn load(&self, talent: &str) -> u32 {
        self.state
            .lock()
            .await
            .load
            .get(talent)
            .copied()
            .unwrap_or(0)
    }
}

/// A ticket id that sorts in creation order within a process: the time,
/// a counter for tickets of the same millisecond, then randomness.
fn new_ticket_id(now_ms: i64) -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 0x1_0000;
    format!("tk-{:011x}{n:04x}{}", now_ms.max(0), random_hex(4))
}

/// The nearest talent of `pool` passing `wanted`, and whether any talent
/// passes `eligible` at all. Fetches ever larger top-k lists until it knows.
fn nearest(
    snapshot: &Snapshot,
    pool: &crate::search::Pool,
    origin: crate::search::Origin,
    words: &[String],
    wanted: impl Fn(&Talent) -> bool,
    eligible: impl Fn(&Talent) -> bool,
) -> Result<(Option<Arc<Talent>>, bool)> {
    let mut k = 64;
    let mut any_eligible = false;
    loop {
        let hits = snapshot.top(pool, origin, words, Ranking::Nearest, k)?;
        for h in &hits {
            if wanted(&h.talent) {
                return Ok((Some(h.talent.clone()), true));
            }
            any_eligible |= eligible(&h.talent);
        }
        if hits.len() < k || k >= snapshot.len() {
            return Ok((None, any_eligible));
        }
        k = (k * 4).min(snapshot.len().max(1));
    }
}

/// Sleeps until the earliest offer deadline (or a change), then lapses what
/// is due. Holds the dispatcher only while working, so it ends with it.
async fn timer_loop(weak: Weak<Dispatcher>, wake: Arc<Notify>) {
    loop {
        let notified = wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let next = {
            let Some(d) = weak.upgrade() else { return };
            let next = d.state.lock().await.deadlines.first().map(|(at, _)| *at);
            next
        };
        let wait = match next {
            Some(at) => Duration::from_millis((at - now_ms()).max(0) as u64),
            None => Duration::from_secs(3600),
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = &mut notified => continue,
        }
        let Some(d) = weak.upgrade() else { return };
        if let Err(e) = d.expire_offers().await {
            tracing::error!(error = %e, "could not expire offers");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

async fn roster_watch(weak: Weak<Dispatcher>, mut versions: tokio::sync::watch::Receiver<u64>) {
    while versions.changed().await.is_ok() {
        let Some(d) = weak.upgrade() else { return };
        if let Err(e) = d.reroute_departed().await {
            tracing::error!(error = %e, "could not re-route after a roster change");
        }
    }
}

/// Catches up with other replicas whenever the store says they wrote, and
/// every second in case a notification was lost.
async fn follow_changes(
    weak: Weak<Dispatcher>,
    mut notifications: tokio::sync::watch::Receiver<u64>,
) {
    loop {
        tokio::select! {
            changed = notifications.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        let Some(d) = weak.upgrade() else { return };
        if let Err(e) = d.sync().await {
            tracing::warn!(error = %e, "could not catch up with other replicas");
        }
    }
}
