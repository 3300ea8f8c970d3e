//! Connections over a real socket against the real server: ones that never
//! speak are closed after `limits.first_bytes_timeout_ms` while others are
//! served; past `limits.max_connections_per_address` a new connection is
//! closed at once, the open ones stay usable, closed ones give their
//! places back, and the refusals are logged at most once a second. A part
//! of the preface then silence is silence too. A Connect body over
//! HTTP/1.1 that stalls holds its address's place only until
//! `limits.body_timeout_ms`, and body timeouts are logged with the caller.
//! Out of descriptors (the real binary, its limit lowered to 512, 700
//! silent sockets), the server backs off instead of spinning, logs it and
//! answers again once the silent ones are closed.

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
    /// Captures the log lines written on this thread while the guard lives.
    fn start() -> (Captured, tracing::subscriber::DefaultGuard) {
        let log = Captured::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || writer.clone())
            .finish();
        (log, tracing::subscriber::set_default(subscriber))
    }

    /// The lines that hold `what`.
    fn lines_with(&self, what: &str) -> Vec<String> {
        let text = String::from_utf8_lossy(&self.0.lock().unwrap()).to_string();
        text.lines()
            .filter(|l| l.contains(what))
            .map(str::to_string)
            .collect()
    }

    fn refusals(&self) -> Vec<String> {
        self.lines_with("limits.max_connections_per_address")
    }
}

#[tokio::test]
async fn connections_past_the_per_address_cap_are_closed_at_once() {
    let (log, _logging) = Captured::start();
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

#[tokio::test]
async fn a_part_of_the_preface_then_silence_is_closed_too() {
    let dir = temp_dir("conns-partial");
    let mut config = config(&dir);
    config.limits.first_bytes_timeout_ms = 500;
    let server = TestServer::start(config).await;
    assert!(healthy(&server.channel().await).await, "serving");
    let started = Instant::now();
    let mut partial = Vec::new();
    for opening in [
        &b"PRI"[..],
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n",
        b"POST /xingweinong.v1",
    ] {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream.write_all(opening).await.unwrap();
        partial.push(stream);
    }
    for stream in &mut partial {
        assert!(
            closed_within(stream, Duration::from_secs(3)).await,
            "a connection that sent a few bytes and stopped still open after {:?}",
            started.elapsed()
        );
    }
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert!(healthy(&server.channel().await).await);
    server.stop_and_clean().await;
}

/// A TCP connection from 127.0.0.2 (an address of its own).
async fn from_other_address(addr: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    socket.connect(addr).await.unwrap()
}

/// A Connect MatchProblem over HTTP/1.1 that announces `length` bytes of
/// body and sends `body`.
fn connect_match(addr: SocketAddr, length: usize, body: &str) -> String {
    format!(
        "POST /xingweinong.v1.MatchService/MatchProblem HTTP/1.1\r\nHost: {addr}\r\n\
         Content-Type: application/json\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n{body}"
    )
}

/// What the server answers on `stream` within `within`, if it does.
async fn reply_within(stream: &mut TcpStream, within: Duration) -> Option<String> {
    let mut reply = Vec::new();
    let read = tokio::time::timeout(within, stream.read_to_end(&mut reply)).await;
    read.ok()
        .map(|_| String::from_utf8_lossy(&reply).to_string())
}

#[tokio::test]
async fn a_connect_body_that_stalls_holds_a_place_only_until_the_body_timeout() {
    let (log, _logging) = Captured::start();
    let dir = temp_dir("conns-connect-body");
    let mut config = config(&dir);
    config.limits.body_timeout_ms = 600;
    config.limits.max_in_flight_per_address = 2;
    let server = TestServer::start(config).await;
    assert!(healthy(&server.channel().await).await, "serving");
    let started = Instant::now();
    // Two bodies that announce 1,000 bytes and send 10.
    let mut stalled = Vec::new();
    for _ in 0..2 {
        let mut stream = from_other_address(server.addr).await;
        let request = connect_match(server.addr, 1000, r#"{"text":"x"#);
        stream.write_all(request.as_bytes()).await.unwrap();
        stalled.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // While they read, they hold their address's places.
    let whole = r#"{"text":"苹果树腐烂病","location":{"divisionCode":"610527106202"}}"#;
    let mut third = from_other_address(server.addr).await;
    let request = connect_match(server.addr, whole.len(), whole);
    third.write_all(request.as_bytes()).await.unwrap();
    let reply = reply_within(&mut third, Duration::from_secs(3)).await;
    let reply = reply.expect("the third call from the address answered");
    assert!(reply.starts_with("HTTP/1.1 429"), "{reply}");
    assert!(reply.contains("max_in_flight_per_address"), "{reply}");
    // Another address is served.
    let mut other = TcpStream::connect(server.addr).await.unwrap();
    other.write_all(request.as_bytes()).await.unwrap();
    let reply = reply_within(&mut other, Duration::from_secs(3)).await;
    assert!(reply.unwrap_or_default().starts_with("HTTP/1.1 200"));
    // The stalled bodies are refused at the body timeout.
    for stream in &mut stalled {
        let reply = reply_within(stream, Duration::from_secs(3)).await;
        let reply = reply.unwrap_or_else(|| {
            panic!(
                "a stalled Connect body still held after {:?}",
                started.elapsed()
            )
        });
        assert!(reply.starts_with("HTTP/1.1 504"), "{reply}");
        assert!(reply.contains("deadline_exceeded"), "{reply}");
        assert!(reply.contains("limits.body_timeout_ms"), "{reply}");
    }
    assert!(started.elapsed() >= Duration::from_millis(500));
    // Their places are free again.
    let mut again = from_other_address(server.addr).await;
    again.write_all(request.as_bytes()).await.unwrap();
    let reply = reply_within(&mut again, Duration::from_secs(3)).await;
    assert!(reply.unwrap_or_default().starts_with("HTTP/1.1 200"));
    // Logged, with the caller, at most once a second.
    let lines = log.lines_with("kind=\"body_timeout\"");
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0].contains("INFO") && lines[0].contains("caller=127.0.0.2"),
        "{lines:#?}"
    );
    server.stop_and_clean().await;
}

#[tokio::test]
async fn a_grpc_body_timeout_is_logged_with_the_caller() {
    let (log, _logging) = Captured::start();
    let dir = temp_dir("conns-grpc-body");
    let mut config = config(&dir);
    config.limits.body_timeout_ms = 300;
    let server = TestServer::start(config).await;
    let stalled = crate::inflight::stalled_streams(server.addr, 3).await;
    for (reply, _send) in stalled {
        let (code, message, _) = reply.await.unwrap();
        assert_eq!(code, "4", "{message}");
    }
    let lines = log.lines_with("call refused at a limit");
    assert_eq!(lines.len(), 1, "one line a second: {lines:#?}");
    assert!(
        lines[0].contains("kind=\"body_timeout\"") && lines[0].contains("caller=127.0.0.2"),
        "{lines:#?}"
    );
    assert!(lines[0].contains("body_timeout_ms"), "{lines:#?}");
    server.stop_and_clean().await;
}

/// The CPU time `pid` has used (user and system), from /proc.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // USER_HZ is 100 on Linux.
    Duration::from_millis(ticks * 10)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_descriptors_the_server_backs_off_logs_and_recovers() {
    let dir = temp_dir("conns-nofile");
    let log = dir.with_extension("log");
    let port = free_port();
    let limits = "client_rate_per_sec = 0.0\nmax_queue_ms = 0\nfirst_bytes_timeout_ms = 5000\n\
                  max_connections_per_address = 10000";
    let mut child = spawn_with(&dir, port, Some(&log), "sqlite", "", limits);
    connect(port).await;
    let pid = child.id();
    let lowered = std::process::Command::new("prlimit")
        .args(["--pid", &pid.to_string(), "--nofile=256:256"])
        .status()
        .expect("prlimit (util-linux) lowers the server's descriptor limit");
    assert!(lowered.success());

    // More silent sockets than the server has descriptors.
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut silent = Vec::new();
    for _ in 0..400 {
        silent.push(TcpStream::connect(addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = cpu_time(pid);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let spent = cpu_time(pid) - before;
    eprintln!("server CPU over 3 s out of descriptors: {spent:?}");
    assert!(
        spent < Duration::from_millis(600),
        "the server spun: {spent:?} of CPU in 3 s"
    );

    // The silent ones are closed (the last accepted ones a timeout later)
    // and a normal call is answered again.
    let started = Instant::now();
    let mut answered = false;
    while !answered && started.elapsed() < Duration::from_secs(25) {
        let endpoint = Channel::from_shared(format!("http://{addr}")).unwrap();
        let endpoint = endpoint.connect_timeout(Duration::from_secs(1));
        if let Ok(Ok(channel)) =
            tokio::time::timeout(Duration::from_secs(2), endpoint.connect()).await
        {
            answered = tokio::time::timeout(Duration::from_secs(2), healthy(&channel))
                .await
                .unwrap_or(false);
        }
        if !answered {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    eprintln!("answered again {:?} after the CPU check", started.elapsed());
    assert!(answered, "no answer 25 s after the CPU check");
    drop(silent);
    child.kill().unwrap();
    child.wait().unwrap();

    let text = std::fs::read_to_string(&log).unwrap();
    let accept = text
        .lines()
        .filter(|l| l.contains("cannot accept connections"))
        .collect::<Vec<_>>();
    eprintln!("{} accept error lines", accept.len());
    assert!(!accept.is_empty(), "the accept error is not logged");
    assert!(
        accept[0].contains("WARN") && accept[0].contains("Too many open files"),
        "{accept:#?}"
    );
    assert!(
        accept.len() <= 20,
        "not rate-limited: {} lines",
        accept.len()
    );
    let _ = std::fs::remove_file(log);
    let _ = std::fs::remove_dir_all(dir);
}

/// This process's hard limit on open files (`/proc/PID/limits`) and its
/// soft one.
fn open_files_limits(pid: u32) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let fields: Vec<u64> = line
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    (fields[0], fields[1])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_raises_its_open_file_limit_to_the_hard_one() {
    let dir = temp_dir("conns-raise");
    let log = dir.with_extension("log");
    let port = free_port();
    // Started with a soft limit of 256, far below limits.max_connections.
    let hard = open_files_limits(std::process::id()).1.min(4096);
    let nofile = format!("--nofile=256:{hard}");
    let prlimit = ["prlimit", nofile.as_str(), "--"];
    let mut child = serve_command(&prlimit, &dir, port, Some(&log), "sqlite", "", "")
        .spawn()
        .expect("prlimit (util-linux) starts the server with a low limit");
    connect(port).await;
    // prlimit execs the server: the child's pid is the server's.
    let limits = open_files_limits(child.id());
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(limits, (hard, hard), "soft and hard open-file limits");
    let text = std::fs::read_to_string(&log).unwrap();
    let raised = text.lines().find(|l| l.contains("open-file limit raised"));
    let raised = raised.expect("the raise is logged");
    assert!(
        raised.contains("from=256") && raised.contains(&format!("to={hard}")),
        "{raised}"
    );
    // Below limits.max_connections (10,000) the operator is told.
    if hard < 10_256 {
        assert!(text.contains("the open-file limit is below limits.max_connections"));
    }
    let _ = std::fs::remove_file(log);
    let _ = std::fs::remove_dir_all(dir);
}
