//! `ResponderService`: responders act on their offers and tickets, and
//! responders and liaisons watch theirs, with their bearer token. Their
//! calls count against the server's calls in flight only (the admission
//! layer): responders' actions free capacity, so they are not rate limited
//! or dropped for waiting.

use std::sync::Arc;

use tokio_stream::StreamExt;
use tonic::{Request, Response, Status};

use super::{
    call::{detach, record_ticket, Gate},
    convert::{availability_from_pb, event_to_pb, ticket_to_pb},
    tickets::EventStream,
};
use crate::{
    knowledge::Library,
    matching::Matcher,
    model::ids::{TalentId, TicketId},
    pb,
    search::Snapshot,
    tickets::view::Viewer,
    tickets::Ticket,
    tickets::{Dispatcher, Principal, Push},
};

pub(crate) struct ResponderApi {
    gate: Gate,
    matcher: Arc<Matcher>,
    dispatcher: Arc<Dispatcher>,
    library: Arc<Library>,
}

impl ResponderApi {
    pub(crate) fn new(
        gate: Gate,
        matcher: Arc<Matcher>,
        dispatcher: Arc<Dispatcher>,
        library: Arc<Library>,
    ) -> ResponderApi {
        ResponderApi {
            gate,
            matcher,
            dispatcher,
            library,
        }
    }

    fn reply(&self, ticket: &Ticket, who: &TalentId) -> Response<pb::Ticket> {
        let snapshot = self.matcher.snapshot();
        Response::new(ticket_to_pb(
            ticket,
            &[],
            Viewer::Responder(who.as_str()),
            &snapshot,
        ))
    }
}

fn push_to_pb(push: &Push, who: &Principal, snapshot: &Snapshot) -> pb::AssignmentEvent {
    let viewer = Viewer::from(who);
    pb::AssignmentEvent {
        ticket: Some(ticket_to_pb(&push.ticket, &[], viewer, snapshot)),
        event: Some(event_to_pb(&push.event, viewer, snapshot)),
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
        let who = self.gate.principal(request).await?.caller;
        let (replay, rx) = self.dispatcher.watch_assignments(&who).await?;
        let matcher = self.matcher.clone();
        let snapshot = matcher.snapshot();
        let first: Vec<Result<pb::AssignmentEvent, Status>> = replay
            .iter()
            .map(|p| Ok(push_to_pb(p, &who, &snapshot)))
            .collect();
        let live = tokio_stream::wrappers::ReceiverStream::new(rx)
            .map(move |p| Ok(push_to_pb(&p, &who, &matcher.snapshot())));
        Ok(Response::new(Box::pin(
            tokio_stream::iter(first).chain(live),
        )))
    }

    async fn accept_assignment(
        &self,
        request: Request<pb::TicketActionRequest>,
    ) -> Result<Response<pb::Ticket>, Status> {
        let call = self.gate.responder(request).await?;
        let (me, r, d) = (call.caller.clone(), call.message, self.dispatcher.clone());
        record_ticket(&r.ticket_id);
        let ticket = detach("dispatcher", async move {
            d.accept(&me, &TicketId::new(r.ticket_id.trim())).await
        })
        .await?;
        Ok(self.reply(&ticket, &call.caller))
    }

    async fn decline_assignment(
        &self,
        request: Request<pb::DeclineAssignmentRequest>,
    ) -> Result<Response<pb::Ticket>, Status> {
        let call = self.gate.responder(request).await?;
        let (me, r, d) = (call.caller.clone(), call.message, self.dispatcher.clone());
        record_ticket(&r.ticket_id);
        let ticket = detach("dispatcher", async move {
            d.decline(&me, &TicketId::new(r.ticket_id.trim()), &r.reason)
                .await
        })
        .await?;
        Ok(self.reply(&ticket, &call.caller))
    }

    async fn resolve_ticket(
        &self,
        request: Request<pb::ResolveTicketRequest>,
    ) -> Result<Response<pb::Ticket>, Status> {
        let call = self.gate.responder(request).await?;
        let (me, r, d) = (call.caller.clone(), call.message, self.dispatcher.clone());
        let library = self.library.clone();
        record_ticket(&r.ticket_id);
        let ticket = detach("dispatcher", async move {
            let id = TicketId::new(r.ticket_id.trim());
            library.resolve(&d, &me, &id, &r.answer, r.shareable).await
        })
        .await?;
        Ok(self.reply(&ticket, &call.caller))
    }

    async fn escalate_ticket(
        &self,
        request: Request<pb::EscalateTicketRequest>,
    ) -> Result<Response<pb::Ticket>, Status> {
        let call = self.gate.responder(request).await?;
        let (me, r, d) = (call.caller.clone(), call.message, self.dispatcher.clone());
        record_ticket(&r.ticket_id);
        let ticket = detach("dispatcher", async move {
            d.escalate(&me, &TicketId::new(r.ticket_id.trim()), &r.reason)
                .await
        })
        .await?;
        Ok(self.reply(&ticket, &call.caller))
    }

    async fn set_availability(
        &self,
        request: Request<pb::SetAvailabilityRequest>,
    ) -> Result<Response<pb::SetAvailabilityResponse>, Status> {
        let call = self.gate.responder(request).await?;
        let value = call.message.availability;
        let availability = availability_from_pb(value)?;
        let (me, d) = (call.caller, self.dispatcher.clone());
        detach("dispatcher", async move {
            d.set_availability(&me, availability).await
        })
        .await?;
        Ok(Response::new(pb::SetAvailabilityResponse {
            availability: value,
        }))
    }
}
