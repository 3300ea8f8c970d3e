//! The oracle of the rankings (tests only): [`Snapshot::top`] answered by
//! a plain tantivy scan of every qualified talent, and the test that the
//! spatial rankings of `rank.rs` answer exactly as it does.

use tantivy::{
    query::{BooleanQuery, Occur, Query, TermQuery},
    schema::IndexRecordOption,
    Term,
};

use super::{collector, Hit, Origin, Pool, Ranking, Snapshot};
use crate::{
    model::divisions::{DivisionCode, Divisions},
    model::geo::GeoPoint,
    reading::lexicon::Lexicon,
    roster::gen,
    roster::store::RosterStore,
};

impl Snapshot {
    /// [`Snapshot::top`] by tantivy: every talent of the pool's posting
    /// lists scored, the oracle the spatial rankings are checked against.
    fn top_by_scan(
        &self,
        pool: &Pool,
        origin: Origin,
        text_terms: &[String],
        ranking: Ranking,
        limit: usize,
    ) -> tantivy::Result<Vec<Hit>> {
        let collector = collector::TopCollector::new(self.talents.clone(), origin, ranking, limit);
        self.searcher
            .search(&self.top_query(pool, text_terms), &collector)
    }

    /// The pool as a filter (score 0) plus the report's words, scored by BM25.
    fn top_query(&self, pool: &Pool, text_terms: &[String]) -> BooleanQuery {
        let f = &self.fields;
        let mut pool_clauses: Vec<Box<dyn Query>> = pool
            .specialties
            .iter()
            .map(|s| self.term(f.specialty, s))
            .collect();
        pool_clauses.extend(
            pool.corps
                .iter()
                .map(|c| self.term(f.specialty_corps, c.chinese())),
        );
        let pool_query: Box<dyn Query> = Box::new(tantivy::query::ConstScoreQuery::new(
            self.any_of(pool_clauses),
            0.0,
        ));
        let mut clauses = vec![(Occur::Must, pool_query)];
        for t in text_terms {
            let term = Term::from_field_text(f.text, t);
            clauses.push((
                Occur::Should,
                Box::new(TermQuery::new(term, IndexRecordOption::WithFreqs)),
            ));
        }
        BooleanQuery::new(clauses)
    }
}

/// What a ranking returned, for comparing: ids in order, with scores
/// (the nearest ranking computes text scores only to break ties).
fn ranked(hits: &[Hit], ranking: Ranking) -> Vec<(String, f64, f32)> {
    hits.iter()
        .map(|h| {
            let text = match ranking {
                Ranking::Nearest => 0.0,
                Ranking::BestMatch { .. } => h.text_score,
            };
            (h.talent.id.clone(), h.score, text)
        })
        .collect()
}

/// The spatial index answers both rankings exactly as a scan of every
/// qualified talent by tantivy does, ties and all, on a roster big
/// enough that most of it is never visited.
#[test]
fn spatial_rankings_equal_a_scan_of_every_qualified_talent() {
    let (lex, div) = (Lexicon::embedded(), Divisions::embedded());
    let csv = gen::generate_csv(gen::DEMO_SEED + 7, gen::villagers_for(20_000), lex, div);
    let dir = std::env::temp_dir().join(format!("xwn-spatial-test-{}", std::process::id()));
    let store = RosterStore::of_csv(&dir, &csv);
    let snapshot = store.snapshot();
    let items =
        crate::reading::eval::parse(include_str!("../../tests/data/problems/dev.jsonl")).unwrap();
    let far = GeoPoint {
        lat: 39.9,
        lon: 116.4,
    };
    let mut compared = 0;
    for (i, item) in items.iter().enumerate().step_by(5) {
        let analysis = crate::reading::analyzer::analyze(lex, &item.text);
        let mut pools = Vec::new();
        if let Some(s) = analysis.subject {
            let subject = lex.subject(s);
            let mut specialties = vec![subject.name.clone()];
            specialties.extend(subject.parent.map(|p| lex.subject(p).name.clone()));
            pools.push(Pool {
                specialties,
                corps: vec![],
            });
        }
        if let Some(c) = analysis.corps {
            pools.push(Pool {
                specialties: vec![],
                corps: vec![c],
            });
        }
        let code = DivisionCode::parse(&item.division_code).unwrap();
        let home = Origin {
            point: div.get(code).unwrap().point,
            division: Some(code),
        };
        let origin = if i % 25 == 0 {
            Origin {
                point: far,
                division: None,
            }
        } else {
            home
        };
        for pool in &pools {
            for ranking in [
                Ranking::Nearest,
                Ranking::BestMatch { scale_km: 30.0 },
                Ranking::BestMatch { scale_km: 3.0 },
            ] {
                for limit in [1, 5, 40] {
                    let got = snapshot
                        .top(pool, origin, &analysis.words, ranking, limit)
                        .unwrap();
                    let want = snapshot
                        .top_by_scan(pool, origin, &analysis.words, ranking, limit)
                        .unwrap();
                    assert!(!want.is_empty(), "{pool:?} has nobody");
                    assert_eq!(
                        ranked(&got, ranking),
                        ranked(&want, ranking),
                        "{:?} {pool:?} {ranking:?} limit {limit}",
                        item.text
                    );
                    compared += 1;
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(compared > 300, "only {compared} queries compared");
}
