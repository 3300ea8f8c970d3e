//! What the benchmarks that drive a server over gRPC share. (`figures.rs`
//! beside it, what the in-process ones share, is included by path, so
//! each benchmark compiles only what it uses.)

use tonic::Request;

/// `message` with `token` as its bearer token.
pub(crate) fn authed<T>(message: T, token: &str) -> Request<T> {
    let mut r = Request::new(message);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}
