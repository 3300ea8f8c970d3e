//! Photos in an S3-compatible object store (`[photos] store = "s3"`,
//! with PostgreSQL), through the real service against a small S3-like
//! server written here: it keeps objects in memory (PUT, GET, HEAD,
//! DELETE, path-style) and refuses a request whose `Authorization` is not
//! a well-formed Signature V4 header of the configured key or whose
//! payload hash does not match its body. Upload, read, delete, another
//! ticket's identical photo, and a store that is down (UNAVAILABLE naming
//! it). Skipped without PostgreSQL.

use std::{
    collections::HashMap,
    convert::Infallible,
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};
use tonic::{transport::Channel, Code};
use xingweinong::{pb, photos::clean::fixtures};

use crate::common::*;

type PhotoClient = pb::photo_service_client::PhotoServiceClient<Channel>;

const KEY_ID: &str = "XWNTESTKEY";
const BUCKET: &str = "farm-photos";

/// What the fake store holds and saw.
#[derive(Default)]
struct Bucket {
    objects: HashMap<String, Vec<u8>>,
    /// Method and path of every request it accepted.
    calls: Vec<String>,
    /// Why it refused a request, if it did.
    refusals: Vec<String>,
}

/// Why an S3 request would be refused, if it would.
fn check(req: &http::request::Parts, body: &[u8]) -> Result<(), String> {
    let header = |name: &str| {
        req.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or(format!("no {name} header"))
    };
    let auth = header("authorization")?;
    let date = header("x-amz-date")?;
    let payload = header("x-amz-content-sha256")?;
    if payload != hex::encode(Sha256::digest(body)) {
        return Err("x-amz-content-sha256 is not the body's".into());
    }
    let valid_date = date.len() == 16 && date.as_bytes()[8] == b'T' && date.ends_with('Z');
    if !valid_date {
        return Err(format!("bad x-amz-date {date}"));
    }
    let credential = format!(
        "AWS4-HMAC-SHA256 Credential={KEY_ID}/{}/us-east-1/s3/aws4_request,",
        &date[..8]
    );
    let rest = auth
        .strip_prefix(&credential)
        .ok_or(format!("bad credential: {auth}"))?;
    let signature = rest
        .strip_prefix("SignedHeaders=host;x-amz-content-sha256;x-amz-date,Signature=")
        .ok_or(format!("bad signed headers: {auth}"))?;
    let hex64 = signature.len() == 64 && signature.bytes().all(|b| b.is_ascii_hexdigit());
    if !hex64 {
        return Err(format!("bad signature: {auth}"));
    }
    Ok(())
}

async fn serve_s3(
    req: http::Request<hyper::body::Incoming>,
    bucket: Arc<Mutex<Bucket>>,
) -> http::Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    let answer = |status: u16, body: Vec<u8>| {
        http::Response::builder()
            .status(status)
            .body(Full::new(Bytes::from(body)))
            .unwrap()
    };
    let mut b = bucket.lock().unwrap();
    if let Err(why) = check(&parts, &body) {
        b.refusals.push(why);
        let xml = b"<Error><Code>SignatureDoesNotMatch</Code></Error>".to_vec();
        return answer(403, xml);
    }
    let path = parts.uri.path().to_string();
    b.calls.push(format!("{} {path}", parts.method));
    let Some(key) = path.strip_prefix(&format!("/{BUCKET}/")) else {
        return answer(404, b"<Error><Code>NoSuchBucket</Code></Error>".to_vec());
    };
    let key = key.to_string();
    match parts.method {
        http::Method::PUT => {
            b.objects.insert(key, body.to_vec());
            answer(200, Vec::new())
        }
        http::Method::GET | http::Method::HEAD => match b.objects.get(&key) {
            Some(data) if parts.method == http::Method::GET => answer(200, data.clone()),
            Some(_) => answer(200, Vec::new()),
            None => answer(404, b"<Error><Code>NoSuchKey</Code></Error>".to_vec()),
        },
        http::Method::DELETE => {
            b.objects.remove(&key);
            answer(204, Vec::new())
        }
        _ => answer(405, Vec::new()),
    }
}

/// Starts the fake store; its address and what it holds.
async fn fake_s3() -> (std::net::SocketAddr, Arc<Mutex<Bucket>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let bucket = Arc::new(Mutex::new(Bucket::default()));
    let held = bucket.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let bucket = held.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let bucket = bucket.clone();
                    async move { Ok::<_, Infallible>(serve_s3(req, bucket).await) }
                });
                let http = hyper::server::conn::http1::Builder::new();
                let _ = http.serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    (addr, bucket)
}

async fn upload(photos: &mut PhotoClient, data: Vec<u8>) -> Result<String, tonic::Status> {
    let request = pb::UploadPhotoRequest {
        data,
        idempotency_key: String::new(),
    };
    Ok(photos.upload_photo(request).await?.into_inner().photo_id)
}

fn get(t: &pb::Ticket, photo_id: &str, thumbnail: bool) -> pb::GetPhotoRequest {
    pb::GetPhotoRequest {
        ticket_id: t.id.clone(),
        photo_id: photo_id.into(),
        ticket_secret: t.ticket_secret.clone(),
        thumbnail,
    }
}

fn apple() -> pb::SubmitProblemRequest {
    submit_request("苹果树叶子发黄有斑点", at_point(35.0, 109.5), "")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn photos_kept_in_an_s3_compatible_store() {
    let Some(url) = postgres_db("s3").await else {
        return;
    };
    let (s3, bucket) = fake_s3().await;
    let dir = temp_dir("s3-photos");
    let mut config = config(&dir);
    config.store = url;
    config.photos.store = "s3".into();
    config.photos.s3.endpoint = format!("http://{s3}");
    config.photos.s3.bucket = BUCKET.into();
    config.photos.s3.access_key_id = Some(KEY_ID.into());
    config.photos.s3.secret_access_key = Some("xwn-test-secret".into());
    let server = TestServer::start(config).await;
    let channel = server.channel().await;
    let mut photos = PhotoClient::new(channel.clone());

    // Uploaded: acknowledged once both objects are in the bucket.
    let sent = fixtures::png(64, 48);
    let first = upload(&mut photos, sent.clone()).await.unwrap();
    let objects: Vec<String> = {
        let b = bucket.lock().unwrap();
        assert!(b.refusals.is_empty(), "{:?}", b.refusals);
        let mut names: Vec<String> = b.objects.keys().cloned().collect();
        names.sort();
        names
    };
    assert_eq!(objects.len(), 2, "{objects:?}");
    assert!(objects[0].starts_with("photos/") && objects[0].ends_with(".jpg"));
    assert!(objects[1].ends_with(".thumb.jpg"));
    // The same bytes again: another photo, the objects not sent twice.
    let second = upload(&mut photos, sent).await.unwrap();
    assert_ne!(first, second);
    let puts = |b: &Bucket| b.calls.iter().filter(|c| c.starts_with("PUT")).count();
    assert_eq!(puts(&bucket.lock().unwrap()), 2);

    // Read back through two tickets, whole and thumbnail.
    let t1 = submit_with_photo(&channel, apple(), &first).await;
    let t2 = submit_with_photo(&channel, apple(), &second).await;
    let full = photos.get_photo(get(&t1, &first, false)).await.unwrap();
    let full = full.into_inner().data;
    assert!(full.starts_with(&[0xFF, 0xD8]));
    let kept = bucket.lock().unwrap().objects.clone();
    assert!(kept.values().any(|v| *v == full), "served from the bucket");
    let thumb = photos.get_photo(get(&t1, &first, true)).await.unwrap();
    assert!(thumb.into_inner().data.len() < full.len());

    // Deleted on one ticket: the other's identical photo stays, objects too;
    // deleted on both, the objects go.
    let delete = |t: &pb::Ticket, id: &str| pb::DeletePhotoRequest {
        ticket_id: t.id.clone(),
        photo_id: id.into(),
    };
    photos
        .delete_photo(admin(delete(&t1, &first)))
        .await
        .unwrap();
    let gone = photos.get_photo(get(&t1, &first, false)).await.unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    let other = photos.get_photo(get(&t2, &second, false)).await.unwrap();
    assert_eq!(other.into_inner().data, full);
    assert_eq!(bucket.lock().unwrap().objects.len(), 2);
    photos
        .delete_photo(admin(delete(&t2, &second)))
        .await
        .unwrap();
    assert!(bucket.lock().unwrap().objects.is_empty());
    let calls = bucket.lock().unwrap().calls.clone();
    for method in ["PUT", "GET", "HEAD", "DELETE"] {
        assert!(calls.iter().any(|c| c.starts_with(method)), "{calls:?}");
    }

    // A store that refuses: UNAVAILABLE naming it, nothing acknowledged.
    bucket.lock().unwrap().objects.clear();
    server.stop_and_clean().await;
    let dir = temp_dir("s3-photos-down");
    let mut config = crate::common::config(&dir);
    config.store = postgres_db("s3down").await.unwrap();
    config.photos.store = "s3".into();
    config.photos.s3.endpoint = format!("http://{s3}");
    config.photos.s3.bucket = BUCKET.into();
    config.photos.s3.access_key_id = Some("WRONGKEY".into());
    config.photos.s3.secret_access_key = Some("xwn-test-secret".into());
    let server = TestServer::start(config).await;
    let mut photos = PhotoClient::new(server.channel().await);
    let refused = upload(&mut photos, fixtures::png(20, 20))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(
        refused
            .message()
            .contains(&format!("S3 http://{s3} bucket {BUCKET}"))
            && refused.message().contains("it answered 403 Forbidden"),
        "{}",
        refused.message()
    );
    assert!(bucket.lock().unwrap().objects.is_empty());
    server.stop_and_clean().await;
}
