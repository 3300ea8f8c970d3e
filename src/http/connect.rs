//! Connect unary calls in JSON, transcoded onto the gRPC routes: the JSON
//! body becomes the method's request message (proto3 JSON read through the
//! descriptors of `proto/`), framed as a gRPC message and handed to the same
//! in-process tonic service a gRPC client reaches, with the caller's headers
//! and connection info; the reply (or the status) comes back as JSON. No
//! method has code of its own here.

use std::{sync::Arc, time::Duration};

use bytes::{Buf, Bytes};
use http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, MethodDescriptor};
use tonic::{body::Body, Code, Status};

use super::{errors::ConnectError, Inner};
use crate::{
    pb,
    server::{
        audit::EarlyRefusals,
        limits::{peer_addr, peer_ip, Door},
        statuses::{whole_file, Progress, Watched},
    },
};

/// The package whose services Connect reaches (not health or reflection).
const PACKAGE: &str = "xingweinong.v1";

/// The descriptors of `proto/` and of the `google.rpc` error details.
pub(crate) fn descriptor_pool() -> DescriptorPool {
    // The global pool holds the well-known types both sets import.
    let mut pool = DescriptorPool::global();
    pool.decode_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .expect("the crate's descriptor set is valid");
    pool.decode_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
        .expect("tonic-types' descriptor set is valid");
    pool
}

/// Turns JSON into request messages and replies into JSON, by descriptor.
pub(crate) struct Transcoder {
    pool: DescriptorPool,
    /// Largest request body read.
    max_body: usize,
    /// The admission rules a body is read under (none in unit tests).
    door: Option<Arc<Door>>,
    /// Where a whole-file import refused while its body is read is
    /// audited (none in unit tests).
    early: Option<Arc<EarlyRefusals>>,
}

impl Transcoder {
    pub(crate) fn new(max_body: usize) -> Transcoder {
        Transcoder {
            pool: descriptor_pool(),
            max_body,
            door: None,
            early: None,
        }
    }

    /// Audits through `early` the whole-file imports refused while read.
    pub(crate) fn with_early(mut self, early: Arc<EarlyRefusals>) -> Transcoder {
        self.early = Some(early);
        self
    }

    /// Reads request bodies under the admission rules of `door`.
    pub(crate) fn with_door(mut self, door: Arc<Door>) -> Transcoder {
        self.door = Some(door);
        self
    }

    pub(crate) fn pool(&self) -> &DescriptorPool {
        &self.pool
    }

    /// The method of a `/xingweinong.v1.<Service>/<Method>` path.
    pub(crate) fn method(&self, path: &str) -> Result<MethodDescriptor, ConnectError> {
        let (service, method) = path
            .strip_prefix('/')
            .and_then(|p| p.split_once('/'))
            .ok_or_else(|| ConnectError::no_such_method(path))?;
        let in_package = service
            .rsplit_once('.')
            .is_some_and(|(package, _)| package == PACKAGE);
        if !in_package {
            return Err(ConnectError::no_such_method(path));
        }
        self.pool
            .get_service_by_name(service)
            .and_then(|s| s.methods().find(|m| m.name() == method))
            .ok_or_else(|| ConnectError::no_such_method(path))
    }

    /// Reads a JSON message of type `message` and encodes it as protobuf.
    /// Field names may be lowerCamelCase or as in the proto file; unknown
    /// fields are errors, so typos do not pass silently.
    pub(crate) fn json_to_proto(
        &self,
        message: &MessageDescriptor,
        json: &[u8],
    ) -> Result<Bytes, ConnectError> {
        let json: &[u8] = if json.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            json
        };
        let bad = |e: serde_json::Error| {
            ConnectError::new(
                Code::InvalidArgument,
                format!(
                    "the body is not a {} in JSON: {}",
                    message.name(),
                    json_problem(&e)
                ),
            )
        };
        let mut reader = serde_json::Deserializer::from_slice(json);
        let decoded = DynamicMessage::deserialize(message.clone(), &mut reader).map_err(bad)?;
        reader.end().map_err(bad)?;
        Ok(decoded.encode_to_vec().into())
    }

    /// Decodes a protobuf reply of type `message` into canonical proto3
    /// JSON (lowerCamelCase names, enums by name, defaults left out).
    pub(crate) fn proto_to_json(
        &self,
        message: &MessageDescriptor,
        proto: &[u8],
    ) -> Result<Vec<u8>, ConnectError> {
        let decoded = DynamicMessage::decode(message.clone(), proto).map_err(|e| {
            ConnectError::new(Code::Internal, format!("cannot decode the reply: {e}"))
        })?;
        serde_json::to_vec(&decoded)
            .map_err(|e| ConnectError::new(Code::Internal, format!("cannot write the reply: {e}")))
    }

    /// Reads a request body of at most `max_body` bytes.
    pub(crate) async fn read_body(&self, body: Body) -> Result<Bytes, ConnectError> {
        match http_body_util::Limited::new(body, self.max_body)
            .collect()
            .await
        {
            Ok(collected) => Ok(collected.to_bytes()),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ConnectError::new(
                Code::ResourceExhausted,
                format!("the request body is larger than {} bytes", self.max_body),
            )),
            Err(e) => Err(ConnectError::new(
                Code::Cancelled,
                format!("cannot read the request body: {e}"),
            )),
        }
    }
}

impl Transcoder {
    /// Reads the body of a Connect call of `method` as the gRPC route
    /// counts a call: holding its caller's place under the admission
    /// limits while it reads (the route counts the call again from its own
    /// arrival), and within `limits.body_timeout_ms` (a whole-file upload:
    /// `request_timeout_ms`), past which it is refused with
    /// DEADLINE_EXCEEDED and logged, so a body that stalls holds nothing
    /// for long.
    pub(crate) async fn read_request(
        &self,
        parts: &http::request::Parts,
        method: &MethodDescriptor,
        body: Body,
    ) -> Result<Bytes, ConnectError> {
        let Some(door) = &self.door else {
            return self.read_body(body).await;
        };
        let peer = peer_ip(&parts.extensions);
        let entry = (door.enter(parts.uri.path(), &parts.headers, peer))
            .map_err(|refused| ConnectError::from_status(&refused))?;
        let caller = entry.as_ref().map(|(caller, _)| caller);
        // A whole-file import refused here is refused before its handler
        // ran: audited as the gRPC route audits it ([`EarlyRefusals`]).
        let import = (self.early.as_ref()).zip(EarlyRefusals::action(parts.uri.path()));
        let progress = Arc::new(Progress::default());
        let body = match import {
            Some(_) => Body::new(Watched::new(body, progress.clone())),
            None => body,
        };
        let read = match door.body_deadline(whole_file(method.input().full_name())) {
            None => self.read_body(body).await,
            Some(limit) => match tokio::time::timeout(limit, self.read_body(body)).await {
                Ok(read) => read,
                Err(_) => Err(ConnectError::from_status(
                    &door.body_timed_out(caller, limit),
                )),
            },
        };
        match (read, import) {
            (Err(e), Some((early, action)))
                if matches!(e.code, Code::ResourceExhausted | Code::DeadlineExceeded) =>
            {
                let refusal = Status::new(e.code, e.message);
                let status = early.refused(
                    action,
                    &parts.headers,
                    peer_addr(&parts.extensions),
                    caller,
                    progress.bytes(),
                    refusal,
                );
                Err(ConnectError::from_status(&status))
            }
            (read, _) => read,
        }
    }
}

/// Longest account of a JSON problem, in characters: serde's messages quote
/// the input (an unknown field's name, a bad value), which may be huge.
const JSON_PROBLEM_CHARS: usize = 160;

/// serde's account of a JSON problem, cut to [`JSON_PROBLEM_CHARS`] (its
/// line and column kept).
fn json_problem(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let place = format!(" at line {} column {}", e.line(), e.column());
    let what = text.strip_suffix(&place).unwrap_or(&text);
    let what = match what.char_indices().nth(JSON_PROBLEM_CHARS) {
        Some((cut, _)) => format!("{}…", &what[..cut]),
        None => what.to_string(),
    };
    if text.ends_with(&place) {
        format!("{what}{place}")
    } else {
        what
    }
}

/// The `connect-timeout-ms` deadline of a call (at most 10 digits).
pub(crate) fn timeout(headers: &HeaderMap) -> Result<Option<Duration>, ConnectError> {
    let Some(value) = headers.get("connect-timeout-ms") else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .filter(|v| !v.is_empty() && v.len() <= 10 && v.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|v| v.parse().ok())
        .map(|ms| Some(Duration::from_millis(ms)))
        .ok_or_else(|| {
            ConnectError::new(
                Code::InvalidArgument,
                "connect-timeout-ms must be a number of milliseconds (at most 10 digits)",
            )
        })
}

/// One length-prefixed gRPC message (uncompressed).
pub(crate) fn grpc_frame(message: &[u8]) -> Bytes {
    let mut frame = Vec::with_capacity(message.len() + 5);
    frame.push(0);
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(message);
    frame.into()
}

/// Takes one whole gRPC message off the front of `buffer`, if there is one.
pub(crate) fn take_grpc_message(
    buffer: &mut bytes::BytesMut,
) -> Result<Option<Bytes>, ConnectError> {
    if buffer.len() < 5 {
        return Ok(None);
    }
    if buffer[0] != 0 {
        return Err(ConnectError::new(
            Code::Internal,
            "the reply is compressed, which the transcoder did not ask for",
        ));
    }
    let len = u32::from_be_bytes([buffer[1], buffer[2], buffer[3], buffer[4]]) as usize;
    if buffer.len() < 5 + len {
        return Ok(None);
    }
    buffer.advance(5);
    Ok(Some(buffer.split_to(len).freeze()))
}

/// Headers of the caller that the gRPC call does not get: the HTTP
/// framing, the Connect protocol's own and any gRPC ones a caller sent.
fn dropped(name: &header::HeaderName) -> bool {
    matches!(
        name.as_str(),
        "content-type"
            | "content-length"
            | "content-encoding"
            | "accept-encoding"
            | "transfer-encoding"
            | "connection"
            | "keep-alive"
            | "upgrade"
            | "te"
    ) || name.as_str().starts_with("connect-")
        || name.as_str().starts_with("grpc-")
}

/// The in-process gRPC request for `message`: the caller's headers
/// (authorization, forwarding) and extensions (its connection info, so the
/// handler sees the real peer), the deadline as `grpc-timeout`.
pub(crate) fn grpc_request(
    parts: &http::request::Parts,
    message: &[u8],
    timeout: Option<Duration>,
) -> Request<Body> {
    let mut request = Request::new(Body::new(http_body_util::Full::new(grpc_frame(message))));
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() = parts.uri.clone();
    *request.version_mut() = http::Version::HTTP_2;
    *request.extensions_mut() = parts.extensions.clone();
    let headers = request.headers_mut();
    for (name, value) in &parts.headers {
        if !dropped(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert(header::TE, HeaderValue::from_static("trailers"));
    if let Some(timeout) = timeout {
        // grpc-timeout takes at most 8 digits.
        let ms = timeout.as_millis().min(99_999_999);
        if let Ok(value) = HeaderValue::from_str(&format!("{ms}m")) {
            headers.insert("grpc-timeout", value);
        }
    }
    request
}

/// Calls the inner service, readying it first.
pub(crate) async fn call<S: Inner>(inner: S, request: Request<Body>) -> Response<Body> {
    use tower::ServiceExt;
    match inner.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

fn expired() -> ConnectError {
    ConnectError::new(
        Code::DeadlineExceeded,
        "the call did not finish within connect-timeout-ms",
    )
}

/// Runs `work` within the call's deadline, if it has one.
pub(crate) async fn within<T>(
    timeout: Option<Duration>,
    work: impl std::future::Future<Output = Result<T, ConnectError>>,
) -> Result<T, ConnectError> {
    match timeout {
        Some(timeout) => tokio::time::timeout(timeout, work)
            .await
            .unwrap_or_else(|_| Err(expired())),
        None => work.await,
    }
}

/// A Connect unary call: JSON in, the gRPC route, JSON (or a Connect
/// error) out.
pub(crate) async fn unary<S: Inner>(
    inner: S,
    transcoder: Arc<Transcoder>,
    request: Request<Body>,
) -> Response<Body> {
    match call_unary(inner, &transcoder, request).await {
        Ok(json) => {
            let mut response =
                Response::new(Body::new(http_body_util::Full::new(Bytes::from(json))));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        Err(error) => error.into_response(transcoder.pool()),
    }
}

async fn call_unary<S: Inner>(
    inner: S,
    transcoder: &Transcoder,
    request: Request<Body>,
) -> Result<Vec<u8>, ConnectError> {
    let (parts, body) = request.into_parts();
    let method = transcoder.method(parts.uri.path())?;
    if method.is_client_streaming() || method.is_server_streaming() {
        return Err(ConnectError::unsupported_media(format!(
            "{} is a stream: send application/connect+json (server streams) or use gRPC (client streams)",
            method.name()
        )));
    }
    let timeout = timeout(&parts.headers)?;
    within(timeout, async {
        let json = transcoder.read_request(&parts, &method, body).await?;
        let message = transcoder.json_to_proto(&method.input(), &json)?;
        let response = call(inner, grpc_request(&parts, &message, timeout)).await;
        let reply = unary_reply(response).await?;
        transcoder.proto_to_json(&method.output(), &reply)
    })
    .await
}

/// The one message of a unary gRPC response, or its status as an error.
pub(crate) async fn unary_reply(response: Response<Body>) -> Result<Bytes, ConnectError> {
    let (head, body) = response.into_parts();
    if head.status != StatusCode::OK {
        return Err(ConnectError::new(
            Code::Internal,
            format!("the gRPC route answered HTTP {}", head.status),
        ));
    }
    // A trailers-only response: the status is in the headers.
    if let Some(status) = Status::from_header_map(&head.headers) {
        if status.code() != Code::Ok {
            return Err(ConnectError::from_status(&status));
        }
    }
    let collected = body
        .collect()
        .await
        .map_err(|e| ConnectError::new(Code::Internal, format!("cannot read the reply: {e}")))?;
    if let Some(status) = collected.trailers().and_then(Status::from_header_map) {
        if status.code() != Code::Ok {
            return Err(ConnectError::from_status(&status));
        }
    }
    let mut data = bytes::BytesMut::from(collected.to_bytes());
    take_grpc_message(&mut data)?
        .ok_or_else(|| ConnectError::new(Code::Internal, "the reply has no message"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transcoder() -> Transcoder {
        Transcoder::new(1 << 20)
    }

    #[test]
    fn json_reads_camel_case_and_proto_names_and_enum_names() {
        let t = transcoder();
        let method = t
            .method("/xingweinong.v1.MatchService/MatchProblem")
            .unwrap();
        let input = method.input();
        let camel =
            br#"{"text":"x","location":{"divisionCode":"610502"},"ranking":"RANKING_BEST_MATCH"}"#;
        let proto =
            br#"{"text":"x","location":{"division_code":"610502"},"ranking":"RANKING_BEST_MATCH"}"#;
        let a = t.json_to_proto(&input, camel).unwrap();
        let b = t.json_to_proto(&input, proto).unwrap();
        assert_eq!(a, b);
        let request = pb::MatchProblemRequest::decode(a).unwrap();
        assert_eq!(request.text, "x");
        assert_ne!(request.ranking, 0);
        let back = t.proto_to_json(&input, &request.encode_to_vec()).unwrap();
        let back: serde_json::Value = serde_json::from_slice(&back).unwrap();
        assert_eq!(back["location"]["divisionCode"], "610502");
        assert_eq!(back["ranking"], "RANKING_BEST_MATCH");
    }

    #[test]
    fn bad_json_names_the_problem() {
        let t = transcoder();
        let input = t
            .method("/xingweinong.v1.MatchService/MatchProblem")
            .unwrap()
            .input();
        let unknown = t.json_to_proto(&input, br#"{"txt":"x"}"#).unwrap_err();
        assert_eq!(unknown.code, Code::InvalidArgument);
        assert!(unknown.message.contains("txt"), "{}", unknown.message);
        let huge = format!(r#"{{"{}":1}}"#, "x".repeat(1 << 20));
        let huge = t.json_to_proto(&input, huge.as_bytes()).unwrap_err();
        assert_eq!(huge.code, Code::InvalidArgument);
        assert!(huge.message.len() < 400, "{} bytes", huge.message.len());
        assert!(huge.message.contains("…"), "{}", huge.message);
        let value = format!(r#"{{"ranking":"{}"}}"#, "R".repeat(1 << 20));
        let value = t.json_to_proto(&input, value.as_bytes()).unwrap_err();
        assert!(value.message.len() < 400, "{} bytes", value.message.len());
        let broken = t.json_to_proto(&input, br#"{"text":"#).unwrap_err();
        assert!(
            broken.message.contains("line 1 column"),
            "{}",
            broken.message
        );
        assert_eq!(broken.code, Code::InvalidArgument);
        assert!(
            t.json_to_proto(&input, b"").is_ok(),
            "an empty body is {{}}"
        );
    }

    #[test]
    fn only_the_package_methods_are_reachable() {
        let t = transcoder();
        assert!(t.method("/xingweinong.v1.TicketService/GetTicket").is_ok());
        for path in [
            "/xingweinong.v1.TicketService/Nope",
            "/grpc.health.v1.Health/Check",
            "/google.rpc.Status/x",
            "/",
            "/xingweinong.v1.TicketService",
        ] {
            let e = t.method(path).unwrap_err();
            assert_eq!(e.http_status(), StatusCode::NOT_FOUND, "{path}");
        }
    }

    #[test]
    fn timeouts_are_milliseconds_of_at_most_ten_digits() {
        let mut h = HeaderMap::new();
        assert_eq!(timeout(&h).unwrap(), None);
        h.insert("connect-timeout-ms", HeaderValue::from_static("1500"));
        assert_eq!(timeout(&h).unwrap(), Some(Duration::from_millis(1500)));
        h.insert(
            "connect-timeout-ms",
            HeaderValue::from_static("12345678901"),
        );
        assert!(timeout(&h).is_err());
        h.insert("connect-timeout-ms", HeaderValue::from_static("-1"));
        assert!(timeout(&h).is_err());
    }

    #[test]
    fn frames_round_trip() {
        let mut buffer = bytes::BytesMut::from(&grpc_frame(b"abc")[..]);
        buffer.extend_from_slice(&grpc_frame(b"de")[..3]);
        assert_eq!(take_grpc_message(&mut buffer).unwrap().unwrap(), "abc");
        assert_eq!(take_grpc_message(&mut buffer).unwrap(), None);
    }
}
