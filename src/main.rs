//! `xwn`: the 兴渭农 talent-matching server and its command-line client.

use std::io::IsTerminal;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use xingweinong::config::LogFormat;

/// Loading a million talents and answering matches make many small
/// allocations; mimalloc serves them with less locking and fewer system
/// calls than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = xingweinong::cli::Cli::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a person at a terminal: written to a file or a
    // pipe they are noise, and styling every call's span fields cost Ping
    // about 3 % of its instructions (BENCHMARKS.md, `bench/callcost.sh`).
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match cli.log_format() {
        LogFormat::Text => logs.init(),
        // One object a line, with the fields of the event and of every
        // span it is in (a call's `method`, `caller`, `ticket_id`).
        LogFormat::Json => logs
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .init(),
    }
    match xingweinong::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
