//! Evaluation of the analyser on labelled reports (`xwn eval`): subject and
//! corps accuracy, abstentions, non-agricultural recall, reports that name
//! nothing, a table by kind, a corps confusion table and the worst misses.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::reading::lexicon::Lexicon;

/// One labelled report. `expect` says what should become of it: `route`
/// (to `corps`, and to `subject` when one is given), `missing` (a plant or
/// animal problem that names nothing: it should be routed nowhere and
/// asked for what is missing) or `nonagri` (not a technical problem). When
/// absent it is `route` for a report with a corps and `nonagri` otherwise,
/// which is how `dev.jsonl` is labelled.
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
    #[serde(default)]
    pub(crate) expect: Option<Expect>,
    /// The report's kind for the per-kind table (`kind`, or `difficulty`
    /// in `dev.jsonl`).
    #[serde(default, alias = "difficulty")]
    pub(crate) kind: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Expect {
    Route,
    Missing,
    Nonagri,
}

impl Labelled {
    fn expect(&self) -> Expect {
        self.expect.unwrap_or(if self.corps.is_empty() {
            Expect::Nonagri
        } else {
            Expect::Route
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Miss {
    pub id: String,
    pub text: String,
    pub(crate) expected: String,
    pub(crate) got: String,
    pub(crate) confidence: f32,
}

/// The figures of one kind of report.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct KindRow {
    pub(crate) total: usize,
    /// Reports whose outcome is right: a routed one with the right corps
    /// (and subject, when labelled); a non-agricultural one routed nowhere;
    /// one that names nothing routed nowhere with the prompt.
    pub(crate) right: usize,
    pub(crate) subject_labelled: usize,
    pub(crate) subject_correct: usize,
    pub(crate) corps_labelled: usize,
    pub(crate) corps_correct: usize,
    pub(crate) abstained: usize,
}

/// The figures of one evaluation run.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Report {
    pub(crate) total: usize,
    /// Reports expected to be routed (a corps label).
    pub(crate) routable: usize,
    /// Routable reports with a subject label.
    pub(crate) subject_labelled: usize,
    pub(crate) subject_correct: usize,
    pub(crate) corps_correct: usize,
    /// Routable reports where the analyser named neither subject nor corps.
    pub(crate) abstained: usize,
    /// Of those, the ones asked what it is (`Analysis.missing`): symptoms
    /// the label reads as one subject, that name nothing (README "Triage
    /// rule"). Their ticket goes to triage, not to the label's people, so
    /// they count as abstained and their subject and corps as wrong.
    pub(crate) asked: usize,
    /// Of those asked, the ones whose guess (the subject the symptoms add
    /// up to, else the hint's corps) is the label's: what triage is shown.
    pub(crate) asked_guess_right: usize,
    pub(crate) nonagri: usize,
    /// Non-agricultural reports the analyser routed nowhere.
    pub(crate) nonagri_recognised: usize,
    /// Plant or animal problems that name nothing.
    pub(crate) missing: usize,
    /// Of those, the ones routed nowhere.
    pub(crate) missing_unrouted: usize,
    /// Of those, the ones routed nowhere that say what is missing.
    pub(crate) missing_prompted: usize,
    /// By the issue's five kinds ([`issue_kind`]), in name order; a label
    /// that is not one of the first set's passes as it is.
    pub(crate) kinds: BTreeMap<String, KindRow>,
    /// By the file's own `kind`, when some label was mapped; else empty.
    pub(crate) own_kinds: BTreeMap<String, KindRow>,
    /// expected corps → predicted corps (or "—") → count; "—" rows are the
    /// reports expected to be routed nowhere.
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

impl KindRow {
    fn add(&mut self, other: &KindRow) {
        self.total += other.total;
        self.right += other.right;
        self.subject_labelled += other.subject_labelled;
        self.subject_correct += other.subject_correct;
        self.corps_labelled += other.corps_labelled;
        self.corps_correct += other.corps_correct;
        self.abstained += other.abstained;
    }
}

impl Report {
    /// Counts one report's outcome under its issue kind, and under its own
    /// kind when that differs.
    fn add_kind(&mut self, item: &Labelled, row: &KindRow) {
        let kind = issue_kind(&item.kind, &item.subject);
        self.kinds.entry(kind.to_string()).or_default().add(row);
        if kind != item.kind {
            self.own_kinds
                .entry(item.kind.clone())
                .or_default()
                .add(row);
        }
    }

    pub(crate) fn subject_accuracy(&self) -> f64 {
        pct(self.subject_correct, self.subject_labelled)
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
            self.subject_labelled
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
        if self.asked > 0 {
            out.push_str(&format!(
                "  of which asked what it is {} (their guess right: {}), without the prompt {}\n",
                self.asked,
                self.asked_guess_right,
                self.abstained - self.asked
            ));
        }
        out.push_str(&format!(
            "non-agri recognised {:.1}% ({}/{})\n",
            self.nonagri_recall(),
            self.nonagri_recognised,
            self.nonagri
        ));
        if self.missing > 0 {
            out.push_str(&format!(
                "names nothing, routed nowhere {:.1}% ({}/{}), with the prompt {:.1}% ({}/{})\n",
                pct(self.missing_unrouted, self.missing),
                self.missing_unrouted,
                self.missing,
                pct(self.missing_prompted, self.missing),
                self.missing_prompted,
                self.missing
            ));
        }
        if self.kinds.len() > 1 || self.kinds.keys().any(|k| !k.is_empty()) {
            render_kinds(&mut out, "kind", &self.kinds);
        }
        if !self.own_kinds.is_empty() {
            render_kinds(&mut out, "file's kind", &self.own_kinds);
        }
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

/// A table of figures by kind, headed by `head`.
fn render_kinds(out: &mut String, head: &str, kinds: &BTreeMap<String, KindRow>) {
    out.push_str(&format!(
        "\n{:<16}{:>6}{:>16}{:>16}{:>16}{:>11}\n",
        head, "n", "right", "subject", "corps", "abstained"
    ));
    let cell = |n: usize, d: usize| {
        if d == 0 {
            "—".to_string()
        } else {
            format!("{:.1}% {n}/{d}", pct(n, d))
        }
    };
    for (kind, row) in kinds {
        out.push_str(&format!(
            "{:<16}{:>6}{:>16}{:>16}{:>16}{:>11}\n",
            if kind.is_empty() { "(none)" } else { kind },
            row.total,
            cell(row.right, row.total),
            cell(row.subject_correct, row.subject_labelled),
            cell(row.corps_correct, row.corps_labelled),
            row.abstained
        ));
    }
}

/// The issue's kind (named_canonical, named_other, generic_only,
/// photo_only, non_agri) of a report labelled with the first held-out
/// set's kinds: `in70` names a canonical subject; `outside70` a crop
/// outside the 70; `shared_pest` and `place` name a host, canonical when a
/// subject is labelled; `generic`, `missing` and `nonagri` are the last
/// three. Any other label (the five themselves, `dev.jsonl`'s
/// difficulties) is kept.
pub(crate) fn issue_kind<'k>(kind: &'k str, subject: &str) -> &'k str {
    match kind {
        "in70" => "named_canonical",
        "outside70" => "named_other",
        "shared_pest" | "place" if subject.is_empty() => "named_other",
        "shared_pest" | "place" => "named_canonical",
        "generic" => "generic_only",
        "missing" => "photo_only",
        "nonagri" => "non_agri",
        other => other,
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
        let unrouted = a.subject.is_none() && a.corps.is_none();
        let mut row = KindRow {
            total: 1,
            ..KindRow::default()
        };
        let expect = item.expect();
        if expect != Expect::Route {
            let recognised = if expect == Expect::Missing {
                report.missing += 1;
                &mut report.missing_unrouted
            } else {
                report.nonagri += 1;
                &mut report.nonagri_recognised
            };
            if unrouted {
                *recognised += 1;
                if expect == Expect::Missing && a.missing.is_some() {
                    report.missing_prompted += 1;
                    row.right += 1;
                } else if expect == Expect::Nonagri {
                    row.right += 1;
                }
            } else {
                report.misses.push(Miss {
                    id: item.id.clone(),
                    text: item.text.clone(),
                    expected: if expect == Expect::Missing {
                        "(缺作物)".into()
                    } else {
                        "(非农)".into()
                    },
                    got: format!("{got_subject}/{got_corps}"),
                    confidence: a.confidence,
                });
            }
            report.add_kind(item, &row);
            continue;
        }
        report.routable += 1;
        row.corps_labelled += 1;
        if unrouted {
            report.abstained += 1;
            row.abstained += 1;
            if a.missing.is_some() {
                report.asked += 1;
                let guess_right = if item.subject.is_empty() {
                    a.hint.is_some_and(|c| c.chinese() == item.corps)
                } else {
                    a.guess
                        .is_some_and(|s| lexicon.subject(s).name == item.subject)
                };
                report.asked_guess_right += usize::from(guess_right);
            }
        }
        let corps_right = got_corps == item.corps;
        if corps_right {
            report.corps_correct += 1;
            row.corps_correct += 1;
        }
        let subject_right = item.subject.is_empty() || got_subject == item.subject;
        if !item.subject.is_empty() {
            report.subject_labelled += 1;
            row.subject_labelled += 1;
            if subject_right {
                report.subject_correct += 1;
                row.subject_correct += 1;
            }
        }
        if corps_right && subject_right {
            row.right += 1;
        } else {
            report.misses.push(Miss {
                id: item.id.clone(),
                text: item.text.clone(),
                expected: if item.subject.is_empty() {
                    format!("(none)/{}", item.corps)
                } else {
                    item.subject.clone()
                },
                got: if got_subject.is_empty() {
                    format!("(none)/{got_corps}")
                } else {
                    got_subject
                },
                confidence: a.confidence,
            });
        }
        report.add_kind(item, &row);
    }
    // Confident mistakes first: they are the ones that route wrongly.
    report
        .misses
        .sort_by(|a, b| b.confidence.total_cmp(&a.confidence).then(a.id.cmp(&b.id)));
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_expectation_is_scored_by_its_own_rule() {
        let items = parse(concat!(
            r#"{"id":"a","text":"苹果树叶子发黄有斑点","subject":"苹果","corps":"果树","kind":"named"}"#,
            "\n",
            r#"{"id":"b","text":"苹果树叶子发黄有斑点","subject":"梨","corps":"果树","kind":"named"}"#,
            "\n",
            r#"{"id":"c","text":"苹果树叶子发黄有斑点","corps":"果树","kind":"other"}"#,
            "\n",
            r#"{"id":"d","text":"种粮补贴啥时候发","kind":"nonagri"}"#,
            "\n",
            r#"{"id":"e","text":"苹果树叶子发黄有斑点","expect":"missing","kind":"photo"}"#,
            "\n",
        ))
        .unwrap();
        let r = evaluate(Lexicon::embedded(), &items);
        assert_eq!(
            (r.routable, r.subject_labelled, r.subject_correct),
            (3, 2, 1)
        );
        assert_eq!((r.corps_correct, r.abstained), (3, 0));
        assert_eq!((r.nonagri, r.nonagri_recognised), (1, 1));
        assert_eq!((r.missing, r.missing_unrouted), (1, 0), "e was routed");
        let named = &r.kinds["named"];
        assert_eq!((named.total, named.right, named.subject_correct), (2, 1, 1));
        assert_eq!(
            r.kinds["other"].right, 1,
            "no subject label: the corps decides"
        );
        let ids: Vec<&str> = r.misses.iter().map(|m| m.id.as_str()).collect();
        assert!(
            ids.contains(&"b") && ids.contains(&"e") && !ids.contains(&"c"),
            "{ids:?}"
        );
        let text = r.render(5);
        assert!(
            text.contains("names nothing, routed nowhere 0.0% (0/1), with the prompt 0.0% (0/1)"),
            "{text}"
        );
        let photo = parse(
            r#"{"id":"f","text":"这是什么病？叶子发黄是咋回事","expect":"missing","kind":"photo"}"#,
        )
        .unwrap();
        let r = evaluate(Lexicon::embedded(), &photo);
        assert_eq!(
            (
                r.missing_unrouted,
                r.missing_prompted,
                r.kinds["photo"].right
            ),
            (1, 1, 1)
        );
    }

    #[test]
    fn a_routable_report_asked_what_it_is_counts_as_abstained_with_its_guess() {
        // dev.jsonl labels symptom reports with the subject they add up to;
        // the analyser asks what it is (nothing names it) and keeps 猪 as a
        // guess: abstained, not right, and the guess said apart.
        let items = parse(concat!(
            r#"{"id":"a","text":"拉稀不吃食 打啥针","subject":"猪","corps":"畜牧","kind":"symptom"}"#,
            "\n",
            r#"{"id":"b","text":"拉稀不吃食 打啥针","subject":"羊","corps":"畜牧","kind":"symptom"}"#,
            "\n",
        ))
        .unwrap();
        let r = evaluate(Lexicon::embedded(), &items);
        assert_eq!((r.abstained, r.asked, r.asked_guess_right), (2, 2, 1));
        assert_eq!((r.subject_correct, r.corps_correct), (0, 0));
        let text = r.render(0);
        assert!(
            text.contains(
                "of which asked what it is 2 (their guess right: 1), without the prompt 0"
            ),
            "{text}"
        );
    }

    #[test]
    fn the_first_sets_kinds_are_reported_as_the_issues_five() {
        let items = parse(concat!(
            r#"{"id":"a","text":"苹果树叶子发黄","subject":"苹果","corps":"果树","kind":"in70"}"#,
            "\n",
            r#"{"id":"b","text":"生菜叶子发黄","corps":"蔬菜","kind":"outside70"}"#,
            "\n",
            r#"{"id":"c","text":"白菜地里好多虫","subject":"白菜","corps":"蔬菜","kind":"place"}"#,
            "\n",
            r#"{"id":"d","text":"生菜地里全是蚜虫","corps":"蔬菜","kind":"place"}"#,
            "\n",
            r#"{"id":"e","text":"这是什么病？","expect":"missing","kind":"missing"}"#,
            "\n",
            r#"{"id":"f","text":"你好","kind":"nonagri"}"#,
            "\n",
            r#"{"id":"g","text":"庄稼叶子发黄咋办","corps":"粮油","kind":"generic"}"#,
            "\n",
        ))
        .unwrap();
        let r = evaluate(Lexicon::embedded(), &items);
        let totals: Vec<(&str, usize)> =
            r.kinds.iter().map(|(k, v)| (k.as_str(), v.total)).collect();
        assert_eq!(
            totals,
            [
                ("generic_only", 1),
                ("named_canonical", 2),
                ("named_other", 2),
                ("non_agri", 1),
                ("photo_only", 1)
            ]
        );
        assert_eq!(r.own_kinds["place"].total, 2);
        let text = r.render(0);
        assert!(
            text.contains("named_canonical") && text.contains("file's kind"),
            "{text}"
        );
        // Labels that are the issue's own pass as they are, with no second table.
        let set2 = parse(r#"{"id":"h","text":"你好","kind":"non_agri"}"#).unwrap();
        let r = evaluate(Lexicon::embedded(), &set2);
        assert_eq!(r.kinds["non_agri"].total, 1);
        assert!(r.own_kinds.is_empty());
    }
}
