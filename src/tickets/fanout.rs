//! Live streams: who watches which tickets, and the push of every committed
//! change to the ticket's farmer, the responders it concerns and the
//! liaisons of its village. A subscriber too far behind is dropped and
//! catches up by reconnecting (streams replay on connect).

use std::collections::HashMap;

use tokio::sync::mpsc;

use super::{
    access::Principal, dispatcher::Dispatcher, liaison::Liaison, Event, EventKind, Ticket,
};
use crate::{
    error::{Error, Result},
    model::ids::TicketId,
};

/// Capacity of each live stream.
const STREAM_BUFFER: usize = 256;

/// A change as a live stream carries it: the ticket after the change.
#[derive(Debug, Clone)]
pub(crate) struct Push {
    pub(crate) ticket: Ticket,
    pub(crate) event: Event,
    pub(crate) read_only: bool,
    pub(crate) replay: bool,
}

type Senders<T> = HashMap<String, Vec<mpsc::Sender<T>>>;

/// The live streams, by responder, liaison and ticket.
#[derive(Default)]
pub(super) struct Subscribers {
    responders: Senders<Push>,
    liaisons: Senders<Push>,
    tickets: Senders<Event>,
}

/// The liaison list, and who watches each village.
#[derive(Default)]
pub(super) struct Liaisons {
    by_id: HashMap<String, Liaison>,
    /// Village code → liaison ids.
    by_village: HashMap<String, Vec<String>>,
}

impl Liaisons {
    pub(super) fn set(&mut self, list: Vec<Liaison>) {
        self.by_village.clear();
        for l in &list {
            for v in &l.villages {
                self.by_village
                    .entry(v.clone())
                    .or_default()
                    .push(l.id.clone());
            }
        }
        self.by_id = list.into_iter().map(|l| (l.id.clone(), l)).collect();
    }

    /// The liaisons who watch a village.
    pub(super) fn of_village(&self, village: Option<&str>) -> Vec<&Liaison> {
        village
            .and_then(|v| self.by_village.get(v))
            .map_or_else(Vec::new, |ids| {
                ids.iter().filter_map(|id| self.by_id.get(id)).collect()
            })
    }

    pub(super) fn contains(&self, id: &str) -> bool {
        self.by_id.contains_key(id)
    }

    fn villages(&self, id: &str) -> Vec<String> {
        self.by_id
            .get(id)
            .map(|l| l.villages.clone())
            .unwrap_or_default()
    }
}

fn send_all<T: Clone>(subs: &mut Senders<T>, key: &str, item: &T) {
    if let Some(list) = subs.get_mut(key) {
        list.retain(|tx| tx.try_send(item.clone()).is_ok());
        if list.is_empty() {
            subs.remove(key);
        }
    }
}

impl Subscribers {
    /// Sends each event to the ticket's watchers, its liaisons, the
    /// responder it names and the responder holding the ticket before it.
    pub(super) fn push(
        &mut self,
        liaisons: &Liaisons,
        ticket: &Ticket,
        events: &[Event],
        previous_holder: Option<&str>,
    ) {
        let watchers: &[String] = ticket
            .division_code
            .as_ref()
            .and_then(|v| liaisons.by_village.get(v))
            .map_or(&[], Vec::as_slice);
        let mut holder = previous_holder.map(str::to_string);
        for event in events {
            send_all(&mut self.tickets, &ticket.id, event);
            let push = Push {
                ticket: ticket.clone(),
                event: event.clone(),
                read_only: false,
                replay: false,
            };
            let named = event.talent_id.as_deref();
            for who in [named, holder.as_deref().filter(|h| Some(*h) != named)]
                .into_iter()
                .flatten()
            {
                send_all(&mut self.responders, who, &push);
            }
            holder = match event.kind {
                EventKind::Offered => event.talent_id.clone(),
                EventKind::Accepted | EventKind::Submitted | EventKind::Queued => holder,
                _ => None,
            };
            let copy = Push {
                read_only: true,
                ..push
            };
            for l in watchers {
                send_all(&mut self.liaisons, l, &copy);
            }
        }
    }
}

/// The pushes of `rx` about `ticket` only, forwarded by a task that ends
/// when either side goes away.
fn only_ticket(mut rx: mpsc::Receiver<Push>, ticket: String) -> mpsc::Receiver<Push> {
    let (tx, out) = mpsc::channel(STREAM_BUFFER);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                push = rx.recv() => match push {
                    Some(p) if p.ticket.id == ticket => {
                        if tx.send(p).await.is_err() {
                            return;
                        }
                    }
                    Some(_) => {}
                    None => return,
                },
                () = tx.closed() => return,
            }
        }
    });
    out
}

impl Dispatcher {
    /// The ticket's history so far, then every later event.
    pub(crate) async fn watch_ticket(
        &self,
        id: &TicketId,
        secret: &str,
    ) -> Result<(Vec<Event>, mpsc::Receiver<Event>)> {
        self.farmer_ticket(id, secret).await?;
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        // Subscribe and read under the lock, so no event falls between.
        let mut state = self.state.lock().await;
        self.catch_up(&mut state).await?;
        let (_, history) = self.store.get(id.as_str()).await?.ok_or_else(|| {
            Error::NotFound(format!("no ticket {}", crate::error::quote(id.as_str())))
        })?;
        state
            .subscribers
            .tickets
            .entry(id.to_string())
            .or_default()
            .push(tx);
        Ok((history, rx))
    }

    /// What is pending for the caller, then every later change. Through an
    /// action link: its ticket only, refused once the ticket is no longer
    /// offered to or accepted by its responder.
    pub(crate) async fn watch_assignments(
        &self,
        who: &Principal,
    ) -> Result<(Vec<Push>, mpsc::Receiver<Push>)> {
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let mut state = self.state.lock().await;
        self.catch_up(&mut state).await?;
        let mut tickets: Vec<&Ticket> = match who {
            Principal::Responder(id) => state
                .open
                .values()
                .filter(|t| t.holder() == Some(id.as_str()))
                .collect(),
            Principal::Action { talent, ticket } => {
                let held = state.open.get(ticket.as_str());
                let held = held.filter(|t| t.holder() == Some(talent.as_str()));
                let Some(t) = held else {
                    return Err(Error::FailedPrecondition(format!(
                        "ticket {ticket} is no longer offered to or accepted by you"
                    )));
                };
                vec![t]
            }
            Principal::Liaison(id) => {
                let villages = state.liaisons.villages(id);
                state
                    .open
                    .values()
                    .filter(|t| {
                        t.division_code
                            .as_ref()
                            .is_some_and(|v| villages.contains(v))
                    })
                    .collect()
            }
        };
        tickets.sort_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
        let read_only = matches!(who, Principal::Liaison(_));
        let mut replay = Vec::new();
        for t in tickets {
            let events = self
                .store
                .get(&t.id)
                .await?
                .map(|(_, e)| e)
                .unwrap_or_default();
            if let Some(last) = events.last() {
                replay.push(Push {
                    ticket: t.clone(),
                    event: last.clone(),
                    read_only,
                    replay: true,
                });
            }
        }
        let streams = match who {
            Principal::Responder(id) => state.subscribers.responders.entry(id.to_string()),
            Principal::Action { talent, .. } => {
                state.subscribers.responders.entry(talent.to_string())
            }
            Principal::Liaison(id) => state.subscribers.liaisons.entry(id.clone()),
        };
        streams.or_default().push(tx);
        drop(state);
        if let Principal::Action { ticket, .. } = who {
            return Ok((replay, only_ticket(rx, ticket.to_string())));
        }
        Ok((replay, rx))
    }

    /// Ends every live stream (at shutdown); clients reconnect and replay.
    pub(crate) async fn close_streams(&self) {
        self.state.lock().await.subscribers = Subscribers::default();
    }
}
