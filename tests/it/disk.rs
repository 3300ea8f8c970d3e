//! A full disk is a clear error, not corruption: on a small tmpfs, an import
//! that does not fit fails with UNAVAILABLE naming the cause, the old roster
//! stays served, tickets fail cleanly while the disk is full and work again
//! once space is back; a data directory that cannot be created stops the
//! start-up with a message. Needs root to mount a tmpfs; says so and skips
//! otherwise.

use std::process::Command;

use crate::common::*;
use tonic::Code;
use xingweinong::{model::divisions::Divisions, pb, reading::lexicon::Lexicon, roster::gen};

fn mount_tmpfs(dir: &std::path::Path, size: &str) -> bool {
    std::fs::create_dir_all(dir).unwrap();
    Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success())
}

/// Unmounts when dropped, even when an assertion fails.
struct Mounted(std::path::PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        // Lazy: the server may still hold files when a test fails.
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn a_full_disk_gives_clear_errors_and_loses_nothing() {
    let dir = temp_dir("disk");
    if !mount_tmpfs(&dir, "4m") {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    }
    let _mounted = Mounted(dir.clone());
    let server = TestServer::start(config(&dir)).await;
    let ch = server.channel().await;
    let mut roster = RosterClient::new(ch.clone());
    let before = roster
        .get_roster_stats(admin(pb::GetRosterStatsRequest {}))
        .await
        .unwrap()
        .into_inner();

    // A roster whose index does not fit in what is left.
    let big = gen::generate_csv(9, 60_000, Lexicon::embedded(), Divisions::embedded());
    let chunks: Vec<pb::RosterChunk> = big
        .as_bytes()
        .chunks(1 << 20)
        .map(csv_chunk_bytes)
        .collect();
    let err = roster
        .import_roster(admin(tokio_stream::iter(chunks)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.message().contains("No space left"), "{}", err.message());
    let after = roster
        .get_roster_stats(admin(pb::GetRosterStatsRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(before, after, "the old roster is still served");

    // Fill the disk: submissions fail cleanly, then work once space is back.
    let filler = dir.join("filler");
    let _ = std::fs::write(&filler, vec![0u8; 8 << 20]);
    let mut farmer = TicketClient::new(ch.clone());
    let mut refused = None;
    for i in 0..200 {
        let r = submit_request(&format!("苹果树腐烂病 {i}"), at_point(35.0, 109.5), "");
        if let Err(e) = farmer.submit_problem(r).await {
            refused = Some(e);
            break;
        }
    }
    let e = refused.expect("a full disk refuses submissions");
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    std::fs::remove_file(&filler).unwrap();
    let t = farmer
        .submit_problem(submit_request("苹果树腐烂病", at_point(35.0, 109.5), ""))
        .await
        .unwrap()
        .into_inner();
    let got = fetch(&mut farmer, &t).await;
    assert_eq!(got.history.len(), t.history.len());
    server.stop().await;
}

#[tokio::test]
async fn a_data_directory_that_cannot_be_created_stops_the_start() {
    let file = temp_dir("notadir").join("file");
    std::fs::write(&file, b"x").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_xwn"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(file.join("data"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot") && stderr.contains("Not a directory"),
        "{stderr}"
    );
}
