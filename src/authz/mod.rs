//! Authorizers: may this user use this workspace?
//!
//! Consulted when the auth host hands out a pass and for bearer tokens,
//! never for a request that carries a valid pass. Decisions are cached for
//! `authorization.cache_ttl` under a hash of the token and the workspace's
//! fingerprint, so a changed workspace (new owner, new Service) misses the
//! cache at once.

pub mod gitlab;
pub mod owner;

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::config::AuthzMode;
use crate::metrics::Metrics;
use crate::oidc::{OidcError, Provider};
use crate::session::{Identity, LoginClaims};
use crate::workspaces::Workspace;

/// The answer for one user and one workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Allowed(Identity),
    /// The token is valid, the workspace is someone else's.
    Denied,
    /// The token is not (or no longer) valid.
    InvalidToken,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthzError {
    #[error("GitLab API request failed: {0}")]
    Http(#[source] reqwest::Error),
    #[error("GitLab API answered {0}")]
    Status(u16),
    #[error("GitLab API answer not understood: {0}")]
    Invalid(String),
    #[error(transparent)]
    Oidc(#[from] OidcError),
}

impl AuthzError {
    pub fn metric_label(&self) -> &'static str {
        match self {
            AuthzError::Http(_) => "http",
            AuthzError::Status(_) => "status",
            AuthzError::Invalid(_) => "invalid",
            AuthzError::Oidc(e) => e.metric_label(),
        }
    }
}

pub struct Authz {
    mode: AuthzMode,
    gitlab: gitlab::Gitlab,
    provider: Arc<Provider>,
    cache: moka::future::Cache<[u8; 32], Outcome>,
    metrics: Arc<Metrics>,
}

impl Authz {
    pub fn new(
        mode: AuthzMode,
        http: reqwest::Client,
        gitlab_url: &str,
        provider: Arc<Provider>,
        ttl: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        Authz {
            mode,
            gitlab: gitlab::Gitlab::new(http, gitlab_url),
            provider,
            cache: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(ttl)
                .build(),
            metrics,
        }
    }

    fn mode_label(&self) -> &'static str {
        match self.mode {
            AuthzMode::Gitlab => "gitlab",
            AuthzMode::OwnerAnnotation => "owner-annotation",
        }
    }

    fn key(token: &str, ws: &Workspace) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(token.as_bytes());
        h.update([0]);
        h.update(ws.authz_fingerprint().as_bytes());
        h.finalize().into()
    }

    /// Authorizes a bearer (or basic) token for `ws`.
    pub async fn bearer(&self, token: &str, ws: &Workspace) -> Result<Outcome, AuthzError> {
        let key = Self::key(token, ws);
        if let Some(hit) = self.cache.get(&key).await {
            self.metrics.authz_cache_hit(self.mode_label());
            return Ok(hit);
        }
        let result = match self.mode {
            AuthzMode::Gitlab => self.gitlab.check(token, ws).await,
            AuthzMode::OwnerAnnotation => owner::check_token(&self.provider, token, ws).await,
        };
        self.metrics.authz_call(self.mode_label(), &result);
        let outcome = result?;
        self.cache.insert(key, outcome.clone()).await;
        Ok(outcome)
    }

    /// Authorizes a signed-in user for `ws`. In `gitlab` mode the access
    /// token is refreshed first when it has expired, or once when GitLab
    /// refuses it; `login` then carries the new tokens and the caller must
    /// store it again (returns `true`).
    pub async fn login(
        &self,
        login: &mut LoginClaims,
        ws: &Workspace,
        now: u64,
    ) -> Result<(Outcome, bool), AuthzError> {
        match self.mode {
            AuthzMode::OwnerAnnotation => {
                let outcome = owner::check_identity(&login.who, ws);
                self.metrics
                    .authz_call(self.mode_label(), &Ok::<_, AuthzError>(outcome.clone()));
                Ok((outcome, false))
            }
            AuthzMode::Gitlab => {
                // A login cookie too large to keep the provider's tokens
                // carries neither: the login must be renewed.
                if login.at.is_empty() && login.rt.is_none() {
                    return Ok((Outcome::InvalidToken, false));
                }
                let mut refreshed = false;
                if login.at_exp != 0 && login.at_exp <= now + 30 && login.rt.is_some() {
                    refreshed = self.refresh(login, now).await?;
                }
                let mut outcome = self.bearer(&login.at, ws).await?;
                if outcome == Outcome::InvalidToken && !refreshed && login.rt.is_some() {
                    refreshed = self.refresh(login, now).await?;
                    if refreshed {
                        outcome = self.bearer(&login.at, ws).await?;
                    }
                }
                Ok((outcome, refreshed))
            }
        }
    }

    async fn refresh(&self, login: &mut LoginClaims, now: u64) -> Result<bool, AuthzError> {
        let Some(rt) = login.rt.clone() else {
            return Ok(false);
        };
        match self.provider.refresh(&rt).await {
            Ok(t) => {
                login.at = t.access_token;
                login.at_exp = t.expires_in.map_or(0, |s| now + s);
                if let Some(new_rt) = t.refresh_token {
                    login.rt = Some(new_rt);
                }
                self.metrics.token_refresh("ok");
                Ok(true)
            }
            // A refused refresh token means the login is over: treat the
            // access token as invalid rather than failing the request.
            Err(OidcError::Provider {
                status: 400 | 401, ..
            }) => {
                self.metrics.token_refresh("refused");
                login.rt = None;
                Ok(false)
            }
            Err(e) => {
                self.metrics.token_refresh("error");
                Err(e.into())
            }
        }
    }
}

impl crate::metrics::OutcomeLabel for Outcome {
    fn outcome_label(&self) -> &'static str {
        match self {
            Outcome::Allowed(_) => "allowed",
            Outcome::Denied => "denied",
            Outcome::InvalidToken => "invalid_token",
        }
    }
}

impl crate::metrics::AuthzLabel for AuthzError {
    fn error_label(&self) -> &'static str {
        self.metric_label()
    }
}
