//! Starts the service: opens the roster (storing the demo roster into an
//! empty data directory), then serves the gRPC services, health and
//! reflection on a bound listener until the shutdown future completes;
//! gRPC-Web, Connect JSON and the pages share the listener (see
//! [`crate::http`]).

pub(crate) mod audit;
pub(crate) mod conns;
pub(crate) mod limits;
pub(crate) mod metrics;
pub(crate) mod statuses;
pub(crate) mod throttle;
pub mod tls;

use std::{future::Future, sync::Arc, time::Duration};

use anyhow::Context;
use tokio::net::TcpListener;
use tonic::server::NamedService;
use tonic::transport::server::TcpIncoming;
use tonic_health::{
    pb::health_server::{Health, HealthServer},
    server::HealthReporter,
    ServingStatus,
};
use tonic_reflection::pb::v1::server_reflection_server::{
    ServerReflection, ServerReflectionServer,
};

use crate::{
    config::Config,
    error::Error,
    grpc::{AdminAuth, Gate, Limits, MatchApi, PhotoApi, ResponderApi, RosterApi, TicketApi},
    knowledge::Library,
    matching::Matcher,
    model::divisions::Divisions,
    notify::{Deliveries, Notifier},
    outbound::s3::ObjectStore,
    pb,
    photos::{files::FileBlobs, Blobs, Photos},
    reading::lexicon::Lexicon,
    roster::admin::RosterAdmin,
    roster::log::Roster,
    roster::store::RosterStore,
    roster::{self, RosterFormat},
    server::audit::{AuditLog, EarlyRefusals},
    store::postgres::{PgPhotos, PgStore},
    store::{sqlite::SqliteStore, KnowledgeStore, Outbox, TicketStore},
    tickets::{DispatchConfig, Dispatcher},
};

/// Largest single gRPC message accepted (a roster chunk, say); whole uploads
/// are bounded by `max_upload_bytes`.
const MAX_MESSAGE_BYTES: usize = 8 << 20;

/// hyper's HTTP/2 connection-level receive window, the least the server
/// offers.
const MIN_CONNECTION_WINDOW: u32 = 1 << 20;

/// The connection-level HTTP/2 receive window for `streams` streams per
/// connection: 512 bytes a stream, at least hyper's 1 MiB. h2 closes a
/// connection (GOAWAY ENHANCE_YOUR_CALM, "too_many_data_frames") once the
/// small DATA frames it holds unread cost more than half this window, each
/// counted as 256 bytes less its payload. A unary call's request is one
/// such frame, unread until the call's task first runs, so a busy server
/// reading a burst of calls on one connection would otherwise close it and
/// every call on it would fail at the transport instead of being answered
/// or refused with RESOURCE_EXHAUSTED.
fn connection_window(streams: u32) -> u32 {
    const MAX_WINDOW: u32 = (1 << 31) - 1;
    streams
        .saturating_mul(512)
        .clamp(MIN_CONNECTION_WINDOW, MAX_WINDOW)
}

/// The demo roster file of `seed`.
fn demo_roster_csv(seed: u64) -> String {
    roster::gen::generate_csv(
        seed,
        roster::gen::VILLAGE_PRACTITIONERS,
        Lexicon::embedded(),
        Divisions::embedded(),
    )
}

/// Opens (or bootstraps) the roster under the configured data directory.
pub(crate) fn open_store(config: &Config) -> anyhow::Result<RosterStore> {
    let seed = config.demo_seed;
    RosterStore::open_with(&config.data_dir, Lexicon::embedded, || {
        tracing::info!(seed, "empty data directory: storing the demo roster");
        let lexicon = Lexicon::embedded();
        let csv = demo_roster_csv(seed);
        roster::parse_roster(
            RosterFormat::Csv,
            csv.as_bytes(),
            lexicon,
            Divisions::embedded(),
        )
        .map_err(|errors| Error::Internal(format!("the demo roster is invalid: {errors:?}")))
    })
    .with_context(|| format!("cannot open the roster in {}", config.data_dir.display()))
}

/// The domain wired up: matching and the roster's admin operations over
/// the roster store, the writer of the roster (local or through the shared
/// log) and the ticket dispatcher over its store.
pub(crate) struct App {
    pub(crate) matcher: Arc<Matcher>,
    pub(crate) admin: Arc<RosterAdmin>,
    pub(crate) roster: Arc<Roster>,
    pub(crate) dispatcher: Arc<Dispatcher>,
    /// The ticket store, probed for readiness.
    pub(crate) tickets: Arc<dyn TicketStore>,
    /// The notification outbox as admins see it.
    pub(crate) deliveries: Deliveries,
    pub(crate) photos: Arc<Photos>,
    /// Solved problems shared with farmers.
    pub(crate) library: Arc<Library>,
}

impl App {
    /// Opens the roster and the ticket store (SQLite in the data directory,
    /// or the PostgreSQL store that replicas share) and starts the
    /// dispatcher.
    pub(crate) async fn open(config: &Config) -> anyhow::Result<App> {
        let store_config = config.clone();
        let store = tokio::task::spawn_blocking(move || open_store(&store_config)).await??;
        let store = Arc::new(store);
        let matcher = Arc::new(Matcher::new(store.clone(), config.matching.clone()));
        let admin = Arc::new(RosterAdmin::new(store));
        let (tickets, outbox, knowledge, roster, blobs): Stores = match config.postgres_url() {
            None => {
                let data_dir = config.data_dir.clone();
                let tickets =
                    tokio::task::spawn_blocking(move || SqliteStore::open(&data_dir)).await??;
                let tickets = Arc::new(tickets);
                let blobs = Arc::new(FileBlobs::open(&config.data_dir)?);
                (
                    tickets.clone(),
                    tickets.clone(),
                    tickets,
                    Roster::local(admin.clone()),
                    blobs,
                )
            }
            Some(url) => {
                let shared = PgStore::connect(url)
                    .await
                    .context("cannot open the shared PostgreSQL store")?;
                let demo = demo_roster_csv(config.demo_seed).into_bytes();
                let bootstrap = (RosterFormat::Csv, demo);
                let roster = Roster::shared(admin.clone(), shared.clone(), bootstrap)
                    .await
                    .context("cannot follow the shared roster log")?;
                let objects = match config.photos.store(true) {
                    "s3" => Some(
                        ObjectStore::open(&config.photos.s3, |name| std::env::var(name).ok())
                            .context("cannot set up the S3 photo store")?,
                    ),
                    _ => None,
                };
                (
                    shared.clone(),
                    shared.clone(),
                    shared.clone(),
                    roster,
                    Arc::new(PgPhotos::new(shared, objects)),
                )
            }
        };
        let photos = Arc::new(Photos::new(
            blobs,
            config.photos.limits(),
            config.photos.unreferenced_ttl_secs,
        ));
        tokio::spawn(sweep_photos(
            Arc::downgrade(&photos),
            tickets.clone(),
            config.photos.unreferenced_ttl_secs,
        ));
        let notifier = Notifier::new(&config.notify)?;
        let dispatch = DispatchConfig::from(config);
        let dispatcher = Dispatcher::start_notifying(
            tickets.clone(),
            matcher.clone(),
            dispatch,
            notifier.clone(),
        )
        .await
        .context("cannot start the ticket dispatcher")?;
        if let Some(notifier) = &notifier {
            notifier.start(outbox.clone());
        }
        // Replicas re-read the entries other replicas changed (periodically).
        let follow = config.postgres_url().is_some();
        let library = Library::open(knowledge, tickets.clone(), matcher.clone(), follow)
            .await
            .context("cannot load the knowledge entries")?;
        Ok(App {
            library,
            matcher,
            admin,
            roster,
            dispatcher,
            tickets,
            deliveries: Deliveries::new(outbox, notifier),
            photos,
        })
    }
}

/// What `App::open` opens for its store: tickets, the outbox, the
/// knowledge entries, the roster
/// and where photos are kept.
type Stores = (
    Arc<dyn TicketStore>,
    Arc<dyn Outbox>,
    Arc<dyn KnowledgeStore>,
    Arc<Roster>,
    Arc<dyn Blobs>,
);

/// Sweeps the uploads no ticket names, a quarter of their TTL apart
/// (between 10 s and an hour), until the photo service is dropped.
async fn sweep_photos(
    photos: std::sync::Weak<Photos>,
    tickets: Arc<dyn TicketStore>,
    ttl_secs: u64,
) {
    let every = Duration::from_secs((ttl_secs / 4).clamp(10, 3600));
    loop {
        tokio::time::sleep(every).await;
        let Some(photos) = photos.upgrade() else {
            return;
        };
        let swept = async {
            let referenced = tickets.photo_ids().await?.into_iter().collect();
            photos.sweep(&referenced).await
        };
        match swept.await {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "unreferenced photos swept"),
            Err(e) => tracing::warn!(cause = %e, "photo sweep failed"),
        }
    }
}

/// Largest message of a whole-file upload (ImportRosterFile): an upload
/// with a little room for its framing.
fn upload_message_bytes(config: &Config) -> usize {
    usize::try_from(config.max_upload_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(1 << 10)
        .max(MAX_MESSAGE_BYTES)
}

/// Largest message of UploadPhoto: a photo with a little room for its
/// framing. Only PhotoService takes it; the other services keep theirs.
fn photo_message_bytes(config: &Config) -> usize {
    config.photos.limits().max_bytes.saturating_add(1 << 10)
}

/// Largest Connect JSON body: the largest message, its bytes in base64.
/// (Each method's own limit is its service's, checked on the gRPC route.)
fn connect_body_bytes(config: &Config) -> usize {
    (upload_message_bytes(config).max(photo_message_bytes(config))).saturating_mul(4) / 3
        + (1 << 10)
}

/// The four services of `xingweinong.v1`, each behind the same [`Gate`].
struct Apis {
    matching: pb::match_service_server::MatchServiceServer<MatchApi>,
    roster: pb::roster_service_server::RosterServiceServer<RosterApi>,
    tickets: pb::ticket_service_server::TicketServiceServer<TicketApi>,
    responders: pb::responder_service_server::ResponderServiceServer<ResponderApi>,
    photos: pb::photo_service_server::PhotoServiceServer<PhotoApi>,
    /// The audit of whole-file imports refused before their handler ran
    /// (by the status layer and the Connect transcoder).
    early: Arc<EarlyRefusals>,
}

impl Apis {
    fn new(config: &Config, app: &App, limits: Arc<Limits>) -> anyhow::Result<Apis> {
        let admin = AdminAuth::new(config.admin_token.clone());
        let gate = Gate::new(limits.clone(), admin.clone(), app.dispatcher.clone());
        let audit = AuditLog::open(&config.data_dir).context("cannot open the audit log")?;
        let audit = Arc::new(audit);
        let early = Arc::new(EarlyRefusals::new(
            admin.clone(),
            audit.clone(),
            limits.clone(),
        ));
        let photos = PhotoApi {
            gate: gate.clone(),
            photos: app.photos.clone(),
            dispatcher: app.dispatcher.clone(),
            audit: audit.clone(),
        };
        let roster = RosterApi {
            gate: gate.clone(),
            admin: app.admin.clone(),
            roster: app.roster.clone(),
            dispatcher: app.dispatcher.clone(),
            deliveries: app.deliveries.clone(),
            library: app.library.clone(),
            audit,
            max_upload_bytes: config.max_upload_bytes,
            public_base_url: config.notify.public_base_url.clone().unwrap_or_default(),
        };
        let upload_message_bytes = upload_message_bytes(config);
        let tickets = TicketApi::new(
            gate.clone(),
            app.matcher.clone(),
            app.dispatcher.clone(),
            app.photos.clone(),
            app.library.clone(),
        );
        let responders = ResponderApi::new(
            gate.clone(),
            app.matcher.clone(),
            app.dispatcher.clone(),
            app.library.clone(),
        );
        Ok(Apis {
            matching: pb::match_service_server::MatchServiceServer::new(MatchApi::new(
                gate,
                app.matcher.clone(),
                app.library.clone(),
            ))
            .max_decoding_message_size(MAX_MESSAGE_BYTES),
            // A whole file in one message (ImportRosterFile) may be as big
            // as an upload, with a little room for its framing.
            roster: pb::roster_service_server::RosterServiceServer::new(roster)
                .max_decoding_message_size(upload_message_bytes),
            tickets: pb::ticket_service_server::TicketServiceServer::new(tickets)
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
            responders: pb::responder_service_server::ResponderServiceServer::new(responders)
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
            // One photo in one message (UploadPhoto): as big as
            // `photos.max_bytes`, with room for its framing.
            photos: pb::photo_service_server::PhotoServiceServer::new(photos)
                .max_decoding_message_size(photo_message_bytes(config)),
            early,
        })
    }
}

/// The health service, reporting the server and its four services
/// serving (then kept by [`readiness`]), and server reflection.
async fn health_and_reflection() -> anyhow::Result<(
    HealthReporter,
    HealthServer<impl Health>,
    ServerReflectionServer<impl ServerReflection>,
)> {
    let (reporter, health) = tonic_health::server::health_reporter();
    set_health(&reporter, ServingStatus::Serving).await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .context("cannot build the reflection matcher")?;
    Ok((reporter, health, reflection))
}

/// The names health reports: the whole server (`""`) and each service.
const HEALTH_NAMES: [&str; 6] = [
    "",
    <pb::match_service_server::MatchServiceServer<MatchApi> as NamedService>::NAME,
    <pb::roster_service_server::RosterServiceServer<RosterApi> as NamedService>::NAME,
    <pb::ticket_service_server::TicketServiceServer<TicketApi> as NamedService>::NAME,
    <pb::responder_service_server::ResponderServiceServer<ResponderApi> as NamedService>::NAME,
    <pb::photo_service_server::PhotoServiceServer<PhotoApi> as NamedService>::NAME,
];

async fn set_health(reporter: &HealthReporter, status: ServingStatus) {
    for name in HEALTH_NAMES {
        reporter.set_service_status(name, status).await;
    }
}

/// How often readiness is probed.
const READINESS_EVERY: Duration = Duration::from_secs(2);
/// How long the store may take to answer a probe.
const PING_TIMEOUT: Duration = Duration::from_secs(1);

/// Why the server cannot serve now (None: it can): no roster loaded, or
/// the ticket store not answering.
async fn not_ready(matcher: &Matcher, tickets: &dyn TicketStore) -> Option<String> {
    if matcher.snapshot().version() == 0 {
        return Some("no roster is loaded".into());
    }
    match tokio::time::timeout(PING_TIMEOUT, tickets.ping()).await {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(format!("the ticket store is unreachable: {e}")),
        Err(_) => Some(format!(
            "the ticket store did not answer within {} ms",
            PING_TIMEOUT.as_millis()
        )),
    }
}

/// Keeps health's readiness: every [`READINESS_EVERY`], NOT_SERVING while
/// the server is [`not_ready`], SERVING again as soon as it is; each
/// change is logged.
async fn readiness(reporter: HealthReporter, matcher: Arc<Matcher>, tickets: Arc<dyn TicketStore>) {
    let mut serving = true;
    loop {
        tokio::time::sleep(READINESS_EVERY).await;
        let verdict = not_ready(&matcher, tickets.as_ref()).await;
        match (serving, verdict) {
            (true, Some(reason)) => {
                tracing::warn!(%reason, "not ready: health says NOT_SERVING");
                set_health(&reporter, ServingStatus::NotServing).await;
                serving = false;
            }
            (false, None) => {
                tracing::info!("ready again: health says SERVING");
                set_health(&reporter, ServingStatus::Serving).await;
                serving = true;
            }
            _ => {}
        }
    }
}

/// Aborts its task when dropped: background work that ends with `serve`.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Serves until `shutdown` completes, then drains in-flight calls.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    conns::raise_open_files_limit(config.limits.max_connections);
    // Certificate trouble stops start-up before anything is opened.
    let tls = config.tls.as_ref().map(tls::acceptor).transpose()?;
    let app = App::open(&config).await?;
    if config.admin_token.is_none() {
        tracing::warn!(
            "admin calls are refused: no admin token is configured; set XWN_ADMIN_TOKEN (16+ characters) or admin_token in the config file"
        );
    }
    let (reporter, health, reflection) = health_and_reflection().await?;
    let limits = Arc::new(Limits::new(&config.limits)?);
    let apis = Apis::new(&config, &app, limits.clone())?;
    let metrics_listener = match config.metrics_listen {
        Some(address) => Some(
            TcpListener::bind(address)
                .await
                .with_context(|| format!("cannot listen on {address} for metrics"))?,
        ),
        None => None,
    };
    let metrics_address = (metrics_listener.as_ref())
        .map(TcpListener::local_addr)
        .transpose()?;
    // Both end with `serve`.
    let _metrics = metrics_listener.map(|l| AbortOnDrop(tokio::spawn(metrics::serve_metrics(l))));
    let _readiness = AbortOnDrop(tokio::spawn(readiness(
        reporter,
        app.matcher.clone(),
        app.tickets.clone(),
    )));
    let snapshot = app.matcher.snapshot();
    tracing::info!(
        address = %listener.local_addr()?,
        data_dir = %config.data_dir.display(),
        roster_version = snapshot.version(),
        tls = config.tls.is_some(),
        mutual_tls = config.tls.as_ref().is_some_and(|t| t.client_ca_path.is_some()),
        talents = snapshot.len(),
        metrics = %metrics_address.map_or("off".to_string(), |a| format!("http://{a}/metrics")),
        startup_ms = started.elapsed().as_millis() as u64,
        "serving"
    );
    drop(snapshot);
    // Without TCP_NODELAY, replies of more than one frame wait ~40 ms for
    // the client's delayed ACK (Nagle).
    let incoming = TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(Duration::from_secs(60)));
    let keepalive = Duration::from_secs(config.limits.keepalive_secs);
    let dispatcher = app.dispatcher;
    let router = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(keepalive))
        .http2_keepalive_timeout(Some(keepalive))
        .max_concurrent_streams(Some(config.limits.max_streams_per_connection))
        .initial_connection_window_size(connection_window(config.limits.max_streams_per_connection))
        // No `.timeout()`: tonic's answers CANCELLED; the status layer
        // bounds calls itself and answers DEADLINE_EXCEEDED.
        .accept_http1(true)
        .trace_fn(|request| {
            // `caller` (a key's name or an address, never a key) is
            // recorded by the admission layer, `ticket_id` by the ticket
            // calls' handlers.
            let path = request.uri().path();
            tracing::info_span!(
                "grpc",
                method = metrics::method_name(path),
                path = %path,
                caller = tracing::field::Empty,
                ticket_id = tracing::field::Empty,
            )
        })
        // Outermost first: CORS, then gRPC-Web, Connect and pages, then
        // the count of calls by method and code (gRPC, gRPC-Web and
        // Connect alike, refusals included), then the admission limits that every call (Connect ones too) meets,
        // then the request timeout and the transport's statuses made right
        // (under admission, so a call's deadline counts from its arrival).
        .layer(crate::http::cors(&config.http))
        .layer(crate::http::HttpLayer::new(
            connect_body_bytes(&config),
            limits.door(),
            apis.early.clone(),
        ))
        .layer(metrics::CallsLayer)
        .layer(limits.admission_layer())
        .layer(limits.status_layer()?.with_early(apis.early.clone()))
        .add_service(health)
        .add_service(reflection)
        .add_service(apis.matching)
        .add_service(apis.roster)
        .add_service(apis.tickets)
        .add_service(apis.responders)
        .add_service(apis.photos);
    let shutdown = async move {
        shutdown.await;
        // Live streams never end by themselves: end them, so the drain can.
        dispatcher.close_streams().await;
    };
    // With TLS, the handshakes are ours: tonic's own acceptor offers only
    // h2 in ALPN, and HTTP/1.1-only clients need `http/1.1`.
    // Every connection passes the connection limits and must speak within
    // `limits.first_bytes_timeout_ms` (for TLS, after its handshake).
    let conns = Arc::new(conns::ConnLimits::new(&config.limits));
    match tls {
        Some(acceptor) => {
            let prepare = conns::prepare(move |tcp| tls::handshake(acceptor.clone(), tcp));
            let incoming = conns::Connections::new(incoming, conns, prepare);
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
        }
        None => {
            let prepare = conns::prepare(|tcp| std::future::ready(Ok(tcp)));
            let incoming = conns::Connections::new(incoming, conns, prepare);
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
        }
    }
    .context("the gRPC server failed")?;
    tracing::info!("stopped");
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown requested: draining");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_window_holds_half_a_kib_per_stream() {
        assert_eq!(connection_window(100), MIN_CONNECTION_WINDOW);
        assert_eq!(connection_window(2048), MIN_CONNECTION_WINDOW);
        assert_eq!(connection_window(4096), 2 << 20);
        assert_eq!(connection_window(u32::MAX), (1 << 31) - 1);
    }
}
