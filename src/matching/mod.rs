//! Matching a farmer's report to responders: the report is read, its need
//! (subject, corps, words) found, and the qualified responders ranked by
//! distance or by match. The gRPC layer (`grpc`) only converts messages to
//! and from these.

use std::sync::Arc;

use crate::{
    config::MatchConfig,
    error::{check_id, check_len, check_text_controls, quote, Error, Result},
    model::divisions::{Division, DivisionCode, Divisions},
    model::geo::GeoPoint,
    model::{Corps, Location, Talent},
    reading::analyzer::Analysis,
    reading::lexicon::{Lexicon, SubjectId},
    roster::store::RosterStore,
    search::{Hit, Origin, Pool, Ranking, Snapshot},
};

/// Longest report accepted, in characters.
pub(crate) const MAX_TEXT_CHARS: usize = 4_000;

/// A division code's length: 12 digits.
const DIVISION_CODE_BYTES: usize = 12;

/// Text with nothing to read: whitespace, zero-width characters (U+200B to
/// U+200D, U+2060, U+FEFF) and NULs only.
fn is_blank(text: &str) -> bool {
    text.chars().all(|c| {
        c.is_whitespace() || matches!(c, '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}' | '\0')
    })
}

#[derive(Debug, Clone, PartialEq)]
pub struct MatchRequest {
    pub text: String,
    pub location: Option<Location>,
    /// 0 means the default.
    pub limit: u32,
    pub best_match: bool,
}

/// Why a candidate qualified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Basis {
    /// Has the subject as a specialty.
    Subject,
    /// Has the parent subject (羊 for 奶山羊): nobody with the subject is near.
    Parent,
    /// Has a specialty in the corps: nobody in the roster has the subject.
    Corps,
}

#[derive(Debug, Clone)]
pub struct Candidate {
    pub talent: Arc<Talent>,
    pub distance_km: f64,
    pub score: f64,
    pub matched_terms: Vec<String>,
    pub(crate) reason: String,
}

#[derive(Debug, Clone)]
pub struct MatchOutcome {
    pub(crate) analysis: Analysis,
    pub(crate) subject: Option<String>,
    pub(crate) corps: Option<Corps>,
    pub candidates: Vec<Candidate>,
    pub(crate) roster_version: u64,
}

/// Reads reports and ranks the responders who qualify for them.
pub struct Matcher {
    store: Arc<RosterStore>,
    lexicon: &'static Lexicon,
    divisions: &'static Divisions,
    config: MatchConfig,
}

impl std::fmt::Debug for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Matcher")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Matcher {
    pub fn new(store: Arc<RosterStore>, config: MatchConfig) -> Matcher {
        Matcher {
            store,
            lexicon: Lexicon::embedded(),
            divisions: Divisions::embedded(),
            config,
        }
    }

    pub(crate) fn lexicon(&self) -> &'static Lexicon {
        self.lexicon
    }

    pub(crate) fn snapshot(&self) -> Arc<Snapshot> {
        self.store.snapshot()
    }

    /// Receives every new roster version.
    pub(crate) fn roster_versions(&self) -> tokio::sync::watch::Receiver<u64> {
        self.store.versions()
    }

    /// Resolves a farmer's location; `field` names it in errors.
    pub(crate) fn resolve_location(
        &self,
        location: Option<&Location>,
        field: &str,
    ) -> Result<Origin> {
        match location {
            None => Err(Error::invalid(
                field,
                "missing: give a 12-digit Weinan division_code or a point",
            )),
            Some(Location::Division(code)) => {
                let field = format!("{field}.division_code");
                check_id(&field, code.trim(), DIVISION_CODE_BYTES)?;
                let parsed = DivisionCode::parse(code).ok_or_else(|| {
                    Error::invalid(
                        &field,
                        format!("{} is not a 12-digit division code", quote(code)),
                    )
                })?;
                let division = self.divisions.get(parsed).ok_or_else(|| {
                    Error::invalid(
                        &field,
                        format!("unknown division code {parsed}: not a Weinan division of 2023"),
                    )
                })?;
                Ok(Origin {
                    point: division.point,
                    division: Some(division.code),
                })
            }
            Some(Location::Point { lat, lon }) => {
                let point = GeoPoint::new(*lat, *lon)
                    .map_err(|e| Error::invalid(&format!("{field}.point"), e.to_string()))?;
                Ok(Origin {
                    point,
                    division: None,
                })
            }
        }
    }

    /// The divisions directly under `parent` (the city's counties when it is
    /// empty), ordered by code, for location pickers.
    pub(crate) fn divisions_under(&self, parent: &str) -> Result<Vec<&'static Division>> {
        let divisions = self.divisions;
        let parent = parent.trim();
        let code = if parent.is_empty() {
            divisions.city().code
        } else {
            check_id("parent_code", parent, DIVISION_CODE_BYTES)?;
            let code = DivisionCode::parse(parent).ok_or_else(|| {
                Error::invalid(
                    "parent_code",
                    format!(
                        "{} is not a 12-digit division code",
                        crate::error::quote(parent)
                    ),
                )
            })?;
            divisions.get(code).ok_or_else(|| {
                Error::NotFound(format!(
                    "parent_code: no Weinan division of 2023 has the code {code}"
                ))
            })?;
            code
        };
        Ok(divisions.children(code))
    }

    /// Reads a report from a farmer at `origin`: the county's farming is a
    /// prior.
    pub(crate) fn analyze(&self, text: &str, origin: Origin) -> Analysis {
        let county = self
            .divisions
            .county_near(origin.division, origin.point)
            .map(|c| c.name.as_str());
        crate::reading::analyzer::analyze_in(self.lexicon, text, county)
    }

    /// Checks a report's text: bounded first, then refused when it holds
    /// nothing to read (only whitespace, zero-width characters or NULs, all
    /// alike) or control characters other than line breaks and tabs.
    pub(crate) fn check_text(text: &str, field: &str) -> Result<()> {
        check_len(field, text, MAX_TEXT_CHARS)?;
        if is_blank(text) {
            return Err(Error::invalid(
                field,
                "is empty: describe the problem in a few words",
            ));
        }
        check_text_controls(field, text)
    }

    /// Analyses a report and ranks the responders who qualify for it.
    pub fn match_problem(&self, request: &MatchRequest) -> Result<MatchOutcome> {
        Self::check_text(&request.text, "text")?;
        let origin = self.resolve_location(request.location.as_ref(), "location")?;
        let limit = match request.limit {
            0 => self.config.default_limit,
            n if n > self.config.max_limit => {
                return Err(Error::invalid(
                    "limit",
                    format!("{n} is above the maximum of {}", self.config.max_limit),
                ))
            }
            n => n,
        } as usize;
        let analysis = self.analyze(&request.text, origin);
        let ranking = if request.best_match {
            Ranking::BestMatch {
                scale_km: self.config.best_match_scale_km,
            }
        } else {
            Ranking::Nearest
        };
        let snapshot = self.store.snapshot();
        let need = Need::of(&analysis);
        // A report that names nothing gets its prompt, not a list: anyone
        // of any corps would be a guess. Submitted, it goes to triage.
        let candidates = if need.triage {
            Vec::new()
        } else {
            self.rank(&snapshot, &need, origin, ranking, limit)?
        };
        Ok(MatchOutcome {
            subject: analysis
                .subject
                .map(|s| self.lexicon.subject(s).name.clone()),
            corps: analysis.corps,
            candidates,
            roster_version: snapshot.version(),
            analysis,
        })
    }

    /// The ranked candidates for a need at `origin`, from the pool
    /// [`Matcher::qualified_pool`] decides.
    pub(crate) fn rank(
        &self,
        snapshot: &Snapshot,
        need: &Need,
        origin: Origin,
        ranking: Ranking,
        limit: usize,
    ) -> Result<Vec<Candidate>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let search = |pool: &Pool| snapshot.top(pool, origin, &need.words, ranking, limit);
        // Ranked nearest first, a pool's hits also tell how near its nearest
        // specialist is: keep the last search, so the rule's probes are the
        // ranking itself instead of one more query.
        let mut searched: Option<(Pool, Vec<Hit>)> = None;
        let pool = self.qualify(need, |pool| match ranking {
            Ranking::Nearest => {
                let hits = search(pool)?;
                let nearest = hits.first().map(|h| h.distance_km);
                searched = Some((pool.clone(), hits));
                Ok(nearest)
            }
            Ranking::BestMatch { .. } => nearest_km(snapshot, pool, origin),
        })?;
        let hits = match searched {
            Some((last, hits)) if last == pool => hits,
            _ => search(&pool)?,
        };
        let shared = self.shared(need, ranking);
        Ok(hits
            .into_iter()
            .map(|hit| Self::candidate(hit, &shared))
            .collect())
    }

    /// The one qualification rule, for matching, the first offer and every
    /// re-route: the subject's specialists; its parent's too when none of
    /// them is within `parent_radius_km`; the corps' specialists when nobody
    /// available has either. Empty when nobody in the roster qualifies.
    pub(crate) fn qualified_pool(
        &self,
        snapshot: &Snapshot,
        need: &Need,
        origin: Origin,
    ) -> Result<Pool> {
        self.qualify(need, |pool| nearest_km(snapshot, pool, origin))
    }

    /// [`Matcher::qualified_pool`]'s rule, told by `nearest_km` how far the
    /// nearest talent of a pool is (`None` when the pool is empty).
    fn qualify(
        &self,
        need: &Need,
        mut nearest_km: impl FnMut(&Pool) -> Result<Option<f64>>,
    ) -> Result<Pool> {
        if let Some(subject) = need.subject {
            let subject = self.lexicon.subject(subject);
            let mut pool = Pool {
                specialties: vec![subject.name.clone()],
                corps: vec![],
            };
            let nearest = nearest_km(&pool)?;
            if nearest.is_some_and(|d| d <= self.config.parent_radius_km) {
                return Ok(pool);
            }
            if let Some(parent) = subject.parent {
                pool.specialties
                    .push(self.lexicon.subject(parent).name.clone());
            }
            if nearest.is_some() || (subject.parent.is_some() && nearest_km(&pool)?.is_some()) {
                return Ok(pool);
            }
        }
        // The corps named; for triage, the corps the symptoms point to,
        // whose backbone staff are asked first.
        if let Some(corps) = need.corps.or(need.hint.filter(|_| need.triage)) {
            let pool = Pool {
                specialties: vec![],
                corps: vec![corps],
            };
            if nearest_km(&pool)?.is_some() {
                return Ok(pool);
            }
        }
        if need.triage {
            // Backbone staff triage a report that names nothing; routing
            // starts such a ticket at the county/town tier
            // (`Dispatcher::submit`). Without a hint, or with nobody of its
            // corps, anyone triages it.
            return Ok(Pool {
                specialties: vec![],
                corps: Corps::ALL.to_vec(),
            });
        }
        Ok(Pool::default())
    }

    /// What every candidate of one ranking shares, looked up once per call
    /// instead of once per talent.
    fn shared<'n>(&'n self, need: &'n Need, ranking: Ranking) -> Shared<'n> {
        let subject = need.subject.map(|s| self.lexicon.subject(s));
        Shared {
            subject: subject.map(|s| s.name.as_str()),
            parent: subject
                .and_then(|s| s.parent)
                .map(|p| self.lexicon.subject(p).name.as_str()),
            crop: self.crop_named(need),
            corps: need.corps.map_or("", |c| c.chinese()),
            words: need
                .words
                .iter()
                .map(String::as_str)
                .filter(|w| w.chars().nth(1).is_some())
                .collect(),
            order: match ranking {
                Ranking::Nearest => "按距离最近排序",
                Ranking::BestMatch { .. } => "按专业匹配度与距离综合排序",
            },
            parent_radius_km: self.config.parent_radius_km,
        }
    }

    /// A ranked hit as a candidate, with why it qualified.
    fn candidate(hit: Hit, shared: &Shared<'_>) -> Candidate {
        let talent = &hit.talent;
        let has = |name: &str| talent.specialties.iter().any(|t| t == name);
        let has_subject = shared.subject.is_some_and(has);
        let basis = if has_subject {
            Basis::Subject
        } else if shared.subject.is_some() && shared.parent.is_some_and(has) {
            Basis::Parent
        } else {
            Basis::Corps
        };
        let mut matched: Vec<String> = Vec::new();
        if let Some(s) = shared.subject.filter(|_| has_subject) {
            matched.push(s.to_string());
        }
        for &word in &shared.words {
            if !matched.iter().any(|m| m == word) && (talent.skills.contains(word) || has(word)) {
                matched.push(word.to_string());
            }
        }
        let reason = shared.reason(&hit, basis, &matched);
        Candidate {
            distance_km: hit.distance_km,
            score: hit.score,
            matched_terms: matched,
            reason,
            talent: hit.talent,
        }
    }

    /// The crop or animal of a report that no subject covers and only its
    /// corps takes (生菜 → 蔬菜), as the report names it.
    fn crop_named<'n>(&self, need: &'n Need) -> Option<&'n str> {
        if need.subject.is_some() {
            return None;
        }
        need.words
            .iter()
            .find(|w| self.lexicon.crop(w).map(|c| c.corps) == need.corps && need.corps.is_some())
            .map(String::as_str)
    }
}

/// What the candidates of one ranking share: the need's subject, its
/// parent and crop by name, its words long enough to match a skill, and
/// how the list is ordered.
struct Shared<'n> {
    subject: Option<&'n str>,
    parent: Option<&'n str>,
    crop: Option<&'n str>,
    /// The need's corps in Chinese; empty without one.
    corps: &'static str,
    /// The need's words of two characters or more.
    words: Vec<&'n str>,
    order: &'static str,
    parent_radius_km: f64,
}

impl Shared<'_> {
    /// Why a candidate was chosen, in Chinese, written into one string.
    fn reason(&self, hit: &Hit, basis: Basis, matched: &[String]) -> String {
        use std::fmt::Write as _;
        let t = &hit.talent;
        let mut out = String::with_capacity(160);
        out.push_str(t.tier.chinese());
        out.push('，');
        // Writing to a String cannot fail.
        let _ = match (basis, self.subject) {
            (Basis::Subject, Some(s)) => {
                out.push_str("专长");
                out.push_str(s);
                Ok(())
            }
            (Basis::Parent, Some(s)) => write!(
                out,
                "附近{}公里内无{s}专长人员，由{}专长人员应答",
                self.parent_radius_km,
                self.parent.unwrap_or_default()
            ),
            (_, None) if self.crop.is_some() => write!(
                out,
                "{}不属于平台的专长品类，转{}组人员应答（专长{}）",
                self.crop.unwrap_or_default(),
                self.corps,
                Joined(&t.specialties)
            ),
            _ => write!(
                out,
                "无该品类专长人员，{}组人员应答（专长{}）",
                self.corps,
                Joined(&t.specialties)
            ),
        };
        let _ = write!(out, "，距您约{:.1}公里", hit.distance_km);
        out.push_str(match hit.closeness {
            3 => "，同村（社区）",
            2 => "，同镇（街道）",
            1 => "，同县（区）",
            _ => "",
        });
        let mut skills = matched
            .iter()
            .map(String::as_str)
            .filter(|m| Some(*m) != self.subject);
        if let Some(first) = skills.next() {
            out.push_str("，技能含");
            out.push_str(first);
            for skill in skills {
                out.push('、');
                out.push_str(skill);
            }
        }
        out.push('（');
        out.push_str(self.order);
        out.push('）');
        out
    }
}

/// Names joined by 、 as they are written, without a joined copy.
struct Joined<'a>(&'a [String]);

impl std::fmt::Display for Joined<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, name) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("、")?;
            }
            f.write_str(name)?;
        }
        Ok(())
    }
}

/// What a report needs: a subject or at least a corps, and its words for
/// text scoring.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Need {
    pub(crate) subject: Option<SubjectId>,
    pub(crate) corps: Option<Corps>,
    pub(crate) words: Vec<String>,
    /// A plant or animal problem that names nothing (`Analysis::missing`):
    /// no subject and no corps, and backbone staff triage it.
    pub(crate) triage: bool,
    /// For triage, the corps the symptoms point to (`Analysis::hint`):
    /// its backbone staff see the ticket first.
    pub(crate) hint: Option<Corps>,
}

impl Need {
    /// The report's content words, deduplicated, with every evidence term
    /// (single-character subjects included).
    pub(crate) fn of(analysis: &Analysis) -> Need {
        let mut words: Vec<String> = Vec::new();
        for w in analysis
            .words
            .iter()
            .chain(analysis.evidence.iter().map(|e| &e.term))
        {
            if !words.contains(w) {
                words.push(w.clone());
            }
        }
        let triage =
            analysis.missing.is_some() && analysis.subject.is_none() && analysis.corps.is_none();
        Need {
            subject: analysis.subject,
            corps: analysis.corps,
            words,
            triage,
            hint: analysis.hint.filter(|_| triage),
        }
    }
}

/// How far the nearest talent of `pool` is from `origin`; `None` when the
/// pool is empty.
fn nearest_km(snapshot: &Snapshot, pool: &Pool, origin: Origin) -> Result<Option<f64>> {
    let hits = snapshot.top(pool, origin, &[], Ranking::Nearest, 1)?;
    Ok(hits.first().map(|h| h.distance_km))
}

#[cfg(test)]
mod tests;
