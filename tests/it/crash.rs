//! Crash safety of the real binary: `kill -9` while farmers submit and
//! responders act, then a restart. Every acknowledged ticket must be there
//! with a consistent history, and the server must start cleanly each time.
//! `XWN_CRASH_ROUNDS` sets the number of kills (default 5).

use std::{
    collections::HashMap,
    process::{Child, Command},
    time::{Duration, Instant},
};

use crate::common::*;
use xingweinong::pb;

const ROSTER: &str = "\
v1,村一,13900000011,village,,苹果,苹果腐烂病,610527106202,35.000,109.500,50,true
v2,村二,13900000012,village,,苹果,,610527106203,35.010,109.500,50,true
";

/// The number of kills: `XWN_CRASH_ROUNDS`, 5 by default.
fn crash_rounds() -> usize {
    std::env::var("XWN_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_keeps_every_acknowledged_ticket() {
    let rounds = crash_rounds();
    let dir = temp_dir("crash");
    let port = free_port();
    let mut child = spawn(&dir, port, None);
    let channel = connect(port).await;
    import_rows(&channel, ROSTER).await;
    // The token outlives every restart: the signing key is in the data directory.
    let mut v1 = Responder::new(&channel, "v1").await;
    v1.online().await;

    // ticket id → (secret, the state we saw acknowledged)
    let mut acknowledged: HashMap<String, (String, pb::TicketState)> = HashMap::new();
    for round in 0..rounds {
        submit_and_act_until_killed(round, port, &mut child, &mut v1, &mut acknowledged).await;
        child.wait().unwrap();
        child = spawn(&dir, port, None);
    }
    every_acknowledged_ticket_is_kept(port, rounds, &acknowledged).await;
    child.kill().unwrap();
    child.wait().unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

/// One round: four farmers submit at once (and v1 accepts and resolves
/// some of the first one's) until a kill -9, sent from another thread at a
/// moment of its own, lands while submits are in flight, possibly in the
/// middle of a group commit. Records each ticket acknowledged and the
/// state seen for it.
async fn submit_and_act_until_killed(
    round: usize,
    port: u16,
    child: &mut Child,
    v1: &mut Responder,
    acknowledged: &mut HashMap<String, (String, pb::TicketState)>,
) {
    let channel = connect(port).await;
    v1.client = ResponderClient::new(channel.clone());
    let kill_after = Duration::from_millis(100 + (round as u64 * 37) % 300);
    let pid = child.id().to_string();
    let killer = std::thread::spawn(move || {
        std::thread::sleep(kill_after);
        Command::new("kill").args(["-9", &pid]).status().unwrap();
    });
    let mut others = tokio::task::JoinSet::new();
    for farmer in 1..4 {
        let mut client = TicketClient::new(channel.clone());
        others.spawn(async move {
            let mut seen = Vec::new();
            for n in 0.. {
                let request = submit_request(
                    "苹果树腐烂病",
                    at_point(35.0, 109.5),
                    &format!("r{round}-f{farmer}-{n}"),
                );
                match client.submit_problem(request).await {
                    Ok(t) => {
                        let t = t.into_inner();
                        seen.push((t.id.clone(), (t.ticket_secret.clone(), t.state())));
                    }
                    Err(_) => break,
                }
            }
            seen
        });
    }
    let mut farmer = TicketClient::new(channel.clone());
    for n in 0.. {
        let request = submit_request(
            "苹果树腐烂病",
            at_point(35.0, 109.5),
            &format!("r{round}-f0-{n}"),
        );
        match farmer.submit_problem(request).await {
            Ok(t) => {
                let t = t.into_inner();
                let mut state = t.state();
                if n % 3 == 0 && v1.accept(&t.id).await.is_ok() {
                    state = pb::TicketState::Accepted;
                    if n % 2 == 0 && v1.resolve(&t.id, "处理了").await.is_ok() {
                        state = pb::TicketState::Resolved;
                    }
                }
                acknowledged.insert(t.id.clone(), (t.ticket_secret.clone(), state));
            }
            Err(_) => break,
        }
    }
    while let Some(seen) = others.join_next().await {
        acknowledged.extend(seen.unwrap());
    }
    killer.join().unwrap();
}

/// After the last restart every acknowledged ticket is there, no state
/// went back, and its history is numbered without gaps and ends in its
/// state.
async fn every_acknowledged_ticket_is_kept(
    port: u16,
    rounds: usize,
    acknowledged: &HashMap<String, (String, pb::TicketState)>,
) {
    let channel = connect(port).await;
    let mut farmer = TicketClient::new(channel.clone());
    assert!(
        acknowledged.len() >= rounds,
        "too few tickets acknowledged: {}",
        acknowledged.len()
    );
    for (id, (secret, seen)) in acknowledged {
        let t = farmer
            .get_ticket(pb::GetTicketRequest {
                ticket_id: id.clone(),
                ticket_secret: secret.clone(),
            })
            .await
            .unwrap_or_else(|e| panic!("acknowledged ticket {id} is gone: {e}"))
            .into_inner();
        // A later change may have landed before the kill; nothing goes back.
        let order = |s: pb::TicketState| match s {
            pb::TicketState::Queued | pb::TicketState::Offered => 0,
            pb::TicketState::Accepted => 1,
            _ => 2,
        };
        assert!(
            order(t.state()) >= order(*seen),
            "{id}: {:?} after {:?}",
            t.state(),
            seen
        );
        let seqs: Vec<u64> = t.history.iter().map(|e| e.seq).collect();
        assert_eq!(
            seqs,
            (1..=seqs.len() as u64).collect::<Vec<_>>(),
            "{id}: gaps in the history"
        );
        assert_eq!(
            t.history.last().unwrap().state(),
            t.state(),
            "{id}: history and state disagree"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_imports_leaves_the_old_or_the_new_roster() {
    let rounds = crash_rounds();
    let a = "a1,甲,,village,,苹果,,610527106202,,,,\na2,乙,,village,,梨,,610527106202,,,,\n";
    let b = "b1,丙,,village,,小麦,,610527106202,,,,\nb2,丁,,village,,玉米,,610527106202,,,,\nb3,戊,,city,,猪,,610500000000,,,,\n";
    let dir = temp_dir("crash-import");
    let port = free_port();
    let mut child = spawn(&dir, port, None);
    for round in 0..rounds {
        let channel = connect(port).await;
        let mut roster = RosterClient::new(channel.clone());
        let kill_after = Duration::from_millis(20 + (round as u64 * 53) % 150);
        let started = Instant::now();
        let mut n = 0;
        while child.try_wait().unwrap().is_none() {
            if started.elapsed() >= kill_after {
                child.kill().unwrap();
                break;
            }
            n += 1;
            let rows = if n % 2 == 0 { a } else { b };
            let chunk = csv_chunk(&format!("{HEADER}\n{rows}"));
            let _ = roster
                .import_roster(admin(tokio_stream::iter(vec![chunk])))
                .await;
        }
        child.wait().unwrap();
        child = spawn(&dir, port, None);
        let channel = connect(port).await;
        let mut roster = RosterClient::new(channel.clone());
        let list = roster
            .list_talents(admin(pb::ListTalentsRequest {
                include_inactive: true,
                page_size: 500,
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        let ids: Vec<&str> = list.talents.iter().map(|t| t.id.as_str()).collect();
        let whole =
            ids == ["a1", "a2"] || ids == ["b1", "b2", "b3"] || (n == 0 && list.total > 1000);
        assert!(whole, "round {round}: a mixed or empty roster: {ids:?}");
    }
    child.kill().unwrap();
    child.wait().unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn sigterm_stops_the_server_gracefully() {
    let dir = temp_dir("sigterm");
    let port = free_port();
    let mut child = spawn(&dir, port, None);
    connect(port).await;
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "no exit within 10 s of SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "{exit:?}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_photo_uploads_keeps_every_acknowledged_photo_whole() {
    type PhotoClient = pb::photo_service_client::PhotoServiceClient<tonic::transport::Channel>;
    let rounds = crash_rounds();
    let dir = temp_dir("crash-photos");
    let port = free_port();
    let mut child = spawn(&dir, port, None);
    import_rows(&connect(port).await, ROSTER).await;
    // ticket id → (secret, photo id, the upload's width and height)
    let mut acknowledged: Vec<(String, String, String, (u32, u32))> = Vec::new();
    let mut n = 0u32;
    for round in 0..rounds {
        let channel = connect(port).await;
        let mut photos = PhotoClient::new(channel.clone());
        let mut farmer = TicketClient::new(channel);
        // The kill comes from another thread, at a moment of its own, so
        // that it can land in the middle of an upload being written.
        let kill_after = Duration::from_millis(300 + (round as u64 * 97) % 400);
        let pid = child.id().to_string();
        let killer = std::thread::spawn(move || {
            std::thread::sleep(kill_after);
            Command::new("kill").args(["-9", &pid]).status().unwrap();
        });
        loop {
            n += 1;
            // A different picture each time, so each is stored anew.
            let data = xingweinong::photos::clean::fixtures::png(200 + n % 97, 150 + n / 97);
            let Ok(up) = photos
                .upload_photo(pb::UploadPhotoRequest {
                    data,
                    idempotency_key: format!("k{n}"),
                })
                .await
            else {
                break;
            };
            let up = up.into_inner();
            let mut request =
                submit_request("苹果树叶子有斑点", at_point(35.0, 109.5), &format!("p{n}"));
            request.photo_ids = vec![up.photo_id.clone()];
            let Ok(t) = farmer.submit_problem(request).await else {
                break;
            };
            let t = t.into_inner();
            acknowledged.push((t.id, t.ticket_secret, up.photo_id, (up.width, up.height)));
        }
        killer.join().unwrap();
        child.wait().unwrap();
        child = spawn(&dir, port, None);
    }
    assert!(acknowledged.len() >= rounds, "too few photos acknowledged");

    // Every acknowledged photo reads back whole, at its size, with its thumbnail.
    let mut photos = PhotoClient::new(connect(port).await);
    for (ticket, secret, photo, (w, h)) in &acknowledged {
        for thumbnail in [false, true] {
            let got = photos
                .get_photo(pb::GetPhotoRequest {
                    ticket_id: ticket.clone(),
                    photo_id: photo.clone(),
                    ticket_secret: secret.clone(),
                    thumbnail,
                })
                .await
                .unwrap_or_else(|e| panic!("acknowledged photo {photo} is gone: {e}"))
                .into_inner();
            assert!(
                whole_jpeg(&got.data),
                "photo {photo} (thumbnail {thumbnail}) is torn"
            );
            let image = image::load_from_memory(&got.data).unwrap();
            if !thumbnail {
                assert_eq!((image.width(), image.height()), (*w, *h), "{photo}");
            }
        }
    }
    // No torn file under a photo's name: a crash leaves at most a temporary file.
    let mut files = vec![dir.join("photos")];
    let mut jpegs = 0;
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else if path.extension().is_some_and(|e| e == "jpg") {
            let bytes = std::fs::read(&path).unwrap();
            assert!(whole_jpeg(&bytes), "{} is torn", path.display());
            jpegs += 1;
        }
    }
    assert!(
        jpegs >= 2 * acknowledged.len(),
        "{jpegs} files for {} photos",
        acknowledged.len()
    );
    child.kill().unwrap();
    child.wait().unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

/// A JPEG that decodes and ends in its end-of-image marker (the decoder
/// alone would accept a truncated file, filling the missing rows).
fn whole_jpeg(bytes: &[u8]) -> bool {
    bytes.ends_with(&[0xFF, 0xD9]) && image::load_from_memory(bytes).is_ok()
}
