//! The entry point of the webhook-payload fuzz target in `fuzz/` (hidden
//! from the docs): a change's notifications built as the server builds
//! them when the change commits ([`Notifier::notes`]: recipients, bodies
//! through `tickets::view`), each signed as the delivery worker signs an
//! attempt ([`sign::signature`]), for one endpoint that wants every type.

use std::sync::Arc;

use base64::Engine as _;

use super::{sign, Notifier};
use crate::{
    config::{NotifyConfig, WebhookConfig},
    tickets::{liaison::Liaison, Event, Ticket},
};

/// One notification as its endpoint receives it.
#[derive(Debug, Clone)]
pub struct Webhook {
    /// `webhook-id`.
    pub id: String,
    /// The notification type (`ticket.offered`, …).
    pub kind: String,
    /// The ticket it is about.
    pub ticket_id: String,
    /// The JSON body POSTed.
    pub body: String,
    /// `webhook-signature`, for `webhook-timestamp` as asked.
    pub signature: String,
}

/// A notifier with one endpoint.
pub struct Webhooks {
    notifier: Arc<Notifier>,
    key: Vec<u8>,
}

impl Webhooks {
    /// An endpoint signing with `key` (24 to 64 bytes, as a `whsec_`
    /// secret must hold).
    pub fn new(key: &[u8]) -> Webhooks {
        let secret = format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode(key)
        );
        let config = NotifyConfig {
            public_base_url: Some("https://xwn.example".into()),
            webhooks: vec![WebhookConfig {
                name: "fuzz".into(),
                url: "http://127.0.0.1:9/hook".into(),
                secret,
                events: Vec::new(),
            }],
            ..NotifyConfig::default()
        };
        let notifier = Notifier::new(&config)
            .expect("a valid webhook")
            .expect("a webhook is configured");
        Webhooks {
            notifier,
            key: key.to_vec(),
        }
    }

    /// The notifications of a change that left `ticket` as it is, with
    /// `events`, in a village whose liaisons are `liaisons`; an offer's
    /// carries `action_url`. Signed at `timestamp` (Unix seconds).
    pub fn notify(
        &self,
        ticket: &Ticket,
        events: &[Event],
        liaisons: &[Liaison],
        action_url: Option<&str>,
        timestamp: i64,
    ) -> Vec<Webhook> {
        let liaisons: Vec<&Liaison> = liaisons.iter().collect();
        let notes = self.notifier.notes(ticket, events, &liaisons, action_url);
        notes
            .into_iter()
            .map(|note| Webhook {
                signature: sign::signature(&self.key, &note.id, timestamp, &note.body),
                id: note.id,
                kind: note.kind,
                ticket_id: note.ticket_id,
                body: note.body,
            })
            .collect()
    }
}
