//! Responder, liaison and action tokens: `xwn1.<payload>.<mac>`, the
//! payload (hex of JSON) naming the holder, its role, the expiry and, for
//! an action token, the one ticket it acts on, signed with HMAC-SHA256 under
//! a key kept in the ticket store, so tokens survive restarts and every
//! replica checks what another issued. Nothing about a token is ever logged.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::error::{Error, Result};

const PREFIX: &str = "xwn1";

/// Who a token speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Role {
    Responder,
    Liaison,
    /// An action link's token: a responder acting on one ticket only
    /// (`Claims::ticket`). A role of its own, so a server that does not
    /// know action tokens refuses them instead of taking one for a
    /// responder token that acts on every ticket.
    Action,
}

impl Role {
    pub(crate) fn key(self) -> &'static str {
        match self {
            Role::Responder => "responder",
            Role::Liaison => "liaison",
            Role::Action => "action",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Claims {
    /// Talent id (responders) or liaison id.
    pub(crate) sub: String,
    pub(crate) role: Role,
    /// Expiry, Unix milliseconds.
    pub(crate) exp: i64,
    /// The ticket an action token acts on; none for the other roles.
    #[serde(default, rename = "tk", skip_serializing_if = "Option::is_none")]
    pub(crate) ticket: Option<String>,
}

#[derive(Clone)]
pub(crate) struct Signer {
    key: Vec<u8>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(..)")
    }
}

impl Signer {
    pub(crate) fn new(key: Vec<u8>) -> Signer {
        Signer { key }
    }

    fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes keys of any length")
    }

    pub(crate) fn issue(&self, claims: &Claims) -> String {
        let payload = hex::encode(serde_json::to_vec(claims).expect("claims serialize"));
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        format!(
            "{PREFIX}.{payload}.{}",
            hex::encode(mac.finalize().into_bytes())
        )
    }

    /// Checks the signature (in constant time) and the expiry (the
    /// dispatcher checks the expiry itself, by role).
    #[cfg(test)]
    pub(crate) fn verify(&self, token: &str, now_ms: i64) -> Result<Claims> {
        let claims = self.verify_signature(token)?;
        if claims.exp <= now_ms {
            return Err(Error::Unauthenticated(
                "the responder token has expired: ask an admin for a new one".into(),
            ));
        }
        Ok(claims)
    }

    /// Checks the signature (in constant time) only: the caller decides
    /// about the expiry (an action token outlives it while its ticket is
    /// accepted).
    pub(crate) fn verify_signature(&self, token: &str) -> Result<Claims> {
        let invalid = || {
            Error::Unauthenticated(
                "the responder token is not valid: it was altered or not issued by this server"
                    .into(),
            )
        };
        let mut parts = token.trim().split('.');
        let (Some(PREFIX), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid());
        };
        let signature = hex::decode(signature).map_err(|_| invalid())?;
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        mac.verify_slice(&signature).map_err(|_| invalid())?;
        let claims: Claims = serde_json::from_slice(&hex::decode(payload).map_err(|_| invalid())?)
            .map_err(|_| invalid())?;
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_verify_until_they_expire() {
        let signer = Signer::new(b"k".repeat(32));
        let claims = Claims {
            sub: "vill-00001".into(),
            role: Role::Responder,
            exp: 2_000,
            ticket: None,
        };
        let token = signer.issue(&claims);
        assert_eq!(signer.verify(&token, 1_000).unwrap(), claims);
        assert!(signer.verify(&token, 2_000).is_err());
    }

    #[test]
    fn tampered_or_foreign_tokens_fail() {
        let signer = Signer::new(b"k".repeat(32));
        let token = signer.issue(&Claims {
            sub: "a".into(),
            role: Role::Responder,
            exp: 9_000,
            ticket: None,
        });
        let forged_payload = hex::encode(br#"{"sub":"b","role":"responder","exp":9000}"#);
        let parts: Vec<&str> = token.split('.').collect();
        let forged = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
        assert!(signer.verify(&forged, 1).is_err());
        assert!(Signer::new(b"x".repeat(32)).verify(&token, 1).is_err());
        assert!(signer.verify("garbage", 1).is_err());
        assert!(signer.verify(&format!("{token}.x"), 1).is_err());
    }

    #[test]
    fn action_tokens_carry_their_ticket_and_read_as_responder_tokens_without() {
        let signer = Signer::new(b"k".repeat(32));
        let claims = Claims {
            sub: "a".into(),
            role: Role::Action,
            exp: 9_000,
            ticket: Some("tk-1".into()),
        };
        let token = signer.issue(&claims);
        assert_eq!(signer.verify(&token, 1).unwrap(), claims);
        // Moving it to another ticket breaks the signature.
        let payload = hex::encode(br#"{"sub":"a","role":"action","exp":9000,"tk":"tk-2"}"#);
        let parts: Vec<&str> = token.split('.').collect();
        let moved = format!("{}.{payload}.{}", parts[0], parts[2]);
        assert!(signer.verify(&moved, 1).is_err());
        // Responder tokens are written as before: no `tk`.
        let plain = Claims {
            role: Role::Responder,
            ticket: None,
            ..claims
        };
        let payload = signer.issue(&plain).split('.').nth(1).unwrap().to_string();
        let json = String::from_utf8(hex::decode(payload).unwrap()).unwrap();
        assert_eq!(json, r#"{"sub":"a","role":"responder","exp":9000}"#);
    }
}
