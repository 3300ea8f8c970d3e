//! Segmenting text with the lexicon's words kept whole: for reading a
//! report, for the full-text index, and plain jieba words.

use super::Lexicon;

impl Lexicon {
    /// Splits a report for reading: every lexicon word of two or more
    /// characters is taken whole, longest first, wherever it stands (so
    /// 奶羊 survives in 奶羊配种 even where jieba would cut 奶|羊配种); the
    /// text between is cut by jieba.
    pub(crate) fn reading_words<'t>(&self, text: &'t str) -> Vec<Word<'t>> {
        let mut out = Vec::new();
        let mut at = 0;
        let gap = |from: usize, to: usize, out: &mut Vec<Word<'t>>| {
            if from < to {
                let cut = self.jieba.cut(&text[from..to], false);
                out.extend(
                    cut.into_iter()
                        .map(|t| Word::at(t.word, from + t.byte_start)),
                );
            }
        };
        for m in self.matcher.find_iter(text) {
            gap(at, m.start(), &mut out);
            let word = &text[m.start()..m.end()];
            debug_assert_eq!(word, self.patterns[m.pattern().as_usize()]);
            out.push(Word::at(word, m.start()));
            at = m.end();
        }
        gap(at, text.len(), &mut out);
        out
    }

    /// Words for the full-text index: jieba's search mode, which adds the
    /// dictionary words inside long ones (猕猴桃溃疡病 → 猕猴桃, 溃疡病 …),
    /// so a query for a part finds the whole.
    pub(crate) fn search_words<'t>(&self, text: &'t str) -> impl Iterator<Item = Word<'t>> + 't
    where
        Self: 't,
    {
        self.jieba
            .cut_for_search(text, false)
            .into_iter()
            .map(|t| Word::at(t.word, t.byte_start))
    }

    /// Splits text into words: jieba without HMM (so unknown runs never glue
    /// into new words), lowercased, punctuation and spaces dropped.
    pub fn words<'t>(&self, text: &'t str) -> impl Iterator<Item = Word<'t>> + 't
    where
        Self: 't,
    {
        self.jieba
            .cut(text, false)
            .into_iter()
            .map(|t| Word::at(t.word, t.byte_start))
    }
}

/// A segment of the input text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Word<'t> {
    pub text: &'t str,
    pub(crate) byte_start: usize,
    /// False for punctuation and white space, which end a clause.
    pub(crate) is_content: bool,
}

impl<'t> Word<'t> {
    fn at(text: &'t str, byte_start: usize) -> Word<'t> {
        Word {
            text,
            byte_start,
            is_content: text.chars().any(char::is_alphanumeric),
        }
    }
}
