//! Photos over gRPC and Connect JSON: upload, submit naming them, read by
//! each kind of caller (and refused to the others), admin deletion,
//! validation errors with their codes, and the size limits: a 10 MiB
//! photo fits UploadPhoto while the other methods keep their own limit.

use base64::Engine;
use tonic::{transport::Channel, Code};
use xingweinong::{pb, photos::clean::fixtures};

use crate::common::*;

type PhotoClient = pb::photo_service_client::PhotoServiceClient<Channel>;

/// v1 near the farmer, v2 further; liaison lz1 of the farmer's village,
/// lz2 of another.
const ROSTER: &str = "\
v1,村一,13900000011,village,,苹果,苹果腐烂病,610527106202,35.000,109.500,2,true
v2,村二,13900000012,village,,苹果,,610527106203,35.010,109.500,2,true
";
const VILLAGE: &str = "610527106202";

async fn start(tag: &str) -> (TestServer, Channel) {
    let dir = temp_dir(tag);
    let server = TestServer::start(config(&dir)).await;
    let channel = server.channel().await;
    import_rows(&channel, ROSTER).await;
    let list = "id,name,phone,villages\nlz1,党员甲,13600000001,610527106202\nlz2,党员乙,13600000002,610527106203\n";
    RosterClient::new(channel.clone())
        .import_liaisons(admin(tokio_stream::iter(vec![csv_chunk(list)])))
        .await
        .unwrap();
    (server, channel)
}

async fn upload(
    photos: &mut PhotoClient,
    data: Vec<u8>,
) -> Result<pb::UploadPhotoResponse, tonic::Status> {
    photos
        .upload_photo(pb::UploadPhotoRequest {
            data,
            idempotency_key: String::new(),
        })
        .await
        .map(|r| r.into_inner())
}

fn get(ticket: &str, photo: &str, secret: &str, thumbnail: bool) -> pb::GetPhotoRequest {
    pb::GetPhotoRequest {
        ticket_id: ticket.into(),
        photo_id: photo.into(),
        ticket_secret: secret.into(),
        thumbnail,
    }
}

/// The field a refusal's `google.rpc.BadRequest` names.
fn violated_field(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    let details = status
        .get_details_bad_request()
        .expect("a BadRequest detail");
    details.field_violations[0].field.clone()
}

#[tokio::test]
async fn a_photo_goes_with_its_ticket_without_its_gps_and_is_seen_only_by_who_may() {
    let (server, channel) = start("photos-grpc").await;
    let mut photos = PhotoClient::new(channel.clone());
    let mut v1 = Responder::new(&channel, "v1").await;
    v1.online().await;

    let sent = fixtures::jpeg_with_gps(64, 48);
    assert!(sent.windows(6).any(|w| w == b"Exif\0\0"));
    let up = upload(&mut photos, sent).await.unwrap();
    assert_eq!(
        (up.width, up.height, up.uploaded_type.as_str()),
        (48, 64, "image/jpeg")
    );
    let other = upload(&mut photos, fixtures::png(30, 20)).await.unwrap();

    let mut farmer = TicketClient::new(channel.clone());
    let mut request = submit_request("苹果腐烂病", None, "");
    request.location = Some(pb::Location {
        kind: Some(pb::location::Kind::DivisionCode(VILLAGE.into())),
    });
    request.photo_ids = vec![up.photo_id.clone()];
    let t = farmer.submit_problem(request).await.unwrap().into_inner();
    assert_eq!(t.photo_ids, vec![up.photo_id.clone()]);
    assert_eq!(t.assignee.as_ref().unwrap().id, "v1", "offered to v1");
    let read = fetch(&mut farmer, &t).await;
    assert_eq!(read.photo_ids, vec![up.photo_id.clone()]);

    // The farmer, with the secret: the whole photo and its thumbnail,
    // JPEG, without EXIF (checked on the bytes served, which are the
    // bytes stored).
    let full = photos
        .get_photo(get(&t.id, &up.photo_id, &t.ticket_secret, false))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(full.content_type, "image/jpeg");
    assert!(!full.data.windows(6).any(|w| w == b"Exif\0\0"));
    assert!(!full.data.windows(4).any(|w| w == b"II*\0" || w == b"MM\0*"));
    assert!(full.data.starts_with(&[0xFF, 0xD8]));
    let thumb = photos
        .get_photo(get(&t.id, &up.photo_id, &t.ticket_secret, true))
        .await
        .unwrap()
        .into_inner();
    assert!(thumb.data.starts_with(&[0xFF, 0xD8]));

    let code = |r: Result<tonic::Response<pb::Photo>, tonic::Status>| match r {
        Ok(_) => Code::Ok,
        Err(s) => s.code(),
    };
    let ask = |token: &str| with_token(get(&t.id, &up.photo_id, "", true), token);
    // Who may: the responder offered it, through their token or the
    // action link; the village's liaison; an admin.
    assert_eq!(code(photos.get_photo(ask(&v1.token)).await), Code::Ok);
    let link = RosterClient::new(channel.clone())
        .issue_action_link(admin(pb::IssueActionLinkRequest {
            ticket_id: t.id.clone(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(photos.get_photo(ask(&link.token)).await), Code::Ok);
    // The same as an image link (a notification's thumbnail).
    let path = format!("/photo/{}/{}", t.id, up.photo_id);
    let reply = http_get(server.addr, &format!("{path}?t={}", link.token)).await;
    assert!(
        reply.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&reply[..200])
    );
    let text = String::from_utf8_lossy(&reply);
    assert!(
        text.to_ascii_lowercase()
            .contains("content-type: image/jpeg"),
        "{text:.300}"
    );
    let reply = http_get(server.addr, &path).await;
    assert!(
        reply.starts_with(b"HTTP/1.1 401"),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    let v2_link = format!("{path}?t={}", token_for(&channel, "v2").await);
    assert!(http_get(server.addr, &v2_link)
        .await
        .starts_with(b"HTTP/1.1 403"));
    let lz1 = token_for(&channel, "lz1").await;
    assert_eq!(code(photos.get_photo(ask(&lz1)).await), Code::Ok);
    assert_eq!(code(photos.get_photo(ask(ADMIN_TOKEN)).await), Code::Ok);
    // Who may not: another responder, another village's liaison, a wrong
    // secret, nobody at all, a photo the ticket does not name.
    let v2 = token_for(&channel, "v2").await;
    assert_eq!(
        code(photos.get_photo(ask(&v2)).await),
        Code::PermissionDenied
    );
    let lz2 = token_for(&channel, "lz2").await;
    assert_eq!(
        code(photos.get_photo(ask(&lz2)).await),
        Code::PermissionDenied
    );
    let wrong = "0".repeat(32);
    assert_eq!(
        code(
            photos
                .get_photo(get(&t.id, &up.photo_id, &wrong, true))
                .await
        ),
        Code::PermissionDenied
    );
    assert_eq!(
        code(photos.get_photo(get(&t.id, &up.photo_id, "", true)).await),
        Code::Unauthenticated
    );
    assert_eq!(
        code(
            photos
                .get_photo(get(&t.id, &other.photo_id, &t.ticket_secret, true))
                .await
        ),
        Code::NotFound
    );
    // Accepted, it is still the responder's; declined, it no longer is.
    v1.accept(&t.id).await.unwrap();
    assert_eq!(code(photos.get_photo(ask(&v1.token)).await), Code::Ok);

    // Deleted by an admin (not by anyone else), audited.
    let delete = pb::DeletePhotoRequest {
        ticket_id: t.id.clone(),
        photo_id: up.photo_id.clone(),
    };
    let refused = photos
        .delete_photo(with_token(delete.clone(), &v1.token))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    photos.delete_photo(admin(delete)).await.unwrap();
    assert_eq!(
        code(
            photos
                .get_photo(get(&t.id, &up.photo_id, &t.ticket_secret, true))
                .await
        ),
        Code::NotFound
    );
    let audit = std::fs::read_to_string(server.data_dir.join("audit.jsonl")).unwrap();
    assert!(
        audit.contains("\"delete_photo\"") && audit.contains(&up.photo_id),
        "{audit}"
    );
    server.stop_and_clean().await;
}

#[tokio::test]
async fn a_decline_ends_a_responders_view_of_the_photos() {
    let (server, channel) = start("photos-decline").await;
    let mut photos = PhotoClient::new(channel.clone());
    let mut v1 = Responder::new(&channel, "v1").await;
    v1.online().await;
    let up = upload(&mut photos, fixtures::png(20, 20)).await.unwrap();
    let mut request = submit_request("苹果腐烂病", at_point(35.0, 109.5), "");
    request.photo_ids = vec![up.photo_id.clone()];
    let t = TicketClient::new(channel.clone())
        .submit_problem(request)
        .await
        .unwrap()
        .into_inner();
    let token = v1.token.clone();
    let ask = || with_token(get(&t.id, &up.photo_id, "", true), &token);
    photos.get_photo(ask()).await.unwrap();
    v1.decline(&t.id).await.unwrap();
    let refused = photos.get_photo(ask()).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    server.stop_and_clean().await;
}

#[tokio::test]
async fn bad_uploads_and_bad_references_are_refused_naming_the_field() {
    let (server, channel) = start("photos-bad").await;
    let mut photos = PhotoClient::new(channel.clone());
    let refused = upload(&mut photos, b"GIF89a not really".to_vec())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(violated_field(&refused), "data");
    assert!(
        refused.message().contains("unsupported image format"),
        "{refused:?}"
    );
    let refused = upload(&mut photos, b"<html>photo.jpg</html>".to_vec())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().contains("not an image"), "{refused:?}");

    let mut farmer = TicketClient::new(channel.clone());
    let mut request = submit_request("苹果腐烂病", at_point(35.0, 109.5), "");
    request.photo_ids = vec!["f".repeat(64)];
    let refused = farmer.submit_problem(request.clone()).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(violated_field(&refused), "photo_ids[0]");
    request.photo_ids = vec!["f".repeat(64); 7];
    let refused = farmer.submit_problem(request).await.unwrap_err();
    assert_eq!(violated_field(&refused), "photo_ids");
    server.stop_and_clean().await;
}

#[tokio::test]
async fn a_10_mib_photo_fits_upload_photo_and_the_limit_is_resource_exhausted() {
    let (server, channel) = start("photos-size").await;
    let mut photos = PhotoClient::new(channel.clone());
    // About 9.9 MB of noise: over every other method's 8 MiB message limit.
    let big = fixtures::noise_png(1900, 1730);
    assert!(big.len() > 9 << 20 && big.len() < 10 << 20, "{}", big.len());
    let up = upload(&mut photos, big.clone()).await.unwrap();
    assert_eq!((up.width, up.height), (1900, 1730));
    // Over Connect JSON too (base64 in a 13 MB body).
    let b64 = base64::engine::general_purpose::STANDARD.encode(&big);
    let reply = connect_json(
        server.addr,
        "PhotoService/UploadPhoto",
        &format!("{{\"data\":\"{b64}\"}}"),
    )
    .await;
    assert!(
        reply.starts_with("HTTP/1.1 200"),
        "{}",
        &reply[..reply.len().min(300)]
    );
    assert!(
        reply.contains("\"photoId\":\"") && !reply.contains(&up.photo_id),
        "the same picture again: a photo of its own"
    );

    // Past the photo limit: RESOURCE_EXHAUSTED, by our check just above
    // it and by the method's message limit further on.
    let mut over = big.clone();
    over.resize((10 << 20) + 10, 0);
    let refused = upload(&mut photos, over).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    let mut far_over = big;
    far_over.resize(11 << 20, 0);
    let refused = upload(&mut photos, far_over).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    // Other methods keep their own limit.
    let mut farmer = TicketClient::new(channel.clone());
    let huge = submit_request(&"苹".repeat(3 << 20), at_point(35.0, 109.5), "");
    let refused = farmer.submit_problem(huge).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    server.stop_and_clean().await;
}

/// A GET on a raw HTTP/1.1 connection: the whole reply.
async fn http_get(addr: std::net::SocketAddr, path: &str) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).await.unwrap();
    reply
}

/// A Connect JSON call on a raw HTTP/1.1 connection: the whole reply.
async fn connect_json(addr: std::net::SocketAddr, method: &str, body: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /xingweinong.v1.{method} HTTP/1.1\r\nHost: {addr}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body.as_bytes()).await.unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).await.unwrap();
    String::from_utf8_lossy(&reply).into_owned()
}

#[tokio::test]
async fn photos_over_connect_json_with_errors_as_connect_codes() {
    let (server, channel) = start("photos-connect").await;
    let b64 = |data: &[u8]| base64::engine::general_purpose::STANDARD.encode(data);
    let reply = connect_json(
        server.addr,
        "PhotoService/UploadPhoto",
        &format!(
            "{{\"data\":\"{}\",\"idempotencyKey\":\"k-1\"}}",
            b64(&fixtures::png(40, 30))
        ),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let body: serde_json::Value =
        serde_json::from_str(reply.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    let id = body["photoId"].as_str().unwrap().to_string();
    assert_eq!(body["width"], 40);

    let submit = format!(
        "{{\"text\":\"苹果腐烂病\",\"location\":{{\"divisionCode\":\"{VILLAGE}\"}},\"photoIds\":[\"{id}\"]}}"
    );
    let reply = connect_json(server.addr, "TicketService/SubmitProblem", &submit).await;
    let ticket: serde_json::Value =
        serde_json::from_str(reply.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(ticket["photoIds"][0], id.as_str());
    let get = format!(
        "{{\"ticketId\":\"{}\",\"photoId\":\"{id}\",\"ticketSecret\":\"{}\",\"thumbnail\":true}}",
        ticket["id"].as_str().unwrap(),
        ticket["ticketSecret"].as_str().unwrap()
    );
    let reply = connect_json(server.addr, "PhotoService/GetPhoto", &get).await;
    let photo: serde_json::Value =
        serde_json::from_str(reply.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(photo["contentType"], "image/jpeg");
    let data = base64::engine::general_purpose::STANDARD
        .decode(photo["data"].as_str().unwrap())
        .unwrap();
    assert!(data.starts_with(&[0xFF, 0xD8]));

    let reply = connect_json(
        server.addr,
        "PhotoService/UploadPhoto",
        &format!("{{\"data\":\"{}\"}}", b64(b"plain text named leaf.jpg")),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    assert!(
        reply.contains("\"code\":\"invalid_argument\"") && reply.contains("data: is not an image"),
        "{reply}"
    );
    let wrong = get
        .replace("\"thumbnail\":true", "\"thumbnail\":false")
        .replace(ticket["ticketSecret"].as_str().unwrap(), &"0".repeat(32));
    let reply = connect_json(server.addr, "PhotoService/GetPhoto", &wrong).await;
    assert!(reply.contains("\"code\":\"permission_denied\""), "{reply}");
    drop(channel);
    server.stop_and_clean().await;
}

#[tokio::test]
async fn upload_and_read_over_grpc_web() {
    let (server, channel) = start("photos-grpc-web").await;
    let addr = server.addr;
    // A 9.7 MB picture: over the 8 MiB message limit of the other
    // methods, within UploadPhoto's, over gRPC-Web as over gRPC.
    let sent = fixtures::noise_png(1800, 1800);
    assert!(sent.len() > 8 << 20, "{}", sent.len());
    let upload = |data: Vec<u8>| async move {
        let request = pb::UploadPhotoRequest {
            data,
            idempotency_key: String::new(),
        };
        crate::web::grpc_web(addr, "PhotoService/UploadPhoto", &request).await
    };
    let (messages, status, message) = upload(sent).await;
    assert_eq!(status, "0", "{message}");
    let up: pb::UploadPhotoResponse = prost::Message::decode(messages[0].clone()).unwrap();
    assert_eq!((up.width, up.height), (1800, 1800));

    // Not a picture: INVALID_ARGUMENT naming the field.
    let (messages, status, message) = upload(b"GIF89a not really".to_vec()).await;
    assert!(messages.is_empty());
    assert_eq!(
        status,
        (Code::InvalidArgument as i32).to_string(),
        "{message}"
    );
    assert!(message.starts_with("data"), "{message}");

    let mut request = submit_request("苹果腐烂病", at_point(35.0, 109.5), "");
    request.photo_ids = vec![up.photo_id.clone()];
    let t = TicketClient::new(channel)
        .submit_problem(request)
        .await
        .unwrap()
        .into_inner();
    let (messages, status, message) = crate::web::grpc_web(
        addr,
        "PhotoService/GetPhoto",
        &get(&t.id, &up.photo_id, &t.ticket_secret, true),
    )
    .await;
    assert_eq!(status, "0", "{message}");
    let photo: pb::Photo = prost::Message::decode(messages[0].clone()).unwrap();
    assert_eq!(photo.content_type, "image/jpeg");
    assert!(photo.data.starts_with(&[0xFF, 0xD8]) && photo.data.ends_with(&[0xFF, 0xD9]));
    // Without the ticket's secret: refused.
    let (messages, status, _) = crate::web::grpc_web(
        addr,
        "PhotoService/GetPhoto",
        &get(&t.id, &up.photo_id, "", true),
    )
    .await;
    assert!(messages.is_empty());
    assert_ne!(status, "0");
}
