//! Fuzzes gRPC-Web requests as the server runs them, in process: the HTTP
//! layer (tonic-web's framing, base64 for `application/grpc-web-text`)
//! over the status layer and routes that decode the request as tonic does.
//!
//! Input: byte 0 picks the content type (bits 0–1: grpc-web,
//! grpc-web+proto, grpc-web-text, grpc-web-text+proto), whether the route
//! echoes the request message (bit 2) and the size of the body's data
//! frames (bits 3–7: 1 to 31 bytes, or 31 for the whole body at once);
//! byte 1 the method (of every `xingweinong.v1` method, or an unknown
//! path); the rest is the HTTP body.
//!
//! Properties: no panic; the answer is 200 and a well-formed gRPC-Web
//! reply (base64 of it for the text types): data frames, then one trailers
//! frame, or a trailers-only answer, with exactly one grpc-status; a
//! malformed request is INVALID_ARGUMENT (or RESOURCE_EXHAUSTED,
//! UNIMPLEMENTED for an unknown path), never INTERNAL or UNKNOWN; an OK
//! answer had a whole first frame (tonic reads a unary call's first message
//! and leaves what follows unread); a request that is one well-formed frame
//! of a valid message is answered OK, and an echoed message comes back as
//! the route saw it.
#![no_main]

use std::sync::OnceLock;

use base64::{
    alphabet,
    engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig},
    Engine,
};
use libfuzzer_sys::fuzz_target;
use xingweinong::fuzzing::{Code, Harness, ECHO};

const CONTENT_TYPES: [&str; 4] = [
    "application/grpc-web",
    "application/grpc-web+proto",
    "application/grpc-web-text",
    "application/grpc-web-text+proto",
];

/// gRPC-Web's base64: standard alphabet, padding optional when decoding.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| Harness::new(1 << 20))
}

/// Base64 text as gRPC-Web has it: whole 4-character groups, each padded
/// on its own (so padded chunks may be concatenated).
fn unbase64(text: &[u8]) -> Option<Vec<u8>> {
    if text.len() % 4 != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    for group in text.chunks(4) {
        out.extend(BASE64.decode(group).ok()?);
    }
    Some(out)
}

/// Length-prefixed frames: (flag, payload), or None when one is cut.
fn frames(mut data: &[u8]) -> Option<Vec<(u8, &[u8])>> {
    let mut out = Vec::new();
    while !data.is_empty() {
        if data.len() < 5 {
            return None;
        }
        let len = u32::from_be_bytes([data[1], data[2], data[3], data[4]]) as usize;
        if data.len() - 5 < len {
            return None;
        }
        out.push((data[0], &data[5..5 + len]));
        data = &data[5 + len..];
    }
    Some(out)
}

/// The grpc-status of a trailers block (`name: value` lines).
fn status_in(block: &[u8]) -> Option<i32> {
    let text = std::str::from_utf8(block).expect("trailers are text");
    text.split("\r\n")
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("grpc-status"))
        .map(|(_, value)| value.trim().parse().expect("a numeric grpc-status"))
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let h = harness();
    let (flags, which, body) = (data[0], data[1] as usize, &data[2..]);
    let content_type = CONTENT_TYPES[(flags & 3) as usize];
    let text = flags & 2 == 2;
    let echo = flags & 4 == 4;
    let chunk = match (flags >> 3) as usize {
        31 => body.len().max(1),
        n => n + 1,
    };
    let path = match h.paths().get(which % (h.paths().len() + 1)) {
        Some(path) => path.as_str(),
        None => "/xingweinong.v1.Nope/Nope",
    };
    let headers: &[(&str, &str)] = if echo { &[(ECHO, "1")] } else { &[] };
    let reply = h.post(path, content_type, headers, body, chunk);

    assert_eq!(reply.status, 200, "{reply:?}");
    let reply_type = reply.headers["content-type"].to_str().unwrap();
    assert!(
        reply_type.starts_with("application/grpc-web"),
        "{reply_type}"
    );
    let raw = reply.body.as_ref().expect("a whole reply");
    let decoded = if reply_type.starts_with("application/grpc-web-text") {
        unbase64(raw).expect("the reply is base64")
    } else {
        raw.clone()
    };
    let parts = frames(&decoded).expect("the reply is whole frames");
    let in_headers = reply.headers.get("grpc-status").map(|v| {
        v.to_str()
            .unwrap()
            .parse::<i32>()
            .expect("a numeric grpc-status")
    });
    let mut in_trailers = None;
    let mut messages = Vec::new();
    for (i, (flag, payload)) in parts.iter().enumerate() {
        match flag {
            0 => messages.push(*payload),
            0x80 => {
                assert_eq!(i, parts.len() - 1, "the trailers frame comes last");
                in_trailers = status_in(payload);
            }
            other => panic!("a reply frame with flag {other:#x}"),
        }
    }
    assert!(
        reply.trailers.is_none(),
        "gRPC-Web carries trailers in the body"
    );
    let status = match (in_headers, in_trailers) {
        (Some(s), None) => {
            assert!(messages.is_empty(), "a trailers-only reply with messages");
            s
        }
        (None, Some(s)) => s,
        other => panic!("grpc-status in headers and trailers: {other:?}"),
    };
    let code = Code::from(status);
    let message = reply
        .headers
        .get("grpc-message")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    assert!(
        matches!(
            code,
            Code::Ok | Code::InvalidArgument | Code::ResourceExhausted | Code::Unimplemented
        ),
        "{code:?} {message:?} for {content_type} {path}"
    );

    // What the client meant to send.
    let request = if text {
        unbase64(body)
    } else {
        Some(body.to_vec())
    };
    let request_frames = request.as_deref().and_then(frames);
    if code == Code::Ok {
        let seen = reply.seen.as_ref().expect("an OK call reached the route");
        assert_eq!(seen.path, path);
        // tonic reads a unary call's first message and leaves the rest of
        // the body unread: only that one must be whole.
        let request = request.as_deref().expect("an OK request was decodable");
        assert!(request.len() >= 5 && request[0] == 0, "{request:?}");
        let len = u32::from_be_bytes([request[1], request[2], request[3], request[4]]);
        assert!(
            request.len() - 5 >= len as usize,
            "an OK request's first frame is whole"
        );
        assert_eq!(messages.len(), 1, "one reply message");
        if echo {
            assert_eq!(messages[0], &seen.message[..], "the echo came back whole");
        } else {
            assert!(messages[0].is_empty());
        }
    } else {
        assert!(reply.seen.is_none(), "a refused call reached the route");
    }

    // One well-formed frame of a valid message is answered OK (for text,
    // when padding is only at the end: tonic-web decodes what has arrived
    // in multiples of four characters, so padding inside depends on where
    // the body's frames were cut).
    let padded_inside = text && {
        let trimmed = body
            .strip_suffix(b"==")
            .or(body.strip_suffix(b"="))
            .unwrap_or(body);
        trimmed.contains(&b'=')
    };
    if let Some([(0, payload)]) = request_frames.as_deref() {
        let known = h.streams(path).is_some();
        if known && !padded_inside && h.proto_to_json(path, payload).is_ok() {
            assert_eq!(code, Code::Ok, "{message:?}");
        }
    }
});
