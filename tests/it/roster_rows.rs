//! Files with many bad rows: a refused import (roster or liaisons) keeps
//! its report small enough for a client with default limits, with the
//! total and the counts by field in the message; `CheckRosterFile` and
//! `CheckLiaisonsFile` stream every problem and change nothing; `xwn
//! import` sums a refusal up and `xwn import --check` lists every row.

use crate::common::*;
use tokio_stream::StreamExt;
use tonic::Code;
use tonic_types::StatusExt;
use xingweinong::pb;

/// A roster of `n` rows, each bad: a tier that does not exist on three
/// rows of four, an unknown division code on the fourth.
fn bad_roster(n: usize) -> String {
    let mut text = format!("{HEADER}\n");
    for i in 0..n {
        if i % 4 == 3 {
            text.push_str(&format!("b{i},坏,,village,,苹果,,123456789012,,,,\n"));
        } else {
            text.push_str(&format!("b{i},坏,,province,,苹果,,610527106202,,,,\n"));
        }
    }
    text
}

fn bad_liaisons(n: usize) -> String {
    let mut text = "id,name,phone,villages\n".to_string();
    for i in 0..n {
        text.push_str(&format!("lz{i},党员,13600000001,999999999999\n"));
    }
    text
}

fn csv_file(text: &str) -> pb::RosterFile {
    pb::RosterFile {
        format: pb::RosterFormat::Csv as i32,
        data: text.as_bytes().to_vec(),
    }
}

fn assert_bounded(refused: &tonic::Status, total: &str) {
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    let message = refused.message();
    assert!(message.contains(&format!("{total} problems")), "{message}");
    assert!(message.contains("nothing was changed"), "{message}");
    let bad = refused
        .get_details_bad_request()
        .expect("BadRequest details");
    // At most 100, and fewer when the messages are long (8 KiB of text).
    let shown = bad.field_violations.len();
    assert!((50..=100).contains(&shown), "{shown} violations");
    assert!(
        message.contains(&format!("the first {shown} are in the details")),
        "{message}"
    );
    assert_eq!(bad.field_violations[0].field, "line[2].tier");
    let info = refused.get_details_error_info().expect("ErrorInfo details");
    assert_eq!(info.reason, "BAD_ROWS");
    assert_eq!(info.metadata["shown"], shown.to_string());
}

#[tokio::test]
async fn a_roster_with_100k_bad_rows_is_refused_with_a_bounded_report_and_checked_whole() {
    let dir = temp_dir("rows-100k");
    let mut config = config(&dir);
    // 100,000 rows checked by a debug build on a loaded test machine can
    // outlast the default 10 s; the timeout has its own tests (statuses::).
    config.limits.request_timeout_ms = 120_000;
    let server = TestServer::start(config).await;
    let mut roster = RosterClient::new(server.channel().await);
    let before = roster
        .get_roster_stats(admin(pb::GetRosterStatsRequest {}))
        .await
        .unwrap()
        .into_inner();
    let text = bad_roster(100_000);

    // A default tonic client (default header-list limit) reads the refusal.
    let chunks: Vec<_> = text
        .as_bytes()
        .chunks(1 << 20)
        .map(csv_chunk_bytes)
        .collect();
    let refused = roster
        .import_roster(admin(tokio_stream::iter(chunks)))
        .await
        .unwrap_err();
    assert_bounded(&refused, "100,000");
    assert!(
        refused
            .message()
            .contains("(tier 75,000, division_code 25,000)"),
        "{}",
        refused.message()
    );
    assert_eq!(
        refused.get_details_error_info().unwrap().metadata["problems"],
        "100000"
    );
    let refused = roster
        .import_roster_file(admin(csv_file(&text)))
        .await
        .unwrap_err();
    assert_bounded(&refused, "100,000");

    // The check streams all of them, in file order, and changes nothing.
    let mut stream = roster
        .check_roster_file(admin(csv_file(&text)))
        .await
        .unwrap()
        .into_inner();
    let mut seen = 0u64;
    while let Some(e) = stream.next().await {
        let e = e.unwrap();
        assert_eq!(e.line, seen + 2);
        let field = if seen % 4 == 3 {
            "division_code"
        } else {
            "tier"
        };
        assert_eq!(e.field, field, "{e:?}");
        seen += 1;
    }
    assert_eq!(seen, 100_000);
    let good = format!("{HEADER}\ng1,甲一,,village,,苹果,,610527106202,,,,\n");
    let none: Vec<_> = roster
        .check_roster_file(admin(csv_file(&good)))
        .await
        .unwrap()
        .into_inner()
        .collect()
        .await;
    assert!(none.is_empty(), "{none:?}");
    let anonymous = tonic::Request::new(csv_file(&good));
    let code = roster
        .check_roster_file(anonymous)
        .await
        .unwrap_err()
        .code();
    assert_eq!(code, Code::Unauthenticated);
    let after = roster
        .get_roster_stats(admin(pb::GetRosterStatsRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(before, after, "the live roster must not change");
    server.stop_and_clean().await;
}

#[tokio::test]
async fn a_liaison_list_with_many_bad_rows_is_refused_bounded_and_checked_whole() {
    let dir = temp_dir("rows-liaisons");
    let server = TestServer::start(config(&dir)).await;
    let mut roster = RosterClient::new(server.channel().await);
    let text = bad_liaisons(20_000);
    let refused = roster
        .import_liaisons_file(admin(csv_file(&text)))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    // Two problems a row: an unknown village, and so no village at all.
    let message = refused.message();
    assert!(
        message.contains("40,000 problems in 20,000 rows (villages 40,000)"),
        "{message}"
    );
    let bad = refused.get_details_bad_request().unwrap();
    assert!((1..=100).contains(&bad.field_violations.len()));
    let errors: Vec<_> = roster
        .check_liaisons_file(admin(csv_file(&text)))
        .await
        .unwrap()
        .into_inner()
        .collect()
        .await;
    assert_eq!(errors.len(), 40_000);
    assert!(errors
        .iter()
        .all(|e| e.as_ref().unwrap().field == "villages"));
    server.stop_and_clean().await;
}

#[tokio::test]
async fn xwn_import_sums_up_a_roster_with_1000_bad_rows_and_check_lists_them_all() {
    use std::process::Command;
    let dir = temp_dir("rows-cli");
    let server = TestServer::start(config(&dir)).await;
    let file = dir.with_extension("csv");
    std::fs::write(&file, bad_roster(1_000)).unwrap();
    let xwn = |check: bool| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_xwn"));
        command.arg("import");
        if check {
            command.arg("--check");
        }
        command
            .arg(&file)
            .args(["--server", &format!("http://{}", server.addr)])
            .env("XWN_ADMIN_TOKEN", ADMIN_TOKEN);
        command
    };
    let out = tokio::task::spawn_blocking({
        let mut c = xwn(false);
        move || c.output().unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(!stderr.contains("protocol error"), "{stderr}");
    assert!(stderr.contains("InvalidArgument"), "{stderr}");
    assert!(
        stderr.contains("1,000 problems in 1,000 rows (tier 750, division_code 250)"),
        "{stderr}"
    );
    assert!(stderr.contains("line[2].tier"), "{stderr}");
    assert!(stderr.contains("xwn import --check"), "{stderr}");
    assert!(stderr.lines().count() < 120, "{stderr}");

    let out = tokio::task::spawn_blocking({
        let mut c = xwn(true);
        move || c.output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert_eq!(stdout.lines().count(), 1_000, "{stdout}");
    assert!(stdout.starts_with("line 2  tier  "), "{stdout}");
    assert!(stdout.contains("line 1001  division_code  "), "{stdout}");
    assert!(
        stderr.contains("1000 problem(s) in 1000 row(s) (tier 750, division_code 250)"),
        "{stderr}"
    );
    let _ = std::fs::remove_file(&file);
    server.stop_and_clean().await;
}
