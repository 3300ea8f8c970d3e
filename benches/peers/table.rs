//! The comparison table, printed from the recorded figures: one row per
//! system (the median round of its load runs), and whether xwn met its
//! targets against the peers.

use std::{collections::BTreeMap, path::Path};

use anyhow::Context;

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

pub(crate) fn table(results: &Path, note: &str) -> anyhow::Result<()> {
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
