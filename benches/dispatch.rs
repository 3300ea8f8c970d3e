//! Ticket latency over real gRPC on loopback: SubmitProblem (until the
//! ticket is committed) and submit-to-offer delivery (until the responder's
//! live stream has the offer). The server runs in-process on 127.0.0.1:0
//! with SQLite in a temporary directory, as `xwn serve` does.
//!
//! Run: `cargo bench --bench dispatch` (XWN_BENCH_TICKETS sets the count).

use std::time::{Duration, Instant};

mod common;

use common::authed;
use tonic::{transport::Channel, Streaming};
use xingweinong::{cli::loadgen::quantile, config::Config, pb, server};

const ADMIN: &str = "bench-admin-token-0123456789";

fn report(label: &str, mut us: Vec<u64>) {
    us.sort_unstable();
    println!(
        "{label:<24} n={:<6} p50 {:>7.3} ms  p99 {:>7.3} ms  max {:>7.3} ms",
        us.len(),
        quantile(&us, 0.5) as f64 / 1000.0,
        quantile(&us, 0.99) as f64 / 1000.0,
        *us.last().unwrap_or(&0) as f64 / 1000.0
    );
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let count: usize = std::env::var("XWN_BENCH_TICKETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let dir = std::env::temp_dir().join(format!("xwn-bench-dispatch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let channel = serve(&dir).await;
    let stream = online_responder(&channel).await;
    let (submit, offer) = submit_tickets(&channel, stream, count).await;
    println!("{count} tickets, one responder online, SQLite with synchronous=FULL");
    report("SubmitProblem", submit);
    report("submit -> offer on stream", offer);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Starts the server on loopback with its data in `dir`, and connects to it.
async fn serve(dir: &std::path::Path) -> Channel {
    let config = Config {
        data_dir: dir.to_path_buf(),
        admin_token: Some(ADMIN.into()),
        ..Config::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(server::serve(config, listener, std::future::pending()));
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// One apple expert who takes everything, on a roster of its own: imports
/// it, brings it online, and returns its live stream of assignments.
async fn online_responder(channel: &Channel) -> Streaming<pb::AssignmentEvent> {
    let roster = "id,name,tier,specialties,division_code,lat,lon,capacity\n\
                  e1,专家,village,苹果,610527106202,35.0,109.5,1000\n";
    let mut admin = pb::roster_service_client::RosterServiceClient::new(channel.clone());
    let chunk = pb::RosterChunk {
        format: pb::RosterFormat::Csv as i32,
        data: roster.as_bytes().to_vec(),
    };
    admin
        .import_roster(authed(tokio_stream::iter(vec![chunk]), ADMIN))
        .await
        .unwrap();
    let token = admin
        .issue_responder_token(authed(
            pb::IssueResponderTokenRequest {
                talent_id: "e1".into(),
                ttl_seconds: 0,
            },
            ADMIN,
        ))
        .await
        .unwrap()
        .into_inner()
        .token;
    let mut responder = pb::responder_service_client::ResponderServiceClient::new(channel.clone());
    responder
        .set_availability(authed(
            pb::SetAvailabilityRequest {
                availability: pb::Availability::Online as i32,
            },
            &token,
        ))
        .await
        .unwrap();
    responder
        .watch_assignments(authed(pb::WatchAssignmentsRequest {}, &token))
        .await
        .unwrap()
        .into_inner()
}

/// Submits `count` problems one after another; returns, in microseconds,
/// how long each submission took and how long until `stream` had its offer.
async fn submit_tickets(
    channel: &Channel,
    mut stream: Streaming<pb::AssignmentEvent>,
    count: usize,
) -> (Vec<u64>, Vec<u64>) {
    let mut farmer = pb::ticket_service_client::TicketServiceClient::new(channel.clone());
    let mut submit = Vec::with_capacity(count);
    let mut offer = Vec::with_capacity(count);
    for i in 0..count {
        let request = pb::SubmitProblemRequest {
            text: "苹果树腐烂病又犯了".into(),
            location: Some(pb::Location {
                kind: Some(pb::location::Kind::Point(pb::GeoPoint {
                    lat: 35.0,
                    lon: 109.5,
                })),
            }),
            contact: String::new(),
            idempotency_key: format!("bench-{i}"),
            photo_ids: Vec::new(),
        };
        let t = Instant::now();
        let ticket = farmer.submit_problem(request).await.unwrap().into_inner();
        submit.push(t.elapsed().as_micros() as u64);
        loop {
            let event = tokio::time::timeout(Duration::from_secs(5), stream.message())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            if event.ticket.as_ref().map(|t| t.id.as_str()) == Some(ticket.id.as_str())
                && event.event.as_ref().map(|e| e.kind()) == Some(pb::TicketEventKind::Offered)
            {
                offer.push(t.elapsed().as_micros() as u64);
                break;
            }
        }
    }
    (submit, offer)
}
