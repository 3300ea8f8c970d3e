//! Reading a farmer's report: the agricultural lexicon and jieba segmenter,
//! the analyser that infers subject and corps, and its evaluation on
//! labelled reports.

pub mod analyzer;
pub mod eval;
pub mod lexicon;
