//! The corps fallback for a crop that no subject covers: the report goes to
//! the corps' people and the reason says why.

use super::*;
use crate::{
    roster::{self, RosterFormat},
    tickets::random_hex,
};

/// `v` grows vegetables (白菜), `f` apples; both in 白水县 史官镇.
const ROSTER: &str = "id,name,tier,specialties,skills,division_code,lat,lon,capacity\n\
    v,甲,village,白菜,,610527106202,35.00,109.5,1\n\
    f,乙,village,苹果,,610527106202,35.00,109.5,1\n";

fn matcher(tag: &str) -> (Matcher, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("xwn-{tag}-{}", random_hex(8)));
    let (lex, div) = (Lexicon::embedded(), Divisions::embedded());
    let talents = roster::parse_roster(RosterFormat::Csv, ROSTER.as_bytes(), lex, div).unwrap();
    let roster = RosterStore::open(&dir, lex, || Ok(talents)).unwrap();
    (Matcher::new(Arc::new(roster), MatchConfig::default()), dir)
}

fn request(text: &str) -> MatchRequest {
    MatchRequest {
        text: text.into(),
        location: Some(Location::Point {
            lat: 35.0,
            lon: 109.5,
        }),
        limit: 5,
        best_match: false,
    }
}

#[test]
fn a_crop_without_a_subject_goes_to_its_corps_and_the_reason_says_so() {
    let (m, dir) = matcher("crop-corps");
    let outcome = m.match_problem(&request("生菜叶子发黄是咋回事")).unwrap();
    assert_eq!(outcome.subject, None);
    assert_eq!(outcome.corps, Some(Corps::Vegetable));
    let ids: Vec<&str> = outcome
        .candidates
        .iter()
        .map(|c| c.talent.id.as_str())
        .collect();
    assert_eq!(ids, ["v"], "only the vegetable corps qualifies");
    let reason = &outcome.candidates[0].reason;
    assert!(
        reason.contains("生菜不属于平台的专长品类") && reason.contains("转蔬菜组"),
        "{reason}"
    );

    // A name mapped to a subject goes to that subject's specialists.
    let outcome = m.match_problem(&request("娃娃菜烂根咋办")).unwrap();
    assert_eq!(outcome.subject.as_deref(), Some("白菜"));
    assert!(outcome.candidates[0].reason.contains("专长白菜"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn triage_asks_the_corps_of_the_hint_first_when_it_has_anyone() {
    let (m, dir) = matcher("triage-hint");
    let snapshot = m.snapshot();
    let origin = m
        .resolve_location(request("").location.as_ref(), "location")
        .unwrap();
    let pool = |hint| {
        let need = Need {
            triage: true,
            hint,
            ..Need::default()
        };
        m.qualified_pool(&snapshot, &need, origin).unwrap().corps
    };
    assert_eq!(pool(Some(Corps::Fruit)), [Corps::Fruit]);
    // Nobody of 畜牧 is in the roster: anyone triages, as without a hint.
    assert_eq!(pool(Some(Corps::Livestock)), Corps::ALL);
    assert_eq!(pool(None), Corps::ALL);
    // The hint comes from the analysis of symptoms that name nothing.
    let need = Need::of(&m.analyze("这是红蜘蛛还是蓟马 给看一下", origin));
    assert!(need.triage && need.corps.is_none());
    assert_eq!(need.hint, Some(Corps::Fruit));
    let _ = std::fs::remove_dir_all(dir);
}
