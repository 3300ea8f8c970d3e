//! The transport side of [`crate::metrics`]: the layer that counts every
//! call by method and final status code (`xwn_calls_total`,
//! `xwn_call_seconds`), and the separate plain-HTTP listener that serves
//! `GET /metrics` (`--metrics-listen`), away from the public port.
//!
//! The layer sits under the HTTP layer and over admission, so a call is
//! counted once whether it came as gRPC, gRPC-Web or Connect JSON, and
//! refusals at the limits are counted with their code. The status is read
//! where it ends up: in the response headers for a trailers-only reply
//! (refusals, errors before the reply), otherwise in the trailers, read as
//! the body passes; a body dropped before its trailers is a cancelled
//! call.

use std::{
    pin::Pin,
    sync::{Arc, LazyLock},
    task::{Context, Poll},
    time::{Duration, Instant},
};

use bytes::Bytes;
use prost_reflect::DescriptorPool;
use rustc_hash::FxHashMap as HashMap;
use tokio::net::TcpListener;
use tonic::{codegen::http, Code};

use super::{limits::ResponseFuture, statuses::whole_file};
use crate::metrics::CallSeries;

/// What the layers need to know of a method, resolved once per call from
/// its path ([`method`]).
pub(crate) struct Method {
    /// The label of metrics and the call's span: the proto name.
    pub(crate) name: &'static str,
    /// Whether its latency is measured (not for server streams, which
    /// last as long as their client wants).
    timed: bool,
    /// The full name of its request message, for one of ours.
    pub(crate) input: Option<&'static str>,
    /// Whether the status layer bounds the arrival of its request (our
    /// unary-request methods but the whole-file uploads).
    pub(crate) body_timed: bool,
    series: CallSeries,
}

impl Method {
    const fn new(name: &'static str, timed: bool, input: Option<&'static str>) -> Method {
        let body_timed = false;
        let series = CallSeries::new(name);
        Method {
            name,
            timed,
            input,
            body_timed,
            series,
        }
    }
}

/// The method of calls to paths that are none of the known methods (a
/// bounded label set whatever clients send).
static OTHER: Method = Method::new("other", true, None);

/// Every method served, by path: ours from the descriptors, plus health
/// and reflection. The methods are leaked once, so they are `&'static`.
static METHODS: LazyLock<HashMap<String, &'static Method>> = LazyLock::new(|| {
    let mut methods = HashMap::default();
    let leak = |s: &str| -> &'static str { Box::leak(s.to_string().into_boxed_str()) };
    if let Ok(pool) = DescriptorPool::decode(crate::pb::FILE_DESCRIPTOR_SET) {
        for service in pool.services() {
            for m in service.methods() {
                let path = format!("/{}/{}", service.full_name(), m.name());
                let input = m.input().full_name().to_string();
                let mut method =
                    Method::new(leak(m.name()), !m.is_server_streaming(), Some(leak(&input)));
                method.body_timed = !m.is_client_streaming() && !whole_file(&input);
                methods.insert(path, &*Box::leak(Box::new(method)));
            }
        }
    }
    for (path, name, timed) in [
        ("/grpc.health.v1.Health/Check", "Check", true),
        ("/grpc.health.v1.Health/Watch", "Watch", false),
        (
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            "ServerReflectionInfo",
            false,
        ),
    ] {
        let method = Method::new(name, timed, None);
        methods.insert(path.to_string(), &*Box::leak(Box::new(method)));
    }
    methods
});

/// The method of a call to `path`, or the one of every unknown path.
pub(crate) fn method(path: &str) -> &'static Method {
    METHODS.get(path).copied().unwrap_or(&OTHER)
}

/// The method of a call to `path`, by its proto name (`MatchProblem`), or
/// `other`: the `method` of metrics and of the call's span.
pub(crate) fn method_name(path: &str) -> &'static str {
    method(path).name
}

/// The canonical name of a gRPC status code, as `grpc-status` numbers it.
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// The code of a `grpc-status` header or trailer.
fn status_of(headers: &http::HeaderMap) -> Option<Code> {
    // A name, not a `&str` the map would parse on every look-up.
    static GRPC_STATUS: http::HeaderName = http::HeaderName::from_static("grpc-status");
    let value = headers.get(&GRPC_STATUS)?.to_str().ok()?;
    Some(Code::from_i32(value.trim().parse().ok()?))
}

/// One call being counted; counted once, when its status is known.
struct Call {
    method: &'static Method,
    started: Instant,
    /// The call's span (`trace_fn` in `serve`): the body may end outside it.
    span: tracing::Span,
}

impl Call {
    fn finish(self, code: Code) {
        let took = self.started.elapsed();
        let number = code as usize;
        let code = code_name(code);
        let timed = self.method.timed.then_some(took);
        self.method.series.finished(number, code, timed);
        // One line per call for who wants them (RUST_LOG=debug), with the
        // span's method, caller and ticket.
        // Entered, not named as the parent: the JSON format lists the
        // current spans only; entered only when `debug!` may log at all
        // (its own first check), as entering costs more than the check.
        if tracing::level_enabled!(tracing::Level::DEBUG) {
            let _in_call = self.span.enter();
            tracing::debug!(code, took_ms = took.as_secs_f64() * 1e3, "call finished");
        }
    }
}

/// A reply body that counts its call when the trailers pass (or the body
/// ends or is dropped without them).
struct Counted<B> {
    inner: B,
    call: Option<Call>,
}

impl<B> Drop for Counted<B> {
    fn drop(&mut self) {
        // The client went away before the status was sent.
        if let Some(call) = self.call.take() {
            call.finish(Code::Cancelled);
        }
    }
}

impl<B> http_body::Body for Counted<B>
where
    B: http_body::Body<Data = Bytes, Error = tonic::Status> + Unpin,
{
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, tonic::Status>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        let code = match &polled {
            Poll::Ready(Some(Ok(frame))) => frame
                .trailers_ref()
                .map(|t| status_of(t).unwrap_or(Code::Unknown)),
            Poll::Ready(Some(Err(status))) => Some(status.code()),
            Poll::Ready(None) => Some(Code::Unknown),
            Poll::Pending => None,
        };
        if let Some(code) = code {
            if let Some(call) = self.call.take() {
                call.finish(code);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.call.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The counting layer; see the module's documentation.
#[derive(Clone, Copy, Default)]
pub(crate) struct CallsLayer;

impl<S> tower::Layer<S> for CallsLayer {
    type Service = Calls<S>;

    fn layer(&self, inner: S) -> Calls<S> {
        Calls { inner }
    }
}

#[derive(Clone)]
pub(crate) struct Calls<S> {
    inner: S,
}

impl<S, B> tower::Service<http::Request<B>> for Calls<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = method(request.uri().path());
        let started = Instant::now();
        let reply = self.inner.call(request);
        Box::pin(async move {
            // tonic enters the call's span while it polls the reply, not
            // while it calls the service: take it here.
            let span = tracing::Span::current();
            let call = Call {
                method,
                started,
                span,
            };
            let response = reply.await?;
            // A trailers-only reply: refusals and errors before any message.
            if let Some(code) = status_of(response.headers()) {
                call.finish(code);
                return Ok(response);
            }
            Ok(response.map(|inner| {
                tonic::body::Body::new(Counted {
                    inner,
                    call: Some(call),
                })
            }))
        })
    }
}

/// At most this many connections to the metrics listener at once: it is
/// for a Prometheus server or two and an operator's curl.
const MAX_METRICS_CONNECTIONS: usize = 16;
/// A scraper must send its request within this.
const METRICS_HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves `GET /metrics` on `listener` (HTTP/1.1) until the task is
/// dropped; any other path is 404, any other method 405.
pub(crate) async fn serve_metrics(listener: TcpListener) {
    use http_body_util::Full;
    use hyper_util::rt::{TokioIo, TokioTimer};
    let places = Arc::new(tokio::sync::Semaphore::new(MAX_METRICS_CONNECTIONS));
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "the metrics listener cannot accept");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(place) = places.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "metrics connection refused: too many open");
            continue;
        };
        tokio::spawn(async move {
            let service = hyper::service::service_fn(|request: http::Request<_>| async move {
                let (status, content_type, body) = match (request.method(), request.uri().path()) {
                    (&http::Method::GET | &http::Method::HEAD, "/metrics") => (
                        http::StatusCode::OK,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        crate::metrics::encode(),
                    ),
                    (_, "/metrics") => (
                        http::StatusCode::METHOD_NOT_ALLOWED,
                        "text/plain; charset=utf-8",
                        "GET /metrics\n".to_string(),
                    ),
                    _ => (
                        http::StatusCode::NOT_FOUND,
                        "text/plain; charset=utf-8",
                        "only /metrics is served here\n".to_string(),
                    ),
                };
                http::Response::builder()
                    .status(status)
                    .header(http::header::CONTENT_TYPE, content_type)
                    .body(Full::new(Bytes::from(body)))
            });
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(METRICS_HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(tcp), service)
                .await;
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "metrics connection ended");
            }
            drop(place);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_has_a_bounded_label() {
        let label = method_name;
        assert_eq!(
            label("/xingweinong.v1.MatchService/MatchProblem"),
            "MatchProblem"
        );
        assert_eq!(label("/grpc.health.v1.Health/Check"), "Check");
        assert_eq!(label("/no.Such/Thing"), "other");
        let watch = METHODS["/xingweinong.v1.TicketService/WatchTicket"];
        assert!(!watch.timed, "streams are not timed");
        assert!(METHODS["/xingweinong.v1.TicketService/SubmitProblem"].timed);
    }

    #[test]
    fn codes_have_their_canonical_names() {
        assert_eq!(code_name(Code::Ok), "OK");
        assert_eq!(code_name(Code::ResourceExhausted), "RESOURCE_EXHAUSTED");
        let mut headers = http::HeaderMap::new();
        headers.insert("grpc-status", "8".parse().unwrap());
        assert_eq!(status_of(&headers), Some(Code::ResourceExhausted));
    }
}
