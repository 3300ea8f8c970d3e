//! Outbound HTTP/1.1 requests (webhooks, the S3-compatible photo store in
//! `s3`): one connection per request through hyper, https through rustls
//! with the system's roots and any extra CA certificates.

pub mod s3;

use std::{path::Path, sync::Arc};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::{rustls, TlsConnector};

/// Where a URL points.
pub(crate) struct Target {
    pub(crate) https: bool,
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) authority: String,
    pub(crate) path: String,
}

pub(crate) fn target(url: &str) -> Result<Target, String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("bad url: {e}"))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err("the url is neither http:// nor https://".into()),
    };
    let authority = uri.authority().ok_or("the url has no host")?;
    let host = authority.host().trim_matches(['[', ']']).to_string();
    Ok(Target {
        https,
        port: authority.port_u16().unwrap_or(if https { 443 } else { 80 }),
        authority: authority.as_str().to_string(),
        path: uri
            .path_and_query()
            .map_or("/".to_string(), |p| p.as_str().to_string()),
        host,
    })
}

/// How `https://` targets are trusted: a connector, or why there is none
/// (the reason each attempt then records).
pub(crate) type Tls = Result<TlsConnector, String>;

/// The system's trusted roots (`SSL_CERT_FILE`, else Debian's bundle) and
/// the CA certificates of `ca_path` (`notify.ca_path`). A `ca_path` that
/// cannot be read or holds no certificate stops the server; missing
/// system roots only fail the https attempts, saying why.
pub(crate) fn connector(ca_path: Option<&Path>) -> anyhow::Result<Tls> {
    use rustls_pki_types::{pem::PemObject, CertificateDer};
    let mut roots = rustls::RootCertStore::empty();
    let system = std::env::var("SSL_CERT_FILE")
        .unwrap_or_else(|_| "/etc/ssl/certs/ca-certificates.crt".into());
    let missing = match std::fs::read(&system) {
        Ok(pem) => {
            roots.add_parsable_certificates(CertificateDer::pem_slice_iter(&pem).flatten());
            None
        }
        Err(e) => Some(format!("cannot read {system}: {e}")),
    };
    if let Some(path) = ca_path {
        let pem = std::fs::read(path)
            .map_err(|e| anyhow::anyhow!("notify.ca_path {}: {e}", path.display()))?;
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("notify.ca_path {}: {e}", path.display()))?;
        let (added, _) = roots.add_parsable_certificates(certs);
        anyhow::ensure!(
            added > 0,
            "notify.ca_path {}: no CA certificate in it",
            path.display()
        );
    }
    if roots.is_empty() {
        return Ok(Err(missing.unwrap_or_else(|| "no trusted roots".into())));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| anyhow::anyhow!("cannot set up TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Ok(TlsConnector::from(Arc::new(config))))
}

/// Sends `request` to `t` on a new connection: the status and, if
/// `read_body`, the whole body; or why there is none.
pub(crate) async fn exchange(
    t: &Target,
    tls: &Tls,
    request: http::Request<Full<Bytes>>,
    read_body: bool,
) -> Result<(http::StatusCode, Bytes), String> {
    let tcp = TcpStream::connect((t.host.as_str(), t.port))
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    if t.https {
        let name = rustls_pki_types::ServerName::try_from(t.host.clone())
            .map_err(|e| format!("bad host name: {e}"))?;
        let stream = tls
            .clone()?
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        send(TokioIo::new(stream), request, read_body).await
    } else {
        send(TokioIo::new(tcp), request, read_body).await
    }
}

async fn send<IO>(
    io: IO,
    request: http::Request<Full<Bytes>>,
    read_body: bool,
) -> Result<(http::StatusCode, Bytes), String>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    let conn = tokio::spawn(conn);
    let answer = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("HTTP: {e}"))?;
        let status = response.status();
        let body = if read_body {
            let body = response.into_body().collect().await;
            body.map_err(|e| format!("HTTP: {e}"))?.to_bytes()
        } else {
            Bytes::new()
        };
        Ok((status, body))
    }
    .await;
    conn.abort();
    answer
}
