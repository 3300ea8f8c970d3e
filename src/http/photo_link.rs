//! `GET /photo/<ticket id>/<photo id>?t=<token>[&full=1]`: a photo as an
//! image, for an `<img>` or a notification's thumbnail link, which cannot
//! send an `authorization` header. The token in the address (an action
//! link's, a responder's or liaison's) becomes the bearer of an in-process
//! `PhotoService.GetPhoto` call on the gRPC routes: the same gate, limits
//! and authorization as every other call; this file adds no rule of its
//! own. The query is never logged (spans record the path only). Errors are
//! Connect error bodies with their HTTP status.

use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, Uri};
use prost::Message;
use tonic::body::Body;

use super::{
    connect::{call, grpc_request, unary_reply, Transcoder},
    errors::ConnectError,
    Inner,
};
use crate::pb;

/// Where photo links start.
pub(crate) const PREFIX: &str = "/photo/";
const METHOD: &str = "/xingweinong.v1.PhotoService/GetPhoto";

/// What a link asks for: ticket, photo, token, whole photo or thumbnail.
#[derive(Debug, PartialEq, Eq)]
struct Asked {
    ticket: String,
    photo: String,
    token: String,
    full: bool,
}

fn parse(uri: &Uri) -> Result<Asked, ConnectError> {
    let bad = |m: &str| ConnectError::new(tonic::Code::InvalidArgument, m.to_string());
    let rest = uri
        .path()
        .strip_prefix(PREFIX)
        .ok_or_else(|| bad("not a photo link"))?;
    let (ticket, photo) = rest
        .split_once('/')
        .ok_or_else(|| bad("a photo link is /photo/<ticket id>/<photo id>?t=<token>"))?;
    let (mut token, mut full) = (String::new(), false);
    for pair in uri.query().unwrap_or_default().split('&') {
        match pair.split_once('=') {
            Some(("t", v)) => token = v.to_string(),
            Some(("full", "1")) => full = true,
            _ => {}
        }
    }
    Ok(Asked {
        ticket: ticket.to_string(),
        photo: photo.to_string(),
        token,
        full,
    })
}

/// Serves one photo link.
pub(crate) async fn serve<S: Inner>(
    inner: S,
    transcoder: Arc<Transcoder>,
    request: Request<Body>,
) -> Response<Body> {
    match photo(inner, request).await {
        Ok(photo) => {
            let mut response = Response::new(Body::new(http_body_util::Full::new(Bytes::from(
                photo.data,
            ))));
            let headers = response.headers_mut();
            let content_type = HeaderValue::from_str(&photo.content_type)
                .unwrap_or(HeaderValue::from_static("image/jpeg"));
            headers.insert(header::CONTENT_TYPE, content_type);
            headers.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, max-age=300"),
            );
            headers.insert(
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            );
            headers.insert(
                "x-content-type-options",
                HeaderValue::from_static("nosniff"),
            );
            response
        }
        Err(e) => e.into_response(transcoder.pool()),
    }
}

async fn photo<S: Inner>(inner: S, request: Request<Body>) -> Result<pb::Photo, ConnectError> {
    let (mut parts, _) = request.into_parts();
    let asked = parse(&parts.uri)?;
    parts.uri = Uri::from_static(METHOD);
    parts.headers.remove(header::AUTHORIZATION);
    if !asked.token.is_empty() {
        let bearer = HeaderValue::from_str(&format!("Bearer {}", asked.token)).map_err(|_| {
            ConnectError::new(
                tonic::Code::Unauthenticated,
                "the link's token is malformed",
            )
        })?;
        parts.headers.insert(header::AUTHORIZATION, bearer);
    }
    let message = pb::GetPhotoRequest {
        ticket_id: asked.ticket,
        photo_id: asked.photo,
        ticket_secret: String::new(),
        thumbnail: !asked.full,
    };
    let response = call(inner, grpc_request(&parts, &message.encode_to_vec(), None)).await;
    let reply = unary_reply(response).await?;
    pb::Photo::decode(reply).map_err(|e| {
        ConnectError::new(tonic::Code::Internal, format!("cannot read the photo: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_name_ticket_photo_token_and_size() {
        let uri: Uri = "/photo/tk-1/abc?t=xwn1.aa.bb&full=1".parse().unwrap();
        assert_eq!(
            parse(&uri).unwrap(),
            Asked {
                ticket: "tk-1".into(),
                photo: "abc".into(),
                token: "xwn1.aa.bb".into(),
                full: true
            }
        );
        let uri: Uri = "/photo/tk-1/abc?t=x".parse().unwrap();
        assert!(!parse(&uri).unwrap().full);
        assert!(parse(&"/photo/tk-1".parse().unwrap()).is_err());
    }
}
