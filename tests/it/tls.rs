//! TLS: with `[tls]` on, a client trusting the CA is answered; a plaintext
//! client and a client trusting another CA are refused while the server
//! keeps serving; mutual TLS refuses clients without a certificate of the
//! client CA; ALPN offers HTTP/1.1 next to h2, so an HTTP/1.1-only client
//! gets the pages and Connect JSON; a client that never finishes its
//! handshake blocks no one and is dropped, one silent after it (or after
//! a part of the HTTP/2 preface) is closed at the first-bytes timeout; the audit log still names the
//! peer's address; certificate trouble stops start-up naming the file. The
//! certificates are made here with rcgen, for these tests only.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use crate::common::*;
use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls_pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer, ServerName};
use tokio::{io::AsyncReadExt, net::TcpStream};
use tokio_rustls::{client::TlsStream, rustls, TlsConnector};
use xingweinong::{
    config::{Config, TlsConfig},
    pb, server,
    server::tls::{endpoint, ClientTls},
};

/// A CA, a server certificate it signed (localhost, 127.0.0.1), a client
/// certificate it signed, and an unrelated CA with its own client.
pub(crate) struct Pki {
    dir: PathBuf,
}

impl Pki {
    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub(crate) fn new(tag: &str) -> Pki {
        let dir = temp_dir(tag);
        let write = |name: &str, text: String| std::fs::write(dir.join(name), text).unwrap();
        let make_ca = |name: &str| {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.distinguished_name.push(DnType::CommonName, name);
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            let cert = params.self_signed(&key).unwrap();
            (cert.pem(), Issuer::new(params, key))
        };
        let leaf = |issuer: &Issuer<KeyPair>, names: Vec<String>, usage| {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(names).unwrap();
            params.extended_key_usages = vec![usage];
            let cert = params.signed_by(&key, issuer).unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let (ca_pem, ca) = make_ca("xwn test CA");
        let (other_pem, other) = make_ca("some other CA");
        write("ca.pem", ca_pem);
        write("other-ca.pem", other_pem);
        let (cert, key) = leaf(
            &ca,
            vec!["localhost".into(), "127.0.0.1".into()],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        write("server.pem", cert);
        write("server.key", key);
        let (cert, key) = leaf(&ca, vec![], ExtendedKeyUsagePurpose::ClientAuth);
        write("client.pem", cert);
        write("client.key", key);
        let (cert, key) = leaf(&other, vec![], ExtendedKeyUsagePurpose::ClientAuth);
        write("other-client.pem", cert);
        write("other-client.key", key);
        Pki { dir }
    }

    fn server_tls(&self, mutual: bool) -> TlsConfig {
        TlsConfig {
            cert_path: self.path("server.pem"),
            key_path: self.path("server.key"),
            client_ca_path: mutual.then(|| self.path("ca.pem")),
        }
    }

    /// Trusts `ca`, presents `client` (name of a cert/key pair) if given.
    fn client(&self, ca: &str, client: Option<&str>) -> ClientTls {
        ClientTls {
            ca: Some(self.path(ca)),
            cert: client.map(|c| self.path(&format!("{c}.pem"))),
            key: client.map(|c| self.path(&format!("{c}.key"))),
        }
    }
}

async fn tls_server(pki: &Pki, mutual: bool) -> TestServer {
    let mut config = config(&pki.path("data"));
    config.tls = Some(pki.server_tls(mutual));
    TestServer::start(config).await
}

/// Connects and makes one MatchProblem call: Ok when it is answered.
async fn answered(server: &str, tls: &ClientTls) -> Result<(), String> {
    let attempt = async {
        let channel = endpoint(server, tls)
            .map_err(|e| format!("endpoint: {e:#}"))?
            .connect()
            .await
            .map_err(|e| format!("connect: {e:?}"))?;
        MatchClient::new(channel)
            .match_problem(at_division("苹果树腐烂病", "610527106202"))
            .await
            .map(|_| ())
            .map_err(|s| format!("call: {s:?}"))
    };
    tokio::time::timeout(Duration::from_secs(30), attempt)
        .await
        .unwrap_or_else(|_| Err("no answer within 30 s".into()))
}

#[tokio::test]
async fn tls_clients_trusting_the_ca_are_answered_and_others_refused() {
    let pki = Pki::new("tls");
    let server = tls_server(&pki, false).await;
    let port = server.addr.port();
    let trusting = pki.client("ca.pem", None);
    for host in ["localhost", "127.0.0.1"] {
        answered(&format!("https://{host}:{port}"), &trusting)
            .await
            .unwrap_or_else(|e| panic!("a client trusting the CA, via {host}: {e}"));
    }

    let plaintext = answered(&format!("http://127.0.0.1:{port}"), &ClientTls::default()).await;
    assert!(plaintext.is_err(), "a plaintext (h2c) client was answered");
    let untrusting = answered(
        &format!("https://localhost:{port}"),
        &pki.client("other-ca.pem", None),
    )
    .await;
    assert!(
        untrusting.is_err(),
        "a client trusting another CA was answered"
    );

    // The refused clients did not stop the server.
    answered(&format!("https://localhost:{port}"), &trusting)
        .await
        .expect("still serving TLS clients");
    server.stop_and_clean().await;
    let _ = std::fs::remove_dir_all(&pki.dir);
}

#[tokio::test]
async fn mutual_tls_refuses_clients_without_a_certificate_of_the_client_ca() {
    let pki = Pki::new("mtls");
    let server = tls_server(&pki, true).await;
    let url = format!("https://localhost:{}", server.addr.port());
    answered(&url, &pki.client("ca.pem", Some("client")))
        .await
        .expect("a client with a certificate of the client CA");
    assert!(
        answered(&url, &pki.client("ca.pem", None)).await.is_err(),
        "a client without a certificate was answered"
    );
    assert!(
        answered(&url, &pki.client("ca.pem", Some("other-client")))
            .await
            .is_err(),
        "a client whose certificate another CA signed was answered"
    );
    answered(&url, &pki.client("ca.pem", Some("client")))
        .await
        .expect("still serving");
    server.stop_and_clean().await;
    let _ = std::fs::remove_dir_all(&pki.dir);
}

/// A TLS connection to `addr` as "localhost", trusting the test CA,
/// offering `alpn` and presenting `client` (a cert/key pair's name) if given.
async fn tls_connect(
    pki: &Pki,
    addr: SocketAddr,
    alpn: &[&[u8]],
    client: Option<&str>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(pki.path("ca.pem")).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let mut config = match client {
        None => builder.with_no_client_auth(),
        Some(c) => {
            let certs = CertificateDer::pem_file_iter(pki.path(&format!("{c}.pem")))
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_file(pki.path(&format!("{c}.key"))).unwrap();
            builder.with_client_auth_cert(certs, key).unwrap()
        }
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").unwrap();
    TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
}

/// Sends `request` over HTTP/1.1 on `stream`: status and body.
async fn send_http1(
    stream: TlsStream<TcpStream>,
    mut request: Request<Full<Bytes>>,
) -> (StatusCode, Bytes) {
    request
        .headers_mut()
        .insert(header::HOST, "localhost".parse().unwrap());
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let response = sender.send_request(request).await.unwrap();
    let status = response.status();
    (
        status,
        response.into_body().collect().await.unwrap().to_bytes(),
    )
}

#[tokio::test]
async fn alpn_offers_http1_next_to_h2_so_http1_only_clients_get_pages_and_connect_json() {
    let pki = Pki::new("tls-h1");
    let server = tls_server(&pki, false).await;
    let addr = server.addr;

    let stream = tls_connect(&pki, addr, &[b"http/1.1"], None)
        .await
        .expect("a TLS client offering only http/1.1 must complete its handshake");
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let page = Request::get("/").body(Full::new(Bytes::new())).unwrap();
    let (status, body) = send_http1(stream, page).await;
    assert_eq!(status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&body).contains("<html"), "{body:?}");

    let stream = tls_connect(&pki, addr, &[b"http/1.1"], None).await.unwrap();
    let call = Request::builder()
        .method(Method::POST)
        .uri("/xingweinong.v1.MatchService/MatchProblem")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(
            r#"{"text":"苹果树叶子发黄有斑点","location":{"divisionCode":"610527106202"}}"#,
        )))
        .unwrap();
    let (status, body) = send_http1(stream, call).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let reply: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(reply.is_object(), "{reply}");

    // A client offering both gets h2 (the server's preference), and gRPC
    // clients (h2 only) are still answered.
    let both = tls_connect(&pki, addr, &[b"http/1.1", b"h2"], None)
        .await
        .unwrap();
    assert_eq!(both.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    answered(
        &format!("https://localhost:{}", addr.port()),
        &pki.client("ca.pem", None),
    )
    .await
    .expect("a gRPC client over TLS");
    server.stop_and_clean().await;
    let _ = std::fs::remove_dir_all(&pki.dir);
}

#[tokio::test]
async fn mutual_tls_over_http1_needs_a_client_certificate_too() {
    let pki = Pki::new("mtls-h1");
    let server = tls_server(&pki, true).await;
    let stream = tls_connect(&pki, server.addr, &[b"http/1.1"], Some("client"))
        .await
        .expect("a client with a certificate of the client CA");
    let page = Request::get("/").body(Full::new(Bytes::new())).unwrap();
    assert_eq!(send_http1(stream, page).await.0, StatusCode::OK);
    // Without a certificate the server refuses: the handshake (TLS 1.3: the
    // first read) fails.
    let refused = async {
        let mut stream = tls_connect(&pki, server.addr, &[b"http/1.1"], None).await?;
        let mut byte = [0u8; 1];
        stream.read(&mut byte).await
    };
    let refused = refused.await;
    assert!(matches!(refused, Err(_) | Ok(0)), "{refused:?}");
    server.stop_and_clean().await;
    let _ = std::fs::remove_dir_all(&pki.dir);
}

#[tokio::test]
async fn a_handshake_that_never_finishes_blocks_no_one_and_is_dropped() {
    let pki = Pki::new("tls-stall");
    let server = tls_server(&pki, false).await;
    let started = Instant::now();
    // Clients that connect and never say a word.
    let mut silent = Vec::new();
    for _ in 0..3 {
        silent.push(TcpStream::connect(server.addr).await.unwrap());
    }
    answered(
        &format!("https://localhost:{}", server.addr.port()),
        &pki.client("ca.pem", None),
    )
    .await
    .expect("answered while handshakes stall");
    let stream = tls_connect(&pki, server.addr, &[b"http/1.1"], None)
        .await
        .unwrap();
    let page = Request::get("/").body(Full::new(Bytes::new())).unwrap();
    assert_eq!(send_http1(stream, page).await.0, StatusCode::OK);
    // The server closes them after its 10 s handshake timeout.
    for mut stream in silent {
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buf))
            .await
            .expect("a silent client still held after 30 s");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(9),
        "dropped early: {waited:?}"
    );
    server.stop_and_clean().await;
    let _ = std::fs::remove_dir_all(&pki.dir);
}

#[tokio::test]
async fn a_client_silent_after_its_handshake_is_closed_at_the_first_bytes_timeout() {
    use tokio::io::AsyncWriteExt;
    let pki = Pki::new("tls-silent");
    let mut config = config(&pki.path("data"));
    config.tls = Some(pki.server_tls(false));
    config.limits.first_bytes_timeout_ms = 500;
    let server = TestServer::start(config).await;
    let started = Instant::now();
    // One says nothing after its handshake, one a part of the preface.
    let mut silent = tls_connect(&pki, server.addr, &[b"h2"], None)
        .await
        .unwrap();
    let mut partial = tls_connect(&pki, server.addr, &[b"h2"], None)
        .await
        .unwrap();
    partial.write_all(b"PRI").await.unwrap();
    partial.flush().await.unwrap();
    for stream in [&mut silent, &mut partial] {
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(3), stream.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("still open after {:?}", started.elapsed()));
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(400),
        "closed early: {waited:?}"
    );
    answered(
        &format!("https://localhost:{}", server.addr.port()),
        &pki.client("ca.pem", None),
    )
    .await
    .expect("others are answered");
    server.stop_and_clean().await;
    let _ = std::fs::remove_dir_all(&pki.dir);
}

#[tokio::test]
async fn the_audit_log_names_the_tls_peer_address() {
    let pki = Pki::new("tls-audit");
    let server = tls_server(&pki, false).await;
    let channel = endpoint(
        &format!("https://localhost:{}", server.addr.port()),
        &pki.client("ca.pem", None),
    )
    .unwrap()
    .connect()
    .await
    .unwrap();
    let file = pb::RosterFile {
        format: pb::RosterFormat::Csv as i32,
        data: format!("{HEADER}\nk1,甲,,village,,苹果,,610527106202,,,,\n").into_bytes(),
    };
    RosterClient::new(channel)
        .import_roster_file(admin(file))
        .await
        .unwrap();
    let audit = std::fs::read_to_string(server.data_dir.join("audit.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(audit.lines().last().unwrap()).unwrap();
    assert!(
        last["peer"]
            .as_str()
            .is_some_and(|p| p.starts_with("127.0.0.1:")),
        "{last}"
    );
    server.stop_and_clean().await;
    let _ = std::fs::remove_dir_all(&pki.dir);
}

/// Starts a server with `tls` and returns its start-up error.
async fn start_up_error(dir: &Path, tls: TlsConfig) -> String {
    let mut config: Config = config(&dir.join("data"));
    config.tls = Some(tls);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let serving = server::serve(config, listener, std::future::pending());
    let result = tokio::time::timeout(Duration::from_secs(60), serving)
        .await
        .expect("start-up should fail, not serve");
    format!("{:#}", result.expect_err("start-up should fail"))
}

#[tokio::test]
async fn certificate_trouble_stops_start_up_and_names_the_file() {
    let pki = Pki::new("tls-errors");
    let good = pki.server_tls(false);
    std::fs::write(pki.path("garbage.pem"), "not a certificate\n").unwrap();
    let cases = [
        (
            TlsConfig {
                cert_path: pki.path("missing.pem"),
                ..good.clone()
            },
            "missing.pem",
        ),
        (
            TlsConfig {
                cert_path: pki.path("garbage.pem"),
                ..good.clone()
            },
            "garbage.pem",
        ),
        (
            // A certificate where the key should be.
            TlsConfig {
                key_path: pki.path("server.pem"),
                ..good.clone()
            },
            "server.pem",
        ),
        (
            TlsConfig {
                key_path: pki.path("missing.key"),
                ..good.clone()
            },
            "missing.key",
        ),
        (
            // A key that is not the certificate's.
            TlsConfig {
                cert_path: pki.path("client.pem"),
                ..good.clone()
            },
            "server.key",
        ),
        (
            TlsConfig {
                client_ca_path: Some(pki.path("garbage.pem")),
                ..good.clone()
            },
            "garbage.pem",
        ),
    ];
    for (tls, file) in cases {
        let error = start_up_error(&pki.dir, tls).await;
        assert!(error.contains(file), "{file}: {error}");
    }
    // Nothing was opened: TLS is checked first.
    assert!(!pki.path("data").join("roster").exists());
    let _ = std::fs::remove_dir_all(&pki.dir);
}

/// Runs the `xwn` binary with `args`; returns success and stderr.
async fn xwn(args: Vec<String>) -> (bool, String) {
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_xwn"))
            .args(&args)
            .env_remove("XWN_TLS_CA")
            .env_remove("XWN_SERVER")
            .env("XWN_ADMIN_TOKEN", ADMIN_TOKEN)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_reaches_a_tls_server_with_tls_ca() {
    let pki = Pki::new("tls-cli");
    let server = tls_server(&pki, false).await;
    let url = format!("https://localhost:{}", server.addr.port());
    let ca = pki.path("ca.pem").display().to_string();
    let (ok, err) = xwn(vec![
        "stats".into(),
        "--server".into(),
        url.clone(),
        "--tls-ca".into(),
        ca,
    ])
    .await;
    assert!(ok, "xwn stats over TLS: {err}");
    let (ok, err) = xwn(vec!["stats".into(), "--server".into(), url]).await;
    assert!(!ok && err.contains("--tls-ca"), "{err}");

    // `xwn serve` with a missing certificate stops and names it.
    let missing = pki.path("nowhere.pem").display().to_string();
    let (ok, err) = xwn(vec![
        "serve".into(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--data-dir".into(),
        pki.path("cli-data").display().to_string(),
        "--tls-cert".into(),
        missing.clone(),
        "--tls-key".into(),
        pki.path("server.key").display().to_string(),
    ])
    .await;
    assert!(!ok && err.contains(&missing), "{err}");
    server.stop_and_clean().await;
    let _ = std::fs::remove_dir_all(&pki.dir);
}
