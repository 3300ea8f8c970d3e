//! Roster files: parsing and validating CSV and JSONL rosters into talents,
//! and the deterministic demo-roster generator.

pub mod gen;
mod parse;

pub use parse::{parse_roster, validate_row, RawRow, RosterFormat, RowError, COLUMNS};
