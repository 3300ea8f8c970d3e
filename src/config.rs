//! Server configuration: defaults, an optional TOML file, then environment
//! variables and flags (later ones win).

use std::{net::SocketAddr, path::PathBuf};

use anyhow::Context;
use serde::Deserialize;

/// Matching settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MatchConfig {
    /// Candidates returned when a request asks for none in particular.
    pub(crate) default_limit: u32,
    /// Most candidates one request may ask for.
    pub(crate) max_limit: u32,
    /// Distance at which BEST_MATCH's gaussian decay halves the score.
    pub(crate) best_match_scale_km: f64,
    /// When nobody with the subject is within this distance, specialists of
    /// its parent subject (羊 for 奶山羊) qualify too.
    pub(crate) parent_radius_km: f64,
}

impl Default for MatchConfig {
    fn default() -> MatchConfig {
        MatchConfig {
            default_limit: 5,
            max_limit: 50,
            best_match_scale_km: 30.0,
            parent_radius_km: 30.0,
        }
    }
}

/// Ticket routing settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TicketConfig {
    /// How long an offer waits for acceptance before it goes to the next
    /// responder, in milliseconds.
    pub offer_timeout_ms: u64,
    /// Offers at one tier without acceptance before the ticket moves a tier up.
    pub escalate_after: u32,
    /// Tickets that may wait QUEUED (nobody free) at once; a submission that
    /// would be queued past it is refused with RESOURCE_EXHAUSTED. One that
    /// is offered at once or is UNROUTABLE is not counted. With replicas,
    /// each counts the queued tickets it knows of (its view of the shared
    /// store, caught up before each submission), not a global count.
    ///
    /// 10,000 (README "Operating it"): the outbreak day there peaks at ~4.6
    /// questions/s, so 10,000 waiting is over half an hour of that peak
    /// with not one question answered, nearly two for each of the ~5,900
    /// responders on top of what they already hold: a farmer behind that
    /// many waits hours and is better told at once to call. It also keeps
    /// the queue a quarter of the 40,000 at which it cost seconds per drain
    /// (issue 13), about 11 MB.
    pub max_queued: usize,
    /// How long an offer made through a notification (to a responder who
    /// is not ONLINE on the console, with a webhook configured) waits for
    /// acceptance, in milliseconds: 30 minutes, time to read a text
    /// message in the field and tap its link.
    pub notified_offer_timeout_ms: u64,
}

impl Default for TicketConfig {
    fn default() -> TicketConfig {
        TicketConfig {
            offer_timeout_ms: 10 * 60 * 1000,
            escalate_after: 3,
            max_queued: 10_000,
            notified_offer_timeout_ms: 30 * 60 * 1000,
        }
    }
}

/// The kinds of notification a webhook can ask for (`events`), as they
/// appear in the `type` field of each delivery.
pub const NOTIFICATION_TYPES: [&str; 6] = [
    "ticket.offered",
    "ticket.accepted",
    "ticket.resolved",
    "ticket.escalated",
    "ticket.queued",
    "ticket.unroutable",
];

/// Notifications handed to the platform's messaging gateway (README
/// "Notifications").
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// Where people reach this server's pages (`https://host[:port]`, no
    /// trailing slash): an offer's `action_url` starts with it. Required
    /// when a webhook is configured.
    pub public_base_url: Option<String>,
    /// How long an undelivered notification is retried before it is given
    /// up, in seconds (24 hours).
    pub retry_for_secs: u64,
    /// How long one attempt waits for the endpoint's answer, in
    /// milliseconds (10 s); no answer by then is a failure, retried.
    pub timeout_ms: u64,
    /// The delay before the first retry, in milliseconds (1 s); it doubles
    /// at each failure, up to an hour, with jitter.
    pub retry_base_ms: u64,
    /// How long a replica holds a notification it is sending, in
    /// milliseconds (60 s): another replica takes it over only after that,
    /// so it must outlast `timeout_ms` (at least twice it).
    pub lease_ms: u64,
    /// How long a delivered notification is kept (for `ListDeliveries` and
    /// the counts), in seconds (7 days); older ones are deleted by the
    /// delivery worker, a small batch at a time. Pending and failed ones
    /// are kept until they are delivered.
    pub keep_delivered_secs: u64,
    /// A PEM file of CA certificates trusted for `https://` webhooks beside
    /// the system's roots: a gateway behind a private CA.
    pub ca_path: Option<PathBuf>,
    /// The endpoints every notification is POSTed to.
    pub webhooks: Vec<WebhookConfig>,
}

impl Default for NotifyConfig {
    fn default() -> NotifyConfig {
        NotifyConfig {
            public_base_url: None,
            retry_for_secs: 24 * 60 * 60,
            timeout_ms: 10_000,
            retry_base_ms: 1_000,
            lease_ms: 60_000,
            keep_delivered_secs: 7 * 24 * 60 * 60,
            ca_path: None,
            webhooks: Vec::new(),
        }
    }
}

/// One webhook endpoint (`[[notify.webhooks]]`).
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// A short name for logs, metrics and `ListDeliveries`; unique.
    pub name: String,
    /// The `http://` or `https://` URL the notifications are POSTed to.
    pub url: String,
    /// The signing secret, `whsec_` and base64 (Standard Webhooks).
    pub secret: String,
    /// The notification types it wants ([`NOTIFICATION_TYPES`]); empty:
    /// all of them.
    #[serde(default)]
    pub events: Vec<String>,
}

// The secret stays out of logs and error messages.
impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

impl WebhookConfig {
    /// The key the signatures are made with: the secret's bytes after
    /// `whsec_`.
    pub fn key(&self) -> anyhow::Result<Vec<u8>> {
        use base64::Engine as _;
        let encoded = self.secret.strip_prefix("whsec_").ok_or_else(|| {
            anyhow::anyhow!(
                "notify.webhooks {:?}: the secret must start with \"whsec_\"",
                self.name
            )
        })?;
        let key = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| {
                anyhow::anyhow!(
                    "notify.webhooks {:?}: the secret after \"whsec_\" is not base64",
                    self.name
                )
            })?;
        anyhow::ensure!(
            (24..=64).contains(&key.len()),
            "notify.webhooks {:?}: the secret must hold 24 to 64 bytes, not {}",
            self.name,
            key.len()
        );
        Ok(key)
    }

    /// Whether it wants notifications of this type.
    pub fn wants(&self, kind: &str) -> bool {
        self.events.is_empty() || self.events.iter().any(|e| e == kind)
    }
}

impl NotifyConfig {
    /// Whether any webhook is configured: offers may then reach responders
    /// who are not ONLINE.
    pub fn enabled(&self) -> bool {
        !self.webhooks.is_empty()
    }

    fn validate(&self) -> anyhow::Result<()> {
        let mut names = std::collections::HashSet::new();
        for hook in &self.webhooks {
            anyhow::ensure!(
                !hook.name.is_empty() && hook.name.len() <= 64 && names.insert(&hook.name),
                "notify.webhooks: each needs a unique name of 1 to 64 characters ({:?})",
                hook.name
            );
            let scheme = hook.url.split_once("://").map(|(s, _)| s);
            anyhow::ensure!(
                matches!(scheme, Some("http" | "https"))
                    && hook.url.is_ascii()
                    && !hook.url.contains(char::is_whitespace),
                "notify.webhooks {:?}: url {:?} is not an http:// or https:// URL",
                hook.name,
                hook.url
            );
            hook.key()?;
            for kind in &hook.events {
                anyhow::ensure!(
                    NOTIFICATION_TYPES.contains(&kind.as_str()),
                    "notify.webhooks {:?}: unknown event {kind:?}; known: {}",
                    hook.name,
                    NOTIFICATION_TYPES.join(", ")
                );
            }
        }
        if self.enabled() {
            let base = self.public_base_url.as_deref().unwrap_or("");
            let scheme = base.split_once("://").map(|(s, _)| s);
            anyhow::ensure!(
                matches!(scheme, Some("http" | "https"))
                    && !base.ends_with('/')
                    && base.is_ascii()
                    && !base.contains(char::is_whitespace),
                "notify.public_base_url must be set, like \"https://xwn.example.org\" (no trailing slash), when a webhook is configured"
            );
        }
        anyhow::ensure!(
            self.retry_for_secs > 0,
            "notify.retry_for_secs must be above zero"
        );
        anyhow::ensure!(
            self.keep_delivered_secs > 0,
            "notify.keep_delivered_secs must be above zero"
        );
        anyhow::ensure!(
            self.timeout_ms > 0 && self.retry_base_ms > 0,
            "notify.timeout_ms and notify.retry_base_ms must be above zero"
        );
        anyhow::ensure!(
            self.lease_ms >= 2 * self.timeout_ms,
            "notify.lease_ms ({}) must be at least twice notify.timeout_ms ({}): a replica \
             must finish an attempt before another may take the notification over",
            self.lease_ms,
            self.timeout_ms
        );
        Ok(())
    }
}

/// Limits that keep the server responsive under overload.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitConfig {
    /// Calls in flight at once for the whole server, counted from their
    /// arrival (before they wait for a worker); past it, RESOURCE_EXHAUSTED.
    pub max_in_flight: usize,
    /// Farmer-facing calls per second from one client address; 0 turns the
    /// limit off.
    pub client_rate_per_sec: f64,
    /// How many such calls a client may make at once before the rate applies.
    pub client_burst: f64,
    /// Longest a call may run before its reply starts (an upload: until it
    /// is read whole), in milliseconds; past it, DEADLINE_EXCEEDED. 0 turns
    /// the bound off.
    pub request_timeout_ms: u64,
    /// HTTP/2 keep-alive ping interval, in seconds: dead peers and idle
    /// streams whose peer is gone are reaped after one more interval.
    pub(crate) keepalive_secs: u64,
    /// SubmitProblem calls in flight at once (each waits for the
    /// dispatcher's one lock and a synchronous commit); past it,
    /// RESOURCE_EXHAUSTED at once instead of a queue that grows with the
    /// load. 0 leaves only `max_in_flight`.
    pub max_submits_in_flight: usize,
    /// HTTP/2 streams one connection may have open at once (its peer must
    /// wait for one to end before opening more), so a client that opens
    /// streams faster than they are answered cannot grow the server's
    /// memory; long-lived watch streams count too. As many as
    /// `max_in_flight` by default, so a front end's connection meets the
    /// admission limits (and gets RESOURCE_EXHAUSTED past them) instead of
    /// queueing its calls unseen behind this bound.
    pub max_streams_per_connection: u32,
    /// Longest a call may wait, from its arrival to the start of its work,
    /// in milliseconds; a call that waited longer (the server is behind)
    /// gets RESOURCE_EXHAUSTED without doing the work, so the backlog
    /// drains. 0 turns it off.
    pub max_queue_ms: u64,
    /// Front ends by API key (`x-api-key`): each key has its own rate
    /// instead of the per-address one, since a front end calls for many
    /// farmers from one address.
    pub api_keys: Vec<ApiKeyConfig>,
    /// Proxies (IP addresses or CIDR blocks) whose `Forwarded` and
    /// `X-Forwarded-For` headers are believed, so the per-address limit
    /// counts the real client; from any other peer they are ignored.
    pub trusted_proxies: Vec<String>,
    /// Longest a new connection may stay silent, in milliseconds: one that
    /// has not sent its first bytes (the HTTP/2 preface or an HTTP/1.1
    /// request line; over TLS, after the handshake) by then is closed.
    pub first_bytes_timeout_ms: u64,
    /// Connections open at once for the whole server; past it, a new one
    /// is closed at once.
    pub max_connections: usize,
    /// Connections open at once from one client address (IPv6 by its
    /// /64); past it, a new one is closed at once. Addresses in
    /// `trusted_proxies` are exempt (many clients come through them) and
    /// count only against `max_connections`.
    pub max_connections_per_address: usize,
    /// Calls in flight at once from one client address (IPv6 by its /64;
    /// behind a trusted proxy, the forwarded client's address), counted
    /// from arrival like `max_in_flight` and well below it, so one client
    /// cannot hold the whole server's places; past it, RESOURCE_EXHAUSTED.
    /// Callers with an API key are exempt (a front end is one address for
    /// many farmers; its own rate bounds it).
    pub max_in_flight_per_address: usize,
    /// Longest a unary call's request may take to arrive whole (its one
    /// message complete), in milliseconds, counted from its arrival; a
    /// call whose body is still incomplete then is refused with
    /// DEADLINE_EXCEEDED and its place freed. Client streams (ImportRoster)
    /// and whole-file uploads (`RosterFile` messages, up to
    /// `max_upload_bytes`) keep only `request_timeout_ms`. 0 turns it off.
    pub body_timeout_ms: u64,
}

/// One front end's API key.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// What logs and the audit log call the front end.
    pub name: String,
    /// The key itself (16+ visible ASCII characters); the server keeps only
    /// its SHA-256.
    pub key: String,
    /// Farmer-facing calls per second for this key.
    #[serde(default = "ApiKeyConfig::default_rate")]
    pub rate_per_sec: f64,
    /// Calls at once before the rate applies; the rate (one second's
    /// worth) when not given.
    #[serde(default)]
    pub burst: Option<f64>,
}

impl ApiKeyConfig {
    /// What one front end may send at Weinan's peak (README, "Who is
    /// calling").
    pub const DEFAULT_RATE: f64 = 1000.0;

    fn default_rate() -> f64 {
        ApiKeyConfig::DEFAULT_RATE
    }
}

/// Never shows the key.
impl std::fmt::Debug for ApiKeyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyConfig")
            .field("name", &self.name)
            .field("key", &"<redacted>")
            .field("rate_per_sec", &self.rate_per_sec)
            .field("burst", &self.burst)
            .finish()
    }
}

impl Default for LimitConfig {
    fn default() -> LimitConfig {
        LimitConfig {
            max_in_flight: 1024,
            client_rate_per_sec: 100.0,
            client_burst: 200.0,
            request_timeout_ms: 10_000,
            keepalive_secs: 30,
            max_submits_in_flight: 64,
            max_streams_per_connection: 1024,
            max_queue_ms: 250,
            api_keys: Vec::new(),
            trusted_proxies: Vec::new(),
            first_bytes_timeout_ms: 5_000,
            max_connections: 10_000,
            max_connections_per_address: 256,
            max_in_flight_per_address: 64,
            body_timeout_ms: 5_000,
        }
    }
}

/// TLS for the listener (rustls). Files are PEM.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The server's certificate chain, leaf first.
    pub cert_path: PathBuf,
    /// The certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub key_path: PathBuf,
    /// With it, clients must present a certificate this CA signed (mutual TLS).
    #[serde(default)]
    pub client_ca_path: Option<PathBuf>,
}

/// What browsers get beside gRPC on the same listener.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Origins (`https://host[:port]`) whose pages may call the API from a
    /// browser (CORS); empty: only the pages this server serves.
    pub cors_origins: Vec<String>,
}

impl HttpConfig {
    fn validate(&self) -> anyhow::Result<()> {
        for origin in &self.cors_origins {
            let scheme = origin.split_once("://").map(|(s, _)| s);
            anyhow::ensure!(
                matches!(scheme, Some("http" | "https"))
                    && !origin.ends_with('/')
                    && origin.is_ascii()
                    && !origin.contains(char::is_whitespace),
                "http.cors_origins: {origin:?} is not an origin like \"https://example.org\""
            );
        }
        Ok(())
    }
}

/// Photos of a problem (README "Photos").
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PhotoConfig {
    /// Largest upload, in bytes, as sent (before re-encoding).
    pub max_bytes: u64,
    /// Most pixels (width × height) of an upload, read from its header
    /// before it is decoded.
    pub max_pixels: u64,
    /// How long an upload that no report names is kept, in seconds.
    pub unreferenced_ttl_secs: u64,
    /// Where the bytes are kept: `files` (in the data directory; the
    /// embedded store's), `postgres` (in PostgreSQL; a shared store's) or
    /// `s3` (an S3-compatible object store, with PostgreSQL); empty: the
    /// store's own.
    pub store: String,
    /// The object store of `store = "s3"`.
    pub s3: S3Config,
}

/// An S3-compatible object store for photo bytes (README "Photos").
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    /// `https://host[:port]` (or `http://` on a trusted network); objects
    /// are addressed path-style, `<endpoint>/<bucket>/<prefix><name>`.
    pub endpoint: String,
    pub bucket: String,
    /// The region requests are signed for.
    pub region: String,
    /// Put before every object's name.
    pub prefix: String,
    /// Else `XWN_S3_ACCESS_KEY_ID` (or `AWS_ACCESS_KEY_ID`) is read.
    pub access_key_id: Option<String>,
    /// Else `XWN_S3_SECRET_ACCESS_KEY` (or `AWS_SECRET_ACCESS_KEY`).
    pub secret_access_key: Option<String>,
    /// CA certificates trusted for an `https://` endpoint beside the
    /// system's (PEM).
    pub ca_path: Option<PathBuf>,
}

impl Default for S3Config {
    fn default() -> S3Config {
        S3Config {
            endpoint: String::new(),
            bucket: String::new(),
            region: "us-east-1".into(),
            prefix: "photos/".into(),
            access_key_id: None,
            secret_access_key: None,
            ca_path: None,
        }
    }
}

impl Default for PhotoConfig {
    fn default() -> PhotoConfig {
        let limits = crate::photos::PhotoLimits::default();
        PhotoConfig {
            max_bytes: limits.max_bytes as u64,
            max_pixels: limits.max_pixels,
            unreferenced_ttl_secs: 24 * 3600,
            store: String::new(),
            s3: S3Config::default(),
        }
    }
}

impl PhotoConfig {
    pub(crate) fn limits(&self) -> crate::photos::PhotoLimits {
        crate::photos::PhotoLimits {
            max_bytes: usize::try_from(self.max_bytes).unwrap_or(usize::MAX),
            max_pixels: self.max_pixels,
        }
    }

    /// Where photo bytes go with a shared (`shared`) or embedded store:
    /// `files`, `postgres` or `s3`.
    pub(crate) fn store(&self, shared: bool) -> &str {
        match self.store.as_str() {
            "" if shared => "postgres",
            "" => "files",
            store => store,
        }
    }

    fn validate(&self, shared: bool) -> anyhow::Result<()> {
        match (self.store(shared), shared) {
            ("files", false) | ("postgres", true) => {}
            ("s3", true) => {
                let s3 = &self.s3;
                anyhow::ensure!(
                    s3.endpoint.starts_with("http://") || s3.endpoint.starts_with("https://"),
                    "photos.s3.endpoint must be an http:// or https:// URL, not {:?}",
                    s3.endpoint
                );
                anyhow::ensure!(
                    !s3.bucket.is_empty() && !s3.bucket.contains('/'),
                    "photos.s3.bucket must name a bucket, not {:?}",
                    s3.bucket
                );
                anyhow::ensure!(!s3.region.is_empty(), "photos.s3.region is empty");
            }
            ("files", true) => anyhow::bail!(
                "photos.store = \"files\" keeps photos on one machine; replicas on PostgreSQL \
                 need \"postgres\" or \"s3\""
            ),
            ("postgres" | "s3", false) => anyhow::bail!(
                "photos.store = {:?} needs store = a postgres:// URL",
                self.store
            ),
            (other, _) => anyhow::bail!(
                "photos.store must be \"files\", \"postgres\" or \"s3\", not {other:?}"
            ),
        }
        anyhow::ensure!(
            (1..=(256 << 20)).contains(&self.max_bytes),
            "photos.max_bytes must be between 1 and 268435456 (256 MiB), not {}",
            self.max_bytes
        );
        anyhow::ensure!(
            (1..=1_000_000_000).contains(&self.max_pixels),
            "photos.max_pixels must be between 1 and 1000000000, not {}",
            self.max_pixels
        );
        Ok(())
    }
}

/// Everything `xwn serve` needs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub listen: SocketAddr,
    /// Holds the roster index and, with the embedded store, the tickets;
    /// created when missing.
    pub data_dir: PathBuf,
    /// Where tickets, presence and the roster log live: `sqlite` (the
    /// embedded default, in `data_dir`) or a `postgres://` URL shared by
    /// every replica.
    pub store: String,
    /// Bearer token for admin calls; with none, admin calls are refused.
    pub admin_token: Option<String>,
    /// Largest roster upload accepted, in bytes.
    pub max_upload_bytes: u64,
    /// Seed of the demo roster stored when the data directory is empty.
    pub demo_seed: u64,
    pub matching: MatchConfig,
    pub tickets: TicketConfig,
    pub limits: LimitConfig,
    /// Serve TLS instead of plaintext HTTP/2 when present.
    pub tls: Option<TlsConfig>,
    /// Browsers: gRPC-Web, Connect JSON and the pages.
    pub http: HttpConfig,
    /// Webhooks that carry notifications to the messaging gateway.
    pub notify: NotifyConfig,
    /// Photos of a problem: upload limits and how long an upload no
    /// report names is kept.
    pub photos: PhotoConfig,
    /// Where `GET /metrics` (Prometheus) is served, apart from the public
    /// listener; none: no metrics listener.
    pub metrics_listen: Option<SocketAddr>,
    pub log: LogConfig,
}

/// How log lines are written (to stderr).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
}

/// `text` for people, `json` (one object a line) for log shippers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: "127.0.0.1:50051".parse().expect("valid address"),
            data_dir: PathBuf::from("./data"),
            store: "sqlite".to_string(),
            admin_token: None,
            max_upload_bytes: 64 << 20,
            demo_seed: crate::roster::gen::DEMO_SEED,
            matching: MatchConfig::default(),
            tickets: TicketConfig::default(),
            limits: LimitConfig::default(),
            tls: None,
            http: HttpConfig::default(),
            notify: NotifyConfig::default(),
            photos: PhotoConfig::default(),
            metrics_listen: None,
            log: LogConfig::default(),
        }
    }
}

impl Config {
    /// Reads a TOML file; unknown keys are errors, so typos do not pass.
    pub(crate) fn from_file(path: &std::path::Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        Config::from_toml(&text).with_context(|| format!("bad config file {}", path.display()))
    }

    pub(crate) fn from_toml(text: &str) -> anyhow::Result<Config> {
        let config: Config = toml::from_str(text)?;
        config.validate()?;
        Ok(config)
    }

    /// The PostgreSQL URL, when the store is shared.
    pub(crate) fn postgres_url(&self) -> Option<&str> {
        let s = self.store.trim();
        (s.starts_with("postgres://") || s.starts_with("postgresql://")).then_some(s)
    }

    pub(crate) fn validate(&self) -> anyhow::Result<()> {
        self.photos.validate(self.postgres_url().is_some())?;
        anyhow::ensure!(
            self.max_upload_bytes > 0,
            "max_upload_bytes must be above zero"
        );
        anyhow::ensure!(
            self.store == "sqlite" || self.postgres_url().is_some(),
            "store must be \"sqlite\" or a postgres:// URL, not {:?}",
            self.store
        );
        let m = &self.matching;
        anyhow::ensure!(
            m.default_limit >= 1 && m.default_limit <= m.max_limit,
            "matching.default_limit must be between 1 and matching.max_limit"
        );
        anyhow::ensure!(
            m.best_match_scale_km > 0.0,
            "matching.best_match_scale_km must be above zero"
        );
        anyhow::ensure!(
            m.parent_radius_km >= 0.0,
            "matching.parent_radius_km must not be negative"
        );
        anyhow::ensure!(
            self.tickets.max_queued > 0,
            "tickets.max_queued must be above zero"
        );
        anyhow::ensure!(
            self.limits.max_in_flight > 0,
            "limits.max_in_flight must be above zero"
        );
        anyhow::ensure!(
            self.limits.max_streams_per_connection > 0,
            "limits.max_streams_per_connection must be above zero"
        );
        let l = &self.limits;
        anyhow::ensure!(
            (1..=600_000).contains(&l.first_bytes_timeout_ms),
            "limits.first_bytes_timeout_ms must be between 1 and 600000 (10 minutes), not {}",
            l.first_bytes_timeout_ms
        );
        anyhow::ensure!(
            l.max_connections > 0,
            "limits.max_connections must be above zero"
        );
        anyhow::ensure!(
            l.max_connections_per_address > 0
                && l.max_connections_per_address <= l.max_connections,
            "limits.max_connections_per_address must be between 1 and limits.max_connections ({}), not {}",
            l.max_connections,
            l.max_connections_per_address
        );
        anyhow::ensure!(
            l.max_in_flight_per_address > 0 && l.max_in_flight_per_address <= l.max_in_flight,
            "limits.max_in_flight_per_address must be between 1 and limits.max_in_flight ({}), not {}",
            l.max_in_flight,
            l.max_in_flight_per_address
        );
        anyhow::ensure!(
            l.body_timeout_ms <= 600_000,
            "limits.body_timeout_ms must be at most 600000 (10 minutes; 0 turns it off), not {}",
            l.body_timeout_ms
        );
        crate::server::limits::caller::Callers::new(&self.limits)?;
        self.http.validate()?;
        self.notify.validate()?;
        anyhow::ensure!(
            self.tickets.notified_offer_timeout_ms > 0,
            "tickets.notified_offer_timeout_ms must be above zero"
        );
        if let Some(token) = &self.admin_token {
            anyhow::ensure!(
                token.len() >= 16,
                "the admin token must be at least 16 characters"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_toml_and_rejects_unknown_keys() {
        let c = Config::from_toml("listen = \"0.0.0.0:9000\"\n[matching]\ndefault_limit = 3\n")
            .unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.matching.default_limit, 3);
        assert_eq!(c.matching.max_limit, 50);
        assert!(Config::from_toml("listn = \"0.0.0.0:9000\"\n").is_err());
        assert!(Config::from_toml("admin_token = \"short\"\n").is_err());
    }

    #[test]
    fn metrics_and_log_format_are_read() {
        let c = Config::default();
        assert_eq!((c.metrics_listen, c.log.format), (None, LogFormat::Text));
        let c =
            Config::from_toml("metrics_listen = \"127.0.0.1:9464\"\n[log]\nformat = \"json\"\n")
                .unwrap();
        assert_eq!(c.metrics_listen, Some("127.0.0.1:9464".parse().unwrap()));
        assert_eq!(c.log.format, LogFormat::Json);
        assert!(Config::from_toml("[log]\nformat = \"xml\"\n").is_err());
        assert!(Config::from_toml("[log]\nformt = \"json\"\n").is_err());
    }

    #[test]
    fn webhooks_are_read_and_checked() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let c = Config::from_toml(&format!(
            "[notify]\npublic_base_url = \"https://xwn.example.org\"\n\
             [[notify.webhooks]]\nname = \"sms\"\nurl = \"https://gw.example.org/hook\"\n\
             secret = \"{secret}\"\nevents = [\"ticket.offered\"]\n"
        ))
        .unwrap();
        let hook = &c.notify.webhooks[0];
        assert!(c.notify.enabled());
        assert!(hook.wants("ticket.offered") && !hook.wants("ticket.resolved"));
        assert_eq!(hook.key().unwrap().len(), 24);
        assert!(!format!("{c:?}").contains(secret));
        assert_eq!(c.tickets.notified_offer_timeout_ms, 30 * 60 * 1000);
        let bad = |text: &str| Config::from_toml(text).unwrap_err().to_string();
        let hook = |extra: &str| {
            format!("[[notify.webhooks]]\nname = \"a\"\nurl = \"https://gw/h\"\nsecret = \"{secret}\"\n{extra}")
        };
        assert!(bad(&hook("")).contains("public_base_url"));
        let base = "[notify]\npublic_base_url = \"https://x.org\"\n";
        assert!(
            bad(&format!("{base}{}", hook("events = [\"ticket.eaten\"]"))).contains("ticket.eaten")
        );
        let plain = hook("").replace(secret, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        assert!(bad(&format!("{base}{plain}")).contains("whsec_"));
        assert!(!Config::default().notify.enabled());
    }

    #[test]
    fn api_keys_and_trusted_proxies_are_read_and_checked() {
        let c = Config::from_toml(
            "[limits]\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\"]\n\
             [[limits.api_keys]]\nname = \"web\"\nkey = \"0123456789abcdef-web\"\n\
             [[limits.api_keys]]\nname = \"wechat\"\nkey = \"0123456789abcdef-wx\"\nrate_per_sec = 50\nburst = 80\n",
        )
        .unwrap();
        let keys = &c.limits.api_keys;
        assert_eq!(keys.len(), 2);
        assert_eq!((keys[0].rate_per_sec, keys[0].burst), (1000.0, None));
        assert_eq!((keys[1].rate_per_sec, keys[1].burst), (50.0, Some(80.0)));
        assert_eq!(c.limits.trusted_proxies, ["10.0.0.0/8", "::1"]);
        assert!(!format!("{c:?}").contains("0123456789abcdef-web"));
        let bad = |text: &str| Config::from_toml(text).unwrap_err().to_string();
        let short = bad("[[limits.api_keys]]\nname = \"web\"\nkey = \"tooshort\"\n");
        assert!(
            short.contains("at least 16") && !short.contains("tooshort"),
            "{short}"
        );
        let same = "[[limits.api_keys]]\nname = \"a\"\nkey = \"0123456789abcdef-1\"\n";
        assert!(bad(&format!("{same}{same}")).contains("unique"));
        let slow =
            "[[limits.api_keys]]\nname = \"a\"\nkey = \"0123456789abcdef\"\nrate_per_sec = 0\n";
        assert!(bad(slow).contains("rate_per_sec must be above zero"));
        assert!(bad("[limits]\ntrusted_proxies = [\"10.0.0.0/99\"]\n").contains("10.0.0.0/99"));
    }

    #[test]
    fn connection_limits_have_defaults_and_are_checked() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c.limits.first_bytes_timeout_ms, 5_000);
        assert_eq!(c.limits.max_connections, 10_000);
        assert_eq!(c.limits.max_connections_per_address, 256);
        let c = Config::from_toml(
            "[limits]\nfirst_bytes_timeout_ms = 800\nmax_connections = 50\nmax_connections_per_address = 5\n",
        )
        .unwrap();
        assert_eq!(c.limits.max_connections_per_address, 5);
        let bad = |text: &str| Config::from_toml(text).unwrap_err().to_string();
        assert!(bad("[limits]\nfirst_bytes_timeout_ms = 0\n").contains("first_bytes_timeout_ms"));
        assert!(bad("[limits]\nmax_connections = 0\n").contains("max_connections must"));
        let over = bad("[limits]\nmax_connections = 10\nmax_connections_per_address = 11\n");
        assert!(over.contains("max_connections_per_address"), "{over}");
    }

    #[test]
    fn per_address_and_body_limits_have_defaults_and_are_checked() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c.limits.max_in_flight_per_address, 64);
        assert_eq!(c.limits.body_timeout_ms, 5_000);
        assert_eq!(c.limits.max_streams_per_connection, 1024);
        let c = Config::from_toml(
            "[limits]\nmax_in_flight = 64\nmax_in_flight_per_address = 16\nbody_timeout_ms = 0\n",
        )
        .unwrap();
        assert_eq!(c.limits.max_in_flight_per_address, 16);
        assert_eq!(c.limits.body_timeout_ms, 0);
        let bad = |text: &str| Config::from_toml(text).unwrap_err().to_string();
        let over = bad("[limits]\nmax_in_flight = 10\nmax_in_flight_per_address = 11\n");
        assert!(
            over.contains(
                "max_in_flight_per_address must be between 1 and limits.max_in_flight (10), not 11"
            ),
            "{over}"
        );
        assert!(bad("[limits]\nmax_in_flight_per_address = 0\n").contains("not 0"));
        assert!(bad("[limits]\nbody_timeout_ms = 700000\n").contains("body_timeout_ms"));
    }

    #[test]
    fn tls_needs_both_cert_and_key() {
        let c = Config::from_toml(
            "[tls]\ncert_path = \"s.pem\"\nkey_path = \"s.key\"\nclient_ca_path = \"ca.pem\"\n",
        )
        .unwrap();
        let tls = c.tls.unwrap();
        assert_eq!(tls.key_path, PathBuf::from("s.key"));
        assert_eq!(tls.client_ca_path, Some(PathBuf::from("ca.pem")));
        assert!(Config::from_toml("[tls]\ncert_path = \"s.pem\"\n").is_err());
        assert!(Config::from_toml("[tls]\ncert = \"s.pem\"\nkey_path = \"k\"\n").is_err());
        assert!(Config::from_toml("").unwrap().tls.is_none());
    }

    #[test]
    fn cors_origins_are_origins() {
        let c = Config::from_toml("[http]\ncors_origins = [\"https://xwn.example\"]\n").unwrap();
        assert_eq!(c.http.cors_origins, ["https://xwn.example"]);
        assert!(Config::from_toml("").unwrap().http.cors_origins.is_empty());
        assert!(Config::from_toml("[http]\ncors_origins = [\"xwn.example\"]\n").is_err());
        assert!(Config::from_toml("[http]\ncors_origins = [\"https://a.b/\"]\n").is_err());
    }
}
