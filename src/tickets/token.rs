//! Responder and liaison tokens: `xwn1.<payload>.<mac>`, the payload naming
//! the holder, its role and the expiry, signed with HMAC-SHA256 under a key
//! kept in the ticket store, so tokens survive restarts. Nothing about a
//! token is ever logged.

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
}

impl Role {
    pub(crate) fn key(self) -> &'static str {
        match self {
            Role::Responder => "responder",
            Role::Liaison => "liaison",
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

    /// Checks the signature (in constant time) and the expiry.
    pub(crate) fn verify(&self, token: &str, now_ms: i64) -> Result<Claims> {
        let invalid = || Error::Unauthenticated("the responder token is not valid".into());
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
        if claims.exp <= now_ms {
            return Err(Error::Unauthenticated(
                "the responder token has expired: ask an admin for a new one".into(),
            ));
        }
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
        });
        let forged_payload = hex::encode(br#"{"sub":"b","role":"responder","exp":9000}"#);
        let parts: Vec<&str> = token.split('.').collect();
        let forged = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
        assert!(signer.verify(&forged, 1).is_err());
        assert!(Signer::new(b"x".repeat(32)).verify(&token, 1).is_err());
        assert!(signer.verify("garbage", 1).is_err());
        assert!(signer.verify(&format!("{token}.x"), 1).is_err());
    }
}
