//! The rankings of [`Snapshot::top`] from the spatial index: nearest
//! qualified (distance, then closeness, then text) and best match
//! (`(1 + BM25) × gauss(distance)`, the report's words scored term at a
//! time), and in tests the tantivy scan both are checked against.

use std::sync::Arc;

use super::{
    collector::{self, best_hits, Entry},
    spatial::Walk,
    Hit, Origin, Pool, Ranking, Snapshot,
};
use crate::model::Talent;

impl Snapshot {
    /// The best `limit` available talents of `pool` for a farmer at
    /// `origin`, scored against `text_terms` (content words of the report).
    /// The spatial lists of the pool's specialties and corps hold the
    /// candidates, nearest cells first; no talent outside them is looked at.
    pub(crate) fn top(
        &self,
        pool: &Pool,
        origin: Origin,
        text_terms: &[String],
        ranking: Ranking,
        limit: usize,
    ) -> tantivy::Result<Vec<Hit>> {
        if (pool.specialties.is_empty() && pool.corps.is_empty()) || limit == 0 {
            return Ok(Vec::new());
        }
        match ranking {
            Ranking::Nearest => self.nearest(pool, origin, text_terms, limit),
            Ranking::BestMatch { scale_km } => {
                self.best_match(pool, origin, text_terms, scale_km, limit)
            }
        }
    }

    /// Every available talent of `pool`, the ones [`Snapshot::top`] ranks,
    /// in no particular order and not ranked at all (one with several of
    /// the pool's specialties is met once for each).
    pub(crate) fn pool_talents<'a>(
        &'a self,
        pool: &'a Pool,
    ) -> impl Iterator<Item = &'a Arc<Talent>> + 'a {
        self.spatial
            .members(&pool.specialties, &pool.corps)
            .filter_map(|m| self.talents.get(m.ord as usize)?.as_ref())
    }

    /// [`Snapshot::top`] by distance, from the
    /// spatial index: the text score is only computed where it decides
    /// (between talents tied on distance and closeness).
    fn nearest(
        &self,
        pool: &Pool,
        origin: Origin,
        text_terms: &[String],
        limit: usize,
    ) -> tantivy::Result<Vec<Hit>> {
        let near = self.spatial.nearest(
            &pool.specialties,
            &pool.corps,
            origin.point,
            origin.division,
            limit,
        );
        let tied = near
            .windows(2)
            .any(|w| w[0].distance_km == w[1].distance_km && w[0].closeness == w[1].closeness);
        let words = if tied {
            self.held_words(text_terms)
        } else {
            Vec::new()
        };
        let scores = if !words.is_empty() {
            let ords: Vec<u32> = near.iter().map(|n| n.ord).collect();
            self.text_scores(&words, &ords)?
        } else {
            vec![0.0; near.len()]
        };
        let entries = near
            .iter()
            .zip(scores)
            .map(|(n, text)| Entry::new(n.distance_km, n.closeness, text, n.ord))
            .collect();
        Ok(best_hits(
            &self.talents,
            origin,
            Ranking::Nearest,
            entries,
            limit,
        ))
    }

    /// [`Snapshot::top`] by `(1 + BM25) × gauss(distance)`, from the spatial
    /// index. The report's words are scored first, term at a time over
    /// their posting lists, into a buffer by document; then the pool's
    /// cells are walked nearest first ([`Snapshot::walk_best`]). The buffer
    /// is zeroed again and kept for the next query.
    fn best_match(
        &self,
        pool: &Pool,
        origin: Origin,
        text_terms: &[String],
        scale_km: f64,
        limit: usize,
    ) -> tantivy::Result<Vec<Hit>> {
        let walk = self
            .spatial
            .walk(&pool.specialties, &pool.corps, origin.point);
        let mut texts = self
            .scratch
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or_else(|| vec![0.0; self.total_docs as usize]);
        let mut touched = Vec::new();
        let scored = self.score_words(&self.held_words(text_terms), &mut texts, &mut touched);
        let kept = scored.map(|()| {
            let text_max = touched
                .iter()
                .map(|&d| texts[d as usize])
                .fold(0.0f32, f32::max);
            self.walk_best(walk, &texts, text_max, origin, scale_km, limit)
        });
        for d in touched {
            texts[d as usize] = 0.0;
        }
        self.scratch
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(texts);
        Ok(best_hits(
            &self.talents,
            origin,
            Ranking::BestMatch { scale_km },
            kept?,
            limit,
        ))
    }

    /// The talents of `walk` that could place among the best `limit`, with
    /// `texts` their text scores by document and `text_max` the best of
    /// them. A talent is looked at only if its score at the cell's nearest
    /// edge could place, and the walk ends where even the best text
    /// anywhere could not.
    fn walk_best(
        &self,
        walk: Walk<'_>,
        texts: &[f32],
        text_max: f32,
        origin: Origin,
        scale_km: f64,
        limit: usize,
    ) -> Vec<Entry> {
        let several = walk.lists() > 1;
        // A score at a distance cannot pass this; a little over, for rounding.
        let reach = |text: f32, decay: f64| (1.0 + f64::from(text)) * decay * (1.0 + 1e-9);
        let mut kept: Vec<Entry> = Vec::new();
        // Once `limit` are kept: the score a talent must reach to place.
        let mut floor: Option<f64> = None;
        let mut seen = std::collections::HashSet::new();
        for (lower_km, members) in walk {
            let decay = collector::gauss_decay(lower_km.max(0.0), scale_km);
            if floor.is_some_and(|f| reach(text_max, decay) < f) {
                break;
            }
            for m in members {
                let text = texts.get(m.doc as usize).copied().unwrap_or(0.0);
                if floor.is_some_and(|f| reach(text, decay) < f) {
                    continue;
                }
                let distance_km = origin.point.distance_km(m.point);
                let score = (1.0 + f64::from(text)) * collector::gauss_decay(distance_km, scale_km);
                if floor.is_some_and(|f| score < f) || (several && !seen.insert(m.ord)) {
                    continue;
                }
                let closeness = origin.division.map_or(0, |d| d.closeness(m.division));
                kept.push(Entry::new(-score, closeness, text, m.ord));
                if kept.len() >= limit && (floor.is_none() || kept.len() >= 2 * limit + 16) {
                    kept.select_nth_unstable_by(limit - 1, |a, b| {
                        collector::compare(&self.talents, a, b)
                    });
                    kept.truncate(limit);
                    floor = kept.iter().map(|e| -e.primary()).reduce(f64::min);
                }
            }
        }
        kept
    }
}
