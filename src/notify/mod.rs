//! Notifications through a transactional outbox (README "Notifications").
//!
//! The dispatcher asks [`Notifier::notes`] what a change tells whom before
//! it commits, and the store writes those rows in the change's own
//! transaction (`store::outbox`): nothing is sent before the change is
//! committed, and nothing committed is lost with the process. The delivery
//! worker (`deliver`) wakes on every commit and on timers, leases due rows,
//! POSTs each to its endpoint with Standard Webhooks signatures (`sign`)
//! and records the attempt: 2xx delivered; anything else retried with
//! back-off and jitter until `notify.retry_for_secs`, always with the same
//! id; 410 disables the endpoint. `payload` builds the bodies;
//! [`Deliveries`] is what the admin calls see and retry.
//!
//! Without webhooks there is no notifier: nothing is written, nothing runs.

use std::sync::Arc;

use tokio::sync::Notify;

use crate::{
    config::NotifyConfig,
    error::{Error, Result},
    store::outbox::{Delivery, DeliveryFilter, DeliveryState, EndpointCounts, Note, Outbox},
    tickets::{liaison::Liaison, now_ms, random_hex, Event, EventKind, Ticket},
};

mod deliver;
pub(crate) mod fuzzing;
pub(crate) mod payload;
pub(crate) mod sign;

/// One configured endpoint, its key decoded.
#[derive(Clone)]
pub(crate) struct Endpoint {
    pub(crate) name: String,
    pub(crate) url: String,
    key: Vec<u8>,
    events: Vec<String>,
    /// How `https://` URLs are trusted: the system's roots and
    /// `notify.ca_path`, or why there are none.
    tls: deliver::Tls,
}

impl Endpoint {
    fn wants(&self, kind: &str) -> bool {
        self.events.is_empty() || self.events.iter().any(|e| e == kind)
    }
}

/// Timing of the delivery worker, from `[notify]`.
#[derive(Debug, Clone, Copy)]
struct Timing {
    retry_for_ms: i64,
    timeout: std::time::Duration,
    retry_base_ms: i64,
    lease_ms: i64,
    keep_delivered_ms: i64,
}

/// Decides what each change tells whom, and wakes the delivery worker.
pub struct Notifier {
    endpoints: Vec<Endpoint>,
    public_base_url: String,
    timing: Timing,
    wake: Arc<Notify>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("endpoints", &self.names())
            .finish_non_exhaustive()
    }
}

impl Notifier {
    /// The notifier of `[notify]`, or None when no webhook is configured.
    pub fn new(config: &NotifyConfig) -> anyhow::Result<Option<Arc<Notifier>>> {
        if !config.enabled() {
            return Ok(None);
        }
        let tls = deliver::connector(config.ca_path.as_deref())?;
        let endpoints = config
            .webhooks
            .iter()
            .map(|w| {
                Ok(Endpoint {
                    name: w.name.clone(),
                    url: w.url.clone(),
                    key: w.key()?,
                    events: w.events.clone(),
                    tls: tls.clone(),
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Some(Arc::new(Notifier {
            endpoints,
            public_base_url: config.public_base_url.clone().unwrap_or_default(),
            timing: Timing {
                retry_for_ms: (config.retry_for_secs as i64).saturating_mul(1000),
                timeout: std::time::Duration::from_millis(config.timeout_ms),
                retry_base_ms: config.retry_base_ms as i64,
                lease_ms: config.lease_ms as i64,
                keep_delivered_ms: (config.keep_delivered_secs as i64).saturating_mul(1000),
            },
            wake: Arc::new(Notify::new()),
        })))
    }

    /// `notify.public_base_url`, where the action links point.
    pub(crate) fn public_base_url(&self) -> &str {
        &self.public_base_url
    }

    fn names(&self) -> Vec<String> {
        self.endpoints.iter().map(|e| e.name.clone()).collect()
    }

    /// The notifications of a change about to be committed: for each event
    /// someone must hear of, one to its recipient and a copy to each of
    /// `liaisons` (the village's), each to the endpoints that want its type.
    /// `action_url` is the signed link of the ticket's open offer
    /// (`Dispatcher::offer_action_url`), carried by the offer's
    /// notification to the responder it is offered to.
    pub(crate) fn notes(
        &self,
        ticket: &Ticket,
        events: &[Event],
        liaisons: &[&Liaison],
        action_url: Option<&str>,
    ) -> Vec<Note> {
        let now = now_ms();
        let mut notes = Vec::new();
        for event in events {
            let Some(kind) = payload::kind(event.kind) else {
                continue;
            };
            let endpoints: Vec<String> = self
                .endpoints
                .iter()
                .filter(|e| e.wants(kind))
                .map(|e| e.name.clone())
                .collect();
            if endpoints.is_empty() {
                continue;
            }
            for (part, recipient) in payload::recipients(ticket, event, liaisons)
                .iter()
                .enumerate()
            {
                let id = format!("msg_{:011x}{}", now.max(0), random_hex(8));
                let action = match (event.kind, recipient) {
                    (EventKind::Offered, payload::Recipient::Responder(talent))
                        if ticket.assignee.as_deref() == Some(*talent) =>
                    {
                        action_url
                    }
                    _ => None,
                };
                notes.push(Note {
                    body: payload::body(&id, kind, ticket, event, recipient, action),
                    id,
                    ticket_id: ticket.id.clone(),
                    seq: (event.seq as i64) * 256 + part.min(255) as i64,
                    kind: kind.to_string(),
                    endpoints: endpoints.clone(),
                    created_at_ms: now,
                    deadline_ms: now.saturating_add(self.timing.retry_for_ms),
                });
            }
        }
        notes
    }

    /// Tells the worker a change with notifications committed.
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    /// Starts the delivery worker over `outbox`, and its pruning of old
    /// delivered rows; both end when the notifier is dropped.
    pub fn start(self: &Arc<Notifier>, outbox: Arc<dyn Outbox>) {
        tokio::spawn(deliver::run(
            Arc::downgrade(self),
            outbox.clone(),
            self.wake.clone(),
        ));
        tokio::spawn(deliver::prune(Arc::downgrade(self), outbox));
    }
}

/// An endpoint as the admin listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointView {
    pub counts: EndpointCounts,
    /// Its URL; empty when it is no longer configured.
    pub url: String,
    pub configured: bool,
}

/// The outbox as admins see it: deliveries, endpoints, retries.
#[derive(Clone)]
pub struct Deliveries {
    outbox: Arc<dyn Outbox>,
    notifier: Option<Arc<Notifier>>,
    retry_for_ms: i64,
}

impl std::fmt::Debug for Deliveries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deliveries").finish_non_exhaustive()
    }
}

/// Reads a page token, `created_at_ms:id:endpoint`.
fn parse_token(token: &str) -> Result<(i64, String, String)> {
    let mut parts = token.splitn(3, ':');
    match (
        parts.next().map(str::parse::<i64>),
        parts.next(),
        parts.next(),
    ) {
        (Some(Ok(ms)), Some(id), Some(endpoint)) => Ok((ms, id.to_string(), endpoint.to_string())),
        _ => Err(Error::invalid(
            "page_token",
            "is not a token from a previous page: leave it empty for the first page",
        )),
    }
}

/// Longest page of a listing.
const MAX_PAGE: usize = 500;

impl Deliveries {
    pub fn new(outbox: Arc<dyn Outbox>, notifier: Option<Arc<Notifier>>) -> Deliveries {
        let retry_for_ms = notifier
            .as_ref()
            .map_or(24 * 3600 * 1000, |n| n.timing.retry_for_ms);
        Deliveries {
            outbox,
            notifier,
            retry_for_ms,
        }
    }

    /// A page of deliveries, newest first (`page_size` 0: 50; at most
    /// 500), every endpoint, and the next page's token (None on the last).
    pub async fn list(
        &self,
        state: Option<DeliveryState>,
        endpoint: &str,
        page_size: u32,
        page_token: &str,
    ) -> Result<(Vec<Delivery>, Vec<EndpointView>, Option<String>)> {
        let limit = match page_size {
            0 => 50,
            n => (n as usize).min(MAX_PAGE),
        };
        let after = match page_token {
            "" => None,
            token => Some(parse_token(token)?),
        };
        let filter = DeliveryFilter {
            state,
            endpoint: Some(endpoint.trim())
                .filter(|e| !e.is_empty())
                .map(str::to_string),
            after,
            limit,
        };
        let rows = self.outbox.deliveries(&filter).await?;
        let next = match rows.last() {
            Some(last) if rows.len() == limit => Some(format!(
                "{}:{}:{}",
                last.created_at_ms, last.id, last.endpoint
            )),
            _ => None,
        };
        Ok((rows, self.endpoints().await?, next))
    }

    /// Every endpoint configured or with rows, by name.
    async fn endpoints(&self) -> Result<Vec<EndpointView>> {
        let mut counts = self.outbox.endpoint_counts().await?;
        let configured = self
            .notifier
            .as_ref()
            .map_or(&[][..], |n| n.endpoints.as_slice());
        for e in configured {
            if !counts.iter().any(|c| c.name == e.name) {
                counts.push(EndpointCounts {
                    name: e.name.clone(),
                    ..EndpointCounts::default()
                });
            }
        }
        counts.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(counts
            .into_iter()
            .map(|c| {
                let found = configured.iter().find(|e| e.name == c.name);
                EndpointView {
                    url: found.map(|e| e.url.clone()).unwrap_or_default(),
                    configured: found.is_some(),
                    counts: c,
                }
            })
            .collect())
    }

    /// Re-enables `endpoint` and sends its failed deliveries (only `id`'s,
    /// when given) again. Returns how many were made pending again.
    pub async fn retry(&self, endpoint: &str, id: Option<&str>) -> Result<u64> {
        crate::error::check_id("endpoint", endpoint, 64)?;
        if let Some(id) = id {
            crate::error::check_id("id", id, 64)?;
        }
        let known = self
            .notifier
            .as_ref()
            .is_some_and(|n| n.endpoints.iter().any(|e| e.name == endpoint));
        if !known {
            return Err(Error::NotFound(format!(
                "no webhook endpoint {} in [[notify.webhooks]]",
                crate::error::quote(endpoint)
            )));
        }
        let now = now_ms();
        let n = self
            .outbox
            .retry(endpoint, id, now, now.saturating_add(self.retry_for_ms))
            .await?;
        if let Some(notifier) = &self.notifier {
            notifier.wake();
        }
        Ok(n)
    }
}
