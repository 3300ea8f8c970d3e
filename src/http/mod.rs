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
    let media = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if media.starts_with("application/grpc-web") {
        Route::GrpcWeb
    } else if media == "application/grpc" || media.starts_with("application/grpc+") {
        Route::Grpc
    } else if method != Method::POST {
        Route::Page
    } else if media == "application/json" {
        Route::ConnectUnary
    } else if media == "application/connect+json" {
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

impl<S: Inner> Service<Request<Body>> for Http<S> {
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
        let transcoder = self.transcoder.clone();
        match route(request.method(), content_type) {
            Route::Grpc => Box::pin(self.inner.call(request)),
            Route::GrpcWeb => {
                let web = tonic_web::GrpcWebLayer::new().layer(self.inner.clone());
                Box::pin(web.oneshot(request))
            }
            Route::ConnectUnary => {
                let inner = self.inner.clone();
                Box::pin(async move { Ok(connect::unary(inner, transcoder, request).await) })
            }
            Route::ConnectStream => {
                let inner = self.inner.clone();
                Box::pin(async move { Ok(stream::server_stream(inner, transcoder, request).await) })
            }
            Route::OtherPost => {
                let path = request.uri().path();
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
pub(crate) fn cors(config: &HttpConfig) -> CorsLayer {
    let origins = config
        .cors_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect::<Vec<_>>();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST])
        .allow_headers(ALLOWED_HEADERS.map(HeaderName::from_static))
        .expose_headers(EXPOSED_HEADERS.map(HeaderName::from_static))
        .max_age(Duration::from_secs(2 * 60 * 60))
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
}
