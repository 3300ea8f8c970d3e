//! The corps fallback for a crop that no subject covers: the report goes to
//! the corps' people and the reason says why.

use super::*;
use crate::tickets::random_hex;

/// `v` grows vegetables (白菜), `f` apples; both in 白水县 史官镇.
const ROSTER: &str = "id,name,tier,specialties,skills,division_code,lat,lon,capacity\n\
    v,甲,village,白菜,,610527106202,35.00,109.5,1\n\
    f,乙,village,苹果,,610527106202,35.00,109.5,1\n";

fn matcher(tag: &str) -> (Matcher, std::path::PathBuf) {
    matcher_of(tag, ROSTER)
}

/// A matcher on the roster `csv`, in a fresh directory it returns.
fn matcher_of(tag: &str, csv: &str) -> (Matcher, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("xwn-{tag}-{}", random_hex(8)));
    let roster = RosterStore::of_csv(&dir, csv);
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

/// `a` grows apples and prunes; `s` keeps sheep (the parent of 奶山羊);
/// `v` grows cabbages and radishes: one talent for each way to qualify.
const REASONS_ROSTER: &str = "id,name,tier,specialties,skills,division_code,lat,lon,capacity\n\
    a,甲,village,苹果,修剪 拉枝,610527106202,35.00,109.5,1\n\
    s,乙,county_town,羊,,610527106202,35.10,109.5,1\n\
    v,丙,city,白菜;萝卜,,610527106202,35.20,109.5,1\n";

/// Every reason a candidate can be given, written out whole: the subject
/// (with a skill, closeness and both orders), the parent, the corps for a
/// crop no subject covers, and the corps when nobody has the subject.
#[test]
fn reasons_are_written_out_whole_for_every_basis() {
    let (m, dir) = matcher_of("reasons", REASONS_ROSTER);
    let lex = Lexicon::embedded();
    let snapshot = m.snapshot();
    let id = |name: &str| lex.subject_id(name).unwrap();
    let words = |w: &[&str]| w.iter().map(|w| w.to_string()).collect::<Vec<_>>();
    let in_village = m
        .resolve_location(Some(&Location::Division("610527106202".into())), "location")
        .unwrap();
    let at_point = m
        .resolve_location(request("").location.as_ref(), "location")
        .unwrap();
    let first = |need: &Need, origin, ranking| {
        let c = m
            .rank(&snapshot, need, origin, ranking, 5)
            .unwrap()
            .into_iter()
            .next()
            .unwrap();
        (
            c.talent.id.clone(),
            c.reason,
            c.matched_terms,
            c.distance_km,
        )
    };

    let apple = Need {
        subject: Some(id("苹果")),
        corps: Some(Corps::Fruit),
        words: words(&["苹果", "修剪", "叶"]),
        ..Need::default()
    };
    let (who, reason, matched, km) = first(&apple, in_village, Ranking::Nearest);
    assert_eq!(who, "a");
    assert_eq!(matched, ["苹果", "修剪"]);
    assert_eq!(
        reason,
        format!(
            "村级实用人才，专长苹果，距您约{km:.1}公里，同村（社区），技能含修剪（按距离最近排序）"
        )
    );
    let best = Ranking::BestMatch { scale_km: 10.0 };
    let (_, reason, _, km) = first(&apple, at_point, best);
    assert_eq!(
        reason,
        format!(
            "村级实用人才，专长苹果，距您约{km:.1}公里，技能含修剪（按专业匹配度与距离综合排序）"
        )
    );

    let goat = Need {
        subject: Some(id("奶山羊")),
        corps: Some(Corps::Livestock),
        words: words(&["奶山羊"]),
        ..Need::default()
    };
    let (who, reason, matched, km) = first(&goat, at_point, Ranking::Nearest);
    assert_eq!((who.as_str(), matched.len()), ("s", 0));
    assert_eq!(
        reason,
        format!("县镇级骨干，附近30公里内无奶山羊专长人员，由羊专长人员应答，距您约{km:.1}公里（按距离最近排序）")
    );

    let lettuce = Need {
        corps: Some(Corps::Vegetable),
        words: words(&["生菜", "叶子"]),
        ..Need::default()
    };
    let (who, reason, _, km) = first(&lettuce, at_point, Ranking::Nearest);
    assert_eq!(who, "v");
    assert_eq!(
        reason,
        format!("市级专家，生菜不属于平台的专长品类，转蔬菜组人员应答（专长白菜、萝卜），距您约{km:.1}公里（按距离最近排序）")
    );

    let pepper = Need {
        subject: Some(id("辣椒")),
        corps: Some(Corps::Vegetable),
        words: words(&["辣椒", "萝卜", "白菜"]),
        ..Need::default()
    };
    let (who, reason, matched, km) = first(&pepper, at_point, Ranking::Nearest);
    assert_eq!(who, "v");
    assert_eq!(matched, ["萝卜", "白菜"]);
    assert_eq!(
        reason,
        format!("市级专家，无该品类专长人员，蔬菜组人员应答（专长白菜、萝卜），距您约{km:.1}公里，技能含萝卜、白菜（按距离最近排序）")
    );
    let _ = std::fs::remove_dir_all(dir);
}
