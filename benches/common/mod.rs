//! What the benchmarks that drive a server over gRPC share.

use tonic::Request;

/// `message` with `token` as its bearer token.
pub(crate) fn authed<T>(message: T, token: &str) -> Request<T> {
    let mut r = Request::new(message);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}
