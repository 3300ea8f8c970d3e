//! The roster administration behind the admin API: validating and storing
//! whole files, single talents and removals, the statistics and the paged
//! listing. Every operation checks its input and names the bad field.

use std::{collections::BTreeSet, sync::Arc};

use crate::{
    error::{check_id, check_page_size, Error, Result, MAX_ID_BYTES},
    model::divisions::{DivisionCode, Divisions, Level},
    model::{Corps, Talent, Tier},
    reading::lexicon::Lexicon,
    roster::store::RosterStore,
    roster::{self, RawRow, RosterFormat, RowError},
    search::{ListFilter, Snapshot, Stats},
};

/// A listing request: filters (empty means any) and paging.
#[derive(Debug, Clone, Default)]
pub(crate) struct ListRequest {
    /// County name (白水县, 白水) or 12-digit county code.
    pub(crate) county: String,
    /// Talents in this division or below it.
    pub(crate) division_code: String,
    pub(crate) tier: Option<Tier>,
    pub(crate) corps: Option<Corps>,
    /// Canonical subject or alias.
    pub(crate) specialty: String,
    /// Free text matched against specialties and skills.
    pub(crate) query: String,
    pub(crate) include_inactive: bool,
    /// 0 means 50; at most 500.
    pub(crate) page_size: u32,
    /// The last id of the previous page.
    pub(crate) page_token: String,
}

/// One page of a listing, ordered by id.
#[derive(Debug, Clone)]
pub(crate) struct Page {
    pub(crate) talents: Vec<Arc<Talent>>,
    pub(crate) next_page_token: Option<String>,
    pub(crate) total: u64,
    pub(crate) roster_version: u64,
}

/// The roster's admin operations over the durable roster.
pub(crate) struct RosterAdmin {
    store: Arc<RosterStore>,
    lexicon: &'static Lexicon,
    divisions: &'static Divisions,
}

impl std::fmt::Debug for RosterAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RosterAdmin").finish_non_exhaustive()
    }
}

impl RosterAdmin {
    pub(crate) fn new(store: Arc<RosterStore>) -> RosterAdmin {
        RosterAdmin {
            store,
            lexicon: Lexicon::embedded(),
            divisions: Divisions::embedded(),
        }
    }

    /// The live roster version.
    pub(crate) fn snapshot(&self) -> Arc<Snapshot> {
        self.store.snapshot()
    }

    /// The durable roster behind these operations.
    pub(crate) fn roster(&self) -> &RosterStore {
        &self.store
    }

    /// Validates a whole roster file, every row, changing nothing.
    pub(crate) fn parse_roster(&self, format: RosterFormat, data: &[u8]) -> Result<Vec<Talent>> {
        roster::parse_roster(format, data, self.lexicon, self.divisions)
            .map_err(Error::invalid_roster)
    }

    /// Validates a whole roster file as an import would and returns every
    /// problem, unbounded; none means it would be accepted.
    pub(crate) fn check_roster(&self, format: RosterFormat, data: &[u8]) -> Vec<RowError> {
        roster::parse_roster(format, data, self.lexicon, self.divisions)
            .err()
            .unwrap_or_default()
    }

    /// Validates and stores a whole roster file as the new roster.
    pub(crate) fn import_roster(&self, format: RosterFormat, data: &[u8]) -> Result<(u64, u64)> {
        let talents = self.parse_roster(format, data)?;
        let accepted = talents.len() as u64;
        let version = self.store.replace(talents)?;
        Ok((accepted, version))
    }

    /// Adds or replaces talents given as rows (line = position in the request).
    pub(crate) fn upsert_talents(&self, rows: Vec<RawRow>) -> Result<(u64, u64)> {
        let talents = self.validate_rows(rows)?;
        let count = talents.len() as u64;
        Ok((count, self.store.upsert(talents)?))
    }

    /// Validates talents given as rows, all of them, changing nothing.
    pub(crate) fn validate_rows(&self, rows: Vec<RawRow>) -> Result<Vec<Talent>> {
        if rows.is_empty() {
            return Err(Error::invalid(
                "talents",
                "is empty: give at least one talent",
            ));
        }
        let mut errors = Vec::new();
        let mut talents = Vec::new();
        let mut seen = BTreeSet::new();
        for row in &rows {
            match roster::validate_row(row, self.lexicon, self.divisions) {
                Ok(t) if !seen.insert(t.id.clone()) => errors.push(RowError {
                    line: row.line,
                    field: "id".into(),
                    message: format!("duplicate id {} in the request", crate::error::quote(&t.id)),
                }),
                Ok(t) => talents.push(t),
                Err(mut e) => errors.append(&mut e),
            }
        }
        if !errors.is_empty() {
            return Err(Error::invalid_roster(errors));
        }
        Ok(talents)
    }

    /// Checks ids to remove; returns them sorted, without repeats.
    pub(crate) fn unique_ids(ids: &[String]) -> Result<Vec<String>> {
        if ids.is_empty() || ids.iter().any(|id| id.trim().is_empty()) {
            return Err(Error::invalid(
                "ids",
                "give one or more non-empty talent ids",
            ));
        }
        for id in ids {
            check_id("ids", id, MAX_ID_BYTES)?;
        }
        Ok(ids
            .iter()
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect())
    }

    /// Removes talents by id; returns (removed, not found, version).
    pub(crate) fn remove_talents(&self, ids: &[String]) -> Result<(u64, Vec<String>, u64)> {
        let unique = RosterAdmin::unique_ids(ids)?;
        let (not_found, version) = self.store.remove(&unique)?;
        Ok(((unique.len() - not_found.len()) as u64, not_found, version))
    }

    pub(crate) fn stats(&self) -> (Stats, u64) {
        let snapshot = self.store.snapshot();
        (snapshot.stats().clone(), snapshot.version())
    }

    /// One page of talents by id, filtered; each filter is checked.
    pub(crate) fn list_talents(&self, r: &ListRequest) -> Result<Page> {
        let county = match r.county.trim() {
            "" => None,
            c => Some(
                self.divisions
                    .find_county(c)
                    .ok_or_else(|| {
                        Error::invalid(
                            "county",
                            format!(
                                "unknown county {}: use a name such as 白水县 or its code",
                                crate::error::quote(c)
                            ),
                        )
                    })?
                    .code,
            ),
        };
        let division = match r.division_code.trim() {
            "" => None,
            d => {
                let code = DivisionCode::parse(d)
                    .filter(|c| self.divisions.get(*c).is_some())
                    .ok_or_else(|| {
                        Error::invalid(
                            "division_code",
                            format!("unknown division code {}", crate::error::quote(d)),
                        )
                    })?;
                (self.divisions.get(code).map(|x| x.level) != Some(Level::City)).then_some(code)
            }
        };
        let specialty = match r.specialty.trim() {
            "" => None,
            s => Some(
                self.lexicon
                    .resolve_specialty(s)
                    .map(|id| self.lexicon.subject(id).name.clone())
                    .ok_or_else(|| {
                        Error::invalid(
                            "specialty",
                            format!("unknown specialty {}", crate::error::quote(s)),
                        )
                    })?,
            ),
        };
        let filter = ListFilter {
            county,
            division,
            tier: r.tier,
            corps: r.corps,
            specialty,
            query: (!r.query.trim().is_empty()).then(|| r.query.clone()),
            include_inactive: r.include_inactive,
        };
        let page_size = check_page_size(r.page_size)?;
        let snapshot = self.store.snapshot();
        let after = (!r.page_token.is_empty()).then_some(r.page_token.as_str());
        let (mut talents, total) = snapshot.list(&filter, after, page_size + 1)?;
        let next_page_token = if talents.len() > page_size {
            talents.truncate(page_size);
            talents.last().map(|t| t.id.clone())
        } else {
            None
        };
        Ok(Page {
            talents,
            next_page_token,
            total: total as u64,
            roster_version: snapshot.version(),
        })
    }
}
