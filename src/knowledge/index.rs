//! The knowledge entries' own tantivy index (jieba with the lexicon, like
//! the talent index) and how a query finds similar solved problems.
//!
//! tantivy gathers candidates by BM25 over the problem's words, under the
//! filters (subject, corps, county); the candidates are then ranked by a
//! similarity in 0..1 that a threshold can be set on: the weighted Dice
//! coefficient of the query's and the problem's words, each word weighing
//! its rarity in the base (idf), plus a bonus when the entry's subject is
//! the one the query was read as. Only hits at or above
//! [`THRESHOLD`] are returned, so an unrelated question shows nothing.

use std::{
    collections::HashMap,
    sync::{Mutex, RwLock},
};

use tantivy::{
    collector::TopDocs,
    query::{BooleanQuery, BoostQuery, Occur, Query as TantivyQuery, TermQuery},
    schema::{Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, FAST, STRING},
    Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term,
};

use super::{Entry, DEFAULT_LIMIT, MAX_LIMIT, MAX_QUERY_CHARS};
use crate::{
    error::{Error, Result},
    model::Corps,
    reading::lexicon::Lexicon,
    search::{schema::register_tokenizer, tokenizer},
};

/// Similarity a hit needs to be shown (tuned on `tests/data/knowledge/dev-*`).
pub const THRESHOLD: f64 = 0.25;
/// Added to the similarity when the entry's subject is the query's.
pub const SUBJECT_BONUS: f64 = 0.15;
/// The similarity is multiplied by this when the query reads as another
/// subject than the entry's (梨 asked, 苹果 solved).
pub const OTHER_SUBJECT: f64 = 0.7;
/// A query word found only in the entry's answer (a disease's name the
/// farmer knew and the solver wrote) counts this much of its weight.
pub const ANSWER_SHARE: f64 = 0.5;
/// Candidates tantivy gathers for the re-ranking.
const CANDIDATES: usize = 40;
/// Memory of the one indexing thread.
const WRITER_BYTES: usize = 50_000_000;

#[derive(Debug, Clone, Copy)]
struct Fields {
    /// The entry's place in the table (a fast field).
    key: Field,
    id: Field,
    text: Field,
    subject: Field,
    corps: Field,
    county: Field,
}

impl Fields {
    fn schema() -> (Schema, Fields) {
        let mut b = Schema::builder();
        let text = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(tokenizer::JIEBA)
                .set_index_option(UNITED),
        );
        let keyword_with_freqs = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer("raw")
                .set_index_option(UNITED),
        );
        let fields = Fields {
            key: b.add_u64_field("key", FAST),
            id: b.add_text_field("id", STRING),
            text: b.add_text_field("text", text),
            // With frequencies (always 1), so the subject's clause of a
            // query is a term scorer that block-max WAND can prune with.
            subject: b.add_text_field("subject", keyword_with_freqs),
            corps: b.add_text_field("corps", STRING),
            county: b.add_text_field("county", STRING),
        };
        (b.build(), fields)
    }
}

/// What a search asks.
#[derive(Debug, Clone, Default)]
pub struct Query<'a> {
    pub text: &'a str,
    /// The subject the query was read as: a bonus, not a filter.
    pub hint_subject: Option<&'a str>,
    /// Filters.
    pub subject: Option<&'a str>,
    pub corps: Option<Corps>,
    pub county_code: Option<&'a str>,
    pub limit: usize,
}

/// One similar solved problem.
#[derive(Debug, Clone)]
pub struct Hit {
    pub entry: std::sync::Arc<Entry>,
    /// 0..1 (the subject bonus included, capped).
    pub similarity: f64,
    pub matched_terms: Vec<String>,
}

struct Indexed {
    entry: std::sync::Arc<Entry>,
    /// The problem's distinct words.
    terms: Vec<String>,
    /// The answer's distinct words.
    answer_terms: Vec<String>,
}

#[derive(Default)]
struct Table {
    by_key: HashMap<u64, Indexed>,
    key_of: HashMap<String, u64>,
    /// In how many entries each word is: the words' weights.
    df: HashMap<String, u32>,
    next_key: u64,
}

impl Table {
    fn idf(&self, term: &str) -> f64 {
        let n = self.by_key.len() as f64;
        // A word no entry has weighs as one entry's would, halved: it says
        // the query differs, without letting a chatty query's filler words
        // sink a good match.
        let df = f64::from(self.df.get(term).copied().unwrap_or(0));
        let idf = |df: f64| (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
        if df == 0.0 {
            idf(1.0) * 0.5
        } else {
            idf(df)
        }
    }

    fn remove(&mut self, id: &str) -> Option<u64> {
        let key = self.key_of.remove(id)?;
        if let Some(old) = self.by_key.remove(&key) {
            for t in &old.terms {
                if let Some(n) = self.df.get_mut(t) {
                    *n -= 1;
                    if *n == 0 {
                        self.df.remove(t);
                    }
                }
            }
        }
        Some(key)
    }
}

/// The index of the published entries, in memory (rebuilt from the store
/// at start), with the entries themselves for the replies.
pub struct KnowledgeIndex {
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    fields: Fields,
    table: RwLock<Table>,
    lexicon: &'static Lexicon,
}

/// How the union that gathers the candidates reads its terms: with
/// frequencies, so tantivy prunes it with block-max WAND. One clause
/// without them makes it score every entry that has any of the words.
const UNITED: IndexRecordOption = IndexRecordOption::WithFreqs;

/// A clause of that union.
fn united(term: Term) -> Box<dyn TantivyQuery> {
    Box::new(TermQuery::new(term, UNITED))
}

fn words(lexicon: &Lexicon, text: &str) -> Vec<String> {
    let mut terms: Vec<String> = tokenizer::terms(lexicon, text)
        .into_iter()
        .map(|(_, _, t)| t)
        .collect();
    terms.sort_unstable();
    terms.dedup();
    terms
}

impl KnowledgeIndex {
    pub fn new(lexicon: &'static Lexicon) -> Result<KnowledgeIndex> {
        let (schema, fields) = Fields::schema();
        let index = Index::create_in_ram(schema);
        register_tokenizer(&index);
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let writer = index.writer_with_num_threads(1, WRITER_BYTES)?;
        Ok(KnowledgeIndex {
            reader,
            writer: Mutex::new(writer),
            fields,
            table: RwLock::new(Table::default()),
            lexicon,
        })
    }

    /// How many entries are searchable.
    pub fn len(&self) -> usize {
        self.table.read().expect("knowledge table").by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many entries have a word of `text` in their problem or answer:
    /// how much of the base a query touches (for the benchmark).
    pub fn sharing(&self, text: &str) -> Result<usize> {
        let f = self.fields;
        let should: Vec<(Occur, Box<dyn TantivyQuery>)> = words(self.lexicon, text)
            .iter()
            .map(|t| -> (Occur, Box<dyn TantivyQuery>) {
                (
                    Occur::Should,
                    Box::new(TermQuery::new(
                        Term::from_field_text(f.text, t),
                        IndexRecordOption::Basic,
                    )),
                )
            })
            .collect();
        Ok(self
            .reader
            .searcher()
            .search(&BooleanQuery::new(should), &tantivy::collector::Count)?)
    }

    /// Adds (or replaces) entries and removes ids, in one commit.
    pub fn apply(&self, put: Vec<Entry>, remove: &[String]) -> Result<()> {
        let mut writer = self.writer.lock().expect("knowledge writer");
        let mut table = self.table.write().expect("knowledge table");
        for id in remove.iter().chain(put.iter().map(|e| &e.id)) {
            if table.remove(id).is_some() {
                writer.delete_term(Term::from_field_text(self.fields.id, id));
            }
        }
        for entry in put {
            let key = table.next_key;
            table.next_key += 1;
            let f = &self.fields;
            let mut doc = TantivyDocument::default();
            doc.add_u64(f.key, key);
            doc.add_text(f.id, &entry.id);
            doc.add_text(f.text, &entry.text);
            doc.add_text(f.text, &entry.answer);
            doc.add_text(f.subject, &entry.subject);
            doc.add_text(f.corps, entry.corps.map(Corps::chinese).unwrap_or_default());
            doc.add_text(f.county, &entry.county_code);
            writer.add_document(doc)?;
            let terms = words(self.lexicon, &entry.text);
            for t in &terms {
                *table.df.entry(t.clone()).or_default() += 1;
            }
            table.key_of.insert(entry.id.clone(), key);
            let answer_terms = words(self.lexicon, &entry.answer);
            let entry = std::sync::Arc::new(entry);
            table.by_key.insert(
                key,
                Indexed {
                    entry,
                    terms,
                    answer_terms,
                },
            );
        }
        drop(table);
        writer.commit()?;
        self.reader.reload()?;
        Ok(())
    }

    /// Similar solved problems, checked: the text bounded and not empty,
    /// the limit within [`MAX_LIMIT`] (0 means [`DEFAULT_LIMIT`]). Without a
    /// hint, the subject the question reads as is the hint.
    pub fn find(&self, query: &Query<'_>) -> Result<Vec<Hit>> {
        crate::error::check_len("text", query.text, MAX_QUERY_CHARS)?;
        if query.text.trim().is_empty() {
            return Err(Error::invalid(
                "text",
                "is empty: describe the problem in a few words",
            ));
        }
        let limit = match query.limit {
            0 => DEFAULT_LIMIT,
            n if n > MAX_LIMIT => {
                return Err(Error::invalid(
                    "limit",
                    format!("{n} is above the maximum of {MAX_LIMIT}"),
                ))
            }
            n => n,
        };
        let county = match query.county_code.map(str::trim).filter(|c| !c.is_empty()) {
            None => None,
            Some(c) => {
                let code = crate::model::divisions::DivisionCode::parse(c).ok_or_else(|| {
                    Error::invalid(
                        "county_code",
                        format!("{} is not a 12-digit division code", crate::error::quote(c)),
                    )
                })?;
                Some(code.county().to_string())
            }
        };
        let subject = query.subject.map(str::trim).filter(|s| !s.is_empty());
        let hint = match query.hint_subject {
            Some(hint) => Some(hint),
            None => crate::reading::analyzer::analyze_in(self.lexicon, query.text, None)
                .subject
                .map(|s| self.lexicon.subject(s).name.as_str()),
        };
        self.search(&Query {
            limit,
            hint_subject: hint,
            subject,
            county_code: county.as_deref(),
            ..query.clone()
        })
    }

    /// The entries most similar to the query, at or above [`THRESHOLD`],
    /// most similar first (ties by id).
    pub fn search(&self, q: &Query<'_>) -> Result<Vec<Hit>> {
        // Nothing to find: the report is not cut into words at all (every
        // MatchProblem asks for similar entries, and a new library has none).
        if q.limit == 0 || self.is_empty() {
            return Ok(Vec::new());
        }
        let words = words(self.lexicon, q.text);
        if words.is_empty() {
            return Ok(Vec::new());
        }
        let f = self.fields;
        let mut should: Vec<(Occur, Box<dyn TantivyQuery>)> = words
            .iter()
            .map(|t| (Occur::Should, united(Term::from_field_text(f.text, t))))
            .collect();
        if let Some(s) = q.hint_subject {
            let subject = united(Term::from_field_text(f.subject, s));
            should.push((Occur::Should, Box::new(BoostQuery::new(subject, 2.0))));
        }
        let mut clauses: Vec<(Occur, Box<dyn TantivyQuery>)> = Vec::new();
        let filter = |field: Field, value: &str| -> (Occur, Box<dyn TantivyQuery>) {
            (
                Occur::Must,
                Box::new(TermQuery::new(
                    Term::from_field_text(field, value),
                    IndexRecordOption::Basic,
                )),
            )
        };
        if let Some(s) = q.subject {
            clauses.push(filter(f.subject, s));
        }
        if let Some(c) = q.corps {
            clauses.push(filter(f.corps, c.chinese()));
        }
        if let Some(c) = q.county_code {
            clauses.push(filter(f.county, c));
        }
        // Without filters, a plain union of term scorers that read
        // frequencies (the words and the hint's subject), which tantivy
        // prunes (block-max WAND) while collecting the top candidates; a
        // clause without them would make it score every match.
        let query = if clauses.is_empty() {
            BooleanQuery::new(should)
        } else {
            clauses.push((Occur::Must, Box::new(BooleanQuery::new(should))));
            BooleanQuery::new(clauses)
        };
        let searcher = self.reader.searcher();
        let top = searcher.search(&query, &TopDocs::with_limit(CANDIDATES).order_by_score())?;
        let table = self.table.read().expect("knowledge table");
        let weight = |t: &str| table.idf(t);
        let query_weight: f64 = words.iter().map(|t| weight(t)).sum();
        let mut hits = Vec::new();
        // Each segment's key column is opened once per search, not once per
        // candidate: opening one reads all its blocks.
        let mut keys: Vec<Option<tantivy::columnar::Column<u64>>> =
            (0..searcher.segment_readers().len())
                .map(|_| None)
                .collect();
        for (_, address) in top {
            let column = match &mut keys[address.segment_ord as usize] {
                Some(column) => column,
                slot => slot.insert(
                    searcher
                        .segment_reader(address.segment_ord)
                        .fast_fields()
                        .u64("key")?,
                ),
            };
            let Some(key) = column.first(address.doc_id) else {
                continue;
            };
            let Some(indexed) = table.by_key.get(&key) else {
                continue; // removed since the searcher was taken
            };
            let doc_weight: f64 = indexed.terms.iter().map(|t| weight(t)).sum();
            let (mut matched, mut shared) = (Vec::new(), 0.0);
            for t in &words {
                if indexed.terms.binary_search(t).is_ok() {
                    shared += weight(t);
                    matched.push(t.clone());
                } else if indexed.answer_terms.binary_search(t).is_ok() {
                    shared += ANSWER_SHARE * weight(t);
                    matched.push(t.clone());
                }
            }
            let mut similarity = 2.0 * shared / (query_weight + doc_weight).max(f64::EPSILON);
            match q.hint_subject {
                Some(s) if s == indexed.entry.subject => similarity += SUBJECT_BONUS,
                Some(_) if !indexed.entry.subject.is_empty() => similarity *= OTHER_SUBJECT,
                _ => {}
            }
            let similarity = similarity.min(1.0);
            if similarity >= THRESHOLD {
                hits.push(Hit {
                    entry: indexed.entry.clone(),
                    similarity,
                    matched_terms: matched,
                });
            }
        }
        hits.sort_by(|a, b| {
            b.similarity
                .total_cmp(&a.similarity)
                .then_with(|| a.entry.id.cmp(&b.entry.id))
        });
        hits.truncate(q.limit);
        Ok(hits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fields_the_candidates_union_reads_have_frequencies() {
        // Block-max WAND needs every term scorer of the union to read
        // frequencies, which a field indexed without them cannot give.
        let (schema, f) = Fields::schema();
        for field in [f.text, f.subject] {
            let entry = schema.get_field_entry(field);
            let indexed = entry.field_type().get_index_record_option();
            assert_eq!(indexed, Some(UNITED), "{}", entry.name());
            assert!(UNITED.has_freq());
        }
    }
}
