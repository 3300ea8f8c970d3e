//! The dispatcher: turns submitted problems into tickets and moves them,
//! offering each to the nearest qualified responder that is ONLINE and below
//! capacity (or, with a webhook configured, not AWAY: an offer through a
//! notification, with its own longer timeout), re-offering on decline or timeout (never to the same person
//! twice), escalating village → county/town → city, queueing when nobody is
//! free, and streaming every change to farmers, responders and liaisons.
//!
//! Every change is decided by the state machine (`machine`) on a copy of
//! the ticket under one lock that serialises the decisions of this
//! process, applied at once to the in-memory state (load per responder,
//! offer deadlines, exclusions) so the next decision sees it, and queued
//! for the store (`commit`): decisions made while a commit is in flight
//! are committed together with their events, then pushed to streams
//! (`fanout`) and acknowledged. A failed commit leaves its tickets dirty:
//! they are reloaded from the store before the next decision. Across
//! replicas a batch commits only if nobody else committed since this
//! replica last caught up with the store's change log (else it catches up
//! and decides again), so capacity is never exceeded and no ticket is
//! offered twice.

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    sync::{atomic::AtomicU64, Arc, Weak},
    time::Duration,
};

use tokio::sync::{mpsc, oneshot, Mutex, Notify};

use super::{
    access::Keys,
    commit::{committer, Outcome, Pending},
    drain::Freed,
    fanout::{Liaisons, Subscribers},
    machine::{self, Command, Context, DispatchConfig, Routes, Transition},
    now_ms, random_hex, Availability, Event, EventKind, Rating, Ticket, TicketState,
};
use crate::{
    error::{check_free_text, check_id, check_len, check_no_controls, MAX_ID_BYTES},
    error::{Error, Result},
    matching::{Matcher, Need},
    metrics,
    model::Location,
    model::{
        ids::{TalentId, TicketId},
        Tier,
    },
    notify::Notifier,
    reading::analyzer::Analysis,
    store::{Change, Note, TicketStore, Write},
};

const MAX_CONTACT_CHARS: usize = 64;
const MAX_KEY_CHARS: usize = 128;
const MAX_ANSWER_CHARS: usize = 4_000;
const MAX_REASON_CHARS: usize = 500;
/// Longest comment a farmer may give with a rating, in characters.
pub(crate) const MAX_COMMENT_CHARS: usize = 500;

/// A submitted problem.
#[derive(Debug, Clone, Default)]
pub struct Submission {
    pub text: String,
    pub location: Option<Location>,
    pub contact: String,
    pub idempotency_key: String,
    /// Photo ids from uploads (at most [`crate::photos::MAX_PER_TICKET`]).
    pub photos: Vec<String>,
}

/// What this process knows, under the dispatcher's lock.
#[derive(Default)]
pub(super) struct State {
    /// Queued, offered and accepted tickets.
    pub(super) open: HashMap<String, Ticket>,
    /// Last event number per open ticket.
    pub(super) seq: HashMap<String, u64>,
    /// Responders who may not be offered a ticket again.
    pub(super) excluded: HashMap<String, HashSet<String>>,
    /// Offered and accepted tickets per responder.
    pub(super) load: HashMap<String, u32>,
    pub(super) presence: HashMap<String, Availability>,
    /// (deadline, ticket id) of every open offer.
    deadlines: BTreeSet<(i64, String)>,
    /// (created_at_ms, ticket id) of every QUEUED ticket of `open`, kept by
    /// `apply`: a drain walks it oldest first without sorting the open
    /// tickets, and its length is checked against the cap
    /// (`tickets.max_queued`). With replicas it is this replica's view of
    /// the shared store (caught up before a submission when the store told
    /// of a change), so replicas may together hold somewhat more.
    pub(super) queue: BTreeSet<(i64, String)>,
    pub(super) liaisons: Liaisons,
    pub(super) subscribers: Subscribers,
    /// The last entry of the store's change log reflected here.
    cursor: u64,
    /// Tickets with decisions applied here but not yet committed, and how
    /// many.
    pending: HashMap<String, u32>,
    /// The idempotency keys of new tickets not yet committed.
    pending_keys: HashSet<String>,
    /// Tickets whose uncommitted changes were refused or failed: reloaded
    /// from the store before the next decision.
    dirty: HashSet<String>,
    /// The store's change notifications, as seen by submissions
    /// ([`Dispatcher::catch_up_if_told`]); None: a store without them.
    heard: Option<tokio::sync::watch::Receiver<u64>>,
    /// A commit of this replica was refused or failed (or a catch-up
    /// failed) since the last catch-up: the next submission catches up.
    pub(super) behind: bool,
}

impl State {
    /// Applies a committed change and pushes it to streams.
    fn apply(&mut self, old: Option<&Ticket>, new: &Ticket, events: &[Event]) {
        self.record(old, new, events);
        let previous_holder = old.and_then(Ticket::holder);
        self.subscribers
            .push(&self.liaisons, new, events, previous_holder);
    }

    /// Applies a change: derives load, deadlines and exclusions from the
    /// old and new rows and the events.
    fn record(&mut self, old: Option<&Ticket>, new: &Ticket, events: &[Event]) {
        metrics::ticket_moved(old.map(|o| o.state), new.state);
        if let Some(o) = old.filter(|o| o.state == TicketState::Queued) {
            self.queue.remove(&(o.created_at_ms, o.id.clone()));
        }
        if new.state == TicketState::Queued {
            self.queue.insert((new.created_at_ms, new.id.clone()));
        }
        metrics::queue_length(self.queue.len());
        if let Some(old) = old {
            if let Some(t) = old.holder() {
                if let Some(n) = self.load.get_mut(t) {
                    *n = n.saturating_sub(1);
                }
            }
            if let Some(d) = old.offer_deadline_ms {
                self.deadlines.remove(&(d, old.id.clone()));
            }
        }
        if let Some(t) = new.holder() {
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
    }

    /// Applies a decision before its commit ([`State::confirm`] or
    /// [`State::abandon`] follow) and queues it for the committer.
    fn decide(
        &mut self,
        commits: &mpsc::UnboundedSender<Pending>,
        old: Option<Ticket>,
        write: Write,
    ) -> oneshot::Receiver<Outcome> {
        self.record(old.as_ref(), &write.ticket, &write.events);
        *self.pending.entry(write.ticket.id.clone()).or_default() += 1;
        if let (true, Some(key)) = (write.new, &write.ticket.idempotency_key) {
            self.pending_keys.insert(key.clone());
        }
        let (done, answer) = oneshot::channel();
        let pending = Pending {
            old,
            write,
            cursor: self.cursor,
            done,
        };
        if let Err(unsent) = commits.send(pending) {
            // No committer (the dispatcher is going away): the answer's
            // sender is dropped, so the caller sees an error.
            self.abandon(&unsent.0.write);
        }
        answer
    }

    /// The change log's head after a commit of this replica.
    pub(super) fn committed(&mut self, head: u64) {
        self.cursor = self.cursor.max(head);
    }

    /// A decision's commit is durable: pushes it to streams.
    pub(super) fn confirm(&mut self, old: Option<&Ticket>, write: &Write) {
        self.settle(write);
        let previous_holder = old.and_then(Ticket::holder);
        self.subscribers.push(
            &self.liaisons,
            &write.ticket,
            &write.events,
            previous_holder,
        );
    }

    /// A decision's commit was refused or failed: its ticket is reloaded
    /// before the next decision.
    pub(super) fn abandon(&mut self, write: &Write) {
        self.settle(write);
        self.dirty.insert(write.ticket.id.clone());
    }

    fn settle(&mut self, write: &Write) {
        let id = &write.ticket.id;
        if let Some(n) = self.pending.get_mut(id) {
            *n -= 1;
            if *n == 0 {
                self.pending.remove(id);
            }
        }
        if let (true, Some(key)) = (write.new, &write.ticket.idempotency_key) {
            self.pending_keys.remove(key);
        }
    }

    /// Removes what this process holds of a ticket (before reloading it).
    fn forget(&mut self, id: &str) {
        self.seq.remove(id);
        self.excluded.remove(id);
        let Some(t) = self.open.remove(id) else {
            return;
        };
        metrics::ticket_moved(Some(t.state), TicketState::Cancelled);
        if t.state == TicketState::Queued {
            self.queue.remove(&(t.created_at_ms, t.id.clone()));
            metrics::queue_length(self.queue.len());
        }
        if let Some(n) = t.holder().and_then(|h| self.load.get_mut(h)) {
            *n = n.saturating_sub(1);
        }
        if let Some(d) = t.offer_deadline_ms {
            self.deadlines.remove(&(d, t.id.clone()));
        }
    }
}

pub struct Dispatcher {
    pub(super) store: Arc<dyn TicketStore>,
    pub(super) matcher: Arc<Matcher>,
    pub(super) keys: Keys,
    pub(super) config: DispatchConfig,
    pub(super) state: Mutex<State>,
    timer: Arc<Notify>,
    /// Writes each change's notifications with it (None: no webhooks).
    notifier: Option<Arc<Notifier>>,
    /// How many times routing ran: what a drain costs, which tests bound.
    pub(super) routings: AtomicU64,
    /// Decisions to commit, in the order they were made (`commit`).
    commits: mpsc::UnboundedSender<Pending>,
    /// Notified after each commit, whatever its outcome.
    pub(super) settled: Notify,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Dispatcher {
    /// Loads open tickets, presence and liaisons from the store, resumes
    /// offer timers from their stored deadlines, and starts the timer and
    /// roster-watch tasks.
    pub async fn start(
        store: Arc<dyn TicketStore>,
        matcher: Arc<Matcher>,
        config: DispatchConfig,
    ) -> Result<Arc<Dispatcher>> {
        Dispatcher::start_notifying(store, matcher, config, None).await
    }

    /// [`Dispatcher::start`], each change committed with the notifications
    /// `notifier` makes of it (the outbox).
    pub async fn start_notifying(
        store: Arc<dyn TicketStore>,
        matcher: Arc<Matcher>,
        config: DispatchConfig,
        notifier: Option<Arc<Notifier>>,
    ) -> Result<Arc<Dispatcher>> {
        let key = store.signing_key().await?;
        let mut state = State {
            // Read before the rows: what changes meanwhile is caught up again.
            cursor: store.head().await?,
            heard: store.notifications(),
            ..State::default()
        };
        for (ticket, events) in store.open_tickets().await? {
            state.apply(None, &ticket, &events);
        }
        for (talent, availability) in store.availabilities().await? {
            state.presence.insert(talent, availability);
        }
        state.liaisons.set(store.liaisons().await?);
        let (commits, queue) = mpsc::unbounded_channel();
        let dispatcher = Arc::new(Dispatcher {
            store,
            matcher,
            keys: Keys::new(key),
            config,
            state: Mutex::new(state),
            timer: Arc::new(Notify::new()),
            notifier,
            routings: AtomicU64::new(0),
            commits,
            settled: Notify::new(),
        });
        tokio::spawn(committer(Arc::downgrade(&dispatcher), queue));
        tokio::spawn(timer_loop(
            Arc::downgrade(&dispatcher),
            dispatcher.timer.clone(),
        ));
        tokio::spawn(roster_watch(
            Arc::downgrade(&dispatcher),
            dispatcher.matcher.roster_versions(),
        ));
        if let Some(notifications) = dispatcher.store.notifications() {
            tokio::spawn(follow_changes(Arc::downgrade(&dispatcher), notifications));
        }
        dispatcher.drain_queue(Freed::Anyone).await?;
        Ok(dispatcher)
    }

    /// Submits a problem: analysed, stored and routed before it returns.
    /// Returns the ticket, its history and the farmer's secret.
    pub async fn submit(&self, s: Submission) -> Result<(Ticket, Vec<Event>, String)> {
        check_len("contact", &s.contact, MAX_CONTACT_CHARS)?;
        check_no_controls("contact", &s.contact, |_| false)?;
        check_len("idempotency_key", &s.idempotency_key, MAX_KEY_CHARS)?;
        check_no_controls("idempotency_key", &s.idempotency_key, |_| false)?;
        crate::photos::check_ids(&s.photos)?;
        Matcher::check_text(&s.text, "text")?;
        let origin = self
            .matcher
            .resolve_location(s.location.as_ref(), "location")?;
        let key =
            (!s.idempotency_key.trim().is_empty()).then(|| s.idempotency_key.trim().to_string());
        let location = s.location.clone().expect("resolved above");
        let analysis = self.matcher.analyze(&s.text, origin);
        let need = Need::of(&analysis);
        let draft = self.draft(&s, location, &analysis, &need, key.clone());
        let mut state = self.state.lock().await;
        let Transition { ticket, events } = loop {
            let deciding = std::time::Instant::now();
            self.repair(&mut state).await?;
            self.catch_up_if_told(&mut state).await?;
            if let Some(key) = &key {
                if state.pending_keys.contains(key) {
                    // The same key is being committed: look again after.
                    state = self.after_commit(state).await;
                    continue;
                }
                if let Some(existing) = self.store.find_by_idempotency_key(key).await? {
                    return self.existing(&existing).await;
                }
            }
            let now = now_ms();
            let draft = Ticket {
                created_at_ms: now,
                updated_at_ms: now,
                ..draft.clone()
            };
            let routes = if need.subject.is_none() && need.corps.is_none() && !need.triage {
                Routes::unqualified(if analysis.note.is_empty() {
                    "无法判断问题所属品类".into()
                } else {
                    analysis.note.clone()
                })
            } else {
                self.routes(&state, &draft, &need, draft.tier)?
            };
            let cx = self.context(now, 0, &routes);
            let made = machine::step(&draft, &Command::Submit, &cx)?;
            // Only a ticket that would wait counts against the cap: one
            // offered at once or UNROUTABLE goes through. Checked after the
            // idempotency key, so a resubmission still gets its ticket.
            if made.ticket.state == TicketState::Queued
                && state.queue.len() >= self.config.max_queued
            {
                metrics::shed("max_queued");
                return Err(queue_full(self.config.max_queued));
            }
            let notes = self.notes(&state, &made.ticket, &made.events);
            let write = Write {
                ticket: made.ticket.clone(),
                events: made.events.clone(),
                notes,
                new: true,
            };
            let answer = state.decide(&self.commits, None, write);
            drop(state);
            metrics::decided(deciding.elapsed());
            match committed(answer).await? {
                true => break made,
                false => state = self.state.lock().await,
            }
        };
        count(&ticket, &events);
        if ticket.offer_deadline_ms.is_some() {
            // A new deadline: the timer may have to wake sooner.
            self.timer.notify_one();
        }
        self.wake_notifier();
        let secret = self.keys.secret(&ticket.id);
        Ok((ticket, events, secret))
    }

    /// A new ticket as submitted, queued at the village tier (a triage one
    /// at the county/town tier); the times are
    /// set when it is committed.
    fn draft(
        &self,
        s: &Submission,
        location: Location,
        analysis: &Analysis,
        need: &Need,
        key: Option<String>,
    ) -> Ticket {
        let lexicon = self.matcher.lexicon();
        Ticket {
            id: new_ticket_id(now_ms()),
            text: s.text.clone(),
            division_code: match &location {
                Location::Division(code) => Some(code.trim().to_string()),
                Location::Point { .. } => None,
            },
            location,
            subject: analysis.subject.map(|id| lexicon.subject(id).name.clone()),
            corps: analysis.corps,
            words: Some(need.words.clone()),
            photos: s.photos.clone(),
            contact: s.contact.trim().to_string(),
            idempotency_key: key,
            state: TicketState::Queued,
            assignee: None,
            // Triage starts with the county/town backbone staff: they cover
            // every crop and animal of their area and can ask what it is.
            tier: if need.triage {
                Tier::CountyTown
            } else {
                Tier::Village
            },
            offers_in_tier: 0,
            offer_deadline_ms: None,
            answer: String::new(),
            reason: String::new(),
            created_at_ms: 0,
            updated_at_ms: 0,
            rating: None,
        }
    }

    /// A ticket submitted before under the same idempotency key.
    async fn existing(&self, id: &str) -> Result<(Ticket, Vec<Event>, String)> {
        let (ticket, events) = self
            .store
            .get(id)
            .await?
            .ok_or_else(|| Error::Internal("ticket vanished".into()))?;
        let secret = self.keys.secret(&ticket.id);
        Ok((ticket, events, secret))
    }

    /// The notifications a change makes, to be committed with it.
    fn notes(&self, state: &State, ticket: &Ticket, events: &[Event]) -> Vec<Note> {
        match &self.notifier {
            None => Vec::new(),
            Some(n) => {
                let liaisons = state.liaisons.of_village(ticket.division_code.as_deref());
                let link = self.offer_action_url(n.public_base_url(), ticket);
                n.notes(ticket, events, &liaisons, link.as_deref())
            }
        }
    }

    fn wake_notifier(&self) {
        if let Some(n) = &self.notifier {
            n.wake();
        }
    }

    fn context<'a>(&'a self, now_ms: i64, last_seq: u64, routes: &'a Routes) -> Context<'a> {
        Context {
            now_ms,
            last_seq,
            routes,
            config: &self.config,
        }
    }

    /// Reloads from the store the tickets whose uncommitted changes were
    /// refused or failed.
    async fn repair(&self, state: &mut State) -> Result<()> {
        while let Some(id) = state.dirty.iter().next().cloned() {
            let stored = self.store.get(&id).await?;
            state.forget(&id);
            if let Some((ticket, events)) = stored.filter(|(t, _)| t.state.is_open()) {
                state.record(None, &ticket, &events);
            }
            state.dirty.remove(&id);
        }
        Ok(())
    }

    /// Releases the lock until the next commit has settled, then takes it
    /// again.
    pub(super) async fn after_commit<'a>(
        &'a self,
        state: tokio::sync::MutexGuard<'a, State>,
    ) -> tokio::sync::MutexGuard<'a, State> {
        let settled = self.settled.notified();
        tokio::pin!(settled);
        settled.as_mut().enable();
        drop(state);
        settled.await;
        self.state.lock().await
    }

    /// Takes the lock once nothing is waiting for a commit and memory
    /// agrees with the store.
    pub(super) async fn quiet(&self) -> Result<tokio::sync::MutexGuard<'_, State>> {
        let mut state = self.state.lock().await;
        while !state.pending.is_empty() {
            state = self.after_commit(state).await;
        }
        self.repair(&mut state).await?;
        Ok(state)
    }

    /// Applies what other replicas committed since `state.cursor`: each
    /// changed ticket once, at its stored state, with the events this
    /// process has not seen (which also pushes them to local streams).
    pub(super) async fn catch_up(&self, state: &mut State) -> Result<()> {
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
                // Being committed by this replica: its commit either holds
                // this change or is refused and reloads the ticket.
                Change::Ticket(id) if state.pending.contains_key(&id) => {}
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
                Change::Liaisons => state.liaisons.set(self.store.liaisons().await?),
            }
        }
        state.cursor = last;
        self.timer.notify_one();
        Ok(())
    }

    /// [`Dispatcher::catch_up`] when the store told of a change since the
    /// last time (its notifications: each commit of any replica, and each
    /// time it starts listening again) or this replica's last commit was
    /// refused: before a new ticket's decision, which commits only if the
    /// change log has not moved since `state.cursor` (else it is refused,
    /// caught up and decided again), so skipping the query when nothing was
    /// told costs no correctness, only a retry now and then. A store without
    /// notifications is caught up before every submission, as before.
    async fn catch_up_if_told(&self, state: &mut State) -> Result<()> {
        let told = match &mut state.heard {
            Some(heard) => {
                let told = heard.has_changed().unwrap_or(true);
                // Marked seen before the query: a change told during it is
                // caught up next time.
                heard.borrow_and_update();
                told
            }
            None => true,
        };
        if told || state.behind {
            state.behind = true;
            self.catch_up(state).await?;
            state.behind = false;
        }
        Ok(())
    }

    /// Catches up with other replicas' changes now.
    async fn sync(&self) -> Result<()> {
        let mut state = self.state.lock().await;
        self.catch_up(&mut state).await
    }

    /// Moves one open ticket by `command`: the state machine decides (with
    /// routing's findings when the command routes it), the result is
    /// committed, then applied. A closed ticket refuses every command.
    pub(super) async fn change(&self, id: &TicketId, command: Command) -> Result<Ticket> {
        check_id("ticket_id", id.as_str(), MAX_ID_BYTES)?;
        let mut state = self.state.lock().await;
        loop {
            self.repair(&mut state).await?;
            self.catch_up(&mut state).await?;
            let Some(old) = state.open.get(id.as_str()).cloned() else {
                return Err(match self.store.get(id.as_str()).await? {
                    Some((closed, _)) => machine::refusal(&closed, &command),
                    None => {
                        Error::NotFound(format!("no ticket {}", crate::error::quote(id.as_str())))
                    }
                });
            };
            let now = now_ms();
            let routes = match machine::routing_from(&old, &command, now, &self.config) {
                Some(from) => {
                    let need = old.need(self.matcher.lexicon());
                    self.routes(&state, &old, &need, from)?
                }
                None => Routes::default(),
            };
            let last_seq = state.seq.get(id.as_str()).copied().unwrap_or(0);
            let cx = self.context(now, last_seq, &routes);
            let Transition { ticket, events } = machine::step(&old, &command, &cx)?;
            if events.is_empty() {
                return Ok(ticket);
            }
            if self.commit_change(state, old, &ticket, &events).await? {
                count(&ticket, &events);
                self.timer.notify_one();
                return Ok(ticket);
            }
            state = self.state.lock().await;
        }
    }

    /// Queues the change of an existing ticket for the committer (its
    /// notifications with it), releases the lock and waits for the commit:
    /// true once durable (the notifier woken if there is anything to send),
    /// false when the change must be decided again.
    async fn commit_change(
        &self,
        mut state: tokio::sync::MutexGuard<'_, State>,
        old: Ticket,
        ticket: &Ticket,
        events: &[Event],
    ) -> Result<bool> {
        let notes = self.notes(&state, ticket, events);
        let notified = !notes.is_empty();
        let write = Write {
            ticket: ticket.clone(),
            events: events.to_vec(),
            notes,
            new: false,
        };
        let answer = state.decide(&self.commits, Some(old), write);
        drop(state);
        let done = committed(answer).await?;
        if done && notified {
            self.wake_notifier();
        }
        Ok(done)
    }

    pub async fn accept(&self, talent: &TalentId, id: &TicketId) -> Result<Ticket> {
        let by = talent.clone();
        self.change(id, Command::Accept { by }).await
    }

    pub async fn decline(&self, talent: &TalentId, id: &TicketId, reason: &str) -> Result<Ticket> {
        check_free_text("reason", reason, MAX_REASON_CHARS)?;
        let (by, reason) = (talent.clone(), reason.trim().to_string());
        let ticket = self.change(id, Command::Decline { by, reason }).await?;
        self.drain_queue(Freed::Talents(vec![talent.to_string()]))
            .await?;
        Ok(ticket)
    }

    pub async fn resolve(&self, talent: &TalentId, id: &TicketId, answer: &str) -> Result<Ticket> {
        check_len("answer", answer, MAX_ANSWER_CHARS)?;
        if answer.trim().is_empty() {
            return Err(Error::invalid(
                "answer",
                "is empty: tell the farmer what to do",
            ));
        }
        check_free_text("answer", answer, MAX_ANSWER_CHARS)?;
        let (by, answer) = (talent.clone(), answer.trim().to_string());
        let ticket = self.change(id, Command::Resolve { by, answer }).await?;
        self.drain_queue(Freed::Talents(vec![talent.to_string()]))
            .await?;
        Ok(ticket)
    }

    pub async fn escalate(&self, talent: &TalentId, id: &TicketId, reason: &str) -> Result<Ticket> {
        check_free_text("reason", reason, MAX_REASON_CHARS)?;
        let (by, reason) = (talent.clone(), reason.trim().to_string());
        let ticket = self.change(id, Command::Escalate { by, reason }).await?;
        self.drain_queue(Freed::Talents(vec![talent.to_string()]))
            .await?;
        Ok(ticket)
    }

    pub(crate) async fn cancel(&self, id: &TicketId, secret: &str) -> Result<Ticket> {
        self.farmer_ticket(id, secret).await?;
        let ticket = self.change(id, Command::Cancel).await?;
        // A cancelled ticket keeps its assignee: whoever held it is free.
        self.drain_queue(Freed::holder_of(&ticket)).await?;
        Ok(ticket)
    }

    /// Records the farmer's rating of a resolved ticket's answer, proven
    /// theirs by `secret`: 1 to 5 `stars` and an optional `comment`, once
    /// per ticket (`machine::rate` decides). Returns the ticket with its
    /// history, the `Rated` event last; the event is pushed to the farmer's
    /// watchers and to the responder who answered.
    pub(crate) async fn rate(
        &self,
        id: &TicketId,
        secret: &str,
        stars: u32,
        comment: &str,
    ) -> Result<(Ticket, Vec<Event>)> {
        let stars = u8::try_from(stars)
            .ok()
            .filter(|s| (1..=5).contains(s))
            .ok_or_else(|| {
                Error::invalid(
                    "stars",
                    format!("is {stars}; give 1 to 5 stars (请选择1到5颗星)"),
                )
            })?;
        check_free_text("comment", comment, MAX_COMMENT_CHARS)?;
        self.farmer_ticket(id, secret).await?;
        let rating = Rating {
            stars,
            comment: comment.trim().to_string(),
        };
        let mut state = self.state.lock().await;
        loop {
            self.repair(&mut state).await?;
            self.catch_up(&mut state).await?;
            if state.pending.contains_key(id.as_str()) {
                // A change of this ticket is being committed (its answer,
                // or another rating): look again after it.
                state = self.after_commit(state).await;
                continue;
            }
            let Some((old, mut history)) = self.store.get(id.as_str()).await? else {
                return Err(Error::NotFound(format!(
                    "no ticket {}",
                    crate::error::quote(id.as_str())
                )));
            };
            let last_seq = history.last().map_or(0, |e| e.seq);
            let routes = Routes::default();
            let cx = self.context(now_ms(), last_seq, &routes);
            let Transition { ticket, events } = machine::rate(&old, rating.clone(), &cx)?;
            if self.commit_change(state, old, &ticket, &events).await? {
                history.extend(events);
                return Ok((ticket, history));
            }
            state = self.state.lock().await;
        }
    }

    /// Lapses every offer whose deadline has passed, then offers queued
    /// tickets to the responders whose offers lapsed.
    pub async fn expire_offers(&self) -> Result<()> {
        let mut lapsed = Vec::new();
        loop {
            let due = {
                let state = self.state.lock().await;
                state
                    .deadlines
                    .first()
                    .filter(|(at, _)| *at <= now_ms())
                    .map(|(_, id)| {
                        let holder = state.open.get(id).and_then(|t| t.holder());
                        lapsed.extend(holder.map(str::to_string));
                        TicketId::new(id.as_str())
                    })
            };
            let Some(id) = due else { break };
            match self.change(&id, Command::OfferTimedOut).await {
                // Closed meanwhile by another replica: nothing to lapse.
                Ok(_) | Err(Error::FailedPrecondition(_) | Error::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        self.drain_queue(Freed::Talents(lapsed)).await
    }

    /// Re-routes open tickets whose responder left the roster, was
    /// deactivated or lost all capacity; then routes every queued ticket
    /// again, as who qualifies for it may have changed.
    async fn reroute_departed(&self) -> Result<()> {
        let snapshot = self.matcher.snapshot();
        let departed: Vec<TicketId> = {
            let state = self.state.lock().await;
            state
                .open
                .values()
                .filter(|t| {
                    t.holder()
                        .is_some_and(|a| !snapshot.get(a).is_some_and(|x| x.is_available()))
                })
                .map(|t| TicketId::new(t.id.as_str()))
                .collect()
        };
        for id in departed {
            if let Err(e) = self.change(&id, Command::HolderDeparted).await {
                tracing::warn!(ticket = %id, error = %e, "could not re-route");
            }
        }
        self.drain_queue(Freed::Reroute).await
    }

    pub async fn set_availability(
        &self,
        talent: &TalentId,
        availability: Availability,
    ) -> Result<()> {
        if availability == Availability::Online {
            // Only a talent who can take offers may say so: a deactivated
            // one (or one taken out of the roster meanwhile) is refused
            // rather than shown ONLINE and never offered anything.
            let active = self
                .matcher
                .snapshot()
                .get(talent.as_str())
                .map(|t| t.active);
            if active != Some(true) {
                return Err(Error::FailedPrecondition(format!(
                    "talent {talent} is deactivated in the roster and cannot go ONLINE: \
                     ask the roster admin to set active=true, then try again"
                )));
            }
        }
        self.store
            .set_availability(talent.as_str(), availability, now_ms())
            .await?;
        self.state
            .lock()
            .await
            .presence
            .insert(talent.to_string(), availability);
        // Someone who may be offered tickets now takes queued ones.
        let notified = self.config.notified_offer_timeout.is_some();
        if availability == Availability::Online
            || (notified && availability == Availability::Offline)
        {
            self.drain_queue(Freed::Talents(vec![talent.to_string()]))
                .await?;
        }
        Ok(())
    }
}

/// Waits for a decision's commit: true once durable, false when it must
/// be decided again.
async fn committed(answer: oneshot::Receiver<Outcome>) -> Result<bool> {
    match answer.await {
        Ok(Outcome::Committed) => Ok(true),
        Ok(Outcome::Retry) => Ok(false),
        Ok(Outcome::Failed(e)) => Err(e),
        Err(_) => Err(Error::Unavailable(
            "the server is shutting down: nothing was saved; please try again".into(),
        )),
    }
}

/// The refusal of a submission past `tickets.max_queued`, in words a
/// farmer's front end can show as they are.
fn queue_full(max_queued: usize) -> Error {
    Error::ResourceExhausted(format!(
        "too many problems are waiting for an expert right now ({}, the limit \
         tickets.max_queued): nothing was saved; please try again in a little while",
        crate::error::thousands(max_queued as u64)
    ))
}

/// Counts what this replica committed: offers made, declined and lapsed,
/// the times to accept and resolve, tickets closed. (Changes caught up
/// from other replicas are counted by the replica that made them.)
fn count(ticket: &Ticket, events: &[Event]) {
    let since_submit = |e: &Event| {
        Duration::from_millis(u64::try_from(e.at_ms - ticket.created_at_ms).unwrap_or(0))
    };
    for e in events {
        match e.kind {
            EventKind::Offered => metrics::offer_made(e.tier),
            EventKind::Declined => metrics::offer_declined(e.tier),
            EventKind::OfferTimedOut => metrics::offer_lapsed(e.tier),
            EventKind::Accepted => metrics::ticket_accepted(e.tier, since_submit(e)),
            EventKind::Resolved => metrics::ticket_resolved(e.tier, since_submit(e)),
            _ => {}
        }
    }
    if !ticket.state.is_open() {
        metrics::ticket_closed(ticket.state);
    }
}

/// A ticket id that sorts in creation order within a process: the time,
/// a counter for tickets of the same millisecond, then randomness.
fn new_ticket_id(now_ms: i64) -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 0x1_0000;
    format!("tk-{:011x}{n:04x}{}", now_ms.max(0), random_hex(4))
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

#[cfg(test)]
mod tests;
