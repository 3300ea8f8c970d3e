//! Fuzzes Connect JSON requests (`src/http/connect.rs`, `stream.rs`) as
//! the server runs them, in process: the HTTP layer over the status layer
//! and routes that decode the request as tonic does.
//!
//! Input: byte 0 picks the method (of every `xingweinong.v1` method, or an
//! unknown path), byte 1 the protocol (bit 0: a server-stream envelope
//! `application/connect+json`, else unary `application/json`) and bit 1 a
//! `connect-timeout-ms` header; the rest is the HTTP body.
//!
//! Properties: no panic; JSON the transcoder accepts is valid protobuf of
//! the request type, reaches the route as those bytes, and goes back to
//! JSON and again to the same message (round trip); refusals are
//! INVALID_ARGUMENT (UNIMPLEMENTED for a compressed envelope) with a short
//! message; the HTTP answer agrees with the decision.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use xingweinong::fuzzing::{Code, Harness};

/// Longest refusal message: an error quotes a short prefix of the input,
/// never the input.
const MAX_MESSAGE: usize = 512;

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| Harness::new(1 << 20))
}

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).expect("the transcoder writes JSON")
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let h = harness();
    let (which, mode, body) = (data[0] as usize, data[1], &data[2..]);
    let streamed = mode & 1 == 1;
    let timeout: &[(&str, &str)] = if mode & 2 == 2 {
        &[("connect-timeout-ms", "60000")]
    } else {
        &[]
    };
    let content_type = if streamed {
        "application/connect+json"
    } else {
        "application/json"
    };
    let Some(path) = h.paths().get(which % (h.paths().len() + 1)) else {
        let reply = h.post(
            "/xingweinong.v1.Nope/Nope",
            content_type,
            timeout,
            body,
            4096,
        );
        assert_eq!(reply.status, 404);
        assert!(reply.seen.is_none());
        return;
    };
    let (client_streams, server_streams) = h.streams(path).expect("a method");

    // The payload the transcoder reads: the body, or the envelope's.
    let payload = if streamed {
        match h.connect_envelope(body) {
            Ok(payload) => Some(payload),
            Err((code, message)) => {
                assert!(
                    matches!(code, Code::InvalidArgument | Code::Unimplemented),
                    "{code:?}: {message}"
                );
                assert!(message.len() <= MAX_MESSAGE, "{} bytes", message.len());
                None
            }
        }
    } else {
        Some(body.to_vec())
    };
    let decoded = payload.as_deref().map(|p| h.json_to_proto(path, p));
    if let Some(decoded) = &decoded {
        match decoded {
            Ok(proto) => {
                // Round trip: JSON → protobuf → JSON → protobuf → JSON.
                let back = h.proto_to_json(path, proto).expect("its own message");
                let again = h.json_to_proto(path, &back).expect("its own JSON");
                let back2 = h.proto_to_json(path, &again).expect("its own message");
                assert_eq!(json(&back), json(&back2), "JSON round trip");
            }
            Err((code, message)) => {
                assert_eq!(*code, Code::InvalidArgument, "{message}");
                assert!(
                    message.len() <= MAX_MESSAGE,
                    "a refusal of {} bytes: {}…",
                    message.len(),
                    message.chars().take(200).collect::<String>()
                );
            }
        }
    }

    let reply = h.post(path, content_type, timeout, body, 4096);
    let served = streamed == server_streams && !client_streams;
    if !served {
        assert_eq!(reply.status, 415, "{path} as {content_type}");
        assert!(reply.seen.is_none());
        return;
    }
    let reply_body = reply.body.as_ref().expect("a whole body");
    match &decoded {
        Some(Ok(proto)) => {
            let seen = reply.seen.as_ref().expect("the route was reached");
            assert_eq!(&seen.path, path);
            assert_eq!(&seen.message, proto, "the route got what the JSON said");
            assert_eq!(reply.status, 200);
            if !streamed {
                assert_eq!(json(reply_body), serde_json::json!({}));
            }
        }
        _ => {
            assert!(reply.seen.is_none(), "a refused request reached the route");
            if streamed {
                assert_eq!(reply.status, 200);
            } else {
                assert_eq!(reply.status, 400);
                let error = json(reply_body);
                assert_eq!(error["code"], "invalid_argument", "{error}");
            }
        }
    }
    if streamed {
        // Envelopes, the last one the end of the stream.
        let mut rest = &reply_body[..];
        let mut end = None;
        while !rest.is_empty() {
            assert!(end.is_none(), "an envelope after the end of the stream");
            assert!(rest.len() >= 5, "a cut envelope");
            let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
            assert!(rest.len() >= 5 + len, "a cut envelope");
            if rest[0] & 2 == 2 {
                end = Some(json(&rest[5..5 + len]));
            }
            rest = &rest[5 + len..];
        }
        let end = end.expect("an end-of-stream envelope");
        match decoded {
            Some(Ok(_)) => assert_eq!(end, serde_json::json!({})),
            Some(Err(_)) => assert_eq!(end["error"]["code"], "invalid_argument", "{end}"),
            None => assert!(end["error"]["code"].is_string(), "{end}"),
        }
    }
});
