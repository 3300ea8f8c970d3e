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
    let n = text.chars().count();
    if n > max {
        return Err(Error::invalid(
            field,
            format!("is {n} characters long; the limit is {max}"),
        ));
    }
    Ok(())
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
