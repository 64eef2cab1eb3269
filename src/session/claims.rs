//! What each token says. Field names are short because passes travel on
//! every request.

use serde::{Deserialize, Serialize};

use super::signed::Timed;

/// Who the user is, as established at login and carried in every token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// Provider user id (GitLab's numeric id, or the OIDC subject).
    #[serde(rename = "sub")]
    pub user_id: String,
    /// Username shown to the workspace (`X-Workspace-User`).
    #[serde(rename = "name")]
    pub username: String,
}

/// True for a user id, username or owner that must never identify anyone:
/// empty or only whitespace. ID tokens, userinfo answers, the workspaces
/// file and Service annotations with such a value are refused, and no
/// comparison of identities matches one.
pub fn is_blank(value: &str) -> bool {
    value.trim().is_empty()
}

/// The per-host pass cookie.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PassClaims {
    /// The one host this pass is valid on.
    pub aud: String,
    #[serde(flatten)]
    pub who: Identity,
    /// Workspace id the pass was issued for.
    pub wid: String,
    pub iat: u64,
    pub exp: u64,
}

/// A pass as read on the check path: borrowed from the decoded payload, so
/// checking a pass allocates only for the identity of an allowed request.
#[derive(Debug, Deserialize)]
pub(crate) struct PassRef<'a> {
    #[serde(borrow)]
    pub aud: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    pub sub: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    pub name: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    pub wid: std::borrow::Cow<'a, str>,
    pub iat: u64,
    pub exp: u64,
}

impl Timed for PassRef<'_> {
    fn iat(&self) -> u64 {
        self.iat
    }
    fn exp(&self) -> u64 {
        self.exp
    }
}

/// The hand-over from the auth host to one workspace host.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TransferClaims {
    pub aud: String,
    #[serde(flatten)]
    pub who: Identity,
    pub wid: String,
    /// Same-host path (and query) to land on after the callback.
    pub path: String,
    pub iat: u64,
    pub exp: u64,
    /// Unique id, remembered by the replica that redeems it.
    pub jti: String,
    /// Digest of the secret in the browser's bind cookie on `aud` (see
    /// [`super::binding`]); redeeming needs that cookie. Empty (a token of
    /// an older replica): never redeemed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub b: String,
}

/// The login cookie on the auth host (sealed: holds provider tokens).
#[derive(Clone, Serialize, Deserialize)]
pub struct LoginClaims {
    #[serde(flatten)]
    pub who: Identity,
    /// Provider access token, used for authorization at transfer time.
    pub at: String,
    /// When the access token expires (0: unknown).
    pub at_exp: u64,
    /// Refresh token, if the provider gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rt: Option<String>,
    /// Workspace hosts this login handed a pass to, newest last, so that
    /// signing out can visit them.
    #[serde(default)]
    pub hosts: Vec<String>,
    pub iat: u64,
    pub exp: u64,
}

impl std::fmt::Debug for LoginClaims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginClaims")
            .field("who", &self.who)
            .field("hosts", &self.hosts)
            .field("exp", &self.exp)
            .finish_non_exhaustive()
    }
}

/// The OAuth `state` (sealed: holds the PKCE verifier and nonce).
#[derive(Clone, Serialize, Deserialize)]
pub struct StateClaims {
    /// Validated URL to return to.
    pub rd: String,
    pub pkce: String,
    pub nonce: String,
    /// Must equal the CSRF cookie of the browser that started the login.
    pub csrf: String,
    /// The name suffix of that cookie: every login gets a cookie of its
    /// own, so logins started together in several tabs never overwrite
    /// each other's. Empty: the unsuffixed cookie (logins started before
    /// suffixes existed).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub slot: String,
    /// The bind digest the login started with, for the transfer token.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub b: String,
    pub iat: u64,
    pub exp: u64,
}

/// Remaining hosts to visit while signing out, then where to end.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignOutClaims {
    pub hosts: Vec<String>,
    pub iat: u64,
    pub exp: u64,
}

macro_rules! timed {
    ($($t:ty),*) => {$(
        impl Timed for $t {
            fn iat(&self) -> u64 { self.iat }
            fn exp(&self) -> u64 { self.exp }
        }
    )*};
}
timed!(
    PassClaims,
    TransferClaims,
    LoginClaims,
    StateClaims,
    SignOutClaims
);

/// At most this many hosts are remembered in the login cookie.
pub(crate) const MAX_REMEMBERED_HOSTS: usize = 24;
