//! Fuzzes the JSONL roster parser and the liaison list parser: any bytes,
//! no panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xingweinong::{
    model::divisions::Divisions, reading::lexicon::Lexicon, roster, tickets::liaison,
};

fuzz_target!(|data: &[u8]| {
    let (lexicon, divisions) = (Lexicon::embedded(), Divisions::embedded());
    let _ = roster::parse_roster(roster::RosterFormat::Jsonl, data, lexicon, divisions);
    let _ = liaison::parse_liaisons(roster::RosterFormat::Jsonl, data, divisions);
    let _ = liaison::parse_liaisons(roster::RosterFormat::Csv, data, divisions);
});
