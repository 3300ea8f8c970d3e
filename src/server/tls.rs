//! TLS (rustls through tonic): the server's identity and optional client CA
//! read from PEM files with errors that name the file, and client endpoints
//! for `https://` servers that trust a private CA.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{bail, Context};
use rustls_pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};

use crate::config::TlsConfig;

/// A client that opens a TLS connection and never finishes the handshake is
/// dropped after this long.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

fn read(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read the {what} {}", path.display()))
}

/// Reads a PEM file of certificates; at least one must be there.
fn read_certificates(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    let pem = read(path, what)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("the {what} {} is not valid PEM: {e}", path.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "the {what} {} holds no `BEGIN CERTIFICATE` block",
        path.display()
    );
    Ok(pem)
}

/// Reads a PEM private key (PKCS#8, PKCS#1 or SEC1).
fn read_key(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    let pem = read(path, what)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        anyhow::anyhow!(
            "the {what} {} holds no usable PEM private key (PKCS#8, PKCS#1 or SEC1): {e}",
            path.display()
        )
    })?;
    Ok(pem)
}

/// The listener's TLS settings from `[tls]`. Whether certificate and key
/// belong together is checked when the server applies them
/// ([`apply_server`]).
pub(crate) fn server_config(tls: &TlsConfig) -> anyhow::Result<ServerTlsConfig> {
    let cert = read_certificates(&tls.cert_path, "TLS certificate (tls.cert_path)")?;
    let key = read_key(&tls.key_path, "TLS key (tls.key_path)")?;
    let mut config = ServerTlsConfig::new()
        .identity(Identity::from_pem(cert, key))
        .timeout(HANDSHAKE_TIMEOUT);
    if let Some(ca) = &tls.client_ca_path {
        let ca = read_certificates(ca, "client CA (tls.client_ca_path)")?;
        config = config.client_ca_root(Certificate::from_pem(ca));
    }
    Ok(config)
}

/// Turns TLS on for a server builder; a key that does not fit the
/// certificate is reported with both files.
pub(crate) fn apply_server(
    builder: tonic::transport::Server,
    tls: &TlsConfig,
) -> anyhow::Result<tonic::transport::Server> {
    let config = server_config(tls)?;
    builder.tls_config(config).map_err(|e| {
        anyhow::anyhow!(
            "cannot serve TLS with certificate {} and key {}: {}",
            tls.cert_path.display(),
            tls.key_path.display(),
            error_chain(&e)
        )
    })
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
        read_certificates(ca, "CA certificate (--tls-ca)")?,
    ));
    match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => {
            config = config.identity(Identity::from_pem(
                read_certificates(cert, "client certificate (--tls-client-cert)")?,
                read_key(key, "client key (--tls-client-key)")?,
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
}
