//! Binding a transfer to the browser that started the login.
//!
//! Before a login leaves a workspace host for the auth host, the workspace
//! host sets a random secret in a host-only cookie of its own and sends only
//! the secret's digest along (`b`). The digest travels in the login's state
//! and in the transfer token; redeeming the token on the workspace host
//! needs the cookie whose secret has that digest, and clears it. A transfer
//! token read from a log, or replayed from another browser, on another
//! replica or a second time, finds no such cookie.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Length of a digest as sent: SHA-256 in unpadded base64url.
pub(crate) const DIGEST_LEN: usize = 43;

/// Characters of a digest that name its cookie: enough that one browser's
/// logins under way never share a name, short enough to keep the cookie
/// header small.
const NAME_CHARS: usize = 10;

/// A new secret and its digest.
pub(crate) fn new_binding() -> (String, String) {
    let mut buf = [0u8; 24];
    rand::rng().fill_bytes(&mut buf);
    let secret = B64.encode(buf);
    let d = digest(&secret);
    (secret, d)
}

/// The digest of `secret`, as carried in `b`.
pub(crate) fn digest(secret: &str) -> String {
    B64.encode(Sha256::digest(secret.as_bytes()))
}

/// True for text shaped like a digest (what `b` must be).
pub(crate) fn is_digest(b: &str) -> bool {
    b.len() == DIGEST_LEN
        && b.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
}

/// True when `secret` is the one whose digest is `b`.
pub(crate) fn matches(secret: &str, b: &str) -> bool {
    is_digest(b) && bool::from(digest(secret).as_bytes().ct_eq(b.as_bytes()))
}

/// The name of the cookie holding the secret of digest `b`:
/// `<prefix>-<first characters of b>`.
pub(crate) fn cookie_name(prefix: &str, b: &str) -> String {
    let end = b.len().min(NAME_CHARS);
    format!("{prefix}-{}", &b[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_matches_its_own_digest_only() {
        let (secret, b) = new_binding();
        assert!(is_digest(&b));
        assert!(matches(&secret, &b));
        let (other, b2) = new_binding();
        assert_ne!(b, b2);
        assert!(!matches(&other, &b));
        assert!(!matches(&secret, ""));
        assert!(!matches(&secret, &b[..42]));
        assert!(!matches("", &b));
    }

    #[test]
    fn digests_are_recognised_by_shape() {
        assert!(is_digest(&"A".repeat(43)));
        assert!(!is_digest(&"A".repeat(44)));
        assert!(!is_digest(&format!("{}=", "A".repeat(42))));
        assert!(!is_digest(&format!("{}.", "A".repeat(42))));
    }

    #[test]
    fn cookie_names_come_from_the_digest() {
        assert_eq!(
            cookie_name("p-bind", "abcdefghijklmnop"),
            "p-bind-abcdefghij"
        );
        assert_eq!(cookie_name("p-bind", "abc"), "p-bind-abc");
    }
}
