//! Fuzzes the report analyser: any UTF-8 text, with and without a county,
//! no panic, and a confidence within 0..=1.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xingweinong::reading::{analyzer, lexicon::Lexicon};

fuzz_target!(|text: &str| {
    let lexicon = Lexicon::embedded();
    for county in [None, Some("白水县")] {
        let a = analyzer::analyze_in(lexicon, text, county);
        assert!(
            (0.0..=1.0).contains(&a.confidence),
            "confidence {}",
            a.confidence
        );
        assert!(a.subject.is_none() || a.corps.is_some());
    }
});
