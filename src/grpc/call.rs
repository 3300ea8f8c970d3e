//! How a handler takes a call: through the [`Gate`], which checks the caller
//! and admits the call under the load limits before the handler gets the
//! message, and through [`detach`] for work that must finish even when the
//! caller hangs up.

use std::{future::Future, net::SocketAddr, sync::Arc};

use tokio::sync::OwnedSemaphorePermit;
use tonic::{Request, Status};

use super::auth::{bearer, AdminAuth};
use crate::{
    error::Error,
    model::ids::TalentId,
    pb,
    server::limits::{caller::Caller, Arrival, Limits, Permit},
    server::throttle::Throttle,
    tickets::{Asking, Dispatcher, Principal},
};

/// A call let in: its message, who made it (the principal its token names,
/// and the client — front end or address — it came through), where it came
/// from and when it arrived, with its place under the per-method limits
/// held until the handler returns.
pub(crate) struct Admitted<M, C = ()> {
    pub(crate) message: M,
    pub(crate) caller: C,
    pub(crate) client: Caller,
    pub(crate) peer: Option<SocketAddr>,
    pub(crate) arrival: Option<Arrival>,
    _permit: Option<Permit>,
}

impl<M, C> Admitted<M, C> {
    fn new(
        request: Request<M>,
        caller: C,
        client: Caller,
        permit: Option<Permit>,
    ) -> Admitted<M, C> {
        Admitted {
            client,
            peer: request.remote_addr(),
            arrival: request.extensions().get::<Arrival>().copied(),
            message: request.into_inner(),
            caller,
            _permit: permit,
        }
    }

    /// The same call, its caller known more precisely.
    fn with_caller<D>(self, caller: D) -> Admitted<M, D> {
        Admitted {
            message: self.message,
            caller,
            client: self.client,
            peer: self.peer,
            arrival: self.arrival,
            _permit: self._permit,
        }
    }
}

/// The door of every service: one method per kind of caller, each taking
/// the whole request so that no handler reads a message it has not
/// admitted. (Calls in flight were already counted on arrival by the
/// admission layer; `Ping` and health checks need nothing more.)
#[derive(Clone)]
pub(crate) struct Gate {
    limits: Arc<Limits>,
    admin: AdminAuth,
    dispatcher: Arc<Dispatcher>,
}

impl Gate {
    pub(crate) fn new(limits: Arc<Limits>, admin: AdminAuth, dispatcher: Arc<Dispatcher>) -> Gate {
        Gate {
            limits,
            admin,
            dispatcher,
        }
    }

    /// A call open to farmers: rate limited per caller (a front end's API
    /// key, else the client address).
    pub(crate) fn farmer<M>(&self, request: Request<M>) -> Result<Admitted<M>, Status> {
        let client = self.limits.caller(&request)?;
        let permit = self.limits.admit(&request, &client, true)?;
        Ok(Admitted::new(request, (), client, Some(permit)))
    }

    /// A `SubmitProblem` call: a farmer call that also takes one of the
    /// places for submissions.
    pub(crate) fn submit<M>(&self, request: Request<M>) -> Result<Admitted<M>, Status> {
        let client = self.limits.caller(&request)?;
        let permit = self.limits.admit_submit(&request, &client)?;
        Ok(Admitted::new(request, (), client, Some(permit)))
    }

    /// An admin call: the admin token first, then the load limits.
    pub(crate) fn admin<M>(&self, request: Request<M>) -> Result<Admitted<M>, Status> {
        if let Err(refused) = self.admin.check(request.metadata()) {
            self.log_failed_admin(&request, &refused);
            return Err(refused.into());
        }
        let client = self.limits.caller(&request)?;
        let permit = self.limits.admit(&request, &client, false)?;
        Ok(Admitted::new(request, (), client, Some(permit)))
    }

    fn log_failed_admin<M>(&self, request: &Request<M>, refused: &Error) {
        let client = request.extensions().get::<Caller>();
        log_failed_admin(
            self.limits.throttle(),
            request.remote_addr(),
            client,
            refused,
        );
    }

    /// When the call that arrived at `arrival` reaches the request timeout.
    pub(crate) fn deadline(&self, arrival: Option<Arrival>) -> Option<std::time::Instant> {
        self.limits.deadline(arrival)
    }

    /// A responder's or liaison's call, by their bearer token. These calls
    /// free capacity, so they pass no per-method limit.
    pub(crate) async fn principal<M>(
        &self,
        request: Request<M>,
    ) -> Result<Admitted<M, Principal>, Status> {
        let client = self.limits.caller(&request)?;
        let token = bearer(request.metadata(), "responder")?;
        let principal = self.dispatcher.authenticate(token).await?;
        Ok(Admitted::new(request, principal, client, None))
    }

    /// A call about a ticket's photos, by whoever asks: the farmer when
    /// the message carries a ticket secret (`secret`), an admin by the
    /// admin token, else a responder, liaison or action link by theirs.
    /// Farmers and admins pass the load limits as their other calls do.
    pub(crate) async fn asking<M>(
        &self,
        request: Request<M>,
        secret: fn(&M) -> &str,
    ) -> Result<Admitted<M, Asking>, Status> {
        let farmer = secret(request.get_ref());
        if !farmer.is_empty() {
            let asking = Asking::Farmer(farmer.to_string());
            return Ok(self.farmer(request)?.with_caller(asking));
        }
        if self.admin.check(request.metadata()).is_ok() {
            let client = self.limits.caller(&request)?;
            let permit = self.limits.admit(&request, &client, false)?;
            return Ok(Admitted::new(request, Asking::Admin, client, Some(permit)));
        }
        let call = self.principal(request).await?;
        let asking = Asking::Principal(call.caller.clone());
        Ok(call.with_caller(asking))
    }

    /// A call only responders may make: liaisons may only watch, and an
    /// action link acts only on the ticket it was issued for (checked here,
    /// against the ticket the message names, so no handler can forget).
    pub(crate) async fn responder<M: ForTicket>(
        &self,
        request: Request<M>,
    ) -> Result<Admitted<M, TalentId>, Status> {
        let call = self.principal(request).await?;
        let id = call.caller.acting_on(call.message.ticket_id())?;
        Ok(call.with_caller(id))
    }

    /// Waits for a CPU slot for CPU-bound work of a call that arrived at
    /// `arrival`.
    pub(crate) async fn cpu_slot(
        &self,
        arrival: Option<Arrival>,
    ) -> Result<OwnedSemaphorePermit, Status> {
        self.limits.cpu_slot(arrival).await
    }
}

/// A failed admin authentication, at warn: at most one line a second
/// (with the count left out since the last), naming the address and the
/// client, never the token sent.
pub(crate) fn log_failed_admin(
    throttle: &Throttle,
    peer: Option<SocketAddr>,
    client: Option<&Caller>,
    refused: &Error,
) {
    let Some(suppressed) = throttle.pass("admin_auth") else {
        return;
    };
    let peer = peer.map(|p| p.to_string());
    let client = client.map(ToString::to_string);
    tracing::warn!(
        peer = peer.as_deref().unwrap_or_default(),
        client = client.as_deref().unwrap_or_default(),
        reason = %refused,
        suppressed,
        "admin authentication failed"
    );
}

/// A responder call's message: the ticket it acts on, if any.
pub(crate) trait ForTicket {
    fn ticket_id(&self) -> Option<&str>;
}

macro_rules! for_ticket {
    ($($message:ty),*) => {$(
        impl ForTicket for $message {
            fn ticket_id(&self) -> Option<&str> {
                Some(&self.ticket_id)
            }
        }
    )*};
}

for_ticket!(
    pb::TicketActionRequest,
    pb::DeclineAssignmentRequest,
    pb::ResolveTicketRequest,
    pb::EscalateTicketRequest
);

impl ForTicket for pb::SetAvailabilityRequest {
    fn ticket_id(&self) -> Option<&str> {
        None
    }
}

/// Runs `work` to its end on a task of its own, so that a caller who hangs
/// up, or a call past its timeout, cannot cut it short (a decision between
/// its commit and its apply, an import before its audit entry). A task that
/// failed is an internal error naming the `task`.
/// Records the ticket a call is about as its span's `ticket_id` (the
/// span `serve` opens for each call, or the handler's own), once the id
/// sent is well formed: an id over the limit or with control characters
/// is refused by the call itself and not logged.
pub(crate) fn record_ticket(id: &str) {
    let id = id.trim();
    if !id.is_empty() && id.len() <= crate::error::MAX_ID_BYTES && !id.chars().any(char::is_control)
    {
        tracing::Span::current().record("ticket_id", id);
    }
}

pub(crate) async fn detach<T, E>(
    task: &str,
    work: impl Future<Output = Result<T, E>> + Send + 'static,
) -> Result<T, Status>
where
    T: Send + 'static,
    E: Into<Status> + Send + 'static,
{
    // In the call's span, so its lines carry the call's method and ticket.
    let work = tracing::Instrument::in_current_span(work);
    match tokio::spawn(work).await {
        Ok(outcome) => outcome.map_err(Into::into),
        Err(e) => Err(Error::Internal(format!("the {task} task failed: {e}")).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn detached_work_finishes_when_its_caller_hangs_up() {
        let (go, wait) = tokio::sync::oneshot::channel::<()>();
        let (done, finished) = tokio::sync::oneshot::channel();
        let mut call = Box::pin(detach("test", async move {
            let _ = wait.await;
            let _ = done.send(());
            Ok::<(), Error>(())
        }));
        let timeout = std::time::Duration::from_millis(20);
        assert!(tokio::time::timeout(timeout, &mut call).await.is_err());
        drop(call);
        go.send(()).unwrap();
        assert_eq!(finished.await, Ok(()), "the work ran to its end");
    }

    #[tokio::test]
    async fn a_failed_task_is_an_internal_error_naming_it() {
        let failed = detach("import", async {
            if std::hint::black_box(true) {
                panic!("the work failed");
            }
            Ok::<(), Error>(())
        })
        .await
        .unwrap_err();
        assert_eq!(failed.code(), tonic::Code::Internal);
        assert!(
            failed.message().starts_with("the import task failed: "),
            "{failed:?}"
        );
    }
}
