//! Counts over the roster (by tier, corps and county), computed once per
//! snapshot.

use std::collections::BTreeMap;

use crate::{
    model::divisions::Divisions,
    model::{Corps, Talent, Tier},
};

/// Counts over the roster.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Stats {
    pub(crate) total: u64,
    pub(crate) active: u64,
    pub(crate) city: u64,
    pub(crate) county_town: u64,
    pub(crate) village: u64,
    pub(crate) corps_members: u64,
    pub(crate) by_corps: BTreeMap<String, u64>,
    pub(crate) by_county: BTreeMap<String, u64>,
}

impl Stats {
    pub(super) fn of<'a>(
        talents: impl Iterator<Item = &'a Talent>,
        divisions: &Divisions,
    ) -> Stats {
        let mut s = Stats::default();
        let mut by_corps = [0u64; Corps::ALL.len()];
        // Counted under names borrowed from `divisions`; copied once at the end.
        let mut by_county: rustc_hash::FxHashMap<&str, u64> = Default::default();
        for t in talents {
            s.total += 1;
            s.active += u64::from(t.active);
            match t.tier {
                Tier::City => s.city += 1,
                Tier::CountyTown => s.county_town += 1,
                Tier::Village => s.village += 1,
            }
            if let Some(c) = t.corps {
                s.corps_members += 1;
                by_corps[c as usize] += 1;
            }
            let county = divisions
                .county_of(t.division_code)
                .unwrap_or_else(|| divisions.city());
            *by_county.entry(county.name.as_str()).or_default() += 1;
        }
        s.by_corps = Corps::ALL
            .into_iter()
            .map(|c| (c.chinese().to_string(), by_corps[c as usize]))
            .collect();
        s.by_county = by_county
            .into_iter()
            .map(|(name, n)| (name.to_string(), n))
            .collect();
        s
    }
}
