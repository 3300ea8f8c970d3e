//! TLS (rustls through tokio-rustls): the server's identity and optional
//! client CA read from PEM files with errors that name the file; the
//! listener's TLS connections, whose ALPN offers `h2` and `http/1.1` (gRPC
//! needs h2; browsers, gRPC-Web and Connect JSON may come over either),
//! handed to tonic once their handshakes complete; and client endpoints for
//! `https://` servers that trust a private CA.

use std::{
    io,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use anyhow::{bail, Context as _};
use rustls_pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
use tokio::net::TcpStream;
use tokio_rustls::{
    rustls::{self, server::WebPkiClientVerifier, RootCertStore, ServerConfig},
    server::TlsStream,
    TlsAcceptor,
};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

use crate::config::TlsConfig;

/// A client that opens a TLS connection and never finishes the handshake is
/// dropped after this long.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The protocols ALPN offers, the server's preference first.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

fn read(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read the {what} {}", path.display()))
}

/// Reads a PEM file of certificates; at least one must be there. Returns
/// the PEM and its certificates.
fn read_certificates(
    path: &Path,
    what: &str,
) -> anyhow::Result<(Vec<u8>, Vec<CertificateDer<'static>>)> {
    let pem = read(path, what)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("the {what} {} is not valid PEM: {e}", path.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "the {what} {} holds no `BEGIN CERTIFICATE` block",
        path.display()
    );
    Ok((pem, certs))
}

/// Reads a PEM private key (PKCS#8, PKCS#1 or SEC1). Returns the PEM and
/// the key.
fn read_key(path: &Path, what: &str) -> anyhow::Result<(Vec<u8>, PrivateKeyDer<'static>)> {
    let pem = read(path, what)?;
    let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        anyhow::anyhow!(
            "the {what} {} holds no usable PEM private key (PKCS#8, PKCS#1 or SEC1): {e}",
            path.display()
        )
    })?;
    Ok((pem, key))
}

/// The listener's rustls settings from `[tls]`: the certificate chain and
/// its key (a key that does not fit the certificate is reported with both
/// files), client certificates required when `client_ca_path` is set, and
/// ALPN offering h2 and HTTP/1.1.
pub(crate) fn server_config(tls: &TlsConfig) -> anyhow::Result<ServerConfig> {
    let (_, certs) = read_certificates(&tls.cert_path, "TLS certificate (tls.cert_path)")?;
    let (_, key) = read_key(&tls.key_path, "TLS key (tls.key_path)")?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("cannot set up TLS 1.2/1.3 with ring")?;
    let builder = match &tls.client_ca_path {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let (_, cas) = read_certificates(path, "client CA (tls.client_ca_path)")?;
            let mut roots = RootCertStore::empty();
            roots.add_parsable_certificates(cas);
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| {
                    anyhow::anyhow!(
                        "cannot verify clients with the client CA (tls.client_ca_path) {}: {e}",
                        path.display()
                    )
                })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| {
        anyhow::anyhow!(
            "cannot serve TLS with certificate {} and key {}: {}",
            tls.cert_path.display(),
            tls.key_path.display(),
            error_chain(&e)
        )
    })?;
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// The acceptor for `[tls]` (see [`server_config`]).
pub(crate) fn acceptor(tls: &TlsConfig) -> anyhow::Result<TlsAcceptor> {
    Ok(TlsAcceptor::from(Arc::new(server_config(tls)?)))
}

/// Completes the server side of a handshake within [`HANDSHAKE_TIMEOUT`];
/// failures are logged at debug. The connection stage
/// ([`super::conns::Connections`]) runs each in its own task and then waits
/// for the first application bytes. tonic gives each request of a
/// connection the stream's `TlsConnectInfo<TcpConnectInfo>` (its
/// `Connected` impl for tokio-rustls streams), so `Request::remote_addr()`
/// and `peer_certs()` work as with tonic's own TLS.
pub(crate) async fn handshake(
    acceptor: TlsAcceptor,
    tcp: TcpStream,
) -> io::Result<TlsStream<TcpStream>> {
    let peer = tcp.peer_addr().ok();
    let result = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no TLS handshake within {HANDSHAKE_TIMEOUT:?}"),
        )),
    };
    result.inspect_err(|e| tracing::debug!(?peer, error = %e, "TLS handshake failed"))
}

/// An error with its causes, for transport errors whose top line says little.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// What a client trusts and presents over TLS.
#[derive(Debug, Clone, Default)]
pub struct ClientTls {
    /// The CA certificate (PEM) that signed the server's certificate.
    pub ca: Option<PathBuf>,
    /// The client's own certificate and key, for servers that ask for one.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// An endpoint for `server`: plaintext HTTP/2 for `http://`, TLS trusting
/// `tls.ca` for `https://`.
pub fn endpoint(server: &str, tls: &ClientTls) -> anyhow::Result<Endpoint> {
    let endpoint = Endpoint::from_shared(server.to_string())
        .with_context(|| format!("bad server address {server}"))?;
    let https = server.starts_with("https://");
    let any_tls = tls.ca.is_some() || tls.cert.is_some() || tls.key.is_some();
    if !https {
        if any_tls {
            bail!("--tls-ca and the client certificate are for https:// servers; {server} is plaintext (use https://…)");
        }
        return Ok(endpoint);
    }
    let Some(ca) = &tls.ca else {
        bail!("{server} is TLS: give the CA certificate that signed its certificate with --tls-ca FILE (or XWN_TLS_CA)");
    };
    let mut config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(
        read_certificates(ca, "CA certificate (--tls-ca)")?.0,
    ));
    match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => {
            config = config.identity(Identity::from_pem(
                read_certificates(cert, "client certificate (--tls-client-cert)")?.0,
                read_key(key, "client key (--tls-client-key)")?.0,
            ));
        }
        (None, None) => {}
        _ => bail!("a client certificate needs both --tls-client-cert and --tls-client-key"),
    }
    endpoint
        .tls_config(config)
        .map_err(|e| anyhow::anyhow!("cannot set up TLS for {server}: {}", error_chain(&e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_needs_no_tls_and_https_needs_a_ca() {
        assert!(endpoint("http://127.0.0.1:1", &ClientTls::default()).is_ok());
        let e = endpoint("https://127.0.0.1:1", &ClientTls::default()).unwrap_err();
        assert!(e.to_string().contains("--tls-ca"), "{e}");
        let ca = ClientTls {
            ca: Some("ca.pem".into()),
            ..ClientTls::default()
        };
        let e = endpoint("http://127.0.0.1:1", &ca).unwrap_err();
        assert!(e.to_string().contains("plaintext"), "{e}");
    }

    #[test]
    fn alpn_offers_h2_first_then_http1() {
        let dir = std::env::temp_dir().join(format!("xwn-tls-alpn-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        std::fs::write(dir.join("cert.pem"), made.cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), made.signing_key.serialize_pem()).unwrap();
        let tls = TlsConfig {
            cert_path: dir.join("cert.pem"),
            key_path: dir.join("key.pem"),
            client_ca_path: None,
        };
        let config = server_config(&tls).unwrap();
        assert_eq!(
            config.alpn_protocols,
            [b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
