//! Evaluation of the analyser on labelled reports (`xwn eval`): subject and
//! corps accuracy, abstentions, non-agricultural recall, a corps confusion
//! table and the worst misses.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::reading::lexicon::Lexicon;

/// One labelled report; `subject` and `corps` are empty for reports that are
/// not agricultural technical problems.
#[derive(Debug, Clone, Deserialize)]
pub struct Labelled {
    #[serde(default)]
    pub id: String,
    pub text: String,
    #[serde(default)]
    pub subject: String,
    #[serde(default)]
    pub(crate) corps: String,
    #[serde(default)]
    pub division_code: String,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Miss {
    pub id: String,
    pub text: String,
    pub(crate) expected: String,
    pub(crate) got: String,
    pub(crate) confidence: f32,
}

/// The figures of one evaluation run.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Report {
    pub(crate) total: usize,
    /// Reports with a subject label.
    pub(crate) routable: usize,
    pub(crate) subject_correct: usize,
    pub(crate) corps_correct: usize,
    /// Routable reports where the analyser named neither subject nor corps.
    pub(crate) abstained: usize,
    pub(crate) nonagri: usize,
    /// Non-agricultural reports the analyser routed nowhere.
    pub(crate) nonagri_recognised: usize,
    /// expected corps → predicted corps (or "—") → count; "—" rows are the
    /// non-agricultural reports.
    pub(crate) confusion: BTreeMap<String, BTreeMap<String, usize>>,
    pub(crate) misses: Vec<Miss>,
}

fn pct(n: usize, d: usize) -> f64 {
    if d == 0 {
        0.0
    } else {
        100.0 * n as f64 / d as f64
    }
}

impl Report {
    pub(crate) fn subject_accuracy(&self) -> f64 {
        pct(self.subject_correct, self.routable)
    }
    pub(crate) fn corps_accuracy(&self) -> f64 {
        pct(self.corps_correct, self.routable)
    }
    pub(crate) fn abstain_rate(&self) -> f64 {
        pct(self.abstained, self.routable)
    }
    pub(crate) fn nonagri_recall(&self) -> f64 {
        pct(self.nonagri_recognised, self.nonagri)
    }

    /// The report as `xwn eval` prints it.
    pub(crate) fn render(&self, worst: usize) -> String {
        let mut out = String::new();
        out.push_str(&format!("reports            {}\n", self.total));
        out.push_str(&format!(
            "subject accuracy   {:.1}% ({}/{})\n",
            self.subject_accuracy(),
            self.subject_correct,
            self.routable
        ));
        out.push_str(&format!(
            "corps accuracy     {:.1}% ({}/{})\n",
            self.corps_accuracy(),
            self.corps_correct,
            self.routable
        ));
        out.push_str(&format!(
            "abstained          {:.1}% ({}/{})\n",
            self.abstain_rate(),
            self.abstained,
            self.routable
        ));
        out.push_str(&format!(
            "non-agri recognised {:.1}% ({}/{})\n",
            self.nonagri_recall(),
            self.nonagri_recognised,
            self.nonagri
        ));
        let columns: Vec<&str> = ["粮油", "蔬菜", "果树", "畜牧", "林水", "—"].to_vec();
        out.push_str("\ncorps confusion (rows: expected, columns: predicted)\n      ");
        for c in &columns {
            out.push_str(&format!("{c:>5}"));
        }
        out.push('\n');
        for row in &columns {
            out.push_str(&format!("{row:<4}"));
            for col in &columns {
                let n = self
                    .confusion
                    .get(*row)
                    .and_then(|r| r.get(*col))
                    .copied()
                    .unwrap_or(0);
                out.push_str(&format!("{n:>6}"));
            }
            out.push('\n');
        }
        if !self.misses.is_empty() {
            out.push_str(&format!("\nworst misses (of {})\n", self.misses.len()));
            for m in self.misses.iter().take(worst) {
                out.push_str(&format!(
                    "  {} expected {} got {} (confidence {:.2}): {}\n",
                    m.id, m.expected, m.got, m.confidence, m.text
                ));
            }
        }
        out
    }
}

/// Parses labelled JSONL; a bad line is an error naming it.
pub fn parse(text: &str) -> Result<Vec<Labelled>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| format!("line {}: {e}", i + 1)))
        .collect()
}

/// Runs the analyser over every report.
pub(crate) fn evaluate(lexicon: &Lexicon, items: &[Labelled]) -> Report {
    let mut report = Report {
        total: items.len(),
        ..Report::default()
    };
    for item in items {
        let divisions = crate::model::divisions::Divisions::embedded();
        let county = crate::model::divisions::DivisionCode::parse(&item.division_code)
            .and_then(|c| divisions.county_of(c))
            .map(|c| c.name.as_str());
        let a = super::analyzer::analyze_in(lexicon, &item.text, county);
        let got_subject = a
            .subject
            .map(|s| lexicon.subject(s).name.clone())
            .unwrap_or_default();
        let got_corps = a.corps.map(|c| c.chinese().to_string()).unwrap_or_default();
        let expected_row = if item.corps.is_empty() {
            "—".to_string()
        } else {
            item.corps.clone()
        };
        let got_col = if got_corps.is_empty() {
            "—".to_string()
        } else {
            got_corps.clone()
        };
        *report
            .confusion
            .entry(expected_row)
            .or_default()
            .entry(got_col)
            .or_default() += 1;
        if item.subject.is_empty() {
            report.nonagri += 1;
            if a.subject.is_none() && a.corps.is_none() {
                report.nonagri_recognised += 1;
            } else {
                report.misses.push(Miss {
                    id: item.id.clone(),
                    text: item.text.clone(),
                    expected: "(非农)".into(),
                    got: format!("{got_subject}/{got_corps}"),
                    confidence: a.confidence,
                });
            }
            continue;
        }
        report.routable += 1;
        if a.subject.is_none() && a.corps.is_none() {
            report.abstained += 1;
        }
        if got_corps == item.corps {
            report.corps_correct += 1;
        }
        if got_subject == item.subject {
            report.subject_correct += 1;
        } else {
            report.misses.push(Miss {
                id: item.id.clone(),
                text: item.text.clone(),
                expected: item.subject.clone(),
                got: if got_subject.is_empty() {
                    format!("(none)/{got_corps}")
                } else {
                    got_subject
                },
                confidence: a.confidence,
            });
        }
    }
    // Confident mistakes first: they are the ones that route wrongly.
    report
        .misses
        .sort_by(|a, b| b.confidence.total_cmp(&a.confidence).then(a.id.cmp(&b.id)));
    report
}
