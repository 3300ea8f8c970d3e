//! The admin's view of tickets: listing them page by page, and the check
//! that memory agrees with the store.

use std::collections::HashMap;

use super::{dispatcher::Dispatcher, Ticket, TicketState};
use crate::{
    error::{check_id, check_page_size, Error, Result, MAX_ID_BYTES},
    store::TicketFilter,
};

impl Dispatcher {
    /// Tickets newest first; the token is the last ticket's `created:id`.
    pub(crate) async fn list_tickets(
        &self,
        state: Option<TicketState>,
        assignee: &str,
        page_size: u32,
        page_token: &str,
    ) -> Result<(Vec<Ticket>, Option<String>)> {
        let limit = check_page_size(page_size)?;
        check_id("assignee_id", assignee, MAX_ID_BYTES)?;
        // A token is `created-ms:ticket-id`.
        check_id("page_token", page_token, MAX_ID_BYTES + 24)?;
        let after = match page_token.split_once(':') {
            None if page_token.is_empty() => None,
            Some((ms, id)) if ms.parse::<i64>().is_ok() => {
                Some((ms.parse().expect("checked"), id.to_string()))
            }
            _ => {
                return Err(Error::invalid(
                    "page_token",
                    "is not a token this server gave out",
                ))
            }
        };
        let filter = TicketFilter {
            state,
            assignee: (!assignee.is_empty()).then(|| assignee.to_string()),
            after,
            limit: limit + 1,
        };
        let mut tickets = self.store.list(&filter).await?;
        let next = if tickets.len() > limit {
            tickets.truncate(limit);
            tickets
                .last()
                .map(|t| format!("{}:{}", t.created_at_ms, t.id))
        } else {
            None
        };
        Ok((tickets, next))
    }

    /// Checks, under the lock, that memory agrees with the store: the same
    /// open tickets in the same states, each responder's load equal to the
    /// tickets it holds, and no load above capacity. Returns what disagrees.
    pub async fn self_check(&self) -> Result<(), String> {
        let mut state = self.quiet().await.map_err(|e| e.to_string())?;
        self.catch_up(&mut state).await.map_err(|e| e.to_string())?;
        let stored = self.store.open_tickets().await.map_err(|e| e.to_string())?;
        let mut held: HashMap<String, u32> = HashMap::new();
        for (t, _) in &stored {
            match state.open.get(&t.id) {
                Some(m) if m.state == t.state && m.assignee == t.assignee => {}
                other => {
                    let memory = other.map(|m| m.state);
                    return Err(format!(
                        "ticket {}: memory {memory:?}, store {:?}",
                        t.id, t.state
                    ));
                }
            }
            if let Some(h) = t.holder() {
                *held.entry(h.to_string()).or_default() += 1;
            }
        }
        if stored.len() != state.open.len() {
            return Err(format!(
                "{} open tickets in memory, {} in the store",
                state.open.len(),
                stored.len()
            ));
        }
        let snapshot = self.matcher.snapshot();
        for (who, &n) in &held {
            if let Some(t) = snapshot.get(who).filter(|t| n > t.capacity) {
                return Err(format!("{who} holds {n} tickets, capacity {}", t.capacity));
            }
        }
        let loads = state
            .load
            .iter()
            .filter(|(_, &n)| n > 0)
            .map(|(w, &n)| (w.clone(), n));
        if loads.collect::<HashMap<_, _>>() != held {
            return Err(format!(
                "loads in memory {:?}, tickets held in the store {held:?}",
                state.load
            ));
        }
        Ok(())
    }
}
