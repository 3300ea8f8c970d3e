//! gRPC adapters of the ticket services: `TicketService` for farmers'
//! front ends (ticket id + secret) and `ResponderService` for responders and
//! liaisons (bearer token), with the ticket conversions.

use std::{pin::Pin, sync::Arc};

use tokio_stream::{Stream, StreamExt};
use tonic::{metadata::MetadataMap, Request, Response, Status};

use super::{corps_to_pb, location_from_pb, status, talent_to_pb, tier_to_pb, Limits};
use crate::{
    error::Error,
    matching::{Location, Service},
    model::ids::{TalentId, TicketId},
    pb,
    search::Snapshot,
    tickets::{
        Availability, Dispatcher, Event, EventKind, Principal, Push, Submission, Ticket,
        TicketState,
    },
};

/// Who looks at a ticket decides what of it they see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viewer<'a> {
    Farmer,
    Responder(&'a str),
    Liaison,
    Admin,
}

pub fn state_to_pb(s: TicketState) -> pb::TicketState {
    match s {
        TicketState::Queued => pb::TicketState::Queued,
        TicketState::Offered => pb::TicketState::Offered,
        TicketState::Accepted => pb::TicketState::Accepted,
        TicketState::Resolved => pb::TicketState::Resolved,
        TicketState::Unroutable => pb::TicketState::Unroutable,
        TicketState::Cancelled => pb::TicketState::Cancelled,
    }
}

pub fn state_from_pb(value: i32) -> Result<Option<TicketState>, Status> {
    Ok(match pb::TicketState::try_from(value) {
        Ok(pb::TicketState::Unspecified) => None,
        Ok(pb::TicketState::Queued) => Some(TicketState::Queued),
        Ok(pb::TicketState::Offered) => Some(TicketState::Offered),
        Ok(pb::TicketState::Accepted) => Some(TicketState::Accepted),
        Ok(pb::TicketState::Resolved) => Some(TicketState::Resolved),
        Ok(pb::TicketState::Unroutable) => Some(TicketState::Unroutable),
        Ok(pb::TicketState::Cancelled) => Some(TicketState::Cancelled),
        Err(_) => {
            return Err(status(Error::invalid(
                "state",
                format!("unknown state value {value}"),
            )))
        }
    })
}

fn kind_to_pb(k: EventKind) -> pb::TicketEventKind {
    match k {
        EventKind::Submitted => pb::TicketEventKind::Submitted,
        EventKind::Queued => pb::TicketEventKind::Queued,
        EventKind::Offered => pb::TicketEventKind::Offered,
        EventKind::Declined => pb::TicketEventKind::Declined,
        EventKind::OfferTimedOut => pb::TicketEventKind::OfferTimedOut,
        EventKind::Accepted => pb::TicketEventKind::Accepted,
        EventKind::Escalated => pb::TicketEventKind::Escalated,
        EventKind::Resolved => pb::TicketEventKind::Resolved,
        EventKind::Unroutable => pb::TicketEventKind::Unroutable,
        EventKind::Cancelled => pb::TicketEventKind::Cancelled,
        EventKind::Rerouted => pb::TicketEventKind::Rerouted,
    }
}

/// A talent by id, without phone; just the id when it left the roster.
fn talent_ref(id: &str, snapshot: &Snapshot) -> pb::Talent {
    snapshot.get(id).map_or_else(
        || pb::Talent {
            id: id.to_string(),
            ..Default::default()
        },
        |t| talent_to_pb(t, false),
    )
}

pub fn event_to_pb(e: &Event, snapshot: &Snapshot) -> pb::TicketEvent {
    pb::TicketEvent {
        ticket_id: e.ticket_id.clone(),
        seq: e.seq,
        kind: kind_to_pb(e.kind).into(),
        actor: e.actor.to_string(),
        at_ms: e.at_ms,
        reason: e.reason.clone(),
        state: state_to_pb(e.state).into(),
        talent: e.talent_id.as_deref().map(|id| talent_ref(id, snapshot)),
        tier: tier_to_pb(e.tier).into(),
    }
}

fn location_to_pb(l: &Location) -> pb::Location {
    let kind = match l {
        Location::Division(code) => pb::location::Kind::DivisionCode(code.clone()),
        Location::Point { lat, lon } => pb::location::Kind::Point(pb::GeoPoint {
            lat: *lat,
            lon: *lon,
        }),
    };
    pb::Location { kind: Some(kind) }
}

/// Unix milliseconds as a protobuf timestamp.
fn timestamp(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

pub fn ticket_to_pb(
    t: &Ticket,
    history: &[Event],
    viewer: Viewer<'_>,
    snapshot: &Snapshot,
) -> pb::Ticket {
    let contact = match viewer {
        Viewer::Farmer | Viewer::Admin => true,
        Viewer::Responder(id) => {
            t.state == TicketState::Accepted && t.assignee.as_deref() == Some(id)
        }
        Viewer::Liaison => false,
    };
    pb::Ticket {
        id: t.id.clone(),
        text: t.text.clone(),
        location: Some(location_to_pb(&t.location)),
        subject: t.subject.clone().unwrap_or_default(),
        corps: corps_to_pb(t.corps).into(),
        state: state_to_pb(t.state).into(),
        assignee: t.assignee.as_deref().map(|id| talent_ref(id, snapshot)),
        tier: tier_to_pb(t.tier).into(),
        history: history.iter().map(|e| event_to_pb(e, snapshot)).collect(),
        answer: t.answer.clone(),
        created_at: Some(timestamp(t.created_at_ms)),
        updated_at: Some(timestamp(t.updated_at_ms)),
        ticket_secret: String::new(),
        contact: if contact {
            t.contact.clone()
        } else {
            String::new()
        },
        offer_deadline_ms: t.offer_deadline_ms.unwrap_or(0),
        reason: t.reason.clone(),
    }
}

type EventStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// `TicketService`: farmers prove a ticket is theirs with its secret.
pub struct TicketApi {
    service: Arc<Service>,
    dispatcher: Arc<Dispatcher>,
    limits: Arc<Limits>,
}

impl TicketApi {
    pub fn new(
        service: Arc<Service>,
        dispatcher: Arc<Dispatcher>,
        limits: Arc<Limits>,
    ) -> TicketApi {
        TicketApi {
            service,
            dispatcher,
            limits,
        }
    }
}

#[tonic::async_trait]
impl pb::ticket_service_server::TicketService for TicketApi {
    #[tracing::instrument(skip_all)]
    async fn submit_problem(
        &self,
        request: Request<pb::SubmitProblemRequest>,
    ) -> Result<Response<pb::Ticket>, Status> {
        let _permit = self.limits.admit_submit(&request)?;
        let r = request.into_inner();
        let submission = Submission {
            text: r.text,
            location: location_from_pb(r.location),
            contact: r.contact,
            idempotency_key: r.idempotency_key,
        };
        let (ticket, history, secret) =
            detached(
                &self.dispatcher,
                |d| async move { d.submit(submission).await },
            )
            .await?;
        tracing::info!(ticket = %ticket.id, state = ticket.state.key(), "ticket submitted");
        let mut reply = ticket_to_pb(&ticket, &history, Viewer::Farmer, &self.service.snapshot());
        reply.ticket_secret = secret;
        Ok(Response::new(reply))
    }

    async fn get_ticket(
        &self,
        request: Request<pb::GetTicketRequest>,
    ) -> Result<Response<pb::Ticket>, Status> {
        let _permit = self.limits.admit(&request, true)?;
        let r = request.into_inner();
        let (ticket, history) = self
            .dispatcher
            .get_ticket(&TicketId::new(r.ticket_id.trim()), &r.ticket_secret)
            .await
            .map_err(status)?;
        Ok(Response::new(ticket_to_pb(
            &ticket,
            &history,
            Viewer::Farmer,
            &self.service.snapshot(),
        )))
    }

    type WatchTicketStream = EventStream<pb::TicketEvent>;

    async fn watch_ticket(
        &self,
        request: Request<pb::WatchTicketRequest>,
    ) -> Result<Response<Self::WatchTicketStream>, Status> {
        let _permit = self.limits.admit(&request, true)?;
        let r = request.into_inner();
        let (history, rx) = self
            .dispatcher
            .watch_ticket(&TicketId::new(r.ticket_id.trim()), &r.ticket_secret)
            .await
            .map_err(status)?;
        let service = self.service.clone();
        let first: Vec<Result<pb::TicketEvent, Status>> = history
            .iter()
            .map(|e| Ok(event_to_pb(e, &service.snapshot())))
            .collect();
        // With replicas, an event can be in the history read from the store
        // and then arrive again as this replica catches up: send each once.
        let mut last = history.last().map_or(0, |e| e.seq);
        let live = tokio_stream::wrappers::ReceiverStream::new(rx)
            .filter(move |e| {
                let fresh = e.seq > last;
                last = last.max(e.seq);
                fresh
            })
            .map(move |e| Ok(event_to_pb(&e, &service.snapshot())));
        Ok(Response::new(Box::pin(
            tokio_stream::iter(first).chain(live),
        )))
    }

    async fn cancel_ticket(
        &self,
        request: Request<pb::CancelTicketRequest>,
    ) -> Result<Response<pb::Ticket>, Status> {
        let _permit = self.limits.admit(&request, true)?;
        let r = request.into_inner();
        let ticket = detached(&self.dispatcher, |d| async move {
            d.cancel(&TicketId::new(r.ticket_id.trim()), &r.ticket_secret)
                .await
        })
        .await?;
        Ok(Response::new(ticket_to_pb(
            &ticket,
            &[],
            Viewer::Farmer,
            &self.service.snapshot(),
        )))
    }
}

/// `ResponderService`: responders and liaisons with their bearer token.
/// Their calls count against the server's calls in flight only (the
/// admission layer): responders' actions free capacity, so they are not
/// rate limited or dropped for waiting.
pub struct ResponderApi {
    service: Arc<Service>,
    dispatcher: Arc<Dispatcher>,
}

impl ResponderApi {
    pub fn new(service: Arc<Service>, dispatcher: Arc<Dispatcher>) -> ResponderApi {
        ResponderApi {
            service,
            dispatcher,
        }
    }

    async fn principal(&self, metadata: &MetadataMap) -> Result<Principal, Status> {
        let token = metadata
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                Status::unauthenticated(
                    "responder call without `authorization: Bearer <responder token>`",
                )
            })?;
        self.dispatcher.authenticate(token).await.map_err(status)
    }

    /// The caller as a responder; liaisons may only watch.
    async fn responder(&self, metadata: &MetadataMap) -> Result<TalentId, Status> {
        match self.principal(metadata).await? {
            Principal::Responder(id) => Ok(id),
            Principal::Liaison(_) => Err(Status::permission_denied(
                "liaisons have read-only access: they can only watch",
            )),
        }
    }

    fn reply(&self, ticket: &Ticket, who: &TalentId) -> Response<pb::Ticket> {
        Response::new(ticket_to_pb(
            ticket,
            &[],
            Viewer::Responder(who.as_str()),
            &self.service.snapshot(),
        ))
    }
}

/// Runs a dispatcher call to its end on a task of its own: a client that
/// hangs up must not cut a decision between its commit and its apply.
async fn detached<T, F>(
    dispatcher: &Arc<Dispatcher>,
    call: impl FnOnce(Arc<Dispatcher>) -> F,
) -> Result<T, Status>
where
    T: Send + 'static,
    F: std::future::Future<Output = crate::error::Result<T>> + Send + 'static,
{
    tokio::spawn(call(dispatcher.clone()))
        .await
        .map_err(|e| Status::internal(format!("the dispatcher task failed: {e}")))?
        .map_err(status)
}

fn push_to_pb(push: &Push, who: &Principal, snapshot: &Snapshot) -> pb::AssignmentEvent {
    let viewer = match who {
        Principal::Responder(id) => Viewer::Responder(id.as_str()),
        Principal::Liaison(_) => Viewer::Liaison,
    };
    pb::AssignmentEvent {
        ticket: Some(ticket_to_pb(&push.ticket, &[], viewer, snapshot)),
        event: Some(event_to_pb(&push.event, snapshot)),
        read_only: push.read_only,
        replay: push.replay,
    }
}

#[tonic::async_trait]
impl pb::responder_service_server::ResponderService for ResponderApi {
    type WatchAssignmentsStream = EventStream<pb::AssignmentEvent>;

    async fn watch_assignments(
        &self,
        request: Request<pb::WatchAssignmentsRequest>,
    ) -> Result<Response<Self::WatchAssignmentsStream>, Status> {
        let who = self.principal(request.metadata()).await?;
        let (replay, rx) = self
            .dispatcher
            .watch_assignments(&who)
            .await
            .map_err(status)?;
        let service = self.service.clone();
        let snapshot = service.snapshot();
        let first: Vec<Result<pb::AssignmentEvent, Status>> = replay
            .iter()
            .map(|p| Ok(push_to_pb(p, &who, &snapshot)))
            .collect();
        let live = tokio_stream::wrappers::ReceiverStream::new(rx)
            .map(move |p| Ok(push_to_pb(&p, &who, &service.snapshot())));
        Ok(Response::new(Box::pin(
            tokio_stream::iter(first).chain(live),
        )))
    }

    async fn accept_assignment(
        &self,
        request: Request<pb::TicketActionRequest>,
    ) -> Result<Response<pb::Ticket>, Status> {
        let who = self.responder(request.metadata()).await?;
        let (me, r) = (who.clone(), request.into_inner());
        let ticket = detached(&self.dispatcher, |d| async move {
            d.accept(&me, &TicketId::new(r.ticket_id.trim())).await
        })
        .await?;
        Ok(self.reply(&ticket, &who))
    }

    async fn decline_assignment(
        &self,
        request: Request<pb::DeclineAssignmentRequest>,
    ) -> Result<Response<pb::Ticket>, Status> {
        let who = self.responder(request.metadata()).await?;
        let (me, r) = (who.clone(), request.into_inner());
        let ticket = detached(&self.dispatcher, |d| async move {
            d.decline(&me, &TicketId::new(r.ticket_id.trim()), &r.reason)
                .await
        })
        .await?;
        Ok(self.reply(&ticket, &who))
    }

    async fn resolve_ticket(
        &self,
        request: Request<pb::ResolveTicketRequest>,
    ) -> Result<Response<pb::Ticket>, Status> {
        let who = self.responder(request.metadata()).await?;
        let (me, r) = (who.clone(), request.into_inner());
        let ticket = detached(&self.dispatcher, |d| async move {
            d.resolve(&me, &TicketId::new(r.ticket_id.trim()), &r.answer)
                .await
        })
        .await?;
        Ok(self.reply(&ticket, &who))
    }

    async fn escalate_ticket(
        &self,
        request: Request<pb::EscalateTicketRequest>,
    ) -> Result<Response<pb::Ticket>, Status> {
        let who = self.responder(request.metadata()).await?;
        let (me, r) = (who.clone(), request.into_inner());
        let ticket = detached(&self.dispatcher, |d| async move {
            d.escalate(&me, &TicketId::new(r.ticket_id.trim()), &r.reason)
                .await
        })
        .await?;
        Ok(self.reply(&ticket, &who))
    }

    async fn set_availability(
        &self,
        request: Request<pb::SetAvailabilityRequest>,
    ) -> Result<Response<pb::SetAvailabilityResponse>, Status> {
        let who = self.responder(request.metadata()).await?;
        let value = request.get_ref().availability;
        let availability = match pb::Availability::try_from(value) {
            Ok(pb::Availability::Online) => Availability::Online,
            Ok(pb::Availability::Away) => Availability::Away,
            Ok(pb::Availability::Offline) => Availability::Offline,
            _ => {
                return Err(status(Error::invalid(
                    "availability",
                    "use ONLINE, AWAY or OFFLINE",
                )))
            }
        };
        detached(&self.dispatcher, |d| async move {
            d.set_availability(&who, availability).await
        })
        .await?;
        Ok(Response::new(pb::SetAvailabilityResponse {
            availability: value,
        }))
    }
}
