//! Authorizers: may this user use this workspace?
//!
//! Consulted when the auth host hands out a pass and for bearer tokens,
//! never for a request that carries a valid pass. Decisions are cached for
//! `authorization.cache_ttl` under a hash of the token and the workspace's
//! fingerprint, so a changed workspace (new owner, new Service) misses the
//! cache at once.

pub(crate) mod gitlab;
pub mod owner;

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::config::AuthzMode;
use crate::metrics::Metrics;
use crate::oidc::transport::{self, Transport, TransportError};
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
    Http(#[source] TransportError),
    #[error("GitLab API answered {0}")]
    Status(u16),
    #[error("GitLab API answer not understood: {0}")]
    Invalid(String),
    #[error("GitLab API answered with {0} GraphQL error(s)")]
    Graphql(usize),
    #[error(transparent)]
    Oidc(#[from] OidcError),
}

impl AuthzError {
    pub fn metric_label(&self) -> &'static str {
        match self {
            AuthzError::Http(_) => "http",
            AuthzError::Status(_) => "status",
            AuthzError::Invalid(_) => "invalid",
            AuthzError::Graphql(_) => "graphql",
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
        Self::with_transport(
            mode,
            transport::reqwest(http),
            gitlab_url,
            provider,
            ttl,
            metrics,
        )
    }

    /// An authorizer that reaches GitLab through `http`.
    pub fn with_transport(
        mode: AuthzMode,
        http: Arc<dyn Transport>,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oidc::testing::{TOKEN, discovery, provider};
    use crate::oidc::transport::scripted::{Script, Step, step};

    const GRAPHQL: &str = "https://gitlab.test/api/graphql";
    const NOW: u64 = 1_000_000;

    fn graphql_owner(owner: u32) -> String {
        format!(
            r#"{{"data":{{"currentUser":{{"id":"gid://gitlab/User/42","username":"alice"}},"workspace":{{"user":{{"id":"gid://gitlab/User/{owner}"}}}}}}}}"#
        )
    }

    fn ws() -> Workspace {
        Workspace {
            id: "17".into(),
            name: "ws".into(),
            namespace: "ns".into(),
            owner: Some(crate::workspaces::Owner {
                id: "42".into(),
                username: "alice".into(),
            }),
            hosts: Vec::new(),
            service: None,
            ssh: None,
        }
    }

    fn login(at: &str, at_exp: u64, rt: Option<&str>) -> LoginClaims {
        LoginClaims {
            who: Identity {
                user_id: "42".into(),
                username: "alice".into(),
            },
            at: at.into(),
            at_exp,
            rt: rt.map(str::to_string),
            hosts: Vec::new(),
            iat: NOW,
            exp: NOW + 3600,
        }
    }

    /// An authorizer whose provider has discovered; the provider and GitLab
    /// share one script, in the order the requests are made.
    async fn authz(mode: AuthzMode, steps: Vec<Step>) -> (Arc<Script>, Authz) {
        let script = Script::new(discovery().into_iter().chain(steps));
        let p = Arc::new(provider(script.clone()));
        p.discover().await.unwrap();
        let a = Authz::with_transport(
            mode,
            script.clone(),
            "https://gitlab.test",
            p,
            Duration::from_secs(60),
            Arc::default(),
        );
        (script, a)
    }

    fn alice() -> Outcome {
        Outcome::Allowed(Identity {
            user_id: "42".into(),
            username: "alice".into(),
        })
    }

    #[tokio::test]
    async fn gitlab_login_refreshes_when_needed() {
        let new_tokens = r#"{"access_token":"at2","refresh_token":"rt2","expires_in":100}"#;
        struct Case {
            name: &'static str,
            login: LoginClaims,
            steps: Vec<Step>,
            want: Result<(Outcome, bool), &'static str>,
            /// Access and refresh token afterwards.
            after: (&'static str, Option<&'static str>),
        }
        let cases = vec![
            Case {
                name: "valid access token: no refresh",
                login: login("at", NOW + 600, Some("rt")),
                steps: vec![step("POST", GRAPHQL, 200, &graphql_owner(42))],
                want: Ok((alice(), false)),
                after: ("at", Some("rt")),
            },
            Case {
                name: "unknown expiry: used as is",
                login: login("at", 0, Some("rt")),
                steps: vec![step("POST", GRAPHQL, 200, &graphql_owner(7))],
                want: Ok((Outcome::Denied, false)),
                after: ("at", Some("rt")),
            },
            Case {
                name: "expired access token: refreshed first",
                login: login("at", NOW + 10, Some("rt")),
                steps: vec![
                    step("POST", TOKEN, 200, new_tokens),
                    step("POST", GRAPHQL, 200, &graphql_owner(42)),
                ],
                want: Ok((alice(), true)),
                after: ("at2", Some("rt2")),
            },
            Case {
                name: "GitLab refuses the token: refreshed once and asked again",
                login: login("at", NOW + 600, Some("rt")),
                steps: vec![
                    step("POST", GRAPHQL, 401, ""),
                    step("POST", TOKEN, 200, r#"{"access_token":"at2"}"#),
                    step("POST", GRAPHQL, 200, &graphql_owner(42)),
                ],
                want: Ok((alice(), true)),
                after: ("at2", Some("rt")),
            },
            Case {
                name: "refreshed token refused too: not refreshed again",
                login: login("at", NOW + 10, Some("rt")),
                steps: vec![
                    step("POST", TOKEN, 200, new_tokens),
                    step("POST", GRAPHQL, 401, ""),
                ],
                want: Ok((Outcome::InvalidToken, true)),
                after: ("at2", Some("rt2")),
            },
            Case {
                name: "refresh refused: the login is over",
                login: login("at", NOW + 10, Some("rt")),
                steps: vec![
                    step("POST", TOKEN, 400, r#"{"error":"invalid_grant"}"#),
                    step("POST", GRAPHQL, 401, ""),
                ],
                want: Ok((Outcome::InvalidToken, false)),
                after: ("at", None),
            },
            Case {
                name: "refresh fails: an error, not a refusal",
                login: login("at", NOW + 10, Some("rt")),
                steps: vec![step("POST", TOKEN, 503, "")],
                want: Err("provider"),
                after: ("at", Some("rt")),
            },
            Case {
                name: "no refresh token: GitLab's refusal stands",
                login: login("at", NOW + 10, None),
                steps: vec![step("POST", GRAPHQL, 401, "")],
                want: Ok((Outcome::InvalidToken, false)),
                after: ("at", None),
            },
            Case {
                name: "GitLab down",
                login: login("at", NOW + 600, Some("rt")),
                steps: vec![step("POST", GRAPHQL, 502, "")],
                want: Err("status"),
                after: ("at", Some("rt")),
            },
            Case {
                name: "cookie too large to keep tokens: sign in again",
                login: login("", 1, None),
                steps: vec![],
                want: Ok((Outcome::InvalidToken, false)),
                after: ("", None),
            },
        ];
        for mut c in cases {
            let (script, a) = authz(AuthzMode::Gitlab, c.steps).await;
            let got = a.login(&mut c.login, &ws(), NOW).await;
            match (&got, c.want) {
                (Ok(g), Ok(w)) => assert_eq!(g, &w, "{}", c.name),
                (Err(e), Err(label)) => assert_eq!(e.metric_label(), label, "{}", c.name),
                _ => panic!("{}: {got:?}", c.name),
            }
            assert_eq!(
                (c.login.at.as_str(), c.login.rt.as_deref()),
                c.after,
                "{}",
                c.name
            );
            script.assert_done();
        }
    }

    #[tokio::test]
    async fn a_refreshed_token_carries_its_new_expiry() {
        let (_, a) = authz(
            AuthzMode::Gitlab,
            vec![
                step(
                    "POST",
                    TOKEN,
                    200,
                    r#"{"access_token":"at2","expires_in":100}"#,
                ),
                step("POST", GRAPHQL, 200, &graphql_owner(42)),
            ],
        )
        .await;
        let mut l = login("at", NOW, Some("rt"));
        a.login(&mut l, &ws(), NOW).await.unwrap();
        assert_eq!(l.at_exp, NOW + 100);
    }

    #[tokio::test]
    async fn owner_annotation_login_asks_nobody() {
        let (script, a) = authz(AuthzMode::OwnerAnnotation, vec![]).await;
        let mut l = login("", 0, None);
        assert_eq!(a.login(&mut l, &ws(), NOW).await.unwrap(), (alice(), false));
        l.who.user_id = "7".into();
        assert_eq!(
            a.login(&mut l, &ws(), NOW).await.unwrap(),
            (Outcome::Denied, false)
        );
        script.assert_done();
    }

    #[tokio::test]
    async fn bearer_decisions_are_cached_per_token_and_workspace() {
        let (script, a) = authz(
            AuthzMode::Gitlab,
            vec![
                step("POST", GRAPHQL, 200, &graphql_owner(42)),
                step("POST", GRAPHQL, 401, ""),
            ],
        )
        .await;
        assert_eq!(a.bearer("t1", &ws()).await.unwrap(), alice());
        assert_eq!(a.bearer("t1", &ws()).await.unwrap(), alice());
        assert_eq!(a.bearer("t2", &ws()).await.unwrap(), Outcome::InvalidToken);
        script.assert_done();
    }

    #[tokio::test]
    async fn a_graphql_error_is_an_outage_and_never_cached() {
        let (script, a) = authz(
            AuthzMode::Gitlab,
            vec![
                step(
                    "POST",
                    GRAPHQL,
                    200,
                    r#"{"errors":[{"message":"Internal server error"}],"data":null}"#,
                ),
                step("POST", GRAPHQL, 200, &graphql_owner(42)),
            ],
        )
        .await;
        let first = a.bearer("t1", &ws()).await;
        assert!(matches!(first, Err(AuthzError::Graphql(1))), "{first:?}");
        // Asked again, GitLab is asked again: the outage was not cached.
        assert_eq!(a.bearer("t1", &ws()).await.unwrap(), alice());
        script.assert_done();
    }

    #[tokio::test]
    async fn owner_annotation_bearer_tokens_go_to_userinfo() {
        use crate::oidc::testing::USERINFO;
        let cases: Vec<(&str, Step, Result<Outcome, &str>)> = vec![
            (
                "the owner",
                step(
                    "GET",
                    USERINFO,
                    200,
                    r#"{"sub":"42","preferred_username":"alice"}"#,
                ),
                Ok(alice()),
            ),
            (
                "someone else",
                step(
                    "GET",
                    USERINFO,
                    200,
                    r#"{"sub":"7","preferred_username":"bob"}"#,
                ),
                Ok(Outcome::Denied),
            ),
            (
                "no subject",
                step("GET", USERINFO, 200, r#"{"preferred_username":"alice"}"#),
                Ok(Outcome::InvalidToken),
            ),
            (
                "refused",
                step("GET", USERINFO, 401, ""),
                Ok(Outcome::InvalidToken),
            ),
            (
                "forbidden",
                step("GET", USERINFO, 403, ""),
                Ok(Outcome::InvalidToken),
            ),
            (
                "provider down",
                step("GET", USERINFO, 500, ""),
                Err("provider"),
            ),
        ];
        for (name, answer, want) in cases {
            let (script, a) = authz(AuthzMode::OwnerAnnotation, vec![answer]).await;
            let got = a.bearer("tok", &ws()).await;
            match (&got, want) {
                (Ok(g), Ok(w)) => assert_eq!(g, &w, "{name}"),
                (Err(e), Err(label)) => assert_eq!(e.metric_label(), label, "{name}"),
                _ => panic!("{name}: {got:?}"),
            }
            script.assert_done();
        }
    }
}
