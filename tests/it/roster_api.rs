//! The roster over gRPC: demo stats, imports that replace or are refused
//! whole, restarts, admin authentication, upserts, removals and listings.

use crate::common::*;
use tonic::Code;
use tonic_types::StatusExt;
use xingweinong::pb;

const SMALL: &str = "s1,甲一,13900000001,city,果树,苹果;梨,苹果腐烂病防治,610500000000,,,8,true\n\
s2,乙二,13900000002,county_town,畜牧,奶山羊,奶山羊疫病,610528101000,,,5,true\n\
s3,丙三,,village,,苹果,,610527106202,35.2,109.6,3,yes\n";

fn small_csv() -> String {
    format!("{HEADER}\n{SMALL}")
}

#[tokio::test]
async fn demo_roster_has_the_real_scale() {
    let mut roster = RosterClient::new(channel(shared_server()).await);
    let s = roster
        .get_roster_stats(admin(pb::GetRosterStatsRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(s.city, 56);
    assert_eq!(s.county_town, 553);
    assert!(s.village >= 5_300, "{}", s.village);
    assert_eq!(s.total, s.city + s.county_town + s.village);
    assert_eq!(s.corps_members, 603);
    for corps in ["粮油", "蔬菜", "果树", "畜牧", "林水"] {
        assert!(
            s.by_corps.get(corps).copied().unwrap_or(0) > 0,
            "no {corps} members: {:?}",
            s.by_corps
        );
    }
    assert_eq!(s.by_corps.values().sum::<u64>(), 603);
    for county in [
        "白水县",
        "蒲城县",
        "大荔县",
        "临渭区",
        "富平县",
        "韩城市",
        "华州区",
    ] {
        assert!(
            s.by_county.get(county).copied().unwrap_or(0) > 100,
            "{county}: {:?}",
            s.by_county
        );
    }
    assert_eq!(s.by_county.get("渭南市"), Some(&56));
}

#[tokio::test]
async fn import_replaces_and_a_restart_keeps_it() {
    let dir = temp_dir("import");
    let server = TestServer::start(config(&dir)).await;
    let mut roster = RosterClient::new(server.channel().await);
    let report = roster
        .import_roster(admin(tokio_stream::iter(vec![csv_chunk(&small_csv())])))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((report.accepted, report.roster_version), (3, 2));
    let s = roster
        .get_roster_stats(admin(pb::GetRosterStatsRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (s.total, s.city, s.county_town, s.village, s.corps_members),
        (3, 1, 1, 1, 2)
    );

    let mut matcher = MatchClient::new(server.channel().await);
    let reply = matcher
        .match_problem(at_division("苹果树腐烂病", "610527106202"))
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<&str> = reply
        .candidates
        .iter()
        .map(|c| c.talent.as_ref().unwrap().id.as_str())
        .collect();
    assert_eq!(reply.subject, "苹果");
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&"s1") && ids.contains(&"s3"));
    server.stop().await;

    let server = TestServer::start(config(&dir)).await;
    let mut roster = RosterClient::new(server.channel().await);
    let s = roster
        .get_roster_stats(admin(pb::GetRosterStatsRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((s.total, s.roster_version), (3, 2));
    let list = roster
        .list_talents(admin(pb::ListTalentsRequest {
            specialty: "奶山羊".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.talents.len(), 1);
    assert_eq!(
        list.talents[0].phone, "13900000002",
        "admin listings carry phone"
    );
    server.stop().await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_bad_file_is_refused_whole_and_every_bad_row_reported() {
    let dir = temp_dir("badfile");
    let server = TestServer::start(config(&dir)).await;
    let mut roster = RosterClient::new(server.channel().await);
    let before = roster
        .get_roster_stats(admin(pb::GetRosterStatsRequest {}))
        .await
        .unwrap()
        .into_inner();
    let bad = format!(
        "{HEADER}\n{SMALL}\
         b1,坏一,,province,,苹果,,610527106202,,,,\n\
         b2,坏二,,village,,,,610527106202,,,,\n\
         b3,坏三,,village,,苹果,,123456789012,,,,\n\
         s1,重复,,village,,苹果,,610527106202,,,,\n\
         b5,坏五,,village,,苹果,,610527106202,95.0,109.0,,\n"
    );
    let err = roster
        .import_roster(admin(tokio_stream::iter(vec![csv_chunk(&bad)])))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("5 problem"), "{}", err.message());
    let violations = err
        .get_details_bad_request()
        .expect("BadRequest details")
        .field_violations;
    let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "line[5].tier",
            "line[6].specialties",
            "line[7].division_code",
            "line[8].id",
            "line[9].lat"
        ]
    );

    let after = roster
        .get_roster_stats(admin(pb::GetRosterStatsRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(before, after, "the live roster must not change");
    // The audit log names the refused upload by its digest, with no phone in it.
    let audit = std::fs::read_to_string(dir.join("audit.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(audit.lines().last().unwrap()).unwrap();
    assert_eq!(last["action"], "import_roster");
    assert_eq!(last["sha256"].as_str().unwrap().len(), 64);
    assert!(
        last["refused"].as_str().unwrap().contains("5 problem"),
        "{last}"
    );
    assert!(!audit.contains("13900000001"));
    let mut matcher = MatchClient::new(server.channel().await);
    let reply = matcher
        .match_problem(at_division("苹果树腐烂病", "610527106202"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        reply.candidates.len(),
        5,
        "still served from the demo roster"
    );
    server.stop().await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn uploads_over_the_limit_are_resource_exhausted() {
    let dir = temp_dir("limit");
    let mut cfg = config(&dir);
    cfg.max_upload_bytes = 1024;
    let server = TestServer::start(cfg).await;
    let mut roster = RosterClient::new(server.channel().await);
    let chunks = vec![csv_chunk(&small_csv()), csv_chunk(&"x".repeat(2048))];
    let err = roster
        .import_roster(admin(tokio_stream::iter(chunks)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    let err = roster
        .import_roster(admin(tokio_stream::iter(vec![pb::RosterChunk {
            format: 0,
            data: b"id".to_vec(),
        }])))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("format"), "{}", err.message());
    server.stop().await;
    std::fs::remove_dir_all(dir).unwrap();
}

fn req<T>(token: Option<&str>, message: T) -> tonic::Request<T> {
    match token {
        None => tonic::Request::new(message),
        Some(t) => with_token(message, t),
    }
}

#[tokio::test]
async fn admin_calls_need_the_admin_token() {
    let addr = shared_server();
    let mut roster = RosterClient::new(channel(addr).await);
    for token in [None, Some("wrong-token-wrong-token")] {
        let codes = [
            roster
                .get_roster_stats(req(token, pb::GetRosterStatsRequest {}))
                .await
                .unwrap_err()
                .code(),
            roster
                .list_talents(req(token, pb::ListTalentsRequest::default()))
                .await
                .unwrap_err()
                .code(),
            roster
                .remove_talents(req(
                    token,
                    pb::RemoveTalentsRequest {
                        ids: vec!["city-001".into()],
                    },
                ))
                .await
                .unwrap_err()
                .code(),
            roster
                .upsert_talents(req(token, pb::UpsertTalentsRequest { talents: vec![] }))
                .await
                .unwrap_err()
                .code(),
        ];
        assert!(
            codes.iter().all(|&c| c == Code::Unauthenticated),
            "{codes:?}"
        );
        let stream = tokio_stream::iter(vec![csv_chunk(&small_csv())]);
        let code = roster
            .import_roster(req(token, stream))
            .await
            .unwrap_err()
            .code();
        assert_eq!(code, Code::Unauthenticated);
    }
}

#[tokio::test]
async fn without_a_configured_token_admin_calls_are_refused() {
    let dir = temp_dir("notoken");
    let mut cfg = config(&dir);
    cfg.admin_token = None;
    let server = TestServer::start(cfg).await;
    let mut roster = RosterClient::new(server.channel().await);
    let err = roster
        .get_roster_stats(admin(pb::GetRosterStatsRequest {}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(
        err.message().contains("XWN_ADMIN_TOKEN"),
        "{}",
        err.message()
    );
    server.stop().await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn upsert_remove_and_list() {
    let dir = temp_dir("upsert");
    let server = TestServer::start(config(&dir)).await;
    let mut roster = RosterClient::new(server.channel().await);
    roster
        .import_roster(admin(tokio_stream::iter(vec![csv_chunk(&small_csv())])))
        .await
        .unwrap();
    an_upsert_adds_a_talent_and_checks_its_fields(&mut roster).await;
    a_remove_names_the_unknown_ids(&mut roster).await;
    listings_page_and_filter(&mut roster).await;
    server.stop().await;
    std::fs::remove_dir_all(dir).unwrap();
}

/// s9 is added as roster version 3; an unknown division is refused with
/// the field named.
async fn an_upsert_adds_a_talent_and_checks_its_fields(roster: &mut RosterClient) {
    let mut t = pb::Talent {
        id: "s9".into(),
        name: "新人".into(),
        tier: pb::Tier::Village as i32,
        specialties: vec!["猕猴桃".into()],
        skills: "猕猴桃溃疡病".into(),
        division_code: "610527106202".into(),
        capacity: 2,
        active: true,
        ..Default::default()
    };
    let up = roster
        .upsert_talents(admin(pb::UpsertTalentsRequest {
            talents: vec![t.clone()],
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((up.upserted, up.roster_version), (1, 3));
    t.division_code = "999".into();
    let err = roster
        .upsert_talents(admin(pb::UpsertTalentsRequest { talents: vec![t] }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(
        err.get_details_bad_request().unwrap().field_violations[0].field,
        "line[1].division_code"
    );
}

/// Removing s3 and an unknown id makes roster version 4.
async fn a_remove_names_the_unknown_ids(roster: &mut RosterClient) {
    let rm = roster
        .remove_talents(admin(pb::RemoveTalentsRequest {
            ids: vec!["s3".into(), "nobody".into()],
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (rm.removed, rm.not_found, rm.roster_version),
        (1, vec!["nobody".to_string()], 4)
    );
}

/// Talents list in pages of two, and filter by county and by text.
async fn listings_page_and_filter(roster: &mut RosterClient) {
    let page = |token: &str| pb::ListTalentsRequest {
        page_size: 2,
        page_token: token.into(),
        ..Default::default()
    };
    let first = roster
        .list_talents(admin(page("")))
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<_> = first.talents.iter().map(|t| t.id.clone()).collect();
    assert_eq!(
        (ids, first.total),
        (vec!["s1".to_string(), "s2".to_string()], 3)
    );
    let second = roster
        .list_talents(admin(page(&first.next_page_token)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        second
            .talents
            .iter()
            .map(|t| t.id.as_str())
            .collect::<Vec<_>>(),
        ["s9"]
    );
    assert!(second.next_page_token.is_empty());

    let by_county = roster
        .list_talents(admin(pb::ListTalentsRequest {
            county: "白水县".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        by_county
            .talents
            .iter()
            .map(|t| t.id.as_str())
            .collect::<Vec<_>>(),
        ["s9"]
    );
    let by_text = roster
        .list_talents(admin(pb::ListTalentsRequest {
            query: "溃疡病".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        by_text
            .talents
            .iter()
            .map(|t| t.id.as_str())
            .collect::<Vec<_>>(),
        ["s9"]
    );
}

#[tokio::test]
async fn health_and_reflection_are_served() {
    let ch = channel(shared_server()).await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(ch);
    let reply = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "xingweinong.v1.MatchService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        reply.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
}
