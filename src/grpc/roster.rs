//! `RosterService`: the admin's calls on the roster, tokens, liaisons and
//! tickets. Every call passes the admin [`Gate`]; each action's audit entry
//! is built by the audit log's [`Entry`] and only handed over here.

use std::{net::SocketAddr, pin::Pin, sync::Arc, time::Instant};

use tokio_stream::Stream;

use tonic::{Request, Response, Status, Streaming};

use super::{
    call::{detach, Gate},
    convert::{corps_from_pb, format_from_pb, state_from_pb, talent_to_pb, talent_to_row},
    convert::{figure_to_pb, subtotal_to_pb, ticket_to_pb, tier_from_pb},
    deliveries,
};
use crate::{
    error::{blocking, Error},
    model::ids::TicketId,
    notify::Deliveries,
    pb,
    roster::admin::{ListRequest, RosterAdmin},
    roster::log::Roster,
    roster::{RawRow, RosterFormat, RowError},
    server::audit::{AuditLog, Entry, Upload},
    server::limits::caller::Caller,
    server::statuses,
    tickets::figures::FigureFilter,
    tickets::view::{self, Showing, Viewer},
    tickets::{Dispatcher, ACTION_FRAGMENT},
};

/// An upload refused before it was read whole: why, and how many bytes
/// had come by then.
struct Refused {
    status: Status,
    received: usize,
}

/// Reads a streamed upload whole: the first chunk names the format, the
/// total may not pass `limit` bytes, and the last chunk must have come by
/// `deadline` (the request timeout, so that a stalled upload is refused
/// here, heard and audited, rather than cut short by the timeout layer).
async fn read_upload(
    stream: Streaming<pb::RosterChunk>,
    limit: u64,
    deadline: Option<Instant>,
) -> Result<(RosterFormat, Vec<u8>), Refused> {
    let mut data = Vec::new();
    let read = read_chunks(stream, limit, deadline, &mut data).await;
    read.map(|format| (format, std::mem::take(&mut data)))
        .map_err(|status| Refused {
            status,
            received: data.len(),
        })
}

/// The next chunk, by `deadline`; a chunk tonic could not read is refused
/// as the transport's own refusals are ([`statuses::rewrite`]).
async fn next_chunk(
    stream: &mut Streaming<pb::RosterChunk>,
    deadline: Option<Instant>,
    received: usize,
) -> Result<Option<pb::RosterChunk>, Status> {
    let next = match deadline {
        None => stream.message().await,
        Some(at) => tokio::time::timeout_at(at.into(), stream.message())
            .await
            .map_err(|_| {
                Status::deadline_exceeded(format!(
                    "the upload did not arrive within the server's request timeout ({received} bytes came)"
                ))
            })?,
    };
    next.map_err(|status| {
        statuses::rewrite(&status, Some("xingweinong.v1.RosterChunk")).unwrap_or(status)
    })
}

async fn read_chunks(
    mut stream: Streaming<pb::RosterChunk>,
    limit: u64,
    deadline: Option<Instant>,
    data: &mut Vec<u8>,
) -> Result<RosterFormat, Status> {
    let mut format = None;
    while let Some(chunk) = next_chunk(&mut stream, deadline, data.len()).await? {
        match (format, format_from_pb(chunk.format)?) {
            (None, None) => {
                return Err(Error::invalid(
                    "format",
                    "the first chunk must say ROSTER_FORMAT_CSV or ROSTER_FORMAT_JSONL",
                )
                .into())
            }
            (None, Some(f)) => format = Some(f),
            (Some(f), Some(g)) if f != g => {
                return Err(Error::invalid(
                    "format",
                    "chunks of one upload must all have the same format",
                )
                .into())
            }
            _ => {}
        }
        if (data.len() + chunk.data.len()) as u64 > limit {
            return Err(too_large(limit));
        }
        data.extend_from_slice(&chunk.data);
    }
    format.ok_or_else(|| Error::invalid("data", "the upload is empty").into())
}

/// A whole file sent in one message: it must name its format and stay
/// within `limit` bytes, like a streamed upload.
fn whole_file(file: pb::RosterFile, limit: u64) -> Result<(RosterFormat, Vec<u8>), Refused> {
    let refused = |status: Status| Refused {
        status,
        received: file.data.len(),
    };
    let format = format_from_pb(file.format)
        .map_err(|e| refused(e.into()))?
        .ok_or_else(|| {
            refused(Error::invalid("format", "say ROSTER_FORMAT_CSV or ROSTER_FORMAT_JSONL").into())
        })?;
    if file.data.len() as u64 > limit {
        return Err(refused(too_large(limit)));
    }
    Ok((format, file.data))
}

/// The refusal of an upload, streamed or whole, past `limit` bytes.
fn too_large(limit: u64) -> Status {
    Error::ResourceExhausted(format!(
        "the upload is larger than the limit of {limit} bytes"
    ))
    .into()
}

/// Every problem of a checked file, as `CheckRosterFile` streams them.
pub(crate) type RowErrors = Pin<Box<dyn Stream<Item = Result<pb::RowError, Status>> + Send>>;

fn row_errors(errors: Vec<RowError>) -> Response<RowErrors> {
    Response::new(Box::pin(tokio_stream::iter(errors.into_iter().map(|e| {
        Ok(pb::RowError {
            line: e.line,
            field: e.field,
            message: e.message,
        })
    }))))
}

/// `RosterService`: every call needs the admin token.
/// Built field by field where the server is wired (`server::Apis`).
pub(crate) struct RosterApi {
    pub(crate) gate: Gate,
    pub(crate) admin: Arc<RosterAdmin>,
    pub(crate) roster: Arc<Roster>,
    pub(crate) dispatcher: Arc<Dispatcher>,
    pub(crate) deliveries: Deliveries,
    pub(crate) library: Arc<crate::knowledge::Library>,
    pub(crate) audit: Arc<AuditLog>,
    pub(crate) max_upload_bytes: u64,
    /// `notify.public_base_url`, or empty: action links start with it.
    pub(crate) public_base_url: String,
}

impl RosterApi {
    /// Audits an upload refused before it was read (its format, its size,
    /// its timeout) and gives back the caller's status.
    fn refused(
        &self,
        action: &'static str,
        refused: Refused,
        peer: Option<SocketAddr>,
        client: &Caller,
    ) -> Status {
        let Refused { status, received } = refused;
        let entry = Entry::refused_upload(action, received, status.message());
        self.audit.append(entry, peer, client);
        tracing::info!(
            audit = action,
            received,
            reason = status.message(),
            "upload refused"
        );
        status
    }

    /// Replaces the roster with a whole file, streamed or not.
    async fn import_roster_data(
        &self,
        format: RosterFormat,
        data: Vec<u8>,
        peer: Option<SocketAddr>,
        client: Caller,
    ) -> Result<Response<pb::ImportReport>, Status> {
        let upload = Upload::of(&data);
        let (roster, audit) = (self.roster.clone(), self.audit.clone());
        // A big import outlives the call's timeout or a caller who hangs
        // up, and is still logged and audited.
        let (accepted, version) = detach("import", async move {
            let outcome = roster.import(format, data).await.map_err(Status::from);
            let recorded = outcome.as_ref().copied();
            let recorded = recorded.map_err(|s| s.message().to_string());
            audit.append(Entry::import_roster(&upload, recorded), peer, &client);
            if let Ok((accepted, version)) = &outcome {
                tracing::info!(
                    audit = "import_roster",
                    bytes = upload.bytes,
                    accepted,
                    roster_version = version,
                    "roster replaced"
                );
            }
            outcome
        })
        .await?;
        Ok(Response::new(pb::ImportReport {
            accepted,
            errors: Vec::new(),
            roster_version: version,
        }))
    }

    /// Replaces the liaison list with a whole file, streamed or not.
    async fn import_liaisons_data(
        &self,
        format: RosterFormat,
        data: Vec<u8>,
        peer: Option<SocketAddr>,
        client: &Caller,
    ) -> Result<Response<pb::ImportReport>, Status> {
        let outcome = self.dispatcher.import_liaisons(format, &data).await;
        let upload = Upload::of(&data);
        let recorded = outcome.as_ref().copied().map_err(ToString::to_string);
        self.audit
            .append(Entry::import_liaisons(&upload, recorded), peer, client);
        let accepted = outcome?;
        tracing::info!(
            audit = "import_liaisons",
            bytes = upload.bytes,
            accepted,
            "liaisons replaced"
        );
        Ok(Response::new(pb::ImportReport {
            accepted,
            errors: Vec::new(),
            roster_version: self.admin.snapshot().version(),
        }))
    }
}

#[tonic::async_trait]
impl pb::roster_service_server::RosterService for RosterApi {
    #[tracing::instrument(skip_all)]
    async fn import_roster(
        &self,
        request: Request<Streaming<pb::RosterChunk>>,
    ) -> Result<Response<pb::ImportReport>, Status> {
        let call = self.gate.admin(request)?;
        let deadline = self.gate.deadline(call.arrival);
        let (format, data) = read_upload(call.message, self.max_upload_bytes, deadline)
            .await
            .map_err(|r| self.refused("import_roster", r, call.peer, &call.client))?;
        self.import_roster_data(format, data, call.peer, call.client)
            .await
    }

    #[tracing::instrument(skip_all)]
    async fn import_roster_file(
        &self,
        request: Request<pb::RosterFile>,
    ) -> Result<Response<pb::ImportReport>, Status> {
        let call = self.gate.admin(request)?;
        let (format, data) = whole_file(call.message, self.max_upload_bytes)
            .map_err(|r| self.refused("import_roster", r, call.peer, &call.client))?;
        self.import_roster_data(format, data, call.peer, call.client)
            .await
    }

    #[tracing::instrument(skip_all)]
    async fn upsert_talents(
        &self,
        request: Request<pb::UpsertTalentsRequest>,
    ) -> Result<Response<pb::UpsertTalentsResponse>, Status> {
        let call = self.gate.admin(request)?;
        let rows: Vec<RawRow> = (call.message.talents.iter().enumerate())
            .map(|(i, t)| talent_to_row(t, i as u64 + 1))
            .collect();
        let ids: Vec<String> = rows
            .iter()
            .map(|r| r.fields.get("id").cloned().unwrap_or_default())
            .collect();
        let (upserted, version) = self.roster.upsert(rows).await?;
        self.audit.append(
            Entry::upsert_talents(&ids, version),
            call.peer,
            &call.client,
        );
        tracing::info!(
            audit = "upsert_talents",
            upserted,
            roster_version = version,
            "talents upserted"
        );
        Ok(Response::new(pb::UpsertTalentsResponse {
            upserted,
            roster_version: version,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn remove_talents(
        &self,
        request: Request<pb::RemoveTalentsRequest>,
    ) -> Result<Response<pb::RemoveTalentsResponse>, Status> {
        let call = self.gate.admin(request)?;
        let ids = call.message.ids;
        let (removed, not_found, version) = self.roster.remove(ids.clone()).await?;
        self.audit.append(
            Entry::remove_talents(&ids, removed, version),
            call.peer,
            &call.client,
        );
        tracing::info!(
            audit = "remove_talents",
            removed,
            roster_version = version,
            "talents removed"
        );
        Ok(Response::new(pb::RemoveTalentsResponse {
            removed,
            not_found,
            roster_version: version,
        }))
    }

    async fn get_roster_stats(
        &self,
        request: Request<pb::GetRosterStatsRequest>,
    ) -> Result<Response<pb::RosterStats>, Status> {
        let _call = self.gate.admin(request)?;
        let (s, version) = self.admin.stats();
        Ok(Response::new(pb::RosterStats {
            total: s.total,
            city: s.city,
            county_town: s.county_town,
            village: s.village,
            corps_members: s.corps_members,
            by_corps: s.by_corps.into_iter().collect(),
            by_county: s.by_county.into_iter().collect(),
            roster_version: version,
            active: s.active,
        }))
    }

    async fn list_talents(
        &self,
        request: Request<pb::ListTalentsRequest>,
    ) -> Result<Response<pb::ListTalentsResponse>, Status> {
        let call = self.gate.admin(request)?;
        let r = call.message;
        let page = self.admin.list_talents(&ListRequest {
            county: r.county,
            division_code: r.division_code,
            tier: tier_from_pb(r.tier, "tier")?,
            corps: corps_from_pb(r.corps, "corps")?,
            specialty: r.specialty,
            query: r.query,
            include_inactive: r.include_inactive,
            page_size: r.page_size,
            page_token: r.page_token,
        })?;
        let shown = |t| talent_to_pb(t, view::phone(t, Showing::Roster, Viewer::Admin));
        Ok(Response::new(pb::ListTalentsResponse {
            talents: page.talents.iter().map(|t| shown(t)).collect(),
            next_page_token: page.next_page_token.unwrap_or_default(),
            total: page.total,
            roster_version: page.roster_version,
        }))
    }

    async fn issue_responder_token(
        &self,
        request: Request<pb::IssueResponderTokenRequest>,
    ) -> Result<Response<pb::IssueResponderTokenResponse>, Status> {
        let call = self.gate.admin(request)?;
        let subject = call.message.talent_id.trim();
        let (token, expires_at_ms, role) = self
            .dispatcher
            .issue_token(subject, call.message.ttl_seconds)
            .await?;
        let entry = Entry::issue_responder_token(subject, role, expires_at_ms);
        self.audit.append(entry, call.peer, &call.client);
        tracing::info!(audit = "issue_responder_token", subject = %call.message.talent_id, role = role.key(), "token issued");
        Ok(Response::new(pb::IssueResponderTokenResponse {
            token,
            expires_at_ms,
            role: role.key().into(),
        }))
    }

    async fn issue_action_link(
        &self,
        request: Request<pb::IssueActionLinkRequest>,
    ) -> Result<Response<pb::IssueActionLinkResponse>, Status> {
        let call = self.gate.admin(request)?;
        let ticket = TicketId::new(call.message.ticket_id.trim());
        let (token, expires_at_ms, talent) = self.dispatcher.issue_action_token(&ticket).await?;
        let entry = Entry::issue_action_link(ticket.as_str(), talent.as_str(), expires_at_ms);
        self.audit.append(entry, call.peer, &call.client);
        tracing::info!(audit = "issue_action_link", ticket = %ticket, talent = %talent, "action link issued");
        Ok(Response::new(pb::IssueActionLinkResponse {
            action_url: format!("{}/expert{ACTION_FRAGMENT}{token}", self.public_base_url),
            token,
            expires_at_ms,
            talent_id: talent.to_string(),
        }))
    }

    async fn import_liaisons(
        &self,
        request: Request<Streaming<pb::RosterChunk>>,
    ) -> Result<Response<pb::ImportReport>, Status> {
        let call = self.gate.admin(request)?;
        let deadline = self.gate.deadline(call.arrival);
        let (format, data) = read_upload(call.message, self.max_upload_bytes, deadline)
            .await
            .map_err(|r| self.refused("import_liaisons", r, call.peer, &call.client))?;
        self.import_liaisons_data(format, data, call.peer, &call.client)
            .await
    }

    async fn import_liaisons_file(
        &self,
        request: Request<pb::RosterFile>,
    ) -> Result<Response<pb::ImportReport>, Status> {
        let call = self.gate.admin(request)?;
        let (format, data) = whole_file(call.message, self.max_upload_bytes)
            .map_err(|r| self.refused("import_liaisons", r, call.peer, &call.client))?;
        self.import_liaisons_data(format, data, call.peer, &call.client)
            .await
    }

    type CheckRosterFileStream = RowErrors;

    #[tracing::instrument(skip_all)]
    async fn check_roster_file(
        &self,
        request: Request<pb::RosterFile>,
    ) -> Result<Response<RowErrors>, Status> {
        let call = self.gate.admin(request)?;
        let (format, data) =
            whole_file(call.message, self.max_upload_bytes).map_err(|r| r.status)?;
        let admin = self.admin.clone();
        let errors = blocking("roster", move || Ok(admin.check_roster(format, &data))).await?;
        tracing::info!(problems = errors.len(), "roster file checked");
        Ok(row_errors(errors))
    }

    type CheckLiaisonsFileStream = RowErrors;

    #[tracing::instrument(skip_all)]
    async fn check_liaisons_file(
        &self,
        request: Request<pb::RosterFile>,
    ) -> Result<Response<RowErrors>, Status> {
        let call = self.gate.admin(request)?;
        let (format, data) =
            whole_file(call.message, self.max_upload_bytes).map_err(|r| r.status)?;
        let errors = blocking("liaisons", move || {
            Ok(Dispatcher::check_liaisons(format, &data))
        })
        .await?;
        tracing::info!(problems = errors.len(), "liaison file checked");
        Ok(row_errors(errors))
    }

    async fn list_tickets(
        &self,
        request: Request<pb::ListTicketsRequest>,
    ) -> Result<Response<pb::ListTicketsResponse>, Status> {
        let call = self.gate.admin(request)?;
        let r = call.message;
        let state = state_from_pb(r.state)?;
        let (list, next) = self
            .dispatcher
            .list_tickets(state, r.assignee_id.trim(), r.page_size, &r.page_token)
            .await?;
        let snapshot = self.admin.snapshot();
        Ok(Response::new(pb::ListTicketsResponse {
            tickets: list
                .iter()
                .map(|t| ticket_to_pb(t, &[], Viewer::Admin, &snapshot))
                .collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn list_deliveries(
        &self,
        request: Request<pb::ListDeliveriesRequest>,
    ) -> Result<Response<pb::ListDeliveriesResponse>, Status> {
        let call = self.gate.admin(request)?;
        Ok(Response::new(
            deliveries::list(&self.deliveries, call.message).await?,
        ))
    }

    #[tracing::instrument(skip_all)]
    async fn retry_delivery(
        &self,
        request: Request<pb::RetryDeliveryRequest>,
    ) -> Result<Response<pb::RetryDeliveryResponse>, Status> {
        let call = self.gate.admin(request)?;
        let retried = deliveries::retry(&self.deliveries, &call.message).await?;
        let (endpoint, id) = deliveries::retry_target(&call.message);
        let entry = Entry::retry_delivery(endpoint, id, retried.retried);
        self.audit.append(entry, call.peer, &call.client);
        tracing::info!(audit = "retry_delivery", endpoint = %endpoint, retried = retried.retried, "deliveries retried");
        Ok(Response::new(retried))
    }

    #[tracing::instrument(skip_all)]
    async fn responder_figures(
        &self,
        request: Request<pb::ResponderFiguresRequest>,
    ) -> Result<Response<pb::ResponderFiguresResponse>, Status> {
        let call = self.gate.admin(request)?;
        let r = call.message;
        let filter = FigureFilter {
            tier: tier_from_pb(r.tier, "tier")?,
            county: r.county,
            from_ms: r.from_ms,
            to_ms: r.to_ms,
        };
        let figures = self.dispatcher.responder_figures(&filter).await?;
        Ok(Response::new(pb::ResponderFiguresResponse {
            figures: figures.responders.iter().map(figure_to_pb).collect(),
            from_ms: figures.window.from_ms,
            to_ms: figures.window.to_ms,
            by_tier: figures.by_tier.iter().map(subtotal_to_pb).collect(),
            by_county: figures.by_county.iter().map(subtotal_to_pb).collect(),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn publish_knowledge(
        &self,
        request: Request<pb::PublishKnowledgeRequest>,
    ) -> Result<Response<pb::KnowledgeEntry>, Status> {
        let call = self.gate.admin(request)?;
        let id = call.message.ticket_id.trim().to_string();
        let library = self.library.clone();
        let entry = detach("knowledge", async move {
            library
                .publish_ticket(&id, crate::knowledge::Publisher::Admin)
                .await
        })
        .await?;
        self.audit.append(
            Entry::knowledge("publish_knowledge", &entry.id, true),
            call.peer,
            &call.client,
        );
        Ok(Response::new(super::convert::entry_to_pb(&entry)))
    }

    #[tracing::instrument(skip_all)]
    async fn unpublish_knowledge(
        &self,
        request: Request<pb::UnpublishKnowledgeRequest>,
    ) -> Result<Response<pb::UnpublishKnowledgeResponse>, Status> {
        let call = self.gate.admin(request)?;
        let id = call.message.ticket_id.trim().to_string();
        let (library, ticket) = (self.library.clone(), id.clone());
        let removed = detach("knowledge", async move { library.unpublish(&ticket).await }).await?;
        self.audit.append(
            Entry::knowledge("unpublish_knowledge", &id, removed),
            call.peer,
            &call.client,
        );
        Ok(Response::new(pb::UnpublishKnowledgeResponse { removed }))
    }
}
