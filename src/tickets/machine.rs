//! The ticket state machine, pure: a transition takes a ticket, a command,
//! the time and the routing outcomes it may need (as plain data), and
//! returns the new ticket with its events, or the domain error refusing the
//! command. No store, no locks, no waiting: the dispatcher commits what a
//! transition returns and only then applies it.

use std::time::Duration;

use super::{Actor, Event, EventKind, Rating, Ticket, TicketState};
use crate::{
    config::{Config, TicketConfig},
    error::{Error, Result},
    model::{ids::TalentId, Tier},
};

#[derive(Debug, Clone, PartialEq)]
pub struct DispatchConfig {
    /// How long an offer waits for acceptance.
    pub offer_timeout: Duration,
    /// Offers at one tier without acceptance before moving a tier up.
    pub escalate_after: u32,
    /// Tickets that may wait QUEUED at once (`tickets.max_queued`).
    pub max_queued: usize,
    /// How long an offer made through a notification waits
    /// (`tickets.notified_offer_timeout_ms`), when a webhook is configured;
    /// then responders who are not ONLINE (and not AWAY) may be offered
    /// tickets too. None: offers go to ONLINE responders only.
    pub notified_offer_timeout: Option<Duration>,
}

impl From<&TicketConfig> for DispatchConfig {
    /// The ticket settings, without notifications.
    fn from(c: &TicketConfig) -> DispatchConfig {
        DispatchConfig {
            offer_timeout: Duration::from_millis(c.offer_timeout_ms),
            escalate_after: c.escalate_after,
            max_queued: c.max_queued,
            notified_offer_timeout: None,
        }
    }
}

impl From<&Config> for DispatchConfig {
    /// The ticket settings, with offers through notifications when a
    /// webhook is configured (`notify.enabled()`).
    fn from(c: &Config) -> DispatchConfig {
        DispatchConfig {
            notified_offer_timeout: c
                .notify
                .enabled()
                .then(|| Duration::from_millis(c.tickets.notified_offer_timeout_ms)),
            ..DispatchConfig::from(&c.tickets)
        }
    }
}

/// The configuration's defaults, written once in [`TicketConfig`].
impl Default for DispatchConfig {
    fn default() -> DispatchConfig {
        DispatchConfig::from(&TicketConfig::default())
    }
}

/// What is asked of a ticket.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Command {
    /// A new ticket (queued, without events) is recorded and routed.
    Submit,
    Accept {
        by: TalentId,
    },
    Decline {
        by: TalentId,
        reason: String,
    },
    Resolve {
        by: TalentId,
        answer: String,
    },
    Escalate {
        by: TalentId,
        reason: String,
    },
    /// The farmer withdraws the ticket.
    Cancel,
    /// The offer's deadline has passed.
    OfferTimedOut,
    /// The responder holding the ticket left the roster or was deactivated.
    HolderDeparted,
    /// A queued ticket is tried again: someone may be free now.
    Drain,
}

impl Command {
    /// The responder giving the command, if a responder gives it.
    fn responder(&self) -> Option<&TalentId> {
        match self {
            Command::Accept { by }
            | Command::Decline { by, .. }
            | Command::Resolve { by, .. }
            | Command::Escalate { by, .. } => Some(by),
            _ => None,
        }
    }
}

/// What routing found at one tier: the nearest eligible responder who is
/// free, or eligible responders who are all busy, or nobody eligible.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Pick {
    /// Offered with `offer_timeout`: the responder is ONLINE.
    Offer(TalentId),
    /// Offered through a notification with `notified_offer_timeout`: the
    /// responder is not ONLINE (nor AWAY) and a webhook is configured.
    Notify(TalentId),
    Busy,
    Nobody,
}

/// The routing outcomes a transition may need.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Routes {
    /// Why nobody in the roster qualifies at all: the ticket is unroutable.
    pub(crate) unqualified: Option<String>,
    /// What routing found at each tier it looked at.
    pub(crate) picks: Vec<(Tier, Pick)>,
}

impl Routes {
    pub(crate) fn unqualified(reason: String) -> Routes {
        Routes {
            unqualified: Some(reason),
            picks: Vec::new(),
        }
    }

    fn at(&self, tier: Tier) -> Result<&Pick> {
        self.picks
            .iter()
            .find(|(t, _)| *t == tier)
            .map(|(_, pick)| pick)
            .ok_or_else(|| {
                Error::Internal(format!("routing did not look at the {} tier", tier.key()))
            })
    }
}

/// Everything a transition needs besides the ticket and the command.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Context<'a> {
    pub(crate) now_ms: i64,
    /// The number of the ticket's last event (0 for a new ticket).
    pub(crate) last_seq: u64,
    pub(crate) routes: &'a Routes,
    pub(crate) config: &'a DispatchConfig,
}

/// A ticket after a command, and the events that led there (none when the
/// command changed nothing).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Transition {
    pub(crate) ticket: Ticket,
    pub(crate) events: Vec<Event>,
}

/// The tier a re-route starts at: one up when this tier has had its offers.
fn reroute_tier(tier: Tier, offers_in_tier: u32, config: &DispatchConfig) -> Tier {
    if offers_in_tier >= config.escalate_after {
        tier.above().unwrap_or(tier)
    } else {
        tier
    }
}

fn is_due(ticket: &Ticket, now_ms: i64) -> bool {
    ticket.state == TicketState::Offered && ticket.offer_deadline_ms.is_some_and(|at| at <= now_ms)
}

fn owns(ticket: &Ticket, talent: &TalentId, states: &[TicketState]) -> bool {
    ticket.assignee.as_deref() == Some(talent.as_str()) && states.contains(&ticket.state)
}

/// The tier routing must start at for `command`, when the command routes
/// the ticket at all: the dispatcher asks routing about it and those above.
pub(crate) fn routing_from(
    ticket: &Ticket,
    command: &Command,
    now_ms: i64,
    config: &DispatchConfig,
) -> Option<Tier> {
    use TicketState::{Accepted, Offered, Queued};
    if !ticket.state.is_open() {
        return None;
    }
    let rerouted = || reroute_tier(ticket.tier, ticket.offers_in_tier, config);
    match command {
        Command::Submit => Some(ticket.tier),
        Command::Drain => (ticket.state == Queued).then_some(ticket.tier),
        Command::Decline { by, .. } => owns(ticket, by, &[Offered]).then(rerouted),
        Command::Escalate { by, .. } if owns(ticket, by, &[Offered, Accepted]) => {
            ticket.tier.above().map(|up| reroute_tier(up, 0, config))
        }
        Command::OfferTimedOut => is_due(ticket, now_ms).then(rerouted),
        Command::HolderDeparted => ticket.holder().is_some().then(rerouted),
        _ => None,
    }
}

/// Why a closed ticket refuses a command: its state is only the business
/// of whoever held it.
pub(crate) fn refusal(ticket: &Ticket, command: &Command) -> Error {
    match command.responder() {
        Some(by) if ticket.assignee.as_deref() != Some(by.as_str()) => Error::PermissionDenied(
            format!("ticket {} is not offered to or accepted by you", ticket.id),
        ),
        _ => Error::FailedPrecondition(format!(
            "ticket {} is {} and can no longer change",
            ticket.id,
            ticket.state.key()
        )),
    }
}

/// Refuses a responder's command on a ticket not offered to or accepted
/// by them, as `states` require.
fn own_offer(ticket: &Ticket, talent: &TalentId, states: &[TicketState]) -> Result<()> {
    if owns(ticket, talent, states) {
        return Ok(());
    }
    Err(Error::PermissionDenied(format!(
        "ticket {} is not {} you",
        ticket.id,
        match states {
            [TicketState::Offered] => "offered to",
            [TicketState::Accepted] => "accepted by",
            _ => "offered to or accepted by",
        }
    )))
}

/// Applies `command` to `ticket` at `cx.now_ms`.
pub(crate) fn step(ticket: &Ticket, command: &Command, cx: &Context<'_>) -> Result<Transition> {
    use TicketState::{Accepted, Offered};
    if !ticket.state.is_open() {
        return Err(refusal(ticket, command));
    }
    let mut m = Moving::new(ticket, cx);
    match command {
        Command::Submit => {
            m.record(EventKind::Submitted, Actor::Farmer, "", None);
            m.route(false)?;
        }
        Command::Accept { by } => {
            if ticket.state == Accepted && ticket.assignee.as_deref() == Some(by.as_str()) {
                return Err(Error::FailedPrecondition(format!(
                    "you have already accepted ticket {}",
                    ticket.id
                )));
            }
            own_offer(ticket, by, &[Offered])?;
            m.ticket.state = Accepted;
            m.ticket.offer_deadline_ms = None;
            m.record_by(EventKind::Accepted, by, "");
        }
        Command::Decline { by, reason } => {
            own_offer(ticket, by, &[Offered])?;
            m.record_by(EventKind::Declined, by, reason);
            m.reroute()?;
        }
        Command::Resolve { by, answer } => {
            own_offer(ticket, by, &[Accepted])?;
            m.ticket.state = TicketState::Resolved;
            m.ticket.answer = answer.clone();
            m.record_by(EventKind::Resolved, by, "");
        }
        Command::Escalate { by, reason } => {
            own_offer(ticket, by, &[Offered, Accepted])?;
            let up = ticket.tier.above().ok_or_else(|| {
                Error::FailedPrecondition(
                    "the ticket is already at the city tier, the highest".into(),
                )
            })?;
            m.ticket.tier = up;
            m.ticket.offers_in_tier = 0;
            m.ticket.assignee = None;
            m.ticket.offer_deadline_ms = None;
            m.record_by(EventKind::Escalated, by, reason);
            m.reroute()?;
        }
        Command::Cancel => {
            m.ticket.state = TicketState::Cancelled;
            m.ticket.offer_deadline_ms = None;
            m.record(EventKind::Cancelled, Actor::Farmer, "", None);
        }
        // Another replica may have moved it since the deadline was read.
        Command::OfferTimedOut if is_due(ticket, cx.now_ms) => {
            let talent = ticket.assignee.clone().unwrap_or_default();
            // The offer's own timeout (a notified offer has a longer one):
            // its deadline was set at the offer, the last change.
            let waited = ticket
                .offer_deadline_ms
                .map(|at| at - ticket.updated_at_ms)
                .filter(|&ms| ms > 0)
                .map_or(cx.config.offer_timeout.as_secs(), |ms| ms as u64 / 1000);
            let reason = format!("{waited}秒内未接单");
            m.record(
                EventKind::OfferTimedOut,
                Actor::System,
                &reason,
                Some(talent),
            );
            m.reroute()?;
        }
        Command::HolderDeparted if ticket.holder().is_some() => {
            let holder = ticket.holder().map(str::to_string);
            let reason = "原应答人员已不在花名册或已停用，重新派单";
            m.record(EventKind::Rerouted, Actor::System, reason, holder);
            m.reroute()?;
        }
        Command::Drain if ticket.state == TicketState::Queued => m.route(true)?,
        Command::OfferTimedOut | Command::HolderDeparted | Command::Drain => {}
    }
    Ok(m.finish())
}

/// Records the farmer's rating of a resolved ticket's answer: the rating on
/// the ticket and a `Rated` event about the responder who answered. A
/// ticket is rated once; one not resolved (still open, cancelled,
/// unroutable) has no answer to rate. The stars and the comment are
/// checked by the caller.
pub(crate) fn rate(ticket: &Ticket, rating: Rating, cx: &Context<'_>) -> Result<Transition> {
    if ticket.state != TicketState::Resolved {
        return Err(Error::FailedPrecondition(format!(
            "工单尚未解答，解答后才能评价 (ticket {} is {}: only a resolved answer can be rated)",
            ticket.id,
            ticket.state.key()
        )));
    }
    if ticket.rating.is_some() {
        return Err(Error::AlreadyExists(format!(
            "该工单已评价过，每个工单只能评价一次 (ticket {} is already rated)",
            ticket.id
        )));
    }
    let mut m = Moving::new(ticket, cx);
    let (stars, comment) = (rating.stars, rating.comment.clone());
    m.ticket.rating = Some(rating);
    let answered_by = ticket.assignee.clone();
    m.record(EventKind::Rated, Actor::Farmer, &comment, answered_by);
    if let Some(e) = m.events.last_mut() {
        e.stars = Some(stars);
    }
    Ok(m.finish())
}

/// A ticket being moved: the copy being edited and the events so far.
struct Moving<'a> {
    ticket: Ticket,
    events: Vec<Event>,
    cx: &'a Context<'a>,
}

impl<'a> Moving<'a> {
    fn new(ticket: &Ticket, cx: &'a Context<'a>) -> Moving<'a> {
        let mut ticket = ticket.clone();
        ticket.updated_at_ms = cx.now_ms.max(ticket.updated_at_ms);
        Moving {
            ticket,
            events: Vec::new(),
            cx,
        }
    }

    fn finish(self) -> Transition {
        Transition {
            ticket: self.ticket,
            events: self.events,
        }
    }

    /// Appends an event describing the ticket as it is now.
    fn record(&mut self, kind: EventKind, actor: Actor, reason: &str, talent: Option<String>) {
        let t = &self.ticket;
        self.events.push(Event {
            ticket_id: t.id.clone(),
            seq: self.cx.last_seq + self.events.len() as u64 + 1,
            kind,
            actor,
            at_ms: t.updated_at_ms,
            reason: reason.to_string(),
            state: t.state,
            talent_id: talent,
            tier: t.tier,
            stars: None,
        });
    }

    /// Appends an event a responder caused and is about.
    fn record_by(&mut self, kind: EventKind, by: &TalentId, reason: &str) {
        let talent = Some(by.to_string());
        self.record(kind, Actor::Responder(by.clone()), reason, talent);
    }

    /// Routes a ticket whose offer ended (declined, lapsed, escalated away,
    /// holder gone): escalates first when this tier has had its offers.
    fn reroute(&mut self) -> Result<()> {
        let escalate_after = self.cx.config.escalate_after;
        self.ticket.assignee = None;
        self.ticket.offer_deadline_ms = None;
        if self.ticket.offers_in_tier >= escalate_after {
            if let Some(up) = self.ticket.tier.above() {
                self.ticket.tier = up;
                self.ticket.offers_in_tier = 0;
                let reason = format!("本级已派单{escalate_after}次无人接单，升级到上一级");
                self.record(EventKind::Escalated, Actor::System, &reason, None);
            }
        }
        self.route(false)
    }

    /// Offers the ticket to the responder routing picked, or queues it (with
    /// an event unless it is queued already), or marks it unroutable.
    /// Escalates a tier when nobody eligible is left at this one.
    fn route(&mut self, queued_already: bool) -> Result<()> {
        let cx = self.cx;
        if let Some(reason) = &cx.routes.unqualified {
            self.unroutable(reason);
            return Ok(());
        }
        loop {
            match cx.routes.at(self.ticket.tier)? {
                pick @ (Pick::Offer(talent) | Pick::Notify(talent)) => {
                    let timeout = match pick {
                        Pick::Notify(_) => cx
                            .config
                            .notified_offer_timeout
                            .unwrap_or(cx.config.offer_timeout),
                        _ => cx.config.offer_timeout,
                    };
                    let t = &mut self.ticket;
                    t.state = TicketState::Offered;
                    t.assignee = Some(talent.to_string());
                    t.offers_in_tier += 1;
                    t.offer_deadline_ms = Some(t.updated_at_ms + timeout.as_millis() as i64);
                    t.reason.clear();
                    let talent = Some(talent.to_string());
                    self.record(EventKind::Offered, Actor::System, "", talent);
                    return Ok(());
                }
                Pick::Busy => {
                    self.ticket.assignee = None;
                    self.ticket.offer_deadline_ms = None;
                    if !queued_already {
                        self.ticket.state = TicketState::Queued;
                        let reason = "暂无在线且有空闲的合格专家，已排队，有人空闲时按先后顺序派单";
                        self.ticket.reason = reason.into();
                        self.record(EventKind::Queued, Actor::System, reason, None);
                    }
                    return Ok(());
                }
                // Everyone eligible at this tier declined or let the offer lapse.
                Pick::Nobody => match self.ticket.tier.above() {
                    Some(up) => {
                        self.ticket.tier = up;
                        self.ticket.offers_in_tier = 0;
                        let reason = "本级合格人员均已谢绝或超时，升级到上一级";
                        self.record(EventKind::Escalated, Actor::System, reason, None);
                    }
                    None => {
                        self.unroutable("所有合格专家均已谢绝或未在时限内接单");
                        return Ok(());
                    }
                },
            }
        }
    }

    fn unroutable(&mut self, reason: &str) {
        self.ticket.state = TicketState::Unroutable;
        self.ticket.assignee = None;
        self.ticket.offer_deadline_ms = None;
        self.ticket.reason = reason.to_string();
        self.record(EventKind::Unroutable, Actor::System, reason, None);
    }
}

#[cfg(test)]
mod tests;
