//! `xwn`: the 兴渭农 talent-matching server and its command-line client.

use clap::Parser;
use tracing_subscriber::EnvFilter;

/// Loading a million talents and answering matches make many small
/// allocations; mimalloc serves them with less locking and fewer system
/// calls than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = xingweinong::cli::Cli::parse();
    match xingweinong::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
