//! What the in-process benchmarks share: their size and rounds from the
//! environment, and the p50/p99 line they print.

use xingweinong::cli::loadgen::quantile;

/// `XWN_BENCH_SIZE`: how many items the benchmark loads (`default` if unset
/// or not a number).
pub(crate) fn size(default: usize) -> usize {
    env_usize("XWN_BENCH_SIZE", default)
}

/// `XWN_BENCH_ROUNDS`: how often the query set is run (20 if unset).
pub(crate) fn rounds() -> usize {
    env_usize("XWN_BENCH_ROUNDS", 20)
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Prints p50, p99 and the maximum of durations in nanoseconds, in µs.
pub(crate) fn percentiles(label: &str, mut ns: Vec<u64>) {
    ns.sort_unstable();
    println!(
        "{label:<36} n={:<7} p50 {:>8.1} µs  p99 {:>8.1} µs  max {:>8.1} µs",
        ns.len(),
        quantile(&ns, 0.5) as f64 / 1000.0,
        quantile(&ns, 0.99) as f64 / 1000.0,
        *ns.last().unwrap_or(&0) as f64 / 1000.0
    );
}
