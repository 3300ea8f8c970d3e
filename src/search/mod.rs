//! The roster's tantivy index: schema, documents, and the read-only
//! [`Snapshot`] every query runs against (nearest-qualified and best-match
//! retrieval, filtered listing, statistics). This file is the map: the
//! public types of a query, and where each part lives.
//!
//! - `schema.rs`: the document's [`Fields`] and [`register_tokenizer`].
//! - `snapshot.rs`: [`Snapshot`], its loading, lookups and listing.
//! - `rank.rs`: [`Snapshot::top`], nearest qualified and best match.
//! - `bm25.rs`: the text scores both rankings use.
//! - `spatial.rs`, `ids.rs`, `collector.rs`: the spatial index, the id
//!   map, and ranked [`Hit`]s with the order among them.
//! - `stats.rs`: [`Stats`]; `tokenizer.rs`: jieba for tantivy.
//! - `scan.rs` (tests): the plain tantivy scan the rankings are checked
//!   against.

mod bm25;
mod collector;
mod ids;
mod rank;
#[cfg(test)]
mod scan;
pub(crate) mod schema;
mod snapshot;
mod spatial;
mod stats;
pub(crate) mod tokenizer;

use crate::{
    model::divisions::DivisionCode,
    model::geo::GeoPoint,
    model::{Corps, Tier},
};
pub(crate) use collector::Hit;
pub(crate) use schema::{register_tokenizer, Fields};
pub(crate) use snapshot::Snapshot;
pub(crate) use stats::Stats;

/// Where the farmer is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Origin {
    pub(crate) point: GeoPoint,
    /// Set when the location was a division code: used for administrative closeness.
    pub(crate) division: Option<DivisionCode>,
}

/// How hits are ordered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Ranking {
    /// Distance, then administrative closeness, then text score, then id.
    Nearest,
    /// `(1 + BM25) × gauss(distance)`: the decay halves at `scale_km`.
    BestMatch { scale_km: f64 },
}

/// Which talents qualify: those with any of these specialties, or with a
/// specialty in any of these corps.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Pool {
    pub(crate) specialties: Vec<String>,
    pub(crate) corps: Vec<Corps>,
}

/// Filters of a listing; `None` means any.
#[derive(Debug, Clone, Default)]
pub(crate) struct ListFilter {
    pub(crate) county: Option<DivisionCode>,
    pub(crate) division: Option<DivisionCode>,
    pub(crate) tier: Option<Tier>,
    pub(crate) corps: Option<Corps>,
    pub(crate) specialty: Option<String>,
    pub(crate) query: Option<String>,
    pub(crate) include_inactive: bool,
}
