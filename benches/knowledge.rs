//! In-process benchmark of the knowledge search: 100,000 entries
//! (`XWN_BENCH_SIZE` to change it) generated from the project's real
//! vocabulary, loaded into the index, then the development queries
//! (`tests/data/knowledge/dev-queries.jsonl`) searched as `SearchKnowledge`
//! searches them (the query's subject read by the analyser, then the index)
//! and as `MatchProblem` does (the subject already read): p50/p99 per
//! search.
//!
//! The entries are drawn like a real base's: the subject by what Weinan's
//! counties grow and raise (`index/county_profiles.csv`, every subject at
//! least once in a while), the problem from the clauses of the farmers'
//! reports of `tests/data/problems/dev.jsonl` for that subject, its
//! aliases (`index/subjects.csv`) and its symptoms, diseases, pests and
//! parts (`index/lexicon/terms.csv`), the answer from a diagnosis and the
//! clauses of `tests/data/knowledge/dev-entries.jsonl`'s answers with the
//! subject's practices. Many entries share words, as at 100,000 real
//! ones: the benchmark prints how many entries share a word with a query,
//! beside the same share in the hand-written bases.
//!
//! Run: `cargo bench --bench knowledge` (or `--profile dev` on a loaded
//! machine; tantivy and jieba are optimised even there).

#[path = "common/figures.rs"]
mod figures;

use std::{collections::HashMap, time::Instant};

use xingweinong::{
    knowledge::{eval, Entry, KnowledgeIndex, Publisher, Query},
    reading::{eval as reading_eval, lexicon::Lexicon},
};

/// Weinan's county-level codes.
const COUNTIES: [&str; 11] = [
    "610502000000",
    "610503000000",
    "610522000000",
    "610523000000",
    "610524000000",
    "610525000000",
    "610526000000",
    "610527000000",
    "610528000000",
    "610581000000",
    "610582000000",
];
/// How a farmer ends a report the development set has none of.
const ASKING: [&str; 6] = ["咋办", "这是啥病", "怎么治", "得是病了", "咋回事", "用啥药"];
/// How a solver opens a treatment step with one of the subject's practices.
const DOING: [&str; 4] = ["及时", "注意", "做好", "结合"];

/// A small deterministic generator (no crate needed for a bench).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % n.max(1) as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// What the generator knows of one subject.
#[derive(Default)]
struct Subject {
    name: String,
    corps: String,
    /// How often it comes up: its weight summed over the counties, plus 1.
    weight: usize,
    /// Its name, aliases, varieties and dialect names.
    names: Vec<String>,
    /// Symptoms, diseases and pests: what a report describes.
    signs: Vec<String>,
    /// Diseases and pests: what an answer names.
    causes: Vec<String>,
    parts: Vec<String>,
    practices: Vec<String>,
    /// The clauses of the development reports about it.
    clauses: Vec<Vec<String>>,
}

struct Vocabulary {
    subjects: Vec<Subject>,
    /// Running sums of the weights, to draw a subject.
    cumulative: Vec<usize>,
    /// The clauses of the development answers.
    answer_clauses: Vec<String>,
}

fn clauses(text: &str) -> Vec<String> {
    text.split([' ', '，', ',', '。', '？', '?', '！', '；', '、'])
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect()
}

fn csv_rows(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split(',').collect())
}

impl Vocabulary {
    fn load() -> Vocabulary {
        let root = env!("CARGO_MANIFEST_DIR");
        let read = |path: &str| {
            std::fs::read_to_string(format!("{root}/{path}")).expect("a bench data file")
        };
        let mut by_name: HashMap<String, Subject> = HashMap::new();
        let mut order = Vec::new();
        for row in csv_rows(&read("index/subjects.csv")) {
            let mut names = vec![row[0].to_string()];
            names.extend(
                row[3]
                    .split(';')
                    .filter(|a| !a.is_empty())
                    .map(str::to_string),
            );
            order.push(row[0].to_string());
            by_name.insert(
                row[0].to_string(),
                Subject {
                    name: row[0].to_string(),
                    corps: row[1].to_string(),
                    weight: 1,
                    names,
                    ..Subject::default()
                },
            );
        }
        for row in csv_rows(&read("index/county_profiles.csv")) {
            if let Some(s) = by_name.get_mut(row[1]) {
                s.weight += row[2].trim().parse::<usize>().unwrap_or(0);
            }
        }
        for row in csv_rows(&read("index/lexicon/terms.csv")) {
            let (term, subject, kind) = (row[0].to_string(), row[1], row[2]);
            let Some(s) = by_name.get_mut(subject) else {
                continue;
            };
            match kind {
                "alias" | "variety" | "dialect" => s.names.push(term),
                "symptom" => s.signs.push(term),
                "disease" | "pest" => {
                    s.signs.push(term.clone());
                    s.causes.push(term);
                }
                "part" => s.parts.push(term),
                "practice" => s.practices.push(term),
                _ => {}
            }
        }
        let reports =
            reading_eval::parse(&read("tests/data/problems/dev.jsonl")).expect("dev reports");
        for report in reports {
            if let Some(s) = by_name.get_mut(&report.subject) {
                s.clauses.push(clauses(&report.text));
            }
        }
        let answers = eval::parse_entries(&read("tests/data/knowledge/dev-entries.jsonl"))
            .expect("dev entries");
        let answer_clauses = answers.iter().flat_map(|e| clauses(&e.answer)).collect();
        let subjects: Vec<Subject> = order
            .into_iter()
            .filter_map(|n| by_name.remove(&n))
            .collect();
        let cumulative = subjects
            .iter()
            .scan(0, |sum, s| {
                *sum += s.weight;
                Some(*sum)
            })
            .collect();
        Vocabulary {
            subjects,
            cumulative,
            answer_clauses,
        }
    }

    fn subject(&self, rng: &mut Lcg) -> &Subject {
        let at = rng.below(*self.cumulative.last().expect("subjects"));
        &self.subjects[self.cumulative.partition_point(|&c| c <= at)]
    }

    /// A farmer's report: clauses of the development reports about the
    /// subject (its name now and then said another way), a sign of the
    /// lexicon, or, for a subject no report is about, the lexicon alone.
    fn problem(&self, s: &Subject, rng: &mut Lcg) -> String {
        let mut parts: Vec<String> = Vec::new();
        if s.clauses.is_empty() {
            parts.push(format!(
                "{}{}{}",
                rng.pick(&s.names),
                s.parts.get(rng.below(s.parts.len() * 2)).map_or("", |p| p),
                s.signs.get(rng.below(s.signs.len())).map_or("", |p| p)
            ));
        } else {
            let first = rng.pick(&s.clauses);
            parts.push(first[0].clone());
            if let Some(more) = first.get(1 + rng.below(first.len())) {
                parts.push(more.clone());
            }
            if rng.chance(60) {
                let other = rng.pick(&s.clauses);
                parts.push(rng.pick(other).clone());
            }
            if rng.chance(30) {
                let alias = rng.pick(&s.names);
                parts[0] = parts[0].replacen(&s.name, alias, 1);
            }
        }
        if !s.signs.is_empty() && rng.chance(50) {
            parts.push(format!("还有点{}", rng.pick(&s.signs)));
        }
        if s.clauses.is_empty() || rng.chance(20) {
            parts.push((*rng.pick(&ASKING)).to_string());
        }
        parts.join(if rng.chance(50) { " " } else { "，" })
    }

    /// A solver's answer: the cause, then treatment steps from the
    /// development answers and the subject's practices.
    fn answer(&self, s: &Subject, rng: &mut Lcg) -> String {
        let mut steps: Vec<String> = Vec::new();
        if !s.causes.is_empty() {
            steps.push(format!("这是{}", rng.pick(&s.causes)));
        }
        // 3 to 8 steps: about as long as the hand-written answers (75
        // characters on average), whose words a query matches too.
        for _ in 0..3 + rng.below(6) {
            if !s.practices.is_empty() && rng.chance(30) {
                steps.push(format!("{}{}", rng.pick(&DOING), rng.pick(&s.practices)));
            } else {
                steps.push(rng.pick(&self.answer_clauses).clone());
            }
        }
        steps.join("，") + "。"
    }

    fn entries(&self, n: usize) -> Vec<Entry> {
        let mut rng = Lcg(18);
        (0..n)
            .map(|i| {
                let s = self.subject(&mut rng);
                Entry {
                    id: format!("g{i}"),
                    text: self.problem(s, &mut rng),
                    subject: s.name.clone(),
                    corps: eval::corps(&s.corps),
                    county_code: (*rng.pick(&COUNTIES)).into(),
                    county_name: String::new(),
                    answer: self.answer(s, &mut rng),
                    tier: None,
                    resolved_at_ms: 0,
                    rating: None,
                    published_by: Publisher::Admin,
                }
            })
            .collect()
    }
}

/// The mean share of the base that has a word of a query.
fn sharing(index: &KnowledgeIndex, queries: &[eval::LabelledQuery]) -> f64 {
    let total: usize = queries
        .iter()
        .map(|q| index.sharing(&q.text).unwrap())
        .sum();
    total as f64 / queries.len() as f64 / index.len() as f64
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let size = figures::size(100_000);
    let rounds = figures::rounds();
    let lexicon = Lexicon::embedded();
    let queries =
        eval::parse_queries(include_str!("../tests/data/knowledge/dev-queries.jsonl")).unwrap();
    let vocabulary = Vocabulary::load();
    let entries = vocabulary.entries(size);
    for e in entries.iter().take(3) {
        println!("e.g. {} | {}", e.text, e.answer);
    }
    let chars = |f: fn(&Entry) -> &str| {
        entries.iter().map(|e| f(e).chars().count()).sum::<usize>() as f64 / size as f64
    };
    println!(
        "mean length: problem {:.1} chars, answer {:.1} chars",
        chars(|e| &e.text),
        chars(|e| &e.answer)
    );
    let index = KnowledgeIndex::new(lexicon).unwrap();
    let started = Instant::now();
    index.apply(entries, &[]).unwrap();
    println!(
        "{size} entries indexed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    for (label, file) in [
        (
            "development",
            include_str!("../tests/data/knowledge/dev-entries.jsonl"),
        ),
        (
            "held-out",
            include_str!("../tests/data/knowledge/knowledge-entries.jsonl"),
        ),
    ] {
        let real = KnowledgeIndex::new(lexicon).unwrap();
        real.apply(eval::parse_entries(file).unwrap(), &[]).unwrap();
        println!(
            "a query shares a word with {:.0}% of the {label} base ({} entries)",
            100.0 * sharing(&real, &queries),
            real.len()
        );
    }
    println!(
        "a query shares a word with {:.0}% of the generated base",
        100.0 * sharing(&index, &queries)
    );
    let (mut find, mut similar, mut shown) = (Vec::new(), Vec::new(), 0usize);
    for _ in 0..rounds {
        for q in &queries {
            let query = Query {
                text: &q.text,
                limit: 3,
                ..Query::default()
            };
            let t = Instant::now();
            let hits = index.find(&query).unwrap();
            find.push(t.elapsed().as_nanos() as u64);
            shown += hits.len();
            let hinted = Query {
                hint_subject: Some("苹果"),
                ..query
            };
            let t = Instant::now();
            let _ = index.find(&hinted).unwrap();
            similar.push(t.elapsed().as_nanos() as u64);
        }
    }
    figures::percentiles("SearchKnowledge (reads subject)", find);
    figures::percentiles("MatchProblem similar (subject given)", similar);
    println!("hits shown: {shown}");
}
