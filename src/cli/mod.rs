//! The `xwn` command line: the server (`serve`), offline tools (`gen-roster`,
//! `eval`, `loadgen`) and a client for a running server: matching and
//! roster commands in [`roster`], ticket commands in [`tickets`] and
//! [`responder`], their printing in [`print`].

use std::{path::PathBuf, time::Duration};

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand, ValueEnum};
use tonic::{
    metadata::{Ascii, MetadataValue},
    service::{interceptor::InterceptedService, Interceptor},
    transport::Channel,
    Request,
};
use tonic_types::StatusExt;

use crate::{
    config::{Config, LogFormat, TlsConfig},
    model::divisions::Divisions,
    pb,
    reading::eval,
    reading::lexicon::Lexicon,
    roster::gen,
    server,
    server::tls::{self, ClientTls},
};

#[derive(Debug, Parser)]
#[command(
    name = "xwn",
    version,
    about = "兴渭农 talent matching: server and client"
)]
pub struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Runs the gRPC server.
    Serve(ServeArgs),
    /// Prints a deterministic demo roster as CSV.
    GenRoster {
        #[arg(long, default_value_t = gen::DEMO_SEED)]
        seed: u64,
        /// Total talents; the village tier takes what the top two tiers leave.
        #[arg(long)]
        size: Option<usize>,
    },
    /// Measures the analyser on labelled reports (JSONL: text, subject, corps).
    Eval {
        file: PathBuf,
        /// How many misses to list.
        #[arg(long, default_value_t = 15)]
        worst: usize,
    },
    /// Measures the knowledge search: solved problems and labelled queries
    /// (JSONL; README "Knowledge").
    EvalKnowledge {
        entries: PathBuf,
        queries: PathBuf,
        /// How many misses to list.
        #[arg(long, default_value_t = 15)]
        worst: usize,
    },
    /// Matches a problem report to responders.
    Match {
        text: String,
        #[command(flatten)]
        place: PlaceArgs,
        #[arg(long, default_value_t = 5)]
        limit: u32,
        /// Rank by text relevance blended with distance instead of distance.
        #[arg(long)]
        best_match: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Drives a running server with load and prints throughput and latency.
    /// `--server` may list several replicas, comma-separated: connections
    /// go to them round-robin.
    Loadgen(LoadgenArgs),
    /// Replaces the roster with a CSV or JSONL file (admin). A refused file
    /// is summed up (counts by field, the first rows); `--check` lists
    /// every bad row instead and changes nothing.
    Import {
        file: PathBuf,
        /// Only validate the file, printing every bad row; changes nothing.
        #[arg(long)]
        check: bool,
        /// Taken from the file name's extension when not given.
        #[arg(long, value_enum)]
        format: Option<FileFormat>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Prints roster statistics (admin).
    Stats {
        #[command(flatten)]
        client: ClientArgs,
    },
    #[command(flatten)]
    Tickets(tickets::TicketCommand),
    /// Lists talents, filtered (admin).
    Talents(roster::TalentsArgs),
    /// Prints each responder's figures (admin): offers, declines and
    /// lapses, tickets answered, median times to accept and to resolve,
    /// ratings; by tier, county and time window.
    Figures(figures::FiguresArgs),
}

mod figures;
pub mod loadgen;
mod print;
mod responder;
mod roster;
mod tickets;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum FileFormat {
    Csv,
    Jsonl,
}

/// The options of `loadgen`.
#[derive(Debug, Args)]
pub(crate) struct LoadgenArgs {
    #[arg(long, value_enum, default_value_t = crate::cli::loadgen::Rpc::Match)]
    pub(crate) rpc: crate::cli::loadgen::Rpc,
    /// How the calls travel: gRPC, gRPC-Web or Connect JSON (MatchProblem
    /// only for the last two).
    #[arg(long, value_enum, default_value_t = crate::cli::loadgen::Protocol::Grpc)]
    pub(crate) protocol: crate::cli::loadgen::Protocol,
    /// HTTP/2 connections.
    #[arg(long, default_value_t = 2)]
    pub(crate) connections: usize,
    /// Calls in flight per connection.
    #[arg(long, default_value_t = 16)]
    pub(crate) concurrency: usize,
    /// Seconds to run.
    #[arg(long, default_value_t = 10.0)]
    pub(crate) seconds: f64,
    /// Labelled reports (JSONL with text and division_code).
    #[arg(long, default_value = "tests/data/problems/dev.jsonl")]
    pub(crate) reports: PathBuf,
    /// Open loop: start this many calls per second whatever the
    /// answers, timing each from its scheduled start (--concurrency is
    /// then unused). Without it: closed loop.
    #[arg(long)]
    pub(crate) rate: Option<f64>,
    /// Read each reply's bytes without decoding them (gRPC only), so that
    /// the generator's own cost weighs less on the figures.
    #[arg(long)]
    pub(crate) no_decode: bool,
    #[command(flatten)]
    pub(crate) client: ClientArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// TOML config file; flags and environment variables override it.
    #[arg(long, env = "XWN_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:50051].
    #[arg(long, env = "XWN_LISTEN")]
    pub(crate) listen: Option<std::net::SocketAddr>,
    /// Data directory [default: ./data].
    #[arg(long, env = "XWN_DATA_DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Admin bearer token (16+ characters).
    #[arg(long, env = "XWN_ADMIN_TOKEN", hide_env_values = true)]
    pub(crate) admin_token: Option<String>,
    /// Ticket and roster-log store: `sqlite` [default] or a postgres:// URL
    /// that every replica shares.
    #[arg(long, env = "XWN_STORE", hide_env_values = true)]
    pub(crate) store: Option<String>,
    /// Serve TLS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, env = "XWN_TLS_CERT")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// The TLS certificate's private key (PEM).
    #[arg(long, env = "XWN_TLS_KEY")]
    pub(crate) tls_key: Option<PathBuf>,
    /// Require client certificates signed by this CA (PEM): mutual TLS.
    #[arg(long, env = "XWN_TLS_CLIENT_CA")]
    pub(crate) tls_client_ca: Option<PathBuf>,
    /// Serve Prometheus metrics at `GET /metrics` on this address (a
    /// listener of its own) [default: none].
    #[arg(long, env = "XWN_METRICS_LISTEN")]
    pub(crate) metrics_listen: Option<std::net::SocketAddr>,
    /// Log lines as `text` [default] or `json` (one object a line).
    #[arg(long, env = "XWN_LOG_FORMAT", value_enum)]
    pub(crate) log_format: Option<LogFormat>,
}

impl ServeArgs {
    /// Defaults, then the file, then environment and flags.
    pub(crate) fn config(&self) -> anyhow::Result<Config> {
        let mut config = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        if let Some(l) = self.listen {
            config.listen = l;
        }
        if let Some(d) = &self.data_dir {
            config.data_dir = d.clone();
        }
        if let Some(t) = &self.admin_token {
            config.admin_token = Some(t.clone());
        }
        if let Some(s) = &self.store {
            config.store = s.clone();
        }
        if let Some(m) = self.metrics_listen {
            config.metrics_listen = Some(m);
        }
        if let Some(f) = self.log_format {
            config.log.format = f;
        }
        if self.tls_cert.is_some() || self.tls_key.is_some() || self.tls_client_ca.is_some() {
            let file = config.tls.take();
            let cert_path = self
                .tls_cert
                .clone()
                .or_else(|| file.as_ref().map(|t| t.cert_path.clone()))
                .context(
                    "TLS needs a certificate: --tls-cert FILE, XWN_TLS_CERT or tls.cert_path",
                )?;
            let key_path = self
                .tls_key
                .clone()
                .or_else(|| file.as_ref().map(|t| t.key_path.clone()))
                .context(
                    "TLS needs the certificate's key: --tls-key FILE, XWN_TLS_KEY or tls.key_path",
                )?;
            let client_ca_path = self
                .tls_client_ca
                .clone()
                .or_else(|| file.and_then(|t| t.client_ca_path));
            config.tls = Some(TlsConfig {
                cert_path,
                key_path,
                client_ca_path,
            });
        }
        config.validate()?;
        Ok(config)
    }
}

#[derive(Debug, Args)]
pub(crate) struct PlaceArgs {
    /// 12-digit Weinan division code (county, town or village).
    #[arg(long, conflicts_with_all = ["lat", "lon"])]
    pub(crate) division: Option<String>,
    #[arg(long, requires = "lon", allow_hyphen_values = true)]
    pub(crate) lat: Option<f64>,
    #[arg(long, requires = "lat", allow_hyphen_values = true)]
    pub(crate) lon: Option<f64>,
}

impl PlaceArgs {
    pub(crate) fn to_pb(&self) -> Option<pb::Location> {
        let kind = match (&self.division, self.lat, self.lon) {
            (Some(code), _, _) => pb::location::Kind::DivisionCode(code.clone()),
            (None, Some(lat), Some(lon)) => pb::location::Kind::Point(pb::GeoPoint { lat, lon }),
            _ => return None,
        };
        Some(pb::Location { kind: Some(kind) })
    }
}

/// How a client reaches an `https://` server.
#[derive(Debug, Args)]
pub(crate) struct TlsArgs {
    /// CA certificate (PEM) that signed an https:// server's certificate.
    #[arg(long, env = "XWN_TLS_CA")]
    pub(crate) tls_ca: Option<PathBuf>,
    /// Client certificate (PEM), for servers that require one (mutual TLS).
    #[arg(long, env = "XWN_TLS_CLIENT_CERT")]
    pub(crate) tls_client_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, env = "XWN_TLS_CLIENT_KEY")]
    pub(crate) tls_client_key: Option<PathBuf>,
}

impl TlsArgs {
    pub(crate) fn client_tls(&self) -> ClientTls {
        ClientTls {
            ca: self.tls_ca.clone(),
            cert: self.tls_client_cert.clone(),
            key: self.tls_client_key.clone(),
        }
    }
}

/// A connection to the server that sends the front end's API key, when
/// there is one, with every call.
pub(crate) type Conn = InterceptedService<Channel, ApiKey>;

/// Puts `x-api-key` on every call.
#[derive(Clone)]
pub(crate) struct ApiKey(Option<MetadataValue<Ascii>>);

impl ApiKey {
    /// The key of `--api-key` / `XWN_API_KEY`, if given.
    pub(crate) fn new(key: Option<&str>) -> anyhow::Result<ApiKey> {
        let key = key.map(str::trim).filter(|k| !k.is_empty());
        let value = key
            .map(|k| {
                k.parse()
                    .context("the API key has characters HTTP headers cannot carry")
            })
            .transpose()?;
        Ok(ApiKey(value))
    }

    /// `channel` sending this key.
    pub(crate) fn wrap(self, channel: Channel) -> Conn {
        InterceptedService::new(channel, self)
    }
}

/// Never shows the key.
impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "ApiKey(<redacted>)"
        } else {
            "ApiKey(None)"
        })
    }
}

impl Interceptor for ApiKey {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, tonic::Status> {
        if let Some(key) = &self.0 {
            request.metadata_mut().insert("x-api-key", key.clone());
        }
        Ok(request)
    }
}

/// Connects to `server` (`http://` plaintext, `https://` TLS), sending
/// `api_key` with every call.
pub(crate) async fn connect(
    server: &str,
    tls: &TlsArgs,
    api_key: Option<&str>,
) -> anyhow::Result<Conn> {
    let api_key = ApiKey::new(api_key)?;
    let channel = tls::endpoint(server, &tls.client_tls())?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect to {server}: {}", tls::error_chain(&e)))?;
    Ok(api_key.wrap(channel))
}

#[derive(Debug, Args)]
pub(crate) struct ClientArgs {
    /// Server address (`https://…` for a TLS server).
    #[arg(long, env = "XWN_SERVER", default_value = "http://127.0.0.1:50051")]
    pub(crate) server: String,
    /// Admin bearer token.
    #[arg(long, env = "XWN_ADMIN_TOKEN", hide_env_values = true)]
    pub(crate) token: Option<String>,
    /// A front end's API key (`limits.api_keys` of the server), sent as
    /// `x-api-key`: calls count against the key's rate, not the address's.
    #[arg(long, env = "XWN_API_KEY", hide_env_values = true)]
    pub(crate) api_key: Option<String>,
    #[command(flatten)]
    pub(crate) tls: TlsArgs,
}

impl ClientArgs {
    async fn channel(&self) -> anyhow::Result<Conn> {
        connect(&self.server, &self.tls, self.api_key.as_deref()).await
    }

    fn admin<T>(&self, message: T) -> anyhow::Result<Request<T>> {
        let mut request = Request::new(message);
        let token = self
            .token
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .context("admin commands need --token or XWN_ADMIN_TOKEN")?;
        let value: MetadataValue<_> = format!("Bearer {token}")
            .parse()
            .context("the token has characters HTTP headers cannot carry")?;
        request.metadata_mut().insert("authorization", value);
        Ok(request)
    }
}

/// Reads a roster-like file into upload chunks of 1 MiB; the format comes
/// from the flag or else the file name (`.jsonl`/`.json`, otherwise CSV).
pub(crate) fn read_chunks(
    file: &std::path::Path,
    format: Option<FileFormat>,
) -> anyhow::Result<Vec<pb::RosterChunk>> {
    let format = match format {
        Some(f) => f,
        None if file
            .extension()
            .is_some_and(|e| e == "jsonl" || e == "json") =>
        {
            FileFormat::Jsonl
        }
        None => FileFormat::Csv,
    };
    let data = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let format = match format {
        FileFormat::Csv => pb::RosterFormat::Csv,
        FileFormat::Jsonl => pb::RosterFormat::Jsonl,
    } as i32;
    Ok(data
        .chunks(1 << 20)
        .map(|c| pb::RosterChunk {
            format,
            data: c.to_vec(),
        })
        .collect())
}

/// Turns a status into an error message listing its field violations,
/// safe for a terminal (a server's message may quote what a caller sent).
pub(crate) fn explain(status: tonic::Status) -> anyhow::Error {
    let safe = print::safe;
    let mut message = format!("{:?}: {}", status.code(), safe(status.message()));
    if let Some(bad) = status.get_details_bad_request() {
        for v in bad.field_violations {
            message.push_str(&format!("\n  {}: {}", safe(&v.field), safe(&v.description)));
        }
    }
    anyhow::anyhow!(message)
}

impl Cli {
    /// How to write log lines: `serve`'s `--log-format` or its config
    /// file's `log.format`; text for the other commands, and when the
    /// config cannot be read (`serve` then says why).
    pub fn log_format(&self) -> LogFormat {
        match &self.command {
            Command::Serve(args) => args
                .config()
                .map(|c| c.log.format)
                .unwrap_or_else(|_| args.log_format.unwrap_or_default()),
            _ => LogFormat::Text,
        }
    }
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Tickets(command) => tickets::run(command).await,
        Command::Figures(args) => figures::run(args).await,
        Command::Serve(args) => serve(&args).await,
        Command::GenRoster { seed, size } => gen_roster(seed, size),
        Command::Eval { file, worst } => evaluate(&file, worst),
        Command::EvalKnowledge {
            entries,
            queries,
            worst,
        } => evaluate_knowledge(&entries, &queries, worst),
        Command::Loadgen(args) => run_loadgen(args).await,
        Command::Match {
            text,
            place,
            limit,
            best_match,
            client,
        } => roster::match_problem(text, &place, limit, best_match, &client).await,
        Command::Import {
            file,
            check: false,
            format,
            client,
        } => roster::import(&file, format, &client).await,
        Command::Import {
            file,
            check: true,
            format,
            client,
        } => roster::check(&file, format, &client).await,
        Command::Stats { client } => roster::stats(&client).await,
        Command::Talents(args) => roster::talents(args).await,
    }
}

/// `serve`: listens on the configured address and serves until a signal.
async fn serve(args: &ServeArgs) -> anyhow::Result<()> {
    let config = args.config()?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    server::serve(config, listener, server::shutdown_signal()).await
}

/// `gen-roster`: prints the demo roster of `seed`, `size` talents in all.
fn gen_roster(seed: u64, size: Option<usize>) -> anyhow::Result<()> {
    let top = gen::CITY_EXPERTS + gen::COUNTY_TOWN_STAFF;
    let villagers = match size {
        None => gen::VILLAGE_PRACTITIONERS,
        Some(n) if n > top => n - top,
        Some(n) => bail!("--size must be above {top}, the top two tiers; got {n}"),
    };
    let csv = gen::generate_csv(seed, villagers, Lexicon::embedded(), Divisions::embedded());
    use std::io::Write;
    // A closed pipe (`| head`) is the reader's choice, not an error.
    match std::io::stdout().lock().write_all(csv.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        other => other?,
    }
    Ok(())
}

/// Reads a file of labelled reports.
fn read_reports(file: &std::path::Path) -> anyhow::Result<Vec<eval::Labelled>> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    eval::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))
}

/// `eval`: measures the analyser on a file and prints the report.
fn evaluate(file: &std::path::Path, worst: usize) -> anyhow::Result<()> {
    let items = read_reports(file)?;
    let report = eval::evaluate(Lexicon::embedded(), &items);
    print!("{}", report.render(worst));
    Ok(())
}

/// `eval-knowledge`: measures the knowledge search and prints the report.
fn evaluate_knowledge(
    entries: &std::path::Path,
    queries: &std::path::Path,
    worst: usize,
) -> anyhow::Result<()> {
    use crate::knowledge::eval;
    let read = |p: &std::path::Path| {
        std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))
    };
    let entries = eval::parse_entries(&read(entries)?)?;
    let queries = eval::parse_queries(&read(queries)?)?;
    let report = eval::evaluate(Lexicon::embedded(), entries, &queries)?;
    print!("{}", report.render(worst));
    Ok(())
}

/// `loadgen`: drives a server and prints what it measured.
async fn run_loadgen(args: LoadgenArgs) -> anyhow::Result<()> {
    let plan = loadgen::Plan {
        server: args.client.server.clone(),
        tls: args.client.tls.client_tls(),
        api_key: ApiKey::new(args.client.api_key.as_deref())?,
        connections: args.connections,
        concurrency: args.concurrency,
        duration: Duration::from_secs_f64(args.seconds),
        rpc: args.rpc,
        protocol: args.protocol,
        reports: read_reports(&args.reports)?,
        rate: args.rate,
        no_decode: args.no_decode,
    };
    let outcome = loadgen::run(plan).await?;
    match args.rate {
        Some(rate) => println!(
            "open loop: {rate} calls/s over {} connections, {} scheduled",
            args.connections, outcome.scheduled
        ),
        None => println!(
            "{} connections x {} in flight",
            args.connections, args.concurrency
        ),
    }
    println!("{}", outcome.render(args.rpc));
    Ok(())
}
