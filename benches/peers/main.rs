//! The peer comparison's driver (`bench/compare.sh` runs it): exports the
//! demo roster for PostgreSQL + PostGIS and Groonga, drives a system with
//! N connections × M queries in flight with `xwn loadgen`'s accounting,
//! scores each system's top-1 against the nearest-qualified oracle, and
//! prints the comparison table.
//!
//! Run: `bench/compare.sh` (see BENCHMARKS.md); by hand
//! `cargo bench --bench peers -- --help`.

mod files;
mod load;
mod oracle;
mod systems;
mod table;

use std::{path::PathBuf, sync::Arc, time::Duration};

use clap::{Parser, Subcommand, ValueEnum};
use xingweinong::cli::loadgen::Rpc;

use files::{export, read_reports, record};
use load::{load, memory_fields, LoadPlan};
use oracle::agree;
use systems::Query;
use table::table;

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
