//! Building the lexicon from its CSV sources: one loader per file, each
//! checking its rows, then the segmenter that keeps every term whole.

use rustc_hash::FxHashMap as HashMap;

use aho_corasick::{AhoCorasick, MatchKind};
use jieba_rs::Jieba;

use crate::model::Corps;

use super::{CropKind, CropName, Cue, CueRole, Lexicon, Sense, Subject, SubjectId, TermKind};

/// The source texts a lexicon is built from.
pub(crate) struct Sources<'a> {
    pub(crate) subjects: &'a str,
    pub(crate) terms: &'a str,
    pub(crate) corps_terms: &'a str,
    pub(crate) cues: &'a str,
    pub(crate) nonagri: &'a str,
    pub(crate) county_profiles: &'a str,
    pub(crate) crops: &'a str,
}

impl Sources<'static> {
    /// The files under `index/`, as compiled into the binary.
    pub(crate) fn embedded() -> Sources<'static> {
        Sources {
            subjects: include_str!("../../../index/subjects.csv"),
            terms: include_str!("../../../index/lexicon/terms.csv"),
            corps_terms: include_str!("../../../index/lexicon/corps_terms.csv"),
            cues: include_str!("../../../index/lexicon/cues.csv"),
            nonagri: include_str!("../../../index/lexicon/nonagri.csv"),
            county_profiles: include_str!("../../../index/county_profiles.csv"),
            crops: include_str!("../../../index/lexicon/crops.csv"),
        }
    }
}

impl Lexicon {
    /// Parses and cross-checks the sources; every subject a term names must
    /// be a canonical subject.
    pub(crate) fn build(src: &Sources<'_>) -> Result<Lexicon, String> {
        let Subjects {
            subjects,
            ids,
            aliases,
        } = load_subjects(src.subjects)?;
        let Terms {
            mut terms,
            specialty_names,
        } = load_terms(src.terms, &ids, &aliases)?;
        let corps_terms = load_corps_terms(src.corps_terms)?;
        let cues = load_cues(src.cues)?;
        let nonagri = load_nonagri(src.nonagri)?;
        let county_priors = load_county_priors(src.county_profiles, &ids)?;
        let taken = |term: &str| {
            terms.contains_key(term)
                || corps_terms.contains_key(term)
                || cues.contains_key(term)
                || nonagri.contains_key(term)
        };
        let (crop_names, crop_senses) = load_crops(src.crops, &ids, &subjects, taken)?;
        for (term, sense) in crop_senses {
            add_sense(&mut terms, &term, sense);
        }
        let patterns = multi_character_words(
            terms
                .keys()
                .chain(corps_terms.keys())
                .chain(cues.keys())
                .chain(nonagri.keys())
                .chain(crop_names.keys()),
        );
        let mut jieba = Jieba::new();
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
            crop_names,
            jieba,
            matcher,
            patterns,
        })
    }
}

/// The non-empty rows of a CSV text after its header, each with its line
/// number and trimmed fields; unreadable rows are skipped.
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

/// The `n`th field of a row; empty where the row is short.
fn cell(fields: &[String], n: usize) -> &str {
    fields.get(n).map(String::as_str).unwrap_or("")
}

fn weight(text: &str, file: &str, line: usize) -> Result<f32, String> {
    match text.parse::<f32>() {
        Ok(w) if w > 0.0 && w <= 1.0 => Ok(w),
        _ => Err(format!(
            "{file} line {line}: weight {text:?} is not in (0, 1]"
        )),
    }
}

/// What `subjects.csv` holds.
struct Subjects {
    subjects: Vec<Subject>,
    /// Canonical name → subject.
    ids: HashMap<String, SubjectId>,
    /// Every alias with its subject, in file order.
    aliases: Vec<(String, SubjectId)>,
}

/// Reads `subjects.csv`: name, corps, parent and aliases of each subject;
/// parents are resolved once every subject is known.
fn load_subjects(text: &str) -> Result<Subjects, String> {
    let mut subjects = Vec::new();
    let mut ids: HashMap<String, SubjectId> = HashMap::default();
    let mut parents = Vec::new();
    let mut aliases = Vec::new();
    for (line, f) in rows(text) {
        let corps = Corps::parse(cell(&f, 1)).ok_or(format!(
            "subjects.csv line {line}: unknown corps {:?}",
            cell(&f, 1)
        ))?;
        let id = SubjectId::try_from(subjects.len()).map_err(|_| "too many subjects")?;
        if ids.insert(cell(&f, 0).to_string(), id).is_some() {
            return Err(format!(
                "subjects.csv line {line}: duplicate subject {}",
                cell(&f, 0)
            ));
        }
        subjects.push(Subject {
            name: cell(&f, 0).to_string(),
            corps,
            parent: None,
        });
        parents.push((id, cell(&f, 2).to_string(), line));
        for alias in cell(&f, 3)
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
    Ok(Subjects {
        subjects,
        ids,
        aliases,
    })
}

/// The terms that point to subjects, and the names a roster may use.
struct Terms {
    /// Term → its senses, one per subject.
    terms: HashMap<String, Vec<Sense>>,
    /// Canonical names and aliases → subject.
    specialty_names: HashMap<String, SubjectId>,
}

/// The subjects' names and aliases as terms, then the terms of `terms.csv`.
fn load_terms(
    text: &str,
    ids: &HashMap<String, SubjectId>,
    aliases: &[(String, SubjectId)],
) -> Result<Terms, String> {
    let mut terms: HashMap<String, Vec<Sense>> = HashMap::default();
    let mut specialty_names = HashMap::default();
    for (name, &id) in ids {
        let sense = Sense {
            subject: id,
            kind: TermKind::Subject,
            weight: 1.0,
        };
        add_sense(&mut terms, name, sense);
        specialty_names.insert(name.clone(), id);
    }
    for (alias, id) in aliases {
        let sense = Sense {
            subject: *id,
            kind: TermKind::Alias,
            weight: 1.0,
        };
        add_sense(&mut terms, alias, sense);
        specialty_names.entry(alias.clone()).or_insert(*id);
    }
    for (line, f) in rows(text) {
        let [term, subject, kind, w] = [0, 1, 2, 3].map(|n| cell(&f, n));
        let subject = *ids.get(subject).ok_or(format!(
            "terms.csv line {line}: unknown subject {subject:?}"
        ))?;
        let kind =
            TermKind::parse(kind).ok_or(format!("terms.csv line {line}: unknown kind {kind:?}"))?;
        let weight = weight(w, "terms.csv", line)?;
        if term.is_empty() {
            return Err(format!("terms.csv line {line}: empty term"));
        }
        let sense = Sense {
            subject,
            kind,
            weight,
        };
        add_sense(&mut terms, term, sense);
    }
    Ok(Terms {
        terms,
        specialty_names,
    })
}

/// Adds a sense to a term; a term keeps one sense per subject, the
/// strongest.
fn add_sense(terms: &mut HashMap<String, Vec<Sense>>, term: &str, sense: Sense) {
    let senses = terms.entry(term.to_string()).or_default();
    match senses.iter_mut().find(|s| s.subject == sense.subject) {
        Some(s) if s.weight < sense.weight => *s = sense,
        Some(_) => {}
        None => senses.push(sense),
    }
}

/// Reads `corps_terms.csv`: words that point to a corps, not a subject.
fn load_corps_terms(text: &str) -> Result<HashMap<String, (Corps, f32)>, String> {
    let mut corps_terms = HashMap::default();
    for (line, f) in rows(text) {
        let corps = Corps::parse(cell(&f, 1)).ok_or(format!(
            "corps_terms.csv line {line}: unknown corps {:?}",
            cell(&f, 1)
        ))?;
        corps_terms.insert(
            cell(&f, 0).to_string(),
            (corps, weight(cell(&f, 2), "corps_terms.csv", line)?),
        );
    }
    Ok(corps_terms)
}

/// What `crops.csv` says of its names: the ones with a subject become
/// senses of that subject, the others name a crop or animal of a corps.
type Crops = (HashMap<String, CropName>, Vec<(String, Sense)>);

/// Reads `crops.csv`, the open vocabulary: `term,corps,subject,kind,source`.
/// A term with a subject names it (as its aliases and varieties do); one
/// without names a crop or animal that only its corps takes. A term must be
/// new to the other files, its corps known, and its subject (if any) a
/// canonical subject of that corps.
fn load_crops(
    text: &str,
    ids: &HashMap<String, SubjectId>,
    subjects: &[Subject],
    taken: impl Fn(&str) -> bool,
) -> Result<Crops, String> {
    let mut names: HashMap<String, CropName> = HashMap::default();
    let mut senses = Vec::new();
    for (line, f) in rows(text) {
        let [term, corps, subject, kind] = [0, 1, 2, 3].map(|n| cell(&f, n));
        let at = |what: String| format!("crops.csv line {line}: {what}");
        if term.is_empty() {
            return Err(at("empty term".into()));
        }
        if taken(term) || names.contains_key(term) || senses.iter().any(|(t, _)| t == term) {
            return Err(at(format!("{term} is already in the lexicon")));
        }
        let corps = Corps::parse(corps).ok_or_else(|| at(format!("unknown corps {corps:?}")))?;
        let kind = CropKind::parse(kind).ok_or_else(|| at(format!("unknown kind {kind:?}")))?;
        if subject.is_empty() {
            names.insert(term.to_string(), CropName { corps, kind });
            continue;
        }
        let id = *ids
            .get(subject)
            .ok_or_else(|| at(format!("unknown subject {subject:?}")))?;
        if subjects[usize::from(id)].corps != corps {
            return Err(at(format!("{subject} is not in corps {}", corps.chinese())));
        }
        let (kind, weight) = kind.sense();
        senses.push((
            term.to_string(),
            Sense {
                subject: id,
                kind,
                weight,
            },
        ));
    }
    Ok((names, senses))
}

/// Reads `cues.csv`: words that change how the words around them read.
fn load_cues(text: &str) -> Result<HashMap<String, Cue>, String> {
    let mut cues = HashMap::default();
    for (line, f) in rows(text) {
        let role = CueRole::parse(cell(&f, 1)).ok_or(format!(
            "cues.csv line {line}: unknown role {:?}",
            cell(&f, 1)
        ))?;
        cues.insert(
            cell(&f, 0).to_string(),
            Cue {
                role,
                weight: weight(cell(&f, 2), "cues.csv", line)?,
            },
        );
    }
    Ok(cues)
}

/// Reads `nonagri.csv`: words of non-agricultural requests.
fn load_nonagri(text: &str) -> Result<HashMap<String, f32>, String> {
    let mut nonagri = HashMap::default();
    for (line, f) in rows(text) {
        nonagri.insert(
            cell(&f, 0).to_string(),
            weight(cell(&f, 1), "nonagri.csv", line)?,
        );
    }
    Ok(nonagri)
}

/// Reads `county_profiles.csv`: county → (subject, share of the county's
/// farming), the shares of each county adding to 1.
fn load_county_priors(
    text: &str,
    ids: &HashMap<String, SubjectId>,
) -> Result<HashMap<String, Vec<(SubjectId, f32)>>, String> {
    let mut county_priors: HashMap<String, Vec<(SubjectId, f32)>> = HashMap::default();
    for (line, f) in rows(text) {
        let subject = *ids.get(cell(&f, 1)).ok_or(format!(
            "county_profiles.csv line {line}: unknown subject {:?}",
            cell(&f, 1)
        ))?;
        let w: f32 = cell(&f, 2)
            .parse()
            .ok()
            .filter(|w: &f32| *w > 0.0)
            .ok_or(format!(
                "county_profiles.csv line {line}: weight must be a positive number"
            ))?;
        county_priors
            .entry(cell(&f, 0).to_string())
            .or_default()
            .push((subject, w));
    }
    for list in county_priors.values_mut() {
        let total: f32 = list.iter().map(|(_, w)| w).sum();
        for (_, w) in list.iter_mut() {
            *w /= total;
        }
    }
    Ok(county_priors)
}

/// The words of two or more characters, sorted and without repeats: what
/// the segmenter must keep whole.
fn multi_character_words<'w>(words: impl Iterator<Item = &'w String>) -> Vec<String> {
    let mut patterns: Vec<String> = words.filter(|w| w.chars().count() > 1).cloned().collect();
    patterns.sort();
    patterns.dedup();
    patterns
}
