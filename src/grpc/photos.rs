//! `PhotoService`: uploads open to farmers (one photo a call), photos read
//! by who may see their ticket, deletions by admins (audited).

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::call::{detach, record_ticket, Gate};
use crate::{
    model::ids::TicketId,
    pb,
    photos::Photos,
    server::audit::{AuditLog, Entry},
    tickets::Dispatcher,
};

/// What every photo is served as.
const CONTENT_TYPE: &str = "image/jpeg";

pub(crate) struct PhotoApi {
    pub(crate) gate: Gate,
    pub(crate) photos: Arc<Photos>,
    pub(crate) dispatcher: Arc<Dispatcher>,
    pub(crate) audit: Arc<AuditLog>,
}

#[tonic::async_trait]
impl pb::photo_service_server::PhotoService for PhotoApi {
    async fn upload_photo(
        &self,
        request: Request<pb::UploadPhotoRequest>,
    ) -> Result<Response<pb::UploadPhotoResponse>, Status> {
        let call = self.gate.farmer(request)?;
        let (r, photos) = (call.message, self.photos.clone());
        let uploaded = detach("photo", async move {
            photos.upload(r.data, &r.idempotency_key).await
        })
        .await?;
        tracing::info!(photo = %uploaded.id, "photo uploaded");
        Ok(Response::new(pb::UploadPhotoResponse {
            photo_id: uploaded.id,
            width: uploaded.width,
            height: uploaded.height,
            uploaded_type: uploaded.uploaded_type,
        }))
    }

    async fn get_photo(
        &self,
        request: Request<pb::GetPhotoRequest>,
    ) -> Result<Response<pb::Photo>, Status> {
        let call = self.gate.asking(request, |m| &m.ticket_secret).await?;
        let r = call.message;
        record_ticket(&r.ticket_id);
        let data = self
            .photos
            .get(
                &self.dispatcher,
                &TicketId::new(r.ticket_id.trim()),
                &call.caller,
                &r.photo_id,
                r.thumbnail,
            )
            .await?;
        Ok(Response::new(pb::Photo {
            data,
            content_type: CONTENT_TYPE.into(),
            photo_id: r.photo_id,
        }))
    }

    async fn delete_photo(
        &self,
        request: Request<pb::DeletePhotoRequest>,
    ) -> Result<Response<pb::DeletePhotoResponse>, Status> {
        let call = self.gate.admin(request)?;
        let r = call.message;
        record_ticket(&r.ticket_id);
        let removed = self
            .photos
            .remove(
                &self.dispatcher,
                &TicketId::new(r.ticket_id.trim()),
                &r.photo_id,
            )
            .await;
        if removed.is_ok() {
            let entry = Entry::delete_photo(r.ticket_id.trim(), &r.photo_id);
            self.audit.append(entry, call.peer, &call.client);
            tracing::info!(audit = "delete_photo", photo = %r.photo_id, "photo deleted");
        }
        removed?;
        Ok(Response::new(pb::DeletePhotoResponse {}))
    }
}
