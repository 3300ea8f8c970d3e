//! Draining the queue: which QUEUED tickets are routed again, oldest first,
//! when responders may have become free. A queued ticket found every
//! eligible responder busy when it was last routed, so only a responder
//! who has become free since (came ONLINE, or finished, declined, lost or
//! escalated an offer) can change that. The queue is kept in creation order
//! by `State::apply` (no sort of the open tickets); a drain walks it from
//! the oldest, passes over tickets none of those responders could take
//! (without routing them), and stops as soon as none of them is free. Its
//! routing attempts are bounded by the offers it makes plus the tickets a
//! freed responder may qualify for but is not picked for, not by the
//! queue's length. Only a roster change routes every queued ticket again:
//! who qualifies and who is eligible may have changed for all of them.

use std::{
    collections::{HashMap, HashSet},
    ops::Bound::{Excluded, Unbounded},
};

use super::{
    dispatcher::{Dispatcher, State},
    machine::Command,
    Ticket,
};
use crate::{
    error::{Error, Result},
    matching::Need,
    model::{ids::TicketId, Corps, Talent},
    reading::lexicon::{Lexicon, SubjectId},
    search::Snapshot,
};

/// Who may have become free, which decides what a drain tries.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Freed {
    /// Only these responders (the others were busy or not eligible for
    /// every queued ticket, and are still).
    Talents(Vec<String>),
    /// Any ONLINE responder below capacity (start-up: whatever happened
    /// before a crash, every queued ticket someone free could take is
    /// offered).
    Anyone,
    /// Every queued ticket is routed again (the roster changed).
    Reroute,
}

impl Freed {
    /// The responder whose offer or acceptance of `ticket` just ended, if any.
    pub(super) fn holder_of(ticket: &Ticket) -> Freed {
        Freed::Talents(ticket.assignee.iter().cloned().collect())
    }
}

impl Dispatcher {
    /// Offers queued tickets, oldest first, while a responder of `freed`
    /// is free and could take one.
    pub(super) async fn drain_queue(&self, freed: Freed) -> Result<()> {
        let mut after: Option<(i64, String)> = None;
        // Per subject: whether its pool is its corps' (nobody in the roster
        // has the subject or its parent), asked of the matcher once.
        let mut by_corps: HashMap<SubjectId, bool> = HashMap::new();
        loop {
            let next = {
                let state = self.state.lock().await;
                let mut queue = match &after {
                    Some(key) => state.queue.range((Excluded(key.clone()), Unbounded)),
                    None => state.queue.range(..),
                };
                if freed == Freed::Reroute {
                    queue.next().cloned()
                } else {
                    let snapshot = self.matcher.snapshot();
                    let lexicon = self.matcher.lexicon();
                    let notify = self.config.notified_offer_timeout.is_some();
                    let free = Free::among(&state, &snapshot, &freed, lexicon, notify);
                    if free.is_empty() {
                        break;
                    }
                    queue
                        .find(|(_, id)| {
                            state.open.get(id).is_some_and(|ticket| {
                                let none = HashSet::new();
                                let excluded = state.excluded.get(id).unwrap_or(&none);
                                self.could_take(&free, ticket, excluded, &mut by_corps)
                            })
                        })
                        .cloned()
                }
            };
            let Some(key) = next else { break };
            match self
                .change(&TicketId::new(key.1.as_str()), Command::Drain)
                .await
            {
                // Closed meanwhile by another replica: nothing to offer.
                Ok(_) | Err(Error::FailedPrecondition(_) | Error::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
            after = Some(key);
        }
        Ok(())
    }

    /// Whether routing `ticket` could pick one of `free`: of the ticket's
    /// tier or above, not excluded from it, and in its qualified pool or
    /// possibly so (a parent's specialist counts, though the pool takes the
    /// parent only when no specialist of the subject is near). Routing
    /// decides; this only spares it the tickets nobody free can take.
    fn could_take(
        &self,
        free: &Free<'_>,
        ticket: &Ticket,
        excluded: &HashSet<String>,
        by_corps: &mut HashMap<SubjectId, bool>,
    ) -> bool {
        let eligible = |talents: Option<&Vec<&Talent>>| {
            talents.is_some_and(|ts| {
                ts.iter()
                    .any(|t| t.tier.is_at_or_above(ticket.tier) && !excluded.contains(&t.id))
            })
        };
        let lexicon = self.matcher.lexicon();
        let subject = ticket
            .subject
            .as_deref()
            .and_then(|s| lexicon.subject_id(s));
        if subject.is_none() && ticket.corps.is_none() {
            // Triage (a report that named nothing): anyone of any corps.
            return free.by_corps.iter().any(|ts| eligible(Some(ts)));
        }
        if let Some(id) = subject {
            let s = lexicon.subject(id);
            if eligible(free.by_specialty.get(s.name.as_str()))
                || s.parent.is_some_and(|p| {
                    eligible(free.by_specialty.get(lexicon.subject(p).name.as_str()))
                })
            {
                return true;
            }
            let corps_pool = *by_corps
                .entry(id)
                .or_insert_with(|| self.pool_is_corps(ticket, id));
            if !corps_pool {
                return false;
            }
        }
        ticket
            .corps
            .is_some_and(|c| eligible(Some(&free.by_corps[c as usize])))
    }

    /// Whether the qualified pool of `subject` is its corps': nobody
    /// available in the roster has the subject or its parent (which does
    /// not depend on where the ticket is). When that cannot be told, yes,
    /// which only costs a routing attempt.
    fn pool_is_corps(&self, ticket: &Ticket, subject: SubjectId) -> bool {
        let Ok(origin) = self
            .matcher
            .resolve_location(Some(&ticket.location), "location")
        else {
            return true;
        };
        let need = Need {
            subject: Some(subject),
            corps: None,
            words: Vec::new(),
            triage: false,
            hint: None,
        };
        let snapshot = self.matcher.snapshot();
        self.matcher
            .qualified_pool(&snapshot, &need, origin)
            .map_or(true, |pool| pool.specialties.is_empty())
    }
}

/// The responders of a drain who are free now (ONLINE, or with offers
/// through notifications not AWAY, as routing's `RouteQuery::free` has
/// it; in the roster, available, below capacity), by specialty and by
/// corps of a specialty, so a queued ticket is checked against those who
/// could qualify only.
struct Free<'a> {
    by_specialty: HashMap<&'a str, Vec<&'a Talent>>,
    by_corps: [Vec<&'a Talent>; Corps::ALL.len()],
}

impl<'a> Free<'a> {
    fn among(
        state: &State,
        snapshot: &'a Snapshot,
        freed: &Freed,
        lexicon: &Lexicon,
        notify: bool,
    ) -> Free<'a> {
        let ids: Vec<&str> = match freed {
            Freed::Talents(ids) => ids.iter().map(String::as_str).collect(),
            // Through notifications anyone never seen may be offered too.
            Freed::Anyone if notify => snapshot.talents().map(|t| t.id.as_str()).collect(),
            Freed::Anyone => state.presence.keys().map(String::as_str).collect(),
            Freed::Reroute => Vec::new(),
        };
        let mut free = Free {
            by_specialty: HashMap::new(),
            by_corps: Default::default(),
        };
        let mut seen = HashSet::new();
        for id in ids {
            let offerable = super::routing::reach(state.presence.get(id), notify).is_some();
            if !offerable || !seen.insert(id) {
                continue;
            }
            let Some(t) = snapshot.get(id) else { continue };
            if !t.is_available() || state.load.get(id).copied().unwrap_or(0) >= t.capacity {
                continue;
            }
            let mut in_corps = [false; Corps::ALL.len()];
            for s in &t.specialties {
                free.by_specialty.entry(s.as_str()).or_default().push(t);
                if let Some(c) = lexicon.subject_id(s).map(|id| lexicon.subject(id).corps) {
                    if !std::mem::replace(&mut in_corps[c as usize], true) {
                        free.by_corps[c as usize].push(t);
                    }
                }
            }
        }
        free
    }

    fn is_empty(&self) -> bool {
        self.by_specialty.is_empty()
    }
}
