//! Routing: who a ticket goes to next. The qualified pool (one rule,
//! `Matcher::qualified_pool`) is walked nearest first, in ever larger top-k
//! lists, noting for the starting tier and each tier above it the first
//! responder who is eligible (of that tier or higher, not excluded) and
//! free (below capacity, and ONLINE; or, when offers may go through
//! notifications, anything but AWAY). When nobody at all can be free, the
//! pool is not ranked: its talents are looked at in any order until every
//! tier has an eligible responder. The state machine
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
        // Nobody can be offered a ticket now (nobody ONLINE, no
        // notifications): each tier is busy or has nobody eligible.
        let nobody_free = !self.notify
            && !self
                .presence
                .values()
                .any(|p| reach(Some(p), false).is_some());
        if nobody_free {
            return Ok(self.busy(tiers));
        }
        self.walk(tiers)
    }

    /// Routing's findings when nobody can be free: which tiers have an
    /// eligible responder, from the pool's talents in any order (no
    /// ranking), stopping once every tier has one.
    fn busy(&self, tiers: Vec<Tier>) -> Routes {
        let mut eligible = vec![false; tiers.len()];
        for talent in self.snapshot.pool_talents(self.pool) {
            for (i, &tier) in tiers.iter().enumerate() {
                if !eligible[i] && self.eligible_at(talent, tier) {
                    eligible[i] = true;
                }
            }
            if eligible.iter().all(|&e| e) {
                break;
            }
        }
        Routes {
            unqualified: None,
            picks: tiers
                .into_iter()
                .zip(eligible)
                .map(busy_or_nobody)
                .collect(),
        }
    }

    /// Routing's findings from a walk of the pool nearest first, in ever
    /// larger top-k lists, until the starting tier has someone free or
    /// the pool ends.
    fn walk(&self, tiers: Vec<Tier>) -> Result<Routes> {
        let mut offers: Vec<Option<Pick>> = vec![None; tiers.len()];
        let mut eligible = vec![false; tiers.len()];
        let size = self.snapshot.len();
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
            if hits.len() < k || k >= size {
                break;
            }
            k = (k * 4).min(size.max(1));
        }
        let picks = tiers
            .into_iter()
            .zip(offers.into_iter().zip(eligible))
            .map(|(tier, found)| match found {
                (Some(offer), _) => (tier, offer),
                (None, eligible) => busy_or_nobody((tier, eligible)),
            })
            .collect();
        Ok(Routes {
            unqualified: None,
            picks,
        })
    }
}

/// A tier where nobody free was found: busy when someone eligible was.
fn busy_or_nobody((tier, eligible): (Tier, bool)) -> (Tier, Pick) {
    (tier, if eligible { Pick::Busy } else { Pick::Nobody })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        model::{divisions::Divisions, Corps},
        roster::{gen, store::RosterStore},
        search::Origin,
    };

    /// When nobody can be free, looking at the pool's talents in any order
    /// finds the same tiers busy (or with nobody eligible) as the walk
    /// nearest first through the whole pool, for every pool of a roster,
    /// from each tier, with and without responders excluded.
    #[test]
    fn unranked_look_finds_what_the_walk_finds_when_nobody_is_free() {
        let (lex, div) = (Lexicon::embedded(), Divisions::embedded());
        let csv = gen::generate_csv(gen::DEMO_SEED + 3, gen::villagers_for(3_000), lex, div);
        let dir = std::env::temp_dir().join(format!("xwn-routing-test-{}", std::process::id()));
        let store = RosterStore::of_csv(&dir, &csv);
        let snapshot = store.snapshot();
        let mut pools: Vec<Pool> = lex
            .subjects()
            .iter()
            .map(|s| Pool {
                specialties: vec![s.name.clone()],
                corps: vec![],
            })
            .collect();
        pools.extend(Corps::ALL.into_iter().map(|c| Pool {
            specialties: vec![],
            corps: vec![c],
        }));
        let origins: Vec<Origin> = div
            .counties()
            .map(|c| Origin {
                point: c.point,
                division: Some(c.code),
            })
            .collect();
        let (presence, load) = (HashMap::new(), HashMap::new());
        let mut differs = std::collections::HashSet::new();
        let mut compared = 0;
        for (p, pool) in pools.iter().enumerate() {
            let origin = origins[p % origins.len()];
            // Who a re-route may not go to again: the pool's nearest few,
            // then all of its village tier.
            let nearest = snapshot
                .top(pool, origin, &[], Ranking::Nearest, 3)
                .unwrap();
            let villagers = snapshot
                .pool_talents(pool)
                .filter(|t| t.tier == Tier::Village)
                .map(|t| t.id.clone());
            let exclusions: [HashSet<String>; 3] = [
                HashSet::new(),
                nearest.iter().map(|h| h.talent.id.clone()).collect(),
                villagers.collect(),
            ];
            for excluded in &exclusions {
                for from in [Tier::Village, Tier::CountyTown, Tier::City] {
                    let q = RouteQuery {
                        snapshot: &snapshot,
                        pool,
                        origin,
                        words: &[],
                        from,
                        excluded,
                        ending: nearest.last().map(|h| h.talent.id.as_str()),
                        presence: &presence,
                        load: &load,
                        notify: false,
                    };
                    let tiers: Vec<Tier> =
                        std::iter::successors(Some(from), |t| t.above()).collect();
                    let walked = q.walk(tiers.clone()).unwrap();
                    assert_eq!(q.busy(tiers), walked, "{pool:?} from {from:?}");
                    assert_eq!(q.routes().unwrap(), walked, "{pool:?} from {from:?}");
                    differs.insert(format!("{:?}", walked.picks));
                    compared += 1;
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        assert!(compared > 100, "only {compared} compared");
        assert!(
            differs.len() > 3,
            "the cases found too few outcomes: {differs:?}"
        );
    }
}
