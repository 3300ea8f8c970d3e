//! The agricultural lexicon: canonical subjects, the terms that point to them,
//! reading cues, and the jieba segmenter that keeps every term whole.
//!
//! Everything is read from the CSV files under `index/`, compiled into the
//! binary; a domain expert extends the lexicon there without touching Rust.

use std::sync::OnceLock;

use rustc_hash::FxHashMap as HashMap;

use aho_corasick::{AhoCorasick, MatchKind};
use jieba_rs::Jieba;

use crate::model::Corps;

/// Index of a subject in [`Lexicon::subjects`].
pub type SubjectId = u16;

/// A canonical subject (苹果, 奶山羊, 节水灌溉 …).
#[derive(Debug, Clone)]
pub struct Subject {
    pub name: String,
    pub corps: Corps,
    pub parent: Option<SubjectId>,
}

/// What a term is, as far as the subject it points to goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TermKind {
    Subject,
    Alias,
    Variety,
    Dialect,
    Product,
    Part,
    Disease,
    Pest,
    Symptom,
    Practice,
    Equipment,
    Context,
}

impl TermKind {
    fn parse(text: &str) -> Option<TermKind> {
        Some(match text.trim() {
            "subject" => TermKind::Subject,
            "alias" => TermKind::Alias,
            "variety" => TermKind::Variety,
            "dialect" => TermKind::Dialect,
            "product" => TermKind::Product,
            "part" => TermKind::Part,
            "disease" => TermKind::Disease,
            "pest" => TermKind::Pest,
            "symptom" => TermKind::Symptom,
            "practice" => TermKind::Practice,
            "equipment" => TermKind::Equipment,
            "context" => TermKind::Context,
            _ => return None,
        })
    }

    pub fn key(self) -> &'static str {
        match self {
            TermKind::Subject => "subject",
            TermKind::Alias => "alias",
            TermKind::Variety => "variety",
            TermKind::Dialect => "dialect",
            TermKind::Product => "product",
            TermKind::Part => "part",
            TermKind::Disease => "disease",
            TermKind::Pest => "pest",
            TermKind::Symptom => "symptom",
            TermKind::Practice => "practice",
            TermKind::Equipment => "equipment",
            TermKind::Context => "context",
        }
    }

    /// Names the subject itself rather than hinting at it.
    pub fn names_subject(self) -> bool {
        matches!(
            self,
            TermKind::Subject | TermKind::Alias | TermKind::Variety | TermKind::Dialect
        )
    }
}

/// One subject a term points to, and how strongly (0..=1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sense {
    pub subject: SubjectId,
    pub kind: TermKind,
    pub weight: f32,
}

/// How a cue word changes the reading of the words around it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CueRole {
    /// The subject named just before it is a place or neighbour (X边上).
    NeighbourBefore,
    /// The subject named just after it is a place or neighbour (隔壁X).
    NeighbourAfter,
    /// The subject named just before it is fine (X没事, X倒还好): it is
    /// not the patient.
    Unaffected,
    /// Marks an agricultural technical problem (病, 发黄, 咋办).
    Problem,
    /// Shifts the focus to what follows (但是, 主要是).
    Contrast,
    /// The subject named just before it is where things are (X地里): a
    /// place, not the patient.
    PlaceBefore,
}

impl CueRole {
    fn parse(text: &str) -> Option<CueRole> {
        Some(match text.trim() {
            "neighbour_before" | "neighbour" => CueRole::NeighbourBefore,
            "neighbour_after" => CueRole::NeighbourAfter,
            "unaffected" => CueRole::Unaffected,
            "problem" => CueRole::Problem,
            "contrast" => CueRole::Contrast,
            "place" => CueRole::PlaceBefore,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cue {
    pub role: CueRole,
    pub weight: f32,
}

/// The source texts a lexicon is built from.
pub struct Sources<'a> {
    pub subjects: &'a str,
    pub terms: &'a str,
    pub corps_terms: &'a str,
    pub cues: &'a str,
    pub nonagri: &'a str,
    pub county_profiles: &'a str,
}

impl Sources<'static> {
    /// The files under `index/`, as compiled into the binary.
    pub fn embedded() -> Sources<'static> {
        Sources {
            subjects: include_str!("../../index/subjects.csv"),
            terms: include_str!("../../index/lexicon/terms.csv"),
            corps_terms: include_str!("../../index/lexicon/corps_terms.csv"),
            cues: include_str!("../../index/lexicon/cues.csv"),
            nonagri: include_str!("../../index/lexicon/nonagri.csv"),
            county_profiles: include_str!("../../index/county_profiles.csv"),
        }
    }
}

pub struct Lexicon {
    subjects: Vec<Subject>,
    /// Canonical names and the aliases of `subjects.csv`: what a roster's
    /// `specialties` column may say.
    specialty_names: HashMap<String, SubjectId>,
    terms: HashMap<String, Vec<Sense>>,
    corps_terms: HashMap<String, (Corps, f32)>,
    cues: HashMap<String, Cue>,
    nonagri: HashMap<String, f32>,
    /// County name → (subject, share of the county's farming).
    county_priors: HashMap<String, Vec<(SubjectId, f32)>>,
    jieba: Jieba,
    /// Every multi-character word of the lexicon, longest match first.
    matcher: AhoCorasick,
    patterns: Vec<String>,
}

impl std::fmt::Debug for Lexicon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lexicon")
            .field("subjects", &self.subjects.len())
            .field("terms", &self.terms.len())
            .finish_non_exhaustive()
    }
}

fn rows(text: &str) -> impl Iterator<Item = (usize, Vec<String>)> + '_ {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let records: Vec<_> = reader.records().collect();
    records.into_iter().enumerate().filter_map(|(i, r)| {
        let r = r.ok()?;
        let fields: Vec<String> = r.iter().map(|f| f.trim().to_string()).collect();
        (!fields.iter().all(String::is_empty)).then_some((i + 2, fields))
    })
}

fn weight(text: &str, file: &str, line: usize) -> Result<f32, String> {
    match text.parse::<f32>() {
        Ok(w) if w > 0.0 && w <= 1.0 => Ok(w),
        _ => Err(format!(
            "{file} line {line}: weight {text:?} is not in (0, 1]"
        )),
    }
}

impl Lexicon {
    /// The lexicon built from the embedded files, once per process.
    pub fn embedded() -> &'static Lexicon {
        static LEXICON: OnceLock<Lexicon> = OnceLock::new();
        LEXICON.get_or_init(|| {
            Lexicon::build(&Sources::embedded()).expect("the embedded lexicon is valid")
        })
    }

    /// Parses and cross-checks the sources; every subject a term names must
    /// be a canonical subject.
    pub fn build(src: &Sources<'_>) -> Result<Lexicon, String> {
        let mut subjects = Vec::new();
        let mut ids: HashMap<String, SubjectId> = HashMap::default();
        let mut parents = Vec::new();
        let mut aliases = Vec::new();
        for (line, f) in rows(src.subjects) {
            let get = |n: usize| f.get(n).map(String::as_str).unwrap_or("");
            let corps = Corps::parse(get(1)).ok_or(format!(
                "subjects.csv line {line}: unknown corps {:?}",
                get(1)
            ))?;
            let id = SubjectId::try_from(subjects.len()).map_err(|_| "too many subjects")?;
            if ids.insert(get(0).to_string(), id).is_some() {
                return Err(format!(
                    "subjects.csv line {line}: duplicate subject {}",
                    get(0)
                ));
            }
            subjects.push(Subject {
                name: get(0).to_string(),
                corps,
                parent: None,
            });
            parents.push((id, get(2).to_string(), line));
            for alias in get(3)
                .split([';', '；'])
                .map(str::trim)
                .filter(|a| !a.is_empty())
            {
                aliases.push((alias.to_string(), id));
            }
        }
        for (id, parent, line) in parents {
            if !parent.is_empty() {
                let p = *ids
                    .get(&parent)
                    .ok_or(format!("subjects.csv line {line}: unknown parent {parent}"))?;
                subjects[usize::from(id)].parent = Some(p);
            }
        }

        let mut terms: HashMap<String, Vec<Sense>> = HashMap::default();
        let mut add = |term: &str, sense: Sense| {
            let senses = terms.entry(term.to_string()).or_default();
            match senses.iter_mut().find(|s| s.subject == sense.subject) {
                Some(s) if s.weight < sense.weight => *s = sense,
                Some(_) => {}
                None => senses.push(sense),
            }
        };
        let mut specialty_names = HashMap::default();
        for (name, &id) in &ids {
            add(
                name,
                Sense {
                    subject: id,
                    kind: TermKind::Subject,
                    weight: 1.0,
                },
            );
            specialty_names.insert(name.clone(), id);
        }
        for (alias, id) in &aliases {
            add(
                alias,
                Sense {
                    subject: *id,
                    kind: TermKind::Alias,
                    weight: 1.0,
                },
            );
            specialty_names.entry(alias.clone()).or_insert(*id);
        }
        for (line, f) in rows(src.terms) {
            let [term, subject, kind, w] =
                [0, 1, 2, 3].map(|n| f.get(n).cloned().unwrap_or_default());
            let subject = *ids.get(&subject).ok_or(format!(
                "terms.csv line {line}: unknown subject {subject:?}"
            ))?;
            let kind = TermKind::parse(&kind)
                .ok_or(format!("terms.csv line {line}: unknown kind {kind:?}"))?;
            let weight = weight(&w, "terms.csv", line)?;
            if term.is_empty() {
                return Err(format!("terms.csv line {line}: empty term"));
            }
            add(
                &term,
                Sense {
                    subject,
                    kind,
                    weight,
                },
            );
        }

        let mut corps_terms = HashMap::default();
        for (line, f) in rows(src.corps_terms) {
            let get = |n: usize| f.get(n).map(String::as_str).unwrap_or("");
            let corps = Corps::parse(get(1)).ok_or(format!(
                "corps_terms.csv line {line}: unknown corps {:?}",
                get(1)
            ))?;
            corps_terms.insert(
                get(0).to_string(),
                (corps, weight(get(2), "corps_terms.csv", line)?),
            );
        }
        let mut cues = HashMap::default();
        for (line, f) in rows(src.cues) {
            let get = |n: usize| f.get(n).map(String::as_str).unwrap_or("");
            let role = CueRole::parse(get(1))
                .ok_or(format!("cues.csv line {line}: unknown role {:?}", get(1)))?;
            cues.insert(
                get(0).to_string(),
                Cue {
                    role,
                    weight: weight(get(2), "cues.csv", line)?,
                },
            );
        }
        let mut nonagri = HashMap::default();
        for (line, f) in rows(src.nonagri) {
            let get = |n: usize| f.get(n).map(String::as_str).unwrap_or("");
            nonagri.insert(get(0).to_string(), weight(get(1), "nonagri.csv", line)?);
        }

        let mut county_priors: HashMap<String, Vec<(SubjectId, f32)>> = HashMap::default();
        for (line, f) in rows(src.county_profiles) {
            let get = |n: usize| f.get(n).map(String::as_str).unwrap_or("");
            let subject = *ids.get(get(1)).ok_or(format!(
                "county_profiles.csv line {line}: unknown subject {:?}",
                get(1)
            ))?;
            let w: f32 = get(2)
                .parse()
                .ok()
                .filter(|w: &f32| *w > 0.0)
                .ok_or(format!(
                    "county_profiles.csv line {line}: weight must be a positive number"
                ))?;
            county_priors
                .entry(get(0).to_string())
                .or_default()
                .push((subject, w));
        }
        for list in county_priors.values_mut() {
            let total: f32 = list.iter().map(|(_, w)| w).sum();
            for (_, w) in list.iter_mut() {
                *w /= total;
            }
        }

        let mut jieba = Jieba::new();
        let mut patterns: Vec<String> = terms
            .keys()
            .chain(corps_terms.keys())
            .chain(cues.keys())
            .chain(nonagri.keys())
            .filter(|w| w.chars().count() > 1)
            .cloned()
            .collect();
        patterns.sort();
        patterns.dedup();
        for word in &patterns {
            jieba.add_word(word, None, None);
        }
        let matcher = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&patterns)
            .map_err(|e| format!("cannot build the term matcher: {e}"))?;
        Ok(Lexicon {
            subjects,
            specialty_names,
            terms,
            corps_terms,
            cues,
            nonagri,
            county_priors,
            jieba,
            matcher,
            patterns,
        })
    }

    pub fn subjects(&self) -> &[Subject] {
        &self.subjects
    }

    pub fn subject(&self, id: SubjectId) -> &Subject {
        &self.subjects[usize::from(id)]
    }

    /// Splits a report for reading: every lexicon word of two or more
    /// characters is taken whole, longest first, wherever it stands (so
    /// 奶羊 survives in 奶羊配种 even where jieba would cut 奶|羊配种); the
    /// text between is cut by jieba.
    pub fn reading_words<'t>(&self, text: &'t str) -> Vec<Word<'t>> {
        let mut out = Vec::new();
        let mut at = 0;
        let gap = |from: usize, to: usize, out: &mut Vec<Word<'t>>| {
            if from < to {
                let cut = self.jieba.cut(&text[from..to], false);
                out.extend(
                    cut.into_iter()
                        .map(|t| Word::at(t.word, from + t.byte_start)),
                );
            }
        };
        for m in self.matcher.find_iter(text) {
            gap(at, m.start(), &mut out);
            let word = &text[m.start()..m.end()];
            debug_assert_eq!(word, self.patterns[m.pattern().as_usize()]);
            out.push(Word::at(word, m.start()));
            at = m.end();
        }
        gap(at, text.len(), &mut out);
        out
    }

    /// Words for the full-text index: jieba's search mode, which adds the
    /// dictionary words inside long ones (猕猴桃溃疡病 → 猕猴桃, 溃疡病 …),
    /// so a query for a part finds the whole.
    pub fn search_words<'t>(&self, text: &'t str) -> impl Iterator<Item = Word<'t>> + 't
    where
        Self: 't,
    {
        self.jieba
            .cut_for_search(text, false)
            .into_iter()
            .map(|t| Word::at(t.word, t.byte_start))
    }

    /// A canonical subject by its exact name.
    pub fn subject_id(&self, name: &str) -> Option<SubjectId> {
        self.specialty_names
            .get(name.trim())
            .copied()
            .filter(|&id| self.subject(id).name == name.trim())
    }

    /// What a roster's specialty names: a canonical subject or one of its
    /// `subjects.csv` aliases.
    pub fn resolve_specialty(&self, name: &str) -> Option<SubjectId> {
        self.specialty_names.get(name.trim()).copied()
    }

    pub fn senses(&self, term: &str) -> &[Sense] {
        self.terms.get(term).map(Vec::as_slice).unwrap_or(&[])
    }

    pub fn corps_term(&self, term: &str) -> Option<(Corps, f32)> {
        self.corps_terms.get(term).copied()
    }

    pub fn cue(&self, term: &str) -> Option<Cue> {
        self.cues.get(term).copied()
    }

    pub fn nonagri(&self, term: &str) -> Option<f32> {
        self.nonagri.get(term).copied()
    }

    /// Every term and its senses, in no particular order.
    pub fn iter_terms(&self) -> impl Iterator<Item = (&str, &[Sense])> {
        self.terms.iter().map(|(t, s)| (t.as_str(), s.as_slice()))
    }

    /// What a county grows or raises: (subject, share), shares adding to 1.
    pub fn county_prior(&self, county: &str) -> &[(SubjectId, f32)] {
        self.county_priors
            .get(county)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Number of distinct terms that point to a subject.
    pub fn term_count(&self) -> usize {
        self.terms.len()
    }

    /// The segmenter, with every lexicon term in its dictionary.
    pub fn jieba(&self) -> &Jieba {
        &self.jieba
    }

    /// Splits text into words: jieba without HMM (so unknown runs never glue
    /// into new words), lowercased, punctuation and spaces dropped.
    pub fn words<'t>(&self, text: &'t str) -> impl Iterator<Item = Word<'t>> + 't
    where
        Self: 't,
    {
        self.jieba
            .cut(text, false)
            .into_iter()
            .map(|t| Word::at(t.word, t.byte_start))
    }
}

/// A segment of the input text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Word<'t> {
    pub text: &'t str,
    pub byte_start: usize,
    /// False for punctuation and white space, which end a clause.
    pub is_content: bool,
}

impl<'t> Word<'t> {
    fn at(text: &'t str, byte_start: usize) -> Word<'t> {
        Word {
            text,
            byte_start,
            is_content: text.chars().any(char::is_alphanumeric),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_lexicon_loads_every_subject() {
        let lex = Lexicon::embedded();
        assert_eq!(lex.subjects().len(), 70);
        let goat = lex.subject_id("奶山羊").unwrap();
        assert_eq!(lex.subject(goat).parent, lex.subject_id("羊"));
        assert_eq!(lex.resolve_specialty("洋芋"), lex.subject_id("马铃薯"));
        assert_eq!(lex.subject_id("洋芋"), None);
    }

    #[test]
    fn segmenter_keeps_lexicon_terms_whole() {
        let lex = Lexicon::embedded();
        let words: Vec<_> = lex
            .words("猕猴桃得了溃疡病，奶山羊，节水灌溉")
            .map(|w| w.text)
            .collect();
        for term in ["猕猴桃", "溃疡病", "奶山羊", "节水灌溉"] {
            assert!(words.contains(&term), "{term} not whole in {words:?}");
        }
    }

    #[test]
    fn rejects_terms_for_unknown_subjects() {
        let src = Sources {
            subjects: "subject,corps,parent,aliases\n苹果,果树,,\n",
            terms: "term,subject,kind,weight\n红富士,香蕉,variety,1\n",
            corps_terms: "term,corps,weight\n",
            cues: "term,role,weight\n",
            nonagri: "term,weight\n",
            county_profiles: "county,subject,weight\n",
        };
        let err = Lexicon::build(&src).unwrap_err();
        assert!(err.contains("unknown subject"), "{err}");
    }
}
