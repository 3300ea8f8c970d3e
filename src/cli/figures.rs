//! `xwn figures`: the per-responder figures (admin) as a table — offers and
//! what became of them, tickets answered, median times to accept and to
//! resolve, ratings — filtered by tier, county and a time window, with
//! subtotals per tier and per county.

use clap::{Args, ValueEnum};

use super::print::{safe, tier_name};
use super::{explain, ClientArgs};
use crate::pb;

#[derive(Debug, Args)]
pub(crate) struct FiguresArgs {
    #[arg(long, value_enum)]
    tier: Option<TierArg>,
    /// A county by code (610527) or name (白水县).
    #[arg(long, default_value = "")]
    county: String,
    /// Only the last DAYS days (else from --from-ms, or the beginning).
    #[arg(long)]
    days: Option<u32>,
    /// The window's start, Unix milliseconds.
    #[arg(long, default_value_t = 0)]
    from_ms: i64,
    /// The window's end, Unix milliseconds (0: now).
    #[arg(long, default_value_t = 0)]
    to_ms: i64,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum TierArg {
    Village,
    CountyTown,
    City,
}

/// Runs `xwn figures`.
pub(crate) async fn run(args: FiguresArgs) -> anyhow::Result<()> {
    let from_ms = match args.days {
        Some(days) => crate::tickets::now_ms() - i64::from(days) * 86_400_000,
        None => args.from_ms,
    };
    let r = pb::ResponderFiguresRequest {
        tier: match args.tier {
            None => pb::Tier::Unspecified,
            Some(TierArg::Village) => pb::Tier::Village,
            Some(TierArg::CountyTown) => pb::Tier::CountyTown,
            Some(TierArg::City) => pb::Tier::City,
        } as i32,
        county: args.county,
        from_ms,
        to_ms: args.to_ms,
    };
    let client = &args.client;
    let mut api = pb::roster_service_client::RosterServiceClient::new(client.channel().await?);
    let reply = api
        .responder_figures(client.admin(r)?)
        .await
        .map_err(explain)?
        .into_inner();
    print!("{}", table(&reply));
    Ok(())
}

/// Milliseconds as `2h05m`, `3m20s` or `12s`; `—` for none (0).
fn duration(ms: i64) -> String {
    let s = ms / 1000;
    match s {
        _ if ms <= 0 => "—".into(),
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

/// The figures as a plain-text table, one responder a line, then the
/// subtotals per tier (`Σ tier`) and per county (`Σ county`), the number
/// of responders summed in the name column; every text the roster holds
/// escaped ([`safe`]).
pub(crate) fn table(reply: &pb::ResponderFiguresResponse) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<14} {:<8} {:<11} {:<8} {:>6} {:>8} {:>8} {:>6} {:>9} {:>8} {:>11} {:>11} {:>7} {:>5}",
        "talent",
        "name",
        "tier",
        "county",
        "offers",
        "accepted",
        "declined",
        "lapsed",
        "dec+lapse",
        "answered",
        "med.accept",
        "med.resolve",
        "ratings",
        "mean"
    );
    let mut row = |talent: &str, name: &str, f: &pb::ResponderFigure| {
        let mean = match f.ratings {
            0 => "—".to_string(),
            _ => format!("{:.2}", f.mean_rating),
        };
        let share = match f.offers {
            0 => "—".to_string(),
            _ => format!("{:.0}%", f.declined_or_lapsed_share * 100.0),
        };
        let _ = writeln!(
            out,
            "{:<14} {:<8} {:<11} {:<8} {:>6} {:>8} {:>8} {:>6} {:>9} {:>8} {:>11} {:>11} {:>7} {:>5}",
            talent,
            name,
            match f.tier() {
                pb::Tier::Unspecified => "—".to_string(),
                _ => tier_name(f.tier).to_lowercase(),
            },
            match f.county.as_str() {
                "" => "—".to_string(),
                county => safe(county).into_owned(),
            },
            f.offers,
            f.accepted,
            f.declined,
            f.lapsed,
            share,
            f.answered,
            duration(f.median_accept_ms),
            duration(f.median_resolve_ms),
            f.ratings,
            mean
        );
    };
    for f in &reply.figures {
        row(&safe(&f.talent_id), &safe(&f.name), f);
    }
    for (label, groups) in [("Σ tier", &reply.by_tier), ("Σ county", &reply.by_county)] {
        for f in groups {
            row(label, &format!("{} resp.", f.responders), f);
        }
    }
    let _ = writeln!(
        out,
        "{} responders; window {} to {}",
        reply.figures.len(),
        super::print::utc(reply.from_ms),
        super::print::utc(reply.to_ms)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(duration(0), "—");
        assert_eq!(duration(12_500), "12s");
        assert_eq!(duration(200_000), "3m20s");
        assert_eq!(duration(7_500_000), "2h05m");
    }

    #[test]
    fn the_table_escapes_what_the_roster_holds() {
        let reply = pb::ResponderFiguresResponse {
            figures: vec![pb::ResponderFigure {
                talent_id: "v1".into(),
                name: "村\u{1b}[31m一".into(),
                offers: 4,
                declined: 1,
                lapsed: 1,
                declined_or_lapsed_share: 0.5,
                ratings: 2,
                mean_rating: 3.5,
                ..Default::default()
            }],
            from_ms: 0,
            to_ms: 1_000,
            ..Default::default()
        };
        let text = table(&reply);
        assert!(!text.contains('\u{1b}'), "{text}");
        assert!(!text.contains("Σ"), "no subtotals given: {text}");
        assert!(text.contains(r"村\u{1b}[31m一"), "{text}");
        assert!(text.contains("50%") && text.contains("3.50"), "{text}");
    }

    #[test]
    fn subtotals_follow_the_responders_marked() {
        let group = pb::ResponderFigure {
            responders: 2,
            offers: 3,
            answered: 2,
            ratings: 2,
            mean_rating: 3.5,
            ..Default::default()
        };
        let reply = pb::ResponderFiguresResponse {
            figures: vec![pb::ResponderFigure {
                talent_id: "v1".into(),
                responders: 1,
                ..Default::default()
            }],
            by_tier: vec![pb::ResponderFigure {
                tier: pb::Tier::Village.into(),
                ..group.clone()
            }],
            by_county: vec![pb::ResponderFigure {
                county_code: "610527000000".into(),
                county: "白水县".into(),
                ..group
            }],
            ..Default::default()
        };
        let text = table(&reply);
        let lines: Vec<Vec<&str>> = (text.lines())
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(lines[1][0], "v1", "{text}");
        assert_eq!(
            lines[2][..6],
            ["Σ", "tier", "2", "resp.", "village", "—"],
            "{text}"
        );
        assert_eq!(
            lines[3][..6],
            ["Σ", "county", "2", "resp.", "—", "白水县"],
            "{text}"
        );
        assert_eq!(lines[3][6], "3", "{text}");
        assert_eq!(lines[3].last(), Some(&"3.50"), "{text}");
        assert_eq!(lines[4][..2], ["1", "responders;"], "{text}");
    }
}
