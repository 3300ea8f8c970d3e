//! The one mapping of domain errors onto gRPC statuses. Bad rows travel as
//! `google.rpc.BadRequest` field violations, one per problem the bounded
//! [`RowReport`](crate::error::RowReport) kept, with a `google.rpc.ErrorInfo`
//! (reason `BAD_ROWS`) giving the totals, so a client can tell when there
//! are more than the details hold; storage and internal failures are logged
//! here, once, whichever call met them.

use tonic::Status;
use tonic_types::{ErrorDetails, StatusExt};

use crate::error::Error;

impl From<Error> for Status {
    fn from(error: Error) -> Status {
        match error {
            Error::InvalidArgument { field, message } => Status::with_error_details(
                tonic::Code::InvalidArgument,
                format!("{field}: {message}"),
                ErrorDetails::with_bad_request_violation(field, message),
            ),
            Error::InvalidRoster(report) => {
                let mut details = ErrorDetails::new();
                for e in &report.first {
                    let field = if e.field.is_empty() {
                        format!("line[{}]", e.line)
                    } else {
                        format!("line[{}].{}", e.line, e.field)
                    };
                    details.add_bad_request_violation(field, e.message.clone());
                }
                let totals = [
                    ("problems", report.total),
                    ("rows", report.rows),
                    ("shown", report.first.len() as u64),
                ];
                details.set_error_info(
                    "BAD_ROWS",
                    "xingweinong.v1",
                    (totals.iter())
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect::<std::collections::HashMap<_, _>>(),
                );
                Status::with_error_details(tonic::Code::InvalidArgument, report.summary, details)
            }
            Error::Unauthenticated(m) => Status::unauthenticated(m),
            Error::PermissionDenied(m) => Status::permission_denied(m),
            Error::NotFound(m) => Status::not_found(m),
            Error::ResourceExhausted(m) => Status::resource_exhausted(m),
            Error::FailedPrecondition(m) => Status::failed_precondition(m),
            Error::AlreadyExists(m) => Status::already_exists(m),
            Error::Unavailable(m) => Status::unavailable(m),
            Error::Storage(m) => {
                tracing::error!(cause = %m, "storage failure");
                Status::unavailable(format!("the server cannot use its data directory: {m}"))
            }
            Error::Internal(m) => {
                tracing::error!(cause = %m, "internal error");
                Status::internal(m)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roster::RowError;

    #[test]
    fn bad_rows_travel_as_field_violations() {
        let rows = vec![RowError {
            line: 3,
            field: "phone".into(),
            message: "not a phone number".into(),
        }];
        let status = Status::from(Error::invalid_roster(rows));
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        let bad = status.get_details_bad_request().unwrap();
        assert_eq!(bad.field_violations[0].field, "line[3].phone");
        assert_eq!(bad.field_violations[0].description, "not a phone number");
        let info = status.get_details_error_info().unwrap();
        assert_eq!(info.reason, "BAD_ROWS");
        assert_eq!(info.metadata["problems"], "1");
    }

    #[test]
    fn many_bad_rows_make_a_small_status() {
        let rows = (1..=100_000)
            .map(|line| RowError {
                line,
                field: "tier".into(),
                message: "省级 is not a tier; say city, county_town or village".into(),
            })
            .collect();
        let status = Status::from(Error::invalid_roster(rows));
        let bad = status.get_details_bad_request().unwrap();
        assert_eq!(bad.field_violations.len(), 100);
        assert_eq!(
            status.get_details_error_info().unwrap().metadata["problems"],
            "100000"
        );
        assert!(status.message().contains("100,000 problems"), "{status:?}");
        // Base64 details and a percent-encoded message fit in the 16 KiB
        // header list a default client accepts.
        let size = status.details().len() * 4 / 3 + status.message().len() * 3;
        assert!(size < 14 * 1024, "{size} bytes of trailers");
    }

    #[test]
    fn storage_failures_are_unavailable_and_name_the_data_directory() {
        let status = Status::from(Error::Storage("disk full".into()));
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert_eq!(
            status.message(),
            "the server cannot use its data directory: disk full"
        );
        let stopping = Status::from(Error::Unavailable("the server is stopping".into()));
        assert_eq!(stopping.code(), tonic::Code::Unavailable);
        assert_eq!(stopping.message(), "the server is stopping");
    }
}
