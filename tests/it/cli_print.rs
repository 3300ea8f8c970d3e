//! Terminal escapes (issue 13 item 5): a ticket whose stored text, contact
//! and reasons hold ESC/OSC sequences and BEL (a row from before the
//! server refused them, or written by another replica's older version)
//! is printed by the real `xwn ticket` and `xwn tickets` with every control
//! character escaped: no raw ESC or BEL reaches the admin's terminal, and
//! the escaped text is still there to read.

use crate::common::*;
use xingweinong::pb;

/// Retitles the window, turns the text red, rings the bell.
const EVIL: &str = "苹果树烂皮\u{1b}]0;pwned\u{7}\u{1b}[31m红\u{1b}[0m";

/// Runs the `xwn` binary against `server` with the admin token; returns its
/// standard output, having checked it succeeded.
pub(crate) async fn xwn(server: &TestServer, args: &[&str]) -> Vec<u8> {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_xwn"));
    command
        .args(args)
        .args(["--server", &format!("http://{}", server.addr)])
        .env("XWN_ADMIN_TOKEN", ADMIN_TOKEN);
    let out = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "xwn {args:?}: {stderr}");
    out.stdout
}

fn assert_no_raw_controls(stdout: &[u8], what: &str) {
    let text = String::from_utf8_lossy(stdout);
    assert!(
        !stdout.iter().any(|&b| b == 0x1b || b == 0x07),
        "{what} printed a raw ESC or BEL: {text:?}"
    );
    // The text is shown, escaped, not dropped.
    assert!(
        text.contains(r"苹果树烂皮\u{1b}]0;pwned\u{7}\u{1b}[31m红"),
        "{what}: {text}"
    );
}

#[tokio::test]
async fn xwn_ticket_and_tickets_never_print_stored_escapes_raw() {
    let dir = temp_dir("cli-escapes");
    let server = TestServer::start(config(&dir)).await;
    let mut farmer = TicketClient::new(server.channel().await);
    let t = farmer
        .submit_problem(submit_request("苹果树烂皮", at_point(35.0, 109.5), ""))
        .await
        .unwrap()
        .into_inner();
    // The server refuses such text now, so the row is written as an older
    // version would have left it.
    let db = rusqlite::Connection::open(dir.join("tickets.sqlite3")).unwrap();
    db.execute(
        "UPDATE tickets SET text = ?1, contact = ?2, reason = ?1 WHERE id = ?3",
        (EVIL, format!("137{EVIL}"), &t.id),
    )
    .unwrap();
    db.execute(
        "UPDATE ticket_events SET reason = ?1 WHERE ticket_id = ?2",
        (EVIL, &t.id),
    )
    .unwrap();
    drop(db);
    let shown = farmer
        .get_ticket(pb::GetTicketRequest {
            ticket_id: t.id.clone(),
            ticket_secret: t.ticket_secret.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(shown.text, EVIL, "the stored text is served as it is");

    let one = xwn(&server, &["ticket", &t.id, "--secret", &t.ticket_secret]).await;
    assert_no_raw_controls(&one, "xwn ticket");
    assert!(
        String::from_utf8_lossy(&one).contains(r"contact 137苹果树烂皮\u{1b}"),
        "{}",
        String::from_utf8_lossy(&one)
    );
    let listed = xwn(&server, &["tickets"]).await;
    assert_no_raw_controls(&listed, "xwn tickets");
    server.stop_and_clean().await;
}
