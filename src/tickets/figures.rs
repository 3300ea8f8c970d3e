//! Per-responder figures for admins, tallied from tickets' events: offers
//! and what became of them, tickets answered, median times to accept and
//! to resolve, ratings. `tally` is pure over the events; the dispatcher
//! reads them from the store and adds who each responder is
//! (`Dispatcher::responder_figures`).

use std::collections::{BTreeMap, HashMap};

use super::{dispatcher::Dispatcher, now_ms, Event, EventKind};
use crate::{
    error::{Error, Result},
    model::divisions::{Division, DivisionCode, Divisions},
    model::Tier,
};

/// What happened at `from_ms` or later and before `to_ms` (Unix ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    pub(crate) from_ms: i64,
    pub(crate) to_ms: i64,
}

impl Window {
    fn holds(self, at_ms: i64) -> bool {
        (self.from_ms..self.to_ms).contains(&at_ms)
    }
}

/// One responder's counts and durations in a window. Each is counted by
/// the event that ends it: an offer when made, an acceptance (and its time
/// since the offer) when accepted, an answer (and its time since the
/// acceptance) when resolved, a rating when given.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Tally {
    pub(crate) offers: u32,
    pub(crate) accepted: u32,
    pub(crate) declined: u32,
    pub(crate) lapsed: u32,
    pub(crate) answered: u32,
    /// From each offer to its acceptance, ms.
    pub(crate) accept_ms: Vec<i64>,
    /// From each acceptance to the answer, ms.
    pub(crate) resolve_ms: Vec<i64>,
    pub(crate) stars: Vec<u8>,
}

impl Tally {
    pub(crate) fn median_accept_ms(&self) -> Option<i64> {
        median(&self.accept_ms)
    }

    pub(crate) fn median_resolve_ms(&self) -> Option<i64> {
        median(&self.resolve_ms)
    }

    /// (declined + lapsed) / offers; None without offers.
    pub(crate) fn declined_or_lapsed_share(&self) -> Option<f64> {
        (self.offers > 0).then(|| f64::from(self.declined + self.lapsed) / f64::from(self.offers))
    }

    pub(crate) fn mean_rating(&self) -> Option<f64> {
        let sum: u32 = self.stars.iter().map(|&s| u32::from(s)).sum();
        (!self.stars.is_empty()).then(|| f64::from(sum) / self.stars.len() as f64)
    }

    /// Adds `other`'s counts and its values: the medians and the mean of
    /// the sum are then over both tallies' events.
    fn absorb(&mut self, other: &Tally) {
        self.offers += other.offers;
        self.accepted += other.accepted;
        self.declined += other.declined;
        self.lapsed += other.lapsed;
        self.answered += other.answered;
        self.accept_ms.extend_from_slice(&other.accept_ms);
        self.resolve_ms.extend_from_slice(&other.resolve_ms);
        self.stars.extend_from_slice(&other.stars);
    }
}

/// The middle value; with an even count, the mean of the two middle ones
/// rounded down. None for no values.
fn median(values: &[i64]) -> Option<i64> {
    let mut v = values.to_vec();
    v.sort_unstable();
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]).div_euclid(2)),
    }
}

/// Each responder's tally from `events`, each ticket's events together and
/// in sequence (as [`crate::store::TicketStore::events_between`] gives
/// them). Events outside `window` count only as the offer or acceptance a
/// later event's duration is measured from.
pub(crate) fn tally(events: &[Event], window: Window) -> BTreeMap<String, Tally> {
    use EventKind::{Accepted, Declined, OfferTimedOut, Offered, Rated, Resolved};
    let mut out: BTreeMap<String, Tally> = BTreeMap::new();
    // This ticket's latest offer to and acceptance by each responder.
    let mut offered: HashMap<&str, i64> = HashMap::new();
    let mut accepted: HashMap<&str, i64> = HashMap::new();
    let mut ticket = "";
    for e in events {
        if e.ticket_id != ticket {
            ticket = e.ticket_id.as_str();
            offered.clear();
            accepted.clear();
        }
        let Some(who) = e.talent_id.as_deref() else {
            continue;
        };
        match e.kind {
            Offered => _ = offered.insert(who, e.at_ms),
            Accepted => _ = accepted.insert(who, e.at_ms),
            _ => {}
        }
        let tallied = matches!(
            e.kind,
            Offered | Accepted | Declined | OfferTimedOut | Resolved | Rated
        );
        if !tallied || !window.holds(e.at_ms) {
            continue;
        }
        let since = |at: Option<&i64>| at.map(|&at| e.at_ms - at);
        let t = entry(&mut out, who);
        match e.kind {
            Offered => t.offers += 1,
            Accepted => {
                t.accepted += 1;
                t.accept_ms.extend(since(offered.get(who)));
            }
            Declined => t.declined += 1,
            OfferTimedOut => t.lapsed += 1,
            Resolved => {
                t.answered += 1;
                t.resolve_ms.extend(since(accepted.get(who)));
            }
            _ => t.stars.extend(e.stars),
        }
    }
    out
}

/// A county by name, by its 12-digit code or by the 6 digits that start it.
fn find_county<'d>(divisions: &'d Divisions, name_or_code: &str) -> Option<&'d Division> {
    let short = name_or_code.len() == 6 && name_or_code.bytes().all(|b| b.is_ascii_digit());
    match short {
        true => divisions.find_county(&format!("{name_or_code}000000")),
        false => divisions.find_county(name_or_code),
    }
}

fn entry<'a>(out: &'a mut BTreeMap<String, Tally>, who: &str) -> &'a mut Tally {
    out.entry(who.to_string()).or_default()
}

/// Which responders an admin asks about: a tier, a county, a window.
#[derive(Debug, Clone, Default)]
pub(crate) struct FigureFilter {
    pub(crate) tier: Option<Tier>,
    /// A county's code or name, empty for every county.
    pub(crate) county: String,
    /// 0: from the beginning.
    pub(crate) from_ms: i64,
    /// 0: until now.
    pub(crate) to_ms: i64,
}

/// One responder's figures, with who they are as the roster says now
/// (name, tier and county empty when they left it).
#[derive(Debug, Clone)]
pub(crate) struct ResponderFigures {
    pub(crate) talent_id: String,
    pub(crate) name: String,
    pub(crate) tier: Option<Tier>,
    pub(crate) county: Option<&'static Division>,
    pub(crate) tally: Tally,
}

/// The responders a subtotal sums: those of a tier or of a county (None:
/// those who left the roster, whose tier and county are not known).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Group {
    Tier(Option<Tier>),
    County(Option<&'static Division>),
}

impl PartialEq for Group {
    /// Counties are the same by code.
    fn eq(&self, other: &Group) -> bool {
        match (self, other) {
            (Group::Tier(a), Group::Tier(b)) => a == b,
            (Group::County(a), Group::County(b)) => a.map(|c| c.code) == b.map(|c| c.code),
            _ => false,
        }
    }
}

/// The figures of a group of responders, their tallies summed.
#[derive(Debug, Clone)]
pub(crate) struct Subtotal {
    pub(crate) group: Group,
    pub(crate) responders: u32,
    pub(crate) tally: Tally,
}

/// What an admin asked for: each responder's figures, their subtotals per
/// tier and per county, and the window applied.
#[derive(Debug, Clone)]
pub(crate) struct Figures {
    pub(crate) responders: Vec<ResponderFigures>,
    /// From the city's experts down; responders who left the roster last.
    pub(crate) by_tier: Vec<Subtotal>,
    /// By county code; responders who left the roster last.
    pub(crate) by_county: Vec<Subtotal>,
    pub(crate) window: Window,
}

/// The subtotals of `figures` per tier and per county, each group of
/// responders' tallies summed ([`Tally::absorb`]).
pub(crate) fn subtotals(figures: &[ResponderFigures]) -> (Vec<Subtotal>, Vec<Subtotal>) {
    // Keys sort the unknown group last.
    let mut by_tier: BTreeMap<(bool, Option<Tier>), Subtotal> = BTreeMap::new();
    let mut by_county: BTreeMap<(bool, Option<DivisionCode>), Subtotal> = BTreeMap::new();
    let add = |sub: &mut Subtotal, f: &ResponderFigures| {
        sub.responders += 1;
        sub.tally.absorb(&f.tally);
    };
    let empty = |group| Subtotal {
        group,
        responders: 0,
        tally: Tally::default(),
    };
    for f in figures {
        let tier = by_tier
            .entry((f.tier.is_none(), f.tier))
            .or_insert_with(|| empty(Group::Tier(f.tier)));
        add(tier, f);
        let code = f.county.map(|c| c.code);
        let county = by_county
            .entry((code.is_none(), code))
            .or_insert_with(|| empty(Group::County(f.county)));
        add(county, f);
    }
    (
        by_tier.into_values().collect(),
        by_county.into_values().collect(),
    )
}

impl Dispatcher {
    /// The figures of every responder with something in the window who
    /// matches the filter, most answered first (then by talent id), with
    /// their subtotals per tier and per county.
    pub(crate) async fn responder_figures(&self, filter: &FigureFilter) -> Result<Figures> {
        let divisions = Divisions::embedded();
        let county = match filter.county.trim() {
            "" => None,
            c => Some(find_county(divisions, c).ok_or_else(|| {
                Error::invalid(
                    "county",
                    format!(
                        "{} is no county of Weinan: give a code such as 610527 or a name such as 白水县",
                        crate::error::quote(c)
                    ),
                )
            })?),
        };
        if filter.from_ms < 0 || filter.to_ms < 0 {
            return Err(Error::invalid("from_ms", "a time cannot be negative"));
        }
        let window = Window {
            from_ms: filter.from_ms,
            to_ms: if filter.to_ms == 0 {
                now_ms() + 1
            } else {
                filter.to_ms
            },
        };
        if window.to_ms <= window.from_ms {
            return Err(Error::invalid("to_ms", "must be after from_ms"));
        }
        let events = self
            .store
            .events_between(window.from_ms, window.to_ms)
            .await?;
        let snapshot = self.matcher.snapshot();
        let mut figures: Vec<ResponderFigures> = tally(&events, window)
            .into_iter()
            .map(|(talent_id, tally)| {
                let talent = snapshot.get(&talent_id);
                ResponderFigures {
                    name: talent.map(|t| t.name.clone()).unwrap_or_default(),
                    tier: talent.map(|t| t.tier),
                    county: talent.and_then(|t| divisions.county_of(t.division_code)),
                    talent_id,
                    tally,
                }
            })
            .filter(|f| filter.tier.is_none_or(|tier| f.tier == Some(tier)))
            .filter(|f| county.is_none_or(|c| f.county.is_some_and(|fc| fc.code == c.code)))
            .collect();
        figures.sort_by(|a, b| {
            (b.tally.answered.cmp(&a.tally.answered)).then_with(|| a.talent_id.cmp(&b.talent_id))
        });
        let (by_tier, by_county) = subtotals(&figures);
        Ok(Figures {
            responders: figures,
            by_tier,
            by_county,
            window,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tickets::{Actor, TicketState};

    /// A scripted history: `(ticket, at_ms, kind, talent, stars)`.
    fn script(lines: &[(&str, i64, EventKind, &str, Option<u8>)]) -> Vec<Event> {
        let mut seq: HashMap<&str, u64> = HashMap::new();
        lines
            .iter()
            .map(|&(ticket, at_ms, kind, talent, stars)| {
                let n = seq.entry(ticket).or_default();
                *n += 1;
                Event {
                    ticket_id: ticket.into(),
                    seq: *n,
                    kind,
                    actor: Actor::System,
                    at_ms,
                    reason: String::new(),
                    state: TicketState::Offered,
                    talent_id: Some(talent.into()),
                    tier: Tier::Village,
                    stars,
                }
            })
            .collect()
    }

    #[test]
    fn medians_shares_and_means_come_from_the_script() {
        use EventKind::*;
        // a: accepts after 10 s, 30 s and 20 s; answers 100 s and 300 s after
        // accepting; declines one offer, lets one lapse; rated 5 and 2.
        // b: accepts once after 4 s, never answers.
        let (a1, a2, a3) = (10_000, 30_000, 20_000);
        let (r1, r2) = (100_000, 300_000);
        let events = script(&[
            ("t1", 1_000, Offered, "a", None),
            ("t1", 1_000 + a1, Accepted, "a", None),
            ("t1", 1_000 + a1 + r1, Resolved, "a", None),
            ("t1", 1_000 + a1 + r1 + 5, Rated, "a", Some(5)),
            ("t2", 2_000, Offered, "a", None),
            ("t2", 2_000 + a2, Accepted, "a", None),
            ("t2", 2_000 + a2 + r2, Resolved, "a", None),
            ("t2", 2_000 + a2 + r2 + 5, Rated, "a", Some(2)),
            ("t3", 3_000, Offered, "a", None),
            ("t3", 3_500, Declined, "a", None),
            ("t3", 3_600, Offered, "b", None),
            ("t3", 3_600 + 4_000, Accepted, "b", None),
            ("t4", 4_000, Offered, "a", None),
            ("t4", 64_000, OfferTimedOut, "a", None),
            ("t4", 64_000, Offered, "a", None),
            ("t4", 64_000 + a3, Accepted, "a", None),
        ]);
        let all = Window {
            from_ms: 0,
            to_ms: i64::MAX,
        };
        let tallies = tally(&events, all);
        let a = &tallies["a"];
        assert_eq!((a.offers, a.accepted, a.declined, a.lapsed), (5, 3, 1, 1));
        assert_eq!(a.answered, 2);
        let mut accepts = [a1, a2, a3];
        accepts.sort_unstable();
        assert_eq!(a.median_accept_ms(), Some(accepts[1]));
        assert_eq!(a.median_resolve_ms(), Some((r1 + r2) / 2));
        assert_eq!(a.declined_or_lapsed_share(), Some(2.0 / 5.0));
        assert_eq!(a.mean_rating(), Some(f64::from(5 + 2) / 2.0));
        assert_eq!(a.stars.len(), 2);
        let b = &tallies["b"];
        assert_eq!((b.offers, b.accepted, b.answered), (1, 1, 0));
        assert_eq!(b.median_accept_ms(), Some(4_000));
        assert_eq!(b.median_resolve_ms(), None);
        assert_eq!(b.mean_rating(), None);
        assert_eq!(b.declined_or_lapsed_share(), Some(0.0));

        // A window after t1 and t2's acceptances still measures their
        // answers from them, and no longer counts what happened before.
        let late = Window {
            from_ms: 1_000 + a1 + 1,
            to_ms: i64::MAX,
        };
        let a = &tally(&events, late)["a"];
        assert_eq!(a.answered, 2);
        assert_eq!(a.median_resolve_ms(), Some((r1 + r2) / 2));
        // t2's acceptance (at 32 000) and t4's second one remain.
        assert_eq!(a.accepted, 2);
        assert_eq!(a.offers, 1, "only t4's second offer is in the window");
    }

    #[test]
    fn subtotals_are_over_the_groups_events() {
        use EventKind::*;
        // a and b of the village tier, in two counties; c of the city's,
        // in a's county; d left the roster.
        // a: accepts after 10 s, 30 s, 20 s; answers after 100 s, 300 s;
        //    rated 5 and 2; declines one offer.
        // b: accepts after 4 s; answers after 40 s; rated 3; one lapses.
        // c: accepts after 8 s; answers after 60 s; rated 1.
        // d: one offer declined.
        let events = script(&[
            ("t1", 1_000, Offered, "a", None),
            ("t1", 11_000, Accepted, "a", None),
            ("t1", 111_000, Resolved, "a", None),
            ("t1", 111_005, Rated, "a", Some(5)),
            ("t2", 2_000, Offered, "a", None),
            ("t2", 32_000, Accepted, "a", None),
            ("t2", 332_000, Resolved, "a", None),
            ("t2", 332_005, Rated, "a", Some(2)),
            ("t3", 3_000, Offered, "a", None),
            ("t3", 23_000, Accepted, "a", None),
            ("t4", 4_000, Offered, "a", None),
            ("t4", 4_500, Declined, "a", None),
            ("t4", 4_600, Offered, "b", None),
            ("t4", 8_600, Accepted, "b", None),
            ("t4", 48_600, Resolved, "b", None),
            ("t4", 48_700, Rated, "b", Some(3)),
            ("t5", 5_000, Offered, "b", None),
            ("t5", 65_000, OfferTimedOut, "b", None),
            ("t5", 65_000, Offered, "c", None),
            ("t5", 73_000, Accepted, "c", None),
            ("t5", 133_000, Resolved, "c", None),
            ("t5", 133_100, Rated, "c", Some(1)),
            ("t6", 6_000, Offered, "d", None),
            ("t6", 7_000, Declined, "d", None),
        ]);
        let all = Window {
            from_ms: 0,
            to_ms: i64::MAX,
        };
        let divisions = Divisions::embedded();
        let baishui = divisions.find_county("白水县").unwrap();
        let pucheng = divisions.find_county("蒲城县").unwrap();
        let who = |id: &str| match id {
            "a" => (Some(Tier::Village), Some(baishui)),
            "b" => (Some(Tier::Village), Some(pucheng)),
            "c" => (Some(Tier::City), Some(baishui)),
            _ => (None, None),
        };
        let figures: Vec<ResponderFigures> = tally(&events, all)
            .into_iter()
            .map(|(talent_id, tally)| ResponderFigures {
                name: String::new(),
                tier: who(&talent_id).0,
                county: who(&talent_id).1,
                talent_id,
                tally,
            })
            .collect();
        let (by_tier, by_county) = subtotals(&figures);

        let groups: Vec<Group> = by_tier.iter().map(|s| s.group).collect();
        assert_eq!(
            groups,
            [
                Group::Tier(Some(Tier::City)),
                Group::Tier(Some(Tier::Village)),
                Group::Tier(None)
            ]
        );
        let village = &by_tier[1];
        let v = &village.tally;
        assert_eq!(village.responders, 2);
        assert_eq!((v.offers, v.accepted, v.declined, v.lapsed), (6, 4, 1, 1));
        assert_eq!(v.answered, 3);
        // Accepts 10, 30, 20 (a) and 4 s (b): the middle pair of the four,
        // not the median of a's 20 and b's 4 (12 s).
        assert_eq!(v.median_accept_ms(), Some((10_000 + 20_000) / 2));
        // Answers 100, 300 (a) and 40 s (b): 100 s, not (200 + 40) / 2.
        assert_eq!(v.median_resolve_ms(), Some(100_000));
        assert_eq!(v.declined_or_lapsed_share(), Some(2.0 / 6.0));
        // Weighted by count: (5 + 2 + 3) / 3, not (3.5 + 3) / 2.
        assert_eq!(v.mean_rating(), Some(10.0 / 3.0));
        let city = &by_tier[0];
        assert_eq!((city.responders, city.tally.answered), (1, 1));
        assert_eq!(city.tally.median_accept_ms(), Some(8_000));
        let gone = &by_tier[2];
        assert_eq!((gone.responders, gone.tally.offers), (1, 1));
        assert_eq!(gone.tally.declined_or_lapsed_share(), Some(1.0));

        let groups: Vec<Group> = by_county.iter().map(|s| s.group).collect();
        assert_eq!(
            groups,
            [
                Group::County(Some(pucheng)),
                Group::County(Some(baishui)),
                Group::County(None)
            ],
            "by code: 蒲城 610526 before 白水 610527"
        );
        let b = &by_county[1];
        // 白水: a and c. Accepts 10, 20, 30, 8 s; answers 100, 300, 60 s.
        assert_eq!(b.responders, 2);
        assert_eq!(b.tally.median_accept_ms(), Some((10_000 + 20_000) / 2));
        assert_eq!(b.tally.median_resolve_ms(), Some(100_000));
        assert_eq!(b.tally.mean_rating(), Some(8.0 / 3.0));
        assert_eq!(b.tally.offers, 5);
    }

    #[test]
    fn medians_of_even_counts_take_the_middle_pair() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[7]), Some(7));
        assert_eq!(median(&[4, 1, 3, 2]), Some(2));
        assert_eq!(median(&[10, 20]), Some(15));
    }
}
