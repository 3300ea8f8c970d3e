//! Entry points for the fuzz targets in `fuzz/` (hidden from the docs): the
//! HTTP layer exactly as the server stacks it ([`super::Http`] over the
//! status layer of `server/statuses.rs`), driven in process with a request's
//! bytes and no network. Behind them, instead of the real handlers, stand
//! routes that decode the request the way tonic's generated servers do
//! (tonic's framing and message size limit, prost's decoder through the
//! method's descriptor) and answer with an empty message, or with the
//! request's own message when asked to echo, so a target can check what
//! the handler would have received and what the client gets back.

/// The photo check for `fuzz/fuzz_targets/photo.rs` (the domain's own,
/// re-exported here where the targets find their entry points).
pub use crate::photos::clean::fuzz_one as photo;

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response};
use http_body::Frame;
use http_body_util::BodyExt;
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, MethodDescriptor};
use tonic::{
    body::Body,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
    Status,
};
use tower::{Layer, ServiceExt};

use super::{connect::Transcoder, stream, Http, HttpLayer};
use crate::server::statuses::{StatusLayer, Statuses};

pub use tonic::Code;

/// A request header asking the stand-in routes to answer with the request's
/// own message (the Connect transcoder would read it as the wrong type).
pub const ECHO: &str = "x-fuzz-echo";

/// Largest message the stand-in routes decode (the server's bound for all
/// but the roster service).
const MAX_MESSAGE_BYTES: usize = 8 << 20;

/// A refusal: the code the client gets and its message.
pub type Refusal = (Code, String);

/// What the stand-in route received: the method's path and its request
/// message as decoded, encoded again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub path: String,
    pub message: Vec<u8>,
}

/// What the server answered.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    /// The whole body, or the error that ended it.
    pub body: Result<Vec<u8>, String>,
    pub trailers: Option<HeaderMap>,
    /// The request as the handler would have had it, if it got that far.
    pub seen: Option<Seen>,
}

/// The layer and its stand-in routes, on a single-threaded runtime.
pub struct Harness {
    runtime: tokio::runtime::Runtime,
    http: Http<Statuses<Routes>>,
    transcoder: Arc<Transcoder>,
    seen: Arc<Mutex<Option<Seen>>>,
    paths: Vec<String>,
}

impl Harness {
    /// `max_body`: the Connect body limit.
    pub fn new(max_body: usize) -> Harness {
        let transcoder = Arc::new(Transcoder::new(max_body));
        let seen = Arc::new(Mutex::new(None));
        let routes = Routes {
            pool: transcoder.pool().clone(),
            seen: seen.clone(),
        };
        let statuses = StatusLayer::new(
            Some(Duration::from_secs(60)),
            Some(Duration::from_secs(60)),
            None,
        )
        .expect("the crate's descriptor set is valid")
        .layer(routes);
        let http = HttpLayer {
            transcoder: transcoder.clone(),
        }
        .layer(statuses);
        let mut paths = transcoder
            .pool()
            .services()
            .filter(|s| s.package_name() == "xingweinong.v1")
            .flat_map(|s| {
                let service = s.full_name().to_string();
                s.methods()
                    .map(move |m| format!("/{service}/{}", m.name()))
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>();
        paths.sort();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime");
        Harness {
            runtime,
            http,
            transcoder,
            seen,
            paths,
        }
    }

    /// The paths of every method of `xingweinong.v1`, sorted.
    pub fn paths(&self) -> &[String] {
        &self.paths
    }

    fn method(&self, path: &str) -> Option<MethodDescriptor> {
        self.transcoder.method(path).ok()
    }

    /// Whether the method at `path` streams (client, server).
    pub fn streams(&self, path: &str) -> Option<(bool, bool)> {
        self.method(path)
            .map(|m| (m.is_client_streaming(), m.is_server_streaming()))
    }

    /// The Connect transcoder's JSON → protobuf for the request message of
    /// the method at `path` (which must exist).
    pub fn json_to_proto(&self, path: &str, json: &[u8]) -> Result<Vec<u8>, Refusal> {
        let input = self.method(path).expect("a method").input();
        (self.transcoder.json_to_proto(&input, json))
            .map(|b| b.to_vec())
            .map_err(|e| (e.code, e.message))
    }

    /// The transcoder's protobuf → JSON, for the request message type of
    /// the method at `path`.
    pub fn proto_to_json(&self, path: &str, proto: &[u8]) -> Result<Vec<u8>, Refusal> {
        let input = self.method(path).expect("a method").input();
        (self.transcoder.proto_to_json(&input, proto)).map_err(|e| (e.code, e.message))
    }

    /// The payload of a Connect streaming request's one envelope.
    pub fn connect_envelope(&self, body: &[u8]) -> Result<Vec<u8>, Refusal> {
        stream::request_message(Bytes::copy_from_slice(body))
            .map(|b| b.to_vec())
            .map_err(|e| (e.code, e.message))
    }

    /// A POST to `path` with the given content type, extra headers and
    /// body, the body arriving in data frames of `chunk` bytes (at least 1).
    pub fn post(
        &self,
        path: &str,
        content_type: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        chunk: usize,
    ) -> Reply {
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = None;
        let frames = body
            .chunks(chunk.max(1))
            .map(|c| Ok::<_, Infallible>(Frame::data(Bytes::copy_from_slice(c))))
            .collect::<Vec<_>>();
        let body = Body::new(http_body_util::StreamBody::new(tokio_stream::iter(frames)));
        let mut request = Request::new(body);
        *request.method_mut() = Method::POST;
        if let Ok(uri) = path.parse() {
            *request.uri_mut() = uri;
        }
        if let Ok(value) = HeaderValue::from_str(content_type) {
            request
                .headers_mut()
                .insert(http::header::CONTENT_TYPE, value);
        }
        for (name, value) in headers {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                request.headers_mut().append(name, value);
            }
        }
        let http = self.http.clone();
        let (status, headers, body, trailers) = self.runtime.block_on(async move {
            let response = match http.oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            let (head, body) = response.into_parts();
            let (body, trailers) = match body.collect().await {
                Ok(collected) => {
                    let trailers = collected.trailers().cloned();
                    (Ok(collected.to_bytes().to_vec()), trailers)
                }
                Err(e) => (Err(e.to_string()), None),
            };
            (head.status.as_u16(), head.headers, body, trailers)
        });
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner()).take();
        Reply {
            status,
            headers,
            body,
            trailers,
            seen,
        }
    }
}

/// The stand-in for tonic's routes: every method of the pool, its request
/// decoded by tonic's unary server with prost's decoder.
#[derive(Clone)]
struct Routes {
    pool: DescriptorPool,
    seen: Arc<Mutex<Option<Seen>>>,
}

impl tower::Service<Request<Body>> for Routes {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let path = request.uri().path().to_string();
        let method = path
            .strip_prefix('/')
            .and_then(|p| p.split_once('/'))
            .and_then(|(s, m)| {
                let service = self.pool.get_service_by_name(s)?;
                let found = service.methods().find(|x| x.name() == m);
                found
            });
        let seen = self.seen.clone();
        Box::pin(async move {
            let Some(method) = method else {
                return Ok(Status::unimplemented(format!("no route {path:?}")).into_http());
            };
            let echo = request.headers().contains_key(ECHO);
            let mut grpc = tonic::server::Grpc::new(DynamicCodec(method.input()))
                .apply_max_message_size_config(Some(MAX_MESSAGE_BYTES), None);
            let output = method.output();
            let handler = tower::service_fn(move |call: tonic::Request<DynamicMessage>| {
                let request = call.into_inner();
                *seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(Seen {
                    path: path.clone(),
                    message: request.encode_to_vec(),
                });
                let reply = if echo {
                    request
                } else {
                    DynamicMessage::new(output.clone())
                };
                std::future::ready(Ok::<_, Status>(tonic::Response::new(reply)))
            });
            Ok(grpc.unary(handler, request).await)
        })
    }
}

/// Decodes requests as tonic-prost does (a decode error is INTERNAL with
/// prost's message), by descriptor.
struct DynamicCodec(MessageDescriptor);

impl Codec for DynamicCodec {
    type Encode = DynamicMessage;
    type Decode = DynamicMessage;
    type Encoder = DynamicEncoder;
    type Decoder = DynamicDecoder;

    fn encoder(&mut self) -> DynamicEncoder {
        DynamicEncoder
    }

    fn decoder(&mut self) -> DynamicDecoder {
        DynamicDecoder(self.0.clone())
    }
}

struct DynamicEncoder;

impl Encoder for DynamicEncoder {
    type Item = DynamicMessage;
    type Error = Status;

    fn encode(&mut self, item: DynamicMessage, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        (item.encode(dst)).map_err(|e| Status::internal(format!("cannot encode the reply: {e}")))
    }
}

struct DynamicDecoder(MessageDescriptor);

impl Decoder for DynamicDecoder {
    type Item = DynamicMessage;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<DynamicMessage>, Status> {
        DynamicMessage::decode(self.0.clone(), src)
            .map(Some)
            .map_err(|e| Status::internal(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MATCH: &str = "/xingweinong.v1.MatchService/MatchProblem";

    #[test]
    fn a_connect_call_reaches_the_route_as_protobuf() {
        let h = Harness::new(1 << 16);
        assert!(h.paths().iter().any(|p| p == MATCH));
        let json = r#"{"text":"苹果叶子发黄","location":{"divisionCode":"610502"}}"#.as_bytes();
        let reply = h.post(MATCH, "application/json", &[], json, 7);
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(reply.body.as_deref().unwrap(), b"{}");
        let seen = reply.seen.unwrap();
        assert_eq!(seen.message, h.json_to_proto(MATCH, json).unwrap());
        let bad = h.post(MATCH, "application/json", &[], br#"{"txt":1}"#, 64);
        assert_eq!(bad.status, 400);
        assert!(bad.seen.is_none());
    }

    #[test]
    fn a_grpc_web_call_echoes_through_tonic_web() {
        let h = Harness::new(1 << 16);
        let message = crate::pb::MatchProblemRequest {
            text: "苹果".into(),
            ..Default::default()
        }
        .encode_to_vec();
        let frame = super::super::connect::grpc_frame(&message);
        let reply = h.post(
            MATCH,
            "application/grpc-web+proto",
            &[(ECHO, "1")],
            &frame,
            3,
        );
        assert_eq!(reply.status, 200);
        let body = reply.body.unwrap();
        assert_eq!(&body[..frame.len()], &frame[..]);
        assert_eq!(body[frame.len()], 0x80, "then the trailers frame");
        assert_eq!(reply.seen.unwrap().message, message);
    }

    #[test]
    fn malformed_grpc_web_is_invalid_argument() {
        // Each of these was INTERNAL (tonic's and tonic-web's refusals)
        // before the status layer rewrote them; fuzz/grpc_web checks the rest.
        let h = Harness::new(1 << 16);
        let get = "/xingweinong.v1.TicketService/GetTicket";
        let cut = &super::super::connect::grpc_frame(b"\x0a\x04tk-1")[..6];
        for (content_type, body) in [
            ("application/grpc-web-text", &b"AAAA*AAA"[..]),
            ("application/grpc-web-text", b"AAAAAAU"),
            ("application/grpc-web", b""),
            ("application/grpc-web", cut),
            ("application/grpc-web", b"\x01\0\0\0\0"),
        ] {
            let reply = h.post(get, content_type, &[], body, 64);
            assert_eq!(reply.status, 200);
            let status = reply
                .headers
                .get("grpc-status")
                .map(|v| v.to_str().unwrap());
            assert_eq!(status, Some("3"), "{content_type} {body:?}: {reply:?}");
            assert!(reply.seen.is_none());
        }
    }
}
