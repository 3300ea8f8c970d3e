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

/// What a name of `crops.csv` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum CropKind {
    /// A crop, tree or fungus (生菜, 丹参, 国槐).
    Crop,
    /// A cultivar (嘎啦, 夏黑).
    Variety,
    /// A breed (湖羊, 海兰褐).
    Breed,
    /// A local or market name (洋柿子, 角瓜).
    Local,
    /// An animal species (鹌鹑, 梅花鹿).
    Animal,
    /// A product of the subject (蜂王浆).
    Product,
    /// A crop its subject's specialists take though it is not the subject
    /// itself (菜花 → 甘蓝): it names the subject less surely.
    Related,
    /// A group of crops (中药材, 花卉).
    Group,
}

impl CropKind {
    fn parse(text: &str) -> Option<CropKind> {
        Some(match text.trim() {
            "crop" => CropKind::Crop,
            "variety" => CropKind::Variety,
            "breed" => CropKind::Breed,
            "local" => CropKind::Local,
            "animal" => CropKind::Animal,
            "product" => CropKind::Product,
            "related" => CropKind::Related,
            "group" => CropKind::Group,
            _ => return None,
        })
    }

    /// How a name with a subject counts for it: as an alias, variety,
    /// dialect word or product, and how surely.
    fn sense(self) -> (TermKind, f32) {
        match self {
            CropKind::Variety | CropKind::Breed => (TermKind::Variety, 1.0),
            CropKind::Local => (TermKind::Dialect, 1.0),
            CropKind::Product => (TermKind::Product, 0.8),
            CropKind::Related => (TermKind::Alias, 0.8),
            CropKind::Crop | CropKind::Animal | CropKind::Group => (TermKind::Alias, 1.0),
        }
    }

    /// How surely a name without a subject means its corps: a group of
    /// crops (中药材) a little less than one crop.
    pub(crate) fn corps_weight(self) -> f32 {
        match self {
            CropKind::Group => 0.8,
            _ => 1.0,
        }
    }
}

/// A crop, tree or animal that no canonical subject covers: only its corps
/// takes it (生菜 → 蔬菜).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CropName {
    pub(crate) corps: Corps,
    pub(crate) kind: CropKind,
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
    /// The names of `crops.csv` that have no subject: crops and animals
    /// only a corps takes.
    crop_names: HashMap<String, CropName>,
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

    /// A crop or animal that only its corps takes (生菜 → 蔬菜).
    pub(crate) fn crop(&self, term: &str) -> Option<CropName> {
        self.crop_names.get(term).copied()
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
            crops: "term,corps,subject,kind,source\n",
        };
        let err = Lexicon::build(&src).unwrap_err();
        assert!(err.contains("unknown subject"), "{err}");
    }

    #[test]
    fn open_vocabulary_names_subjects_or_corps() {
        let lex = Lexicon::embedded();
        // A name with a subject is a sense of it, as an alias is.
        let baby_cabbage = lex.senses("娃娃菜");
        assert!(baby_cabbage
            .iter()
            .any(|s| Some(s.subject) == lex.subject_id("白菜") && s.kind.names_subject()));
        let senses = lex.senses("朝天椒");
        assert!(senses
            .iter()
            .any(|s| Some(s.subject) == lex.subject_id("辣椒")));
        // A name without one points to its corps only.
        assert_eq!(lex.crop("生菜").map(|c| c.corps), Some(Corps::Vegetable));
        assert_eq!(lex.crop("丹参").map(|c| c.corps), Some(Corps::Vegetable));
        assert_eq!(lex.crop("鹌鹑").map(|c| c.corps), Some(Corps::Livestock));
        assert_eq!(lex.crop("国槐"), None, "国槐 is a terms.csv word");
        assert!(lex.senses("生菜").is_empty());
        let words: Vec<_> = lex
            .reading_words("上海青叶子发黄")
            .iter()
            .map(|w| w.text)
            .collect();
        assert_eq!(words.first(), Some(&"上海青"), "{words:?}");
    }

    /// A lexicon of one subject (苹果, 果树) with `crops` as its crops.csv.
    fn with_crops(crops: &'static str) -> Result<Lexicon, String> {
        Lexicon::build(&Sources {
            subjects: "subject,corps,parent,aliases\n苹果,果树,,\n",
            terms: "term,subject,kind,weight\n红富士,苹果,variety,1\n",
            corps_terms: "term,corps,weight\n果园,果树,0.8\n",
            cues: "term,role,weight\n",
            nonagri: "term,weight\n",
            county_profiles: "county,subject,weight\n",
            crops,
        })
    }

    #[test]
    fn crops_csv_is_checked_line_by_line() {
        let head = "term,corps,subject,kind,source\n";
        assert!(with_crops("term,corps,subject,kind,source\n嘎啦,果树,苹果,variety,nyt3177\n蓝莓,果树,,crop,nyt3177\n").is_ok());
        for (rows, fault) in [
            ("蓝莓,水果,,crop,x\n", "line 2: unknown corps"),
            ("蓝莓,果树,香蕉,crop,x\n", "line 2: unknown subject"),
            (
                "嘎啦,蔬菜,苹果,variety,x\n",
                "line 2: 苹果 is not in corps 蔬菜",
            ),
            ("蓝莓,果树,,fruit,x\n", "line 2: unknown kind"),
            (
                "蓝莓,果树,,crop,x\n蓝莓,果树,,crop,x\n",
                "line 3: 蓝莓 is already",
            ),
            ("红富士,果树,苹果,variety,x\n", "line 2: 红富士 is already"),
            ("果园,果树,,crop,x\n", "line 2: 果园 is already"),
            (",果树,,crop,x\n", "line 2: empty term"),
        ] {
            let text: &'static str = Box::leak(format!("{head}{rows}").into_boxed_str());
            let err = with_crops(text).unwrap_err();
            assert!(
                err.contains("crops.csv") && err.contains(fault),
                "{rows}: {err}"
            );
        }
    }
}
