//! The analyser's first phase: one pass over the report's words, noting the
//! content words, every mention of a subject, and the cues and markers that
//! later phases weigh the mentions by.

use rustc_hash::FxHashMap as HashMap;

use crate::{
    model::Corps,
    reading::lexicon::{CropName, Cue, CueRole, Lexicon, Sense, TermKind},
};

use super::{Evidence, Role};

/// Suffixes that turn a subject into a place or a part (苹果园, 梨树, 猪场),
/// each one character: compared as `char`s, a word's last character picks
/// the ones it can have without comparing text.
const SUFFIXES: [(char, bool); 19] = [
    ('树', false),
    ('苗', false),
    ('秧', false),
    ('叶', false),
    ('园', true),
    ('地', true),
    ('田', true),
    ('棚', true),
    ('圈', true),
    ('场', true),
    ('舍', true),
    ('塘', true),
    ('池', true),
    ('架', false),
    ('子', false),
    ('娃', false),
    ('儿', false),
    ('里', false),
    ('上', false),
];
/// Generic words that end the names of kinds of crop the lexicon need not
/// list (秋菜, 冬菜, 芽菜 are 菜).
const GENERIC_ENDINGS: [&str; 1] = ["菜"];
/// Words for a person: a symptom right after one (我发烧, 孩子咳嗽,
/// 娃拉肚子) is a person's illness, which no farm expert treats.
const PERSONS: [&str; 14] = [
    "我", "俺", "人", "自己", "孩子", "小孩", "娃", "娃娃", "老人", "大人", "媳妇", "老婆", "他",
    "她",
];
/// What a person's symptom weighs as a non-agricultural marker: more than
/// the symptom and a question (咋办) weigh as a technical problem.
const PERSONS_ILLNESS: f32 = 2.5;
/// Prefixes that qualify a subject without changing it (小猪, 母羊), each one
/// character like the [`SUFFIXES`].
const PREFIXES: [char; 6] = ['小', '大', '母', '公', '老', '幼'];

/// Where a word stands: its index among the content words, and its clause.
#[derive(Debug, Clone, Copy)]
pub(super) struct At {
    pub(crate) word: usize,
    pub(crate) clause: usize,
}

/// A word that points to one or more subjects.
pub(super) struct Mention {
    pub(crate) at: At,
    pub(crate) term: String,
    pub(crate) senses: Vec<Sense>,
    /// A crop or animal only a corps takes (生菜, 丹参): the word has no
    /// senses then.
    pub(crate) crop: Option<CropName>,
    /// The word names a place of the subject (苹果园, 猪场).
    pub(crate) place: bool,
}

/// A problem cue (发黄, 咋办) and how strongly it marks a problem.
pub(super) struct ProblemCue {
    pub(crate) at: At,
    pub(crate) weight: f32,
}

/// A neighbour, place or unaffected cue (边上, 隔壁, 地里, 没事) and its
/// discount.
pub(super) struct NeighbourCue {
    pub(crate) at: At,
    pub(crate) role: CueRole,
    pub(crate) weight: f32,
}

/// The cues of a report, which change how the mentions around them count.
#[derive(Default)]
pub(super) struct Cues {
    pub(crate) problems: Vec<ProblemCue>,
    /// Clause → the strongest problem cue in it.
    pub(crate) problem_in_clause: HashMap<usize, f32>,
    /// The weights of all problem cues, added up.
    pub(crate) problem_total: f32,
    pub(crate) neighbours: Vec<NeighbourCue>,
    /// The word of the last contrast cue (但是).
    pub(crate) contrast_at: Option<usize>,
}

/// Everything the pass over the words finds.
#[derive(Default)]
pub(super) struct Scan {
    /// Content words, lowercased, for text scoring.
    pub(crate) words: Vec<String>,
    pub(crate) mentions: Vec<Mention>,
    pub(crate) cues: Cues,
    /// The weights of the non-agricultural markers, added up.
    pub(crate) nonagri: f32,
    /// Corps → the weights of the words that point to it.
    pub(crate) corps_hints: HashMap<Corps, f32>,
    /// The cues and markers found, in word order.
    pub(crate) evidence: Vec<Evidence>,
}

impl Scan {
    /// Reads the report word by word; punctuation and spaces end a clause.
    pub(super) fn read(lexicon: &Lexicon, text: &str) -> Scan {
        let mut scan = Scan::default();
        let mut clause = 0;
        // The previous content word names a part (叶片, 果子), not a subject.
        let mut after_part = false;
        // The previous content word names a person (我, 孩子).
        let mut after_person = false;
        for word in lexicon.reading_words(text) {
            if !word.is_content {
                clause += 1;
                after_part = false;
                after_person = false;
                continue;
            }
            let w = word.text;
            // The index of a content word is the number of them before it.
            let at = At {
                word: scan.words.len(),
                clause,
            };
            scan.words.push(lowercase(w));
            let cue = lexicon.cue(w);
            let nonagri = lexicon.nonagri(w);
            // A word the lexicon knows in any sense.
            let mut known = true;
            if let Some((senses, place)) = lookup(lexicon, w) {
                scan.mentions.push(Mention {
                    at,
                    term: w.to_string(),
                    senses,
                    crop: None,
                    place,
                });
            } else if let Some((crop, place)) = lookup_crop(lexicon, w) {
                scan.mentions.push(Mention {
                    at,
                    term: w.to_string(),
                    senses: Vec::new(),
                    crop: Some(crop),
                    place,
                });
            } else {
                known = cue.is_some() || nonagri.is_some();
            }
            match cue {
                // 我发烧, 孩子咳嗽: a person's illness, no farm problem.
                Some(cue) if after_person && cue.role == CueRole::Problem => {
                    scan.nonagri += PERSONS_ILLNESS;
                    scan.evidence.push(marker(
                        w,
                        None,
                        "non_agricultural",
                        Role::NonAgri,
                        PERSONS_ILLNESS,
                    ));
                }
                // 叶片边上 is the leaf's edge: no neighbour of the subject.
                Some(cue) if after_part && cue.role == CueRole::NeighbourBefore => {}
                Some(cue) => scan.note_cue(at, w, cue),
                None => {}
            }
            scan.note_markers(lexicon, w, nonagri, known);
            after_part = !known && super::asking::names_a_part(w);
            after_person = PERSONS.contains(&w);
        }
        scan
    }

    /// Notes a cue word where it stands; a problem cue is also evidence.
    fn note_cue(&mut self, at: At, w: &str, cue: Cue) {
        let cues = &mut self.cues;
        match cue.role {
            CueRole::Problem => {
                cues.problems.push(ProblemCue {
                    at,
                    weight: cue.weight,
                });
                let e = cues.problem_in_clause.entry(at.clause).or_default();
                *e = e.max(cue.weight);
                cues.problem_total += cue.weight;
                self.evidence
                    .push(marker(w, None, "cue", Role::Problem, cue.weight));
            }
            CueRole::Contrast => cues.contrast_at = Some(at.word),
            role => cues.neighbours.push(NeighbourCue {
                at,
                role,
                weight: cue.weight,
            }),
        }
    }

    /// Notes a word that marks a non-agricultural request (its weight as
    /// one, `nonagri`) or points to a corps; a word the lexicon does not
    /// know that ends in a generic word (秋菜, 冬菜) points where that word
    /// does.
    fn note_markers(&mut self, lexicon: &Lexicon, w: &str, nonagri: Option<f32>, known: bool) {
        if let Some(weight) = nonagri {
            self.nonagri += weight;
            self.evidence
                .push(marker(w, None, "non_agricultural", Role::NonAgri, weight));
        }
        let generic = || {
            GENERIC_ENDINGS
                .iter()
                .find(|e| w.len() > e.len() && w.ends_with(*e))
                .and_then(|e| lexicon.corps_term(e))
        };
        if let Some((corps, weight)) =
            lexicon
                .corps_term(w)
                .or_else(|| if known { None } else { generic() })
        {
            *self.corps_hints.entry(corps).or_default() += weight;
            self.evidence
                .push(marker(w, Some(corps), "corps", Role::CorpsHint, weight));
        }
    }
}

/// Evidence of a word that counts for no subject.
fn marker(
    term: &str,
    corps: Option<Corps>,
    kind: &'static str,
    role: Role,
    weight: f32,
) -> Evidence {
    Evidence {
        term: term.to_string(),
        subject: None,
        corps,
        kind,
        role,
        weight,
    }
}

/// The senses of a word, directly or through a suffix or prefix; the flag
/// says the word names a place of the subject (苹果园, 猪场).
fn lookup(lexicon: &Lexicon, word: &str) -> Option<(Vec<Sense>, bool)> {
    let (first, last) = ends(word)?;
    let direct = lexicon.senses(word);
    if !direct.is_empty() {
        // A field, shed or orchard word (苹果园, 苞谷地): the senses are all
        // settings, or the word is a name and a place suffix.
        let place = suffix(last).is_some_and(|place| {
            place
                && word.chars().count() > 2
                && (direct.iter().all(|s| s.kind == TermKind::Context)
                    || lexicon
                        .senses(before(word, last))
                        .iter()
                        .any(|s| s.kind.names_subject()))
        });
        return Some((direct.to_vec(), place));
    }
    let stem = before(word, last);
    if let Some(place) = suffix(last).filter(|_| !stem.is_empty()) {
        let senses = lexicon.senses(stem);
        if !senses.is_empty() {
            return Some((senses.to_vec(), place));
        }
    }
    let stem = after(word, first);
    if PREFIXES.contains(&first) && !stem.is_empty() {
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
    None
}

/// A crop or animal that only its corps takes, directly or through a suffix
/// (生菜地, 丹参苗) or prefix (小鹌鹑); the flag says the word names its
/// place.
fn lookup_crop(lexicon: &Lexicon, word: &str) -> Option<(CropName, bool)> {
    if let Some(crop) = lexicon.crop(word) {
        return Some((crop, false));
    }
    // A one-character name (马, 蚕) takes only a place suffix (马圈, 蚕房
    // is no word here): 马上 is "at once", 马儿 and 小马 are rare enough.
    let stem_crop = |stem: &str, place: bool| {
        lexicon
            .crop(stem)
            .filter(|_| place || stem.chars().count() > 1)
    };
    let (first, last) = ends(word)?;
    if let Some(place) = suffix(last) {
        if let Some(crop) = stem_crop(before(word, last), place) {
            return Some((crop, place));
        }
    }
    PREFIXES
        .contains(&first)
        .then(|| stem_crop(after(word, first), false))
        .flatten()
        .map(|crop| (crop, false))
}

/// A word lowercased. Most words are Chinese characters and lowercase
/// ASCII, which have no other case: those are copied as they are, without
/// `str::to_lowercase`'s look-up of every character in the case tables.
fn lowercase(word: &str) -> String {
    let caseless = |c: char| {
        ('\u{4E00}'..='\u{9FFF}').contains(&c) || (c.is_ascii() && !c.is_ascii_uppercase())
    };
    if word.chars().all(caseless) {
        word.to_string()
    } else {
        word.to_lowercase()
    }
}

/// A word's first and last characters; `None` for an empty word.
fn ends(word: &str) -> Option<(char, char)> {
    let mut chars = word.chars();
    let first = chars.next()?;
    Some((first, chars.next_back().unwrap_or(first)))
}

/// Whether the suffix `last` names a place, if it is one of the
/// [`SUFFIXES`] (which are all different): the only suffix a word ending in
/// it can have.
fn suffix(last: char) -> Option<bool> {
    SUFFIXES
        .iter()
        .find(|(s, _)| *s == last)
        .map(|&(_, place)| place)
}

/// A word without its last character, `last` (the stem before a suffix).
fn before(word: &str, last: char) -> &str {
    &word[..word.len() - last.len_utf8()]
}

/// A word without its first character, `first` (the stem after a prefix).
fn after(word: &str, first: char) -> &str {
    &word[first.len_utf8()..]
}

/// A text's first character. Compared as a `char`, a one-character affix
/// costs a few instructions; `str::starts_with(char)` compares its UTF-8
/// bytes through `memcmp`, which showed in MatchProblem's profile.
pub(super) fn first_char(text: &str) -> Option<char> {
    text.chars().next()
}

#[cfg(test)]
mod tests {
    use super::lowercase;

    #[test]
    fn lowercase_is_str_to_lowercase() {
        for word in [
            "苹果",
            "abc",
            "NPK",
            "Ph值",
            "ＡＢＣ",
            "ΣΑΣ",
            "ǅ",
            "İ",
            "果树2号",
            "",
            "〇",
        ] {
            assert_eq!(lowercase(word), word.to_lowercase(), "{word}");
        }
    }
}
