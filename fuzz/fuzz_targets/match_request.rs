//! Fuzzes request validation and matching end to end on a small roster:
//! any text, division code, point and limit either match or get a clean
//! error naming a field; never a panic.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use xingweinong::{
    config::MatchConfig,
    error::Error,
    model::divisions::Divisions,
    reading::lexicon::Lexicon,
    roster::store::RosterStore,
    roster::{self, RosterFormat},
    {
        matching::{MatchRequest, Matcher},
        model::Location,
    },
};

fn matcher() -> &'static Matcher {
    static SERVICE: OnceLock<Matcher> = OnceLock::new();
    SERVICE.get_or_init(|| {
        let (lex, div) = (Lexicon::embedded(), Divisions::embedded());
        let csv = roster::gen::generate_csv(1, 300, lex, div);
        let talents = roster::parse_roster(RosterFormat::Csv, csv.as_bytes(), lex, div).unwrap();
        let dir = std::env::temp_dir().join(format!("xwn-fuzz-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = RosterStore::open(&dir, lex, || Ok(talents)).unwrap();
        Matcher::new(Arc::new(store), MatchConfig::default())
    })
}

fuzz_target!(|input: (&str, &str, f64, f64, u8, u32, bool)| {
    let (text, code, lat, lon, which, limit, best_match) = input;
    let location = match which % 3 {
        0 => None,
        1 => Some(Location::Division(code.to_string())),
        _ => Some(Location::Point { lat, lon }),
    };
    let request = MatchRequest {
        text: text.to_string(),
        location,
        limit,
        best_match,
    };
    match matcher().match_problem(&request) {
        Ok(outcome) => assert!(outcome.candidates.len() <= 50),
        Err(Error::InvalidArgument { field, .. }) => assert!(!field.is_empty()),
        Err(other) => panic!("unexpected error {other:?}"),
    }
});
