//! The load run: `xwn loadgen`'s accounting over N connections × M
//! queries in flight for any system, and the memory of the server's
//! process tree.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::ensure;
use xingweinong::cli::loadgen::Outcome;

use crate::systems::{Conn, Query};
use crate::{System, Target};

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

pub(crate) fn memory_fields(pid: u32) -> Vec<(&'static str, String)> {
    let (rss, pss) = tree_memory_mib(pid);
    println!("memory of process tree {pid}: RSS {rss:.0} MiB (summed), PSS {pss:.0} MiB");
    vec![
        ("rss_mib", format!("{rss:.1}")),
        ("pss_mib", format!("{pss:.1}")),
    ]
}

pub(crate) struct LoadPlan {
    pub(crate) connections: usize,
    pub(crate) concurrency: usize,
    pub(crate) duration: Duration,
}

/// `xwn loadgen`'s loop for any system: every in-flight client walks the
/// reports from its own start in steps of 7 until the deadline; only
/// successful calls count, their latencies sorted into an [`Outcome`].
pub(crate) async fn load(
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
