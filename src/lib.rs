//! The talent-matching service of 兴渭农 (Xing Wei Nong), Weinan's
//! agricultural talent platform: a farmer's problem report reaches the
//! nearest person who can solve it.
//!
//! # Layout
//!
//! - Data: [`divisions`] (Weinan's divisions and points), [`lexicon`] (the
//!   agricultural vocabulary and the jieba segmenter), [`model`] (tiers,
//!   corps, talents), [`geo`] (distances).
//! - Reading reports: [`analyzer`] infers subject and corps; [`eval`]
//!   measures it on labelled reports.
//! - The roster: [`roster`] parses and validates files and generates the
//!   demo roster; [`search`] is the tantivy index and its queries;
//!   [`roster_store`] keeps versions on disk and swaps them atomically,
//!   each with its [`talent_table`] file for fast restarts;
//!   [`roster_log`] applies admin changes locally or through the log that
//!   replicas share.
//! - [`service`]: the domain operations, free of any transport;
//!   [`tickets`]: tickets, their store and the dispatcher;
//!   [`postgres`]: the store several replicas share.
//! - Transport and process: [`grpc`] (adapters and status mapping),
//!   [`server`] (start-up and serving), [`config`], [`cli`], [`loadgen`];
//!   [`audit`] keeps the log of admin actions.

pub mod cli;
pub mod config;
pub mod error;
pub mod grpc;
pub mod matching;
pub mod model;
pub mod reading;
pub mod roster;
pub mod search;
pub mod server;
pub mod store;
pub mod tickets;

/// Code generated from `proto/` by `build.rs`.
#[allow(clippy::all, clippy::pedantic, missing_docs, unreachable_pub)]
#[rustfmt::skip]
pub mod pb {
    //! Messages and services of `xingweinong.v1`, generated from `proto/`.
    tonic::include_proto!("xingweinong.v1");

    /// The encoded descriptor set, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/xwn_descriptor.bin"));
}
