//! The statuses the transport itself answers, made to say what happened:
//! tonic's codec calls a request it cannot decode INTERNAL and one over the
//! message size limit OUT_OF_RANGE, and its server timeout CANCELLED. This
//! layer (inside the admission layer, so Connect JSON and gRPC-Web see the
//! same codes) bounds each call by the request timeout itself, answering
//! DEADLINE_EXCEEDED, gives a unary call's request body a shorter deadline
//! of its own (`limits.body_timeout_ms`: a call whose one message has not
//! arrived whole by then is refused with DEADLINE_EXCEEDED, and its place
//! under the admission limits freed), and rewrites a refusal that tonic made before any
//! handler ran: an undecodable request becomes INVALID_ARGUMENT naming the
//! message type, an oversized one RESOURCE_EXHAUSTED naming the limit.
//! Such refusals come back "trailers-only" (the status in the response
//! headers); a reply already under way is never touched.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    task::{Context, Poll},
    time::Duration,
};

use bytes::{Buf, Bytes};

use http_body::Body as _;
use tonic::{codegen::http, Code, Status};

use super::{
    audit::EarlyRefusals,
    limits::{body_timed_out, caller::Caller, peer_addr, Door},
};

/// How prost's decode errors begin (tonic-prost puts them in an INTERNAL
/// status as they are).
const DECODE_ERROR: &str = "failed to decode Protobuf message";
/// How tonic's framing refuses a frame whose compression flag is neither
/// 0 nor 1: a malformed request as well.
const BAD_FRAME: &str = "protocol error: received message with invalid compression flag";

/// How tonic refuses a frame flagged compressed when the call names no
/// grpc-encoding (INTERNAL by the gRPC spec; a malformed request to us).
const COMPRESSED_UNNAMED: &str =
    "protocol error: received message with compressed-flag but no grpc-encoding was specified";
/// How tonic refuses a unary call whose body holds no message at all.
const NO_MESSAGE: &str = "Missing request message.";
/// How tonic refuses a body that ends inside a frame.
const CUT_FRAME: &str = "Unexpected EOF decoding stream.";
/// How tonic-web refuses a grpc-web-text body that is not base64: its own
/// words, or the base64 decoder's (`Invalid symbol…`, `Invalid padding`…),
/// behind its prefix.
const BAD_BASE64: [&str; 2] = ["tonic-web: malformed base64", "tonic-web: Invalid "];

/// What a transport refusal of a call on `path` should have said, if it
/// said something else: `None` leaves `status` as it is. Our own code never
/// answers OUT_OF_RANGE, so that code alone marks the size limit; INTERNAL
/// is rewritten only for the decode, framing and base64 errors above.
pub(crate) fn rewrite(status: &Status, input: Option<&str>) -> Option<Status> {
    let message = status.message();
    match status.code() {
        Code::OutOfRange => Some(Status::resource_exhausted(oversized(message))),
        Code::Internal if message.starts_with(DECODE_ERROR) => {
            let cause = message[DECODE_ERROR.len()..].trim_start_matches(':').trim();
            let what = input.unwrap_or("request message");
            Some(Status::invalid_argument(format!(
                "the request is not a valid {what} protobuf: {cause}"
            )))
        }
        Code::Internal if message.starts_with(BAD_FRAME) || message == COMPRESSED_UNNAMED => {
            Some(Status::invalid_argument(format!(
                "the request is not a valid gRPC frame: {message}"
            )))
        }
        Code::Internal if message == NO_MESSAGE => {
            let what = input.unwrap_or("request message");
            Some(Status::invalid_argument(format!(
                "the request holds no message: send one {what}"
            )))
        }
        Code::Internal if message == CUT_FRAME => Some(Status::invalid_argument(
            "the request ends inside a gRPC frame: its length prefix announces more bytes than were sent",
        )),
        Code::Internal if BAD_BASE64.iter().any(|p| message.starts_with(p)) => {
            let cause = message.trim_start_matches("tonic-web: ");
            Some(Status::invalid_argument(format!(
                "the request is not valid grpc-web-text (base64): {cause}"
            )))
        }
        _ => None,
    }
}

/// The size refusal, naming the limit: tonic says "…found N bytes, the
/// limit is: M bytes".
fn oversized(message: &str) -> String {
    let number_after = |prefix: &str| -> Option<u64> {
        let rest = &message[message.find(prefix)? + prefix.len()..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    };
    match (number_after("found "), number_after("the limit is: ")) {
        (Some(found), Some(limit)) => format!(
            "the request message is {found} bytes, over this method's limit of {limit} bytes per message"
        ),
        _ => format!("the request message is over this method's size limit ({message})"),
    }
}

/// Whether `input` (a request message's full name) is the whole-file
/// uploads' (up to `max_upload_bytes` in one message) or a photo's (up to
/// `photos.max_bytes`): they keep the request timeout, not the body
/// timeout.
pub(crate) fn whole_file(input: &str) -> bool {
    matches!(
        input,
        "xingweinong.v1.RosterFile" | "xingweinong.v1.UploadPhotoRequest"
    )
}

/// The layer: the request timeout, the body timeout of unary calls, and
/// [`rewrite`] of transport refusals.
#[derive(Clone)]
pub(crate) struct StatusLayer {
    timeout: Option<Duration>,
    body_timeout: Option<Duration>,
    /// Where body-timeout refusals are logged, with the caller.
    door: Option<Arc<Door>>,
    /// Where whole-file imports refused before their handler ran are
    /// audited (none in unit tests).
    early: Option<Arc<EarlyRefusals>>,
}

impl StatusLayer {
    /// Calls end after `timeout`, and a unary call whose request has not
    /// arrived whole after `body_timeout` (none: no bound of the server's
    /// own), logging that through `door`.
    pub(crate) fn new(
        timeout: Option<Duration>,
        body_timeout: Option<Duration>,
        door: Option<Arc<Door>>,
    ) -> anyhow::Result<StatusLayer> {
        Ok(StatusLayer {
            timeout,
            body_timeout,
            door,
            early: None,
        })
    }

    /// Audits through `early` the whole-file imports refused here.
    pub(crate) fn with_early(mut self, early: Arc<EarlyRefusals>) -> StatusLayer {
        self.early = Some(early);
        self
    }
}

/// How much of a request body has come: its bytes, and whether its first
/// gRPC message has arrived whole (or the body has ended).
#[derive(Default)]
pub(crate) struct Progress {
    arrived: AtomicBool,
    bytes: AtomicU64,
}

impl Progress {
    fn arrived(&self) -> bool {
        self.arrived.load(Ordering::Acquire)
    }

    /// The body's bytes read so far.
    pub(crate) fn bytes(&self) -> usize {
        usize::try_from(self.bytes.load(Ordering::Acquire)).unwrap_or(usize::MAX)
    }
}

/// A request body that counts its bytes into its [`Progress`] and raises
/// its flag once the first gRPC message has arrived whole (its 5-byte
/// prefix and the length the prefix announces), or the body has ended.
pub(crate) struct Watched<B> {
    inner: B,
    progress: Arc<Progress>,
    prefix: [u8; 5],
    /// Bytes of the body seen so far.
    seen: u64,
}

impl<B> Watched<B> {
    pub(crate) fn new(inner: B, progress: Arc<Progress>) -> Watched<B> {
        Watched {
            inner,
            progress,
            prefix: [0; 5],
            seen: 0,
        }
    }

    /// Notes `len` more bytes, of which `head` are the first (at least as
    /// many as the prefix still needs, when there are as many).
    fn saw(&mut self, head: &[u8], len: usize) {
        self.progress.bytes.fetch_add(len as u64, Ordering::AcqRel);
        if self.progress.arrived() {
            return;
        }
        let mut rest = len as u64;
        for &b in head {
            if self.seen >= 5 || rest == 0 {
                break;
            }
            self.prefix[self.seen as usize] = b;
            self.seen += 1;
            rest -= 1;
        }
        self.seen += rest;
        if self.seen >= 5 {
            let announced = u32::from_be_bytes([
                self.prefix[1],
                self.prefix[2],
                self.prefix[3],
                self.prefix[4],
            ]);
            if self.seen - 5 >= u64::from(announced) {
                self.progress.arrived.store(true, Ordering::Release);
            }
        }
    }
}

impl<B> http_body::Body for Watched<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => match frame.data_ref() {
                Some(data) => {
                    let chunk = data.chunk();
                    let mut head = [0; 5];
                    let n = chunk.len().min(5);
                    head[..n].copy_from_slice(&chunk[..n]);
                    let len = data.remaining();
                    self.saw(&head[..n], len);
                }
                // Trailers: the body is over.
                None => self.progress.arrived.store(true, Ordering::Release),
            },
            Poll::Ready(None) => self.progress.arrived.store(true, Ordering::Release),
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl<S> tower::Layer<S> for StatusLayer {
    type Service = Statuses<S>;

    fn layer(&self, inner: S) -> Statuses<S> {
        Statuses {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub(crate) struct Statuses<S> {
    inner: S,
    layer: StatusLayer,
}

type ResponseFuture<E> =
    Pin<Box<dyn Future<Output = Result<http::Response<tonic::body::Body>, E>> + Send>>;

impl<S> tower::Service<http::Request<tonic::body::Body>> for Statuses<S>
where
    S: tower::Service<
        http::Request<tonic::body::Body>,
        Response = http::Response<tonic::body::Body>,
    >,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let path = request.uri().path();
        // The body timeout applies to our unary-request methods, but for
        // the whole-file uploads.
        let method = super::metrics::method(path);
        let caller = request.extensions().get::<Caller>().cloned();
        let body_timeout = (self.layer.body_timeout).filter(|_| method.body_timed);
        // A whole-file import: who sent it, should it be refused unread.
        let import = (self.layer.early.clone())
            .zip(EarlyRefusals::action(path))
            .map(|(early, action)| {
                let peer = peer_addr(request.extensions());
                (early, action, request.headers().clone(), peer)
            });
        let watch = import.is_some() || (body_timeout.is_some() && !request.body().is_end_stream());
        let (request, progress) = match watch {
            true => {
                let progress = Arc::new(Progress::default());
                let request = request
                    .map(|body| tonic::body::Body::new(Watched::new(body, progress.clone())));
                (request, Some(progress))
            }
            false => (request, None),
        };
        let reply = self.inner.call(request);
        let layer = self.layer.clone();
        Box::pin(async move {
            // A refusal of an import no handler read, audited (or its
            // caller's authentication refused).
            let unread = |status: Status| match &import {
                Some((early, action, headers, peer)) => {
                    let received = progress.as_ref().map_or(0, |p| p.bytes());
                    early.refused(action, headers, *peer, caller.as_ref(), received, status)
                }
                None => status,
            };
            // Both fire at most once; pending when they do not apply.
            let stalled = async {
                match (body_timeout, &progress) {
                    (Some(limit), Some(progress)) => {
                        tokio::time::sleep(limit).await;
                        if progress.arrived() {
                            std::future::pending::<()>().await;
                        }
                    }
                    _ => std::future::pending().await,
                }
            };
            let late = async {
                match layer.timeout {
                    Some(limit) => tokio::time::sleep(limit).await,
                    None => std::future::pending().await,
                }
            };
            let response = tokio::select! {
                biased;
                response = reply => response?,
                () = stalled => {
                    let limit = body_timeout.unwrap_or_default();
                    let status = match &layer.door {
                        Some(door) => door.body_timed_out(caller.as_ref(), limit),
                        None => body_timed_out(limit),
                    };
                    return Ok(status.into_http());
                }
                () = late => {
                    let limit = layer.timeout.unwrap_or_default();
                    let status = Status::deadline_exceeded(format!(
                        "the call did not finish within the server's request timeout of {} ms",
                        limit.as_millis()
                    ));
                    // An import whose message had not come whole by then
                    // never reached its handler.
                    let status = match progress.as_ref().is_some_and(|p| !p.arrived()) {
                        true => unread(status),
                        false => status,
                    };
                    return Ok(status.into_http());
                }
            };
            let Some(status) = Status::from_header_map(response.headers()) else {
                return Ok(response);
            };
            let Some(better) = rewrite(&status, method.input) else {
                return Ok(response);
            };
            if better.code() != Code::ResourceExhausted {
                return Ok(better.into_http());
            }
            // Over the size limit: counted and logged with the other
            // limits' refusals, audited if it is an admin's import.
            let better = unread(better);
            if let (Some(door), Code::ResourceExhausted) = (&layer.door, better.code()) {
                door.too_large(caller.as_ref(), &better);
            }
            Ok(better.into_http())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_errors_are_invalid_arguments_naming_the_message() {
        let tonic = Status::internal(
            "failed to decode Protobuf message: MatchProblemRequest.text: invalid string value: data is not UTF-8 encoded",
        );
        let better = rewrite(&tonic, Some("xingweinong.v1.MatchProblemRequest")).unwrap();
        assert_eq!(better.code(), Code::InvalidArgument);
        assert_eq!(
            better.message(),
            "the request is not a valid xingweinong.v1.MatchProblemRequest protobuf: MatchProblemRequest.text: invalid string value: data is not UTF-8 encoded"
        );
        let frame = Status::internal(format!("{BAD_FRAME}: 7 (valid flags are 0 and 1)"));
        assert_eq!(rewrite(&frame, None).unwrap().code(), Code::InvalidArgument);
    }

    #[test]
    fn malformed_requests_are_invalid_arguments_not_internal() {
        // What tonic and tonic-web answer, as they word it, for an empty
        // body, a cut frame, a compressed frame without grpc-encoding and
        // grpc-web-text that is not base64 (fuzz/grpc_web: never INTERNAL).
        for tonic in [
            "Missing request message.",
            "Unexpected EOF decoding stream.",
            "protocol error: received message with compressed-flag but no grpc-encoding was specified",
            "tonic-web: malformed base64 request",
            "tonic-web: malformed base64 request has unencoded trailers",
            "tonic-web: Invalid symbol 42, offset 4.",
            "tonic-web: Invalid padding",
            "tonic-web: Invalid last symbol 66, offset 1.",
        ] {
            let better = rewrite(&Status::internal(tonic), Some("xingweinong.v1.GetTicketRequest"))
                .unwrap_or_else(|| panic!("{tonic:?} is left INTERNAL"));
            assert_eq!(better.code(), Code::InvalidArgument, "{tonic}");
        }
        let none = rewrite(&Status::internal("Missing request message."), None).unwrap();
        assert_eq!(
            none.message(),
            "the request holds no message: send one request message"
        );
        // Other INTERNAL statuses are ours and stay as they are.
        assert!(rewrite(&Status::internal("the store failed"), None).is_none());
        assert!(rewrite(&Status::internal("tonic-web: h2 error"), None).is_none());
    }

    #[test]
    fn the_size_limit_is_resource_exhausted_naming_the_limit() {
        let tonic = Status::out_of_range(
            "Error, decoded message length too large: found 9000000 bytes, the limit is: 8388608 bytes",
        );
        let better = rewrite(&tonic, None).unwrap();
        assert_eq!(better.code(), Code::ResourceExhausted);
        assert_eq!(
            better.message(),
            "the request message is 9000000 bytes, over this method's limit of 8388608 bytes per message"
        );
    }

    #[test]
    fn our_own_statuses_are_left_alone() {
        for status in [
            Status::internal("the import task failed: boom"),
            Status::invalid_argument("text: empty"),
            Status::resource_exhausted("rate limit"),
        ] {
            assert!(rewrite(&status, None).is_none(), "{status:?}");
        }
    }

    #[tokio::test]
    async fn a_call_past_the_timeout_is_deadline_exceeded() {
        use tower::{Layer, Service, ServiceExt};
        let layer = StatusLayer::new(Some(Duration::from_millis(20)), None, None).unwrap();
        let mut slow = layer.layer(tower::service_fn(
            |_: http::Request<tonic::body::Body>| async {
                std::future::pending::<()>().await;
                Ok::<_, std::convert::Infallible>(http::Response::new(tonic::body::Body::empty()))
            },
        ));
        let request = http::Request::builder()
            .uri(MATCH)
            .body(tonic::body::Body::empty())
            .unwrap();
        let response = slow.ready().await.unwrap().call(request).await.unwrap();
        let status = Status::from_header_map(response.headers()).unwrap();
        assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
        assert!(status.message().contains("20 ms"), "{status:?}");
    }

    #[tokio::test]
    async fn a_refusal_by_the_codec_is_rewritten() {
        use tower::{Layer, Service, ServiceExt};
        let layer = StatusLayer::new(None, None, None).unwrap();
        let mut refusing = layer.layer(tower::service_fn(
            |_: http::Request<tonic::body::Body>| async {
                let tonic = Status::internal(format!("{DECODE_ERROR}: invalid wire type value: 7"));
                Ok::<_, std::convert::Infallible>(tonic.into_http())
            },
        ));
        let request = http::Request::builder()
            .uri(MATCH)
            .body(tonic::body::Body::empty())
            .unwrap();
        let response = refusing.ready().await.unwrap().call(request).await.unwrap();
        let status = Status::from_header_map(response.headers()).unwrap();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert_eq!(
            status.message(),
            "the request is not a valid xingweinong.v1.MatchProblemRequest protobuf: invalid wire type value: 7"
        );
    }

    #[test]
    fn a_message_has_arrived_once_its_announced_length_has() {
        fn feed(body: &mut Watched<()>, data: &[u8]) {
            body.saw(&data[..data.len().min(5)], data.len());
        }
        let progress = Arc::new(Progress::default());
        let mut body = Watched::new((), progress.clone());
        feed(&mut body, &[0, 0, 0]);
        feed(&mut body, &[3, 232]); // 1,000 bytes announced
        feed(&mut body, &[7; 10]);
        assert!(!progress.arrived(), "10 of 1,000 bytes");
        assert_eq!(progress.bytes(), 15);
        feed(&mut body, &[7; 990]);
        assert!(progress.arrived());
        feed(&mut body, &[7; 5]);
        assert_eq!(progress.bytes(), 1010, "counted after arrival too");
        let empty = Arc::new(Progress::default());
        feed(&mut Watched::new((), empty.clone()), &[0, 0, 0, 0, 0]);
        assert!(empty.arrived(), "an empty message");
    }

    #[test]
    fn the_body_timeout_applies_to_unary_requests_but_whole_files() {
        let watched = |path: &str| crate::server::metrics::method(path).body_timed;
        assert!(watched(MATCH));
        assert!(watched("/xingweinong.v1.TicketService/WatchTicket"));
        assert!(!watched("/xingweinong.v1.RosterService/ImportRoster"));
        assert!(!watched("/xingweinong.v1.RosterService/ImportRosterFile"));
        assert!(!watched("/xingweinong.v1.RosterService/CheckRosterFile"));
        assert!(!watched("/grpc.health.v1.Health/Check"));
        assert!(!watched("/nope/Nope"));
    }

    const MATCH: &str = "/xingweinong.v1.MatchService/MatchProblem";

    #[test]
    fn methods_are_found_by_path() {
        let input = |path: &str| crate::server::metrics::method(path).input;
        assert_eq!(input(MATCH), Some("xingweinong.v1.MatchProblemRequest"));
        assert_eq!(input("/grpc.health.v1.Health/Check"), None);
        assert_eq!(input("/nope/Nope"), None);
    }
}
