//! A gRPC load generator (`xwn loadgen`): N HTTP/2 connections × M calls in
//! flight for a fixed time, reporting throughput, latency percentiles and
//! errors. Reports and their places come from a labelled JSONL file.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use tonic::transport::Channel;

use crate::{eval::Labelled, pb};

/// Which call to drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Rpc {
    /// `MatchService.MatchProblem` with the file's reports.
    Match,
    /// `MatchService.Ping`: an empty unary call, the ceiling of the stack.
    Ping,
    /// `TicketService.SubmitProblem` with the file's reports (each commits
    /// a ticket).
    Submit,
}

#[derive(Debug, Clone)]
pub struct Plan {
    /// One address, or several comma-separated (replicas).
    pub server: String,
    pub connections: usize,
    pub concurrency: usize,
    pub duration: Duration,
    pub rpc: Rpc,
    pub reports: Vec<Labelled>,
}

/// What one run measured.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub calls: u64,
    pub errors: u64,
    pub elapsed: Duration,
    /// Sorted latencies of successful calls, in microseconds.
    pub latencies_us: Vec<u64>,
}

impl Outcome {
    pub fn throughput(&self) -> f64 {
        self.calls as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The `q` quantile (0..=1) in microseconds.
    pub fn quantile_us(&self, q: f64) -> u64 {
        quantile(&self.latencies_us, q)
    }

    pub fn render(&self, rpc: Rpc) -> String {
        format!(
            "{:?}: {} calls in {:.1} s = {:.0} calls/s; p50 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms; errors {}",
            rpc,
            self.calls,
            self.elapsed.as_secs_f64(),
            self.throughput(),
            self.quantile_us(0.50) as f64 / 1000.0,
            self.quantile_us(0.99) as f64 / 1000.0,
            self.quantile_us(0.999) as f64 / 1000.0,
            self.errors
        )
    }
}

/// Nearest-rank quantile of sorted values.
pub fn quantile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn request(item: &Labelled) -> pb::MatchProblemRequest {
    let location = (!item.division_code.is_empty())
        .then(|| pb::Location {
            kind: Some(pb::location::Kind::DivisionCode(item.division_code.clone())),
        })
        .or(Some(pb::Location {
            kind: Some(pb::location::Kind::DivisionCode("610500000000".into())),
        }));
    pb::MatchProblemRequest {
        text: item.text.clone(),
        location,
        limit: 5,
        ranking: 0,
    }
}

/// Runs the plan; every worker stops at the deadline.
pub async fn run(plan: Plan) -> anyhow::Result<Outcome> {
    anyhow::ensure!(
        plan.connections > 0 && plan.concurrency > 0,
        "connections and concurrency must be above zero"
    );
    anyhow::ensure!(
        plan.rpc != Rpc::Match || !plan.reports.is_empty(),
        "no reports to send"
    );
    // Several servers (replicas), comma-separated: connections go round-robin.
    let servers: Vec<&str> = plan
        .server
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    anyhow::ensure!(!servers.is_empty(), "no server to drive");
    let mut channels = Vec::new();
    for i in 0..plan.connections {
        let server = servers[i % servers.len()];
        let channel = Channel::from_shared(server.to_string())?
            .connect()
            .await
            .with_context(|| format!("cannot connect to {server}"))?;
        channels.push(channel);
    }
    let reports = Arc::new(plan.reports.iter().map(request).collect::<Vec<_>>());
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut workers = Vec::new();
    for (c, channel) in channels.iter().enumerate() {
        for m in 0..plan.concurrency {
            let channel = channel.clone();
            let reports = reports.clone();
            let stop = stop.clone();
            let rpc = plan.rpc;
            let mut next = c * plan.concurrency + m;
            workers.push(tokio::spawn(async move {
                let mut matcher =
                    pb::match_service_client::MatchServiceClient::new(channel.clone());
                let mut tickets = pb::ticket_service_client::TicketServiceClient::new(channel);
                let mut latencies = Vec::new();
                let mut errors = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    let ok = match rpc {
                        Rpc::Match => {
                            next = (next + 7) % reports.len();
                            matcher.match_problem(reports[next].clone()).await.is_ok()
                        }
                        Rpc::Ping => matcher.ping(pb::PingRequest {}).await.is_ok(),
                        Rpc::Submit => {
                            next = (next + 7) % reports.len();
                            let r = &reports[next];
                            let submit = pb::SubmitProblemRequest {
                                text: r.text.clone(),
                                location: r.location.clone(),
                                contact: String::new(),
                                idempotency_key: String::new(),
                            };
                            tickets.submit_problem(submit).await.is_ok()
                        }
                    };
                    if ok {
                        latencies.push(t.elapsed().as_micros() as u64);
                    } else {
                        errors += 1;
                    }
                }
                (latencies, errors)
            }));
        }
    }
    tokio::time::sleep(plan.duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut outcome = Outcome::default();
    for w in workers {
        let (latencies, errors) = w.await?;
        outcome.latencies_us.extend(latencies);
        outcome.errors += errors;
    }
    outcome.elapsed = started.elapsed();
    outcome.calls = outcome.latencies_us.len() as u64;
    outcome.latencies_us.sort_unstable();
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(quantile(&v, 0.5), 50);
        assert_eq!(quantile(&v, 0.99), 99);
        assert_eq!(quantile(&v, 0.999), 100);
        assert_eq!(quantile(&[], 0.5), 0);
    }
}
