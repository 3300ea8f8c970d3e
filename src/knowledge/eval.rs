//! Measures the knowledge search (`xwn eval-knowledge`): solved problems
//! (JSONL: id, text, subject, corps, county_code, answer) go into a fresh
//! index, then each query (JSONL: id, text, expect — an entry id, or ""
//! when nothing in the base answers it) is searched as `SearchKnowledge`
//! searches it. Reported: precision at 1 and recall at 3 over the queries
//! with an expect, and the share of the others that got any hit above the
//! threshold (false alarms).

use std::fmt::Write as _;

use serde::Deserialize;

use super::{Entry, KnowledgeIndex, Publisher, Query};
use crate::{
    error::{Error, Result},
    model::Corps,
    reading::lexicon::Lexicon,
};

#[derive(Debug, Deserialize)]
struct SolvedRow {
    id: String,
    text: String,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    corps: String,
    #[serde(default)]
    county_code: String,
    #[serde(default)]
    answer: String,
}

/// One labelled query.
#[derive(Debug, Clone, Deserialize)]
pub struct LabelledQuery {
    pub id: String,
    pub text: String,
    /// The entry that answers it; empty when none does.
    #[serde(default)]
    pub expect: String,
}

/// What the evaluation measured.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub entries: usize,
    /// Queries with an expected entry.
    pub answerable: usize,
    pub first: usize,
    pub in_three: usize,
    /// Queries nothing answers.
    pub unanswerable: usize,
    /// Of those, how many got a hit above the threshold.
    pub false_alarms: usize,
    /// Misses: query id, expected, what came first (or "").
    pub misses: Vec<(String, String, String)>,
}

impl Report {
    pub fn precision_at_1(&self) -> f64 {
        ratio(self.first, self.answerable)
    }

    pub fn recall_at_3(&self) -> f64 {
        ratio(self.in_three, self.answerable)
    }

    pub fn false_alarm_rate(&self) -> f64 {
        ratio(self.false_alarms, self.unanswerable)
    }

    pub fn render(&self, worst: usize) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "entries {}  queries with an answer {}  without {}",
            self.entries, self.answerable, self.unanswerable
        );
        let _ = writeln!(
            out,
            "P@1 {:.3}  R@3 {:.3}  no-answer queries with a hit {:.3} ({} of {})  threshold {:.2}",
            self.precision_at_1(),
            self.recall_at_3(),
            self.false_alarm_rate(),
            self.false_alarms,
            self.unanswerable,
            super::index::THRESHOLD
        );
        for (id, expect, got) in self.misses.iter().take(worst) {
            let _ = writeln!(out, "  miss {id}: expected {expect:?}, first {got:?}");
        }
        out
    }
}

fn ratio(n: usize, of: usize) -> f64 {
    if of == 0 {
        0.0
    } else {
        n as f64 / of as f64
    }
}

fn lines<T: for<'de> Deserialize<'de>>(text: &str, what: &str) -> Result<Vec<T>> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| Error::invalid(what, format!("line {}: {e}", i + 1)))
        })
        .collect()
}

/// A corps as the labelled files write it (粮油, 果树组, grain_oil…).
pub fn corps(text: &str) -> Option<Corps> {
    Corps::parse(text)
}

/// The entries of a JSONL file of solved problems.
pub fn parse_entries(text: &str) -> Result<Vec<Entry>> {
    let rows: Vec<SolvedRow> = lines(text, "entries")?;
    Ok(rows
        .into_iter()
        .map(|r| Entry {
            id: r.id,
            text: r.text,
            subject: r.subject,
            corps: corps(&r.corps),
            county_code: r.county_code,
            county_name: String::new(),
            answer: r.answer,
            tier: None,
            resolved_at_ms: 0,
            rating: None,
            published_by: Publisher::Admin,
        })
        .collect())
}

pub fn parse_queries(text: &str) -> Result<Vec<LabelledQuery>> {
    lines(text, "queries")
}

/// Loads the entries into a fresh index and runs every query.
pub fn evaluate(
    lexicon: &'static Lexicon,
    entries: Vec<Entry>,
    queries: &[LabelledQuery],
) -> Result<Report> {
    let index = KnowledgeIndex::new(lexicon)?;
    let mut report = Report {
        entries: entries.len(),
        ..Report::default()
    };
    index.apply(entries, &[])?;
    for q in queries {
        let hits = index.find(&Query {
            text: &q.text,
            limit: 3,
            ..Query::default()
        })?;
        let first = hits.first().map(|h| h.entry.id.clone()).unwrap_or_default();
        if q.expect.is_empty() {
            report.unanswerable += 1;
            if !hits.is_empty() {
                report.false_alarms += 1;
                report.misses.push((q.id.clone(), String::new(), first));
            }
            continue;
        }
        report.answerable += 1;
        if first == q.expect {
            report.first += 1;
        } else {
            report.misses.push((q.id.clone(), q.expect.clone(), first));
        }
        if hits.iter().any(|h| h.entry.id == q.expect) {
            report.in_three += 1;
        }
    }
    Ok(report)
}
