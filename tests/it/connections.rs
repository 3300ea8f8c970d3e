//! Connections over a real socket against the real server: ones that never
//! speak are closed after `limits.first_bytes_timeout_ms` while others are
//! served; past `limits.max_connections_per_address` a new connection is
//! closed at once, the open ones stay usable, closed ones give their
//! places back, and the refusals are logged at most once a second.

use std::{
    io::Write,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tonic::transport::Channel;
use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};

use crate::common::*;

/// Whether `channel` answers a health check.
async fn healthy(channel: &Channel) -> bool {
    let request = HealthCheckRequest {
        service: String::new(),
    };
    HealthClient::new(channel.clone())
        .check(request)
        .await
        .is_ok()
}

/// A Connect JSON call over HTTP/1.1 on a fresh connection: the status line.
async fn connect_json(addr: SocketAddr) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST /xingweinong.v1.MatchService/ListDivisions HTTP/1.1\r\nHost: {addr}\r\n\
         Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut reply = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut reply));
    read.await.expect("a Connect reply").unwrap();
    let reply = String::from_utf8_lossy(&reply);
    reply.lines().next().unwrap_or_default().to_string()
}

/// Whether the server closed `stream` within `within` (it never writes to
/// a client that has not spoken).
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 16];
    match tokio::time::timeout(within, stream.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => true,
        Ok(Ok(n)) => panic!("the server wrote {n} bytes to a silent client"),
        Err(_) => false,
    }
}

#[tokio::test]
async fn silent_connections_are_closed_while_others_are_served() {
    let dir = temp_dir("conns-silent");
    let mut config = config(&dir);
    config.limits.first_bytes_timeout_ms = 500;
    let server = TestServer::start(config).await;
    let grpc = server.channel().await;
    let started = Instant::now();
    let mut silent = Vec::new();
    for _ in 0..20 {
        silent.push(TcpStream::connect(server.addr).await.unwrap());
    }
    assert!(
        healthy(&grpc).await,
        "gRPC answered while sockets sit silent"
    );
    assert!(
        healthy(&server.channel().await).await,
        "a new gRPC client too"
    );
    let status = connect_json(server.addr).await;
    assert!(status.contains("200"), "Connect JSON: {status}");
    for stream in &mut silent {
        assert!(
            closed_within(stream, Duration::from_secs(3)).await,
            "a silent connection still open after {:?}",
            started.elapsed()
        );
    }
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(400),
        "closed early: {waited:?}"
    );
    // The busy connection is not a silent one.
    assert!(healthy(&grpc).await);
    server.stop_and_clean().await;
}

/// The log lines written while it is set as this thread's subscriber (the
/// test's runtime runs the server on this thread too).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn refusals(&self) -> Vec<String> {
        let text = String::from_utf8_lossy(&self.0.lock().unwrap()).to_string();
        text.lines()
            .filter(|l| l.contains("limits.max_connections_per_address"))
            .map(str::to_string)
            .collect()
    }
}

#[tokio::test]
async fn connections_past_the_per_address_cap_are_closed_at_once() {
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    let _logging = tracing::subscriber::set_default(subscriber);
    let dir = temp_dir("conns-cap");
    let mut config = config(&dir);
    config.limits.max_connections_per_address = 5;
    let server = TestServer::start(config).await;
    let mut open = Vec::new();
    for _ in 0..5 {
        let channel = server.channel().await;
        assert!(healthy(&channel).await);
        open.push(channel);
    }
    let first_refusal = Instant::now();
    for _ in 0..3 {
        let mut sixth = TcpStream::connect(server.addr).await.unwrap();
        assert!(
            closed_within(&mut sixth, Duration::from_millis(500)).await,
            "a 6th connection from 127.0.0.1 was kept"
        );
    }
    for channel in &open {
        assert!(healthy(channel).await, "the first 5 stay usable");
    }
    let lines = log.refusals();
    assert_eq!(lines.len(), 1, "one line a second: {lines:?}");
    assert!(
        lines[0].contains("WARN") && lines[0].contains("127.0.0.1"),
        "{lines:?}"
    );
    // Closing two gives their places back.
    open.truncate(3);
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut reopened = 0;
    while reopened < 2 {
        assert!(
            Instant::now() < deadline,
            "closed connections kept their places"
        );
        let endpoint = Channel::from_shared(format!("http://{}", server.addr)).unwrap();
        match endpoint.connect().await {
            Ok(channel) if healthy(&channel).await => {
                open.push(channel);
                reopened += 1;
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    // Full again: refused, and after a second the next line counts the
    // ones left out.
    tokio::time::sleep(Duration::from_millis(1100).saturating_sub(first_refusal.elapsed())).await;
    let mut again = TcpStream::connect(server.addr).await.unwrap();
    assert!(closed_within(&mut again, Duration::from_millis(500)).await);
    let lines = log.refusals();
    assert!(lines.len() >= 2, "{lines:?}");
    assert!(
        lines
            .iter()
            .skip(1)
            .any(|l| l.contains("suppressed=") && !l.contains("suppressed=0")),
        "{lines:?}"
    );
    for channel in &open {
        assert!(healthy(channel).await);
    }
    server.stop_and_clean().await;
}
