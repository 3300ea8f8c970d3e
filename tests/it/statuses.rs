//! The statuses the transport answers, over a real socket with hand-built
//! request messages (a raw bytes codec on tonic's channel): what cannot be
//! decoded is INVALID_ARGUMENT, what is over the message size limit
//! RESOURCE_EXHAUSTED, an upload that stalls past the request timeout
//! DEADLINE_EXCEEDED; and every refused admin import leaves an audit line.

use bytes::{Buf, BufMut};
use tonic::{
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
    codegen::http::uri::PathAndQuery,
    transport::Channel,
    Code, Status,
};

use crate::common::*;
use xingweinong::pb;

/// Sends message bytes as they are and reads the reply's bytes.
#[derive(Clone, Copy, Default)]
struct Raw;
struct RawEncoder;
struct RawDecoder;

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

impl Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

/// A unary call of `path` with `message` as its bytes: the status it got.
async fn raw_call(ch: &Channel, path: &'static str, message: Vec<u8>) -> Status {
    let mut grpc = tonic::client::Grpc::new(ch.clone());
    grpc.ready().await.unwrap();
    let reply = grpc
        .unary(
            tonic::Request::new(message),
            PathAndQuery::from_static(path),
            Raw,
        )
        .await;
    reply.map(|_| ()).unwrap_err()
}

const MATCH: &str = "/xingweinong.v1.MatchService/MatchProblem";

#[tokio::test]
async fn undecodable_requests_are_invalid_arguments() {
    let ch = channel(shared_server()).await;
    // MatchProblemRequest.text (field 1, length-delimited): not UTF-8.
    let bad_text = raw_call(&ch, MATCH, vec![0x0a, 0x02, 0xff, 0xfe]).await;
    assert_eq!(bad_text.code(), Code::InvalidArgument, "{bad_text:?}");
    assert!(
        bad_text.message().starts_with(
            "the request is not a valid xingweinong.v1.MatchProblemRequest protobuf: "
        ),
        "{bad_text:?}"
    );
    assert!(bad_text.message().contains("UTF-8"), "{bad_text:?}");
    // Garbage: a varint that never ends, then a wrong wire type.
    let garbage = raw_call(&ch, MATCH, vec![0xff; 16]).await;
    assert_eq!(garbage.code(), Code::InvalidArgument, "{garbage:?}");
    // text as a varint (wire type 0) instead of a string.
    let wrong_type = raw_call(&ch, MATCH, vec![0x08, 0x01]).await;
    assert_eq!(wrong_type.code(), Code::InvalidArgument, "{wrong_type:?}");
}

#[tokio::test]
async fn messages_over_the_limit_are_resource_exhausted() {
    let ch = channel(shared_server()).await;
    let big = raw_call(&ch, MATCH, vec![0u8; (8 << 20) + 16]).await;
    assert_eq!(big.code(), Code::ResourceExhausted, "{big:?}");
    assert!(big.message().contains("limit of 8388608 bytes"), "{big:?}");
}

/// The audit log's lines of `dir` for `action`.
pub(crate) fn audited(dir: &std::path::Path, action: &str) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(dir.join("audit.jsonl")).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|l| l["action"] == action)
        .collect()
}

/// The audit log holds one import refused by the request timeout, with
/// the bytes it had received by then.
fn one_timed_out_import_audited(dir: &std::path::Path, received_bytes: usize) {
    let lines = audited(dir, "import_roster");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0]["refused"]
            .as_str()
            .unwrap()
            .contains("request timeout"),
        "{lines:?}"
    );
    assert_eq!(lines[0]["received_bytes"], received_bytes, "{lines:?}");
}

#[tokio::test]
async fn a_stalled_import_is_deadline_exceeded_and_audited() {
    let dir = temp_dir("stalled");
    let mut cfg = config(&dir);
    cfg.limits.request_timeout_ms = 400;
    let server = TestServer::start(cfg).await;
    let mut roster = RosterClient::new(server.channel().await);
    let first = csv_chunk(&format!("{HEADER}\n"));
    let stalled =
        tokio_stream::StreamExt::chain(tokio_stream::iter(vec![first]), tokio_stream::pending());
    let started = std::time::Instant::now();
    let err = roster.import_roster(admin(stalled)).await.unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    assert!(err.message().contains("request timeout"), "{err:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    one_timed_out_import_audited(&dir, HEADER.len() + 1);
    // A stalled liaison list the same way.
    let stalled = tokio_stream::StreamExt::chain(
        tokio_stream::iter(vec![csv_chunk("id\n")]),
        tokio_stream::pending(),
    );
    let err = roster.import_liaisons(admin(stalled)).await.unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    assert_eq!(audited(&dir, "import_liaisons").len(), 1);
    server.stop_and_clean().await;
}

#[tokio::test]
async fn every_refused_import_is_audited_with_its_reason() {
    let dir = temp_dir("refused-audit");
    let mut cfg = config(&dir);
    cfg.max_upload_bytes = 1024;
    let server = TestServer::start(cfg).await;
    let mut roster = RosterClient::new(server.channel().await);
    let unknown = pb::RosterChunk {
        format: 0,
        data: b"id".to_vec(),
    };
    let err = roster
        .import_roster(admin(tokio_stream::iter(vec![unknown])))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let big = vec![
        csv_chunk(&format!("{HEADER}\n")),
        csv_chunk(&"x".repeat(2048)),
    ];
    let err = roster
        .import_roster(admin(tokio_stream::iter(big)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    let file = pb::RosterFile {
        format: 0,
        data: b"id\n".to_vec(),
    };
    let err = roster.import_liaisons_file(admin(file)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let file = pb::RosterFile {
        format: pb::RosterFormat::Csv as i32,
        data: vec![b'x'; 2048],
    };
    let err = roster.import_roster_file(admin(file)).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    // A caller without the admin token is no admin import: not audited.
    let err = roster
        .import_roster(with_token(tokio_stream::iter(vec![csv_chunk("x")]), "nope"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);

    let roster_lines = audited(&dir, "import_roster");
    let reasons: Vec<&str> = roster_lines
        .iter()
        .map(|l| l["refused"].as_str().unwrap())
        .collect();
    assert_eq!(reasons.len(), 3, "{roster_lines:?}");
    assert!(reasons[0].starts_with("format"), "{reasons:?}");
    assert!(reasons[1].contains("limit of 1024 bytes"), "{reasons:?}");
    assert!(reasons[2].contains("limit of 1024 bytes"), "{reasons:?}");
    assert_eq!(roster_lines[2]["received_bytes"], 2048);
    let liaisons = audited(&dir, "import_liaisons");
    assert_eq!(liaisons.len(), 1, "{liaisons:?}");
    assert!(liaisons[0]["refused"]
        .as_str()
        .unwrap()
        .starts_with("format"));
    assert!(roster_lines.iter().all(|l| l["client"].is_string()));
    server.stop_and_clean().await;
}

/// A whole file over the decoding limit (issue 13 item 8) is refused by
/// the transport before any handler reads it: RESOURCE_EXHAUSTED, audited
/// for the admin; a caller without the admin token gets UNAUTHENTICATED
/// and no audit line.
#[tokio::test]
async fn a_whole_file_over_the_decoding_limit_is_audited() {
    let dir = temp_dir("oversized-audit");
    let mut cfg = config(&dir);
    cfg.max_upload_bytes = 1024;
    let server = TestServer::start(cfg).await;
    let mut roster = RosterClient::new(server.channel().await);
    // Over the 8 MiB any RosterService message may have.
    let file = pb::RosterFile {
        format: pb::RosterFormat::Csv as i32,
        data: vec![b'x'; 9 << 20],
    };
    let err = roster
        .import_roster_file(admin(file.clone()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    let err = roster
        .import_liaisons_file(admin(file.clone()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    let err = roster
        .import_roster_file(with_token(file, "nope"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");

    let roster_lines = audited(&dir, "import_roster");
    assert_eq!(roster_lines.len(), 1, "{roster_lines:?}");
    let refused = roster_lines[0]["refused"].as_str().unwrap();
    assert!(
        refused.contains("over this method's limit of 8388608 bytes"),
        "{roster_lines:?}"
    );
    assert!(
        roster_lines[0]["received_bytes"].is_u64(),
        "{roster_lines:?}"
    );
    assert!(roster_lines[0]["client"].is_string(), "{roster_lines:?}");
    let liaisons = audited(&dir, "import_liaisons");
    assert_eq!(liaisons.len(), 1, "{liaisons:?}");
    assert!(liaisons[0]["refused"].as_str().unwrap().contains("8388608"));
    server.stop_and_clean().await;
}

/// A whole file whose message stalls until the request timeout never
/// reached its handler: DEADLINE_EXCEEDED and audited with the bytes that
/// came, or UNAUTHENTICATED without the admin token.
#[tokio::test]
async fn a_stalled_whole_file_is_deadline_exceeded_and_audited() {
    let dir = temp_dir("stalled-file");
    let mut cfg = config(&dir);
    cfg.limits.request_timeout_ms = 400;
    let server = TestServer::start(cfg).await;
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (mut client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut stalled = Vec::new();
    for (method, token) in [
        ("ImportRosterFile", ADMIN_TOKEN),
        ("ImportLiaisonsFile", ADMIN_TOKEN),
        ("ImportRosterFile", "nope"),
    ] {
        client = client.ready().await.unwrap();
        let request = http::Request::builder()
            .method("POST")
            .uri(format!(
                "http://{}/xingweinong.v1.RosterService/{method}",
                server.addr
            ))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("authorization", format!("Bearer {token}"))
            .body(())
            .unwrap();
        let (response, mut send) = client.send_request(request, false).unwrap();
        // A frame that announces 1,000 bytes and carries 10.
        let mut frame = vec![0u8];
        frame.extend_from_slice(&1000u32.to_be_bytes());
        frame.extend_from_slice(&[b'x'; 10]);
        send.send_data(frame.into(), false).unwrap();
        stalled.push((response, send));
    }
    let mut codes = Vec::new();
    for (response, _send) in stalled {
        let (code, message) = crate::inflight::grpc_status(response).await;
        codes.push((code, message));
    }
    assert_eq!(codes[0].0, "4", "{codes:?}");
    assert_eq!(codes[1].0, "4", "{codes:?}");
    assert_eq!(codes[2].0, "16", "{codes:?}");
    one_timed_out_import_audited(&dir, 15);
    assert_eq!(audited(&dir, "import_liaisons").len(), 1);

    // Over Connect JSON: a body that announces 1,000 bytes and sends 12.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let request = format!(
        "POST /xingweinong.v1.RosterService/ImportLiaisonsFile HTTP/1.1\r\nHost: {}\r\n\
         Content-Type: application/json\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\
         Content-Length: 1000\r\nConnection: close\r\n\r\n{{\"data\": \"eA",
        server.addr
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut reply = Vec::new();
    let read = stream.read_to_end(&mut reply);
    tokio::time::timeout(std::time::Duration::from_secs(5), read)
        .await
        .expect("answered at the request timeout")
        .unwrap();
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 504"), "{reply}");
    let lines = audited(&dir, "import_liaisons");
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[1]["received_bytes"], 12, "{lines:?}");
    server.stop_and_clean().await;
}
