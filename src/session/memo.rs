//! Passes whose signature this process has already verified.
//!
//! A browser sends the same pass cookie with every request to a workspace,
//! and an IDE makes many requests. Verifying a pass means decoding it,
//! computing its HMAC and parsing its JSON; the memo does that once per
//! token and afterwards answers with the claims it kept.
//!
//! What keeps this safe:
//! - Only tokens that passed full verification are remembered, so a client
//!   cannot fill the memo with tokens it made up.
//! - An entry is found by a seeded hash of the whole token and used only
//!   when the stored token equals the presented one byte for byte, compared
//!   in constant time. A token that differs anywhere (a changed signature,
//!   say) is verified from scratch.
//! - Expiry and issue time are checked against the clock on every use, and
//!   the audience, workspace and owner are checked by the caller on every
//!   request, exactly as for a freshly verified token.
//! - The memo belongs to one [`Keyring`](super::Keyring): a token is never
//!   remembered beyond the keys that verified it.
//!
//! Memory is bounded: each of the [`SHARDS`] shards holds at most
//! `capacity / SHARDS` entries. A full shard first drops its expired
//! entries and, if still full, forgets everything it holds; a forgotten pass
//! is simply verified again.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex};

use super::claims::Identity;

/// The claims of a verified pass, shared by every request that presents it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedPass {
    /// The one host the pass is valid on.
    pub aud: String,
    pub who: Arc<Identity>,
    /// The workspace the pass was issued for.
    pub wid: String,
    pub iat: u64,
    pub exp: u64,
    /// Its renewal (a pass cookie for the same host, user and workspace),
    /// made by the first check past half its lifetime and handed to every
    /// later one: a pass the browser has not yet replaced is signed again
    /// only when the memo forgot it.
    pub renewed: std::sync::OnceLock<Arc<str>>,
}

impl super::signed::Timed for VerifiedPass {
    fn iat(&self) -> u64 {
        self.iat
    }
    fn exp(&self) -> u64 {
        self.exp
    }
}

/// Lock shards: checks on different worker threads rarely share one.
pub(crate) const SHARDS: usize = 32;

/// Entries the memo of a keyring holds at most (a few hundred bytes each).
pub(crate) const DEFAULT_CAPACITY: usize = 16 * 1024;

/// Passes verified recently, keyed by a seeded hash of the token.
pub struct PassMemo {
    seed: foldhash::quality::RandomState,
    per_shard: usize,
    shards: Box<[Mutex<Shard>]>,
}

type Shard = HashMap<u64, Entry, BuildHasherDefault<Prehashed>>;

struct Entry {
    token: Box<[u8]>,
    pass: Arc<VerifiedPass>,
}

impl std::fmt::Debug for PassMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PassMemo")
            .field("entries", &self.len())
            .finish_non_exhaustive()
    }
}

impl PassMemo {
    /// A memo holding at most `capacity` passes (at least one per shard).
    pub fn new(capacity: usize) -> Self {
        PassMemo {
            seed: foldhash::quality::RandomState::default(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    fn shard(&self, token: &str) -> (u64, &Mutex<Shard>) {
        let hash = self.seed.hash_one(token.as_bytes());
        // Middle bits pick the shard: the map itself uses the low bits for
        // the bucket and the top ones for its tags.
        let shard = &self.shards[(hash >> 32) as usize % SHARDS];
        (hash, shard)
    }

    /// The remembered claims of exactly this token, if any.
    pub fn get(&self, token: &str) -> Option<Arc<VerifiedPass>> {
        let (hash, shard) = self.shard(token);
        let shard = shard.lock().unwrap_or_else(|e| e.into_inner());
        let entry = shard.get(&hash)?;
        same_bytes(&entry.token, token.as_bytes()).then(|| entry.pass.clone())
    }

    /// Remembers `pass` as the verified claims of `token`. The caller must
    /// have verified the token's signature with the keyring that owns this
    /// memo.
    pub fn insert(&self, token: &str, pass: Arc<VerifiedPass>, now: u64) {
        let (hash, shard) = self.shard(token);
        let mut shard = shard.lock().unwrap_or_else(|e| e.into_inner());
        if shard.len() >= self.per_shard && !shard.contains_key(&hash) {
            shard.retain(|_, e| e.pass.exp > now);
            if shard.len() >= self.per_shard {
                shard.clear();
            }
        }
        shard.insert(
            hash,
            Entry {
                token: token.as_bytes().into(),
                pass,
            },
        );
    }

    /// Entries held now, over all shards.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Byte equality without an early exit, so the time taken does not tell
/// how much of a remembered token a guess got right. (Lengths are not
/// secret: every pass of this gate has about the same length.)
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// The map's keys are already seeded hashes; hashing them again would only
/// cost time.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed; fold anything else in for completeness.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}
