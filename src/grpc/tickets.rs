//! `TicketService`: farmers' front ends submit problems and follow, watch
//! and cancel their tickets, proving a ticket theirs with its secret.

use std::{pin::Pin, sync::Arc};

use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use super::{
    call::{detach, record_ticket, Gate},
    convert::{event_to_pb, location_from_pb, ticket_to_pb},
};
use crate::{
    knowledge::Library,
    matching::Matcher,
    model::ids::TicketId,
    pb,
    photos::Photos,
    tickets::view::Viewer,
    tickets::{Dispatcher, Submission},
    tickets::{Event, Ticket},
};

/// A server stream of replies.
pub(crate) type EventStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

pub(crate) struct TicketApi {
    gate: Gate,
    matcher: Arc<Matcher>,
    dispatcher: Arc<Dispatcher>,
    photos: Arc<Photos>,
    /// A rating reaches the answer's knowledge entry too.
    library: Arc<Library>,
}

impl TicketApi {
    pub(crate) fn new(
        gate: Gate,
        matcher: Arc<Matcher>,
        dispatcher: Arc<Dispatcher>,
        photos: Arc<Photos>,
        library: Arc<Library>,
    ) -> TicketApi {
        TicketApi {
            gate,
            matcher,
            dispatcher,
            photos,
            library,
        }
    }

    /// A ticket as its farmer sees it.
    fn reply(&self, ticket: &Ticket, history: &[Event]) -> pb::Ticket {
        ticket_to_pb(ticket, history, Viewer::Farmer, &self.matcher.snapshot())
    }
}

#[tonic::async_trait]
impl pb::ticket_service_server::TicketService for TicketApi {
    async fn submit_problem(
        &self,
        request: Request<pb::SubmitProblemRequest>,
    ) -> Result<Response<pb::Ticket>, Status> {
        let call = self.gate.submit(request)?;
        let r = call.message;
        let submission = Submission {
            text: r.text,
            location: location_from_pb(r.location),
            contact: r.contact,
            idempotency_key: r.idempotency_key,
            photos: r.photo_ids,
        };
        let (dispatcher, photos) = (self.dispatcher.clone(), self.photos.clone());
        let (ticket, history, secret) = detach("dispatcher", async move {
            photos.submit(&dispatcher, submission).await
        })
        .await?;
        record_ticket(&ticket.id);
        tracing::info!(ticket = %ticket.id, state = ticket.state.key(), "ticket submitted");
        let mut reply = self.reply(&ticket, &history);
        reply.ticket_secret = secret;
        Ok(Response::new(reply))
    }

    async fn get_ticket(
        &self,
        request: Request<pb::GetTicketRequest>,
    ) -> Result<Response<pb::Ticket>, Status> {
        let call = self.gate.farmer(request)?;
        let r = call.message;
        record_ticket(&r.ticket_id);
        let (ticket, history) = self
            .dispatcher
            .get_ticket(&TicketId::new(r.ticket_id.trim()), &r.ticket_secret)
            .await?;
        Ok(Response::new(self.reply(&ticket, &history)))
    }

    type WatchTicketStream = EventStream<pb::TicketEvent>;

    async fn watch_ticket(
        &self,
        request: Request<pb::WatchTicketRequest>,
    ) -> Result<Response<Self::WatchTicketStream>, Status> {
        let call = self.gate.farmer(request)?;
        let r = call.message;
        record_ticket(&r.ticket_id);
        let (history, rx) = self
            .dispatcher
            .watch_ticket(&TicketId::new(r.ticket_id.trim()), &r.ticket_secret)
            .await?;
        let matcher = self.matcher.clone();
        let first: Vec<Result<pb::TicketEvent, Status>> = history
            .iter()
            .map(|e| Ok(event_to_pb(e, Viewer::Farmer, &matcher.snapshot())))
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
            .map(move |e| Ok(event_to_pb(&e, Viewer::Farmer, &matcher.snapshot())));
        Ok(Response::new(Box::pin(
            tokio_stream::iter(first).chain(live),
        )))
    }

    async fn cancel_ticket(
        &self,
        request: Request<pb::CancelTicketRequest>,
    ) -> Result<Response<pb::Ticket>, Status> {
        let call = self.gate.farmer(request)?;
        let (r, dispatcher) = (call.message, self.dispatcher.clone());
        record_ticket(&r.ticket_id);
        let ticket = detach("dispatcher", async move {
            dispatcher
                .cancel(&TicketId::new(r.ticket_id.trim()), &r.ticket_secret)
                .await
        })
        .await?;
        Ok(Response::new(self.reply(&ticket, &[])))
    }

    async fn rate_answer(
        &self,
        request: Request<pb::RateAnswerRequest>,
    ) -> Result<Response<pb::Ticket>, Status> {
        let call = self.gate.farmer(request)?;
        let (r, dispatcher) = (call.message, self.dispatcher.clone());
        let library = self.library.clone();
        record_ticket(&r.ticket_id);
        let (ticket, history) = detach("dispatcher", async move {
            let id = TicketId::new(r.ticket_id.trim());
            library
                .rate(&dispatcher, &id, &r.ticket_secret, r.stars, &r.comment)
                .await
        })
        .await?;
        tracing::info!(ticket = %ticket.id, "answer rated");
        Ok(Response::new(self.reply(&ticket, &history)))
    }
}
