//! The analyser's last phase: from the ranked subjects, the corps hints and
//! the weight of technical and non-agricultural words, what the report is
//! about and how sure that is, or why it cannot be routed.

use rustc_hash::FxHashMap as HashMap;

use crate::{
    model::Corps,
    reading::lexicon::{Lexicon, SubjectId},
};

use super::{Analysis, Evidence, Missing};

/// Below this evidence the analyser names no subject.
const MIN_SUBJECT_EVIDENCE: f32 = 0.45;
/// Below this evidence the analyser names no corps either.
const MIN_CORPS_EVIDENCE: f32 = 0.6;
/// Below `MIN_CORPS_EVIDENCE`, generic words (菜, 庄稼) still decide the
/// corps of a report that asks about a problem, or asks anything (种子
/// 播量要加多少, 山坡上栽的树 咋保活), and names nothing more specific,
/// from this much evidence.
const MIN_GENERIC_EVIDENCE: f32 = 0.3;
/// Non-agricultural markers below this never decide.
const NONAGRI_MIN: f32 = 0.5;

/// What the earlier phases found, for the verdict.
pub(super) struct Findings<'m> {
    /// The subjects the report points to, best first.
    pub(crate) ranked: Vec<(SubjectId, f32)>,
    /// The crops and animals named that only a corps takes, best first.
    pub(crate) crops: Vec<(&'m str, Corps, f32)>,
    /// Corps → the weights of the words that point to it.
    pub(crate) corps_hints: HashMap<Corps, f32>,
    /// The weights of the non-agricultural markers, added up.
    pub(crate) nonagri: f32,
    /// How surely the report is a technical problem: its problem cues and
    /// technical terms.
    pub(crate) technical: f32,
    /// Some word says what the report is about: a crop, animal or subject
    /// named, a word that decides one, or a generic word (菜, 牲口).
    pub(crate) identified: bool,
    /// The weights of the problem cues alone, added up.
    pub(crate) problem_total: f32,
    pub(crate) evidence: Vec<Evidence>,
    pub(crate) words: Vec<String>,
    /// The report, for the signs of a problem asked about with nothing
    /// named ([`super::asking`]).
    pub(crate) text: &'m str,
}

/// Decides the reading: not agricultural, a subject, a corps alone, or
/// nothing that can be routed.
pub(super) fn conclude(lexicon: &Lexicon, findings: Findings<'_>) -> Analysis {
    let Findings {
        ranked,
        crops,
        corps_hints,
        nonagri,
        technical,
        identified,
        problem_total,
        mut evidence,
        words,
        text,
    } = findings;
    let (top, top_score) = entry(&ranked, 0);
    let (runner_up, second_score) = entry(&ranked, 1);
    let top_crop = crops.first().copied();
    let hinted: Vec<Corps> = corps_hints.keys().copied().collect();
    let top_corps = top_corps(lexicon, corps_hints, &ranked, &crops);

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
        missing: None,
        hint: None,
        guess: None,
    };
    if not_agricultural {
        analysis.agricultural = false;
        analysis.confidence = (nonagri / (nonagri + technical)).min(1.0);
        analysis.note = "这不像是农业技术问题（如补贴、价格、问候），未分派专家；政策与收购事宜请咨询当地农业农村部门".into();
    } else if let Some((_, corps, score)) =
        top_crop.filter(|c| c.2 >= MIN_SUBJECT_EVIDENCE && c.2 > top_score)
    {
        // A crop or animal no subject covers is what the report is about:
        // its corps takes it.
        analysis.corps = Some(corps);
        analysis.runner_up = top;
        analysis.confidence = (score / (score + top_score)) * score.min(1.0);
    } else if top_score >= MIN_SUBJECT_EVIDENCE {
        let subject = top.expect("a top score has a subject");
        analysis.subject = Some(subject);
        analysis.corps = Some(lexicon.subject(subject).corps);
        analysis.runner_up = runner_up;
        analysis.confidence = (top_score / (top_score + second_score)) * top_score.min(1.0);
    } else if let Some((corps, score)) = top_corps.filter(|&(c, w)| {
        w >= MIN_CORPS_EVIDENCE
            || (w >= MIN_GENERIC_EVIDENCE
                && hinted.contains(&c)
                && (asks(problem_total, text) || super::asking::asks_a_question(text)))
    }) {
        analysis.corps = Some(corps);
        analysis.runner_up = top;
        analysis.confidence = 0.5 * score.min(1.0);
    } else {
        // A problem asked about with nothing named (a photo's "这是什么病？")
        // is still agricultural: it says what is missing, and its ticket
        // goes to triage.
        analysis.agricultural = asks(problem_total, text);
        analysis.runner_up = top;
        if analysis.agricultural {
            ask_what_it_is(&mut analysis, None);
        } else {
            analysis.note =
                "未能从描述中判断是哪种作物、畜禽或哪类问题，请补充作物或畜禽名称".into();
        }
    }
    if !identified && analysis.corps.is_some() {
        // Symptoms alone (拉稀, 不吃不喝, 红蜘蛛) point to a corps, even add up
        // to a subject, but name nothing (README "Triage rule"): the farmer
        // is asked what it is, the subject is kept only as a guess and the
        // corps as triage's hint.
        analysis.guess = analysis.subject.take();
        let hint = analysis.corps.take();
        analysis.confidence = 0.0;
        ask_what_it_is(&mut analysis, hint);
    }
    analysis
}

/// Makes `analysis` a problem that names nothing: no routing, what is
/// missing (an animal when the symptoms are an animal's), and the corps
/// the symptoms point to as triage's hint.
fn ask_what_it_is(analysis: &mut Analysis, hint: Option<Corps>) {
    let missing = Missing::for_hint(hint);
    analysis.missing = Some(missing);
    analysis.hint = hint;
    analysis.note = format!(
        "描述中没有说是什么{}：请补充；也可直接提交，由附近的县乡农技人员先看",
        match missing {
            Missing::Animal => "牲畜或家禽",
            Missing::Crop => "作物",
            Missing::CropOrAnimal => "作物或畜禽",
        }
    );
}

/// Whether the report asks about a problem: a problem cue, or the signs
/// of one when nothing is named (a part with a symptom, a photo with a
/// question).
fn asks(problem_total: f32, text: &str) -> bool {
    problem_total > 0.0 || super::asking::asks_about_a_problem(text)
}

/// The subject ranked at `place` and its score; none and 0 past the end.
fn entry(ranked: &[(SubjectId, f32)], place: usize) -> (Option<SubjectId>, f32) {
    ranked
        .get(place)
        .copied()
        .map_or((None, 0.0), |(s, w)| (Some(s), w))
}

/// The corps with the most evidence: its hints, its subjects' and crops' scores
/// (ties to the first corps).
fn top_corps(
    lexicon: &Lexicon,
    corps_hints: HashMap<Corps, f32>,
    ranked: &[(SubjectId, f32)],
    crops: &[(&str, Corps, f32)],
) -> Option<(Corps, f32)> {
    let mut corps_scores = corps_hints;
    for &(s, w) in ranked {
        *corps_scores.entry(lexicon.subject(s).corps).or_default() += w;
    }
    for &(_, corps, w) in crops {
        *corps_scores.entry(corps).or_default() += w;
    }
    corps_scores
        .iter()
        .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(a.0)))
        .map(|(&c, &w)| (c, w))
}
