//! Sealed tokens (login cookie, OAuth state): XChaCha20-Poly1305 over a
//! per-kind subkey, so their content (the provider's tokens, the PKCE
//! verifier) is secret as well as tamper-proof. Format:
//! `<kid>.<base64url(nonce || ciphertext)>`; the kind and key id are bound as
//! associated data.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::keyring::{Keyring, TokenKind};
use super::signed::{CLOCK_SKEW, Timed, TokenError};

fn aad(kind: TokenKind, kid: &str) -> Vec<u8> {
    format!("workspace-gate:{}:{kid}", kind.label()).into_bytes()
}

pub(crate) fn seal<C: Serialize>(keyring: &Keyring, kind: TokenKind, claims: &C) -> String {
    let key = keyring.signing();
    let cipher = XChaCha20Poly1305::new(key.subkey(kind).into());
    let mut nonce = [0u8; 24];
    rand::rng().fill_bytes(&mut nonce);
    let plaintext = serde_json::to_vec(claims).expect("claims serialize");
    let ct = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: &plaintext,
                aad: &aad(kind, &key.kid),
            },
        )
        .expect("encryption of a bounded message cannot fail");
    let mut blob = nonce.to_vec();
    blob.extend_from_slice(&ct);
    format!("{}.{}", key.kid, B64.encode(blob))
}

pub(crate) fn open<C: DeserializeOwned + Timed>(
    keyring: &Keyring,
    kind: TokenKind,
    token: &str,
    now: u64,
) -> Result<C, TokenError> {
    if token.len() > 8192 {
        return Err(TokenError::Malformed);
    }
    let (kid, body) = token.split_once('.').ok_or(TokenError::Malformed)?;
    let key = keyring.find(kid).ok_or(TokenError::UnknownKey)?;
    let blob = B64.decode(body).map_err(|_| TokenError::Malformed)?;
    if blob.len() < 24 + 16 {
        return Err(TokenError::Malformed);
    }
    let cipher = XChaCha20Poly1305::new(key.subkey(kind).into());
    let plaintext = cipher
        .decrypt(
            XNonce::from_slice(&blob[..24]),
            Payload {
                msg: &blob[24..],
                aad: &aad(kind, kid),
            },
        )
        .map_err(|_| TokenError::Signature)?;
    let claims: C = serde_json::from_slice(&plaintext).map_err(|_| TokenError::Malformed)?;
    if claims.exp() <= now {
        return Err(TokenError::Expired);
    }
    if claims.iat() > now + CLOCK_SKEW {
        return Err(TokenError::NotYetValid);
    }
    Ok(claims)
}
