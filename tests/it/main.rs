//! The integration tests, in one binary so the crate links once: each
//! module drives the real server (in process on 127.0.0.1:0, or the `xwn`
//! binary for kill -9, SIGTERM and log checks).

mod browser;
mod callers;
mod cli_print;
mod common;
mod connections;
mod crash;
mod disk;
mod divisions;
mod eval_cli;
mod inflight;
mod input;
mod knowledge;
mod links;
mod logs;
mod matching;
mod metrics;
mod notify;
mod overload;
mod photos;
mod properties;
mod queue;
mod ratings;
mod readiness;
mod replica_content;
mod replicas;
mod roster_api;
mod roster_files;
mod roster_rows;
mod s3_photos;
mod security;
mod statuses;
mod store;
mod tickets;
mod tidy;
mod tls;
mod web;
