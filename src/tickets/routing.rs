//! Routing: who a ticket goes to next. The qualified pool (one rule,
//! `Matcher::qualified_pool`) is walked nearest first, in ever larger top-k
//! lists, noting for the starting tier and each tier above it the first
//! responder who is eligible (of that tier or higher, not excluded) and
//! free (below capacity, and ONLINE; or, when offers may go through
//! notifications, anything but AWAY). When nobody at all can be free, the
//! walk stops once every tier has an eligible responder. The state machine
//! turns what it finds into an offer, a queue, an escalation or an
//! unroutable ticket.

use std::{
    collections::{HashMap, HashSet},
    sync::atomic::Ordering,
};

use super::{
    dispatcher::{Dispatcher, State},
    machine::{Pick, Routes},
    Availability, Ticket,
};
use crate::{
    error::Result,
    matching::Need,
    model::{ids::TalentId, Talent, Tier},
    reading::lexicon::Lexicon,
    search::{Origin, Pool, Ranking, Snapshot},
};

/// How an offer reaches a responder.
pub(super) enum Reach {
    /// On the console's stream, at once (ONLINE).
    Stream,
    /// Through a notification (`notify`: a webhook is configured).
    Notification,
}

/// How a responder with `presence` can be offered a ticket: on the stream
/// when ONLINE; through a notification, when `notify`, unless AWAY (one
/// never seen has no presence: OFFLINE). None: not now. Routing and the
/// queue's drain ask the same.
pub(super) fn reach(presence: Option<&Availability>, notify: bool) -> Option<Reach> {
    match presence {
        Some(Availability::Online) => Some(Reach::Stream),
        Some(Availability::Away) => None,
        Some(Availability::Offline) | None => notify.then_some(Reach::Notification),
    }
}

/// What routing looks at.
pub(super) struct RouteQuery<'a> {
    pub(crate) snapshot: &'a Snapshot,
    /// Who qualifies; not empty.
    pub(crate) pool: &'a Pool,
    pub(crate) origin: Origin,
    /// The need's words, which break ties between equally near responders.
    pub(crate) words: &'a [String],
    /// The tier routing starts at.
    pub(crate) from: Tier,
    /// Responders the ticket may not be offered to again.
    pub(crate) excluded: &'a HashSet<String>,
    /// The responder whose offer the command ends, excluded too.
    pub(crate) ending: Option<&'a str>,
    pub(crate) presence: &'a HashMap<String, Availability>,
    /// Offered and accepted tickets per responder.
    pub(crate) load: &'a HashMap<String, u32>,
    /// Whether offers may reach responders who are not ONLINE through a
    /// notification (a webhook is configured).
    pub(crate) notify: bool,
}

impl RouteQuery<'_> {
    fn eligible_at(&self, talent: &Talent, tier: Tier) -> bool {
        talent.tier.is_at_or_above(tier)
            && !self.excluded.contains(&talent.id)
            && self.ending != Some(talent.id.as_str())
    }

    /// How a talent below capacity can be offered a ticket: at once when
    /// ONLINE; through a notification, when allowed, when not AWAY (a
    /// talent never seen has no presence: OFFLINE). None: not now.
    fn free(&self, talent: &Talent) -> Option<Pick> {
        if self.load.get(&talent.id).copied().unwrap_or(0) >= talent.capacity {
            return None;
        }
        let id = TalentId::new(talent.id.as_str());
        match reach(self.presence.get(&talent.id), self.notify)? {
            Reach::Stream => Some(Pick::Offer(id)),
            Reach::Notification => Some(Pick::Notify(id)),
        }
    }

    /// What routing finds at the starting tier, and at each tier above it
    /// when the starting tier has nobody free (then the whole pool was
    /// walked, so what it found above is complete too).
    pub(crate) fn routes(&self) -> Result<Routes> {
        let tiers: Vec<Tier> = std::iter::successors(Some(self.from), |t| t.above()).collect();
        let mut offers: Vec<Option<Pick>> = vec![None; tiers.len()];
        let mut eligible = vec![false; tiers.len()];
        let size = self.snapshot.len();
        // Nobody can be offered a ticket now (nobody ONLINE, no
        // notifications): once every tier has an eligible responder, the
        // rest of the pool changes nothing (each tier is busy).
        let nobody_free = !self.notify
            && !self
                .presence
                .values()
                .any(|p| reach(Some(p), false).is_some());
        let mut k = 64;
        loop {
            let hits =
                self.snapshot
                    .top(self.pool, self.origin, self.words, Ranking::Nearest, k)?;
            for hit in &hits {
                let talent = &hit.talent;
                for (i, &tier) in tiers.iter().enumerate() {
                    if self.eligible_at(talent, tier) {
                        eligible[i] = true;
                        if offers[i].is_none() {
                            offers[i] = self.free(talent);
                        }
                    }
                }
                if let Some(nearest) = &offers[0] {
                    return Ok(Routes {
                        unqualified: None,
                        picks: vec![(self.from, nearest.clone())],
                    });
                }
            }
            if hits.len() < k || k >= size || (nobody_free && eligible.iter().all(|&e| e)) {
                break;
            }
            k = (k * 4).min(size.max(1));
        }
        let picks = tiers
            .into_iter()
            .zip(offers.into_iter().zip(eligible))
            .map(|(tier, found)| {
                let pick = match found {
                    (Some(offer), _) => offer,
                    (None, true) => Pick::Busy,
                    (None, false) => Pick::Nobody,
                };
                (tier, pick)
            })
            .collect();
        Ok(Routes {
            unqualified: None,
            picks,
        })
    }
}

/// Why nobody in the roster qualifies for a need.
fn nobody_qualifies(lexicon: &Lexicon, need: &Need) -> String {
    match need.subject {
        Some(s) => format!("花名册中没有{}方面的专长人员", lexicon.subject(s).name),
        None => format!(
            "花名册中没有{}组专长人员",
            need.corps.map_or("", |c| c.chinese())
        ),
    }
}

impl Dispatcher {
    /// Routing's findings for `ticket` under `need`, from tier `from`, with
    /// the responders and loads of `state`.
    pub(super) fn routes(
        &self,
        state: &State,
        ticket: &Ticket,
        need: &Need,
        from: Tier,
    ) -> Result<Routes> {
        self.routings.fetch_add(1, Ordering::Relaxed);
        let origin = self
            .matcher
            .resolve_location(Some(&ticket.location), "location")?;
        let snapshot = self.matcher.snapshot();
        let pool = self.matcher.qualified_pool(&snapshot, need, origin)?;
        if pool.specialties.is_empty() && pool.corps.is_empty() {
            return Ok(Routes::unqualified(nobody_qualifies(
                self.matcher.lexicon(),
                need,
            )));
        }
        let none = HashSet::new();
        RouteQuery {
            snapshot: &snapshot,
            pool: &pool,
            origin,
            words: &need.words,
            from,
            excluded: state.excluded.get(&ticket.id).unwrap_or(&none),
            ending: ticket.assignee.as_deref(),
            presence: &state.presence,
            load: &state.load,
            notify: self.config.notified_offer_timeout.is_some(),
        }
        .routes()
    }
}
