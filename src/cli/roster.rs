//! Matching and roster commands of the `xwn` client: `match` for anyone,
//! `import`, `stats` and `talents` for admins.

use std::collections::BTreeMap;

use super::print::safe;
use clap::Args;
use tonic_types::StatusExt;

use super::{explain, read_chunks, ClientArgs, FileFormat, PlaceArgs};
use crate::pb;

/// The filters and page of `talents`.
#[derive(Debug, Args)]
pub(crate) struct TalentsArgs {
    #[arg(long)]
    pub(crate) county: Option<String>,
    #[arg(long)]
    pub(crate) division: Option<String>,
    #[arg(long)]
    pub(crate) specialty: Option<String>,
    #[arg(long)]
    pub(crate) query: Option<String>,
    #[arg(long, default_value_t = 20)]
    pub(crate) page_size: u32,
    #[arg(long)]
    pub(crate) page_token: Option<String>,
    #[arg(long)]
    pub(crate) include_inactive: bool,
    #[command(flatten)]
    pub(crate) client: ClientArgs,
}

/// `match`: matches one report and prints the candidates.
pub(crate) async fn match_problem(
    text: String,
    place: &PlaceArgs,
    limit: u32,
    best_match: bool,
    client: &ClientArgs,
) -> anyhow::Result<()> {
    let mut api = pb::match_service_client::MatchServiceClient::new(client.channel().await?);
    let ranking = if best_match {
        pb::Ranking::BestMatch
    } else {
        pb::Ranking::Nearest
    };
    let request = pb::MatchProblemRequest {
        text,
        location: place.to_pb(),
        limit,
        ranking: ranking.into(),
    };
    let reply = api
        .match_problem(request)
        .await
        .map_err(explain)?
        .into_inner();
    print_match(&reply);
    Ok(())
}

/// `import`: replaces the roster with a file.
pub(crate) async fn import(
    file: &std::path::Path,
    format: Option<FileFormat>,
    client: &ClientArgs,
) -> anyhow::Result<()> {
    let chunks = read_chunks(file, format)?;
    let mut api = pb::roster_service_client::RosterServiceClient::new(client.channel().await?);
    let report = api
        .import_roster(client.admin(tokio_stream::iter(chunks))?)
        .await
        .map_err(|status| {
            let more = status.get_details_error_info().is_some_and(|info| {
                info.reason == "BAD_ROWS"
                    && info.metadata.get("problems") != info.metadata.get("shown")
            });
            let error = explain(status);
            if more {
                anyhow::anyhow!(
                    "{error}\n(more bad rows than shown: `xwn import --check {}` lists them all)",
                    file.display()
                )
            } else {
                error
            }
        })?
        .into_inner();
    println!(
        "accepted {} talents; roster version {}",
        report.accepted, report.roster_version
    );
    Ok(())
}

/// `import --check`: validates a file as an import would, prints every bad
/// row and a summary, and changes nothing; fails if any row is bad.
pub(crate) async fn check(
    file: &std::path::Path,
    format: Option<FileFormat>,
    client: &ClientArgs,
) -> anyhow::Result<()> {
    let chunks = read_chunks(file, format)?;
    let whole = pb::RosterFile {
        format: chunks
            .first()
            .map_or(pb::RosterFormat::Csv as i32, |c| c.format),
        data: chunks.into_iter().flat_map(|c| c.data).collect(),
    };
    let mut api = pb::roster_service_client::RosterServiceClient::new(client.channel().await?);
    let mut stream = api
        .check_roster_file(client.admin(whole)?)
        .await
        .map_err(explain)?
        .into_inner();
    let (mut total, mut lines) = (0u64, std::collections::BTreeSet::new());
    let mut by_field: BTreeMap<String, u64> = BTreeMap::new();
    while let Some(e) = stream.message().await.map_err(explain)? {
        let field = if e.field.is_empty() { "-" } else { &e.field };
        println!("line {}  {}  {}", e.line, safe(field), safe(&e.message));
        total += 1;
        lines.insert(e.line);
        *by_field.entry(field.to_string()).or_default() += 1;
    }
    if total == 0 {
        println!(
            "{}: no problems; an import would be accepted",
            file.display()
        );
        return Ok(());
    }
    let mut counts: Vec<_> = by_field.into_iter().collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let counts: Vec<String> = counts.iter().map(|(f, n)| format!("{f} {n}")).collect();
    anyhow::bail!(
        "{}: {total} problem(s) in {} row(s) ({}); an import would be refused; nothing was changed",
        file.display(),
        lines.len(),
        counts.join(", ")
    )
}

/// `stats`: prints the roster's figures.
pub(crate) async fn stats(client: &ClientArgs) -> anyhow::Result<()> {
    let mut api = pb::roster_service_client::RosterServiceClient::new(client.channel().await?);
    let s = api
        .get_roster_stats(client.admin(pb::GetRosterStatsRequest {})?)
        .await
        .map_err(explain)?
        .into_inner();
    println!("roster version {}", s.roster_version);
    println!("total {} (active {})", s.total, s.active);
    println!(
        "市级专家 {}  县镇级骨干 {}  村级实用人才 {}",
        s.city, s.county_town, s.village
    );
    println!("服务团成员 {}", s.corps_members);
    let mut by_corps: Vec<_> = s.by_corps.into_iter().collect();
    by_corps.sort();
    println!(
        "  {}",
        by_corps
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join("  ")
    );
    let mut by_county: Vec<_> = s.by_county.into_iter().collect();
    by_county.sort();
    for (county, n) in by_county {
        println!("  {county} {n}");
    }
    Ok(())
}

/// `talents`: prints one page of the filtered roster, phones included.
pub(crate) async fn talents(args: TalentsArgs) -> anyhow::Result<()> {
    let mut api = pb::roster_service_client::RosterServiceClient::new(args.client.channel().await?);
    let request = pb::ListTalentsRequest {
        county: args.county.unwrap_or_default(),
        division_code: args.division.unwrap_or_default(),
        specialty: args.specialty.unwrap_or_default(),
        query: args.query.unwrap_or_default(),
        page_size: args.page_size,
        page_token: args.page_token.unwrap_or_default(),
        include_inactive: args.include_inactive,
        ..Default::default()
    };
    let reply = api
        .list_talents(args.client.admin(request)?)
        .await
        .map_err(explain)?
        .into_inner();
    for t in &reply.talents {
        println!(
            "{}  {}  {}  {}  {}  {}{}",
            safe(&t.id),
            safe(&t.name),
            safe(&t.phone),
            safe(&t.county_name),
            safe(&t.division_name),
            safe(&t.specialties.join("、")),
            if t.active { "" } else { "  (inactive)" }
        );
    }
    println!("{} of {} shown", reply.talents.len(), reply.total);
    if !reply.next_page_token.is_empty() {
        println!("next page: --page-token {}", reply.next_page_token);
    }
    Ok(())
}

fn print_match(reply: &pb::MatchProblemResponse) {
    let corps = pb::Corps::try_from(reply.corps)
        .map(|c| c.as_str_name())
        .unwrap_or("?");
    let analysis = reply.analysis.clone().unwrap_or_default();
    println!(
        "subject {}  corps {}  confidence {:.2}{}",
        if reply.subject.is_empty() {
            "—"
        } else {
            &reply.subject
        },
        corps,
        analysis.confidence,
        if analysis.runner_up.is_empty() {
            String::new()
        } else {
            format!("  runner-up {}", analysis.runner_up)
        }
    );
    if !analysis.note.is_empty() {
        println!("{}", analysis.note);
    }
    for (i, c) in reply.candidates.iter().enumerate() {
        let t = c.talent.clone().unwrap_or_default();
        println!(
            "{:>2}. {} {} ({}, {})  {:.1} km",
            i + 1,
            safe(&t.id),
            safe(&t.name),
            safe(&t.county_name),
            safe(&t.division_name),
            c.distance_km
        );
        println!("    {}", safe(&c.reason));
    }
}
