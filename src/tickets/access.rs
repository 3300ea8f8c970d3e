//! Who may do what: responder, liaison and action tokens (issued and
//! checked), the secret that proves a ticket is a farmer's (derived, never
//! stored), and the liaison list tokens are issued against.
//!
//! An action token is what an offer's notification links to
//! ([`Dispatcher::action_url`]): it speaks for one responder on one ticket
//! — accept, decline, resolve, escalate and watch that ticket, nothing else
//! — until the offer's deadline; once its responder has accepted the
//! ticket it keeps working on it, while accepted, for
//! [`ACCEPTED_LINK_GRACE`] more, so the answer can be sent from the same
//! link.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::{
    dispatcher::Dispatcher,
    liaison::parse_liaisons,
    now_ms,
    token::{Claims, Role, Signer},
    Event, Ticket, TicketState,
};
use crate::{
    error::{check_id, quote, Error, Result, MAX_ID_BYTES},
    model::ids::{TalentId, TicketId},
    roster::RosterFormat,
};

const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
const MAX_TOKEN_TTL: Duration = Duration::from_secs(365 * 24 * 3600);
/// Longest ticket secret accepted (they are 32 hex digits).
const MAX_SECRET_BYTES: usize = 64;
/// How long past its expiry an action link still works on a ticket its
/// responder has accepted (and not yet resolved, escalated or lost): time
/// to answer from the field. Also the life of a link issued by an admin
/// for an accepted ticket.
pub(crate) const ACCEPTED_LINK_GRACE: Duration = Duration::from_secs(7 * 24 * 3600);
/// Where an action link's token goes in the expert page's address: the
/// fragment, which browsers never send to a server.
pub(crate) const ACTION_FRAGMENT: &str = "#action=";

/// Who is calling the responder API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Principal {
    Responder(TalentId),
    Liaison(String),
    /// A responder through an action link: on `ticket` only.
    Action {
        talent: TalentId,
        ticket: TicketId,
    },
}

impl Principal {
    /// The responder who may act on `ticket` (the ticket a call names;
    /// none for a call about no ticket, like SetAvailability): a
    /// responder on any of theirs, an action link's responder on its own
    /// ticket only, a liaison never.
    pub(crate) fn acting_on(&self, ticket: Option<&str>) -> Result<TalentId> {
        match self {
            Principal::Responder(id) => Ok(id.clone()),
            Principal::Liaison(_) => Err(Error::PermissionDenied(
                "liaisons have read-only access: they can only watch".into(),
            )),
            Principal::Action {
                talent,
                ticket: own,
            } => match ticket.map(str::trim) {
                Some(asked) if asked == own.as_str() => Ok(talent.clone()),
                Some(asked) => Err(Error::PermissionDenied(format!(
                    "this action link acts on ticket {own} only, not on {}",
                    quote(asked)
                ))),
                None => Err(Error::PermissionDenied(format!(
                    "this action link acts on ticket {own} only: sign in with your responder \
                     token for anything else"
                ))),
            },
        }
    }
}

/// Who asks for a ticket's photos.
#[derive(Debug, Clone)]
pub(crate) enum Asking {
    /// The farmer, with the ticket's secret.
    Farmer(String),
    /// A responder, liaison or action link, by their token.
    Principal(Principal),
    Admin,
}

/// The keys behind tokens and ticket secrets, both from the store's
/// signing key.
pub(super) struct Keys {
    signer: Signer,
    /// Derives ticket secrets: the secret is never stored.
    secret_key: Vec<u8>,
}

impl Keys {
    pub(super) fn new(key: Vec<u8>) -> Keys {
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("any key length");
        mac.update(b"ticket secrets");
        Keys {
            secret_key: mac.finalize().into_bytes().to_vec(),
            signer: Signer::new(key),
        }
    }

    /// The token of an action link for `responder` on `ticket`, expiring
    /// at `expires_at_ms`.
    pub(super) fn action_token(
        &self,
        responder: &TalentId,
        ticket: &TicketId,
        expires_at_ms: i64,
    ) -> String {
        self.signer.issue(&Claims {
            sub: responder.to_string(),
            role: Role::Action,
            exp: expires_at_ms,
            ticket: Some(ticket.to_string()),
        })
    }

    /// The farmer's secret of a ticket.
    pub(super) fn secret(&self, ticket_id: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret_key).expect("any key length");
        mac.update(ticket_id.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }
}

impl Dispatcher {
    /// Loads a ticket for its farmer: wrong secrets are refused. The secret
    /// is compared exactly, byte for byte: no trimming.
    pub(super) async fn farmer_ticket(
        &self,
        id: &TicketId,
        secret: &str,
    ) -> Result<(Ticket, Vec<Event>)> {
        let id = id.as_str();
        check_id("ticket_id", id, MAX_ID_BYTES)?;
        check_id("ticket_secret", secret, MAX_SECRET_BYTES)?;
        if id.trim().is_empty() {
            return Err(Error::invalid("ticket_id", "is empty"));
        }
        let found = self.store.get(id).await?;
        let Some((ticket, events)) = found else {
            return Err(Error::NotFound(format!("no ticket {}", quote(id))));
        };
        let expected = self.keys.secret(id);
        if !bool::from(expected.as_bytes().ct_eq(secret.as_bytes())) {
            return Err(Error::PermissionDenied(
                "the ticket secret does not match this ticket".into(),
            ));
        }
        Ok((ticket, events))
    }

    /// A ticket whose photos `asking` may see: its farmer (by the
    /// secret), the responder it is offered to or was accepted (or
    /// resolved) by — through their token or the ticket's action link —,
    /// a liaison of its village, an admin. Nobody else.
    pub(crate) async fn photo_ticket(&self, id: &TicketId, asking: &Asking) -> Result<Ticket> {
        let principal = match asking {
            Asking::Farmer(secret) => return Ok(self.farmer_ticket(id, secret).await?.0),
            Asking::Admin => None,
            Asking::Principal(p) => Some(p),
        };
        check_id("ticket_id", id.as_str(), MAX_ID_BYTES)?;
        let Some((ticket, _)) = self.store.get(id.as_str().trim()).await? else {
            return Err(Error::NotFound(format!("no ticket {}", quote(id.as_str()))));
        };
        let allowed = match principal {
            None => true,
            Some(Principal::Liaison(liaison)) => {
                let state = self.state.lock().await;
                let of_village = state.liaisons.of_village(ticket.division_code.as_deref());
                of_village.iter().any(|l| &l.id == liaison)
            }
            Some(p @ (Principal::Responder(_) | Principal::Action { .. })) => {
                let talent = p.acting_on(Some(&ticket.id))?;
                ticket.assignee.as_deref() == Some(talent.as_str())
                    && matches!(
                        ticket.state,
                        TicketState::Offered | TicketState::Accepted | TicketState::Resolved
                    )
            }
        };
        if !allowed {
            return Err(Error::PermissionDenied(format!(
                "the photos of ticket {} are shown only to its farmer, the responder it is \
                 offered to or accepted by, its village's liaison and admins",
                ticket.id
            )));
        }
        Ok(ticket)
    }

    /// A ticket with its history, for its farmer.
    pub async fn get_ticket(&self, id: &TicketId, secret: &str) -> Result<(Ticket, Vec<Event>)> {
        self.farmer_ticket(id, secret).await
    }

    /// The link an offer's notification carries: `<base_url>/expert#action=<token>`,
    /// the token (see [`ACTION_FRAGMENT`]) signed with the server key that
    /// every replica shares through the store, so any replica accepts it.
    ///
    /// - `base_url`: `notify.public_base_url` (`https://host[:port]`; a
    ///   trailing `/` is dropped);
    /// - `responder`: the talent the ticket is offered to (`Ticket::assignee`);
    /// - `ticket`: the ticket (`Ticket::id`);
    /// - `expires_at_ms`: when the link stops working, Unix milliseconds:
    ///   the offer's deadline (`Ticket::offer_deadline_ms` of the OFFERED
    ///   ticket). Past it the link still works while its responder holds
    ///   the ticket accepted, for [`ACCEPTED_LINK_GRACE`] more.
    ///
    /// Pure and cheap (one HMAC): no store, no lock. The URL holds a
    /// credential: never log it.
    pub fn action_url(
        &self,
        base_url: &str,
        responder: &TalentId,
        ticket: &TicketId,
        expires_at_ms: i64,
    ) -> String {
        let token = self.keys.action_token(responder, ticket, expires_at_ms);
        format!(
            "{}/expert{ACTION_FRAGMENT}{token}",
            base_url.trim_end_matches('/')
        )
    }

    /// The action link of an OFFERED ticket's offer ([`Self::action_url`]
    /// with its assignee and deadline); none for a ticket in any other
    /// state.
    pub fn offer_action_url(&self, base_url: &str, ticket: &Ticket) -> Option<String> {
        let (TicketState::Offered, Some(to), Some(deadline)) =
            (ticket.state, &ticket.assignee, ticket.offer_deadline_ms)
        else {
            return None;
        };
        let (to, id) = (
            TalentId::new(to.as_str()),
            TicketId::new(ticket.id.as_str()),
        );
        Some(self.action_url(base_url, &to, &id, deadline))
    }

    /// An action token for the responder holding `id` now (an admin
    /// sending the link by hand): expiring with the offer when it is
    /// OFFERED, after [`ACCEPTED_LINK_GRACE`] when ACCEPTED. Returns the
    /// token, its expiry and the responder.
    pub(crate) async fn issue_action_token(
        &self,
        id: &TicketId,
    ) -> Result<(String, i64, TalentId)> {
        check_id("ticket_id", id.as_str(), MAX_ID_BYTES)?;
        let mut state = self.state.lock().await;
        self.catch_up(&mut state).await?;
        let held = state.open.get(id.as_str()).and_then(|t| {
            let holder = TalentId::new(t.holder()?);
            match (t.state, t.offer_deadline_ms) {
                (TicketState::Offered, Some(deadline)) => Some((holder, deadline)),
                (TicketState::Accepted, _) => {
                    Some((holder, now_ms() + ACCEPTED_LINK_GRACE.as_millis() as i64))
                }
                _ => None,
            }
        });
        drop(state);
        let Some((holder, exp)) = held else {
            return Err(match self.store.get(id.as_str()).await? {
                Some((t, _)) => Error::FailedPrecondition(format!(
                    "ticket {id} is {}: only an offered or accepted ticket has an action link",
                    t.state.key()
                )),
                None => Error::NotFound(format!("no ticket {}", quote(id.as_str()))),
            });
        };
        Ok((self.keys.action_token(&holder, id, exp), exp, holder))
    }

    /// Checks a responder, liaison or action token.
    pub(crate) async fn authenticate(&self, token: &str) -> Result<Principal> {
        let claims = self.keys.signer.verify_signature(token)?;
        let now = now_ms();
        if claims.role == Role::Action {
            return self.authenticate_action(claims, now).await;
        }
        if claims.exp <= now {
            return Err(Error::Unauthenticated(
                "the responder token has expired: ask an admin for a new one".into(),
            ));
        }
        match claims.role {
            Role::Responder => {
                if self.matcher.snapshot().get(&claims.sub).is_none() {
                    return Err(Error::PermissionDenied(format!(
                        "talent {} is no longer in the roster",
                        claims.sub
                    )));
                }
                Ok(Principal::Responder(TalentId::new(claims.sub)))
            }
            Role::Liaison => {
                if !self.state.lock().await.liaisons.contains(&claims.sub) {
                    return Err(Error::PermissionDenied(format!(
                        "liaison {} is no longer on the list",
                        claims.sub
                    )));
                }
                Ok(Principal::Liaison(claims.sub))
            }
            Role::Action => unreachable!("checked above"),
        }
    }

    /// Checks an action token whose signature is good: its responder still
    /// in the roster, and either before its expiry or holding its ticket
    /// accepted within [`ACCEPTED_LINK_GRACE`] past it.
    async fn authenticate_action(&self, claims: Claims, now: i64) -> Result<Principal> {
        let Some(ticket) = claims.ticket else {
            return Err(Error::Unauthenticated(
                "the action link is not valid: it names no ticket".into(),
            ));
        };
        if claims.exp <= now {
            let grace = ACCEPTED_LINK_GRACE.as_millis() as i64;
            let state = self.state.lock().await;
            let accepted = state.open.get(&ticket).is_some_and(|t| {
                t.state == TicketState::Accepted && t.assignee.as_deref() == Some(&claims.sub)
            });
            if !accepted || now >= claims.exp.saturating_add(grace) {
                return Err(Error::Unauthenticated(format!(
                    "the action link for ticket {ticket} has expired: the offer ended; \
                     sign in with your responder token to see your tickets"
                )));
            }
        }
        if self.matcher.snapshot().get(&claims.sub).is_none() {
            return Err(Error::PermissionDenied(format!(
                "talent {} is no longer in the roster",
                claims.sub
            )));
        }
        Ok(Principal::Action {
            talent: TalentId::new(claims.sub),
            ticket: TicketId::new(ticket),
        })
    }

    /// Issues a token for a talent of the roster, or else a liaison.
    pub(crate) async fn issue_token(
        &self,
        id: &str,
        ttl_seconds: u64,
    ) -> Result<(String, i64, Role)> {
        check_id("talent_id", id, MAX_ID_BYTES)?;
        let ttl = match ttl_seconds {
            0 => DEFAULT_TOKEN_TTL,
            s if Duration::from_secs(s) > MAX_TOKEN_TTL => {
                return Err(Error::invalid(
                    "ttl_seconds",
                    format!("{s} is above the maximum of {}", MAX_TOKEN_TTL.as_secs()),
                ))
            }
            s => Duration::from_secs(s),
        };
        let role = if self.matcher.snapshot().get(id).is_some() {
            Role::Responder
        } else if self.state.lock().await.liaisons.contains(id) {
            Role::Liaison
        } else {
            return Err(Error::NotFound(format!(
                "no talent or liaison {}",
                quote(id)
            )));
        };
        let exp = now_ms() + ttl.as_millis() as i64;
        let claims = Claims {
            sub: id.to_string(),
            role,
            exp,
            ticket: None,
        };
        Ok((self.keys.signer.issue(&claims), exp, role))
    }

    /// Validates a liaison list as an import would and returns every
    /// problem, unbounded; none means it would be accepted.
    pub(crate) fn check_liaisons(
        format: RosterFormat,
        data: &[u8],
    ) -> Vec<crate::roster::RowError> {
        parse_liaisons(format, data, crate::model::divisions::Divisions::embedded())
            .err()
            .unwrap_or_default()
    }

    /// Replaces the liaison list; returns how many were stored.
    pub(crate) async fn import_liaisons(&self, format: RosterFormat, data: &[u8]) -> Result<u64> {
        let list = parse_liaisons(format, data, crate::model::divisions::Divisions::embedded())
            .map_err(Error::invalid_roster)?;
        let mut state = self.state.lock().await;
        self.store.replace_liaisons(&list).await?;
        let n = list.len() as u64;
        state.liaisons.set(list);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticket_secrets_are_stable_per_ticket_and_key() {
        let keys = Keys::new(b"k".repeat(32));
        assert_eq!(keys.secret("tk-1"), keys.secret("tk-1"));
        assert_ne!(keys.secret("tk-1"), keys.secret("tk-2"));
        assert_ne!(
            keys.secret("tk-1"),
            Keys::new(b"x".repeat(32)).secret("tk-1")
        );
        assert_eq!(keys.secret("tk-1").len(), 32);
    }

    #[test]
    fn action_links_act_on_their_own_ticket_only() {
        let link = Principal::Action {
            talent: TalentId::new("a"),
            ticket: TicketId::new("tk-1"),
        };
        assert_eq!(link.acting_on(Some("tk-1")).unwrap(), TalentId::new("a"));
        assert_eq!(link.acting_on(Some(" tk-1 ")).unwrap(), TalentId::new("a"));
        let denied = |r: Result<TalentId>| matches!(r, Err(Error::PermissionDenied(_)));
        assert!(denied(link.acting_on(Some("tk-2"))));
        assert!(denied(link.acting_on(None)));
        let responder = Principal::Responder(TalentId::new("a"));
        assert_eq!(
            responder.acting_on(Some("tk-2")).unwrap(),
            TalentId::new("a")
        );
        assert_eq!(responder.acting_on(None).unwrap(), TalentId::new("a"));
        assert!(denied(
            Principal::Liaison("l".into()).acting_on(Some("tk-1"))
        ));
    }
}
