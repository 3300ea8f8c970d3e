//! Who may do what: responder and liaison tokens (issued and checked), the
//! secret that proves a ticket is a farmer's (derived, never stored), and
//! the liaison list tokens are issued against.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::{
    dispatcher::Dispatcher,
    liaison::parse_liaisons,
    now_ms,
    token::{Claims, Role, Signer},
    Event, Ticket,
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

/// Who is calling the responder API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Principal {
    Responder(TalentId),
    Liaison(String),
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

    /// A ticket with its history, for its farmer.
    pub async fn get_ticket(&self, id: &TicketId, secret: &str) -> Result<(Ticket, Vec<Event>)> {
        self.farmer_ticket(id, secret).await
    }

    /// Checks a responder or liaison token.
    pub(crate) async fn authenticate(&self, token: &str) -> Result<Principal> {
        let claims = self.keys.signer.verify(token, now_ms())?;
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
        }
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
}
