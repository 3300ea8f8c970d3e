//! Connect errors: the code names and HTTP statuses of the Connect protocol,
//! and the JSON error body built from a gRPC status, its details
//! (`google.rpc.BadRequest` field violations and the rest) carried both as
//! base64 protobuf and as readable `debug` JSON.

use base64::Engine;
use http::{header, HeaderValue, StatusCode};
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage};
use tonic::Code;

/// An error on its way to a Connect client.
#[derive(Debug, Clone)]
pub(crate) struct ConnectError {
    pub(crate) code: Code,
    pub(crate) message: String,
    /// Encoded `google.protobuf.Any` details, as gRPC carried them.
    details: Vec<prost_types::Any>,
    /// An HTTP status other than the code's (404 for an unknown method, 415
    /// for a content type the protocol does not speak).
    http: Option<StatusCode>,
}

impl ConnectError {
    pub(crate) fn new(code: Code, message: impl Into<String>) -> ConnectError {
        ConnectError {
            code,
            message: message.into(),
            details: Vec::new(),
            http: None,
        }
    }

    /// An unknown service or method: 404, as a plain HTTP server would say.
    pub(crate) fn no_such_method(path: &str) -> ConnectError {
        ConnectError {
            http: Some(StatusCode::NOT_FOUND),
            ..ConnectError::new(Code::Unimplemented, format!("no method {path}"))
        }
    }

    /// A content type this server does not speak on an RPC path: 415.
    pub(crate) fn unsupported_media(message: impl Into<String>) -> ConnectError {
        ConnectError {
            http: Some(StatusCode::UNSUPPORTED_MEDIA_TYPE),
            ..ConnectError::new(Code::Unimplemented, message)
        }
    }

    /// The error of a gRPC status (the same one a gRPC client would get).
    pub(crate) fn from_status(status: &tonic::Status) -> ConnectError {
        let details = if status.details().is_empty() {
            Vec::new()
        } else {
            tonic_types::pb::Status::decode(status.details())
                .map(|s| s.details)
                .unwrap_or_default()
        };
        ConnectError {
            code: status.code(),
            message: status.message().to_string(),
            details,
            http: None,
        }
    }

    /// The HTTP status of a unary error.
    pub(crate) fn http_status(&self) -> StatusCode {
        self.http.unwrap_or_else(|| http_status(self.code))
    }

    /// The Connect error object: `{"code", "message", "details": [{"type",
    /// "value", "debug"}]}`.
    pub(crate) fn to_json(&self, pool: &DescriptorPool) -> serde_json::Value {
        let mut error = serde_json::Map::new();
        error.insert("code".into(), code_name(self.code).into());
        if !self.message.is_empty() {
            error.insert("message".into(), self.message.clone().into());
        }
        if !self.details.is_empty() {
            let details = self
                .details
                .iter()
                .map(|any| detail_json(any, pool))
                .collect::<Vec<_>>();
            error.insert("details".into(), details.into());
        }
        error.into()
    }

    /// The unary error response: the code's HTTP status and the JSON body.
    pub(crate) fn into_response(self, pool: &DescriptorPool) -> http::Response<tonic::body::Body> {
        let body = serde_json::to_vec(&self.to_json(pool)).unwrap_or_default();
        let mut response = http::Response::new(tonic::body::Body::new(http_body_util::Full::new(
            bytes::Bytes::from(body),
        )));
        *response.status_mut() = self.http_status();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if self.http == Some(StatusCode::UNSUPPORTED_MEDIA_TYPE) {
            response.headers_mut().insert(
                "accept-post",
                HeaderValue::from_static("application/json, application/connect+json"),
            );
        }
        response
    }
}

/// One detail: its type name, its protobuf bytes in base64 and, when the
/// type is known (the `google.rpc` details), the same as JSON.
fn detail_json(any: &prost_types::Any, pool: &DescriptorPool) -> serde_json::Value {
    let name = any.type_url.rsplit('/').next().unwrap_or_default();
    let mut detail = serde_json::Map::new();
    detail.insert("type".into(), name.into());
    detail.insert(
        "value".into(),
        base64::engine::general_purpose::STANDARD_NO_PAD
            .encode(&any.value)
            .into(),
    );
    let debug = pool
        .get_message_by_name(name)
        .and_then(|d| DynamicMessage::decode(d, any.value.as_slice()).ok())
        .and_then(|m| serde_json::to_value(&m).ok());
    if let Some(debug) = debug {
        detail.insert("debug".into(), debug);
    }
    detail.into()
}

/// The Connect name of a code.
pub(crate) fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "ok",
        Code::Cancelled => "canceled",
        Code::Unknown => "unknown",
        Code::InvalidArgument => "invalid_argument",
        Code::DeadlineExceeded => "deadline_exceeded",
        Code::NotFound => "not_found",
        Code::AlreadyExists => "already_exists",
        Code::PermissionDenied => "permission_denied",
        Code::ResourceExhausted => "resource_exhausted",
        Code::FailedPrecondition => "failed_precondition",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out_of_range",
        Code::Unimplemented => "unimplemented",
        Code::Internal => "internal",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data_loss",
        Code::Unauthenticated => "unauthenticated",
    }
}

/// The HTTP status the Connect protocol gives each code.
pub(crate) fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            StatusCode::BAD_REQUEST
        }
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        // 499 Client Closed Request has no constant.
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_types::{ErrorDetails, StatusExt};

    #[test]
    fn codes_map_to_the_protocol_statuses() {
        let cases = [
            (Code::InvalidArgument, 400, "invalid_argument"),
            (Code::FailedPrecondition, 400, "failed_precondition"),
            (Code::OutOfRange, 400, "out_of_range"),
            (Code::Unauthenticated, 401, "unauthenticated"),
            (Code::PermissionDenied, 403, "permission_denied"),
            (Code::NotFound, 404, "not_found"),
            (Code::AlreadyExists, 409, "already_exists"),
            (Code::Aborted, 409, "aborted"),
            (Code::ResourceExhausted, 429, "resource_exhausted"),
            (Code::Cancelled, 499, "canceled"),
            (Code::Internal, 500, "internal"),
            (Code::Unknown, 500, "unknown"),
            (Code::DataLoss, 500, "data_loss"),
            (Code::Unimplemented, 501, "unimplemented"),
            (Code::Unavailable, 503, "unavailable"),
            (Code::DeadlineExceeded, 504, "deadline_exceeded"),
        ];
        for (code, status, name) in cases {
            assert_eq!(http_status(code).as_u16(), status, "{code:?}");
            assert_eq!(code_name(code), name);
        }
    }

    #[test]
    fn field_violations_stay_readable() {
        let status = tonic::Status::with_error_details(
            Code::InvalidArgument,
            "text: must not be empty",
            ErrorDetails::with_bad_request_violation("text", "must not be empty"),
        );
        let error = ConnectError::from_status(&status);
        let json = error.to_json(&super::super::connect::descriptor_pool());
        assert_eq!(json["code"], "invalid_argument");
        assert_eq!(json["message"], "text: must not be empty");
        let detail = &json["details"][0];
        assert_eq!(detail["type"], "google.rpc.BadRequest");
        assert_eq!(detail["debug"]["fieldViolations"][0]["field"], "text");
        let value = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(detail["value"].as_str().unwrap())
            .unwrap();
        let bad = tonic_types::pb::BadRequest::decode(value.as_slice()).unwrap();
        assert_eq!(bad.field_violations[0].description, "must not be empty");
        assert_eq!(error.http_status(), StatusCode::BAD_REQUEST);
    }
}
