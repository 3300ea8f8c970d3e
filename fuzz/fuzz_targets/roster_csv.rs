//! Fuzzes the CSV roster parser and validator: any bytes, no panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xingweinong::{model::divisions::Divisions, reading::lexicon::Lexicon, roster};

fuzz_target!(|data: &[u8]| {
    let _ = roster::parse_roster(
        roster::RosterFormat::Csv,
        data,
        Lexicon::embedded(),
        Divisions::embedded(),
    );
});
