//! [`Snapshot`]: one roster version's searcher and talent table, how it is
//! built and loaded back from the index, lookups by id, and the filtered
//! listing. The rankings are in `rank.rs`, the text scores in `bm25.rs`.

use std::sync::{Arc, Mutex};

use tantivy::{
    fieldnorm::FieldNormReader,
    query::{AllQuery, BooleanQuery, Occur, Query, TermQuery},
    schema::{Field, IndexRecordOption, Value},
    IndexReader, Searcher, TantivyDocument, Term,
};

use super::{
    bm25::Bm25Cache, collector::OrdCollector, ids::IdIndex, spatial::SpatialIndex, tokenizer,
    Fields, ListFilter, Stats,
};
use crate::{
    model::divisions::{Divisions, Level},
    model::Talent,
    reading::lexicon::Lexicon,
};

/// A consistent, read-only view of one roster version: the tantivy searcher
/// and the talent table it points into. Replaced whole, never changed.
pub struct Snapshot {
    version: u64,
    pub(super) searcher: Searcher,
    pub(super) fields: Fields,
    /// By `ord`; `None` where a talent was removed or replaced.
    pub(super) talents: Arc<Vec<Option<Arc<Talent>>>>,
    by_id: IdIndex,
    stats: Stats,
    /// Each specialty's available talents by place, for nearest ranking.
    pub(super) spatial: SpatialIndex,
    /// Each ord's document, numbered across segments; `u32::MAX` for none.
    pub(super) docs: Vec<u32>,
    pub(super) bm25: Bm25Cache,
    /// Where each segment's documents start in the numbering of all of them.
    pub(super) doc_bases: Vec<u32>,
    /// Each segment's field norms of `text`.
    pub(super) text_norms: Vec<FieldNormReader>,
    /// Documents in all segments, deleted ones included.
    pub(super) total_docs: u32,
    /// Zeroed buffers of text scores by document, for best-match queries.
    pub(super) scratch: Mutex<Vec<Vec<f32>>>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("version", &self.version)
            .field("talents", &self.by_id.len())
            .finish_non_exhaustive()
    }
}

impl Snapshot {
    pub(crate) fn new(
        version: u64,
        searcher: Searcher,
        fields: Fields,
        talents: Vec<Option<Arc<Talent>>>,
    ) -> Snapshot {
        // Documents are numbered across segments: a segment's start, plus
        // its own number.
        let mut docs = vec![u32::MAX; talents.len()];
        let mut doc_bases = Vec::new();
        let mut text_norms = Vec::new();
        let mut total_docs = 0u32;
        for segment in searcher.segment_readers() {
            if let Ok(ords) = segment.fast_fields().u64("ord") {
                for doc in segment.doc_ids_alive() {
                    if let Some(slot) = ords.first(doc).and_then(|o| docs.get_mut(o as usize)) {
                        *slot = total_docs + doc;
                    }
                }
            }
            doc_bases.push(total_docs);
            total_docs += segment.max_doc();
            text_norms.push(
                segment
                    .get_fieldnorms_reader(fields.text)
                    .unwrap_or_else(|_| FieldNormReader::constant(segment.max_doc(), 1)),
            );
        }
        // The spatial index is built beside the id map and the counts.
        let (spatial, (by_id, stats)) = std::thread::scope(|scope| {
            let spatial = scope.spawn(|| SpatialIndex::build(&talents, Lexicon::embedded(), &docs));
            let by_id = IdIndex::build(&talents);
            let stats = Stats::of(
                talents.iter().flatten().map(Arc::as_ref),
                Divisions::embedded(),
            );
            (
                spatial.join().expect("the spatial index panicked"),
                (by_id, stats),
            )
        });
        Snapshot {
            version,
            fields,
            talents: Arc::new(talents),
            by_id,
            stats,
            bm25: Bm25Cache::new(&searcher).expect("segment sizes are in memory"),
            doc_bases,
            text_norms,
            total_docs,
            scratch: Mutex::new(Vec::new()),
            searcher,
            spatial,
            docs,
        }
    }

    /// Reads every live talent back from an index's stored documents, the
    /// segments shared among the machine's cores.
    pub(crate) fn load(
        reader: &IndexReader,
        fields: Fields,
        version: u64,
    ) -> tantivy::Result<Snapshot> {
        let searcher = reader.searcher();
        let segments = searcher.segment_readers();
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, segments.len().max(1));
        type Part = tantivy::Result<Vec<(usize, Arc<Talent>)>>;
        let read = |part: usize| -> Part {
            let mut out = Vec::new();
            for segment in segments.iter().skip(part).step_by(threads) {
                let store = segment.get_store_reader(4)?;
                let ords = segment.fast_fields().u64("ord")?;
                for doc_id in segment.doc_ids_alive() {
                    let doc: TantivyDocument = store.get(doc_id)?;
                    let json = doc
                        .get_first(fields.doc)
                        .and_then(|v| v.as_str())
                        .unwrap_or("");
                    let talent: Talent = serde_json::from_str(json).map_err(|e| {
                        tantivy::TantivyError::InternalError(format!(
                            "stored talent is unreadable: {e}"
                        ))
                    })?;
                    out.push((ords.first(doc_id).unwrap_or(0) as usize, Arc::new(talent)));
                }
            }
            Ok(out)
        };
        let parts: Vec<Part> = std::thread::scope(|scope| {
            let handles: Vec<_> = (1..threads).map(|p| scope.spawn(move || read(p))).collect();
            let mut parts = vec![read(0)];
            parts.extend(
                handles
                    .into_iter()
                    .map(|h| h.join().expect("a loader panicked")),
            );
            parts
        });
        let parts = parts.into_iter().collect::<tantivy::Result<Vec<_>>>()?;
        let len = parts
            .iter()
            .flatten()
            .map(|(ord, _)| ord + 1)
            .max()
            .unwrap_or(0);
        let mut talents: Vec<Option<Arc<Talent>>> = vec![None; len];
        for (ord, talent) in parts.into_iter().flatten() {
            talents[ord] = Some(talent);
        }
        Ok(Snapshot::new(version, searcher, fields, talents))
    }

    pub(crate) fn version(&self) -> u64 {
        self.version
    }

    pub(crate) fn stats(&self) -> &Stats {
        &self.stats
    }

    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }

    pub(crate) fn get(&self, id: &str) -> Option<&Arc<Talent>> {
        self.talents[self.ord(id)?].as_ref()
    }

    /// The ids of `ids` this roster version does not hold, in their order.
    pub(crate) fn missing(&self, ids: &[String]) -> Vec<String> {
        ids.iter()
            .filter(|id| self.get(id).is_none())
            .cloned()
            .collect()
    }

    /// Position of a talent in [`Snapshot::table`].
    pub(crate) fn ord(&self, id: &str) -> Option<usize> {
        self.by_id.get(&self.talents, id).map(|o| o as usize)
    }

    /// The talent table by ord, with gaps: what an updated snapshot starts from.
    pub(crate) fn table(&self) -> &[Option<Arc<Talent>>] {
        &self.talents
    }

    /// Every live talent, in no particular order.
    pub fn talents(&self) -> impl Iterator<Item = &Arc<Talent>> {
        self.talents.iter().flatten()
    }

    pub(super) fn term(&self, field: Field, text: &str) -> Box<dyn Query> {
        Box::new(TermQuery::new(
            Term::from_field_text(field, text),
            IndexRecordOption::Basic,
        ))
    }

    pub(super) fn any_of(&self, clauses: Vec<Box<dyn Query>>) -> Box<dyn Query> {
        if clauses.len() == 1 {
            clauses.into_iter().next().expect("one clause")
        } else {
            Box::new(BooleanQuery::new(
                clauses.into_iter().map(|q| (Occur::Should, q)).collect(),
            ))
        }
    }

    /// Talents matching `filter`, ordered by id, after the id `after`.
    /// Returns the page and the number of matches in all.
    pub(crate) fn list(
        &self,
        filter: &ListFilter,
        after: Option<&str>,
        page_size: usize,
    ) -> tantivy::Result<(Vec<Arc<Talent>>, usize)> {
        let Some(query) = self.list_query(filter) else {
            return Ok((Vec::new(), 0));
        };
        let ords = self.searcher.search(&query, &OrdCollector)?;
        let mut matched: Vec<&Arc<Talent>> = ords
            .iter()
            .filter_map(|&o| self.talents.get(o as usize)?.as_ref())
            .collect();
        let total = matched.len();
        matched.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        let start = after.map_or(0, |a| matched.partition_point(|t| t.id.as_str() <= a));
        Ok((
            matched
                .into_iter()
                .skip(start)
                .take(page_size)
                .cloned()
                .collect(),
            total,
        ))
    }

    /// The query of a listing: every filter set must hold. `None` when the
    /// filter's words segment to nothing, so that nobody matches.
    fn list_query(&self, filter: &ListFilter) -> Option<Box<dyn Query>> {
        let f = &self.fields;
        let mut must: Vec<Box<dyn Query>> = Vec::new();
        if let Some(c) = filter.county {
            must.push(self.term(f.county, &c.to_string()));
        }
        if let Some(code) = filter.division {
            let field = match Divisions::embedded().get(code).map(|d| d.level) {
                Some(Level::County) => f.county,
                Some(Level::Town) => f.town,
                Some(Level::Village) => f.division,
                _ => f.id, // the city: everybody, handled below
            };
            if field != f.id {
                must.push(self.term(field, &code.to_string()));
            }
        }
        if let Some(t) = filter.tier {
            must.push(self.term(f.tier, t.key()));
        }
        if let Some(c) = filter.corps {
            must.push(self.term(f.corps, c.chinese()));
        }
        if let Some(s) = &filter.specialty {
            must.push(self.term(f.specialty, s));
        }
        if !filter.include_inactive {
            must.push(self.term(f.active, "true"));
        }
        if let Some(q) = filter.query.as_deref().filter(|q| !q.trim().is_empty()) {
            let words: Vec<Box<dyn Query>> = tokenizer::terms(Lexicon::embedded(), q)
                .into_iter()
                .map(|(_, _, w)| self.term(f.text, &w))
                .collect();
            if words.is_empty() {
                return None;
            }
            must.push(self.any_of(words));
        }
        Some(if must.is_empty() {
            Box::new(AllQuery)
        } else {
            Box::new(BooleanQuery::new(
                must.into_iter().map(|q| (Occur::Must, q)).collect(),
            ))
        })
    }

    /// Number of documents tantivy holds, deleted ones excluded.
    #[cfg(test)]
    pub(crate) fn indexed_docs(&self) -> u64 {
        self.searcher.num_docs()
    }
}
