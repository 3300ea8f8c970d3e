//! A long queue (issue 13 item 6): how long a responder's
//! SetAvailability(ONLINE) takes, how long until their first offer reaches
//! their stream, and how long a restart takes, with `XWN_BENCH_QUEUED`
//! tickets QUEUED (10,000 by default). The server runs in-process on
//! 127.0.0.1:0 with SQLite in a temporary directory, as `xwn serve` does.
//!
//! The queue is one apple problem submitted over gRPC while the roster's
//! apple expert is OFFLINE, copied in SQL (a submission each would take
//! minutes of synchronous commits). Then, on a restarted server: the apple
//! expert `e1` goes ONLINE (it qualifies for every queued ticket and takes
//! the oldest), then the wheat expert `w1` (it qualifies for none), and the
//! server restarts once more with both ONLINE.
//!
//! Run: `XWN_BENCH_QUEUED=40000 cargo bench --bench queue`.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use tokio::{sync::oneshot, task::JoinHandle};
mod common;

use common::authed;
use tonic::{transport::Channel, Streaming};
use xingweinong::{config::Config, pb, server};

const ADMIN: &str = "bench-admin-token-0123456789";

/// The apple expert `e1` and the wheat expert `w1`, one ticket at a time
/// each, among `XWN_BENCH_EXPERTS` other apple experts (300 by default)
/// who never come online: routing a queued apple ticket walks them all.
fn roster(experts: usize) -> String {
    let mut text = "id,name,tier,specialties,division_code,lat,lon,capacity\n\
        e1,苹果专家,village,苹果,610527106202,35.0,109.5,1\n\
        w1,小麦专家,village,小麦,610527106202,35.0,109.5,1\n"
        .to_string();
    for i in 0..experts {
        let (lat, lon) = (
            34.5 + (i % 20) as f64 * 0.05,
            109.2 + (i / 20) as f64 * 0.05,
        );
        text.push_str(&format!(
            "a{i},专家{i},village,苹果,610527106202,{lat:.3},{lon:.3},1\n"
        ));
    }
    text
}

/// A server on loopback; stopped by dropping `stop` and awaiting `task`.
struct Running {
    channel: Channel,
    stop: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Starts the server on `dir`; returns it with how long until it
    /// answered its first call (the restart time).
    async fn start(dir: &Path, max_queued: usize) -> (Running, Duration) {
        let mut config = Config {
            data_dir: dir.to_path_buf(),
            admin_token: Some(ADMIN.into()),
            ..Config::default()
        };
        config.tickets.max_queued = max_queued;
        // A slow drain shows as a slow call, not as DEADLINE_EXCEEDED.
        config.limits.request_timeout_ms = 600_000;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let t = Instant::now();
        let task = tokio::spawn(server::serve(config, listener, async {
            let _ = stopped.await;
        }));
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        pb::match_service_client::MatchServiceClient::new(channel.clone())
            .ping(pb::PingRequest {})
            .await
            .unwrap();
        let started = t.elapsed();
        (
            Running {
                channel,
                stop,
                task,
            },
            started,
        )
    }

    async fn stop(self) {
        drop(self.channel);
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }

    async fn token(&self, talent: &str) -> String {
        let mut admin = pb::roster_service_client::RosterServiceClient::new(self.channel.clone());
        admin
            .issue_responder_token(authed(
                pb::IssueResponderTokenRequest {
                    talent_id: talent.into(),
                    ttl_seconds: 0,
                },
                ADMIN,
            ))
            .await
            .unwrap()
            .into_inner()
            .token
    }

    /// Brings `talent` ONLINE with a live stream; returns how long
    /// SetAvailability took and how long until the first offer arrived
    /// (`None` when none came within `wait`).
    async fn online(&self, talent: &str, wait: Duration) -> (Duration, Option<Duration>) {
        let token = self.token(talent).await;
        let mut responder =
            pb::responder_service_client::ResponderServiceClient::new(self.channel.clone());
        let mut stream: Streaming<pb::AssignmentEvent> = responder
            .watch_assignments(authed(pb::WatchAssignmentsRequest {}, &token))
            .await
            .unwrap()
            .into_inner();
        let t = Instant::now();
        responder
            .set_availability(authed(
                pb::SetAvailabilityRequest {
                    availability: pb::Availability::Online as i32,
                },
                &token,
            ))
            .await
            .unwrap();
        let call = t.elapsed();
        let offer = loop {
            match tokio::time::timeout(wait.saturating_sub(t.elapsed()), stream.message()).await {
                Ok(Ok(Some(event)))
                    if event.event.as_ref().map(|e| e.kind())
                        == Some(pb::TicketEventKind::Offered) =>
                {
                    break Some(t.elapsed())
                }
                Ok(Ok(Some(_))) => continue,
                _ => break None,
            }
        };
        (call, offer)
    }
}

/// Imports the roster and submits one apple problem, queued (nobody is
/// online); returns its id.
async fn seed(channel: &Channel, roster: &str) -> String {
    let mut admin = pb::roster_service_client::RosterServiceClient::new(channel.clone());
    let chunk = pb::RosterChunk {
        format: pb::RosterFormat::Csv as i32,
        data: roster.as_bytes().to_vec(),
    };
    admin
        .import_roster(authed(tokio_stream::iter(vec![chunk]), ADMIN))
        .await
        .unwrap();
    let mut farmer = pb::ticket_service_client::TicketServiceClient::new(channel.clone());
    let ticket = farmer
        .submit_problem(pb::SubmitProblemRequest {
            text: "苹果树腐烂病又犯了".into(),
            location: Some(pb::Location {
                kind: Some(pb::location::Kind::Point(pb::GeoPoint {
                    lat: 35.0,
                    lon: 109.5,
                })),
            }),
            contact: String::new(),
            idempotency_key: String::new(),
            photo_ids: Vec::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ticket.state(), pb::TicketState::Queued);
    ticket.id
}

/// Copies ticket `id` (and its events) `count - 1` times, each created a
/// millisecond after the one before, with ids in the same order.
fn copy_ticket(dir: &Path, id: &str, count: usize) {
    let conn = rusqlite::Connection::open(dir.join("tickets.sqlite3")).unwrap();
    conn.execute_batch("PRAGMA synchronous=OFF").unwrap();
    let sql = format!(
        "BEGIN;
         CREATE TEMP TABLE n AS WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {last}) SELECT i FROM n;
         CREATE TEMP TABLE t AS SELECT * FROM tickets WHERE id = '{id}';
         CREATE TEMP TABLE e AS SELECT * FROM ticket_events WHERE ticket_id = '{id}';
         UPDATE t SET idempotency_key = NULL;
         INSERT INTO tickets SELECT printf('%s-%08d', t.id, n.i), t.text, t.location, t.division_code, t.subject, t.corps,
             t.contact, NULL, t.state, t.assignee, t.tier, t.offers_in_tier, t.offer_deadline_ms, t.answer, t.reason,
             t.created_at_ms + n.i, t.updated_at_ms + n.i, t.words FROM t, n;
         INSERT INTO ticket_events SELECT printf('%s-%08d', e.ticket_id, n.i), e.seq, e.kind, e.actor, e.at_ms + n.i,
             e.reason, e.state, e.talent_id, e.tier FROM e, n;
         COMMIT;",
        last = count.saturating_sub(1),
    );
    conn.execute_batch(&sql).unwrap();
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let count: usize = std::env::var("XWN_BENCH_QUEUED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let dir = std::env::temp_dir().join(format!("xwn-bench-queue-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let max_queued = count + 10;

    let (server, _) = Running::start(&dir, max_queued).await;
    let experts: usize = std::env::var("XWN_BENCH_EXPERTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let id = seed(&server.channel, &roster(experts)).await;
    server.stop().await;
    copy_ticket(&dir, &id, count);

    let (server, restart) = Running::start(&dir, max_queued).await;
    println!(
        "{count} tickets QUEUED, {experts} apple experts offline, SQLite with synchronous=FULL"
    );
    println!("start-up (to the first answered call)   {}", ms(restart));
    let (call, offer) = server.online("e1", Duration::from_secs(60)).await;
    println!(
        "e1 (qualified) ONLINE: SetAvailability {}, first offer {}",
        ms(call),
        offer.map_or("none".into(), ms)
    );
    let (call, offer) = server.online("w1", Duration::from_secs(2)).await;
    println!(
        "w1 (not qualified) ONLINE: SetAvailability {}, first offer {}",
        ms(call),
        offer.map_or("none".into(), ms)
    );
    server.stop().await;
    let (server, restart) = Running::start(&dir, max_queued).await;
    println!("restart with e1, w1 ONLINE              {}", ms(restart));
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
