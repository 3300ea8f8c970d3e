//! The files the driver reads and writes: the labelled reports, the
//! roster, the recorded figures, and the roster exported for the peers.

use std::{fmt::Write as _, io::Write as _, path::Path};

use anyhow::{anyhow, Context};
use xingweinong::{
    model::divisions::Divisions,
    model::Talent,
    reading::eval::{self, Labelled},
    reading::lexicon::Lexicon,
    roster::{parse_roster, RosterFormat},
};

use crate::systems::pieces;

pub(crate) fn read_reports(path: &Path) -> anyhow::Result<Vec<Labelled>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    eval::parse(&text).map_err(|e| anyhow!("{}: {e}", path.display()))
}

pub(crate) fn read_roster(path: &Path) -> anyhow::Result<Vec<Talent>> {
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
pub(crate) fn record(
    out: Option<&Path>,
    system: &str,
    fields: &[(&str, String)],
) -> anyhow::Result<()> {
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

pub(crate) fn export(roster: &Path, out_dir: &Path) -> anyhow::Result<()> {
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
