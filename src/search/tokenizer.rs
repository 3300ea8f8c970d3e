//! The tantivy tokenizer for Chinese: jieba segmentation with the lexicon in
//! its dictionary, so 腐烂病, 猕猴桃 and 奶山羊 stay whole.

use tantivy::tokenizer::{Token, TokenStream, Tokenizer};

use crate::reading::lexicon::Lexicon;

/// The name the tokenizer is registered under in every index.
pub(crate) const JIEBA: &str = "xwn_jieba";

#[derive(Clone, Copy)]
pub(crate) struct JiebaTokenizer {
    lexicon: &'static Lexicon,
}

impl JiebaTokenizer {
    pub(crate) fn new(lexicon: &'static Lexicon) -> JiebaTokenizer {
        JiebaTokenizer { lexicon }
    }
}

/// Content words of `text` in jieba's search mode, lowercased: what is
/// indexed and what is searched.
pub(crate) fn terms(lexicon: &Lexicon, text: &str) -> Vec<(usize, usize, String)> {
    lexicon
        .search_words(text)
        .filter(|w| w.is_content)
        .map(|w| {
            (
                w.byte_start,
                w.byte_start + w.text.len(),
                w.text.to_lowercase(),
            )
        })
        .collect()
}

pub(crate) struct JiebaTokenStream {
    tokens: Vec<Token>,
    index: usize,
}

impl Tokenizer for JiebaTokenizer {
    type TokenStream<'a> = JiebaTokenStream;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> JiebaTokenStream {
        let tokens = terms(self.lexicon, text)
            .into_iter()
            .enumerate()
            .map(|(position, (offset_from, offset_to, text))| Token {
                offset_from,
                offset_to,
                position,
                text,
                position_length: 1,
            })
            .collect();
        JiebaTokenStream { tokens, index: 0 }
    }
}

impl TokenStream for JiebaTokenStream {
    fn advance(&mut self) -> bool {
        self.index += 1;
        self.index <= self.tokens.len()
    }

    fn token(&self) -> &Token {
        &self.tokens[self.index - 1]
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.tokens[self.index - 1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_whole_lexicon_terms_without_punctuation() {
        let mut tokenizer = JiebaTokenizer::new(Lexicon::embedded());
        let mut stream = tokenizer.token_stream("苹果腐烂病，猕猴桃！");
        let mut seen = Vec::new();
        while stream.advance() {
            seen.push(stream.token().text.clone());
        }
        assert!(seen.contains(&"猕猴桃".to_string()), "{seen:?}");
        assert!(!seen.iter().any(|t| t == "，" || t == "！"), "{seen:?}");
    }
}
