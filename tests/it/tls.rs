//! TLS: with `[tls]` on, a client trusting the CA is answered; a plaintext
//! client and a client trusting another CA are refused while the server
//! keeps serving; mutual TLS refuses clients without a certificate of the
//! client CA; certificate trouble stops start-up naming the file. The
//! certificates are made here with rcgen, for these tests only.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use crate::common::*;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use xingweinong::{
    config::{Config, TlsConfig},
    server,
    server::tls::{endpoint, ClientTls},
};

/// A CA, a server certificate it signed (localhost, 127.0.0.1), a client
/// certificate it signed, and an unrelated CA with its own client.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn new(tag: &str) -> Pki {
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
