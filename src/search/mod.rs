//! The roster's tantivy index: schema, documents, and the read-only
//! [`Snapshot`] every query runs against (nearest-qualified and best-match
//! retrieval, filtered listing, statistics).

mod collector;
mod ids;
mod spatial;
pub mod tokenizer;

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
};

use tantivy::{
    fieldnorm::FieldNormReader,
    query::{
        AllQuery, Bm25StatisticsProvider, Bm25Weight, BooleanQuery, EnableScoring, Occur, Query,
        TermQuery,
    },
    schema::{
        Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, Value, FAST, STORED,
        STRING,
    },
    DocId, DocSet, Index, IndexReader, Searcher, TantivyDocument, Term, TERMINATED,
};

use crate::{
    model::divisions::{DivisionCode, Divisions, Level},
    model::geo::GeoPoint,
    model::{Corps, Talent, Tier},
    reading::lexicon::Lexicon,
};
pub use collector::Hit;
use collector::{best_hits, Entry, OrdCollector};
use ids::IdIndex;
use spatial::SpatialIndex;

/// The fields of a talent document.
#[derive(Debug, Clone, Copy)]
pub struct Fields {
    pub id: Field,
    /// Position of the talent in the snapshot's talent table.
    pub ord: Field,
    pub specialty: Field,
    /// Corps of each specialty, for the corps fallback.
    pub specialty_corps: Field,
    pub tier: Field,
    pub corps: Field,
    pub county: Field,
    pub town: Field,
    pub division: Field,
    pub active: Field,
    /// Specialties and skills, segmented by jieba, for BM25.
    pub text: Field,
    /// The whole talent as JSON: the index is the roster's durable copy.
    pub doc: Field,
}

impl Fields {
    pub fn schema() -> (Schema, Fields) {
        let mut b = Schema::builder();
        let text_options = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(tokenizer::JIEBA)
                .set_index_option(IndexRecordOption::WithFreqs),
        );
        let fields = Fields {
            id: b.add_text_field("id", STRING),
            ord: b.add_u64_field("ord", FAST),
            specialty: b.add_text_field("specialty", STRING),
            specialty_corps: b.add_text_field("specialty_corps", STRING),
            tier: b.add_text_field("tier", STRING),
            corps: b.add_text_field("corps", STRING),
            county: b.add_text_field("county", STRING),
            town: b.add_text_field("town", STRING),
            division: b.add_text_field("division", STRING),
            active: b.add_text_field("active", STRING),
            text: b.add_text_field("text", text_options),
            doc: b.add_text_field("doc", STORED),
        };
        (b.build(), fields)
    }

    /// Looks the fields up in an opened index's schema.
    pub fn from_schema(schema: &Schema) -> tantivy::Result<Fields> {
        let f = |name: &str| schema.get_field(name);
        Ok(Fields {
            id: f("id")?,
            ord: f("ord")?,
            specialty: f("specialty")?,
            specialty_corps: f("specialty_corps")?,
            tier: f("tier")?,
            corps: f("corps")?,
            county: f("county")?,
            town: f("town")?,
            division: f("division")?,
            active: f("active")?,
            text: f("text")?,
            doc: f("doc")?,
        })
    }

    /// The document for a talent at position `ord`.
    pub fn document(&self, talent: &Talent, ord: u64, lexicon: &Lexicon) -> TantivyDocument {
        let mut d = TantivyDocument::default();
        d.add_text(self.id, &talent.id);
        d.add_u64(self.ord, ord);
        for s in &talent.specialties {
            d.add_text(self.specialty, s);
            if let Some(id) = lexicon.subject_id(s) {
                d.add_text(self.specialty_corps, lexicon.subject(id).corps.chinese());
            }
            d.add_text(self.text, s);
        }
        d.add_text(self.text, &talent.skills);
        d.add_text(self.tier, talent.tier.key());
        if let Some(c) = talent.corps {
            d.add_text(self.corps, c.chinese());
        }
        let code = talent.division_code;
        d.add_text(self.county, code.county().to_string());
        d.add_text(self.town, code.town().to_string());
        d.add_text(self.division, code.to_string());
        d.add_text(self.active, if talent.active { "true" } else { "false" });
        d.add_text(
            self.doc,
            serde_json::to_string(talent).expect("talents serialize"),
        );
        d
    }
}

/// Registers the jieba tokenizer on an index (it is not stored with it).
pub fn register_tokenizer(index: &Index) {
    index.tokenizers().register(
        tokenizer::JIEBA,
        tokenizer::JiebaTokenizer::new(Lexicon::embedded()),
    );
}

/// Where the farmer is.
#[derive(Debug, Clone, Copy)]
pub struct Origin {
    pub point: GeoPoint,
    /// Set when the location was a division code: used for administrative closeness.
    pub division: Option<DivisionCode>,
}

/// How hits are ordered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Ranking {
    /// Distance, then administrative closeness, then text score, then id.
    Nearest,
    /// `(1 + BM25) × gauss(distance)`: the decay halves at `scale_km`.
    BestMatch { scale_km: f64 },
}

/// Which talents qualify: those with any of these specialties, or with a
/// specialty in any of these corps.
#[derive(Debug, Clone, Default)]
pub struct Pool {
    pub specialties: Vec<String>,
    pub corps: Vec<Corps>,
}

/// Counts over the roster.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    pub total: u64,
    pub active: u64,
    pub city: u64,
    pub county_town: u64,
    pub village: u64,
    pub corps_members: u64,
    pub by_corps: BTreeMap<String, u64>,
    pub by_county: BTreeMap<String, u64>,
}

impl Stats {
    fn of<'a>(talents: impl Iterator<Item = &'a Talent>, divisions: &Divisions) -> Stats {
        let mut s = Stats::default();
        let mut by_corps = [0u64; Corps::ALL.len()];
        // Counted under names borrowed from `divisions`; copied once at the end.
        let mut by_county: rustc_hash::FxHashMap<&str, u64> = Default::default();
        for t in talents {
            s.total += 1;
            s.active += u64::from(t.active);
            match t.tier {
                Tier::City => s.city += 1,
                Tier::CountyTown => s.county_town += 1,
                Tier::Village => s.village += 1,
            }
            if let Some(c) = t.corps {
                s.corps_members += 1;
                by_corps[c as usize] += 1;
            }
            let county = divisions
                .county_of(t.division_code)
                .unwrap_or_else(|| divisions.city());
            *by_county.entry(county.name.as_str()).or_default() += 1;
        }
        s.by_corps = Corps::ALL
            .into_iter()
            .map(|c| (c.chinese().to_string(), by_corps[c as usize]))
            .collect();
        s.by_county = by_county
            .into_iter()
            .map(|(name, n)| (name.to_string(), n))
            .collect();
        s
    }
}

/// Filters of a listing; `None` means any.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub county: Option<DivisionCode>,
    pub division: Option<DivisionCode>,
    pub tier: Option<Tier>,
    pub corps: Option<Corps>,
    pub specialty: Option<String>,
    pub query: Option<String>,
    pub include_inactive: bool,
}

/// A consistent, read-only view of one roster version: the tantivy searcher
/// and the talent table it points into. Replaced whole, never changed.
pub struct Snapshot {
    version: u64,
    searcher: Searcher,
    fields: Fields,
    /// By `ord`; `None` where a talent was removed or replaced.
    talents: Arc<Vec<Option<Arc<Talent>>>>,
    by_id: IdIndex,
    stats: Stats,
    /// Each specialty's available talents by place, for nearest ranking.
    spatial: SpatialIndex,
    /// Each ord's document, numbered across segments; `u32::MAX` for none.
    docs: Vec<u32>,
    bm25: Bm25Cache,
    /// Where each segment's documents start in the numbering of all of them.
    doc_bases: Vec<u32>,
    /// Each segment's field norms of `text`.
    text_norms: Vec<FieldNormReader>,
    /// Documents in all segments, deleted ones included.
    total_docs: u32,
    /// Zeroed buffers of text scores by document, for best-match queries.
    scratch: Mutex<Vec<Vec<f32>>>,
}

/// The searcher's BM25 statistics, remembered: the snapshot never changes,
/// and looking a term up in every segment per query costs more than
/// scoring the few talents whose order depends on it.
struct Bm25Cache {
    searcher: Searcher,
    docs: u64,
    tokens: Mutex<HashMap<Field, u64>>,
    doc_freqs: Mutex<HashMap<Term, u64>>,
}

impl Bm25Cache {
    fn new(searcher: &Searcher) -> tantivy::Result<Bm25Cache> {
        Ok(Bm25Cache {
            docs: Bm25StatisticsProvider::total_num_docs(searcher)?,
            searcher: searcher.clone(),
            tokens: Mutex::new(HashMap::new()),
            doc_freqs: Mutex::new(HashMap::new()),
        })
    }
}

impl Bm25StatisticsProvider for Bm25Cache {
    fn total_num_tokens(&self, field: Field) -> tantivy::Result<u64> {
        let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(&n) = tokens.get(&field) {
            return Ok(n);
        }
        let n = Bm25StatisticsProvider::total_num_tokens(&self.searcher, field)?;
        tokens.insert(field, n);
        Ok(n)
    }

    fn total_num_docs(&self) -> tantivy::Result<u64> {
        Ok(self.docs)
    }

    fn doc_freq(&self, term: &Term) -> tantivy::Result<u64> {
        let mut freqs = self.doc_freqs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(&n) = freqs.get(term) {
            return Ok(n);
        }
        let n = self.searcher.doc_freq(term)?;
        freqs.insert(term.clone(), n);
        Ok(n)
    }
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
    pub fn new(
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
    pub fn load(reader: &IndexReader, fields: Fields, version: u64) -> tantivy::Result<Snapshot> {
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

    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.len() == 0
    }

    pub fn get(&self, id: &str) -> Option<&Arc<Talent>> {
        self.talents[self.ord(id)?].as_ref()
    }

    /// The ids of `ids` this roster version does not hold, in their order.
    pub fn missing(&self, ids: &[String]) -> Vec<String> {
        ids.iter()
            .filter(|id| self.get(id).is_none())
            .cloned()
            .collect()
    }

    /// Position of a talent in [`Snapshot::table`].
    pub fn ord(&self, id: &str) -> Option<usize> {
        self.by_id.get(&self.talents, id).map(|o| o as usize)
    }

    /// The talent table by ord, with gaps: what an updated snapshot starts from.
    pub fn table(&self) -> &[Option<Arc<Talent>>] {
        &self.talents
    }

    /// Every live talent, in no particular order.
    pub fn talents(&self) -> impl Iterator<Item = &Arc<Talent>> {
        self.talents.iter().flatten()
    }

    fn term(&self, field: Field, text: &str) -> Box<dyn Query> {
        Box::new(TermQuery::new(
            Term::from_field_text(field, text),
            IndexRecordOption::Basic,
        ))
    }

    fn any_of(&self, clauses: Vec<Box<dyn Query>>) -> Box<dyn Query> {
        if clauses.len() == 1 {
            clauses.into_iter().next().expect("one clause")
        } else {
            Box::new(BooleanQuery::new(
                clauses.into_iter().map(|q| (Occur::Should, q)).collect(),
            ))
        }
    }

    /// The best `limit` available talents of `pool` for a farmer at
    /// `origin`, scored against `text_terms` (content words of the report).
    /// The spatial lists of the pool's specialties and corps hold the
    /// candidates, nearest cells first; no talent outside them is looked at.
    pub fn top(
        &self,
        pool: &Pool,
        origin: Origin,
        text_terms: &[String],
        ranking: Ranking,
        limit: usize,
    ) -> tantivy::Result<Vec<Hit>> {
        if (pool.specialties.is_empty() && pool.corps.is_empty()) || limit == 0 {
            return Ok(Vec::new());
        }
        match ranking {
            Ranking::Nearest => self.nearest(pool, origin, text_terms, limit),
            Ranking::BestMatch { scale_km } => {
                self.best_match(pool, origin, text_terms, scale_km, limit)
            }
        }
    }

    /// [`Snapshot::top`] by tantivy: every talent of the pool's posting
    /// lists scored, the oracle the spatial rankings are checked against.
    #[cfg(test)]
    fn top_by_scan(
        &self,
        pool: &Pool,
        origin: Origin,
        text_terms: &[String],
        ranking: Ranking,
        limit: usize,
    ) -> tantivy::Result<Vec<Hit>> {
        let collector = collector::TopCollector::new(self.talents.clone(), origin, ranking, limit);
        self.searcher
            .search(&self.top_query(pool, text_terms), &collector)
    }

    /// The pool as a filter (score 0) plus the report's words, scored by BM25.
    #[cfg(test)]
    fn top_query(&self, pool: &Pool, text_terms: &[String]) -> BooleanQuery {
        let f = &self.fields;
        let mut pool_clauses: Vec<Box<dyn Query>> = pool
            .specialties
            .iter()
            .map(|s| self.term(f.specialty, s))
            .collect();
        pool_clauses.extend(
            pool.corps
                .iter()
                .map(|c| self.term(f.specialty_corps, c.chinese())),
        );
        let pool_query: Box<dyn Query> = Box::new(tantivy::query::ConstScoreQuery::new(
            self.any_of(pool_clauses),
            0.0,
        ));
        let mut clauses = vec![(Occur::Must, pool_query)];
        for t in text_terms {
            let term = Term::from_field_text(f.text, t);
            clauses.push((
                Occur::Should,
                Box::new(TermQuery::new(term, IndexRecordOption::WithFreqs)),
            ));
        }
        BooleanQuery::new(clauses)
    }

    /// [`Snapshot::top`] by distance, from the
    /// spatial index: the text score is only computed where it decides
    /// (between talents tied on distance and closeness).
    fn nearest(
        &self,
        pool: &Pool,
        origin: Origin,
        text_terms: &[String],
        limit: usize,
    ) -> tantivy::Result<Vec<Hit>> {
        let near = self.spatial.nearest(
            &pool.specialties,
            &pool.corps,
            origin.point,
            origin.division,
            limit,
        );
        let tied = near
            .windows(2)
            .any(|w| w[0].distance_km == w[1].distance_km && w[0].closeness == w[1].closeness);
        let words = if tied {
            self.held_words(text_terms)
        } else {
            Vec::new()
        };
        let scores = if !words.is_empty() {
            let ords: Vec<u32> = near.iter().map(|n| n.ord).collect();
            self.text_scores(&words, &ords)?
        } else {
            vec![0.0; near.len()]
        };
        let entries = near
            .iter()
            .zip(scores)
            .map(|(n, text)| Entry::new(n.distance_km, n.closeness, text, n.ord))
            .collect();
        Ok(best_hits(
            &self.talents,
            origin,
            Ranking::Nearest,
            entries,
            limit,
        ))
    }

    /// The words some talent's text holds. A word nobody's text holds scores
    /// for nobody: leaving it out changes no score and saves its BM25 weight
    /// and postings.
    fn held_words(&self, text_terms: &[String]) -> Vec<String> {
        text_terms
            .iter()
            .filter(|w| {
                let term = Term::from_field_text(self.fields.text, w);
                !matches!(self.bm25.doc_freq(&term), Ok(0))
            })
            .cloned()
            .collect()
    }

    /// [`Snapshot::top`] by `(1 + BM25) × gauss(distance)`, from the spatial
    /// index. The report's words are scored first, term at a time over
    /// their posting lists, into a buffer by document. Then cells are
    /// visited nearest first: a talent is looked at only if its score at
    /// the cell's nearest edge could place, and the walk ends where even
    /// the best text anywhere could not.
    fn best_match(
        &self,
        pool: &Pool,
        origin: Origin,
        text_terms: &[String],
        scale_km: f64,
        limit: usize,
    ) -> tantivy::Result<Vec<Hit>> {
        let walk = self
            .spatial
            .walk(&pool.specialties, &pool.corps, origin.point);
        let several = walk.lists() > 1;
        let mut texts = self
            .scratch
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or_else(|| vec![0.0; self.total_docs as usize]);
        let mut touched = Vec::new();
        let scored = self.score_words(&self.held_words(text_terms), &mut texts, &mut touched);
        let kept = scored.map(|()| {
            let text_max = touched
                .iter()
                .map(|&d| texts[d as usize])
                .fold(0.0f32, f32::max);
            // A score at a distance cannot pass this; a little over, for rounding.
            let reach = |text: f32, decay: f64| (1.0 + f64::from(text)) * decay * (1.0 + 1e-9);
            let mut kept: Vec<Entry> = Vec::new();
            // Once `limit` are kept: the score a talent must reach to place.
            let mut floor: Option<f64> = None;
            let mut seen = std::collections::HashSet::new();
            for (lower_km, members) in walk {
                let decay = collector::gauss_decay(lower_km.max(0.0), scale_km);
                if floor.is_some_and(|f| reach(text_max, decay) < f) {
                    break;
                }
                for m in members {
                    let text = texts.get(m.doc as usize).copied().unwrap_or(0.0);
                    if floor.is_some_and(|f| reach(text, decay) < f) {
                        continue;
                    }
                    let distance_km = origin.point.distance_km(m.point);
                    let score =
                        (1.0 + f64::from(text)) * collector::gauss_decay(distance_km, scale_km);
                    if floor.is_some_and(|f| score < f) || (several && !seen.insert(m.ord)) {
                        continue;
                    }
                    let closeness = origin.division.map_or(0, |d| d.closeness(m.division));
                    kept.push(Entry::new(-score, closeness, text, m.ord));
                    if kept.len() >= limit && (floor.is_none() || kept.len() >= 2 * limit + 16) {
                        kept.select_nth_unstable_by(limit - 1, |a, b| {
                            collector::compare(&self.talents, a, b)
                        });
                        kept.truncate(limit);
                        floor = kept.iter().map(|e| -e.primary()).reduce(f64::min);
                    }
                }
            }
            kept
        });
        for d in touched {
            texts[d as usize] = 0.0;
        }
        self.scratch
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(texts);
        Ok(best_hits(
            &self.talents,
            origin,
            Ranking::BestMatch { scale_km },
            kept?,
            limit,
        ))
    }

    /// Adds each word's BM25 score to `texts` (by document, zero where no
    /// word is), in the words' order as the union of their term queries
    /// adds them up; `touched` gets the documents it wrote to.
    fn score_words(
        &self,
        words: &[String],
        texts: &mut [f32],
        touched: &mut Vec<u32>,
    ) -> tantivy::Result<()> {
        for word in words {
            let term = Term::from_field_text(self.fields.text, word);
            let weight = Bm25Weight::for_terms(&self.bm25, std::slice::from_ref(&term))?;
            for (s, segment) in self.searcher.segment_readers().iter().enumerate() {
                let index = segment.inverted_index(self.fields.text)?;
                let Some(info) = index.get_term_info(&term)? else {
                    continue;
                };
                let mut block =
                    index.read_block_postings_from_terminfo(&info, IndexRecordOption::WithFreqs)?;
                let (base, norms) = (self.doc_bases[s], &self.text_norms[s]);
                while !block.docs().is_empty() {
                    for (&doc, &tf) in block.docs().iter().zip(block.freqs()) {
                        let slot = &mut texts[(base + doc) as usize];
                        if *slot == 0.0 {
                            touched.push(base + doc);
                        }
                        *slot += weight.score(norms.fieldnorm_id(doc), tf);
                    }
                    block.advance();
                }
            }
        }
        Ok(())
    }

    /// The BM25 score of `words` for each talent of `ords`, as
    /// [`Snapshot::top_query`] scores it: the pool clause adds 0 and the
    /// union of the words adds the score of each word a document holds, in
    /// the words' order. Each word's postings are sought on their own: the
    /// union of them all would refill its window for every sought document.
    fn text_scores(&self, words: &[String], ords: &[u32]) -> tantivy::Result<Vec<f32>> {
        let enable = EnableScoring::enabled_from_statistics_provider(&self.bm25, &self.searcher);
        let weights = words
            .iter()
            .map(|w| {
                TermQuery::new(
                    Term::from_field_text(self.fields.text, w),
                    IndexRecordOption::WithFreqs,
                )
                .weight(enable)
            })
            .collect::<tantivy::Result<Vec<_>>>()?;
        let mut at: Vec<(usize, DocId, usize)> = ords
            .iter()
            .enumerate()
            .filter_map(|(i, &o)| {
                let doc = *self.docs.get(o as usize).filter(|&&d| d != u32::MAX)?;
                let segment = self.doc_bases.partition_point(|&base| base <= doc) - 1;
                Some((segment, doc - self.doc_bases[segment], i))
            })
            .collect();
        at.sort_unstable();
        let mut scores = vec![0.0f32; ords.len()];
        for group in at.chunk_by(|a, b| a.0 == b.0) {
            let reader = self.searcher.segment_reader(group[0].0 as u32);
            for weight in &weights {
                let mut scorer = weight.scorer(reader, 1.0)?;
                for &(_, doc, i) in group {
                    if scorer.doc() < doc {
                        scorer.seek(doc);
                    }
                    if scorer.doc() == doc && doc != TERMINATED {
                        scores[i] += scorer.score();
                    }
                }
            }
        }
        Ok(scores)
    }

    /// Talents matching `filter`, ordered by id, after the id `after`.
    /// Returns the page and the number of matches in all.
    pub fn list(
        &self,
        filter: &ListFilter,
        after: Option<&str>,
        page_size: usize,
    ) -> tantivy::Result<(Vec<Arc<Talent>>, usize)> {
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
                return Ok((Vec::new(), 0));
            }
            must.push(self.any_of(words));
        }
        let query: Box<dyn Query> = if must.is_empty() {
            Box::new(AllQuery)
        } else {
            Box::new(BooleanQuery::new(
                must.into_iter().map(|q| (Occur::Must, q)).collect(),
            ))
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

    /// Number of documents tantivy holds, deleted ones excluded.
    pub fn indexed_docs(&self) -> u64 {
        self.searcher.num_docs()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        roster::store::RosterStore,
        roster::{self, gen, RosterFormat},
    };

    /// What a ranking returned, for comparing: ids in order, with scores
    /// (the nearest ranking computes text scores only to break ties).
    fn ranked(hits: &[Hit], ranking: Ranking) -> Vec<(String, f64, f32)> {
        hits.iter()
            .map(|h| {
                let text = match ranking {
                    Ranking::Nearest => 0.0,
                    Ranking::BestMatch { .. } => h.text_score,
                };
                (h.talent.id.clone(), h.score, text)
            })
            .collect()
    }

    /// The spatial index answers both rankings exactly as a scan of every
    /// qualified talent by tantivy does, ties and all, on a roster big
    /// enough that most of it is never visited.
    #[test]
    fn spatial_rankings_equal_a_scan_of_every_qualified_talent() {
        let (lex, div) = (Lexicon::embedded(), Divisions::embedded());
        let csv = gen::generate_csv(gen::DEMO_SEED + 7, gen::villagers_for(20_000), lex, div);
        let talents = roster::parse_roster(RosterFormat::Csv, csv.as_bytes(), lex, div).unwrap();
        let dir = std::env::temp_dir().join(format!("xwn-spatial-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = RosterStore::open(&dir, lex, || Ok(talents)).unwrap();
        let snapshot = store.snapshot();
        let items =
            crate::reading::eval::parse(include_str!("../../tests/data/problems/dev.jsonl"))
                .unwrap();
        let far = GeoPoint {
            lat: 39.9,
            lon: 116.4,
        };
        let mut compared = 0;
        for (i, item) in items.iter().enumerate().step_by(5) {
            let analysis = crate::reading::analyzer::analyze(lex, &item.text);
            let mut pools = Vec::new();
            if let Some(s) = analysis.subject {
                let subject = lex.subject(s);
                let mut specialties = vec![subject.name.clone()];
                specialties.extend(subject.parent.map(|p| lex.subject(p).name.clone()));
                pools.push(Pool {
                    specialties,
                    corps: vec![],
                });
            }
            if let Some(c) = analysis.corps {
                pools.push(Pool {
                    specialties: vec![],
                    corps: vec![c],
                });
            }
            let code = DivisionCode::parse(&item.division_code).unwrap();
            let home = Origin {
                point: div.get(code).unwrap().point,
                division: Some(code),
            };
            let origin = if i % 25 == 0 {
                Origin {
                    point: far,
                    division: None,
                }
            } else {
                home
            };
            for pool in &pools {
                for ranking in [
                    Ranking::Nearest,
                    Ranking::BestMatch { scale_km: 30.0 },
                    Ranking::BestMatch { scale_km: 3.0 },
                ] {
                    for limit in [1, 5, 40] {
                        let got = snapshot
                            .top(pool, origin, &analysis.words, ranking, limit)
                            .unwrap();
                        let want = snapshot
                            .top_by_scan(pool, origin, &analysis.words, ranking, limit)
                            .unwrap();
                        assert!(!want.is_empty(), "{pool:?} has nobody");
                        assert_eq!(
                            ranked(&got, ranking),
                            ranked(&want, ranking),
                            "{:?} {pool:?} {ranking:?} limit {limit}",
                            item.text
                        );
                        compared += 1;
                    }
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        assert!(compared > 300, "only {compared} queries compared");
    }
}
