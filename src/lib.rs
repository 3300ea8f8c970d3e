//! The talent-matching service of 兴渭农 (Xing Wei Nong), Weinan's
//! agricultural talent platform: a farmer's problem report reaches the
//! nearest person who can solve it.
//!
//! # Layout
//!
//! One room per concern (ARCHITECTURE.md is the map):
//!
//! - [`model`]: ids, tiers, corps, talents, locations, Weinan's divisions
//!   and distances.
//! - [`reading`]: the agricultural lexicon and jieba segmenter, the
//!   analyser that infers subject and corps, and its evaluation.
//! - [`roster`]: parsing and validating roster files, the demo roster,
//!   versions on disk, the shared roster log and the admin operations.
//! - [`search`]: the tantivy index and its rankings.
//! - [`matching`]: a report's need, the one qualification rule, reasons.
//! - [`tickets`]: the pure state machine, routing, the dispatcher, live
//!   streams, tokens and who sees what.
//! - [`knowledge`]: solved problems shared with the next farmer: entries
//!   made from resolved tickets, their own index, similar-problem search.
//! - [`store`]: the ticket store trait, its row codec, SQLite and the
//!   PostgreSQL store replicas share; the notification outbox's rows.
//! - [`photos`]: photos of a problem: validated and re-encoded without
//!   metadata, a row per upload, the bytes once per content in files,
//!   PostgreSQL or an S3-compatible store, seen through their ticket.
//! - [`notify`]: what each change tells whom (written with the change),
//!   the delivery worker that POSTs it to the webhooks, signed, with
//!   retries and leases, and what admins see of it.
//! - [`outbound`]: the HTTP/1.1 client of the webhooks and the S3 photo
//!   store (with its Signature V4).
//! - Transport and process, the only rooms that know tonic: [`grpc`] (thin
//!   adapters and the one status mapping), [`http`] (gRPC-Web, Connect JSON
//!   transcoded onto the gRPC routes, the embedded pages), [`server`]
//!   (wiring, serving, limits, TLS, audit, `/metrics`), [`cli`]; with
//!   [`config`] and [`error`].
//! - [`metrics`]: the Prometheus numbers, counted through named functions
//!   the domain calls (no transport in it).

pub mod cli;
pub mod config;
pub mod error;
pub(crate) mod grpc;
pub(crate) mod http;
pub mod knowledge;
pub mod matching;
pub mod metrics;
pub mod model;
pub mod notify;
pub mod outbound;
pub mod photos;
pub mod reading;
pub mod roster;
pub(crate) mod search;
pub mod server;
pub mod store;
pub mod tickets;

#[doc(hidden)]
pub mod fuzzing {
    //! What the fuzz targets in `fuzz/` drive in process: the HTTP layer
    //! (`http/fuzzing.rs`) and webhook payloads (`notify/fuzzing.rs`).
    pub use crate::http::fuzzing::*;
    pub use crate::notify::fuzzing::{Webhook, Webhooks};
}

/// Code generated from `proto/` by `build.rs`.
#[allow(clippy::all, clippy::pedantic, missing_docs, unreachable_pub)]
#[rustfmt::skip]
pub mod pb {
    //! Messages and services of `xingweinong.v1`, generated from `proto/`.
    tonic::include_proto!("xingweinong.v1");

    /// The encoded descriptor set, for server reflection.
    pub(crate) const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/xwn_descriptor.bin"));
}
