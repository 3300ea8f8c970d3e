//! Connect server streams in JSON (`application/connect+json`): the request
//! is one enveloped message; the reply is 200 with one envelope per event
//! and a last end-stream envelope (flag 0x02) holding `{}` or
//! `{"error": …}`. Like unary calls, they run on the gRPC routes in process.

use std::{convert::Infallible, sync::Arc, time::Duration};

use bytes::{Buf, Bytes, BytesMut};
use http::{header, HeaderValue, Request, Response};
use http_body::Frame;
use http_body_util::BodyExt;
use tokio::sync::mpsc;
use tonic::{body::Body, Code, Status};

use super::{
    connect::{self, Transcoder},
    errors::ConnectError,
    Inner,
};

/// Envelope flag of the last message, which carries the end of the stream.
const END_STREAM: u8 = 0x02;
/// Envelope flag of a compressed message (not offered by this server).
const COMPRESSED: u8 = 0x01;

/// One Connect envelope: flags, big-endian length, payload.
pub(crate) fn envelope(flags: u8, payload: &[u8]) -> Bytes {
    let mut frame = Vec::with_capacity(payload.len() + 5);
    frame.push(flags);
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(payload);
    frame.into()
}

/// The end-stream envelope: `{}` when the stream ended well.
fn end_stream(error: Option<&ConnectError>, transcoder: &Transcoder) -> Bytes {
    let body = match error {
        None => serde_json::json!({}),
        Some(e) => serde_json::json!({ "error": e.to_json(transcoder.pool()) }),
    };
    envelope(END_STREAM, &serde_json::to_vec(&body).unwrap_or_default())
}

/// The payload of the request's one envelope.
pub(crate) fn request_message(mut body: Bytes) -> Result<Bytes, ConnectError> {
    let bad = |m: &str| ConnectError::new(Code::InvalidArgument, m.to_string());
    if body.len() < 5 {
        return Err(bad("the request is not one Connect envelope"));
    }
    let flags = body[0];
    let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
    body.advance(5);
    if flags & COMPRESSED != 0 {
        return Err(ConnectError::new(
            Code::Unimplemented,
            "compressed messages are not accepted",
        ));
    }
    if body.len() != len {
        return Err(bad("the request is not exactly one Connect envelope"));
    }
    Ok(body)
}

fn streaming_response(body: Body) -> Response<Body> {
    let mut response = Response::new(body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/connect+json"),
    );
    response
}

/// A Connect server-stream call.
pub(crate) async fn server_stream<S: Inner>(
    inner: S,
    transcoder: Arc<Transcoder>,
    request: Request<Body>,
) -> Response<Body> {
    let (parts, body) = request.into_parts();
    // Before the stream starts, an unknown method or a unary one is an
    // HTTP error like any other server's.
    let method = match transcoder.method(parts.uri.path()) {
        Ok(m) if m.is_server_streaming() && !m.is_client_streaming() => m,
        Ok(m) => {
            return ConnectError::unsupported_media(format!(
                "{} is not a server stream: send application/json",
                m.name()
            ))
            .into_response(transcoder.pool())
        }
        Err(e) => return e.into_response(transcoder.pool()),
    };
    let started = tokio::time::Instant::now();
    let opened = async {
        let timeout = connect::timeout(&parts.headers)?;
        let response = connect::within(timeout, async {
            let json = request_message(transcoder.read_request(&parts, &method, body).await?)?;
            let message = transcoder.json_to_proto(&method.input(), &json)?;
            let request = connect::grpc_request(&parts, &message, timeout);
            Ok(connect::call(inner, request).await)
        })
        .await?;
        let (head, body) = response.into_parts();
        if let Some(status) = Status::from_header_map(&head.headers) {
            if status.code() != Code::Ok {
                return Err(ConnectError::from_status(&status));
            }
        }
        Ok((body, timeout))
    };
    let (body, timeout) = match opened.await {
        Ok(opened) => opened,
        Err(error) => {
            let end = end_stream(Some(&error), &transcoder);
            return streaming_response(Body::new(http_body_util::Full::new(end)));
        }
    };
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    let deadline = timeout.map(|t: Duration| started + t);
    let output = method.output();
    tokio::spawn(async move {
        let error = pump(body, &tx, deadline, |message| {
            transcoder.proto_to_json(&output, message)
        })
        .await;
        let _ = tx.send(end_stream(error.as_ref(), &transcoder)).await;
    });
    let frames = tokio_stream::wrappers::ReceiverStream::new(rx);
    let frames = tokio_stream::StreamExt::map(frames, |b| Ok::<_, Infallible>(Frame::data(b)));
    streaming_response(Body::new(http_body_util::StreamBody::new(frames)))
}

/// Forwards the gRPC messages of `body` as Connect envelopes until the
/// stream ends, the deadline passes or the caller goes away; returns the
/// error the stream ended with.
async fn pump(
    mut body: Body,
    tx: &mpsc::Sender<Bytes>,
    deadline: Option<tokio::time::Instant>,
    to_json: impl Fn(&[u8]) -> Result<Vec<u8>, ConnectError>,
) -> Option<ConnectError> {
    let mut buffer = BytesMut::new();
    loop {
        let next = async {
            match deadline {
                Some(at) => tokio::time::timeout_at(at, body.frame()).await.ok(),
                None => Some(body.frame().await),
            }
        };
        let frame = tokio::select! {
            // The caller hung up: dropping the body ends the gRPC stream.
            () = tx.closed() => return None,
            frame = next => frame,
        };
        let frame = match frame {
            None => {
                return Some(ConnectError::new(
                    Code::DeadlineExceeded,
                    "the stream did not finish within connect-timeout-ms",
                ))
            }
            Some(None) => {
                return Some(ConnectError::new(
                    Code::Internal,
                    "the stream ended without a status",
                ))
            }
            Some(Some(Err(e))) => return Some(ConnectError::new(Code::Unavailable, e.to_string())),
            Some(Some(Ok(frame))) => frame,
        };
        let frame = match frame.into_data() {
            Ok(data) => {
                buffer.extend_from_slice(&data);
                loop {
                    match connect::take_grpc_message(&mut buffer) {
                        Ok(Some(message)) => {
                            let json = match to_json(&message) {
                                Ok(json) => json,
                                Err(e) => return Some(e),
                            };
                            if tx.send(envelope(0, &json)).await.is_err() {
                                return None;
                            }
                        }
                        Ok(None) => break,
                        Err(e) => return Some(e),
                    }
                }
                continue;
            }
            Err(frame) => frame,
        };
        if let Ok(trailers) = frame.into_trailers() {
            return match Status::from_header_map(&trailers) {
                Some(status) if status.code() == Code::Ok => None,
                Some(status) => Some(ConnectError::from_status(&status)),
                None => Some(ConnectError::new(
                    Code::Internal,
                    "the stream ended without a status",
                )),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_is_exactly_one_envelope() {
        let one = envelope(0, b"{}");
        assert_eq!(request_message(one.clone()).unwrap(), "{}");
        let mut two = one.to_vec();
        two.extend_from_slice(&one);
        assert!(request_message(two.into()).is_err());
        assert!(request_message(Bytes::from_static(b"{}")).is_err());
        let compressed = envelope(COMPRESSED, b"{}");
        assert_eq!(
            request_message(compressed).unwrap_err().code,
            Code::Unimplemented
        );
    }

    #[test]
    fn the_end_of_a_stream_is_flagged() {
        let t = Transcoder::new(1024);
        let ok = end_stream(None, &t);
        assert_eq!(ok[0], END_STREAM);
        assert_eq!(&ok[5..], b"{}");
        let error = ConnectError::new(Code::NotFound, "no ticket");
        let failed = end_stream(Some(&error), &t);
        let json: serde_json::Value = serde_json::from_slice(&failed[5..]).unwrap();
        assert_eq!(json["error"]["code"], "not_found");
    }
}
