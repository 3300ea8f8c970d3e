//! Roster files: parsing and validating CSV and JSONL rosters into talents,
//! and the deterministic demo-roster generator.

pub(crate) mod admin;
pub mod gen;
pub(crate) mod log;
mod parse;
pub mod store;
pub(crate) mod table;

pub use parse::{parse_roster, validate_row, RawRow, RosterFormat, RowError, COLUMNS};
pub(crate) use parse::{read_rows, Checking, Layout};
