//! The domain error: what callers did wrong or what failed, independent of
//! the transport. The gRPC layer maps it onto status codes in one place.
//! Also [`blocking`], which runs domain work off the async workers.

use crate::roster::RowError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request field is missing or malformed.
    #[error("{field}: {message}")]
    InvalidArgument { field: String, message: String },
    /// A roster upload has bad rows; nothing was changed.
    #[error("{summary}")]
    InvalidRoster {
        summary: String,
        errors: Vec<RowError>,
    },
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

    /// An invalid roster, its summary naming the first few problems.
    pub(crate) fn invalid_roster(errors: Vec<RowError>) -> Error {
        let mut summary = format!("the roster was rejected whole: {} problem(s)", errors.len());
        for e in errors.iter().take(3) {
            summary.push_str(&format!("; line {} {}: {}", e.line, e.field, e.message));
        }
        if errors.len() > 3 {
            summary.push_str("; …");
        }
        Error::InvalidRoster { summary, errors }
    }
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
}
