//! Three `xwn serve` replicas on one PostgreSQL behave as one service: a
//! roster import on one is served by all at the same version; a ticket
//! submitted on one is offered to a responder streaming from another;
//! decisions never double-offer nor exceed capacity, also while a replica
//! is killed with `kill -9` mid-flow; offer timers fire once, also when
//! the replica that set them died. Skipped without PostgreSQL.

use std::{
    collections::HashMap,
    process::Child,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use crate::common::*;
use tonic::transport::Channel;
use xingweinong::pb;

/// Apple responders near (35.0, 109.5), one ticket at a time each.
pub(crate) const ROSTER: &str = "\
r1,村一,13900000011,village,,苹果,,610527106202,35.000,109.500,1,true
r2,村二,13900000012,village,,苹果,,610527106203,35.010,109.500,1,true
r3,村三,13900000013,village,,苹果,,610527106203,35.020,109.500,1,true
t1,县一,13900000021,county_town,果树,苹果,,610527106000,35.050,109.500,1,true
w1,麦一,13900000041,village,,小麦,,610527106202,35.000,109.500,2,true
";

pub(crate) struct Replica {
    child: Child,
    pub(crate) port: u16,
    dir: std::path::PathBuf,
}

pub(crate) fn start_replicas(url: &str, n: usize, extra: &str) -> Vec<Replica> {
    (0..n)
        .map(|i| {
            let dir = temp_dir(&format!("replica{i}"));
            let port = free_port();
            let log = dir.with_extension("log");
            let child = spawn_on(&dir, port, Some(&log), url, extra);
            Replica { child, port, dir }
        })
        .collect()
}

pub(crate) fn stop(replicas: &mut [Replica]) {
    for r in replicas {
        let _ = r.child.kill();
        let _ = r.child.wait();
        let _ = std::fs::remove_dir_all(&r.dir);
        let _ = std::fs::remove_file(r.dir.with_extension("toml"));
        let _ = std::fs::remove_file(r.dir.with_extension("log"));
    }
}

async fn stats(channel: &Channel) -> pb::RosterStats {
    RosterClient::new(channel.clone())
        .get_roster_stats(admin(pb::GetRosterStatsRequest {}))
        .await
        .unwrap()
        .into_inner()
}

/// Waits until every replica serves `version` with `total` talents.
pub(crate) async fn until_roster(channels: &[Channel], version: u64, total: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut all = true;
        for c in channels {
            let s = stats(c).await;
            all &= s.roster_version == version && s.total == total;
        }
        if all {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "replicas did not agree on roster version {version} within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) fn apple(key: &str) -> pb::SubmitProblemRequest {
    submit_request("苹果树叶子发黄有斑点", at_point(35.0, 109.5), key)
}

/// Checks a ticket's history: numbered 1.., ending in the ticket's state,
/// every answer to an offer (accept, decline, lapse) naming the responder
/// of the offer before it, and nobody offered the ticket twice.
fn check_history(t: &pb::Ticket) {
    use pb::TicketEventKind as K;
    let mut offered_to: Vec<String> = Vec::new();
    let mut current: Option<String> = None;
    for (i, e) in t.history.iter().enumerate() {
        assert_eq!(e.seq, i as u64 + 1, "ticket {} history has a gap", t.id);
        let who = e.talent.as_ref().map(|x| x.id.clone());
        match e.kind() {
            K::Offered => {
                let who = who.expect("an offer names its responder");
                assert!(
                    !offered_to.contains(&who),
                    "ticket {} offered to {who} twice: {:?}",
                    t.id,
                    t.history
                );
                offered_to.push(who.clone());
                current = Some(who);
            }
            K::Accepted | K::Declined | K::OfferTimedOut => {
                assert_eq!(
                    who, current,
                    "ticket {} answered by someone not offered it: {:?}",
                    t.id, t.history
                );
                if e.kind() != K::Accepted {
                    current = None;
                }
            }
            _ => {}
        }
    }
    assert_eq!(
        t.history.last().map(|e| e.state),
        Some(t.state),
        "ticket {} history does not end in its state",
        t.id
    );
}

/// Offered plus accepted tickets per responder, in one consistent read.
async fn held(channel: &Channel) -> HashMap<String, u32> {
    let mut admin_client = pb::roster_service_client::RosterServiceClient::new(channel.clone());
    let mut held = HashMap::new();
    let list = admin_client
        .list_tickets(admin(pb::ListTicketsRequest {
            state: pb::TicketState::Unspecified as i32,
            assignee_id: String::new(),
            page_size: 500,
            page_token: String::new(),
        }))
        .await;
    let Ok(list) = list else { return held };
    for t in list.into_inner().tickets {
        let holds = matches!(
            t.state(),
            pb::TicketState::Offered | pb::TicketState::Accepted
        );
        if let (true, Some(a)) = (holds, t.assignee) {
            *held.entry(a.id).or_default() += 1;
        }
    }
    held
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_act_as_one_service() {
    let Some(url) = postgres_db("three").await else {
        return;
    };
    let mut replicas = start_replicas(&url, 3, "[tickets]\noffer_timeout_ms = 3000\n");
    let mut channels = Vec::new();
    for r in &replicas {
        channels.push(connect(r.port).await);
    }
    an_import_on_one_replica_is_served_by_all(&channels).await;
    a_ticket_crosses_replicas_to_its_responders(&channels).await;

    // Many tickets through all three replicas, responders acting through
    // any replica, a capacity watcher, and replica 2 killed mid-flow.
    for id in ["r3", "t1"] {
        Responder::new(&channels[0], id).await.online().await;
    }
    let stop_flag = Arc::new(AtomicBool::new(false));
    let alive: Arc<std::sync::Mutex<Vec<Channel>>> =
        Arc::new(std::sync::Mutex::new(channels.clone()));
    let mut workers = Vec::new();
    for (i, id) in ["r1", "r2", "r3", "t1"].into_iter().enumerate() {
        let home = channels[i % 2].clone(); // streams from replicas 0 and 1
        workers.push(tokio::spawn(accept_and_resolve_offers(
            home,
            id,
            alive.clone(),
            stop_flag.clone(),
        )));
    }
    let watcher = tokio::spawn(watch_capacity(channels[0].clone(), stop_flag.clone()));
    let acknowledged = submit_while_replica_2_dies(&channels, &mut replicas, &alive).await;
    let finals = every_ticket_gets_resolved(&channels[1], &acknowledged).await;
    stop_flag.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let worst = watcher.await.unwrap();
    assert!(worst <= 1);
    for t in &finals {
        check_history(t);
    }
    // The same history read through the other live replica.
    let mut other = TicketClient::new(channels[0].clone());
    for (t, seen) in acknowledged.iter().zip(&finals) {
        assert_eq!(fetch(&mut other, t).await.history, seen.history);
    }
    stop(&mut replicas);
}

/// The first replica seeded the demo roster; all serve version 1. An import
/// on one replica is stored once and served by every one.
async fn an_import_on_one_replica_is_served_by_all(channels: &[Channel]) {
    let demo = stats(&channels[0]).await;
    until_roster(channels, 1, demo.total).await;
    import_rows(&channels[2], ROSTER).await;
    until_roster(channels, 2, 5).await;
}

/// A ticket submitted on replica 0 reaches a responder streaming from
/// replica 1; a decline on replica 2 moves it to the next responder,
/// streaming from replica 2.
async fn a_ticket_crosses_replicas_to_its_responders(channels: &[Channel]) {
    let mut r1 = Responder::new(&channels[1], "r1").await;
    let mut r2 = Responder::new(&channels[2], "r2").await;
    r1.online().await;
    r2.online().await;
    let mut s1 = r1.watch().await;
    let mut s2 = r2.watch().await;
    let mut farmer = TicketClient::new(channels[0].clone());
    let submitted = Instant::now();
    let t = farmer
        .submit_problem(apple("cross-1"))
        .await
        .unwrap()
        .into_inner();
    let offer = next(&mut s1).await;
    let reached = submitted.elapsed();
    eprintln!("submit on replica 0 → offer on replica 1's stream: {reached:?}");
    assert_eq!(offer.ticket.as_ref().unwrap().id, t.id);
    assert_eq!(offer.event.unwrap().kind(), pb::TicketEventKind::Offered);
    let mut r1_elsewhere = Responder {
        client: ResponderClient::new(channels[2].clone()),
        ..Responder::new(&channels[0], "r1").await
    };
    r1_elsewhere.decline(&t.id).await.unwrap();
    loop {
        let push = next(&mut s2).await;
        if push.event.unwrap().kind() == pb::TicketEventKind::Offered {
            assert_eq!(push.ticket.unwrap().id, t.id);
            break;
        }
    }
    r2.accept(&t.id).await.unwrap();
    r2.resolve(&t.id, "喷施甲基硫菌灵").await.unwrap();
    drop((s1, s2));
}

/// Responder `id`, streaming from `home`, accepts and resolves each offer
/// made to it through some other replica that is alive, until told to stop.
async fn accept_and_resolve_offers(
    home: Channel,
    id: &'static str,
    alive: Arc<std::sync::Mutex<Vec<Channel>>>,
    stop_flag: Arc<AtomicBool>,
) {
    let me = Responder::new(&home, id).await;
    let mut stream = me.client.clone();
    let mut watch = stream
        .watch_assignments(with_token(pb::WatchAssignmentsRequest {}, &me.token))
        .await
        .unwrap()
        .into_inner();
    let mut n = 0usize;
    while !stop_flag.load(Ordering::Relaxed) {
        let msg = tokio::time::timeout(Duration::from_millis(200), watch.message()).await;
        let Ok(Ok(Some(push))) = msg else { continue };
        let (Some(ticket), Some(event)) = (push.ticket, push.event) else {
            continue;
        };
        let mine = event.talent.as_ref().is_some_and(|x| x.id == id);
        if event.kind() != pb::TicketEventKind::Offered || !mine {
            continue;
        }
        // Act through some other replica that is alive.
        let via = {
            let alive = alive.lock().unwrap();
            alive[n % alive.len()].clone()
        };
        n += 1;
        let mut act = ResponderClient::new(via);
        let accept = pb::TicketActionRequest {
            ticket_id: ticket.id.clone(),
        };
        if act
            .accept_assignment(with_token(accept, &me.token))
            .await
            .is_ok()
        {
            // As a person would: again through another live replica if the
            // one accepted through died meanwhile (replica 2 is killed
            // mid-flow, before it leaves `alive`).
            for attempt in 0..3 {
                let resolve = pb::ResolveTicketRequest {
                    ticket_id: ticket.id.clone(),
                    answer: "已处理".into(),
                    shareable: false,
                };
                if act
                    .resolve_ticket(with_token(resolve, &me.token))
                    .await
                    .is_ok()
                {
                    break;
                }
                let via = {
                    let alive = alive.lock().unwrap();
                    alive[(n + attempt) % alive.len()].clone()
                };
                act = ResponderClient::new(via);
            }
        }
    }
}

/// Asserts no responder ever holds more than its capacity of 1 until told
/// to stop; returns the most any responder held.
async fn watch_capacity(channel: Channel, stop_flag: Arc<AtomicBool>) -> u32 {
    let mut worst = 0;
    while !stop_flag.load(Ordering::Relaxed) {
        for (who, n) in held(&channel).await {
            assert!(n <= 1, "{who} holds {n} tickets, capacity 1");
            worst = worst.max(n);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    worst
}

/// Submits 36 tickets round the replicas, killing replica 2 (SIGKILL) after
/// the 12th; the live replicas acknowledge every submit.
async fn submit_while_replica_2_dies(
    channels: &[Channel],
    replicas: &mut [Replica],
    alive: &std::sync::Mutex<Vec<Channel>>,
) -> Vec<pb::Ticket> {
    let mut acknowledged = Vec::new();
    for i in 0..36 {
        if i == 12 {
            replicas[2].child.kill().unwrap(); // SIGKILL
            replicas[2].child.wait().unwrap();
            alive.lock().unwrap().truncate(2);
        }
        let via = if i < 12 { i % 3 } else { i % 2 };
        let mut farmer = TicketClient::new(channels[via].clone());
        if let Ok(r) = farmer.submit_problem(apple(&format!("flow-{i}"))).await {
            acknowledged.push(r.into_inner());
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert_eq!(
        acknowledged.len(),
        36,
        "live replicas acknowledge every submit"
    );
    acknowledged
}

/// Every acknowledged ticket gets answered (lapsed offers move on) within
/// 60 s; returns each as resolved, read through `channel`.
async fn every_ticket_gets_resolved(
    channel: &Channel,
    acknowledged: &[pb::Ticket],
) -> Vec<pb::Ticket> {
    let mut farmer = TicketClient::new(channel.clone());
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut finals = Vec::new();
    for t in acknowledged {
        loop {
            let now = fetch(&mut farmer, t).await;
            if now.state() == pb::TicketState::Resolved {
                finals.push(now);
                break;
            }
            assert!(
                Instant::now() < deadline,
                "ticket {} still {:?} after 60 s: {:?}",
                t.id,
                now.state(),
                now.history
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    finals
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_lapses_once_even_when_its_replica_died() {
    let Some(url) = postgres_db("timer").await else {
        return;
    };
    let mut replicas = start_replicas(&url, 2, "[tickets]\noffer_timeout_ms = 1000\n");
    let a = connect(replicas[0].port).await;
    let b = connect(replicas[1].port).await;
    import_rows(&a, ROSTER).await;
    until_roster(&[a.clone(), b.clone()], 2, 5).await;
    for id in ["r1", "r2"] {
        Responder::new(&a, id).await.online().await;
    }
    let mut farmer = TicketClient::new(a.clone());
    let t = farmer
        .submit_problem(apple("lapse-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(t.state(), pb::TicketState::Offered);
    let first = t.assignee.as_ref().unwrap().id.clone();
    // The replica that made the offer (and armed its timer) dies.
    replicas[0].child.kill().unwrap();
    replicas[0].child.wait().unwrap();
    let mut farmer = TicketClient::new(b.clone());
    let deadline = Instant::now() + Duration::from_secs(15);
    let now = loop {
        let now = fetch(&mut farmer, &t).await;
        let moved = now.assignee.as_ref().is_some_and(|x| x.id != first);
        if moved {
            break now;
        }
        assert!(
            Instant::now() < deadline,
            "the offer did not lapse on the surviving replica: {:?}",
            now.history
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let lapses = now
        .history
        .iter()
        .filter(|e| e.kind() == pb::TicketEventKind::OfferTimedOut)
        .filter(|e| e.talent.as_ref().is_some_and(|x| x.id == first))
        .count();
    assert_eq!(lapses, 1, "{:?}", now.history);
    check_history(&now);
    stop(&mut replicas);
}

/// The action link of an offer made on one replica (to a responder who
/// never connected, through a notification) acts on another: the key is
/// the store's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_link_issued_on_one_replica_acts_on_another() {
    let Some(url) = postgres_db("links").await else {
        return;
    };
    let mut replicas = start_replicas(&url, 2, crate::links::WEBHOOK);
    let a = connect(replicas[0].port).await;
    let b = connect(replicas[1].port).await;
    import_rows(&a, ROSTER).await;
    until_roster(&[a.clone(), b.clone()], 2, 5).await;
    let t = TicketClient::new(a.clone())
        .submit_problem(apple("link-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        t.state(),
        pb::TicketState::Offered,
        "offered though nobody is ONLINE"
    );
    let link = crate::links::link_for(&a, &t.id).await;
    let mut by_link = Responder {
        id: link.talent_id.clone(),
        token: link.token.clone(),
        client: ResponderClient::new(b.clone()),
    };
    let accepted = by_link.accept(&t.id).await.unwrap();
    assert_eq!(accepted.state(), pb::TicketState::Accepted);
    stop(&mut replicas);
}
