//! The analyser's third phase: each subject's score, from its terms, the
//! county's farming, being named outright and a parent's evidence, and the
//! subjects the report points to ranked by it.

use rustc_hash::FxHashMap as HashMap;

use crate::{
    model::divisions::Divisions,
    model::Corps,
    reading::lexicon::{Lexicon, SubjectId},
};

use super::weigh::Weighed;

/// How much a county's farming counts, times the subject's share of it.
const PRIOR_WEIGHT: f32 = 0.8;
/// What being named outright adds to a subject.
const NAMED_BONUS: f32 = 0.5;
/// What being the first subject named adds on top.
const FIRST_BONUS: f32 = 0.1;
/// Share of a parent's evidence a child subject takes over.
const PARENT_SHARE: f32 = 0.6;

/// Where a report comes from and what it hints at, for the county prior.
pub(super) struct Setting<'a> {
    pub(crate) text: &'a str,
    /// The county the report was sent from, if known.
    pub(crate) county: Option<&'a str>,
    pub(crate) corps_hints: &'a HashMap<Corps, f32>,
    /// Some word says what the report is about (`Findings::identified`).
    pub(crate) identified: bool,
}

/// The subjects the text itself points to, best first (ties by id), with
/// their scores; a prior alone never names one.
pub(super) fn rank_subjects(
    lexicon: &Lexicon,
    weighed: &Weighed<'_>,
    setting: &Setting<'_>,
) -> Vec<(SubjectId, f32)> {
    let mut scores: HashMap<SubjectId, f32> = weighed
        .by_term
        .iter()
        .map(|(&s, terms)| (s, terms.values().sum()))
        .collect();
    let pointed: Vec<SubjectId> = scores.keys().copied().collect();
    // Symptoms that name nothing are not settled by what the county grows:
    // the farmer is asked what it is.
    if setting.identified {
        add_county_prior(lexicon, setting, &mut scores);
    }
    add_named_bonus(&weighed.named, &mut scores);
    add_inherited(lexicon, &weighed.by_term, &mut scores);
    let mut ranked: Vec<(SubjectId, f32)> = scores
        .into_iter()
        .filter(|(s, _)| pointed.contains(s))
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked
}

/// The county's crops and animals: a weak prior, stronger where the report
/// hints at their corps (果园, 大棚 …). A county named in the text wins over
/// the one given.
fn add_county_prior(
    lexicon: &Lexicon,
    setting: &Setting<'_>,
    scores: &mut HashMap<SubjectId, f32>,
) {
    let divisions = Divisions::embedded();
    let named_county = divisions
        .counties()
        .find(|c| setting.text.contains(county_stem(&c.name)))
        .map(|c| c.name.as_str());
    let Some(county) = named_county.or(setting.county) else {
        return;
    };
    let prior = lexicon.county_prior(county);
    let mut corps_share: HashMap<Corps, f32> = HashMap::default();
    for &(s, share) in prior {
        *corps_share.entry(lexicon.subject(s).corps).or_default() += share;
    }
    for &(s, share) in prior {
        let corps = lexicon.subject(s).corps;
        let within = share / corps_share[&corps];
        let hint = setting
            .corps_hints
            .get(&corps)
            .copied()
            .unwrap_or(0.0)
            .min(1.0);
        *scores.entry(s).or_default() += PRIOR_WEIGHT * (share + within * hint);
    }
}

/// Being named outright, as what the report is about, counts; the first
/// such subject is the likely topic.
fn add_named_bonus(named: &HashMap<SubjectId, usize>, scores: &mut HashMap<SubjectId, f32>) {
    let first_named = named.iter().min_by_key(|(_, &at)| at).map(|(&s, _)| s);
    for &s in named.keys() {
        *scores.entry(s).or_default() += NAMED_BONUS
            + if Some(s) == first_named {
                FIRST_BONUS
            } else {
                0.0
            };
    }
}

/// A child subject with evidence of its own (奶山羊) takes over part of its
/// parent's (羊) from the terms that did not already count for it.
fn add_inherited(
    lexicon: &Lexicon,
    by_term: &HashMap<SubjectId, HashMap<&str, f32>>,
    scores: &mut HashMap<SubjectId, f32>,
) {
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
}

/// 白水县 → 白水: how counties are named in speech.
fn county_stem(name: &str) -> &str {
    name.strip_suffix(['县', '区', '市']).unwrap_or(name)
}

/// The crops and animals named that only a corps takes, best first, each
/// scored as a subject would be: its strongest mention and a share of its
/// repeats, and the bonus of being named outright as what the report is
/// about (and first).
pub(super) fn rank_crops<'m>(weighed: &Weighed<'m>) -> Vec<(&'m str, Corps, f32)> {
    let first_subject = weighed.named.values().min().copied();
    let first_crop = weighed.crops.iter().filter(|c| c.named).map(|c| c.at).min();
    let mut ranked: Vec<(&str, Corps, f32)> = Vec::new();
    for hit in &weighed.crops {
        if ranked.iter().any(|(t, _, _)| *t == hit.term) {
            continue;
        }
        let mut weights: Vec<f32> = weighed
            .crops
            .iter()
            .filter(|c| c.term == hit.term)
            .map(|c| c.weight)
            .collect();
        weights.sort_by(|a, b| b.total_cmp(a));
        let repeats: f32 = weights[1..].iter().sum();
        let mut score = weights[0] + super::weigh::REPEAT_SHARE * repeats;
        let named_at = weighed
            .crops
            .iter()
            .filter(|c| c.term == hit.term && c.named)
            .map(|c| c.at)
            .min();
        if let Some(at) = named_at {
            score += NAMED_BONUS;
            if Some(at) == first_crop && first_subject.is_none_or(|s| at < s) {
                score += FIRST_BONUS;
            }
        }
        ranked.push((hit.term, hit.corps, score));
    }
    ranked.sort_by(|a, b| b.2.total_cmp(&a.2));
    ranked
}
