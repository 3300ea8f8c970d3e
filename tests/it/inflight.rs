//! Calls in flight per client, over real sockets against the real server:
//! one HTTP/2 connection from 127.0.0.2 opens many MatchProblem streams,
//! each a gRPC frame announcing 1,000 bytes but carrying 10 and never
//! finishing; a client at 127.0.0.1 is answered all the while
//! (`limits.max_in_flight_per_address`), the streams past that bound are
//! refused at once, and the stalled ones are refused with
//! DEADLINE_EXCEEDED after `limits.body_timeout_ms`, freeing their places.
//! Near `limits.max_in_flight`, the greedy client is shed before a light
//! one.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use bytes::Bytes;
use tonic::Code;

use crate::common::*;

/// A gRPC frame that announces 1,000 bytes and carries 10.
fn short_frame() -> Bytes {
    let mut frame = vec![0u8];
    frame.extend_from_slice(&1000u32.to_be_bytes());
    frame.extend_from_slice(&[b'x'; 10]);
    Bytes::from(frame)
}

/// The status of a reply: from its headers (a refusal) or its trailers.
pub(crate) async fn grpc_status(response: h2::client::ResponseFuture) -> (String, String) {
    let response = response.await.expect("a reply on the stream");
    let mut headers = response.headers().clone();
    if !headers.contains_key("grpc-status") {
        let mut body = response.into_body();
        while let Some(data) = body.data().await {
            let _ = data;
        }
        headers = body.trailers().await.ok().flatten().unwrap_or_default();
    }
    let get = |name: &str| {
        (headers.get(name))
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    (get("grpc-status"), get("grpc-message"))
}

pub(crate) type Stalled = Vec<(
    tokio::task::JoinHandle<(String, String, Duration)>,
    h2::SendStream<Bytes>,
)>;

/// `n` stalled MatchProblem streams on one connection from 127.0.0.2.
pub(crate) async fn stalled_streams(addr: SocketAddr, n: usize) -> Stalled {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let tcp = socket.connect(addr).await.unwrap();
    let (mut client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut streams = Vec::new();
    for _ in 0..n {
        client = client.ready().await.unwrap();
        let request = http::Request::builder()
            .method("POST")
            .uri(format!(
                "http://{addr}/xingweinong.v1.MatchService/MatchProblem"
            ))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .unwrap();
        let (response, mut send) = client.send_request(request, false).unwrap();
        send.send_data(short_frame(), false).unwrap();
        let sent = Instant::now();
        let reply = tokio::spawn(async move {
            let (code, message) = grpc_status(response).await;
            (code, message, sent.elapsed())
        });
        streams.push((reply, send));
    }
    streams
}

/// A server with these in-flight limits, once it answers a MatchProblem.
async fn serving(
    tag: &str,
    max_in_flight: usize,
    per_address: usize,
    body_timeout_ms: u64,
) -> (TestServer, tonic::transport::Channel) {
    let mut cfg = config(&temp_dir(tag));
    cfg.limits.max_in_flight = max_in_flight;
    cfg.limits.max_in_flight_per_address = per_address;
    cfg.limits.body_timeout_ms = body_timeout_ms;
    let server = TestServer::start(cfg).await;
    let ch = server.channel().await;
    MatchClient::new(ch.clone())
        .match_problem(at_division("苹果树腐烂病", "610527106202"))
        .await
        .expect("serving");
    (server, ch)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_with_stalled_bodies_cannot_starve_the_others() {
    let (server, ch) = serving("inflight", 64, 16, 1_000).await;
    let mut matcher = MatchClient::new(ch.clone());

    // More stalled streams than the whole server's bound.
    let started = Instant::now();
    let stalled = stalled_streams(server.addr, 80).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Another client is answered while they stall.
    // Fewer at once than its own per-address bound.
    let calls: Vec<_> = (0..10)
        .map(|_| {
            let mut matcher = MatchClient::new(ch.clone());
            tokio::spawn(async move {
                matcher
                    .match_problem(at_division("苹果树腐烂病", "610527106202"))
                    .await
                    .map(|_| ())
            })
        })
        .collect();
    for call in calls {
        let answered = call.await.unwrap();
        assert!(
            answered.is_ok(),
            "another client refused while one stalls: {answered:?}"
        );
    }
    assert!(
        started.elapsed() < Duration::from_millis(1_000),
        "the other client was answered only after the body timeout freed places"
    );

    // 16 held until the body timeout, the other 64 refused at once.
    let (mut held, mut refused) = (0, 0);
    for (reply, send) in stalled {
        let (code, message, waited) = reply.await.unwrap();
        drop(send);
        match code.as_str() {
            "8" => {
                assert!(message.contains("max_in_flight_per_address"), "{message}");
                assert!(waited < Duration::from_millis(900), "{waited:?}");
                refused += 1;
            }
            "4" => {
                assert!(message.contains("body_timeout_ms"), "{message}");
                assert!(
                    waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
                    "refused after {waited:?}"
                );
                held += 1;
            }
            other => panic!("a stalled stream got {other}: {message}"),
        }
    }
    assert_eq!((held, refused), (16, 64));

    // Their places are free again: the stalled client's address is served.
    let again = matcher
        .match_problem(at_division("苹果树腐烂病", "610527106202"))
        .await;
    assert!(again.is_ok(), "{again:?}");
    assert_eq!(Code::Ok, again.map_or_else(|s| s.code(), |_| Code::Ok));
    server.stop_and_clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn near_the_limit_the_greedy_caller_is_shed_before_a_light_one() {
    // The address bound alone would let one client take every place.
    let (server, ch) = serving("inflight-greedy", 16, 16, 3_000).await;

    // The greedy client asks for every place; past three quarters (12) it
    // holds more than its share (16 / 4) and is refused.
    let stalled = stalled_streams(server.addr, 16).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    // A light client, a few calls at a time, is answered meanwhile.
    let mut answered = 0;
    for _ in 0..2 {
        let calls: Vec<_> = (0..4)
            .map(|_| {
                let mut matcher = MatchClient::new(ch.clone());
                tokio::spawn(async move {
                    matcher
                        .match_problem(at_division("苹果树腐烂病", "610527106202"))
                        .await
                })
            })
            .collect();
        for call in calls {
            match call.await.unwrap() {
                Ok(_) => answered += 1,
                Err(refused) => eprintln!("the light client was refused: {refused:?}"),
            }
        }
    }
    assert_eq!(answered, 8, "the light client's calls answered of 8");

    let (mut held, mut shed) = (0, 0);
    for (reply, send) in stalled {
        let (code, message, waited) = reply.await.unwrap();
        drop(send);
        match code.as_str() {
            "8" => {
                // Percent-encoded, as it travels.
                assert!(
                    message.contains("(limits.max_in_flight)") && message.contains("share"),
                    "{message}"
                );
                assert!(waited < Duration::from_millis(2_000), "{waited:?}");
                shed += 1;
            }
            "4" => held += 1,
            other => panic!("a stalled stream got {other}: {message}"),
        }
    }
    eprintln!("greedy: {held} held, {shed} shed; light: {answered} of 8 answered");
    assert_eq!((held, shed), (12, 4));
    server.stop_and_clean().await;
}
