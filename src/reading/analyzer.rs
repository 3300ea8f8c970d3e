//! Reads a farmer's report: which subject (crop, animal or topic) and corps it
//! is about, how sure that is, the runner-up, and the evidence, weighed the
//! way an extension agent would read it.
//!
//! Every word jieba finds is looked up in the lexicon. A term names or hints
//! at subjects with a weight; a subject named just beside a neighbour cue
//! (边上, 隔壁) is read as a place, not the patient, and counts for little; a
//! subject in the same clause as a problem cue (发黄, 咋办) counts for more,
//! and so does one after a contrast cue (但是); hints add up; a specific
//! subject (奶山羊) takes its parent's (羊) evidence. A report whose words are
//! mostly about subsidies, prices or greetings and name no technical problem
//! is not agricultural.

use rustc_hash::FxHashMap as HashMap;

use crate::{
    model::divisions::Divisions,
    model::Corps,
    reading::lexicon::{CueRole, Lexicon, Sense, SubjectId, TermKind},
};

/// Below this evidence the analyser names no subject.
const MIN_SUBJECT_EVIDENCE: f32 = 0.45;
/// Below this evidence the analyser names no corps either.
const MIN_CORPS_EVIDENCE: f32 = 0.6;
/// Neighbour cues reach this many words back or forth.
const NEIGHBOUR_REACH: usize = 2;
/// How much a problem cue in the same clause raises a subject's weight.
const PROBLEM_BOOST: f32 = 0.3;
/// How much a problem cue right after a mention raises it, on top.
const CLOSE_PROBLEM_BOOST: f32 = 0.3;
/// How many words after a mention a problem cue counts as said of it.
const SYMPTOM_REACH: usize = 3;
/// How much a mention after a contrast cue is raised.
const CONTRAST_BOOST: f32 = 0.3;
/// How much a county's farming counts, times the subject's share of it.
const PRIOR_WEIGHT: f32 = 0.8;
/// What being named outright adds to a subject.
const NAMED_BONUS: f32 = 0.5;
/// What being the first subject named adds on top.
const FIRST_BONUS: f32 = 0.1;
/// What a mention naming a place of the subject (苹果园) counts for.
const PLACE_FACTOR: f32 = 0.5;
/// What each repeated mention of a term adds, as a share of its weight.
const REPEAT_SHARE: f32 = 0.3;
/// Non-agricultural markers below this never decide.
const NONAGRI_MIN: f32 = 0.5;
/// Share of a parent's evidence a child subject takes over.
const PARENT_SHARE: f32 = 0.6;
/// Suffixes that turn a subject into a place or a part (苹果园, 梨树, 猪场).
const SUFFIXES: [(&str, bool); 19] = [
    ("树", false),
    ("苗", false),
    ("秧", false),
    ("叶", false),
    ("园", true),
    ("地", true),
    ("田", true),
    ("棚", true),
    ("圈", true),
    ("场", true),
    ("舍", true),
    ("塘", true),
    ("池", true),
    ("架", false),
    ("子", false),
    ("娃", false),
    ("儿", false),
    ("里", false),
    ("上", false),
];
/// Prefixes that qualify a subject without changing it (小猪, 母羊).
const PREFIXES: [&str; 6] = ["小", "大", "母", "公", "老", "幼"];

/// How a piece of evidence was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Counts for the subject the report is about.
    Main,
    /// Mentioned as a place or a neighbour: counts for little.
    Neighbour,
    /// Names a place of the subject (苹果园): counts a little less.
    Place,
    /// Said to be fine (X没事): not the patient.
    Unaffected,
    /// A word that marks a technical problem.
    Problem,
    /// A word that marks a non-agricultural request.
    NonAgri,
    /// A word that points to a corps, not a subject.
    CorpsHint,
}

impl Role {
    pub fn key(self) -> &'static str {
        match self {
            Role::Main => "main",
            Role::Neighbour => "neighbour",
            Role::Place => "place",
            Role::Unaffected => "unaffected",
            Role::Problem => "problem",
            Role::NonAgri => "non_agricultural",
            Role::CorpsHint => "corps_hint",
        }
    }
}

/// One term of the report and what it contributed.
#[derive(Debug, Clone, PartialEq)]
pub struct Evidence {
    pub term: String,
    pub subject: Option<SubjectId>,
    pub corps: Option<Corps>,
    pub kind: &'static str,
    pub role: Role,
    pub weight: f32,
}

/// The reading of a report.
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    /// False for reports that are not agricultural technical problems, and
    /// for reports where nothing points to a subject or corps.
    pub agricultural: bool,
    pub subject: Option<SubjectId>,
    /// The subject's corps, or the corps alone when only it is clear.
    pub corps: Option<Corps>,
    /// 0..=1.
    pub confidence: f32,
    pub runner_up: Option<SubjectId>,
    pub evidence: Vec<Evidence>,
    /// Content words of the report, for text scoring.
    pub words: Vec<String>,
    /// Why nothing can be routed, in Chinese; empty when something can.
    pub note: String,
}

impl Analysis {
    /// Terms that counted for the chosen subject.
    pub fn subject_terms(&self) -> Vec<&str> {
        self.evidence
            .iter()
            .filter(|e| e.subject.is_some() && e.subject == self.subject)
            .map(|e| e.term.as_str())
            .collect()
    }
}

struct Mention {
    word: usize,
    clause: usize,
    term: String,
    senses: Vec<Sense>,
    place: bool,
}

/// Analyses one report with no idea where it comes from.
pub fn analyze(lexicon: &Lexicon, text: &str) -> Analysis {
    analyze_in(lexicon, text, None)
}

/// Analyses one report from a county (白水县 …): what the county grows is a
/// weak prior, as it is for a local extension agent. A county named in the
/// text wins over the one given.
pub fn analyze_in(lexicon: &Lexicon, text: &str, county: Option<&str>) -> Analysis {
    let mut words = Vec::new();
    let mut mentions = Vec::new();
    let mut evidence = Vec::new();
    let mut problem_in_clause: HashMap<usize, f32> = HashMap::default();
    // (word index, clause, weight) of every problem cue.
    let mut problems: Vec<(usize, usize, f32)> = Vec::new();
    let mut neighbour_cues: Vec<(usize, usize, CueRole, f32)> = Vec::new();
    let mut contrast_at: Option<usize> = None;
    let mut nonagri = 0.0f32;
    let mut problem_total = 0.0f32;
    let mut corps_hints: HashMap<Corps, f32> = HashMap::default();

    let mut clause = 0;
    let mut index = 0;
    for word in lexicon.reading_words(text) {
        if !word.is_content {
            clause += 1;
            continue;
        }
        let w = word.text;
        words.push(w.to_lowercase());
        let i = index;
        index += 1;
        if let Some((senses, place)) = lookup(lexicon, w) {
            mentions.push(Mention {
                word: i,
                clause,
                term: w.to_string(),
                senses,
                place,
            });
        }
        if let Some(cue) = lexicon.cue(w) {
            match cue.role {
                CueRole::Problem => {
                    problems.push((i, clause, cue.weight));
                    let e = problem_in_clause.entry(clause).or_default();
                    *e = e.max(cue.weight);
                    problem_total += cue.weight;
                    evidence.push(Evidence {
                        term: w.to_string(),
                        subject: None,
                        corps: None,
                        kind: "cue",
                        role: Role::Problem,
                        weight: cue.weight,
                    });
                }
                CueRole::Contrast => contrast_at = Some(i),
                role => neighbour_cues.push((i, clause, role, cue.weight)),
            }
        }
        if let Some(weight) = lexicon.nonagri(w) {
            nonagri += weight;
            evidence.push(Evidence {
                term: w.to_string(),
                subject: None,
                corps: None,
                kind: "non_agricultural",
                role: Role::NonAgri,
                weight,
            });
        }
        if let Some((corps, weight)) = lexicon.corps_term(w) {
            *corps_hints.entry(corps).or_default() += weight;
            evidence.push(Evidence {
                term: w.to_string(),
                subject: None,
                corps: Some(corps),
                kind: "corps",
                role: Role::CorpsHint,
                weight,
            });
        }
    }

    // Weigh each mention by its role and kind, then add up per subject: a
    // term's strongest mention counts whole, repeats a little.
    let mut mention_weights: HashMap<(SubjectId, &str), Vec<f32>> = HashMap::default();
    let mut named: HashMap<SubjectId, usize> = HashMap::default();
    let mut technical = problem_total;
    let mut technical_terms: HashMap<&str, f32> = HashMap::default();
    for m in &mentions {
        let cue = neighbour_cues
            .iter()
            .find_map(|&(at, cue_clause, role, weight)| {
                let before = at > m.word && at - m.word <= NEIGHBOUR_REACH;
                let after = m.word > at && m.word - at <= NEIGHBOUR_REACH;
                let near = cue_clause == m.clause
                    && match role {
                        CueRole::NeighbourBefore | CueRole::Unaffected => before,
                        CueRole::PlaceBefore => at == m.word + 1,
                        CueRole::NeighbourAfter => after,
                        CueRole::Problem | CueRole::Contrast => false,
                    };
                near.then_some((role, weight))
            });
        let (role, mut factor) = match cue {
            Some((CueRole::Unaffected, discount)) => (Role::Unaffected, 1.0 - discount),
            Some((CueRole::PlaceBefore, discount)) => (Role::Place, 1.0 - discount),
            Some((_, discount)) => (Role::Neighbour, 1.0 - discount),
            None if m.place => (Role::Place, PLACE_FACTOR),
            None => (Role::Main, 1.0),
        };
        if matches!(role, Role::Main | Role::Place) {
            // The subject a symptom is said of stands just before it.
            let close = problems
                .iter()
                .filter(|&&(at, clause, _)| {
                    clause == m.clause && at > m.word && at - m.word <= SYMPTOM_REACH
                })
                .map(|&(_, _, w)| w)
                .fold(0.0f32, f32::max);
            let in_clause = problem_in_clause.get(&m.clause).copied().unwrap_or(0.0);
            factor *= 1.0 + PROBLEM_BOOST * in_clause + CLOSE_PROBLEM_BOOST * close;
        }
        if contrast_at.is_some_and(|c| m.word > c) {
            factor *= 1.0 + CONTRAST_BOOST;
        }
        for sense in &m.senses {
            let weight = sense.weight * factor * kind_factor(sense.kind);
            mention_weights
                .entry((sense.subject, m.term.as_str()))
                .or_default()
                .push(weight);
            if role == Role::Main && sense.kind.names_subject() && sense.weight >= 0.9 {
                named.entry(sense.subject).or_insert(m.word);
            }
            // How surely the term describes a technical problem, whatever
            // its host: a disease is one, a practice may be asked about.
            let technicality = match sense.kind {
                TermKind::Disease | TermKind::Pest | TermKind::Symptom => 1.0,
                TermKind::Equipment => 0.6,
                TermKind::Practice => 0.4,
                _ => 0.0,
            };
            if technicality > 0.0 {
                let t = technical_terms.entry(m.term.as_str()).or_default();
                *t = t.max(technicality);
            }
            evidence.push(Evidence {
                term: m.term.clone(),
                subject: Some(sense.subject),
                corps: Some(lexicon.subject(sense.subject).corps),
                kind: sense.kind.key(),
                role,
                weight,
            });
        }
    }
    technical += technical_terms.values().sum::<f32>();
    // Per subject, per term: the strongest mention and a share of repeats.
    let mut by_term: HashMap<SubjectId, HashMap<&str, f32>> = HashMap::default();
    for ((subject, term), mut weights) in mention_weights {
        weights.sort_by(|a, b| b.total_cmp(a));
        let repeats: f32 = weights[1..].iter().sum();
        by_term
            .entry(subject)
            .or_default()
            .insert(term, weights[0] + REPEAT_SHARE * repeats);
    }
    let mut scores: HashMap<SubjectId, f32> = by_term
        .iter()
        .map(|(&s, terms)| (s, terms.values().sum()))
        .collect();
    // The county's crops and animals: a weak prior, stronger where the
    // report hints at their corps (果园, 大棚 …).
    let divisions = Divisions::embedded();
    let named_county = divisions
        .counties()
        .find(|c| text.contains(county_stem(&c.name)))
        .map(|c| c.name.as_str());
    // Subjects the text itself points to; a prior alone never names one.
    let pointed: Vec<SubjectId> = scores.keys().copied().collect();
    if let Some(county) = named_county.or(county) {
        let prior = lexicon.county_prior(county);
        let mut corps_share: HashMap<Corps, f32> = HashMap::default();
        for &(s, share) in prior {
            *corps_share.entry(lexicon.subject(s).corps).or_default() += share;
        }
        for &(s, share) in prior {
            let corps = lexicon.subject(s).corps;
            let within = share / corps_share[&corps];
            let hint = corps_hints.get(&corps).copied().unwrap_or(0.0).min(1.0);
            *scores.entry(s).or_default() += PRIOR_WEIGHT * (share + within * hint);
        }
    }
    // Being named outright, as what the report is about, counts; the first
    // such subject is the likely topic.
    let first_named = named.iter().min_by_key(|(_, &at)| at).map(|(&s, _)| s);
    for &s in named.keys() {
        *scores.entry(s).or_default() += NAMED_BONUS
            + if Some(s) == first_named {
                FIRST_BONUS
            } else {
                0.0
            };
    }
    // A child subject with evidence of its own (奶山羊) takes over part of
    // its parent's (羊) from the terms that did not already count for it.
    let inherited: Vec<(SubjectId, f32)> = by_term
        .iter()
        .filter_map(|(&child, own)| {
            let parent = by_term.get(&lexicon.subject(child).parent?)?;
            let extra: f32 = parent
                .iter()
                .filter(|(t, _)| !own.contains_key(*t))
                .map(|(_, w)| w)
                .sum();
            Some((child, PARENT_SHARE * extra))
        })
        .collect();
    for (child, extra) in inherited {
        *scores.entry(child).or_default() += extra;
    }

    let mut ranked: Vec<(SubjectId, f32)> = scores
        .into_iter()
        .filter(|(s, _)| pointed.contains(s))
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let (top, top_score) = ranked
        .first()
        .copied()
        .map_or((None, 0.0), |(s, w)| (Some(s), w));
    let (runner_up, second_score) = ranked
        .get(1)
        .copied()
        .map_or((None, 0.0), |(s, w)| (Some(s), w));

    let mut corps_scores = corps_hints;
    for &(s, w) in &ranked {
        *corps_scores.entry(lexicon.subject(s).corps).or_default() += w;
    }
    let top_corps = corps_scores
        .iter()
        .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(a.0)))
        .map(|(&c, &w)| (c, w));

    // Naming a crop is no technical problem; diseases, pests, symptoms,
    // practices and problem words are.
    let not_agricultural =
        (nonagri >= NONAGRI_MIN && nonagri >= technical) || (nonagri > 0.0 && technical == 0.0);

    // Keep the evidence that explains the reading: the cues and markers, and
    // the senses of the two leading subjects.
    evidence.retain(|e| e.subject.is_none() || e.subject == top || e.subject == runner_up);

    let mut analysis = Analysis {
        agricultural: true,
        subject: None,
        corps: None,
        confidence: 0.0,
        runner_up: None,
        evidence,
        words,
        note: String::new(),
    };
    if not_agricultural {
        analysis.agricultural = false;
        analysis.confidence = (nonagri / (nonagri + technical)).min(1.0);
        analysis.note = "这不像是农业技术问题（如补贴、价格、问候），未分派专家；政策与收购事宜请咨询当地农业农村部门".into();
    } else if top_score >= MIN_SUBJECT_EVIDENCE {
        let subject = top.expect("a top score has a subject");
        analysis.subject = Some(subject);
        analysis.corps = Some(lexicon.subject(subject).corps);
        analysis.runner_up = runner_up;
        analysis.confidence = (top_score / (top_score + second_score)) * top_score.min(1.0);
    } else if let Some((corps, score)) = top_corps.filter(|c| c.1 >= MIN_CORPS_EVIDENCE) {
        analysis.corps = Some(corps);
        analysis.runner_up = top;
        analysis.confidence = 0.5 * score.min(1.0);
    } else {
        analysis.agricultural = problem_total > 0.0;
        analysis.runner_up = top;
        analysis.note = "未能从描述中判断是哪种作物、畜禽或哪类问题，请补充作物或畜禽名称".into();
    }
    analysis
}

/// 白水县 → 白水: how counties are named in speech.
fn county_stem(name: &str) -> &str {
    name.strip_suffix(['县', '区', '市']).unwrap_or(name)
}

/// Settings, products and parts hint at a subject more weakly than its
/// names, diseases and symptoms do.
fn kind_factor(kind: TermKind) -> f32 {
    match kind {
        TermKind::Context | TermKind::Product => 0.6,
        TermKind::Part => 0.9,
        _ => 1.0,
    }
}

/// The senses of a word, directly or through a suffix or prefix; the flag
/// says the word names a place of the subject (苹果园, 猪场).
fn lookup(lexicon: &Lexicon, word: &str) -> Option<(Vec<Sense>, bool)> {
    let direct = lexicon.senses(word);
    if !direct.is_empty() {
        let place = SUFFIXES
            .iter()
            .any(|(s, place)| *place && word.ends_with(s) && word.chars().count() > 2)
            && direct.iter().all(|s| s.kind == TermKind::Context);
        return Some((direct.to_vec(), place));
    }
    for (suffix, place) in SUFFIXES {
        if let Some(stem) = word.strip_suffix(suffix).filter(|s| !s.is_empty()) {
            let senses = lexicon.senses(stem);
            if !senses.is_empty() {
                return Some((senses.to_vec(), place));
            }
        }
    }
    for prefix in PREFIXES {
        if let Some(stem) = word.strip_prefix(prefix).filter(|s| !s.is_empty()) {
            let senses: Vec<Sense> = lexicon
                .senses(stem)
                .iter()
                .filter(|s| s.kind.names_subject())
                .copied()
                .collect();
            if !senses.is_empty() {
                return Some((senses, false));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Analysis {
        analyze(Lexicon::embedded(), text)
    }

    fn subject(text: &str) -> Option<String> {
        read(text)
            .subject
            .map(|s| Lexicon::embedded().subject(s).name.clone())
    }

    #[test]
    fn plain_subject_names_decide() {
        assert_eq!(subject("苹果树叶子发黄有斑点").as_deref(), Some("苹果"));
        assert_eq!(subject("猪不吃食还发烧").as_deref(), Some("猪"));
    }

    #[test]
    fn varieties_name_their_crop() {
        assert_eq!(
            subject("红富士套袋以后果面上有黑点").as_deref(),
            Some("苹果")
        );
        assert_eq!(subject("徐香今年个头小").as_deref(), Some("猕猴桃"));
    }

    #[test]
    fn dialect_and_aliases_resolve() {
        assert_eq!(subject("洋芋种下去不出苗").as_deref(), Some("马铃薯"));
        assert_eq!(subject("苞谷叶子卷了").as_deref(), Some("玉米"));
        assert_eq!(subject("猪娃拉稀不止").as_deref(), Some("猪"));
    }

    #[test]
    fn a_host_specific_disease_decides_the_subject() {
        assert_eq!(subject("怀疑是蓝耳病 咳嗽喘").as_deref(), Some("猪"));
        assert_eq!(subject("新城疫疫苗多长时间打一次").as_deref(), Some("鸡"));
    }

    #[test]
    fn a_neighbour_or_place_loses_to_the_patient() {
        assert_eq!(subject("苹果园边上那块玉米全是虫").as_deref(), Some("玉米"));
        assert_eq!(
            subject("隔壁的苹果园打药 把我的葡萄熏了").as_deref(),
            Some("葡萄")
        );
        let a = read("玉米地里种的绿豆 绿豆叶子上有蚜虫 玉米没事");
        assert_eq!(a.subject, Lexicon::embedded().subject_id("绿豆"));
        assert_eq!(a.runner_up, Lexicon::embedded().subject_id("玉米"));
    }

    #[test]
    fn child_subject_beats_its_parent_and_shared_terms_do_not_favour_it() {
        let lex = Lexicon::embedded();
        assert_eq!(
            read("奶山羊这几天羊不爱吃草").subject,
            lex.subject_id("奶山羊")
        );
        assert_eq!(read("奶羊配种啥时候好").subject, lex.subject_id("奶山羊"));
    }

    #[test]
    fn a_county_prior_settles_a_report_that_names_no_crop() {
        let lex = Lexicon::embedded();
        let at = |county| analyze_in(lex, "果园里的树今年长得不好 咋办", Some(county)).subject;
        assert_eq!(at("白水县"), lex.subject_id("苹果"));
        assert_eq!(at("韩城市"), lex.subject_id("花椒"));
        assert_eq!(at("大荔县"), lex.subject_id("冬枣"));
        // Without a county the same report names no crop, only the corps.
        let a = analyze(lex, "果园里的树今年长得不好 咋办");
        assert_eq!((a.subject, a.corps), (None, Some(Corps::Fruit)));
    }

    #[test]
    fn non_agricultural_reports_are_not_routed() {
        for text in [
            "你好在吗",
            "玉米现在啥价钱 收购点在哪",
            "大棚补贴咋申请 找谁办",
            "贷款利息多少",
        ] {
            let a = read(text);
            assert!(a.subject.is_none() && a.corps.is_none(), "{text}: {a:?}");
            assert!(!a.note.is_empty(), "{text}");
        }
        // A price question with a real problem in it is still agricultural.
        assert_eq!(
            subject("玉米价钱低 叶子上还全是锈病").as_deref(),
            Some("玉米")
        );
    }

    #[test]
    fn evidence_names_the_terms_and_their_roles() {
        let a = read("苹果园边上那块玉米全是虫");
        let lex = Lexicon::embedded();
        let apple = a
            .evidence
            .iter()
            .find(|e| e.subject == lex.subject_id("苹果"))
            .unwrap();
        assert_ne!(apple.role, Role::Main);
        assert!(a.subject_terms().contains(&"玉米"));
    }
}
