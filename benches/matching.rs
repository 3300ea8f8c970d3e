//! In-process benchmark of the analyser and of MatchProblem's core on the
//! demo roster (or a synthetic one: `XWN_BENCH_SIZE=100000`): index build
//! time, memory after load, p50/p99 per query over the development set, and
//! the time of a one-talent upsert.
//!
//! Run: `cargo bench --bench matching`.

#[path = "common/figures.rs"]
mod figures;

use std::time::Instant;

use xingweinong::{
    config::MatchConfig,
    model::divisions::Divisions,
    reading::lexicon::Lexicon,
    reading::{analyzer, eval},
    roster::store::RosterStore,
    roster::{self, gen, RosterFormat},
    {
        matching::{MatchRequest, Matcher},
        model::Location,
    },
};

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let size = figures::size(0);
    let rounds = figures::rounds();
    let (lex, div) = (Lexicon::embedded(), Divisions::embedded());
    let csv = gen::generate_csv(gen::DEMO_SEED, gen::villagers_for(size), lex, div);
    let talents = roster::parse_roster(RosterFormat::Csv, csv.as_bytes(), lex, div).unwrap();
    drop(csv);
    let count = talents.len();
    let dir = std::env::temp_dir().join(format!("xwn-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let rss_before = rss_mib();
    let t = Instant::now();
    let store = RosterStore::open(&dir, lex, || Ok(talents)).unwrap();
    println!(
        "roster {count} talents: index built and loaded in {:.3} s",
        t.elapsed().as_secs_f64()
    );
    println!(
        "RSS after load {:.0} MiB (+{:.0} MiB for the roster)",
        rss_mib(),
        rss_mib() - rss_before
    );
    let store = std::sync::Arc::new(store);
    let matcher = Matcher::new(store.clone(), MatchConfig::default());

    let dev = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/problems/dev.jsonl"
    ))
    .unwrap();
    let items = eval::parse(&dev).unwrap();
    let mut analyse = Vec::new();
    let mut nearest = Vec::new();
    let mut best = Vec::new();
    for round in 0..rounds {
        for item in &items {
            let t = Instant::now();
            let a = analyzer::analyze(lex, &item.text);
            analyse.push(t.elapsed().as_nanos() as u64);
            std::hint::black_box(a);
            for (best_match, out) in [(false, &mut nearest), (true, &mut best)] {
                let request = MatchRequest {
                    text: item.text.clone(),
                    location: Some(Location::Division(item.division_code.clone())),
                    limit: 5,
                    best_match,
                };
                let t = Instant::now();
                let reply = matcher.match_problem(&request).unwrap();
                if round > 0 {
                    out.push(t.elapsed().as_nanos() as u64);
                }
                std::hint::black_box(reply);
            }
        }
    }
    figures::percentiles("analyse", analyse);
    figures::percentiles("match (nearest)", nearest);
    figures::percentiles("match (best match)", best);
    // One talent changed: a commit, its talent table file, a new snapshot.
    let mut changed = (**store.snapshot().talents().next().expect("a talent")).clone();
    changed.skills.push_str("、测土配方施肥");
    let t = Instant::now();
    let version = store.upsert(vec![changed]).unwrap();
    println!(
        "upsert of one talent (version {version}): {:.3} s",
        t.elapsed().as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
