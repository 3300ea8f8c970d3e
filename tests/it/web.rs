//! Browsers and JSON clients on the gRPC listener, spoken to with a plain
//! HTTP/1.1 client: Connect JSON (unary calls of each kind of caller,
//! errors, a server stream), gRPC-Web, CORS and the embedded pages.

use std::net::SocketAddr;

use bytes::{Buf, Bytes};
use http::{header, HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use xingweinong::pb;

use crate::common::*;

/// What came back: status, headers and the whole body.
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Sends one request on a fresh HTTP/1.1 connection.
async fn send(addr: SocketAddr, mut request: Request<Full<Bytes>>) -> Reply {
    request
        .headers_mut()
        .insert(header::HOST, addr.to_string().parse().unwrap());
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let response = sender.send_request(request).await.unwrap();
    let (head, body) = response.into_parts();
    Reply {
        status: head.status,
        headers: head.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

fn request(
    method: Method,
    path: &str,
    content_type: &str,
    body: impl Into<Bytes>,
) -> Request<Full<Bytes>> {
    let mut builder = Request::builder().method(method).uri(path);
    if !content_type.is_empty() {
        builder = builder.header(header::CONTENT_TYPE, content_type);
    }
    builder.body(Full::new(body.into())).unwrap()
}

/// A Connect unary call in JSON.
pub(crate) async fn connect(addr: SocketAddr, method: &str, body: Value) -> Reply {
    let path = format!("/xingweinong.v1.{method}");
    send(
        addr,
        request(Method::POST, &path, "application/json", body.to_string()),
    )
    .await
}

fn get(path: &str) -> Request<Full<Bytes>> {
    request(Method::GET, path, "", Bytes::new())
}

#[tokio::test]
async fn match_problem_over_connect_json() {
    let addr = shared_server();
    let reply = connect(
        addr,
        "MatchService/MatchProblem",
        json!({"text": "苹果树叶子发黄有斑点", "location": {"divisionCode": "610527106202"}, "limit": 3}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let json = reply.json();
    assert_eq!(json["subject"], "苹果");
    assert!(json["corps"].is_string(), "enums by name: {json}");
    let candidates = json["candidates"].as_array().unwrap();
    assert!(!candidates.is_empty() && candidates.len() <= 3);
    assert!(candidates[0]["talent"]["id"].is_string());
    assert!(
        candidates[0]["matchedTerms"].is_array(),
        "lowerCamelCase: {json}"
    );
    assert!(
        json["rosterVersion"].is_string(),
        "64-bit as strings: {json}"
    );

    // The proto file's own field names and a charset parameter are fine too.
    let reply = send(
        addr,
        request(
            Method::POST,
            "/xingweinong.v1.MatchService/MatchProblem",
            "application/json; charset=utf-8",
            json!({"text": "小麦条锈病", "location": {"division_code": "610527106202"}})
                .to_string(),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["subject"], "小麦");
}

#[tokio::test]
async fn connect_errors_carry_codes_statuses_and_fields() {
    let addr = shared_server();
    let empty = connect(
        addr,
        "MatchService/MatchProblem",
        json!({"text": "", "location": {"divisionCode": "610527106202"}}),
    )
    .await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    let error = empty.json();
    assert_eq!(error["code"], "invalid_argument");
    assert!(
        error["message"].as_str().unwrap().contains("text"),
        "{error}"
    );
    let detail = &error["details"][0];
    assert_eq!(detail["type"], "google.rpc.BadRequest");
    assert!(detail["value"].is_string());
    assert_eq!(
        detail["debug"]["fieldViolations"][0]["field"], "text",
        "{error}"
    );

    let admin = connect(addr, "RosterService/GetRosterStats", json!({})).await;
    assert_eq!(admin.status, StatusCode::UNAUTHORIZED);
    assert_eq!(admin.json()["code"], "unauthenticated");
    let mut with_token = request(
        Method::POST,
        "/xingweinong.v1.RosterService/GetRosterStats",
        "application/json",
        "{}",
    );
    with_token.headers_mut().insert(
        header::AUTHORIZATION,
        format!("Bearer {ADMIN_TOKEN}").parse().unwrap(),
    );
    let stats = send(addr, with_token).await;
    assert_eq!(stats.status, StatusCode::OK, "{:?}", stats.body);
    assert!(stats.json().as_object().is_some_and(|o| !o.is_empty()));

    let unknown = connect(addr, "MatchService/Nope", json!({})).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.json()["code"], "unimplemented");

    let bad_json = send(
        addr,
        request(
            Method::POST,
            "/xingweinong.v1.MatchService/MatchProblem",
            "application/json",
            "{\"txt\": 1}",
        ),
    )
    .await;
    assert_eq!(bad_json.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_json.json()["code"], "invalid_argument");
    assert!(bad_json.json()["message"].as_str().unwrap().contains("txt"));

    let wrong_type = send(
        addr,
        request(
            Method::POST,
            "/xingweinong.v1.MatchService/MatchProblem",
            "text/plain",
            "{}",
        ),
    )
    .await;
    assert_eq!(wrong_type.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

/// Splits a Connect streaming body into its envelopes.
fn envelopes(mut body: Bytes) -> Vec<(u8, Value)> {
    let mut out = Vec::new();
    while body.len() >= 5 {
        let flags = body[0];
        let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        body.advance(5);
        let payload = body.split_to(len);
        out.push((flags, serde_json::from_slice(&payload).unwrap()));
    }
    assert!(body.is_empty(), "a partial envelope");
    out
}

fn enveloped(json: Value) -> Bytes {
    let json = json.to_string();
    let mut out = vec![0];
    out.extend_from_slice(&(json.len() as u32).to_be_bytes());
    out.extend_from_slice(json.as_bytes());
    out.into()
}

#[tokio::test]
async fn tickets_over_connect_json_and_a_watch_stream() {
    let dir = temp_dir("web-tickets");
    let server = TestServer::start(config(&dir)).await;
    let addr = server.addr;
    let submitted = connect(
        addr,
        "TicketService/SubmitProblem",
        json!({"text": "苹果树叶子发黄有斑点", "location": {"point": {"lat": 34.5, "lon": 109.5}}, "contact": "13700000000"}),
    )
    .await;
    assert_eq!(submitted.status, StatusCode::OK, "{:?}", submitted.body);
    let ticket = submitted.json();
    let id = ticket["id"].as_str().unwrap().to_string();
    let secret = ticket["ticketSecret"].as_str().unwrap().to_string();

    let got = connect(
        addr,
        "TicketService/GetTicket",
        json!({"ticketId": id, "ticketSecret": secret}),
    )
    .await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.json()["id"], id.as_str());
    assert!(got.json()["history"]
        .as_array()
        .is_some_and(|h| !h.is_empty()));
    let wrong = connect(
        addr,
        "TicketService/GetTicket",
        json!({"ticketId": id, "ticketSecret": "nope"}),
    )
    .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    assert_eq!(wrong.json()["code"], "permission_denied");

    // The stream never ends by itself: its deadline ends it.
    let mut watch = request(
        Method::POST,
        "/xingweinong.v1.TicketService/WatchTicket",
        "application/connect+json",
        enveloped(json!({"ticketId": id, "ticketSecret": secret})),
    );
    watch
        .headers_mut()
        .insert("connect-timeout-ms", "1500".parse().unwrap());
    let stream = send(addr, watch).await;
    assert_eq!(stream.status, StatusCode::OK);
    assert_eq!(
        stream.header("content-type"),
        Some("application/connect+json")
    );
    let frames = envelopes(stream.body);
    assert!(frames.len() >= 2, "{frames:?}");
    assert_eq!(frames[0].0, 0);
    assert_eq!(frames[0].1["ticketId"], id.as_str());
    assert_eq!(
        frames[0].1["kind"], "TICKET_EVENT_KIND_SUBMITTED",
        "{frames:?}"
    );
    let (flags, end) = frames.last().unwrap();
    assert_eq!(*flags, 0x02, "ends with an end-stream envelope");
    assert_eq!(end["error"]["code"], "deadline_exceeded", "{end}");

    // Errors of a stream travel in its end-stream envelope.
    let refused = send(
        addr,
        request(
            Method::POST,
            "/xingweinong.v1.TicketService/WatchTicket",
            "application/connect+json",
            enveloped(json!({"ticketId": id, "ticketSecret": "nope"})),
        ),
    )
    .await;
    assert_eq!(refused.status, StatusCode::OK);
    let frames = envelopes(refused.body);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].0, 0x02);
    assert_eq!(frames[0].1["error"]["code"], "permission_denied");
    server.stop_and_clean().await;
}

/// The frames of a gRPC-Web reply: its messages and its trailers frame.
fn grpc_web_frames(mut data: Bytes) -> (Vec<Bytes>, Option<String>) {
    let (mut messages, mut trailers) = (Vec::new(), None);
    while data.len() >= 5 {
        let flags = data[0];
        let len = u32::from_be_bytes([data[1], data[2], data[3], data[4]]) as usize;
        data.advance(5);
        let payload = data.split_to(len);
        if flags & 0x80 != 0 {
            trailers = Some(String::from_utf8(payload.to_vec()).unwrap());
        } else {
            messages.push(payload);
        }
    }
    (messages, trailers)
}

/// A gRPC-Web unary call in binary (`+proto`): the reply's messages and
/// its `grpc-status` and `grpc-message` (percent-encoded), from the
/// trailers frame or, for a trailers-only reply, the headers.
pub(crate) async fn grpc_web(
    addr: SocketAddr,
    method: &str,
    message: &impl prost::Message,
) -> (Vec<Bytes>, String, String) {
    let message = message.encode_to_vec();
    let mut body = vec![0];
    body.extend_from_slice(&(message.len() as u32).to_be_bytes());
    body.extend_from_slice(&message);
    let path = format!("/xingweinong.v1.{method}");
    let mut call = request(Method::POST, &path, "application/grpc-web+proto", body);
    call.headers_mut()
        .insert("x-grpc-web", "1".parse().unwrap());
    let reply = send(addr, call).await;
    assert_eq!(reply.status, StatusCode::OK);
    let (messages, trailers) = grpc_web_frames(reply.body.clone());
    let field = |name: &str| {
        let from_trailers = trailers.as_deref().and_then(|t| {
            t.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_string())
            })
        });
        from_trailers
            .or_else(|| reply.header(name).map(str::to_string))
            .unwrap_or_default()
    };
    (messages, field("grpc-status"), field("grpc-message"))
}

/// MatchProblem over gRPC-Web, binary (`+proto`) or text (base64, as
/// browsers without binary streams send it): one reply message and a
/// trailers frame with grpc-status 0.
async fn grpc_web_match_problem(text_mode: bool) {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let addr = shared_server();
    let message = prost::Message::encode_to_vec(&at_division("小麦条锈病", "610527106202"));
    let mut body = vec![0];
    body.extend_from_slice(&(message.len() as u32).to_be_bytes());
    body.extend_from_slice(&message);
    let (content_type, body) = if text_mode {
        ("application/grpc-web-text", b64.encode(&body).into_bytes())
    } else {
        ("application/grpc-web+proto", body)
    };
    let mut call = request(
        Method::POST,
        "/xingweinong.v1.MatchService/MatchProblem",
        content_type,
        body,
    );
    call.headers_mut()
        .insert("x-grpc-web", "1".parse().unwrap());
    // The reply's encoding follows what the client accepts.
    call.headers_mut()
        .insert(header::ACCEPT, content_type.parse().unwrap());
    let reply = send(addr, call).await;
    assert_eq!(reply.status, StatusCode::OK);
    let replied_type = reply.header("content-type").unwrap().to_string();
    assert!(replied_type.starts_with(content_type), "{replied_type}");
    let data = if text_mode {
        // Each frame may be its own base64 chunk.
        let text = String::from_utf8(reply.body.to_vec()).unwrap();
        let mut bytes = Vec::new();
        for chunk in text
            .split_inclusive('=')
            .filter(|c| !c.trim_matches('=').is_empty())
        {
            bytes.extend(b64.decode(chunk).unwrap());
        }
        Bytes::from(bytes)
    } else {
        reply.body
    };
    let (messages, trailers) = grpc_web_frames(data);
    assert_eq!(messages.len(), 1);
    let reply: pb::MatchProblemResponse = prost::Message::decode(messages[0].clone()).unwrap();
    assert_eq!(reply.subject, "小麦");
    let trailers = trailers.expect("a trailers frame");
    assert!(
        trailers
            .lines()
            .any(|l| l.trim().eq_ignore_ascii_case("grpc-status:0")),
        "{trailers:?}"
    );
    assert!(!reply.candidates.is_empty());
}

#[tokio::test]
async fn grpc_web_binary_match_problem() {
    grpc_web_match_problem(false).await;
}

#[tokio::test]
async fn grpc_web_text_match_problem() {
    grpc_web_match_problem(true).await;
}

fn preflight(origin: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(Method::OPTIONS)
        .uri("/xingweinong.v1.MatchService/MatchProblem")
        .header(header::ORIGIN, origin)
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .header(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            "content-type,x-grpc-web,authorization",
        )
        .body(Full::new(Bytes::new()))
        .unwrap()
}

#[tokio::test]
async fn cors_allows_configured_origins_only() {
    let dir = temp_dir("web-cors");
    let mut cfg = config(&dir);
    cfg.http.cors_origins = vec!["https://allowed.example".into()];
    let server = TestServer::start(cfg).await;
    let allowed = send(server.addr, preflight("https://allowed.example")).await;
    assert!(allowed.status.is_success());
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("https://allowed.example")
    );
    let headers = allowed
        .header("access-control-allow-headers")
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        headers.contains("x-grpc-web") && headers.contains("authorization"),
        "{headers}"
    );
    let refused = send(server.addr, preflight("https://evil.example")).await;
    assert_eq!(refused.header("access-control-allow-origin"), None);

    // The actual call exposes the gRPC-Web status headers to the page.
    let mut call = request(
        Method::POST,
        "/xingweinong.v1.MatchService/Ping",
        "application/json",
        "{}",
    );
    call.headers_mut()
        .insert(header::ORIGIN, "https://allowed.example".parse().unwrap());
    let pinged = send(server.addr, call).await;
    assert_eq!(pinged.status, StatusCode::OK);
    let exposed = pinged
        .header("access-control-expose-headers")
        .unwrap_or_default();
    assert!(exposed.contains("grpc-status"), "{:?}", pinged.headers);
    server.stop_and_clean().await;
}

/// Calls without an `Origin` header (any client but a browser's page)
/// carry the same CORS headers as before the layer skipped them: `Vary`
/// and the exposed gRPC-Web status headers, and no allowed origin.
#[tokio::test]
async fn calls_without_an_origin_carry_the_cors_headers() {
    let addr = shared_server();
    let ping = request(
        Method::POST,
        "/xingweinong.v1.MatchService/Ping",
        "application/json",
        "{}",
    );
    let pinged = send(addr, ping).await;
    assert_eq!(pinged.status, StatusCode::OK);
    let vary: Vec<_> = pinged.headers.get_all("vary").iter().collect();
    assert_eq!(
        vary,
        ["origin, access-control-request-method, access-control-request-headers"]
    );
    assert_eq!(
        pinged.header("access-control-expose-headers"),
        Some("grpc-status,grpc-message,grpc-status-details-bin")
    );
    assert_eq!(pinged.header("access-control-allow-origin"), None);
    // A page's own `Vary` comes first, as `tower_http` appends its own.
    let page = send(addr, get("/")).await;
    let vary: Vec<_> = page.headers.get_all("vary").iter().collect();
    assert_eq!(
        vary.last().map(|v| v.to_str().unwrap()),
        Some("origin, access-control-request-method, access-control-request-headers")
    );
}

#[tokio::test]
async fn pages_are_served_with_their_security_headers() {
    let addr = shared_server();
    for path in ["/", "/expert", "/admin"] {
        let page = send(addr, get(path)).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert_eq!(
            page.header("content-type"),
            Some("text/html; charset=utf-8")
        );
        let csp = page.header("content-security-policy").unwrap();
        assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
        assert!(!csp.contains("unsafe-inline"));
        assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
        assert_eq!(page.header("x-frame-options"), Some("DENY"));
        assert_eq!(page.header("cache-control"), Some("no-cache"));
        assert!(String::from_utf8_lossy(&page.body).contains("<html"));
    }
    let css = send(addr, get("/assets/app.css")).await;
    assert_eq!(css.status, StatusCode::OK);
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));
    let etag = css.header("etag").unwrap().to_string();
    let mut again = get("/assets/app.css");
    again
        .headers_mut()
        .insert(header::IF_NONE_MATCH, etag.parse().unwrap());
    assert_eq!(send(addr, again).await.status, StatusCode::NOT_MODIFIED);
    let icon = send(addr, get("/favicon.ico")).await;
    assert_eq!(icon.header("content-type"), Some("image/svg+xml"));
    let head = send(addr, request(Method::HEAD, "/", "", Bytes::new())).await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.body.is_empty());
    let missing = send(addr, get("/nope")).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(
        missing.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    let escape = send(addr, get("/assets/../Cargo.toml")).await;
    assert_eq!(escape.status, StatusCode::NOT_FOUND);
}

/// A client that takes gzip gets the pages in about a third of the bytes,
/// the same content once unpacked; one that does not (or refuses it with
/// q=0) gets them plain.
#[tokio::test]
async fn pages_go_gzipped_to_clients_that_take_it() {
    use std::io::Read;
    let addr = shared_server();
    for path in [
        "/",
        "/expert",
        "/admin",
        "/assets/connect.js",
        "/assets/app.css",
    ] {
        let plain = send(addr, get(path)).await;
        assert_eq!(plain.header("content-encoding"), None, "{path}");
        let mut zipped = get(path);
        zipped
            .headers_mut()
            .insert(header::ACCEPT_ENCODING, "br, gzip;q=0.8".parse().unwrap());
        let zipped = send(addr, zipped).await;
        assert_eq!(zipped.status, StatusCode::OK);
        assert_eq!(zipped.header("content-encoding"), Some("gzip"), "{path}");
        assert_eq!(zipped.header("vary"), Some("accept-encoding"));
        assert_eq!(zipped.header("etag"), plain.header("etag"));
        assert!(zipped.body.len() < plain.body.len() / 2, "{path}");
        let mut unpacked = Vec::new();
        flate2::read::GzDecoder::new(&zipped.body[..])
            .read_to_end(&mut unpacked)
            .unwrap();
        assert_eq!(unpacked, plain.body, "{path}");
        let mut refused = get(path);
        refused
            .headers_mut()
            .insert(header::ACCEPT_ENCODING, "gzip;q=0".parse().unwrap());
        let refused = send(addr, refused).await;
        assert_eq!(refused.header("content-encoding"), None, "{path}");
        assert_eq!(refused.body, plain.body);
    }
}

/// The transcoded call carries the caller's address, so the per-client
/// rate limit (which needs the peer) applies to Connect calls too, with
/// its Connect code and HTTP status.
#[tokio::test]
async fn connect_calls_meet_the_per_client_rate_limit() {
    let dir = temp_dir("web-rate");
    let mut cfg = config(&dir);
    cfg.limits.client_rate_per_sec = 0.001;
    cfg.limits.client_burst = 1.0;
    let server = TestServer::start(cfg).await;
    let call = || {
        connect(
            server.addr,
            "MatchService/MatchProblem",
            json!({"text": "小麦条锈病", "location": {"divisionCode": "610527106202"}}),
        )
    };
    assert_eq!(call().await.status, StatusCode::OK);
    let limited = call().await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.json()["code"], "resource_exhausted");
    server.stop_and_clean().await;
}

#[tokio::test]
async fn roster_check_streams_over_connect_and_a_refused_import_stays_small() {
    use base64::Engine;
    let dir = temp_dir("web-rows");
    let server = TestServer::start(config(&dir)).await;
    let addr = server.addr;
    let mut text = format!("{HEADER}\n");
    for i in 0..5_000 {
        text.push_str(&format!("b{i},坏,,province,,苹果,,610527106202,,,,\n"));
    }
    let file = json!({
        "format": "ROSTER_FORMAT_CSV",
        "data": base64::engine::general_purpose::STANDARD.encode(&text),
    });
    let mut import = request(
        Method::POST,
        "/xingweinong.v1.RosterService/ImportRosterFile",
        "application/json",
        file.to_string(),
    );
    let bearer = format!("Bearer {ADMIN_TOKEN}").parse().unwrap();
    import.headers_mut().insert(header::AUTHORIZATION, bearer);
    let refused = send(addr, import).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(
        refused.body.len() < 32 * 1024,
        "{} bytes",
        refused.body.len()
    );
    let error = refused.json();
    assert_eq!(error["code"], "invalid_argument");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("5,000 problems"),
        "{error}"
    );
    let details = error["details"].as_array().unwrap();
    let bad = details
        .iter()
        .find(|d| d["type"] == "google.rpc.BadRequest")
        .unwrap();
    let shown = bad["debug"]["fieldViolations"].as_array().unwrap().len();
    assert!((50..=100).contains(&shown), "{shown}");
    let info = details
        .iter()
        .find(|d| d["type"] == "google.rpc.ErrorInfo")
        .unwrap();
    assert_eq!(info["debug"]["metadata"]["problems"], "5000", "{info}");
    assert_eq!(info["debug"]["metadata"]["shown"], shown.to_string());

    let mut check = request(
        Method::POST,
        "/xingweinong.v1.RosterService/CheckRosterFile",
        "application/connect+json",
        enveloped(file),
    );
    let bearer = format!("Bearer {ADMIN_TOKEN}").parse().unwrap();
    check.headers_mut().insert(header::AUTHORIZATION, bearer);
    let stream = send(addr, check).await;
    assert_eq!(stream.status, StatusCode::OK);
    let frames = envelopes(stream.body);
    assert_eq!(frames.len(), 5_001, "every row, then the end");
    assert_eq!(frames[0].1["line"], "2", "{:?}", frames[0]);
    assert_eq!(frames[0].1["field"], "tier");
    assert_eq!(frames[4_999].1["line"], "5001");
    let (flags, end) = frames.last().unwrap();
    assert_eq!((*flags, end.get("error")), (0x02, None), "{end}");
    server.stop_and_clean().await;
}

/// A Connect JSON call with the admin token.
pub(crate) async fn connect_admin(addr: SocketAddr, method: &str, body: Value) -> Reply {
    let path = format!("/xingweinong.v1.{method}");
    let mut r = request(Method::POST, &path, "application/json", body.to_string());
    r.headers_mut().insert(
        header::AUTHORIZATION,
        format!("Bearer {ADMIN_TOKEN}").parse().unwrap(),
    );
    send(addr, r).await
}

/// A whole-file import over the size limit over gRPC-Web and Connect JSON
/// (issue 13 item 8): refused before any handler read it, and audited for
/// the admin as over gRPC; a caller with a wrong token is refused as
/// unauthenticated, and not audited.
#[tokio::test]
async fn a_whole_file_over_the_limit_is_audited_over_grpc_web_and_connect() {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let dir = temp_dir("web-oversized-audit");
    let mut cfg = config(&dir);
    cfg.max_upload_bytes = 1024;
    let server = TestServer::start(cfg).await;
    let addr = server.addr;
    let bearer = |token: &str| format!("Bearer {token}").parse().unwrap();
    let file = |bytes: usize| pb::RosterFile {
        format: pb::RosterFormat::Csv as i32,
        data: vec![b'x'; bytes],
    };
    // gRPC-Web: a 9 MiB message, over the 8 MiB of RosterService.
    let message = prost::Message::encode_to_vec(&file(9 << 20));
    let mut body = vec![0];
    body.extend_from_slice(&(message.len() as u32).to_be_bytes());
    body.extend_from_slice(&message);
    let web = |token: &str| {
        let mut call = request(
            Method::POST,
            "/xingweinong.v1.RosterService/ImportRosterFile",
            "application/grpc-web+proto",
            body.clone(),
        );
        call.headers_mut()
            .insert(header::AUTHORIZATION, bearer(token));
        call
    };
    let reply = send(addr, web(ADMIN_TOKEN)).await;
    assert_eq!(
        reply.header("grpc-status"),
        Some("8"),
        "{:?}",
        reply.headers
    );
    let reply = send(addr, web("nope")).await;
    assert_eq!(
        reply.header("grpc-status"),
        Some("16"),
        "{:?}",
        reply.headers
    );
    let lines = crate::statuses::audited(&dir, "import_roster");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0]["refused"].as_str().unwrap().contains("8388608"));

    // Connect JSON: a body over the Connect limit (11 MiB in base64; the
    // limit is a 10 MiB photo's, in base64), and one under it whose message
    // is over the 8 MiB of RosterService.
    for bytes in [11 << 20, (8 << 20) + 100] {
        let json = json!({"format": "ROSTER_FORMAT_CSV", "data": b64.encode(file(bytes).data)});
        let call = |token: &str| {
            let mut call = request(
                Method::POST,
                "/xingweinong.v1.RosterService/ImportLiaisonsFile",
                "application/json",
                json.to_string(),
            );
            call.headers_mut()
                .insert(header::AUTHORIZATION, bearer(token));
            call
        };
        let reply = send(addr, call(ADMIN_TOKEN)).await;
        assert_eq!(reply.json()["code"], "resource_exhausted", "{bytes}");
        let reply = send(addr, call("nope")).await;
        assert_eq!(reply.json()["code"], "unauthenticated", "{bytes}");
    }
    let lines = crate::statuses::audited(&dir, "import_liaisons");
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0]["refused"]
        .as_str()
        .unwrap()
        .contains("larger than"));
    assert!(lines[0]["received_bytes"].as_u64().unwrap() > 10 << 20);
    assert!(lines[1]["refused"].as_str().unwrap().contains("8388608"));
    assert_eq!(crate::statuses::audited(&dir, "import_roster").len(), 1);
    server.stop_and_clean().await;
}

#[tokio::test]
async fn deliveries_over_connect_json() {
    let dir = temp_dir("web-deliveries");
    let mut cfg = config(&dir);
    cfg.notify.public_base_url = Some("https://xwn.example.org".into());
    // Nobody listens there: the notification (the offer to the nearest
    // responder, who is not online) stays pending, retried.
    cfg.notify.webhooks = vec![xingweinong::config::WebhookConfig {
        name: "gw".into(),
        url: "http://127.0.0.1:1/hook".into(),
        secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwMfKQ9r8GKYo=".into(),
        events: Vec::new(),
    }];
    let server = TestServer::start(cfg).await;
    let submitted = connect(
        server.addr,
        "TicketService/SubmitProblem",
        json!({"text": "苹果树腐烂病", "location": {"point": {"lat": 35.0, "lon": 109.5}}}),
    )
    .await;
    assert_eq!(submitted.status, StatusCode::OK);
    let listed = connect_admin(
        server.addr,
        "RosterService/ListDeliveries",
        json!({"state": "DELIVERY_STATE_PENDING"}),
    )
    .await;
    assert_eq!(listed.status, StatusCode::OK, "{:?}", listed.body);
    let body = listed.json();
    assert_eq!(body["endpoints"][0]["name"], "gw");
    assert_eq!(body["deliveries"][0]["type"], "ticket.offered");
    assert_eq!(body["deliveries"][0]["state"], "DELIVERY_STATE_PENDING");
    let retried = connect_admin(
        server.addr,
        "RosterService/RetryDelivery",
        json!({"endpoint": "nowhere"}),
    )
    .await;
    assert_eq!(retried.json()["code"], "not_found");
    // A retry over Connect is audited as over gRPC; the refused one is not.
    let id = body["deliveries"][0]["id"].as_str().unwrap();
    let retried = connect_admin(
        server.addr,
        "RosterService/RetryDelivery",
        json!({"endpoint": "gw", "id": id}),
    )
    .await;
    assert_eq!(retried.status, StatusCode::OK, "{:?}", retried.body);
    let audit = std::fs::read_to_string(dir.join("audit.jsonl")).unwrap();
    let entries: Vec<Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|e: &Value| e["action"] == "retry_delivery")
        .collect();
    assert_eq!(entries.len(), 1, "{audit}");
    assert_eq!(
        (&entries[0]["endpoint"], &entries[0]["id"]),
        (&json!("gw"), &json!(id))
    );
    assert!(entries[0]["peer"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
    server.stop_and_clean().await;
}
