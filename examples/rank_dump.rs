//! Prints MatchProblem's ranked candidates for every development report at
//! several places, rankings and limits, one line a query: diffing two runs
//! shows whether a change to matching altered any order.
//!
//! `cargo run --release --example rank_dump -- [roster size] > ranks.txt`

use std::sync::Arc;

use xingweinong::{
    config::MatchConfig,
    model::divisions::Divisions,
    reading::eval,
    reading::lexicon::Lexicon,
    roster::store::RosterStore,
    roster::{self, gen, RosterFormat},
    {
        matching::{MatchRequest, Matcher},
        model::Location,
    },
};

fn main() {
    let size: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (lex, div) = (Lexicon::embedded(), Divisions::embedded());
    let csv = gen::generate_csv(gen::DEMO_SEED, gen::villagers_for(size), lex, div);
    let talents = roster::parse_roster(RosterFormat::Csv, csv.as_bytes(), lex, div).unwrap();
    let dir = std::env::temp_dir().join(format!("xwn-rank-dump-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = RosterStore::open(&dir, lex, || Ok(talents)).unwrap();
    let matcher = Matcher::new(Arc::new(store), MatchConfig::default());
    let dev = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/problems/dev.jsonl"
    ))
    .unwrap();
    let items = eval::parse(&dev).unwrap();
    let points = [
        (34.52, 109.47),
        (35.18, 109.93),
        (34.80, 109.55),
        (34.34, 108.94),
        (39.90, 116.40),
    ];
    for (i, item) in items.iter().enumerate() {
        let mut locations = vec![Location::Division(item.division_code.clone())];
        let (lat, lon) = points[i % points.len()];
        locations.push(Location::Point { lat, lon });
        if let Some(d) = xingweinong::model::divisions::DivisionCode::parse(&item.division_code)
            .and_then(|c| div.get(c))
        {
            locations.push(Location::Point {
                lat: d.point.lat,
                lon: d.point.lon,
            });
        }
        for (l, location) in locations.into_iter().enumerate() {
            for best_match in [false, true] {
                for limit in [1, 5, 50] {
                    let request = MatchRequest {
                        text: item.text.clone(),
                        location: Some(location.clone()),
                        limit,
                        best_match,
                    };
                    let started = std::time::Instant::now();
                    let reply = matcher.match_problem(&request);
                    let took = started.elapsed();
                    if took.as_micros() > 2_000 {
                        eprintln!("slow {i} {l} {best_match} {limit}: {took:?}");
                    }
                    let out = match reply {
                        Ok(o) => o
                            .candidates
                            .iter()
                            .map(|c| {
                                format!(
                                    "{}:{:.9}:{:.9}:{}",
                                    c.talent.id,
                                    c.distance_km,
                                    c.score,
                                    c.matched_terms.join("/")
                                )
                            })
                            .collect::<Vec<_>>()
                            .join(" "),
                        Err(e) => format!("error {e}"),
                    };
                    println!("{i} {l} {best_match} {limit} {out}");
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
