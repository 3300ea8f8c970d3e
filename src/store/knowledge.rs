//! Knowledge entries as both stores keep them ([`KnowledgeStore`]): one row
//! per entry, an unpublished one kept with its flag down, every change
//! numbered (`seq`) so replicas read what changed since the last they hold.

use async_trait::async_trait;

use crate::{error::Result, knowledge::Entry};

#[async_trait]
pub trait KnowledgeStore: Send + Sync + 'static {
    /// Stores an entry, published (replacing one of the same id).
    async fn put_knowledge(&self, entry: &Entry) -> Result<()>;
    /// Sets the rating of a published entry (a change, like a put); false
    /// when no published entry has that id.
    async fn rate_knowledge(&self, id: &str, stars: u8) -> Result<bool>;
    /// Unpublishes an entry; false when no published entry had that id.
    async fn unpublish_knowledge(&self, id: &str) -> Result<bool>;
    /// Entries changed after `seq`, in order, with their `seq` and whether
    /// they are published.
    async fn knowledge_since(&self, seq: u64) -> Result<Vec<(u64, Entry, bool)>>;
}

/// The columns of an entry in both stores' order, after `seq, published`.
pub(crate) const COLUMNS: &str = "id, text, subject, corps, county_code, county_name, answer, \
     tier, resolved_at_ms, rating, published_by";

/// An entry's coded columns as stored: the corps by its Chinese name (as
/// tickets keep it), the tier and the publisher by key.
pub(crate) fn keys(entry: &Entry) -> (&'static str, &'static str, &'static str) {
    (
        entry
            .corps
            .map(crate::model::Corps::chinese)
            .unwrap_or_default(),
        entry.tier.map(crate::model::Tier::key).unwrap_or_default(),
        entry.published_by.key(),
    )
}

/// An entry from its stored columns.
#[allow(clippy::too_many_arguments)]
pub(crate) fn entry_of(
    id: String,
    text: String,
    subject: String,
    corps: &str,
    county_code: String,
    county_name: String,
    answer: String,
    tier: &str,
    resolved_at_ms: i64,
    rating: Option<i64>,
    published_by: &str,
) -> Result<Entry> {
    let unknown = |what: &str, v: &str| {
        crate::error::Error::Internal(format!("the store holds an unknown {what} {v:?}"))
    };
    let corps = match corps {
        "" => None,
        c => Some(crate::model::Corps::parse(c).ok_or_else(|| unknown("corps", c))?),
    };
    let tier = match tier {
        "" => None,
        t => Some(crate::model::Tier::parse(t).ok_or_else(|| unknown("tier", t))?),
    };
    Ok(Entry {
        id,
        text,
        subject,
        corps,
        county_code,
        county_name,
        answer,
        tier,
        resolved_at_ms,
        rating: rating.and_then(|r| u8::try_from(r).ok()),
        published_by: crate::knowledge::Publisher::parse(published_by)
            .ok_or_else(|| unknown("publisher", published_by))?,
    })
}
