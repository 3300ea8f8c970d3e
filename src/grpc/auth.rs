//! Bearer tokens: reading `authorization: Bearer <token>` (one parser for
//! the admin and the responder token) and checking the admin token in
//! constant time.

use std::sync::Arc;

use subtle::ConstantTimeEq;
use tonic::metadata::MetadataMap;

use crate::error::Error;

/// The token of an `authorization: Bearer <token>` header, as sent; without
/// one, an unauthenticated error asking for the `who` token.
pub(crate) fn bearer<'m>(metadata: &'m MetadataMap, who: &str) -> Result<&'m str, Error> {
    metadata
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| {
            Error::Unauthenticated(format!(
                "{who} call without `authorization: Bearer <{who} token>`"
            ))
        })
}

/// Compares two secrets in time that depends only on their lengths.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    given.ct_eq(expected).into()
}

/// Checks the admin token.
#[derive(Clone)]
pub(crate) struct AdminAuth {
    token: Option<Arc<str>>,
}

impl AdminAuth {
    pub(crate) fn new(token: Option<String>) -> AdminAuth {
        AdminAuth {
            token: token.map(Into::into),
        }
    }

    pub(crate) fn check(&self, metadata: &MetadataMap) -> Result<(), Error> {
        let Some(expected) = &self.token else {
            return Err(Error::Unauthenticated(
                "admin calls are disabled: the server has no admin token (set XWN_ADMIN_TOKEN or admin_token)".into(),
            ));
        };
        let given = bearer(metadata, "admin")?;
        if same_secret(given.trim().as_bytes(), expected.as_bytes()) {
            Ok(())
        } else {
            Err(Error::Unauthenticated("the admin token is wrong".into()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"secret-token-123", b"secret-token-123"));
        assert!(!same_secret(b"secret-token-123", b"secret-token-124"));
        assert!(!same_secret(b"secret", b"secret-token-123"));
    }

    #[test]
    fn a_missing_bearer_names_the_token_asked_for() {
        let mut md = MetadataMap::new();
        let missing = bearer(&md, "responder").unwrap_err().to_string();
        assert_eq!(
            missing,
            "responder call without `authorization: Bearer <responder token>`"
        );
        md.insert("authorization", "Basic abc".parse().unwrap());
        assert!(bearer(&md, "admin").is_err());
        md.insert("authorization", "Bearer abc".parse().unwrap());
        assert_eq!(bearer(&md, "admin").unwrap(), "abc");
    }

    #[test]
    fn auth_refuses_missing_wrong_and_unconfigured_tokens() {
        let auth = AdminAuth::new(Some("0123456789abcdef".into()));
        let code = |r: Result<(), Error>| tonic::Status::from(r.unwrap_err()).code();
        let mut md = MetadataMap::new();
        assert_eq!(code(auth.check(&md)), tonic::Code::Unauthenticated);
        md.insert("authorization", "Bearer wrong".parse().unwrap());
        assert_eq!(code(auth.check(&md)), tonic::Code::Unauthenticated);
        md.insert("authorization", "Bearer 0123456789abcdef".parse().unwrap());
        assert!(auth.check(&md).is_ok());
        assert!(AdminAuth::new(None).check(&md).is_err());
    }
}
