//! The agricultural lexicon: canonical subjects, the terms that point to them,
//! reading cues, and the jieba segmenter that keeps every term whole.
//!
//! Everything is read from the CSV files under `index/`, compiled into the
//! binary; a domain expert extends the lexicon there without touching Rust.

mod build;
mod segment;

use std::sync::OnceLock;

use rustc_hash::FxHashMap as HashMap;

use aho_corasick::AhoCorasick;
use jieba_rs::Jieba;

use crate::model::Corps;

pub(crate) use build::Sources;

/// Index of a subject in [`Lexicon::subjects`].
pub(crate) type SubjectId = u16;

/// A canonical subject (苹果, 奶山羊, 节水灌溉 …).
#[derive(Debug, Clone)]
pub struct Subject {
    pub name: String,
    pub corps: Corps,
    pub parent: Option<SubjectId>,
}

/// What a term is, as far as the subject it points to goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum TermKind {
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

    pub(crate) fn key(self) -> &'static str {
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
    pub(crate) fn names_subject(self) -> bool {
        matches!(
            self,
            TermKind::Subject | TermKind::Alias | TermKind::Variety | TermKind::Dialect
        )
    }
}

/// One subject a term points to, and how strongly (0..=1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Sense {
    pub(crate) subject: SubjectId,
    pub(crate) kind: TermKind,
    pub(crate) weight: f32,
}

/// How a cue word changes the reading of the words around it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum CueRole {
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
pub(crate) struct Cue {
    pub(crate) role: CueRole,
    pub(crate) weight: f32,
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

impl Lexicon {
    /// The lexicon built from the embedded files, once per process.
    pub fn embedded() -> &'static Lexicon {
        static LEXICON: OnceLock<Lexicon> = OnceLock::new();
        LEXICON.get_or_init(|| {
            Lexicon::build(&Sources::embedded()).expect("the embedded lexicon is valid")
        })
    }

    pub fn subjects(&self) -> &[Subject] {
        &self.subjects
    }

    pub fn subject(&self, id: SubjectId) -> &Subject {
        &self.subjects[usize::from(id)]
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
    pub(crate) fn resolve_specialty(&self, name: &str) -> Option<SubjectId> {
        self.specialty_names.get(name.trim()).copied()
    }

    pub(crate) fn senses(&self, term: &str) -> &[Sense] {
        self.terms.get(term).map(Vec::as_slice).unwrap_or(&[])
    }

    pub(crate) fn corps_term(&self, term: &str) -> Option<(Corps, f32)> {
        self.corps_terms.get(term).copied()
    }

    pub(crate) fn cue(&self, term: &str) -> Option<Cue> {
        self.cues.get(term).copied()
    }

    pub(crate) fn nonagri(&self, term: &str) -> Option<f32> {
        self.nonagri.get(term).copied()
    }

    /// Every term and its senses, in no particular order.
    pub(crate) fn iter_terms(&self) -> impl Iterator<Item = (&str, &[Sense])> {
        self.terms.iter().map(|(t, s)| (t.as_str(), s.as_slice()))
    }

    /// What a county grows or raises: (subject, share), shares adding to 1.
    pub(crate) fn county_prior(&self, county: &str) -> &[(SubjectId, f32)] {
        self.county_priors
            .get(county)
            .map(Vec::as_slice)
            .unwrap_or(&[])
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
