//! Signing keys. Keys come from one or more files: the first signs, all
//! verify, so a new key can be rolled out before the old one is retired.
//! HKDF derives a separate subkey per token kind, so a token of one kind can
//! never be accepted as another.

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The kinds of token the gate issues. Each gets its own subkey.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// Per-host pass cookie on a workspace host.
    Pass,
    /// Short-lived hand-over from the auth host to one workspace host.
    Transfer,
    /// Login cookie on the auth host (sealed).
    Login,
    /// OAuth `state` parameter (sealed).
    State,
    /// Chain of hosts to visit when signing out (signed).
    SignOut,
}

impl TokenKind {
    pub fn label(self) -> &'static str {
        match self {
            TokenKind::Pass => "pass",
            TokenKind::Transfer => "transfer",
            TokenKind::Login => "login",
            TokenKind::State => "state",
            TokenKind::SignOut => "signout",
        }
    }

    const ALL: [TokenKind; 5] = [
        TokenKind::Pass,
        TokenKind::Transfer,
        TokenKind::Login,
        TokenKind::State,
        TokenKind::SignOut,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

pub use crate::material::{MIN_KEY_LEN, generate_key, parse_key};

/// One key with its derived subkeys.
pub struct Key {
    /// Public identifier: a hash prefix of the key, safe to show.
    pub kid: String,
    subkeys: [[u8; 32]; 5],
    /// HMAC state already keyed with each subkey (cloned per token, which
    /// saves hashing the key on the check path).
    macs: [Hmac<Sha256>; 5],
    /// The encoded JWS header of each kind signed with this key.
    headers: [String; 5],
}

impl Key {
    pub fn new(material: &[u8]) -> Self {
        let hk = Hkdf::<Sha256>::new(Some(b"workspace-gate v1"), material);
        let mut subkeys = [[0u8; 32]; 5];
        for kind in TokenKind::ALL {
            hk.expand(kind.label().as_bytes(), &mut subkeys[kind.index()])
                .expect("32 bytes is a valid HKDF-SHA256 length");
        }
        let digest = Sha256::digest([b"kid:".as_slice(), material].concat());
        let kid = hex::encode(&digest[..6]);
        let macs = TokenKind::ALL.map(|kind| {
            Hmac::<Sha256>::new_from_slice(&subkeys[kind.index()]).expect("any key length")
        });
        let headers = TokenKind::ALL.map(|kind| super::signed::encoded_header(kind, &kid));
        Key {
            kid,
            subkeys,
            macs,
            headers,
        }
    }

    /// A fresh HMAC keyed for `kind`.
    pub fn mac(&self, kind: TokenKind) -> Hmac<Sha256> {
        self.macs[kind.index()].clone()
    }

    /// The encoded JWS header this key writes for `kind`.
    pub fn header(&self, kind: TokenKind) -> &str {
        &self.headers[kind.index()]
    }

    pub fn subkey(&self, kind: TokenKind) -> &[u8; 32] {
        &self.subkeys[kind.index()]
    }
}

/// All keys in order: the first signs, all verify.
pub struct Keyring {
    keys: Vec<Key>,
    /// Passes verified with these keys (see [`super::memo`]).
    passes: super::memo::PassMemo,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<&str> = self.keys.iter().map(|k| k.kid.as_str()).collect();
        f.debug_struct("Keyring").field("kids", &kids).finish()
    }
}

impl Keyring {
    /// # Panics
    /// Never: an empty list is refused with an error instead.
    pub fn new(materials: &[Vec<u8>]) -> Result<Self, &'static str> {
        if materials.is_empty() {
            return Err("at least one key is required");
        }
        Ok(Keyring {
            keys: materials.iter().map(|m| Key::new(m)).collect(),
            passes: super::memo::PassMemo::new(super::memo::DEFAULT_CAPACITY),
        })
    }

    pub fn signing(&self) -> &Key {
        &self.keys[0]
    }

    pub fn find(&self, kid: &str) -> Option<&Key> {
        self.keys.iter().find(|k| k.kid == kid)
    }

    /// The key whose header for `kind` is exactly `encoded` (the common
    /// case: a token this gate wrote), without parsing JSON.
    pub fn by_header(&self, kind: TokenKind, encoded: &str) -> Option<&Key> {
        self.keys.iter().find(|k| k.header(kind) == encoded)
    }

    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    /// The passes these keys have verified.
    pub fn passes(&self) -> &super::memo::PassMemo {
        &self.passes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subkeys_differ_per_kind_and_key() {
        let a = Key::new(&[1u8; 32]);
        let b = Key::new(&[2u8; 32]);
        assert_ne!(a.subkey(TokenKind::Pass), a.subkey(TokenKind::Transfer));
        assert_ne!(a.subkey(TokenKind::Pass), b.subkey(TokenKind::Pass));
        assert_ne!(a.kid, b.kid);
    }

    #[test]
    fn short_or_garbage_keys_are_refused() {
        assert!(parse_key("").is_err());
        assert!(parse_key("c2hvcnQ=").is_err());
        assert!(parse_key("!!!not a key!!!").is_err());
        assert_eq!(parse_key(&generate_key()).unwrap().len(), 32);
        assert_eq!(parse_key(&"ab".repeat(32)).unwrap().len(), 32);
    }
}
