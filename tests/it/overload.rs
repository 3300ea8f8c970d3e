//! Overload: past `limits.max_in_flight` and `limits.max_submits_in_flight`
//! the excess calls get RESOURCE_EXHAUSTED at once, every other call is
//! answered, and the server answers normally afterwards; one connection
//! carrying thousands of calls at once (a front end's) gets answers and
//! RESOURCE_EXHAUSTED only, never a closed connection. No timings: the
//! tests count outcomes.

use crate::common::*;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::MetadataValue;
use tonic::Code;
use xingweinong::pb;

const ROSTER: &str = "r1,甲,13900000011,village,,苹果,,610527106202,35.000,109.500,5,true\n";

fn code<T>(r: Result<T, tonic::Status>) -> (Code, String) {
    r.map_or_else(
        |s| (s.code(), s.message().to_string()),
        |_| (Code::Ok, String::new()),
    )
}

/// `n` MatchProblem calls at once on one connection.
async fn burst_of_matches(ch: &tonic::transport::Channel, n: usize) -> Vec<(Code, String)> {
    let calls = (0..n).map(|_| {
        let mut matcher = MatchClient::new(ch.clone());
        async move {
            code(
                matcher
                    .match_problem(at_division("苹果树腐烂病", "610527106202"))
                    .await,
            )
        }
    });
    futures_join_all(calls).await
}

/// Runs futures concurrently and collects their outputs in order.
async fn futures_join_all<F: std::future::Future + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

type Upload = (
    mpsc::Sender<pb::RosterChunk>,
    tokio::task::JoinHandle<Result<tonic::Response<pb::ImportReport>, tonic::Status>>,
);

/// An upload of the roster that stays open until its sender is dropped.
fn start_upload(ch: &tonic::transport::Channel) -> Upload {
    let (tx, rx) = mpsc::channel(1);
    tx.try_send(csv_chunk(&format!("{HEADER}\n{ROSTER}")))
        .unwrap();
    let mut roster = RosterClient::new(ch.clone());
    let call =
        tokio::spawn(async move { roster.import_roster(admin(ReceiverStream::new(rx))).await });
    (tx, call)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_past_max_in_flight_get_resource_exhausted_and_the_server_recovers() {
    let mut cfg = config(&temp_dir("overload"));
    cfg.limits.max_in_flight = 2;
    let server = TestServer::start(cfg).await;
    let ch = server.channel().await;
    // Serving (the demo roster is stored first).
    MatchClient::new(ch.clone())
        .ping(pb::PingRequest {})
        .await
        .unwrap();

    // Two uploads that stay open hold both places. An upload that arrived
    // while a probe held a place was refused: start it again.
    let mut uploads: Vec<_> = (0..2).map(|_| start_upload(&ch)).collect();
    let mut tries = 0;
    loop {
        for upload in uploads.iter_mut() {
            if upload.1.is_finished() {
                let (_, done) = std::mem::replace(upload, start_upload(&ch));
                let refused = done.await.unwrap().expect_err("an open upload ended");
                assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
            }
        }
        // Only the uploads and this probe take places: a refused probe
        // means both uploads hold theirs.
        let (c, message) = burst_of_matches(&ch, 1).await.remove(0);
        if c == Code::ResourceExhausted && uploads.iter().all(|u| !u.1.is_finished()) {
            break;
        }
        assert!(matches!(c, Code::Ok | Code::ResourceExhausted), "{message}");
        tries += 1;
        assert!(tries < 10_000, "the uploads never took their places");
        tokio::task::yield_now().await;
    }

    // Every call past the limit is refused, and says why.
    let refused = burst_of_matches(&ch, 40).await;
    for (c, message) in &refused {
        assert_eq!(*c, Code::ResourceExhausted, "{message}");
        assert!(message.contains("2 calls in flight"), "{message}");
    }
    // Ping is outside the limits: the server itself still answers.
    MatchClient::new(ch.clone())
        .ping(pb::PingRequest {})
        .await
        .unwrap();

    // The uploads end and succeed; then calls are answered again.
    for (sender, upload) in uploads {
        drop(sender);
        upload.await.unwrap().expect("the held upload completes");
    }
    let mut matcher = MatchClient::new(ch.clone());
    for _ in 0..20 {
        matcher
            .match_problem(at_division("苹果树腐烂病", "610527106202"))
            .await
            .expect("answered once the load is gone");
    }
    // A burst past the limit: only RESOURCE_EXHAUSTED or answers.
    let outcomes = burst_of_matches(&ch, 40).await;
    let answered = outcomes.iter().filter(|(c, _)| *c == Code::Ok).count();
    assert!(answered >= 1, "{outcomes:?}");
    assert!(
        outcomes
            .iter()
            .all(|(c, _)| matches!(c, Code::Ok | Code::ResourceExhausted)),
        "{outcomes:?}"
    );
    server.stop_and_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submits_past_their_limit_get_resource_exhausted_the_rest_commit() {
    let mut cfg = config(&temp_dir("overload-submit"));
    cfg.limits.max_submits_in_flight = 1;
    let server = TestServer::start(cfg).await;
    let ch = server.channel().await;
    import_rows(&ch, ROSTER).await;

    let n = 64;
    let calls = (0..n).map(|i| {
        let mut farmer = TicketClient::new(ch.clone());
        async move {
            let r = farmer
                .submit_problem(submit_request(
                    "苹果树腐烂病",
                    at_point(35.0, 109.5),
                    &format!("burst-{i}"),
                ))
                .await;
            r.map(|t| t.into_inner())
        }
    });
    let results = futures_join_all(calls).await;
    let mut committed = Vec::new();
    let mut shed = 0;
    for r in results {
        match r {
            Ok(ticket) => committed.push(ticket),
            Err(s) => {
                assert_eq!(s.code(), Code::ResourceExhausted, "{s:?}");
                assert!(s.message().contains("SubmitProblem"), "{s:?}");
                shed += 1;
            }
        }
    }
    assert!(shed >= 1, "64 submits at once past a limit of 1: none shed");
    assert!(!committed.is_empty(), "every submit was shed");
    // What was answered was committed: the farmer reads it back.
    let mut farmer = TicketClient::new(ch.clone());
    for ticket in &committed {
        assert_eq!(fetch(&mut farmer, ticket).await.id, ticket.id);
    }
    // The load gone, submits are answered one after another.
    for i in 0..5 {
        farmer
            .submit_problem(submit_request(
                "苹果树腐烂病",
                at_point(35.0, 109.5),
                &format!("after-{i}"),
            ))
            .await
            .expect("answered after the burst");
    }
    server.stop_and_clean().await;
}

/// A front end's API key for the one-connection test.
const FRONT_END_KEY: &str = "front-end-key-0123456789";

/// A front end's one connection carries 3,500 MatchProblem calls at once
/// (`max_streams_per_connection` = 4096) while the server's only worker is
/// busy, so the server then reads them all in one go, each with its small
/// request message unread: every call must end OK or RESOURCE_EXHAUSTED.
/// (h2 closes a connection whose unread small DATA frames pass half its
/// connection window with GOAWAY ENHANCE_YOUR_CALM, and every call on it
/// fails at the transport; the server sizes the window for its streams.)
#[test]
fn a_burst_on_one_connection_gets_answers_or_resource_exhausted_only() {
    let runtime = |workers| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
            .unwrap()
    };
    let (server_side, client_side) = (runtime(1), runtime(2));
    let mut cfg = config(&temp_dir("overload-one-connection"));
    cfg.limits.max_streams_per_connection = 4096;
    cfg.limits.max_in_flight = 16_384;
    cfg.limits.max_queue_ms = 250;
    cfg.limits.api_keys = vec![xingweinong::config::ApiKeyConfig {
        name: "front-end".into(),
        key: FRONT_END_KEY.into(),
        rate_per_sec: 1_000_000.0,
        burst: None,
    }];
    let server = server_side.block_on(TestServer::start(cfg));
    let counts = client_side.block_on(async {
        let ch = server.channel().await;
        MatchClient::new(ch.clone())
            .ping(pb::PingRequest {})
            .await
            .unwrap();
        // The server's worker sleeps while the burst is written.
        let (asleep, wait) = std::sync::mpsc::channel();
        server_side.spawn(async move {
            asleep.send(()).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(500));
        });
        wait.recv().unwrap();
        let key: MetadataValue<_> = FRONT_END_KEY.parse().unwrap();
        let calls = (0..3500).map(|_| {
            let mut matcher = MatchClient::new(ch.clone());
            let mut request = tonic::Request::new(at_division("病", "610527106202"));
            request.metadata_mut().insert("x-api-key", key.clone());
            async move { code(matcher.match_problem(request).await) }
        });
        let mut counts = std::collections::HashMap::new();
        for (c, message) in futures_join_all(calls).await {
            counts.entry(c).or_insert((0, message)).0 += 1;
        }
        MatchClient::new(ch.clone())
            .ping(pb::PingRequest {})
            .await
            .expect("answered after the burst");
        counts
    });
    assert!(
        counts
            .keys()
            .all(|c| matches!(c, Code::Ok | Code::ResourceExhausted)),
        "{counts:?}"
    );
    assert!(counts.contains_key(&Code::Ok), "{counts:?}");
    server_side.block_on(server.stop_and_clean());
}
