//! Browsers and JSON clients on the gRPC listener. One tower layer looks at
//! each request's method, path and content type: gRPC goes through
//! untouched; gRPC-Web is translated by `tonic-web`; Connect JSON (unary in
//! [`connect`], server streams in [`stream`]) is transcoded onto the same
//! gRPC routes in process, so authentication, limits, validation and the
//! one error mapping are gRPC's; GET and HEAD reach the embedded pages
//! ([`pages`], with [`headers`]). CORS, from `[http] cors_origins`, wraps
//! it all.

mod connect;
pub(crate) mod errors;
pub(crate) mod fuzzing;
mod headers;
mod pages;
mod photo_link;
mod stream;

use std::{convert::Infallible, future::Future, pin::Pin, sync::Arc, task::Poll, time::Duration};

use http::{header, HeaderName, HeaderValue, Method, Request, Response};
use tonic::body::Body;
use tower::{Layer, Service, ServiceExt};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::{
    config::HttpConfig,
    server::{audit::EarlyRefusals, limits::Door},
};
use connect::Transcoder;
use errors::ConnectError;

/// What the routes behind the layer must be: the server's gRPC services
/// (behind the admission layer), cheap to clone.
pub(crate) trait Inner:
    Service<Request<Body>, Response = Response<Body>, Error = Infallible, Future: Send + 'static>
    + Clone
    + Send
    + 'static
{
}

impl<S> Inner for S where
    S: Service<
            Request<Body>,
            Response = Response<Body>,
            Error = Infallible,
            Future: Send + 'static,
        > + Clone
        + Send
        + 'static
{
}

/// How a request is answered.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Grpc,
    GrpcWeb,
    ConnectUnary,
    ConnectStream,
    /// Another content type on a POST: 415 on an RPC path, 404 elsewhere.
    OtherPost,
    Page,
}

fn route(method: &Method, content_type: &str) -> Route {
    let media = content_type.split(';').next().unwrap_or_default().trim();
    // Media types are compared without regard to ASCII case.
    let is = |name: &str| media.eq_ignore_ascii_case(name);
    let starts = |prefix: &str| {
        let head = media.as_bytes().get(..prefix.len());
        head.is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
    };
    if starts("application/grpc-web") {
        Route::GrpcWeb
    } else if is("application/grpc") || starts("application/grpc+") {
        Route::Grpc
    } else if method != Method::POST {
        Route::Page
    } else if is("application/json") {
        Route::ConnectUnary
    } else if is("application/connect+json") {
        Route::ConnectStream
    } else {
        Route::OtherPost
    }
}

/// The layer; `max_body` bounds a Connect request body, read under the
/// admission rules of `door`; a whole-file import refused while its body
/// was read is audited through `early`.
#[derive(Clone)]
pub(crate) struct HttpLayer {
    transcoder: Arc<Transcoder>,
}

impl HttpLayer {
    pub(crate) fn new(max_body: usize, door: Arc<Door>, early: Arc<EarlyRefusals>) -> HttpLayer {
        let transcoder = Transcoder::new(max_body).with_door(door).with_early(early);
        HttpLayer {
            transcoder: Arc::new(transcoder),
        }
    }
}

impl<S> Layer<S> for HttpLayer {
    type Service = Http<S>;

    fn layer(&self, inner: S) -> Http<S> {
        Http {
            inner,
            transcoder: self.transcoder.clone(),
        }
    }
}

#[derive(Clone)]
pub(crate) struct Http<S> {
    inner: S,
    transcoder: Arc<Transcoder>,
}

type Reply = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

/// The routes' replies are boxed already (the layers' below), so a gRPC
/// call's passes through as it is.
impl<S: Inner + Service<Request<Body>, Future = Reply>> Service<Request<Body>> for Http<S> {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Reply;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Reply {
        let content_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        // Cloned for the routes that keep it, not for gRPC.
        let transcoder = || self.transcoder.clone();
        match route(request.method(), content_type) {
            Route::Grpc => self.inner.call(request),
            Route::GrpcWeb => {
                let web = tonic_web::GrpcWebLayer::new().layer(self.inner.clone());
                Box::pin(web.oneshot(request))
            }
            Route::ConnectUnary => {
                let inner = self.inner.clone();
                let transcoder = transcoder();
                Box::pin(async move { Ok(connect::unary(inner, transcoder, request).await) })
            }
            Route::ConnectStream => {
                let inner = self.inner.clone();
                let transcoder = transcoder();
                Box::pin(async move { Ok(stream::server_stream(inner, transcoder, request).await) })
            }
            Route::OtherPost => {
                let path = request.uri().path();
                let transcoder = &self.transcoder;
                let error = match transcoder.method(path) {
                    Ok(_) => ConnectError::unsupported_media(format!(
                        "content type {} is not served: send application/json (Connect), application/grpc or application/grpc-web",
                        crate::error::quote(content_type)
                    )),
                    Err(not_found) => not_found,
                };
                let response = error.into_response(transcoder.pool());
                Box::pin(std::future::ready(Ok(response)))
            }
            Route::Page if request.uri().path().starts_with(photo_link::PREFIX) => {
                let inner = self.inner.clone();
                let transcoder = transcoder();
                Box::pin(async move { Ok(photo_link::serve(inner, transcoder, request).await) })
            }
            Route::Page => {
                let response =
                    pages::serve(request.method(), request.uri().path(), request.headers());
                Box::pin(std::future::ready(Ok(response)))
            }
        }
    }
}

/// Request headers a browser page may send cross-origin.
const ALLOWED_HEADERS: [&str; 9] = [
    "authorization",
    "content-type",
    "x-grpc-web",
    "x-user-agent",
    "x-api-key",
    "grpc-timeout",
    "connect-protocol-version",
    "connect-timeout-ms",
    "connect-accept-encoding",
];

/// Response headers a cross-origin page may read (gRPC-Web statuses).
const EXPOSED_HEADERS: [&str; 3] = ["grpc-status", "grpc-message", "grpc-status-details-bin"];

/// CORS for the origins of `[http] cors_origins`; with none, browsers
/// allow only this server's own pages.
pub(crate) fn cors(config: &HttpConfig) -> Cors {
    let origins = config
        .cors_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect::<Vec<_>>();
    let layer = CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST])
        .allow_headers(ALLOWED_HEADERS.map(HeaderName::from_static))
        .expose_headers(EXPOSED_HEADERS.map(HeaderName::from_static))
        .max_age(Duration::from_secs(2 * 60 * 60));
    Cors {
        layer,
        vary: HeaderValue::from_static(VARY),
        expose: HeaderValue::from_str(&EXPOSED_HEADERS.join(",")).ok(),
    }
}

/// The `Vary` header `tower_http`'s CORS adds to every response.
const VARY: &str = "origin, access-control-request-method, access-control-request-headers";

/// The CORS layer: `tower_http`'s for a request with an `Origin` header
/// or a preflight; any other request (every call of a gRPC or Connect
/// client that is not a browser) gets the same two headers that layer
/// would add to its response (`Vary`, and the exposed headers: its origin
/// allowed or not, there is none to echo) without the layer's map of
/// headers built per call.
#[derive(Clone)]
pub(crate) struct Cors {
    layer: CorsLayer,
    vary: HeaderValue,
    expose: Option<HeaderValue>,
}

impl<S> Layer<S> for Cors {
    type Service = CorsService<S>;

    fn layer(&self, inner: S) -> CorsService<S> {
        CorsService {
            cors: self.layer.layer(inner),
            vary: self.vary.clone(),
            expose: self.expose.clone(),
        }
    }
}

#[derive(Clone)]
pub(crate) struct CorsService<S> {
    cors: tower_http::cors::Cors<S>,
    vary: HeaderValue,
    expose: Option<HeaderValue>,
}

impl<S, B> Service<Request<B>> for CorsService<S>
where
    S: Service<Request<B>, Response = Response<Body>>,
    S::Future: Unpin,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = CorsReply<S::Future>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> Poll<Result<(), S::Error>> {
        self.cors.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        if request.method() == Method::OPTIONS || request.headers().contains_key(header::ORIGIN) {
            return CorsReply::Cors(self.cors.call(request));
        }
        let headers = (self.vary.clone(), self.expose.clone());
        CorsReply::Plain(self.cors.get_mut().call(request), Some(headers))
    }
}

/// The reply of [`CorsService`]: through `tower_http`'s layer, or the
/// inner reply to which the CORS headers of a request without `Origin`
/// are added.
pub(crate) enum CorsReply<F> {
    Cors(tower_http::cors::ResponseFuture<F>),
    /// The reply, and the `Vary` and exposed headers to add to it.
    Plain(F, Option<(HeaderValue, Option<HeaderValue>)>),
}

impl<F, E> Future for CorsReply<F>
where
    F: Future<Output = Result<Response<Body>, E>> + Unpin,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            CorsReply::Cors(reply) => Pin::new(reply).poll(cx),
            CorsReply::Plain(reply, cors) => {
                let mut response = std::task::ready!(Pin::new(reply).poll(cx))?;
                let headers = response.headers_mut();
                // As `tower_http` does: `Vary` added to the inner reply's,
                // the exposed headers in place of any.
                if let Some((vary, expose)) = cors.take() {
                    headers.append(header::VARY, vary);
                    if let Some(expose) = expose {
                        headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, expose);
                    }
                }
                Poll::Ready(Ok(response))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_routed_by_content_type_and_method() {
        let post = Method::POST;
        assert_eq!(route(&post, "application/grpc"), Route::Grpc);
        assert_eq!(route(&post, "application/grpc+proto"), Route::Grpc);
        assert_eq!(route(&post, "application/grpc-web+proto"), Route::GrpcWeb);
        assert_eq!(route(&post, "application/grpc-web-text"), Route::GrpcWeb);
        assert_eq!(route(&post, "application/json"), Route::ConnectUnary);
        assert_eq!(
            route(&post, "application/json; charset=utf-8"),
            Route::ConnectUnary
        );
        assert_eq!(
            route(&post, "application/connect+json"),
            Route::ConnectStream
        );
        assert_eq!(route(&post, "text/plain"), Route::OtherPost);
        assert_eq!(route(&post, ""), Route::OtherPost);
        assert_eq!(route(&Method::GET, ""), Route::Page);
        assert_eq!(route(&Method::HEAD, "application/json"), Route::Page);
    }

    /// A request without `Origin` skips `tower_http`'s layer: its reply
    /// must carry the very headers that layer would have added.
    #[tokio::test]
    async fn a_request_without_an_origin_gets_the_headers_cors_would_add() {
        let config = HttpConfig {
            cors_origins: vec!["https://allowed.example".into()],
        };
        // The reply has a `Vary` and an exposed header of its own.
        let inner = tower::service_fn(|_: Request<Body>| {
            let response = Response::builder()
                .header(header::VARY, "accept-encoding")
                .header(header::ACCESS_CONTROL_EXPOSE_HEADERS, "x-mine")
                .body(Body::empty())
                .unwrap();
            std::future::ready(Ok::<_, Infallible>(response))
        });
        let ours = cors(&config).layer(inner);
        let theirs = cors(&config).layer.layer(inner);
        let call = |method: Method, origin: Option<&str>| {
            let mut request = Request::builder().method(method).uri("/x/y");
            if let Some(origin) = origin {
                request = request.header(header::ORIGIN, origin);
            }
            request.body(Body::empty()).unwrap()
        };
        for (method, origin) in [
            (Method::POST, None),
            (Method::GET, None),
            (Method::POST, Some("https://allowed.example")),
            (Method::POST, Some("https://evil.example")),
            (Method::OPTIONS, None),
        ] {
            let mine = ours.clone().oneshot(call(method.clone(), origin)).await;
            let tower = theirs.clone().oneshot(call(method.clone(), origin)).await;
            let (mine, tower) = (mine.unwrap(), tower.unwrap());
            assert_eq!(mine.status(), tower.status(), "{method} {origin:?}");
            assert_eq!(mine.headers(), tower.headers(), "{method} {origin:?}");
        }
    }
}
