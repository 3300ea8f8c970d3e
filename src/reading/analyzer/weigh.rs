//! The analyser's second phase: each mention is weighed by the role the
//! cues around it give it (patient, neighbour, place, unaffected) and by the
//! problems said of it, then every term's mentions are added up per subject.

use rustc_hash::FxHashMap as HashMap;

use crate::{
    model::Corps,
    reading::lexicon::{CueRole, Lexicon, Sense, SubjectId, TermKind},
};

use super::{
    scan::{Cues, Mention},
    Evidence, Role,
};

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
/// What a mention naming a place of the subject (苹果园) counts for.
const PLACE_FACTOR: f32 = 0.5;
/// What a word that several hosts share (菌核病, 红蜘蛛) counts for a host
/// that is not named, once the report names one.
const SHARED_WHEN_NAMED: f32 = 0.4;
/// From this weight a word that points to one subject (and its kin) far
/// more than to any other identifies it (缩叶病 → 桃, 角果 → 油菜, 塘底 →
/// 水产), as a name would …
const IDENTIFYING_WEIGHT: f32 = 0.6;
/// … when its weight for that subject is at least this many times its
/// weight for any other subject outside the subject's kin. Symptoms every
/// animal or many crops show (拉稀 猪 0.3 / 牛 0.2, 咳嗽, 根瘤) do not
/// identify: a report of them alone names nothing (README "Triage rule").
const IDENTIFYING_MARGIN: f32 = 1.5;
/// What each repeated mention of a term adds, as a share of its weight.
pub(super) const REPEAT_SHARE: f32 = 0.3;

/// What the mentions of a report add up to.
pub(super) struct Weighed<'m> {
    /// Per subject, per term: the strongest mention and a share of repeats.
    pub(crate) by_term: HashMap<SubjectId, HashMap<&'m str, f32>>,
    /// Subjects named outright as what the report is about, each at the
    /// first word naming it.
    pub(crate) named: HashMap<SubjectId, usize>,
    /// How surely the terms describe a technical problem, added up over the
    /// distinct terms.
    pub(crate) technical: f32,
    /// The crops and animals named that only a corps takes, in word order.
    pub(crate) crops: Vec<CropHit<'m>>,
    /// Some word says what the report is about, in any role: a crop or
    /// animal, a subject's name, or a word only one subject has that
    /// decides it (麦田, 蓝耳病). Symptoms that several hosts share (拉稀,
    /// 红蜘蛛) do not.
    pub(crate) identified: bool,
}

/// A mention of a crop or animal that only a corps takes (生菜, 丹参).
pub(super) struct CropHit<'m> {
    pub(crate) term: &'m str,
    pub(crate) corps: Corps,
    pub(crate) weight: f32,
    pub(crate) role: Role,
    /// Named outright as what the report is about: the patient, or the
    /// place of the trouble when nothing else is named.
    pub(crate) named: bool,
    /// The mention's word.
    pub(crate) at: usize,
}

/// Weighs every mention by its role and kind, adding one piece of evidence
/// per sense, then adds up per subject: a term's strongest mention counts
/// whole, repeats a little. A crop named as the place of the trouble (白菜地里)
/// is the one concerned when no other is named as affected; once a host is
/// named, words that several hosts share count little for the others, and
/// when only generic words (`hinted`: 菜, 牲口) are named, little for the
/// hosts of other corps.
pub(super) fn weigh_mentions<'m>(
    lexicon: &Lexicon,
    mentions: &'m [Mention],
    cues: &Cues,
    hinted: &HashMap<Corps, f32>,
    evidence: &mut Vec<Evidence>,
) -> Weighed<'m> {
    let mut mention_weights: HashMap<(SubjectId, &str), Vec<f32>> = HashMap::default();
    let mut named: HashMap<SubjectId, usize> = HashMap::default();
    let mut technical_terms: HashMap<&str, f32> = HashMap::default();
    let mut crops = Vec::new();
    let mut placed: HashMap<SubjectId, usize> = HashMap::default();
    // Words that several hosts share, with what they are (a pest, a place).
    let mut shared: HashMap<(SubjectId, &str), TermKind> = HashMap::default();
    let mut identified = false;
    for m in mentions {
        identified |= m.crop.is_some() || identifies(lexicon, &m.senses);
        let (role, factor) = role_and_factor(m, cues);
        if let Some(crop) = m.crop {
            let weight = crop.kind.corps_weight() * factor;
            crops.push(CropHit {
                term: m.term.as_str(),
                corps: crop.corps,
                weight,
                role,
                named: role == Role::Main,
                at: m.at.word,
            });
            evidence.push(Evidence {
                term: m.term.clone(),
                subject: None,
                corps: Some(crop.corps),
                kind: "crop",
                role,
                weight,
            });
            continue;
        }
        for sense in &m.senses {
            let weight = sense.weight * factor * kind_factor(sense.kind);
            mention_weights
                .entry((sense.subject, m.term.as_str()))
                .or_default()
                .push(weight);
            let names = sense.kind.names_subject() && sense.weight >= 0.9;
            // A word naming the subject's place (白菜地, 苹果园) names it too.
            let names_place = m.place && sense.weight >= 0.9;
            if names || names_place {
                match role {
                    Role::Main if names => {
                        named.entry(sense.subject).or_insert(m.at.word);
                    }
                    Role::Place => {
                        placed.entry(sense.subject).or_insert(m.at.word);
                    }
                    _ => {}
                }
            } else if !sense.kind.names_subject() && m.senses.len() > 1 {
                shared.insert((sense.subject, m.term.as_str()), sense.kind);
            }
            let technicality = technicality(sense.kind);
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
    if named.is_empty() && !crops.iter().any(|c| c.named) {
        named = placed;
        for c in crops.iter_mut().filter(|c| c.role == Role::Place) {
            c.named = true;
        }
    }
    // With only generic words naming what it is (秋菜, 牲口), the diseases,
    // pests and symptoms several hosts share count little for the hosts of
    // other corps.
    let generic_only = named.is_empty() && !crops.iter().any(|c| c.named) && !hinted.is_empty();
    if !named.is_empty() || crops.iter().any(|c| c.named) || generic_only {
        for ((subject, term), kind) in shared {
            let spared = if generic_only {
                hinted.contains_key(&lexicon.subject(subject).corps)
                    || !matches!(kind, TermKind::Disease | TermKind::Pest | TermKind::Symptom)
            } else {
                kin_named(lexicon, subject, &named)
            };
            if !spared {
                if let Some(weights) = mention_weights.get_mut(&(subject, term)) {
                    weights.iter_mut().for_each(|w| *w *= SHARED_WHEN_NAMED);
                }
            }
        }
    }
    Weighed {
        by_term: strongest_with_repeats(mention_weights),
        named,
        technical: technical_terms.values().sum::<f32>(),
        crops,
        identified,
    }
}

/// A word says what the report is about: it names a subject, or it points
/// to one subject (with its parent and children) strongly and far more
/// than to any other.
fn identifies(lexicon: &Lexicon, senses: &[Sense]) -> bool {
    if senses.iter().any(|s| s.kind.names_subject()) {
        return true;
    }
    // A part only one plant corps's crops have (瓜秧, 果穗 of no grain)
    // names a kind of crop, as a generic word does. An animal's body part
    // (蹄子, 奶头) does not: it is any animal's, as its symptoms are.
    if let [first, ..] = senses {
        let corps = lexicon.subject(first.subject).corps;
        if corps != Corps::Livestock
            && senses
                .iter()
                .all(|s| s.kind == TermKind::Part && lexicon.subject(s.subject).corps == corps)
            && senses.iter().map(|s| s.weight).sum::<f32>() >= IDENTIFYING_WEIGHT
        {
            return true;
        }
    }
    let Some(top) = senses.iter().max_by(|a, b| a.weight.total_cmp(&b.weight)) else {
        return false;
    };
    let kin = |s: SubjectId| {
        s == top.subject
            || lexicon.subject(s).parent == Some(top.subject)
            || lexicon.subject(top.subject).parent == Some(s)
    };
    let kin_weight: f32 = senses
        .iter()
        .filter(|s| kin(s.subject))
        .map(|s| s.weight)
        .sum();
    let other = senses
        .iter()
        .filter(|s| !kin(s.subject))
        .map(|s| s.weight)
        .fold(0.0f32, f32::max);
    kin_weight >= IDENTIFYING_WEIGHT && kin_weight >= IDENTIFYING_MARGIN * other
}

/// The subject, its parent or one of its children is named.
fn kin_named(lexicon: &Lexicon, subject: SubjectId, named: &HashMap<SubjectId, usize>) -> bool {
    named.contains_key(&subject)
        || lexicon
            .subject(subject)
            .parent
            .is_some_and(|p| named.contains_key(&p))
        || named
            .keys()
            .any(|&n| lexicon.subject(n).parent == Some(subject))
}

/// How a mention reads and what it counts for before its senses' own
/// weights: a neighbour, place or unaffected cue next to it discounts it;
/// problems said of the patient or a place, and a contrast before it, raise
/// it.
fn role_and_factor(m: &Mention, cues: &Cues) -> (Role, f32) {
    let (role, mut factor) = match neighbour_cue(m, cues) {
        Some((CueRole::Unaffected, discount)) => (Role::Unaffected, 1.0 - discount),
        Some((CueRole::PlaceBefore, discount)) => (Role::Place, 1.0 - discount),
        Some((_, discount)) => (Role::Neighbour, 1.0 - discount),
        None if m.place => (Role::Place, PLACE_FACTOR),
        None => (Role::Main, 1.0),
    };
    if matches!(role, Role::Main | Role::Place) {
        // The subject a symptom is said of stands just before it.
        let close = cues
            .problems
            .iter()
            .filter(|p| {
                p.at.clause == m.at.clause
                    && p.at.word > m.at.word
                    && p.at.word - m.at.word <= SYMPTOM_REACH
            })
            .map(|p| p.weight)
            .fold(0.0f32, f32::max);
        let in_clause = cues
            .problem_in_clause
            .get(&m.at.clause)
            .copied()
            .unwrap_or(0.0);
        factor *= 1.0 + PROBLEM_BOOST * in_clause + CLOSE_PROBLEM_BOOST * close;
    }
    if cues.contrast_at.is_some_and(|c| m.at.word > c) {
        factor *= 1.0 + CONTRAST_BOOST;
    }
    (role, factor)
}

/// The first neighbour, place or unaffected cue within reach of a mention
/// in its clause, with its role and discount.
fn neighbour_cue(m: &Mention, cues: &Cues) -> Option<(CueRole, f32)> {
    let word = m.at.word;
    cues.neighbours.iter().find_map(|cue| {
        let at = cue.at.word;
        let before = at > word && at - word <= NEIGHBOUR_REACH;
        let after = word > at && word - at <= NEIGHBOUR_REACH;
        let near = cue.at.clause == m.at.clause
            && match cue.role {
                CueRole::NeighbourBefore | CueRole::Unaffected => before,
                CueRole::PlaceBefore => at == word + 1,
                CueRole::NeighbourAfter => after,
                CueRole::Problem | CueRole::Contrast => false,
            };
        near.then_some((cue.role, cue.weight))
    })
}

/// Per subject, per term: the strongest mention and a share of repeats.
fn strongest_with_repeats(
    mention_weights: HashMap<(SubjectId, &str), Vec<f32>>,
) -> HashMap<SubjectId, HashMap<&str, f32>> {
    let mut by_term: HashMap<SubjectId, HashMap<&str, f32>> = HashMap::default();
    for ((subject, term), mut weights) in mention_weights {
        weights.sort_by(|a, b| b.total_cmp(a));
        let repeats: f32 = weights[1..].iter().sum();
        by_term
            .entry(subject)
            .or_default()
            .insert(term, weights[0] + REPEAT_SHARE * repeats);
    }
    by_term
}

/// How surely a term describes a technical problem, whatever its host: a
/// disease is one, a practice may be asked about.
fn technicality(kind: TermKind) -> f32 {
    match kind {
        TermKind::Disease | TermKind::Pest | TermKind::Symptom => 1.0,
        TermKind::Equipment => 0.6,
        TermKind::Practice => 0.4,
        _ => 0.0,
    }
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
