//! The domain error: what callers did wrong or what failed, independent of
//! the transport. The gRPC layer maps it onto status codes in one place.
//! Also [`blocking`], which runs domain work off the async workers.

use crate::roster::RowError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request field is missing or malformed.
    #[error("{field}: {message}")]
    InvalidArgument { field: String, message: String },
    /// A roster or liaison upload has bad rows; nothing was changed. The
    /// report is bounded however many rows were bad.
    #[error("{}", .0.summary)]
    InvalidRoster(RowReport),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    ResourceExhausted(String),
    #[error("{0}")]
    FailedPrecondition(String),
    /// What the call would create exists already (a ticket's rating).
    #[error("{0}")]
    AlreadyExists(String),
    /// The server cannot take the call now (it is stopping, say).
    #[error("{0}")]
    Unavailable(String),
    /// The data directory cannot be read or written (full disk, permissions).
    #[error("storage: {0}")]
    Storage(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub(crate) fn invalid(field: &str, message: impl Into<String>) -> Error {
        Error::InvalidArgument {
            field: field.to_string(),
            message: message.into(),
        }
    }

    /// An invalid roster or liaison file, its bad rows bounded into a
    /// [`RowReport`].
    pub(crate) fn invalid_roster(errors: Vec<RowError>) -> Error {
        Error::InvalidRoster(RowReport::of(errors))
    }
}

/// The bounded account of a refused file: the total, the counts by field and
/// the first rows. A file with 100,000 bad rows must still be refused with
/// a report any client can read whole, so the rows kept stop at
/// [`RowReport::MAX_ROWS`] and [`RowReport::MAX_TEXT`] bytes of text; the
/// whole list is for `CheckRosterFile`, which streams it.
#[derive(Debug, Clone)]
pub struct RowReport {
    /// One line for people and logs: counts, the fields, what was kept.
    pub(crate) summary: String,
    /// How many problems the file has in all.
    pub(crate) total: u64,
    /// How many distinct lines have a problem.
    pub(crate) rows: u64,
    /// The first problems, in file order, messages clipped.
    pub(crate) first: Vec<RowError>,
}

impl RowReport {
    /// The most problems a report keeps.
    pub(crate) const MAX_ROWS: usize = 100;
    /// The most bytes of field names and messages a report keeps.
    pub(crate) const MAX_TEXT: usize = 8 * 1024;
    /// A kept message longer than this many characters is cut.
    const MAX_MESSAGE: usize = 200;
    /// Fields named in the summary; the rest are counted as "others".
    const MAX_FIELDS: usize = 6;

    /// Counts every problem and keeps the first few.
    pub(crate) fn of(errors: Vec<RowError>) -> RowReport {
        let total = errors.len() as u64;
        let rows = errors
            .iter()
            .map(|e| e.line)
            .collect::<std::collections::HashSet<_>>()
            .len() as u64;
        let mut by_field: std::collections::HashMap<&str, u64> = Default::default();
        for e in &errors {
            *by_field.entry(e.field.as_str()).or_default() += 1;
        }
        let mut by_field: Vec<(&str, u64)> = by_field.into_iter().collect();
        by_field.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let mut named: Vec<String> = by_field
            .iter()
            .take(Self::MAX_FIELDS)
            .map(|(f, n)| format!("{} {}", field_label(f), thousands(*n)))
            .collect();
        let others: u64 = by_field.iter().skip(Self::MAX_FIELDS).map(|(_, n)| n).sum();
        if others > 0 {
            named.push(format!("other fields {}", thousands(others)));
        }
        let mut first = Vec::new();
        let mut text = 0;
        for e in &errors {
            let kept = RowError {
                line: e.line,
                field: clip(&e.field, 40),
                message: clip(&e.message, Self::MAX_MESSAGE),
            };
            text += kept.field.len() + kept.message.len() + 16;
            if first.len() == Self::MAX_ROWS || text > Self::MAX_TEXT {
                break;
            }
            first.push(kept);
        }
        let kept = if first.len() as u64 == total {
            "the details list them all".to_string()
        } else {
            format!("the first {} are in the details", first.len())
        };
        let summary = format!(
            "the file was refused whole, nothing was changed: {} in {} ({}); {kept}",
            counted(total, "problem"),
            counted(rows, "row"),
            named.join(", "),
        );
        RowReport {
            summary,
            total,
            rows,
            first,
        }
    }
}

/// How the summary names a field; the empty field is the row or file itself.
fn field_label(field: &str) -> String {
    if field.is_empty() {
        "whole row".into()
    } else {
        clip(field, 40)
    }
}

/// `text` cut to `max` characters, marked with "…" when cut.
fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// "1 row", "12,345 rows".
fn counted(n: u64, what: &str) -> String {
    format!("{} {what}{}", thousands(n), if n == 1 { "" } else { "s" })
}

/// 12345 as "12,345".
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl From<tantivy::TantivyError> for Error {
    fn from(e: tantivy::TantivyError) -> Error {
        match e {
            tantivy::TantivyError::IoError(io) => Error::Storage(io.to_string()),
            tantivy::TantivyError::OpenWriteError(w) => Error::Storage(w.to_string()),
            tantivy::TantivyError::OpenDirectoryError(d) => Error::Storage(d.to_string()),
            other => Error::Internal(other.to_string()),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        Error::Storage(e.to_string())
    }
}

pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

/// Runs `work` on tokio's blocking threads; a thread that failed (panicked)
/// is an internal error naming the `worker`.
pub(crate) async fn blocking<T: Send + 'static>(
    worker: &str,
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::Internal(format!("{worker} worker failed: {e}")))?
}

/// Refuses text longer than `max` characters, naming the field.
pub(crate) fn check_len(field: &str, text: &str, max: usize) -> Result<()> {
    // A character takes at most 4 bytes: a value of more than 4 × max bytes
    // is refused without counting.
    if text.len() > max.saturating_mul(4) {
        return Err(Error::invalid(
            field,
            format!(
                "is {} bytes long; the limit is {max} characters",
                text.len()
            ),
        ));
    }
    let n = text.chars().count();
    if n > max {
        return Err(Error::invalid(
            field,
            format!("is {n} characters long; the limit is {max}"),
        ));
    }
    Ok(())
}

/// Longest ticket id, talent id or liaison id accepted, in bytes.
pub(crate) const MAX_ID_BYTES: usize = 64;

/// How many characters of a caller's input an error quotes.
const QUOTE_CHARS: usize = 32;

/// A caller's input as an error quotes it: at most its first 32
/// characters, Rust-escaped (controls show as `\u{1b}`, never raw), then
/// `…` when cut. Every error that echoes input goes through here, so that
/// a huge value cannot make a huge message or trailer.
pub(crate) fn quote(text: &str) -> String {
    match text.char_indices().nth(QUOTE_CHARS) {
        Some((cut, _)) => format!("{:?}…", &text[..cut]),
        None => format!("{text:?}"),
    }
}

/// Refuses an id-like value (ids, codes, keys, secrets, contact) longer
/// than `max` bytes or holding any control character, naming the field.
/// The length is checked first, in bytes, before anything reads the value.
pub(crate) fn check_id(field: &str, text: &str, max: usize) -> Result<()> {
    if text.len() > max {
        return Err(Error::invalid(
            field,
            format!("is {} bytes long; the limit is {max}", text.len()),
        ));
    }
    check_no_controls(field, text, |_| false)
}

/// Refuses control characters except those `allowed`, naming the field and
/// the character (as `U+001B`), never echoing the value.
pub(crate) fn check_no_controls(
    field: &str,
    text: &str,
    allowed: impl Fn(char) -> bool,
) -> Result<()> {
    // char::is_control: C0, DEL and C1.
    match text.chars().position(|c| c.is_control() && !allowed(c)) {
        None => Ok(()),
        Some(at) => {
            let c = text.chars().nth(at).unwrap_or_default();
            Err(Error::invalid(
                field,
                format!(
                    "holds the control character U+{:04X} at character {}: remove it",
                    c as u32,
                    at + 1
                ),
            ))
        }
    }
}

/// Refuses free text (a report, an answer, a reason) longer than `max`
/// characters or holding control characters other than line breaks and
/// tabs. Refused rather than stripped: a farmer's front end should learn
/// that it sent terminal escapes or binary, and what is stored is exactly
/// what was sent.
pub(crate) fn check_free_text(field: &str, text: &str, max: usize) -> Result<()> {
    check_len(field, text, max)?;
    check_text_controls(field, text)
}

/// Refuses control characters other than line breaks and tabs.
pub(crate) fn check_text_controls(field: &str, text: &str) -> Result<()> {
    check_no_controls(field, text, |c| matches!(c, '\n' | '\r' | '\t'))
}

/// Default and largest page of a listing.
const PAGE_SIZE: (usize, usize) = (50, 500);

/// The page size a listing asked for: 0 means the default (50); more than
/// 500 is refused, naming `page_size`.
pub(crate) fn check_page_size(requested: u32) -> Result<usize> {
    let (default, max) = PAGE_SIZE;
    match requested as usize {
        0 => Ok(default),
        n if n > max => Err(Error::invalid(
            "page_size",
            format!("{n} is above the maximum of {max}"),
        )),
        n => Ok(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_a_short_escaped_prefix() {
        assert_eq!(quote("tk-1"), "\"tk-1\"");
        assert_eq!(quote("a\u{1b}]0;x\u{7}"), "\"a\\u{1b}]0;x\\u{7}\"");
        let long = quote(&"9".repeat(1 << 20));
        assert_eq!(long, format!("{:?}…", "9".repeat(32)));
    }

    #[test]
    fn ids_are_bounded_and_free_of_controls() {
        assert!(check_id("ticket_id", "tk-1", MAX_ID_BYTES).is_ok());
        let long = check_id("ticket_id", &"x".repeat(1 << 20), MAX_ID_BYTES).unwrap_err();
        assert!(long.to_string().len() < 100, "{long}");
        let esc = check_id("contact", "138\u{1b}[2J", 64).unwrap_err();
        assert_eq!(
            esc.to_string(),
            "contact: holds the control character U+001B at character 4: remove it"
        );
        assert!(check_free_text("text", "line\nline\ttab", 100).is_ok());
        assert!(check_free_text("text", "osc \u{1b}]0;t\u{7}", 100).is_err());
        assert!(check_free_text("text", "c1 \u{9b}31m", 100).is_err());
    }

    fn bad(line: u64, field: &str) -> RowError {
        RowError {
            line,
            field: field.into(),
            message: format!("bad {field}"),
        }
    }

    #[test]
    fn a_report_of_many_bad_rows_stays_bounded() {
        let errors: Vec<RowError> = (2..100_002)
            .map(|l| bad(l, if l % 10 == 0 { "phone" } else { "tier" }))
            .collect();
        let report = RowReport::of(errors);
        assert_eq!((report.total, report.rows), (100_000, 100_000));
        assert_eq!(report.first.len(), RowReport::MAX_ROWS);
        assert_eq!(report.first[0].line, 2);
        assert_eq!(
            report.summary,
            "the file was refused whole, nothing was changed: 100,000 problems in \
             100,000 rows (tier 90,000, phone 10,000); the first 100 are in the details"
        );
    }

    #[test]
    fn long_messages_are_clipped_and_the_text_is_bounded() {
        let errors: Vec<RowError> = (1..=100)
            .map(|l| RowError {
                line: l,
                field: "x".repeat(1000),
                message: "长".repeat(10_000),
            })
            .collect();
        let report = RowReport::of(errors);
        let text: usize = (report.first.iter())
            .map(|e| e.field.len() + e.message.len())
            .sum();
        assert!(text <= RowReport::MAX_TEXT, "{text}");
        assert!(report.first.len() < 100 && !report.first.is_empty());
        assert!(report.summary.len() < 400, "{}", report.summary);
    }

    #[test]
    fn a_small_report_keeps_every_row() {
        let report = RowReport::of(vec![bad(3, "phone"), bad(3, "tier"), bad(0, "")]);
        assert_eq!((report.total, report.rows, report.first.len()), (3, 2, 3));
        assert!(report.summary.ends_with(
            "3 problems in 2 rows (whole row 1, phone 1, tier 1); the details list them all"
        ));
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(999), "999");
    }
}
