//! The pages, embedded in the binary: `build.rs` writes a table of every
//! file under `web/` (content type and ETag included), and this serves it
//! by the path rule below, with the security headers, `no-cache` and
//! `If-None-Match` revalidation.

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};
use tonic::body::Body;

use super::headers;

/// One embedded file: `(path under web/, content type, ETag, bytes, the
/// bytes gzipped when that saves enough)`.
type File = (
    &'static str,
    &'static str,
    &'static str,
    &'static [u8],
    Option<&'static [u8]>,
);

/// Every file under `web/`.
static FILES: &[File] = include!(concat!(env!("OUT_DIR"), "/web_files.rs"));

/// The file under `web/` that a path names.
fn file_name(path: &str) -> Option<String> {
    let name = match path {
        "/" | "/index.html" => "index.html".to_string(),
        "/expert" | "/expert.html" => "expert.html".to_string(),
        "/admin" | "/admin.html" => "admin.html".to_string(),
        "/favicon.ico" | "/favicon.svg" => "assets/favicon.svg".to_string(),
        _ => {
            let asset = path.strip_prefix("/assets/")?;
            let clean = asset
                .split('/')
                .all(|s| !s.is_empty() && s != "." && s != ".." && !s.contains('\\'));
            if !clean {
                return None;
            }
            format!("assets/{asset}")
        }
    };
    Some(name)
}

fn find(path: &str) -> Option<&'static File> {
    let name = file_name(path)?;
    FILES.iter().find(|(n, ..)| *n == name)
}

fn response(status: StatusCode, body: Bytes) -> Response<Body> {
    let mut response = Response::new(Body::new(http_body_util::Full::new(body)));
    *response.status_mut() = status;
    headers::secure(response.headers_mut());
    response
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut r = response(status, Bytes::from_static(text.as_bytes()));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Whether the client takes gzip (`Accept-Encoding: gzip`, not `gzip;q=0`).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or("");
            let refused = parts.any(|p| {
                let q = p
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok());
                q == Some(0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

/// Answers a GET or HEAD of a page or asset.
pub(crate) fn serve(method: &Method, path: &str, request_headers: &HeaderMap) -> Response<Body> {
    if method != Method::GET && method != Method::HEAD {
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let Some((_, content_type, etag, plain_bytes, gzipped)) = find(path) else {
        return plain(StatusCode::NOT_FOUND, "not found\n");
    };
    let gzipped = gzipped.filter(|_| accepts_gzip(request_headers));
    let bytes = gzipped.unwrap_or(plain_bytes);
    let fresh = request_headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| {
            let tag = tag.trim();
            tag == "*" || tag.trim_start_matches("W/") == etag.trim_start_matches("W/")
        });
    let (status, body) = if fresh {
        (StatusCode::NOT_MODIFIED, Bytes::new())
    } else if method == Method::HEAD {
        (StatusCode::OK, Bytes::new())
    } else {
        (StatusCode::OK, Bytes::from_static(bytes))
    };
    let mut r = response(status, body);
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::ETAG, HeaderValue::from_static(etag));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // The ETag is weak: it names the content, whichever encoding carries it.
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if gzipped.is_some() {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    if method == Method::HEAD && !fresh {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_files_under_web() {
        assert_eq!(file_name("/").as_deref(), Some("index.html"));
        assert_eq!(file_name("/expert").as_deref(), Some("expert.html"));
        assert_eq!(file_name("/admin").as_deref(), Some("admin.html"));
        assert_eq!(
            file_name("/favicon.ico").as_deref(),
            Some("assets/favicon.svg")
        );
        assert_eq!(
            file_name("/assets/app.css").as_deref(),
            Some("assets/app.css")
        );
        assert_eq!(file_name("/assets/../build.rs"), None);
        assert_eq!(file_name("/assets//x"), None);
        assert_eq!(file_name("/assets/"), None);
        assert_eq!(file_name("/secret"), None);
    }

    #[test]
    fn every_page_is_embedded_with_its_type() {
        for page in ["/", "/expert", "/admin"] {
            let (_, content_type, etag, bytes, gzipped) = find(page).expect(page);
            assert_eq!(*content_type, "text/html; charset=utf-8");
            assert!(etag.starts_with("W/\"") && !bytes.is_empty());
            assert!(gzipped.is_some_and(|gz| gz.len() < bytes.len()));
        }
        let (_, css, ..) = find("/assets/app.css").unwrap();
        assert_eq!(*css, "text/css; charset=utf-8");
    }

    #[test]
    fn gzip_is_taken_unless_refused() {
        let takes = |value: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT_ENCODING, HeaderValue::from_static(value));
            accepts_gzip(&h)
        };
        assert!(takes("gzip"));
        assert!(takes("br, GZIP;q=0.5"));
        assert!(takes("*"));
        assert!(!takes("br"));
        assert!(!takes("gzip;q=0"));
        assert!(!takes("gzip; q=0.000"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn a_known_etag_gets_304() {
        let first = serve(&Method::GET, "/", &HeaderMap::new());
        assert_eq!(first.status(), StatusCode::OK);
        let etag = first.headers()[header::ETAG].clone();
        let mut again = HeaderMap::new();
        again.insert(header::IF_NONE_MATCH, etag);
        let second = serve(&Method::GET, "/", &again);
        assert_eq!(second.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(serve(&Method::GET, "/nope", &again).status(), 404);
        let head = serve(&Method::HEAD, "/", &HeaderMap::new());
        assert_eq!(head.status(), StatusCode::OK);
        assert!(head.headers().contains_key(header::CONTENT_LENGTH));
    }
}
