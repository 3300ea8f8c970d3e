//! Segmenting text with the lexicon's words kept whole: for reading a
//! report, for the full-text index, and plain jieba words.

use super::Lexicon;

/// Verbs that come before a symptom (长白粉, 发白, 起斑, 生虫, 出水): a
/// variety or breed name starting with one yields to the symptom word
/// after it.
const YIELDING_HEADS: [char; 6] = ['长', '发', '生', '起', '出', '有'];

impl Lexicon {
    /// Splits a report for reading: every lexicon word of two or more
    /// characters is taken whole, longest first, wherever it stands (so
    /// 奶羊 survives in 奶羊配种 even where jieba would cut 奶|羊配种); the
    /// text between is cut by jieba. A variety or breed name that is also
    /// an ordinary run of characters yields to a word that starts inside
    /// it and runs past it (长白粉, 长白色: 长 + 白粉, not the pig breed
    /// 长白; see [`Lexicon::yields`]).
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
        while let Some(m) = self
            .matcher
            .find(aho_corasick::Input::new(text).span(at..text.len()))
        {
            let word = &text[m.start()..m.end()];
            debug_assert_eq!(word, self.patterns[m.pattern().as_usize()]);
            gap(at, m.start(), &mut out);
            if let Some(head) = self.yields(text, m.start(), m.end()) {
                // The first character stands alone; matching goes on from
                // the next.
                out.push(Word::at(&text[m.start()..head], m.start()));
                at = head;
                continue;
            }
            out.push(Word::at(word, m.start()));
            at = m.end();
        }
        gap(at, text.len(), &mut out);
        out
    }

    /// Where the word after the first character begins, when the variety
    /// or breed name at `start..end` yields: it starts with a verb that
    /// comes before symptoms ([`YIELDING_HEADS`]), and a word of jieba's
    /// dictionary or the lexicon starts at its second character and ends
    /// after it. Names of crops, animals and diseases never yield, nor do
    /// names that start otherwise (徐香果子 stays 徐香).
    fn yields(&self, text: &str, start: usize, end: usize) -> Option<usize> {
        let word = &text[start..end];
        let senses = self.senses(word);
        let variety = if senses.is_empty() {
            self.crop(word).is_some_and(|c| {
                matches!(c.kind, super::CropKind::Variety | super::CropKind::Breed)
            })
        } else {
            senses.iter().all(|s| s.kind == super::TermKind::Variety)
        };
        let first = word.chars().next()?;
        if !variety || !YIELDING_HEADS.contains(&first) {
            return None;
        }
        let head = start + first.len_utf8();
        text[end..]
            .char_indices()
            .map(|(i, c)| end + i + c.len_utf8())
            .take(3)
            .any(|e| self.jieba.has_word(&text[head..e]))
            .then_some(head)
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
