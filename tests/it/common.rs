//! Test harness: starts the real server on 127.0.0.1:0 over a temporary data
//! directory, and builds clients and admin requests for it.
#![allow(dead_code)]

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::OnceLock,
    time::{SystemTime, UNIX_EPOCH},
};

use tokio::{sync::oneshot, task::JoinHandle};
use tonic::{transport::Channel, Request};
use xingweinong::{config::Config, pb, server};

pub(crate) const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

pub(crate) type MatchClient = pb::match_service_client::MatchServiceClient<Channel>;
pub(crate) type RosterClient = pb::roster_service_client::RosterServiceClient<Channel>;

/// A fresh, empty directory under the system temp dir.
pub(crate) fn temp_dir(tag: &str) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!("xwn-test-{tag}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub(crate) fn config(data_dir: &Path) -> Config {
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: data_dir.to_path_buf(),
        admin_token: Some(ADMIN_TOKEN.into()),
        ..Config::default()
    };
    // Tests call fast from one address; the rate limit has its own test.
    config.limits.client_rate_per_sec = 0.0;
    // A busy test machine must not turn waits into refusals; the queue
    // deadline has its own test.
    config.limits.max_queue_ms = 0;
    config
}

pub(crate) struct TestServer {
    pub(crate) addr: SocketAddr,
    pub(crate) data_dir: PathBuf,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestServer {
    /// Starts a server in the current runtime.
    pub(crate) async fn start(config: Config) -> TestServer {
        let listener = tokio::net::TcpListener::bind(config.listen).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel();
        let data_dir = config.data_dir.clone();
        let serve = server::serve(config, listener, async {
            let _ = rx.await;
        });
        // A server that fails says why in the test's output, before its
        // clients see their connections reset.
        let handle = tokio::spawn(async move {
            let ended = serve.await;
            if let Err(e) = &ended {
                eprintln!("the test server failed: {e:#}");
            }
            ended
        });
        TestServer {
            addr,
            data_dir,
            shutdown: Some(tx),
            handle: Some(handle),
        }
    }

    /// Stops the server gracefully and waits for it.
    pub(crate) async fn stop(mut self) {
        let _ = self.shutdown.take().unwrap().send(());
        self.handle.take().unwrap().await.unwrap().unwrap();
    }

    /// Stops the server and removes its data directory.
    pub(crate) async fn stop_and_clean(self) {
        let dir = self.data_dir.clone();
        self.stop().await;
        let _ = std::fs::remove_dir_all(dir);
    }

    pub(crate) async fn channel(&self) -> Channel {
        channel(self.addr).await
    }
}

pub(crate) async fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// One demo-roster server per test binary, on its own runtime, for tests
/// that only read.
pub(crate) fn shared_server() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async move {
                let dir = temp_dir("shared");
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                server::serve(config(&dir), listener, std::future::pending())
                    .await
                    .unwrap();
            });
        });
        rx.recv().unwrap()
    })
}

pub(crate) fn admin<T>(message: T) -> Request<T> {
    with_token(message, ADMIN_TOKEN)
}

pub(crate) fn with_token<T>(message: T, token: &str) -> Request<T> {
    let mut r = Request::new(message);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

pub(crate) fn at_division(text: &str, code: &str) -> pb::MatchProblemRequest {
    pb::MatchProblemRequest {
        text: text.into(),
        location: Some(pb::Location {
            kind: Some(pb::location::Kind::DivisionCode(code.into())),
        }),
        limit: 5,
        ranking: 0,
    }
}

pub(crate) fn csv_chunk_bytes(data: &[u8]) -> pb::RosterChunk {
    pb::RosterChunk {
        format: pb::RosterFormat::Csv as i32,
        data: data.to_vec(),
    }
}

pub(crate) fn csv_chunk(text: &str) -> pb::RosterChunk {
    pb::RosterChunk {
        format: pb::RosterFormat::Csv as i32,
        data: text.as_bytes().to_vec(),
    }
}

pub(crate) const HEADER: &str =
    "id,name,phone,tier,corps,specialties,skills,division_code,lat,lon,capacity,active";

pub(crate) type TicketClient = pb::ticket_service_client::TicketServiceClient<Channel>;
pub(crate) type ResponderClient = pb::responder_service_client::ResponderServiceClient<Channel>;

/// Issues a responder (or liaison) token through the admin API.
pub(crate) async fn token_for(channel: &Channel, id: &str) -> String {
    let mut roster = RosterClient::new(channel.clone());
    roster
        .issue_responder_token(admin(pb::IssueResponderTokenRequest {
            talent_id: id.into(),
            ttl_seconds: 3600,
        }))
        .await
        .unwrap()
        .into_inner()
        .token
}

/// Imports a roster from CSV rows (header added).
pub(crate) async fn import_rows(channel: &Channel, rows: &str) {
    let mut roster = RosterClient::new(channel.clone());
    roster
        .import_roster(admin(tokio_stream::iter(vec![csv_chunk(&format!(
            "{HEADER}\n{rows}"
        ))])))
        .await
        .unwrap();
}

/// A responder: its token and a client.
pub(crate) struct Responder {
    pub(crate) id: String,
    pub(crate) token: String,
    pub(crate) client: ResponderClient,
}

impl Responder {
    pub(crate) async fn new(channel: &Channel, id: &str) -> Responder {
        let token = token_for(channel, id).await;
        Responder {
            id: id.into(),
            token,
            client: ResponderClient::new(channel.clone()),
        }
    }

    pub(crate) async fn online(&mut self) {
        self.set(pb::Availability::Online).await;
    }

    pub(crate) async fn set(&mut self, a: pb::Availability) {
        self.try_set(a).await.unwrap();
    }

    pub(crate) async fn try_set(&mut self, a: pb::Availability) -> Result<(), tonic::Status> {
        let r = pb::SetAvailabilityRequest {
            availability: a as i32,
        };
        self.client
            .set_availability(with_token(r, &self.token))
            .await
            .map(|_| ())
    }

    pub(crate) async fn watch(&mut self) -> tonic::Streaming<pb::AssignmentEvent> {
        self.client
            .watch_assignments(with_token(pb::WatchAssignmentsRequest {}, &self.token))
            .await
            .unwrap()
            .into_inner()
    }

    pub(crate) async fn accept(&mut self, ticket: &str) -> Result<pb::Ticket, tonic::Status> {
        let r = pb::TicketActionRequest {
            ticket_id: ticket.into(),
        };
        self.client
            .accept_assignment(with_token(r, &self.token))
            .await
            .map(|r| r.into_inner())
    }

    pub(crate) async fn decline(&mut self, ticket: &str) -> Result<pb::Ticket, tonic::Status> {
        let r = pb::DeclineAssignmentRequest {
            ticket_id: ticket.into(),
            reason: "不在家".into(),
        };
        self.client
            .decline_assignment(with_token(r, &self.token))
            .await
            .map(|r| r.into_inner())
    }

    pub(crate) async fn resolve(
        &mut self,
        ticket: &str,
        answer: &str,
    ) -> Result<pb::Ticket, tonic::Status> {
        self.resolve_sharing(ticket, answer, false).await
    }

    /// Resolves, marking the answer shareable or not.
    pub(crate) async fn resolve_sharing(
        &mut self,
        ticket: &str,
        answer: &str,
        shareable: bool,
    ) -> Result<pb::Ticket, tonic::Status> {
        let r = pb::ResolveTicketRequest {
            ticket_id: ticket.into(),
            answer: answer.into(),
            shareable,
        };
        self.client
            .resolve_ticket(with_token(r, &self.token))
            .await
            .map(|r| r.into_inner())
    }

    pub(crate) async fn escalate(&mut self, ticket: &str) -> Result<pb::Ticket, tonic::Status> {
        let r = pb::EscalateTicketRequest {
            ticket_id: ticket.into(),
            reason: "需要上级专家".into(),
        };
        self.client
            .escalate_ticket(with_token(r, &self.token))
            .await
            .map(|r| r.into_inner())
    }
}

/// The next message of a stream, waiting at most five seconds.
pub(crate) async fn next<T>(stream: &mut tonic::Streaming<T>) -> T {
    tokio::time::timeout(std::time::Duration::from_secs(5), stream.message())
        .await
        .expect("a message within 5 s")
        .unwrap()
        .expect("the stream is open")
}

/// Submits `request` naming one uploaded photo.
pub(crate) async fn submit_with_photo(
    channel: &Channel,
    mut request: pb::SubmitProblemRequest,
    photo_id: &str,
) -> pb::Ticket {
    request.photo_ids = vec![photo_id.to_string()];
    TicketClient::new(channel.clone())
        .submit_problem(request)
        .await
        .unwrap()
        .into_inner()
}

pub(crate) fn at_point(lat: f64, lon: f64) -> Option<pb::Location> {
    Some(pb::Location {
        kind: Some(pb::location::Kind::Point(pb::GeoPoint { lat, lon })),
    })
}

pub(crate) fn submit_request(
    text: &str,
    location: Option<pb::Location>,
    key: &str,
) -> pb::SubmitProblemRequest {
    pb::SubmitProblemRequest {
        text: text.into(),
        location,
        contact: "13700000000".into(),
        idempotency_key: key.into(),
        photo_ids: Vec::new(),
    }
}

/// A port nobody listens on now.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the real `xwn serve` binary; its stderr goes to `log` when given.
pub(crate) fn spawn(dir: &Path, port: u16, log: Option<&Path>) -> std::process::Child {
    spawn_on(dir, port, log, "sqlite", "")
}

/// Starts the real `xwn serve` binary on the given ticket store, with
/// `extra` appended to its config file.
pub(crate) fn spawn_on(
    dir: &Path,
    port: u16,
    log: Option<&Path>,
    store: &str,
    extra: &str,
) -> std::process::Child {
    // Tests call fast from one address: no rate limit, no queue deadline.
    let limits = "client_rate_per_sec = 0.0\nmax_queue_ms = 0";
    spawn_with(dir, port, log, store, extra, limits)
}

/// Starts the real `xwn serve` binary on the given ticket store, with
/// `extra` appended to its config file and `limits` as its `[limits]`.
pub(crate) fn spawn_with(
    dir: &Path,
    port: u16,
    log: Option<&Path>,
    store: &str,
    extra: &str,
    limits: &str,
) -> std::process::Child {
    serve_command(&[], dir, port, log, store, extra, limits)
        .spawn()
        .unwrap()
}

/// The command [`spawn_with`] runs, started through `under` (a program
/// and its arguments, such as `prlimit …  --`) when it is not empty.
pub(crate) fn serve_command(
    under: &[&str],
    dir: &Path,
    port: u16,
    log: Option<&Path>,
    store: &str,
    extra: &str,
    limits: &str,
) -> std::process::Command {
    use std::process::{Command, Stdio};
    let stderr = match log {
        Some(path) => Stdio::from(std::fs::File::create(path).unwrap()),
        None => Stdio::null(),
    };
    let config = dir.with_extension("toml");
    std::fs::write(&config, format!("{extra}\n[limits]\n{limits}\n")).unwrap();
    let xwn = env!("CARGO_BIN_EXE_xwn");
    let mut command = match under {
        [] => Command::new(xwn),
        [program, args @ ..] => {
            let mut c = Command::new(program);
            c.args(args).arg(xwn);
            c
        }
    };
    command
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir)
        .arg("--config")
        .arg(&config)
        .env("XWN_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("XWN_STORE", store)
        .env("RUST_LOG", if log.is_some() { "debug" } else { "warn" })
        .stdout(Stdio::null())
        .stderr(stderr);
    command
}

/// Connects once the server answers its health check (30 s at most).
pub(crate) async fn connect(port: u16) -> Channel {
    use std::time::{Duration, Instant};
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let endpoint = Channel::from_shared(format!("http://127.0.0.1:{port}")).unwrap();
        if let Ok(channel) = endpoint.connect().await {
            let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
            let ok = health
                .check(tonic_health::pb::HealthCheckRequest {
                    service: String::new(),
                })
                .await;
            if ok.is_ok() {
                return channel;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the server did not start within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A submitted ticket as its farmer reads it now (with its secret).
pub(crate) async fn fetch(farmer: &mut TicketClient, ticket: &pb::Ticket) -> pb::Ticket {
    let request = pb::GetTicketRequest {
        ticket_id: ticket.id.clone(),
        ticket_secret: ticket.ticket_secret.clone(),
    };
    farmer.get_ticket(request).await.unwrap().into_inner()
}

/// A fresh database on the test PostgreSQL server named by
/// `XWN_TEST_POSTGRES` (a `postgres://…/dbname` URL), or None — with a
/// note on stderr — when none is configured: PostgreSQL tests then skip.
pub(crate) async fn postgres_db(tag: &str) -> Option<String> {
    let Ok(url) = std::env::var("XWN_TEST_POSTGRES") else {
        eprintln!(
            "SKIPPED: no PostgreSQL configured; set XWN_TEST_POSTGRES=postgres://user@host:port/db \
             (.ci/run starts a throw-away cluster and sets it)"
        );
        return None;
    };
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("XWN_TEST_POSTGRES={url} does not answer: {e}"));
    tokio::spawn(connection);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let name = format!("xwn_{tag}_{}_{nanos}", std::process::id());
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let base = url.rsplit_once('/').expect("a URL with a database").0;
    Some(format!("{base}/{name}"))
}
