//! Top-1 agreement: the nearest-qualified oracle over the roster, and each
//! system's first candidate scored against it.

use std::path::Path;

use anyhow::Context;
use xingweinong::model::Talent;

use crate::Target;
use crate::{
    files::{read_reports, read_roster},
    systems::{Conn, Query},
};

/// Per routable report, the talents having its labelled subject at the
/// least great-circle distance from its point (often several: talents of
/// one town share its point).
pub(crate) fn oracle(talents: &[Talent], q: &Query, subject: &str) -> Vec<String> {
    let qualified: Vec<(f64, &Talent)> = talents
        .iter()
        .filter(|t| t.specialties.iter().any(|s| s == subject))
        .map(|t| (q.point.distance_km(t.point), t))
        .collect();
    let Some(least) = qualified.iter().map(|(d, _)| *d).min_by(f64::total_cmp) else {
        return vec![];
    };
    qualified
        .into_iter()
        .filter(|(d, _)| *d <= least + 1e-9)
        .map(|(_, t)| t.id.clone())
        .collect()
}

pub(crate) async fn agree(
    target: &Target,
    roster: &Path,
    reports: &Path,
) -> anyhow::Result<(usize, usize, usize)> {
    let talents = read_roster(roster)?;
    let mut conn = Conn::connect(target).await?;
    let (mut agreed, mut routable, mut unanswered) = (0, 0, 0);
    for item in read_reports(reports)?
        .iter()
        .filter(|i| !i.subject.is_empty())
    {
        routable += 1;
        let q = Query::new(item)?;
        let best = oracle(&talents, &q, &item.subject);
        let top = conn
            .top(&q)
            .await
            .with_context(|| format!("{}: {}", target.system.key(), item.id))?;
        match top.first() {
            Some(id) if best.contains(id) => agreed += 1,
            Some(_) => {}
            None => unanswered += 1,
        }
    }
    Ok((agreed, routable, unanswered))
}
