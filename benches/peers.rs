//! The peer comparison's driver (`bench/compare.sh` runs it): exports the
//! demo roster for PostgreSQL + PostGIS and Groonga, drives a system with
//! N connections × M queries in flight with `xwn loadgen`'s accounting,
//! scores each system's top-1 against the nearest-qualified oracle, and
//! prints the comparison table.
//!
//! Run: `bench/compare.sh` (see BENCHMARKS.md); by hand
//! `cargo bench --bench peers -- --help`.

use std::{
    collections::{BTreeMap, HashMap},
    fmt::Write as _,
    io::Write as _,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::{anyhow, ensure, Context};
use clap::{Parser, Subcommand, ValueEnum};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
};
use xingweinong::{
    cli::loadgen::{Outcome, Rpc},
    model::divisions::{DivisionCode, Divisions},
    model::geo::GeoPoint,
    model::Talent,
    pb,
    reading::eval::{self, Labelled},
    reading::lexicon::Lexicon,
    roster::{parse_roster, RosterFormat},
};

/// Where a report without a division code is placed, as `xwn loadgen` does.
const CITY_CODE: &str = "610500000000";
/// Candidates asked of every system.
const LIMIT: usize = 5;

#[derive(Parser)]
#[command(about = "Peer comparison: export, load, agreement, table")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Writes talents.tsv (for PostgreSQL's COPY) and talents.json (for
    /// Groonga's load) from a roster CSV, with each talent's point as xwn
    /// computes it.
    Export { roster: PathBuf, out_dir: PathBuf },
    /// Drives a system for a fixed time and records its figures.
    Load {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value_t = 2)]
        connections: usize,
        /// Queries in flight per connection; each has a connection of its
        /// own for the peers (PostgreSQL and HTTP/1.1 do not multiplex).
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        #[arg(long, default_value = "tests/data/problems/dev.jsonl")]
        reports: PathBuf,
        /// Server process whose tree's memory is read while the
        /// connections are still open.
        #[arg(long)]
        server_pid: Option<u32>,
        /// Records the figures under this name (`postgres#2` for round 2);
        /// the system's name by default.
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Top-1 agreement with the nearest-qualified oracle on the routable
    /// labelled reports.
    Agree {
        #[command(flatten)]
        target: Target,
        /// The roster the system serves (CSV).
        #[arg(long)]
        roster: PathBuf,
        #[arg(long, default_value = "tests/data/problems/dev.jsonl")]
        reports: PathBuf,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Records the memory of a process tree (RSS summed; PSS too).
    Memory {
        #[arg(long)]
        system: String,
        #[arg(long)]
        pid: u32,
        #[arg(long)]
        out: PathBuf,
    },
    /// Prints the comparison table from the recorded figures.
    Table {
        results: PathBuf,
        /// Printed under the table (the run's command, connections, …).
        #[arg(long, default_value = "")]
        note: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum System {
    /// xwn's MatchProblem over gRPC (ranking NEAREST).
    Xwn,
    /// PostgreSQL + PostGIS: bigram tsquery, KNN on geography.
    Postgres,
    /// Groonga over HTTP: bigram query, sorted by geo distance.
    Groonga,
}

impl System {
    fn key(self) -> &'static str {
        match self {
            System::Xwn => "xwn",
            System::Postgres => "postgres",
            System::Groonga => "groonga",
        }
    }
}

#[derive(clap::Args)]
struct Target {
    #[arg(long, value_enum)]
    system: System,
    /// xwn: `http://127.0.0.1:PORT`; postgres: a libpq-style connection
    /// string; groonga: `127.0.0.1:PORT`.
    #[arg(long)]
    addr: String,
}

/// The report's overlapping two-character pieces: each run of letters and
/// digits gives its bigrams, a run of one character gives itself. The same
/// cut makes the peers' documents and their queries.
fn pieces(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for run in text.split(|c: char| !c.is_alphanumeric()) {
        let chars: Vec<char> = run.chars().flat_map(char::to_lowercase).collect();
        match chars.len() {
            0 => {}
            1 => out.push(chars[0].to_string()),
            _ => out.extend(chars.windows(2).map(|w| w.iter().collect::<String>())),
        }
    }
    out.sort();
    out.dedup();
    out
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// One report as every system is asked it.
#[derive(Debug, Clone)]
struct Query {
    text: String,
    division_code: String,
    point: GeoPoint,
    /// PostgreSQL: the pieces OR'ed, quoted lexemes.
    tsquery: String,
    /// Groonga: the whole `GET` target of the select command.
    groonga_path: String,
}

impl Query {
    /// Places the report as xwn does: its division's point (a village
    /// without one sits at its town's or county's), the city without one.
    fn new(item: &Labelled) -> anyhow::Result<Query> {
        let code = match item.division_code.as_str() {
            "" => CITY_CODE,
            code => code,
        };
        let division = DivisionCode::parse(code)
            .and_then(|c| Divisions::embedded().get(c))
            .ok_or_else(|| anyhow!("{}: unknown division code {code}", item.id))?;
        let point = division.point;
        let pieces = pieces(&item.text);
        let tsquery = pieces
            .iter()
            .map(|p| format!("'{p}'"))
            .collect::<Vec<_>>()
            .join(" | ");
        let groonga_query = pieces
            .iter()
            .map(|p| format!("\"{p}\""))
            .collect::<Vec<_>>()
            .join(" OR ");
        let scorer = format!(
            "_score = geo_distance(location, \"{},{}\", \"sphere\")",
            point.lat, point.lon
        );
        let groonga_path = format!(
            "/d/select?table=Talents&match_columns={}&query={}&scorer={}&sort_keys=_score&output_columns=_key&limit={LIMIT}",
            percent_encode("specialties || skills"),
            percent_encode(&groonga_query),
            percent_encode(&scorer),
        );
        Ok(Query {
            text: item.text.clone(),
            division_code: code.to_string(),
            point,
            tsquery,
            groonga_path,
        })
    }
}

/// A tiny HTTP/1.1 client, one request at a time. It keeps its connection
/// alive unless the server closes it: Groonga's own HTTP server answers
/// every request with `Connection: close`, so each query to it connects
/// anew (on loopback), inside the measured latency as for any client.
struct Http {
    addr: String,
    stream: Option<BufReader<TcpStream>>,
}

impl Http {
    async fn connect(addr: &str) -> anyhow::Result<Http> {
        let mut http = Http {
            addr: addr.to_string(),
            stream: None,
        };
        http.open().await?;
        Ok(http)
    }

    async fn open(&mut self) -> anyhow::Result<&mut BufReader<TcpStream>> {
        if self.stream.is_none() {
            let stream = TcpStream::connect(&self.addr)
                .await
                .with_context(|| format!("cannot connect to {}", self.addr))?;
            stream.set_nodelay(true)?;
            self.stream = Some(BufReader::new(stream));
        }
        Ok(self.stream.as_mut().expect("just opened"))
    }

    async fn get(&mut self, target: &str) -> anyhow::Result<Vec<u8>> {
        let request = format!("GET {target} HTTP/1.1\r\nHost: {}\r\n\r\n", self.addr);
        let result = self.exchange(&request).await;
        if !matches!(result, Ok((_, true))) {
            self.stream = None;
        }
        result.map(|(body, _)| body)
    }

    /// Sends one request; the body, and whether the connection stays open.
    async fn exchange(&mut self, request: &str) -> anyhow::Result<(Vec<u8>, bool)> {
        let stream = self.open().await?;
        stream.get_mut().write_all(request.as_bytes()).await?;
        let mut line = String::new();
        stream.read_line(&mut line).await?;
        let status = line.split_whitespace().nth(1).unwrap_or("").to_string();
        let (mut length, mut chunked, mut keep_alive) = (None, false, true);
        loop {
            line.clear();
            ensure!(stream.read_line(&mut line).await? > 0, "connection closed");
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                let value = value.trim();
                if name.eq_ignore_ascii_case("content-length") {
                    length = Some(value.parse::<usize>()?);
                } else if name.eq_ignore_ascii_case("transfer-encoding") {
                    chunked = value.eq_ignore_ascii_case("chunked");
                } else if name.eq_ignore_ascii_case("connection") {
                    keep_alive = !value.eq_ignore_ascii_case("close");
                }
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                line.clear();
                stream.read_line(&mut line).await?;
                let size = usize::from_str_radix(line.trim(), 16)?;
                let start = body.len();
                body.resize(start + size, 0);
                stream.read_exact(&mut body[start..]).await?;
                line.clear();
                stream.read_line(&mut line).await?;
                if size == 0 {
                    break;
                }
            }
        } else {
            let length = length.ok_or_else(|| anyhow!("no Content-Length"))?;
            body.resize(length, 0);
            stream.read_exact(&mut body).await?;
        }
        ensure!(status == "200", "HTTP {status}");
        Ok((body, keep_alive))
    }
}

/// One connection to one system.
enum Conn {
    Xwn(pb::match_service_client::MatchServiceClient<tonic::transport::Channel>),
    Postgres {
        client: tokio_postgres::Client,
        statement: tokio_postgres::Statement,
    },
    Groonga(Http),
}

const POSTGRES_TOP: &str = "SELECT id FROM talents WHERE doc @@ $1::tsquery \
     ORDER BY geog <-> ST_SetSRID(ST_MakePoint($2, $3), 4326)::geography LIMIT 5";

impl Conn {
    async fn connect(target: &Target) -> anyhow::Result<Conn> {
        Ok(match target.system {
            System::Xwn => Conn::Xwn(
                pb::match_service_client::MatchServiceClient::connect(target.addr.clone())
                    .await
                    .with_context(|| format!("cannot connect to {}", target.addr))?,
            ),
            System::Postgres => {
                let (client, connection) =
                    tokio_postgres::connect(&target.addr, tokio_postgres::NoTls)
                        .await
                        .with_context(|| format!("cannot connect to {}", target.addr))?;
                tokio::spawn(connection);
                use tokio_postgres::types::Type;
                let statement = client
                    .prepare_typed(POSTGRES_TOP, &[Type::TEXT, Type::FLOAT8, Type::FLOAT8])
                    .await?;
                Conn::Postgres { client, statement }
            }
            System::Groonga => Conn::Groonga(Http::connect(&target.addr).await?),
        })
    }

    /// The ids of the system's top candidates, best first.
    async fn top(&mut self, q: &Query) -> anyhow::Result<Vec<String>> {
        match self {
            Conn::Xwn(client) => {
                let request = pb::MatchProblemRequest {
                    text: q.text.clone(),
                    location: Some(pb::Location {
                        kind: Some(pb::location::Kind::DivisionCode(q.division_code.clone())),
                    }),
                    limit: LIMIT as u32,
                    ranking: pb::Ranking::Nearest as i32,
                };
                let reply = client.match_problem(request).await?.into_inner();
                Ok(reply
                    .candidates
                    .into_iter()
                    .filter_map(|c| c.talent.map(|t| t.id))
                    .collect())
            }
            Conn::Postgres { client, statement } => {
                let rows = client
                    .query(&*statement, &[&q.tsquery, &q.point.lon, &q.point.lat])
                    .await?;
                rows.iter()
                    .map(|r| r.try_get::<_, String>(0).map_err(Into::into))
                    .collect()
            }
            Conn::Groonga(http) => {
                let body = http.get(&q.groonga_path).await?;
                let reply: serde_json::Value = serde_json::from_slice(&body)?;
                ensure!(reply[0][0] == 0, "groonga: {}", reply[0]);
                let rows = reply[1][0]
                    .as_array()
                    .ok_or_else(|| anyhow!("groonga: no result set"))?;
                // [[hits], [columns], row, row, …]
                Ok(rows
                    .iter()
                    .skip(2)
                    .filter_map(|row| row[0].as_str().map(str::to_string))
                    .collect())
            }
        }
    }
}

fn read_reports(path: &Path) -> anyhow::Result<Vec<Labelled>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    eval::parse(&text).map_err(|e| anyhow!("{}: {e}", path.display()))
}

fn read_roster(path: &Path) -> anyhow::Result<Vec<Talent>> {
    let data = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let talents = parse_roster(
        RosterFormat::Csv,
        &data,
        Lexicon::embedded(),
        Divisions::embedded(),
    )
    .map_err(|errors| anyhow!("{}: {} bad rows", path.display(), errors.len()))?;
    // Matching never offers someone who cannot take requests.
    Ok(talents.into_iter().filter(Talent::is_available).collect())
}

/// Appends `system<TAB>field<TAB>value` lines.
fn record(out: Option<&Path>, system: &str, fields: &[(&str, String)]) -> anyhow::Result<()> {
    let Some(path) = out else { return Ok(()) };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    for (field, value) in fields {
        writeln!(file, "{system}\t{field}\t{value}")?;
    }
    Ok(())
}

fn export(roster: &Path, out_dir: &Path) -> anyhow::Result<()> {
    let talents = read_roster(roster)?;
    std::fs::create_dir_all(out_dir)?;
    let flat = |s: &str| s.replace(['\t', '\n', '\r', '\\'], " ");
    let mut tsv = String::new();
    let mut json = vec![];
    for t in &talents {
        let specialties = t.specialties.join(";");
        let doc = pieces(&format!("{specialties};{}", t.skills)).join(" ");
        writeln!(
            tsv,
            "{}\t{}\t{}\t{}\t{doc}\t{}\t{}",
            flat(&t.id),
            t.tier.key(),
            flat(&specialties),
            flat(&t.skills),
            t.point.lat,
            t.point.lon
        )?;
        json.push(serde_json::json!({
            "_key": t.id,
            "tier": t.tier.key(),
            "specialties": specialties,
            "skills": t.skills,
            "location": format!("{},{}", t.point.lat, t.point.lon),
        }));
    }
    std::fs::write(out_dir.join("talents.tsv"), tsv)?;
    let lines: Vec<String> = json.iter().map(|v| v.to_string()).collect();
    std::fs::write(
        out_dir.join("talents.json"),
        format!("[\n{}\n]\n", lines.join(",\n")),
    )?;
    println!(
        "exported {} talents to {}/talents.{{tsv,json}}",
        talents.len(),
        out_dir.display()
    );
    Ok(())
}

/// Memory of `root` and its descendants: (summed RSS, summed PSS) in MiB.
fn tree_memory_mib(root: u32) -> (f64, f64) {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // pid (comm) state ppid …; comm may hold spaces.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let kib = |path: String, key: &str| -> f64 {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    let (mut rss, mut pss) = (0.0, 0.0);
    let mut stack = vec![root];
    while let Some(pid) = stack.pop() {
        rss += kib(format!("/proc/{pid}/status"), "VmRSS:");
        pss += kib(format!("/proc/{pid}/smaps_rollup"), "Pss:");
        stack.extend(children.get(&pid).into_iter().flatten());
    }
    (rss / 1024.0, pss / 1024.0)
}

fn memory_fields(pid: u32) -> Vec<(&'static str, String)> {
    let (rss, pss) = tree_memory_mib(pid);
    println!("memory of process tree {pid}: RSS {rss:.0} MiB (summed), PSS {pss:.0} MiB");
    vec![
        ("rss_mib", format!("{rss:.1}")),
        ("pss_mib", format!("{pss:.1}")),
    ]
}

struct LoadPlan {
    connections: usize,
    concurrency: usize,
    duration: Duration,
}

/// `xwn loadgen`'s loop for any system: every in-flight client walks the
/// reports from its own start in steps of 7 until the deadline; only
/// successful calls count, their latencies sorted into an [`Outcome`].
async fn load(
    target: &Target,
    plan: &LoadPlan,
    queries: Arc<Vec<Query>>,
    server_pid: Option<u32>,
) -> anyhow::Result<(Outcome, Option<Vec<(&'static str, String)>>)> {
    ensure!(
        plan.connections > 0 && plan.concurrency > 0,
        "connections and concurrency must be above zero"
    );
    ensure!(!queries.is_empty(), "no reports to send");
    let mut conns = Vec::new();
    for c in 0..plan.connections {
        for m in 0..plan.concurrency {
            let conn = match (target.system, m) {
                // xwn multiplexes a connection's calls (HTTP/2), as loadgen.
                (System::Xwn, m) if m > 0 => match &conns[conns.len() - 1] {
                    (_, Conn::Xwn(client)) => Conn::Xwn(client.clone()),
                    _ => unreachable!("xwn connections are all gRPC"),
                },
                _ => Conn::connect(target).await?,
            };
            conns.push((c * plan.concurrency + m, conn));
        }
    }
    // One query per client before the clock starts: a PostgreSQL backend
    // loads PostGIS on its first one.
    for (start, conn) in &mut conns {
        conn.top(&queries[*start % queries.len()]).await?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut workers = Vec::new();
    for (start, mut conn) in conns {
        let queries = queries.clone();
        let stop = stop.clone();
        workers.push(tokio::spawn(async move {
            let mut next = start;
            let (mut latencies, mut errors, mut first_error) = (Vec::new(), 0u64, None);
            while !stop.load(Ordering::Relaxed) {
                next = (next + 7) % queries.len();
                let t = Instant::now();
                match conn.top(&queries[next]).await {
                    Ok(_) => latencies.push(t.elapsed().as_micros() as u64),
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e.to_string());
                    }
                }
            }
            (latencies, errors, first_error, conn)
        }));
    }
    tokio::time::sleep(plan.duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut outcome = Outcome::default();
    let mut open = Vec::new();
    for w in workers {
        let (latencies, errors, first_error, conn) = w.await?;
        outcome.latencies_us.extend(latencies);
        if errors > 0 {
            *outcome.errors.entry("failed".into()).or_default() += errors;
        }
        if let Some(e) = first_error {
            eprintln!("{}: first error of a client: {e}", target.system.key());
        }
        open.push(conn);
    }
    outcome.elapsed = started.elapsed();
    outcome.calls = outcome.latencies_us.len() as u64;
    outcome.latencies_us.sort_unstable();
    // The server's memory with every client still connected.
    let memory = server_pid.map(memory_fields);
    drop(open);
    Ok((outcome, memory))
}

/// Per routable report, the talents having its labelled subject at the
/// least great-circle distance from its point (often several: talents of
/// one town share its point).
fn oracle(talents: &[Talent], q: &Query, subject: &str) -> Vec<String> {
    let qualified: Vec<(f64, &Talent)> = talents
        .iter()
        .filter(|t| t.specialties.iter().any(|s| s == subject))
        .map(|t| (q.point.distance_km(t.point), t))
        .collect();
    let Some(least) = qualified.iter().map(|(d, _)| *d).min_by(f64::total_cmp) else {
        return vec![];
    };
    qualified
        .into_iter()
        .filter(|(d, _)| *d <= least + 1e-9)
        .map(|(_, t)| t.id.clone())
        .collect()
}

async fn agree(
    target: &Target,
    roster: &Path,
    reports: &Path,
) -> anyhow::Result<(usize, usize, usize)> {
    let talents = read_roster(roster)?;
    let mut conn = Conn::connect(target).await?;
    let (mut agreed, mut routable, mut unanswered) = (0, 0, 0);
    for item in read_reports(reports)?
        .iter()
        .filter(|i| !i.subject.is_empty())
    {
        routable += 1;
        let q = Query::new(item)?;
        let best = oracle(&talents, &q, &item.subject);
        let top = conn
            .top(&q)
            .await
            .with_context(|| format!("{}: {}", target.system.key(), item.id))?;
        match top.first() {
            Some(id) if best.contains(id) => agreed += 1,
            Some(_) => {}
            None => unanswered += 1,
        }
    }
    Ok((agreed, routable, unanswered))
}

/// A system's recorded fields by name, as `record` wrote them.
type Fields = BTreeMap<String, String>;

/// One row of the table, from the recorded fields.
struct Row<'a> {
    label: String,
    fields: &'a Fields,
}

impl Row<'_> {
    fn get(&self, field: &str) -> Option<f64> {
        self.fields.get(field).and_then(|v| v.parse().ok())
    }
    fn text(&self, field: &str, decimals: usize) -> String {
        self.get(field)
            .map_or("—".to_string(), |v| format!("{v:.decimals$}"))
    }
    /// The share of routable reports whose top-1 the oracle agrees with.
    fn agreement(&self) -> Option<f64> {
        match (self.get("agreed"), self.get("routable")) {
            (Some(a), Some(n)) if n > 0.0 => Some(a / n),
            _ => None,
        }
    }
    /// How many times this system's throughput `xwn` has.
    fn ratio_to(&self, xwn: Option<f64>) -> Option<f64> {
        match (xwn, self.get("calls_per_s")) {
            (Some(x), Some(c)) if c > 0.0 => Some(x / c),
            _ => None,
        }
    }
}

fn table(results: &Path, note: &str) -> anyhow::Result<()> {
    let by_system = read_results(results)?;
    let merged: BTreeMap<&str, Fields> = ["xwn", "xwn-ping", "postgres", "groonga"]
        .into_iter()
        .map(|s| (s, row_fields(&by_system, s)))
        .collect();
    let row = |system: &str, label: &str| Row {
        label: label.to_string(),
        fields: &merged[system],
    };
    let rows = [
        row("xwn", "xwn MatchProblem (gRPC)"),
        row("xwn-ping", "xwn Ping (empty call, ceiling)"),
        row("postgres", "PostgreSQL 15 + PostGIS"),
        row("groonga", "Groonga 13 (HTTP)"),
    ];
    let xwn = rows[0].get("calls_per_s");
    println!(
        "| system | calls/s | p50 ms | p99 ms | top-1 agreement | memory MiB | throughput ratio xwn/system |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        print_row(r, xwn);
    }
    println!();
    print_targets(&rows, xwn);
    if !note.is_empty() {
        println!("{note}");
    }
    Ok(())
}

/// The recorded results, `system\tfield\tvalue` a line, by system.
fn read_results(results: &Path) -> anyhow::Result<BTreeMap<String, Fields>> {
    let text = std::fs::read_to_string(results)
        .with_context(|| format!("cannot read {}", results.display()))?;
    let mut by_system: BTreeMap<String, Fields> = BTreeMap::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, '\t');
        if let (Some(s), Some(f), Some(v)) = (parts.next(), parts.next(), parts.next()) {
            by_system
                .entry(s.to_string())
                .or_default()
                .insert(f.to_string(), v.to_string());
        }
    }
    Ok(by_system)
}

/// A system's fields for its row. Its load figures come in rounds
/// (`postgres#1`, `postgres#2` …): the row takes the round of median
/// throughput, and the range.
fn row_fields(by_system: &BTreeMap<String, Fields>, system: &str) -> Fields {
    let mut fields = by_system.get(system).cloned().unwrap_or_default();
    let per_s = |f: &Fields| -> f64 {
        f.get("calls_per_s")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    let mut rounds: Vec<&Fields> = by_system
        .iter()
        .filter(|(k, _)| k.split_once('#').is_some_and(|(base, _)| base == system))
        .map(|(_, f)| f)
        .collect();
    rounds.sort_by(|a, b| per_s(a).total_cmp(&per_s(b)));
    if let Some(median) = rounds.get((rounds.len().max(1) - 1) / 2) {
        fields.extend(median.iter().map(|(k, v)| (k.clone(), v.clone())));
        fields.insert("rounds".into(), rounds.len().to_string());
        let range = format!(
            "{:.0}–{:.0}",
            per_s(rounds[0]),
            per_s(rounds[rounds.len() - 1])
        );
        fields.insert("range".into(), range);
    }
    fields
}

/// One line of the table; `xwn` is xwn's throughput, for the ratio.
fn print_row(r: &Row, xwn: Option<f64>) {
    let agreement_text = match (r.agreement(), r.get("agreed"), r.get("routable")) {
        (Some(f), Some(a), Some(n)) => format!("{:.1}% ({a:.0}/{n:.0})", 100.0 * f),
        _ => "—".to_string(),
    };
    let ratio = r
        .ratio_to(xwn)
        .map_or("—".to_string(), |g| format!("{g:.1}×"));
    let errors = r.get("errors").unwrap_or(0.0);
    let mut calls = r.text("calls_per_s", 0);
    if r.get("rounds").is_some_and(|n| n > 1.0) {
        calls = format!("{calls} ({})", r.fields["range"]);
    }
    if errors > 0.0 {
        calls = format!("{calls}, {errors:.0} errors");
    }
    // Summed RSS counts shared memory once per process: PSS beside it
    // where the two differ much (PostgreSQL's shared buffers).
    let memory = match (r.get("rss_mib"), r.get("pss_mib")) {
        (Some(rss), Some(pss)) if rss > 1.5 * pss => format!("{rss:.0} (PSS {pss:.0})"),
        _ => r.text("rss_mib", 0),
    };
    println!(
        "| {} | {calls} | {} | {} | {agreement_text} | {memory} | {ratio} |",
        r.label,
        r.text("p50_ms", 2),
        r.text("p99_ms", 2),
    );
}

/// Whether xwn met its targets against the peers (`rows` as in [`table`]).
fn print_targets(rows: &[Row], xwn: Option<f64>) {
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    for (r, want) in [(&rows[2], 20.0), (&rows[3], 5.0)] {
        let got = r.ratio_to(xwn);
        println!(
            "target: xwn ≥ {want}× {} throughput: {} ({})",
            r.label,
            verdict(got.is_some_and(|g| g >= want)),
            got.map_or("no figure".to_string(), |g| format!("{g:.1}×"))
        );
    }
    let mine = rows[0].agreement();
    let higher = mine.is_some_and(|m| {
        [&rows[2], &rows[3]]
            .iter()
            .all(|r| r.agreement().is_some_and(|a| m > a))
    });
    println!(
        "target: xwn's top-1 agreement above both peers': {}",
        verdict(higher)
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `cargo bench` passes --bench (and `cargo test --benches` --list).
    let argv: Vec<String> = std::env::args().filter(|a| a != "--bench").collect();
    if argv.iter().any(|a| a == "--list") || argv.len() == 1 {
        println!("peers: the peer comparison's driver; bench/compare.sh runs it (see --help)");
        return Ok(());
    }
    match Args::parse_from(argv).command {
        Command::Export { roster, out_dir } => export(&roster, &out_dir),
        Command::Load {
            target,
            connections,
            concurrency,
            seconds,
            reports,
            server_pid,
            name,
            out,
        } => {
            let queries = read_reports(&reports)?
                .iter()
                .map(Query::new)
                .collect::<anyhow::Result<Vec<_>>>()?;
            let plan = LoadPlan {
                connections,
                concurrency,
                duration: Duration::from_secs_f64(seconds),
            };
            let (outcome, memory) = load(&target, &plan, Arc::new(queries), server_pid).await?;
            let system = name.as_deref().unwrap_or(target.system.key());
            // The same line as `xwn loadgen`'s, under the system's name.
            let line = outcome.render(Rpc::Match);
            let line = line.strip_prefix("Match: ").unwrap_or(&line);
            println!("{system}: {connections} connections x {concurrency} in flight; {line}");
            let ms = |q: f64| format!("{:.3}", outcome.quantile_us(q) as f64 / 1000.0);
            let mut fields = vec![
                ("calls", outcome.calls.to_string()),
                ("errors", outcome.errors.values().sum::<u64>().to_string()),
                ("calls_per_s", format!("{:.1}", outcome.throughput())),
                ("p50_ms", ms(0.50)),
                ("p99_ms", ms(0.99)),
                ("p999_ms", ms(0.999)),
            ];
            fields.extend(memory.into_iter().flatten());
            record(out.as_deref(), system, &fields)
        }
        Command::Agree {
            target,
            roster,
            reports,
            out,
        } => {
            let (agreed, routable, unanswered) = agree(&target, &roster, &reports).await?;
            let system = target.system.key();
            println!(
                "{system}: top-1 agreement with the nearest-qualified oracle {agreed}/{routable} ({:.1}%); no answer for {unanswered}",
                100.0 * agreed as f64 / routable.max(1) as f64
            );
            record(
                out.as_deref(),
                system,
                &[
                    ("agreed", agreed.to_string()),
                    ("routable", routable.to_string()),
                    ("unanswered", unanswered.to_string()),
                ],
            )
        }
        Command::Memory { system, pid, out } => record(Some(&out), &system, &memory_fields(pid)),
        Command::Table { results, note } => table(&results, &note),
    }
}
