//! Ranked hits and the order among them, a tantivy collector of talent
//! positions, and (in tests) the scan collector the spatial rankings are
//! checked against.

use std::{cmp::Ordering, sync::Arc};

use tantivy::{
    collector::{Collector, SegmentCollector},
    columnar::Column,
    DocId, Score, SegmentOrdinal, SegmentReader,
};

use super::{Origin, Ranking};
use crate::model::Talent;

pub(super) type Table = Arc<Vec<Option<Arc<Talent>>>>;

/// One ranked talent.
#[derive(Debug, Clone)]
pub(crate) struct Hit {
    pub(crate) talent: Arc<Talent>,
    pub(crate) distance_km: f64,
    /// 3 same division, 2 same town, 1 same county, 0 otherwise.
    pub(crate) closeness: u8,
    /// BM25 of the report's words against specialties and skills (read by
    /// the test oracle only).
    #[cfg(test)]
    pub(crate) text_score: f32,
    /// The ranking's score: the distance for nearest, the blend for best match.
    pub(crate) score: f64,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry {
    /// Smaller is better.
    primary: f64,
    closeness: u8,
    text: f32,
    ord: u32,
}

impl Entry {
    pub(super) fn new(primary: f64, closeness: u8, text: f32, ord: u32) -> Entry {
        Entry {
            primary,
            closeness,
            text,
            ord,
        }
    }

    /// The ranking's key, smaller is better.
    pub(super) fn primary(&self) -> f64 {
        self.primary
    }
}

/// Orders entries best first; ids break the last ties.
pub(super) fn compare(table: &Table, a: &Entry, b: &Entry) -> Ordering {
    a.primary
        .total_cmp(&b.primary)
        .then(b.closeness.cmp(&a.closeness))
        .then(b.text.total_cmp(&a.text))
        .then_with(|| {
            let id = |e: &Entry| table[e.ord as usize].as_ref().map(|t| t.id.as_str());
            id(a).cmp(&id(b))
        })
}

/// Every qualified talent of every segment, scored: the plain scan the
/// spatial rankings are tested against.
#[cfg(test)]
pub(crate) struct TopCollector {
    table: Table,
    origin: Origin,
    ranking: Ranking,
    limit: usize,
}

#[cfg(test)]
impl TopCollector {
    pub(crate) fn new(
        table: Table,
        origin: Origin,
        ranking: Ranking,
        limit: usize,
    ) -> TopCollector {
        TopCollector {
            table,
            origin,
            ranking,
            limit,
        }
    }
}

#[cfg(test)]
pub(crate) struct TopSegmentCollector {
    table: Table,
    origin: Origin,
    ranking: Ranking,
    ords: Column<u64>,
    all: Vec<Entry>,
}

#[cfg(test)]
impl Collector for TopCollector {
    type Fruit = Vec<Hit>;
    type Child = TopSegmentCollector;

    fn for_segment(
        &self,
        _: SegmentOrdinal,
        segment: &SegmentReader,
    ) -> tantivy::Result<Self::Child> {
        Ok(TopSegmentCollector {
            table: self.table.clone(),
            origin: self.origin,
            ranking: self.ranking,
            ords: segment.fast_fields().u64("ord")?,
            all: Vec::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        true
    }

    fn merge_fruits(&self, fruits: Vec<Vec<Entry>>) -> tantivy::Result<Vec<Hit>> {
        let all: Vec<Entry> = fruits.into_iter().flatten().collect();
        Ok(best_hits(
            &self.table,
            self.origin,
            self.ranking,
            all,
            self.limit,
        ))
    }
}

/// The best `limit` entries as hits, best first.
pub(super) fn best_hits(
    table: &Table,
    origin: Origin,
    ranking: Ranking,
    mut all: Vec<Entry>,
    limit: usize,
) -> Vec<Hit> {
    if all.len() > limit {
        all.select_nth_unstable_by(limit, |a, b| compare(table, a, b));
        all.truncate(limit);
    }
    all.sort_by(|a, b| compare(table, a, b));
    all.into_iter()
        .filter_map(|e| {
            let talent = table[e.ord as usize].clone()?;
            let distance_km = origin.point.distance_km(talent.point);
            let score = match ranking {
                Ranking::Nearest => distance_km,
                Ranking::BestMatch { .. } => -e.primary,
            };
            Some(Hit {
                talent,
                distance_km,
                closeness: e.closeness,
                #[cfg(test)]
                text_score: e.text,
                score,
            })
        })
        .collect()
}

/// Gaussian decay that is 1 at distance 0 and 0.5 at `scale_km`.
pub(crate) fn gauss_decay(distance_km: f64, scale_km: f64) -> f64 {
    let scale = scale_km.max(f64::EPSILON);
    (-(distance_km * distance_km) * std::f64::consts::LN_2 / (scale * scale)).exp()
}

#[cfg(test)]
impl SegmentCollector for TopSegmentCollector {
    type Fruit = Vec<Entry>;

    fn collect(&mut self, doc: DocId, score: Score) {
        let Some(ord) = self.ords.first(doc) else {
            return;
        };
        let Some(talent) = self.table.get(ord as usize).and_then(Option::as_ref) else {
            return;
        };
        if !talent.is_available() {
            return;
        }
        let distance = self.origin.point.distance_km(talent.point);
        let primary = match self.ranking {
            Ranking::Nearest => distance,
            Ranking::BestMatch { scale_km } => {
                -(1.0 + f64::from(score)) * gauss_decay(distance, scale_km)
            }
        };
        let closeness = self
            .origin
            .division
            .map_or(0, |d| d.closeness(talent.division_code));
        self.all
            .push(Entry::new(primary, closeness, score, ord as u32));
    }

    fn harvest(self) -> Vec<Entry> {
        self.all
    }
}

/// Collects the `ord` of every matching document.
pub(crate) struct OrdCollector;

pub(crate) struct OrdSegmentCollector {
    ords: Column<u64>,
    out: Vec<u64>,
}

impl Collector for OrdCollector {
    type Fruit = Vec<u64>;
    type Child = OrdSegmentCollector;

    fn for_segment(
        &self,
        _: SegmentOrdinal,
        segment: &SegmentReader,
    ) -> tantivy::Result<Self::Child> {
        Ok(OrdSegmentCollector {
            ords: segment.fast_fields().u64("ord")?,
            out: Vec::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Vec<u64>>) -> tantivy::Result<Vec<u64>> {
        Ok(fruits.concat())
    }
}

impl SegmentCollector for OrdSegmentCollector {
    type Fruit = Vec<u64>;

    fn collect(&mut self, doc: DocId, _: Score) {
        self.out.extend(self.ords.first(doc));
    }

    fn harvest(self) -> Vec<u64> {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauss_decay_halves_at_scale() {
        assert_eq!(gauss_decay(0.0, 30.0), 1.0);
        assert!((gauss_decay(30.0, 30.0) - 0.5).abs() < 1e-12);
        assert!(gauss_decay(60.0, 30.0) < 0.1);
    }
}
