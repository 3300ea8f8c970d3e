//! tantivy collectors: the top-k of qualified talents by distance or by
//! blended relevance, and a plain collector of talent positions.

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
pub struct Hit {
    pub talent: Arc<Talent>,
    pub distance_km: f64,
    /// 3 same division, 2 same town, 1 same county, 0 otherwise.
    pub closeness: u8,
    /// BM25 of the report's words against specialties and skills.
    pub text_score: f32,
    /// The ranking's score: the distance for nearest, the blend for best match.
    pub score: f64,
}

#[derive(Debug, Clone, Copy)]
pub struct Entry {
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

pub struct TopCollector {
    table: Table,
    origin: Origin,
    ranking: Ranking,
    limit: usize,
}

impl TopCollector {
    pub fn new(table: Table, origin: Origin, ranking: Ranking, limit: usize) -> TopCollector {
        TopCollector {
            table,
            origin,
            ranking,
            limit,
        }
    }
}

pub struct TopSegmentCollector {
    table: Table,
    origin: Origin,
    ranking: Ranking,
    limit: usize,
    ords: Column<u64>,
    /// Cosine of the origin's latitude, for [`flat_km`].
    cos_lat: f64,
    /// Best first, at most `limit` long.
    best: Vec<Entry>,
}

impl TopSegmentCollector {
    /// The worst kept distance once `limit` entries are kept.
    fn full_worst(&self) -> Option<f64> {
        (self.best.len() == self.limit).then(|| self.best.last().map_or(f64::MAX, |e| e.primary))
    }
}

/// Equirectangular distance in km: exact enough to prune, far cheaper than
/// the haversine.
fn flat_km(a: crate::geo::GeoPoint, cos_lat: f64, b: crate::geo::GeoPoint) -> f64 {
    const KM_PER_DEGREE: f64 = 111.195;
    let dx = (b.lon - a.lon) * cos_lat;
    let dy = b.lat - a.lat;
    KM_PER_DEGREE * (dx * dx + dy * dy).sqrt()
}

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
            limit: self.limit,
            ords: segment.fast_fields().u64("ord")?,
            cos_lat: self.origin.point.lat.to_radians().cos(),
            best: Vec::with_capacity(self.limit + 1),
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
                text_score: e.text,
                score,
            })
        })
        .collect()
}

/// Gaussian decay that is 1 at distance 0 and 0.5 at `scale_km`.
pub fn gauss_decay(distance_km: f64, scale_km: f64) -> f64 {
    let scale = scale_km.max(f64::EPSILON);
    (-(distance_km * distance_km) * std::f64::consts::LN_2 / (scale * scale)).exp()
}

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
        // A cheap flat-earth distance rules out most talents before the
        // exact great-circle one is computed: over Weinan's extent it is
        // within 1 % of the truth; the margin allows 5 %.
        if let (Ranking::Nearest, Some(worst)) = (self.ranking, self.full_worst()) {
            if flat_km(self.origin.point, self.cos_lat, talent.point) > worst * 1.05 + 0.05 {
                return;
            }
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
        let entry = Entry {
            primary,
            closeness,
            text: score,
            ord: ord as u32,
        };
        if self.best.len() == self.limit {
            let worst = self.best.last().expect("limit is above zero");
            if compare(&self.table, &entry, worst) != Ordering::Less {
                return;
            }
            self.best.pop();
        }
        let at = self
            .best
            .partition_point(|e| compare(&self.table, e, &entry) == Ordering::Less);
        self.best.insert(at, entry);
    }

    fn harvest(self) -> Vec<Entry> {
        self.best
    }
}

/// Collects the `ord` of every matching document.
pub struct OrdCollector;

pub struct OrdSegmentCollector {
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
    fn flat_distance_is_within_a_percent_over_weinan() {
        let a = crate::geo::GeoPoint {
            lat: 34.5,
            lon: 109.5,
        };
        for (dlat, dlon) in [
            (0.0, 0.5),
            (0.8, 0.0),
            (0.6, 0.9),
            (-0.4, -0.7),
            (0.01, 0.01),
        ] {
            let b = crate::geo::GeoPoint {
                lat: a.lat + dlat,
                lon: a.lon + dlon,
            };
            let exact = a.distance_km(b);
            let flat = flat_km(a, a.lat.to_radians().cos(), b);
            assert!(
                (flat - exact).abs() <= exact * 0.01,
                "{dlat},{dlon}: {flat} vs {exact}"
            );
        }
    }

    #[test]
    fn gauss_decay_halves_at_scale() {
        assert_eq!(gauss_decay(0.0, 30.0), 1.0);
        assert!((gauss_decay(30.0, 30.0) - 0.5).abs() < 1e-12);
        assert!(gauss_decay(60.0, 30.0) < 0.1);
    }
}
