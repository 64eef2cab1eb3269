//! Signed tokens (pass, transfer, sign-out): compact JWS with HS256 over a
//! per-kind subkey. The header names the kind in `typ` and the key in `kid`;
//! verification accepts exactly `alg: HS256`, the expected `typ` and a `kid`
//! in the keyring, so `alg: none`, algorithm swaps, injected key ids and
//! tokens of another kind all fail before any claim is read.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::Mac;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::claims::{Identity, PassRef};
use super::keyring::{Keyring, TokenKind};
use super::memo::VerifiedPass;

/// Why a token was refused. Deliberately coarse towards clients; the label
/// goes to metrics and logs, never the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("unsupported algorithm")]
    Algorithm,
    #[error("token of another kind")]
    WrongKind,
    #[error("unknown key")]
    UnknownKey,
    #[error("bad signature")]
    Signature,
    #[error("expired")]
    Expired,
    #[error("issued in the future")]
    NotYetValid,
    #[error("issued for another host")]
    Audience,
    #[error("not started in this browser")]
    Unbound,
}

impl TokenError {
    pub fn label(self) -> &'static str {
        match self {
            TokenError::Malformed => "malformed",
            TokenError::Algorithm => "algorithm",
            TokenError::WrongKind => "wrong_kind",
            TokenError::UnknownKey => "unknown_key",
            TokenError::Signature => "signature",
            TokenError::Expired => "expired",
            TokenError::NotYetValid => "not_yet_valid",
            TokenError::Audience => "audience",
            TokenError::Unbound => "unbound",
        }
    }
}

/// Tolerated clock difference between replicas, in seconds.
pub const CLOCK_SKEW: u64 = 30;

/// Claims every signed token carries.
pub trait Timed {
    fn iat(&self) -> u64;
    fn exp(&self) -> u64;
}

#[derive(serde::Deserialize)]
struct Header<'a> {
    alg: &'a str,
    typ: &'a str,
    kid: &'a str,
}

fn typ(kind: TokenKind) -> String {
    format!("wg-{}", kind.label())
}

/// The encoded header a key with id `kid` writes for `kind`.
pub(crate) fn encoded_header(kind: TokenKind, kid: &str) -> String {
    let header = serde_json::json!({"alg": "HS256", "typ": typ(kind), "kid": kid});
    B64.encode(header.to_string())
}

/// Signs `claims` with the keyring's signing key.
pub fn sign<C: Serialize>(keyring: &Keyring, kind: TokenKind, claims: &C) -> String {
    let key = keyring.signing();
    let mut out = String::with_capacity(256);
    out.push_str(key.header(kind));
    out.push('.');
    B64.encode_string(
        serde_json::to_vec(claims).expect("claims serialize"),
        &mut out,
    );
    let mut mac = key.mac(kind);
    mac.update(out.as_bytes());
    out.push('.');
    B64.encode_string(mac.finalize().into_bytes(), &mut out);
    out
}

/// Verifies signature, kind and time; the caller checks the audience.
pub fn verify<C: DeserializeOwned + Timed>(
    keyring: &Keyring,
    kind: TokenKind,
    token: &str,
    now: u64,
) -> Result<C, TokenError> {
    let payload = verified_payload(keyring, kind, token)?;
    let claims: C = serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
    check_time(&claims, now)?;
    Ok(claims)
}

/// A pass's claims, verified in full the first time this exact token is
/// seen and taken from the keyring's memo afterwards. Expiry and issue time
/// are checked on every call; the caller checks audience and workspace.
pub fn verify_pass(
    keyring: &Keyring,
    token: &str,
    now: u64,
) -> Result<std::sync::Arc<VerifiedPass>, TokenError> {
    if let Some(pass) = keyring.passes().get(token) {
        check_time(&*pass, now)?;
        return Ok(pass);
    }
    let payload = verified_payload(keyring, TokenKind::Pass, token)?;
    let claims: PassRef<'_> =
        serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
    check_time(&claims, now)?;
    let pass = std::sync::Arc::new(VerifiedPass {
        aud: claims.aud.into_owned(),
        who: std::sync::Arc::new(Identity {
            user_id: claims.sub.into_owned(),
            username: claims.name.into_owned(),
        }),
        wid: claims.wid.into_owned(),
        iat: claims.iat,
        exp: claims.exp,
        renewed: std::sync::OnceLock::new(),
    });
    keyring.passes().insert(token, pass.clone(), now);
    Ok(pass)
}

/// Expiry and issue time, with [`CLOCK_SKEW`] for the latter.
pub fn check_time(claims: &impl Timed, now: u64) -> Result<(), TokenError> {
    if claims.exp() <= now {
        return Err(TokenError::Expired);
    }
    if claims.iat() > now + CLOCK_SKEW {
        return Err(TokenError::NotYetValid);
    }
    Ok(())
}

/// The decoded payload of a token whose header and signature are valid for
/// `kind`; the caller parses it (borrowing from it on the check path) and
/// must call [`check_time`].
pub fn verified_payload(
    keyring: &Keyring,
    kind: TokenKind,
    token: &str,
) -> Result<Vec<u8>, TokenError> {
    if token.len() > 8192 {
        return Err(TokenError::Malformed);
    }
    let mut parts = token.splitn(3, '.');
    let (Some(h64), Some(p64), Some(s64)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(TokenError::Malformed);
    };
    // Fast path: exactly the header this gate writes for this kind. Any
    // other header is parsed, and accepted only if it says the same.
    let key = match keyring.by_header(kind, h64) {
        Some(key) => key,
        None => {
            let header_bytes = B64.decode(h64).map_err(|_| TokenError::Malformed)?;
            let header: Header<'_> =
                serde_json::from_slice(&header_bytes).map_err(|_| TokenError::Malformed)?;
            if header.alg != "HS256" {
                return Err(TokenError::Algorithm);
            }
            if header.typ != typ(kind) {
                return Err(TokenError::WrongKind);
            }
            keyring.find(header.kid).ok_or(TokenError::UnknownKey)?
        }
    };
    let mut sig = [0u8; 32];
    match B64.decode_slice(s64, &mut sig) {
        Ok(32) => {}
        _ => return Err(TokenError::Signature),
    }
    let mut mac = key.mac(kind);
    mac.update(&token.as_bytes()[..h64.len() + 1 + p64.len()]);
    mac.verify_slice(&sig).map_err(|_| TokenError::Signature)?;
    B64.decode(p64).map_err(|_| TokenError::Malformed)
}
