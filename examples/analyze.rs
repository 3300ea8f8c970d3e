//! Prints how the analyser reads each report given on the command line:
//! `cargo run --example analyze -- "苹果树叶子发黄"`.

use xingweinong::reading::{analyzer, lexicon::Lexicon};

fn main() {
    let lexicon = Lexicon::embedded();
    for text in std::env::args().skip(1) {
        let a = analyzer::analyze(lexicon, &text);
        let name =
            |s: Option<u16>| s.map_or("—".to_string(), |s| lexicon.subject(s).name.clone());
        let words: Vec<&str> = lexicon.words(&text).map(|w| w.text).collect();
        println!("{text}\n  words: {}", words.join(" | "));
        println!(
            "  subject {} corps {} confidence {:.2} runner-up {} agricultural {} missing {} guess {} hint {}",
            name(a.subject),
            a.corps.map_or("—", |c| c.chinese()),
            a.confidence,
            name(a.runner_up),
            a.agricultural,
            a.missing.map_or("—", |m| m.key()),
            name(a.guess),
            a.hint.map_or("—", |c| c.chinese()),
        );
        for e in &a.evidence {
            println!(
                "    {:<10} {:<6} {:<10} {:<11} {:.2}",
                e.term,
                name(e.subject),
                e.kind,
                e.role.key(),
                e.weight
            );
        }
    }
}
