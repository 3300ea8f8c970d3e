//! MatchProblem over gRPC: the order equals a brute-force nearest-qualified
//! scan of the roster; no phone numbers leak; bad input gets its status.

use crate::common::*;
use tonic::Code;
use tonic_types::StatusExt;
use xingweinong::{
    model::divisions::{DivisionCode, Divisions},
    model::geo::GeoPoint,
    model::Talent,
    pb,
    reading::lexicon::Lexicon,
    roster::{self, gen, RosterFormat},
};

fn demo_roster() -> Vec<Talent> {
    let (lex, div) = (Lexicon::embedded(), Divisions::embedded());
    let csv = gen::generate_csv(gen::DEMO_SEED, gen::VILLAGE_PRACTITIONERS, lex, div);
    roster::parse_roster(RosterFormat::Csv, csv.as_bytes(), lex, div).unwrap()
}

/// Qualified talents for `subject` (or, when nobody has it, for its corps),
/// nearest first, as (id, distance, closeness).
fn brute_force(
    roster: &[Talent],
    subject: &str,
    origin: GeoPoint,
    division: Option<DivisionCode>,
) -> Vec<(String, f64, u8)> {
    let lex = Lexicon::embedded();
    let mut qualified: Vec<&Talent> = roster
        .iter()
        .filter(|t| t.is_available() && t.specialties.iter().any(|s| s == subject))
        .collect();
    if qualified.is_empty() {
        let corps = lex.subject(lex.subject_id(subject).unwrap()).corps;
        qualified = roster
            .iter()
            .filter(|t| {
                t.is_available()
                    && t.specialties
                        .iter()
                        .any(|s| lex.subject(lex.subject_id(s).unwrap()).corps == corps)
            })
            .collect();
    }
    let mut ranked: Vec<(String, f64, u8)> = qualified
        .iter()
        .map(|t| {
            (
                t.id.clone(),
                origin.distance_km(t.point),
                division.map_or(0, |d| d.closeness(t.division_code)),
            )
        })
        .collect();
    ranked.sort_by(|a, b| a.1.total_cmp(&b.1).then(b.2.cmp(&a.2)));
    ranked
}

#[tokio::test]
async fn order_equals_brute_force_nearest_qualified() {
    let roster = demo_roster();
    let lex = Lexicon::embedded();
    let div = Divisions::embedded();
    let mut client = MatchClient::new(channel(shared_server()).await);
    // Every subject (without a parent, so no parent fallback) at towns and
    // villages across all counties, and at raw points.
    let places: Vec<&xingweinong::model::divisions::Division> = div
        .counties()
        .flat_map(|c| div.children(c.code).into_iter().take(3))
        .flat_map(|town| std::iter::once(town).chain(div.children(town.code).into_iter().take(1)))
        .collect();
    let mut checked = 0;
    for (i, subject) in lex
        .subjects()
        .iter()
        .filter(|s| s.parent.is_none())
        .enumerate()
    {
        for (j, place) in places.iter().enumerate().filter(|(j, _)| (i + j) % 7 == 0) {
            let location = problem_location(i, j, place);
            let request = pb::MatchProblemRequest {
                text: format!("{}出问题了，咋办", subject.name),
                location: Some(pb::Location {
                    kind: Some(location.clone()),
                }),
                limit: 10,
                ranking: 0,
            };
            let reply = client.match_problem(request).await.unwrap().into_inner();
            assert_eq!(reply.subject, subject.name);
            let (origin, division) = match location {
                pb::location::Kind::Point(p) => (
                    GeoPoint {
                        lat: p.lat,
                        lon: p.lon,
                    },
                    None,
                ),
                pb::location::Kind::DivisionCode(_) => (place.point, Some(place.code)),
            };
            let expected = brute_force(&roster, &subject.name, origin, division);
            the_reply_is_the_brute_force_order(&reply, &expected, &subject.name, &place.name);
            checked += 1;
        }
    }
    assert!(checked > 150, "only {checked} problems checked");
}

/// Where problem (i, j) is asked from: every other place by a point near
/// it, the others by its division code.
fn problem_location(
    i: usize,
    j: usize,
    place: &xingweinong::model::divisions::Division,
) -> pb::location::Kind {
    let by_point = j.is_multiple_of(2);
    if by_point {
        let p = GeoPoint {
            lat: place.point.lat + 0.013 * (i % 5) as f64,
            lon: place.point.lon - 0.011 * (j % 3) as f64,
        };
        pb::location::Kind::Point(pb::GeoPoint {
            lat: p.lat,
            lon: p.lon,
        })
    } else {
        pb::location::Kind::DivisionCode(place.code.to_string())
    }
}

/// The reply has the first ten of `expected`, without duplicates, at the
/// same distances and in the same closeness order, each with a reason.
fn the_reply_is_the_brute_force_order(
    reply: &pb::MatchProblemResponse,
    expected: &[(String, f64, u8)],
    subject: &str,
    place: &str,
) {
    assert_eq!(
        reply.candidates.len(),
        expected.len().min(10),
        "{} at {}",
        subject,
        place
    );
    let mut seen = std::collections::HashSet::new();
    for (got, want) in reply.candidates.iter().zip(expected) {
        let talent = got.talent.as_ref().unwrap();
        assert!(seen.insert(talent.id.clone()), "duplicate {}", talent.id);
        assert!(
            (got.distance_km - want.1).abs() < 1e-6,
            "{}: {} vs {}",
            subject,
            got.distance_km,
            want.1
        );
        let (_, d, closeness) = expected
            .iter()
            .find(|e| e.0 == talent.id)
            .expect("a qualified talent");
        assert!((d - got.distance_km).abs() < 1e-6);
        assert_eq!(*closeness, want.2, "closeness order for {}", subject);
        assert!(!got.reason.is_empty());
    }
}

#[tokio::test]
async fn phone_numbers_never_reach_match_replies() {
    let roster = demo_roster();
    let mut client = MatchClient::new(channel(shared_server()).await);
    for text in [
        "苹果树叶子发黄有斑点",
        "猪不吃食还发烧",
        "小麦条锈病",
        "鱼塘浮头",
        "花椒树流胶",
    ] {
        let mut request = at_division(text, "610527106202");
        request.limit = 50;
        let reply = client.match_problem(request).await.unwrap().into_inner();
        assert!(!reply.candidates.is_empty(), "{text}");
        let bytes = prost::Message::encode_to_vec(&reply);
        for c in &reply.candidates {
            let talent = c.talent.as_ref().unwrap();
            assert!(talent.phone.is_empty());
            let phone = &roster.iter().find(|t| t.id == talent.id).unwrap().phone;
            assert!(!phone.is_empty());
            assert!(
                !bytes.windows(phone.len()).any(|w| w == phone.as_bytes()),
                "phone of {} leaked",
                talent.id
            );
        }
    }
}

#[tokio::test]
async fn bad_input_gets_invalid_argument_naming_the_field() {
    let mut client = MatchClient::new(channel(shared_server()).await);
    let point = |lat, lon| {
        Some(pb::Location {
            kind: Some(pb::location::Kind::Point(pb::GeoPoint { lat, lon })),
        })
    };
    let cases = [
        (at_division("", "610527106202"), "text"),
        (at_division("  \n\t ", "610527106202"), "text"),
        (at_division(&"苹".repeat(4001), "610527106202"), "text"),
        (
            at_division("苹果", "610527999999"),
            "location.division_code",
        ),
        (at_division("苹果", "abc"), "location.division_code"),
        (
            pb::MatchProblemRequest {
                text: "苹果".into(),
                location: point(95.0, 109.0),
                limit: 5,
                ranking: 0,
            },
            "location.point",
        ),
        (
            pb::MatchProblemRequest {
                text: "苹果".into(),
                location: point(34.0, 200.0),
                limit: 5,
                ranking: 0,
            },
            "location.point",
        ),
        (
            pb::MatchProblemRequest {
                text: "苹果".into(),
                location: None,
                limit: 5,
                ranking: 0,
            },
            "location",
        ),
        (
            pb::MatchProblemRequest {
                text: "苹果".into(),
                location: Some(pb::Location { kind: None }),
                limit: 5,
                ranking: 0,
            },
            "location",
        ),
        (
            pb::MatchProblemRequest {
                limit: 51,
                ..at_division("苹果", "610527106202")
            },
            "limit",
        ),
    ];
    for (request, field) in cases {
        let err = client.match_problem(request).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{field}: {err:?}");
        let violations = err.get_details_bad_request().unwrap().field_violations;
        assert_eq!(violations[0].field, field);
        assert!(err.message().starts_with(field), "{}", err.message());
    }
    // 4,000 characters exactly is fine.
    let ok = client
        .match_problem(at_division(&"苹果".repeat(2000), "610527106202"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ok.subject, "苹果");
}

#[tokio::test]
async fn unknown_subject_is_not_an_error_and_has_no_candidates() {
    let mut client = MatchClient::new(channel(shared_server()).await);
    let reply = client
        .match_problem(at_division("你好，在吗", "610527106202"))
        .await
        .unwrap()
        .into_inner();
    assert!(reply.subject.is_empty());
    assert_eq!(reply.corps, pb::Corps::Unspecified as i32);
    assert!(reply.candidates.is_empty());
    assert!(!reply.analysis.unwrap().note.is_empty());
}

/// Imports rows (header added) into a fresh server and returns it.
async fn server_with(tag: &str, rows: &str) -> TestServer {
    let server = TestServer::start(config(&temp_dir(tag))).await;
    let mut roster = RosterClient::new(server.channel().await);
    let csv = format!("{HEADER}\n{rows}");
    roster
        .import_roster(admin(tokio_stream::iter(vec![csv_chunk(&csv)])))
        .await
        .unwrap();
    server
}

fn ids(reply: &pb::MatchProblemResponse) -> Vec<String> {
    reply
        .candidates
        .iter()
        .map(|c| c.talent.as_ref().unwrap().id.clone())
        .collect()
}

fn at(lat: f64, lon: f64, text: &str, ranking: pb::Ranking) -> pb::MatchProblemRequest {
    pb::MatchProblemRequest {
        text: text.into(),
        location: Some(pb::Location {
            kind: Some(pb::location::Kind::Point(pb::GeoPoint { lat, lon })),
        }),
        limit: 5,
        ranking: ranking as i32,
    }
}

#[tokio::test]
async fn parent_specialists_answer_when_no_child_specialist_is_near() {
    // g1 has 奶山羊 but is ~89 km north; s1 has 羊 and is ~5.6 km away.
    let rows = "g1,奶一,,village,,奶山羊,,610527106202,35.80,109.50,3,true\n\
                s1,羊一,,village,,羊,,610527106202,35.05,109.50,3,true\n\
                p1,猪一,,village,,猪,,610527106202,35.00,109.50,3,true\n";
    let server = server_with("parent", rows).await;
    let mut client = MatchClient::new(server.channel().await);
    let reply = client
        .match_problem(at(35.0, 109.5, "奶山羊产后不下奶", pb::Ranking::Nearest))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.subject, "奶山羊");
    assert_eq!(ids(&reply), ["s1", "g1"]);
    assert!(
        reply.candidates[0].reason.contains("无奶山羊专长人员"),
        "{}",
        reply.candidates[0].reason
    );
    assert!(
        reply.candidates[1].reason.contains("专长奶山羊"),
        "{}",
        reply.candidates[1].reason
    );
    // Near the 奶山羊 specialist, only the subject's specialists qualify.
    let reply = client
        .match_problem(at(35.79, 109.5, "奶山羊产后不下奶", pb::Ranking::Nearest))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ids(&reply), ["g1"]);
    server.stop_and_clean().await;
}

#[tokio::test]
async fn best_match_prefers_the_specialist_of_the_problem_within_reach() {
    // n1 is nearest but grows apples in general; d1 is 10 km further and
    // treats 腐烂病; f1 treats it too but is 150 km away.
    let rows = "n1,近一,,village,,苹果,苹果栽培管理,610527106202,35.00,109.50,3,true\n\
                d1,病一,,village,,苹果,苹果腐烂病防治 刮治涂药,610527106202,35.09,109.50,3,true\n\
                f1,远一,,village,,苹果,苹果腐烂病防治,610527106202,36.35,109.50,3,true\n";
    let server = server_with("bestmatch", rows).await;
    let mut client = MatchClient::new(server.channel().await);
    let text = "苹果树主干上腐烂病刮了又长";
    let nearest = client
        .match_problem(at(35.0, 109.5, text, pb::Ranking::Nearest))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ids(&nearest), ["n1", "d1", "f1"]);
    let best = client
        .match_problem(at(35.0, 109.5, text, pb::Ranking::BestMatch))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ids(&best), ["d1", "n1", "f1"]);
    assert!(
        best.candidates[0]
            .matched_terms
            .iter()
            .any(|t| t == "腐烂病"),
        "{:?}",
        best.candidates[0].matched_terms
    );
    assert!(
        best.candidates[0].reason.contains("综合排序"),
        "{}",
        best.candidates[0].reason
    );
    assert!(best.candidates[0].score > best.candidates[1].score);
    server.stop_and_clean().await;
}

#[tokio::test]
async fn a_long_report_is_answered_like_a_short_one() {
    // Reports up to 1 KiB are matched on the async worker that took the
    // call, longer ones on a blocking thread: both answer alike.
    let mut client = MatchClient::new(channel(shared_server()).await);
    let short = "苹果树腐烂病，树皮发黑，怎么治？";
    let long = short.repeat(40);
    assert!(long.len() > 1024 && long.chars().count() < 4000);
    let mut replies = Vec::new();
    for text in [short, long.as_str()] {
        let reply = client
            .match_problem(at_division(text, "610527106202"))
            .await
            .unwrap()
            .into_inner();
        replies.push(reply);
    }
    assert!(!replies[0].subject.is_empty());
    assert_eq!(replies[1].subject, replies[0].subject);
    assert!(!replies[0].candidates.is_empty());
    assert_eq!(ids(&replies[1]), ids(&replies[0]));
}
