//! Text scores: the searcher's BM25 statistics, remembered per snapshot,
//! and the report's words scored against talents' text, term at a time
//! into a buffer by document (best match) or for a few talents (ties of
//! the nearest ranking).

use std::sync::Mutex;

use rustc_hash::FxHashMap as HashMap;
use tantivy::{
    query::{Bm25StatisticsProvider, Bm25Weight, EnableScoring, Query, TermQuery},
    schema::{Field, IndexRecordOption},
    DocId, DocSet, Searcher, Term, TERMINATED,
};

use super::Snapshot;

/// The searcher's BM25 statistics, remembered: the snapshot never changes,
/// and looking a term up in every segment per query costs more than
/// scoring the few talents whose order depends on it.
pub(super) struct Bm25Cache {
    searcher: Searcher,
    docs: u64,
    tokens: Mutex<HashMap<Field, u64>>,
    doc_freqs: Mutex<HashMap<Term, u64>>,
}

impl Bm25Cache {
    pub(super) fn new(searcher: &Searcher) -> tantivy::Result<Bm25Cache> {
        Ok(Bm25Cache {
            docs: Bm25StatisticsProvider::total_num_docs(searcher)?,
            searcher: searcher.clone(),
            tokens: Mutex::new(HashMap::default()),
            doc_freqs: Mutex::new(HashMap::default()),
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

impl Snapshot {
    /// The words some talent's text holds. A word nobody's text holds scores
    /// for nobody: leaving it out changes no score and saves its BM25 weight
    /// and postings.
    pub(super) fn held_words(&self, text_terms: &[String]) -> Vec<String> {
        text_terms
            .iter()
            .filter(|w| {
                let term = Term::from_field_text(self.fields.text, w);
                !matches!(self.bm25.doc_freq(&term), Ok(0))
            })
            .cloned()
            .collect()
    }

    /// Adds each word's BM25 score to `texts` (by document, zero where no
    /// word is), in the words' order as the union of their term queries
    /// adds them up; `touched` gets the documents it wrote to.
    pub(super) fn score_words(
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
    pub(super) fn text_scores(&self, words: &[String], ords: &[u32]) -> tantivy::Result<Vec<f32>> {
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
}
