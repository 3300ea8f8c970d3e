//! The outbox's admin calls on `RosterService` (`ListDeliveries`,
//! `RetryDelivery`): the conversions between their messages and
//! [`crate::notify::Deliveries`]; the handlers in `roster.rs` only pass the
//! admin gate and call these.

use crate::{
    error::Error,
    notify::{Deliveries, EndpointView},
    pb,
    store::outbox::{Delivery, DeliveryState},
};

fn state_to_pb(s: DeliveryState) -> pb::DeliveryState {
    match s {
        DeliveryState::Pending => pb::DeliveryState::Pending,
        DeliveryState::Delivered => pb::DeliveryState::Delivered,
        DeliveryState::Failed => pb::DeliveryState::Failed,
    }
}

fn state_from_pb(value: i32) -> Result<Option<DeliveryState>, Error> {
    match pb::DeliveryState::try_from(value) {
        Ok(pb::DeliveryState::Unspecified) => Ok(None),
        Ok(pb::DeliveryState::Pending) => Ok(Some(DeliveryState::Pending)),
        Ok(pb::DeliveryState::Delivered) => Ok(Some(DeliveryState::Delivered)),
        Ok(pb::DeliveryState::Failed) => Ok(Some(DeliveryState::Failed)),
        Err(_) => Err(Error::invalid(
            "state",
            format!("unknown delivery state {value}"),
        )),
    }
}

fn delivery_to_pb(d: &Delivery) -> pb::Delivery {
    pb::Delivery {
        id: d.id.clone(),
        endpoint: d.endpoint.clone(),
        ticket_id: d.ticket_id.clone(),
        r#type: d.kind.clone(),
        state: state_to_pb(d.state).into(),
        attempts: d.attempts,
        takeovers: d.takeovers,
        last_status: d.last_status.map_or(0, u32::from),
        last_error: d.last_error.clone(),
        created_at_ms: d.created_at_ms,
        next_attempt_at_ms: match d.state {
            DeliveryState::Pending => d.next_at_ms,
            _ => 0,
        },
        done_at_ms: d.done_at_ms.unwrap_or(0),
    }
}

fn endpoint_to_pb(e: &EndpointView) -> pb::WebhookEndpoint {
    let c = &e.counts;
    pb::WebhookEndpoint {
        name: c.name.clone(),
        url: e.url.clone(),
        configured: e.configured,
        disabled: c.disabled_at_ms.is_some(),
        disabled_at_ms: c.disabled_at_ms.unwrap_or(0),
        disabled_reason: c.disabled_reason.clone(),
        pending: c.pending,
        delivered: c.delivered,
        failed: c.failed,
        takeovers: c.takeovers,
    }
}

/// `ListDeliveries`.
pub(super) async fn list(
    deliveries: &Deliveries,
    r: pb::ListDeliveriesRequest,
) -> Result<pb::ListDeliveriesResponse, Error> {
    let state = state_from_pb(r.state)?;
    let (rows, endpoints, next) = deliveries
        .list(state, &r.endpoint, r.page_size, &r.page_token)
        .await?;
    Ok(pb::ListDeliveriesResponse {
        deliveries: rows.iter().map(delivery_to_pb).collect(),
        endpoints: endpoints.iter().map(endpoint_to_pb).collect(),
        next_page_token: next.unwrap_or_default(),
    })
}

/// What a `RetryDelivery` names: the endpoint, and one notification id
/// when one is given.
pub(super) fn retry_target(r: &pb::RetryDeliveryRequest) -> (&str, Option<&str>) {
    let id = Some(r.id.trim()).filter(|id| !id.is_empty());
    (r.endpoint.trim(), id)
}

/// `RetryDelivery`.
pub(super) async fn retry(
    deliveries: &Deliveries,
    r: &pb::RetryDeliveryRequest,
) -> Result<pb::RetryDeliveryResponse, Error> {
    let (endpoint, id) = retry_target(r);
    let retried = deliveries.retry(endpoint, id).await?;
    Ok(pb::RetryDeliveryResponse { retried })
}
