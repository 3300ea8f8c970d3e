//! An S3-compatible object store for photo bytes (`[photos] store = "s3"`,
//! README "Photos"): PUT, GET, HEAD and DELETE of objects addressed
//! path-style (`<endpoint>/<bucket>/<prefix><name>`), each request signed
//! with AWS Signature Version 4 (`authorization`) and sent through
//! `outbound` (hyper's HTTP/1.1 client, https through rustls). Written here
//! rather than taken from an SDK crate: four calls need a hundred lines,
//! where the AWS SDK or `rust-s3` bring their own HTTP and TLS stacks.
//!
//! Every failure is [`Error::Unavailable`] naming the store and what it
//! answered, so an operator knows where to look; nothing panics.

use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::Full;
use sha2::{Digest, Sha256};

use crate::{
    config::S3Config,
    error::{Error, Result},
    outbound::{connector, exchange, target, Target, Tls},
    tickets::now_ms,
};

/// The longest one request to the store may take.
const TIMEOUT: Duration = Duration::from_secs(20);
const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// A bucket of an S3-compatible store, with the credentials to use it.
pub struct ObjectStore {
    endpoint: Target,
    /// The endpoint URL, for messages.
    url: String,
    bucket: String,
    prefix: String,
    region: String,
    key_id: String,
    secret: String,
    tls: Tls,
}

impl std::fmt::Debug for ObjectStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStore")
            .field("url", &self.url)
            .field("bucket", &self.bucket)
            .finish_non_exhaustive()
    }
}

/// What a request signs: the credentials, the region and the time.
struct Signing<'a> {
    key_id: &'a str,
    secret: &'a str,
    region: &'a str,
    /// `YYYYMMDDTHHMMSSZ`, sent as `x-amz-date`.
    amz_date: &'a str,
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// Percent-encodes as SigV4 asks: every byte but `A-Za-z0-9-._~` (and
/// `/` when `keep_slash`), upper-case hex.
fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            b'/' if keep_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The canonical request and its signed-header list: `headers` as
/// (name, value), any case, any order.
fn canonical_request(
    method: &str,
    path: &str,
    query: &str,
    headers: &[(&str, &str)],
    payload_sha256: &str,
) -> (String, String) {
    let mut headers: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    headers.sort();
    let canonical_headers: String = headers.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
    let signed = headers
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let request =
        format!("{method}\n{path}\n{query}\n{canonical_headers}\n{signed}\n{payload_sha256}");
    (request, signed)
}

/// The `Authorization` header of a request (AWS Signature Version 4,
/// service `s3`).
fn authorization(
    s: &Signing<'_>,
    method: &str,
    path: &str,
    query: &str,
    headers: &[(&str, &str)],
    payload_sha256: &str,
) -> String {
    let (request, signed) = canonical_request(method, path, query, headers, payload_sha256);
    let date = &s.amz_date[..8];
    let scope = format!("{date}/{}/s3/aws4_request", s.region);
    let to_sign = format!(
        "{ALGORITHM}\n{}\n{scope}\n{}",
        s.amz_date,
        sha256_hex(request.as_bytes())
    );
    let mut key = hmac(format!("AWS4{}", s.secret).as_bytes(), date);
    for part in [s.region, "s3", "aws4_request"] {
        key = hmac(&key, part);
    }
    let signature = hex::encode(hmac(&key, &to_sign));
    format!(
        "{ALGORITHM} Credential={}/{scope},SignedHeaders={signed},Signature={signature}",
        s.key_id
    )
}

/// `x-amz-date` of a time in Unix ms.
fn amz_date(ms: i64) -> String {
    let (year, month, day, in_day) = crate::model::civil(ms);
    let secs = in_day / 1000;
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

impl ObjectStore {
    /// The store `config` names, its credentials from the config or else
    /// from `env` (`XWN_S3_ACCESS_KEY_ID`/`XWN_S3_SECRET_ACCESS_KEY`, then
    /// `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`).
    pub fn open(
        config: &S3Config,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<ObjectStore> {
        let endpoint = target(&config.endpoint)
            .map_err(|e| anyhow::anyhow!("photos.s3.endpoint {:?}: {e}", config.endpoint))?;
        let from_env = |names: [&str; 2]| names.into_iter().find_map(&env);
        let key_id = config
            .access_key_id
            .clone()
            .or_else(|| from_env(["XWN_S3_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"]));
        let secret = config
            .secret_access_key
            .clone()
            .or_else(|| from_env(["XWN_S3_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"]));
        let (Some(key_id), Some(secret)) = (key_id, secret) else {
            anyhow::bail!(
                "photos.store = \"s3\" needs credentials: photos.s3.access_key_id and \
                 secret_access_key, or XWN_S3_ACCESS_KEY_ID and XWN_S3_SECRET_ACCESS_KEY"
            );
        };
        Ok(ObjectStore {
            url: config.endpoint.trim_end_matches('/').to_string(),
            endpoint,
            bucket: config.bucket.clone(),
            prefix: config.prefix.clone(),
            region: config.region.clone(),
            key_id,
            secret,
            tls: connector(config.ca_path.as_deref())?,
        })
    }

    fn unavailable(&self, what: &str, name: &str, cause: impl std::fmt::Display) -> Error {
        Error::Unavailable(format!(
            "the photo store (S3 {} bucket {}) could not {what} {}{name}: {cause}",
            self.url, self.bucket, self.prefix
        ))
    }

    /// Sends one signed request for object `name`: the status and body.
    async fn call(
        &self,
        method: http::Method,
        what: &str,
        name: &str,
        body: Vec<u8>,
    ) -> Result<(http::StatusCode, Bytes)> {
        let base = self.endpoint.path.split('?').next().unwrap_or("");
        let path = format!(
            "{}/{}/{}",
            base.trim_end_matches('/'),
            uri_encode(&self.bucket, false),
            uri_encode(&format!("{}{name}", self.prefix), true)
        );
        let payload = sha256_hex(&body);
        let date = amz_date(now_ms());
        let host = self.endpoint.authority.as_str();
        let headers = [
            ("host", host),
            ("x-amz-content-sha256", payload.as_str()),
            ("x-amz-date", date.as_str()),
        ];
        let signing = Signing {
            key_id: &self.key_id,
            secret: &self.secret,
            region: &self.region,
            amz_date: &date,
        };
        let auth = authorization(&signing, method.as_str(), &path, "", &headers, &payload);
        let mut request = http::Request::builder().method(method.clone()).uri(&path);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let request = request
            .header(http::header::AUTHORIZATION, auth)
            .header(http::header::USER_AGENT, "xwn-photos/1")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| self.unavailable(what, name, e))?;
        let read_body = method != http::Method::HEAD;
        let sent = exchange(&self.endpoint, &self.tls, request, read_body);
        match tokio::time::timeout(TIMEOUT, sent).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => Err(self.unavailable(what, name, e)),
            Err(_) => Err(self.unavailable(what, name, format!("no answer in {TIMEOUT:?}"))),
        }
    }

    /// The refusal of an answer that is not a success, naming the status
    /// and the store's error code when it gave one.
    fn refused(&self, what: &str, name: &str, status: http::StatusCode, body: &[u8]) -> Error {
        let text = String::from_utf8_lossy(body);
        let code = text
            .split_once("<Code>")
            .and_then(|(_, rest)| rest.split_once("</Code>"))
            .map(|(code, _)| format!(" ({code})"))
            .unwrap_or_default();
        self.unavailable(what, name, format!("it answered {status}{code}"))
    }

    /// Stores object `name`; returns once the store has it.
    pub async fn put(&self, name: &str, data: Vec<u8>) -> Result<()> {
        let (status, body) = self.call(http::Method::PUT, "store", name, data).await?;
        if !status.is_success() {
            return Err(self.refused("store", name, status, &body));
        }
        Ok(())
    }

    /// Object `name`, or none.
    pub async fn get(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let (status, body) = self
            .call(http::Method::GET, "read", name, Vec::new())
            .await?;
        match status {
            http::StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => Ok(Some(body.to_vec())),
            s => Err(self.refused("read", name, s, &body)),
        }
    }

    /// Whether object `name` exists.
    pub async fn exists(&self, name: &str) -> Result<bool> {
        let (status, body) = (self.call(http::Method::HEAD, "look up", name, Vec::new())).await?;
        match status {
            http::StatusCode::NOT_FOUND => Ok(false),
            s if s.is_success() => Ok(true),
            s => Err(self.refused("look up", name, s, &body)),
        }
    }

    /// Deletes object `name` (none is no error).
    pub async fn delete(&self, name: &str) -> Result<()> {
        let (status, body) = (self.call(http::Method::DELETE, "delete", name, Vec::new())).await?;
        if !status.is_success() && status != http::StatusCode::NOT_FOUND {
            return Err(self.refused("delete", name, status, &body));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The GET Object example of AWS's "Signature Calculations for the
    /// Authorization Header" (Amazon S3 API Reference, sig-v4 header-based
    /// auth): its canonical request's hash and its signature.
    #[test]
    fn signs_the_get_object_example_of_the_aws_documentation() {
        let empty = sha256_hex(b"");
        assert_eq!(
            empty,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let headers = [
            ("Host", "examplebucket.s3.amazonaws.com"),
            ("Range", "bytes=0-9"),
            ("x-amz-content-sha256", empty.as_str()),
            ("x-amz-date", "20130524T000000Z"),
        ];
        let (request, signed) = canonical_request("GET", "/test.txt", "", &headers, &empty);
        assert_eq!(signed, "host;range;x-amz-content-sha256;x-amz-date");
        assert_eq!(
            sha256_hex(request.as_bytes()),
            "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972"
        );
        let signing = Signing {
            key_id: "AKIAIOSFODNN7EXAMPLE",
            secret: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            region: "us-east-1",
            amz_date: "20130524T000000Z",
        };
        assert_eq!(
            authorization(&signing, "GET", "/test.txt", "", &headers, &empty),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,\
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,\
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    #[test]
    fn dates_and_paths_are_written_as_sigv4_wants() {
        assert_eq!(amz_date(1_369_353_600_000), "20130524T000000Z");
        assert_eq!(amz_date(951_782_400_123 + 3_723_000), "20000229T010203Z");
        assert_eq!(
            uri_encode("photos/ab cd+é~.jpg", true),
            "photos/ab%20cd%2B%C3%A9~.jpg"
        );
        assert_eq!(uri_encode("a/b", false), "a%2Fb");
    }

    #[tokio::test]
    async fn a_store_that_does_not_answer_is_unavailable_naming_it() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let config = S3Config {
            endpoint: format!("http://127.0.0.1:{port}"),
            bucket: "xwn".into(),
            ..S3Config::default()
        };
        let env = |name: &str| Some(format!("test-{name}"));
        let store = ObjectStore::open(&config, env).unwrap();
        let Err(Error::Unavailable(message)) = store.put("a.jpg", b"x".to_vec()).await else {
            panic!("not unavailable");
        };
        assert!(
            message.contains(&format!("S3 http://127.0.0.1:{port} bucket xwn"))
                && message.contains("photos/a.jpg")
                && message.contains("cannot connect"),
            "{message}"
        );
        assert!(
            ObjectStore::open(&config, |_| None).is_err(),
            "no credentials"
        );
    }
}
