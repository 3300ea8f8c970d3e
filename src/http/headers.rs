//! The security headers every page response carries: a content security
//! policy that allows only this server's own scripts, styles and API (no
//! inline scripts, no framing), no MIME sniffing and no referrer, so a
//! token typed into a page leaks nowhere.

use http::{HeaderMap, HeaderValue};

/// The pages' content security policy.
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; \
    frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Adds the security headers to a page response.
pub(crate) fn secure(headers: &mut HeaderMap) {
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
}
