//! `RosterService.ImportRosterFile` and `ImportLiaisonsFile`, the unary
//! counterparts of the streamed imports (a browser cannot stream to the
//! server): a good file replaces and bumps the version; a bad one is
//! refused whole with every bad row in the status details; the admin
//! token, the format and the upload limit apply as to the streamed calls.

use crate::common::*;
use tonic::Code;
use tonic_types::StatusExt;
use xingweinong::pb;

const GOOD: &str = "f1,甲一,13900000001,city,果树,苹果;梨,苹果腐烂病防治,610500000000,,,8,true\n\
f2,乙二,,village,,苹果,,610527106202,35.2,109.6,3,true\n";

fn csv_file(text: &str) -> pb::RosterFile {
    pb::RosterFile {
        format: pb::RosterFormat::Csv as i32,
        data: text.as_bytes().to_vec(),
    }
}

async fn version(roster: &mut RosterClient) -> (u64, u64) {
    let s = roster
        .get_roster_stats(admin(pb::GetRosterStatsRequest {}))
        .await
        .unwrap()
        .into_inner();
    (s.roster_version, s.total)
}

#[tokio::test]
async fn a_roster_file_replaces_the_roster_or_is_refused_whole() {
    let dir = temp_dir("roster-file");
    let mut cfg = config(&dir);
    cfg.max_upload_bytes = 4096;
    let server = TestServer::start(cfg).await;
    let mut roster = RosterClient::new(server.channel().await);
    let (before, _) = version(&mut roster).await;

    let report = roster
        .import_roster_file(admin(csv_file(&format!("{HEADER}\n{GOOD}"))))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((report.accepted, report.roster_version), (2, before + 1));
    assert_eq!(version(&mut roster).await, (before + 1, 2));

    let bad = format!(
        "{HEADER}\n{GOOD}b1,坏一,,province,,苹果,,610527106202,,,,\n\
         b2,坏二,,village,,苹果,,123456789012,,,,\n"
    );
    let refused = roster
        .import_roster_file(admin(csv_file(&bad)))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(refused.message().contains("2 problem"), "{refused:?}");
    let fields: Vec<String> = (refused
        .get_details_bad_request()
        .expect("BadRequest details"))
    .field_violations
    .into_iter()
    .map(|v| v.field)
    .collect();
    assert_eq!(fields, ["line[4].tier", "line[5].division_code"]);
    assert_eq!(version(&mut roster).await, (before + 1, 2), "unchanged");

    // The admin token, the format and the upload limit.
    let anonymous = tonic::Request::new(csv_file(&format!("{HEADER}\n{GOOD}")));
    let code = roster
        .import_roster_file(anonymous)
        .await
        .unwrap_err()
        .code();
    assert_eq!(code, Code::Unauthenticated);
    let wrong = with_token(
        csv_file(&format!("{HEADER}\n{GOOD}")),
        "wrong-token-wrong-token",
    );
    assert_eq!(
        roster.import_roster_file(wrong).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    let unformatted = pb::RosterFile {
        format: pb::RosterFormat::Unspecified as i32,
        data: format!("{HEADER}\n{GOOD}").into_bytes(),
    };
    let refused = roster
        .import_roster_file(admin(unformatted))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().starts_with("format"), "{refused:?}");
    let big = format!("{HEADER}\n{GOOD}{}", "x".repeat(4096));
    let refused = roster
        .import_roster_file(admin(csv_file(&big)))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert_eq!(version(&mut roster).await, (before + 1, 2), "unchanged");
    server.stop_and_clean().await;
}

#[tokio::test]
async fn a_liaison_file_is_accepted_or_refused() {
    let dir = temp_dir("liaison-file");
    let server = TestServer::start(config(&dir)).await;
    let mut roster = RosterClient::new(server.channel().await);
    let good = "id,name,phone,villages\nlz1,党员甲,13600000001,610527106202;610527106203\n";
    let report = roster
        .import_liaisons_file(admin(csv_file(good)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(report.accepted, 1);
    // The liaison exists now: a token can be issued for it.
    token_for(&server.channel().await, "lz1").await;

    let bad = "id,name,phone,villages\nlz2,党员乙,13600000002,999999999999\n";
    let refused = roster
        .import_liaisons_file(admin(csv_file(bad)))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(
        refused.get_details_bad_request().is_some(),
        "the bad rows are in the details: {refused:?}"
    );
    let anonymous = tonic::Request::new(csv_file(good));
    assert_eq!(
        roster
            .import_liaisons_file(anonymous)
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    server.stop_and_clean().await;
}
