//! The OpenID Connect relying party: discovery, authorization URL with PKCE,
//! code redemption, ID-token validation against the provider's cached JWKS,
//! and refresh. The ID token rules themselves are pure functions in
//! [`id_token`].
//!
//! A small client on `reqwest` and `jsonwebtoken` rather than the
//! `openidconnect` crate. Not because of HTTP: that crate takes any client
//! through its async client trait. A probe of openidconnect 4.1.0 (default
//! features off) showed its ID token verifier accepts a token whose `nbf` is
//! an hour in the future and one whose `sub` is `""`, never checks `azp`
//! (that code is commented out), and owns a fixed copy of the key set, so
//! there is no hook to refetch the JWKS on an unknown `kid` when the
//! provider rotates keys; it would also build a second generation of the
//! RustCrypto crates (sha2, digest, hmac, signature, der, rand_core) beside
//! ours. `docs/oidc.md` has the details.

pub(crate) mod id_token;
pub(crate) mod transport;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use rand::RngCore;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, RwLock};
use tokio::time::Instant;

use crate::config::Oidc as OidcConfig;
use crate::session::Identity;
use transport::{Transport, TransportError};

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("provider discovery has not completed")]
    NotReady,
    #[error("request to the provider failed: {0}")]
    Http(#[source] TransportError),
    #[error("the provider answered {status} at {endpoint}: {error}")]
    Provider {
        endpoint: &'static str,
        status: u16,
        /// The OAuth `error` code only; descriptions may echo input.
        error: String,
    },
    #[error("the provider's answer was not understood: {0}")]
    Invalid(String),
    #[error("the ID token is invalid: {0}")]
    IdToken(String),
}

impl OidcError {
    pub fn metric_label(&self) -> &'static str {
        match self {
            OidcError::NotReady => "not_ready",
            OidcError::Http(_) => "http",
            OidcError::Provider { .. } => "provider",
            OidcError::Invalid(_) => "invalid",
            OidcError::IdToken(_) => "id_token",
        }
    }
}

/// What discovery tells about the provider.
#[derive(Debug, Clone, Deserialize)]
pub struct Metadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    #[serde(default)]
    pub userinfo_endpoint: Option<String>,
}

/// Tokens the provider returned.
#[derive(Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    #[serde(default)]
    pub refresh_token: Option<String>,
    #[serde(default)]
    pub expires_in: Option<u64>,
    #[serde(default)]
    pub id_token: Option<String>,
}

#[derive(Deserialize)]
struct OAuthError {
    #[serde(default)]
    error: String,
}

/// Per-login secrets that go into the sealed state.
pub struct LoginStart {
    pub pkce_verifier: String,
    pub nonce: String,
}

impl LoginStart {
    pub fn new() -> Self {
        LoginStart {
            pkce_verifier: random_token(32),
            nonce: random_token(16),
        }
    }
}

impl Default for LoginStart {
    fn default() -> Self {
        Self::new()
    }
}

/// Random URL-safe text of `bytes` bytes of entropy.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    B64.encode(buf)
}

struct Jwks {
    set: JwkSet,
    fetched: Instant,
}

/// The key set is refetched at most this often. A login whose ID token
/// names a key the cached set lacks (the provider rotated its keys) waits
/// for the rest of this interval instead of failing, so a rotation right
/// after a fetch delays logins by at most this much.
const JWKS_MIN_REFRESH: Duration = Duration::from_secs(2);

pub struct Provider {
    http: Arc<dyn Transport>,
    cfg: OidcConfig,
    redirect_uri: String,
    metadata: RwLock<Option<Arc<Metadata>>>,
    jwks: RwLock<Option<Jwks>>,
    /// Held while the key set is refetched for an unknown key id, so that
    /// logins arriving together cause one fetch.
    refetch: Mutex<()>,
}

impl Provider {
    pub fn new(http: reqwest::Client, cfg: OidcConfig, redirect_uri: String) -> Self {
        Self::with_transport(transport::reqwest(http), cfg, redirect_uri)
    }

    /// A provider that reaches the identity provider through `http`.
    pub fn with_transport(http: Arc<dyn Transport>, cfg: OidcConfig, redirect_uri: String) -> Self {
        Provider {
            http,
            cfg,
            redirect_uri,
            metadata: RwLock::new(None),
            jwks: RwLock::new(None),
            refetch: Mutex::new(()),
        }
    }

    pub async fn is_ready(&self) -> bool {
        self.metadata.read().await.is_some()
    }

    async fn metadata(&self) -> Result<Arc<Metadata>, OidcError> {
        self.metadata
            .read()
            .await
            .clone()
            .ok_or(OidcError::NotReady)
    }

    /// Fetches the discovery document and the key set.
    pub async fn discover(&self) -> Result<(), OidcError> {
        let url = format!("{}/.well-known/openid-configuration", self.cfg.issuer);
        let resp = self.get(&url, None).await?;
        if !resp.status().is_success() {
            return Err(OidcError::Provider {
                endpoint: "discovery",
                status: resp.status().as_u16(),
                error: String::new(),
            });
        }
        let md: Metadata = transport::json(resp)
            .map_err(|e| OidcError::Invalid(format!("discovery document: {e}")))?;
        if md.issuer.trim_end_matches('/') != self.cfg.issuer {
            return Err(OidcError::Invalid(format!(
                "discovery document names issuer {} but oidc.issuer is {}",
                md.issuer, self.cfg.issuer
            )));
        }
        let set = self.fetch_jwks(&md.jwks_uri).await?;
        *self.jwks.write().await = Some(Jwks {
            set,
            fetched: Instant::now(),
        });
        *self.metadata.write().await = Some(Arc::new(md));
        Ok(())
    }

    /// Retries discovery until it succeeds (with backoff), for start-up.
    pub async fn discover_until_ready(self: Arc<Self>) {
        let mut delay = Duration::from_millis(200);
        loop {
            match self.discover().await {
                Ok(()) => {
                    tracing::info!(issuer = %self.cfg.issuer, "OIDC discovery complete");
                    return;
                }
                Err(e) => {
                    tracing::warn!(issuer = %self.cfg.issuer, error = %e, "OIDC discovery failed; retrying");
                }
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(10));
        }
    }

    async fn fetch_jwks(&self, uri: &str) -> Result<JwkSet, OidcError> {
        let resp = self.get(uri, None).await?;
        if !resp.status().is_success() {
            return Err(OidcError::Provider {
                endpoint: "jwks",
                status: resp.status().as_u16(),
                error: String::new(),
            });
        }
        transport::json(resp).map_err(|e| OidcError::Invalid(format!("JWKS: {e}")))
    }

    /// The URL that sends the browser to the provider's login.
    pub async fn authorize_url(
        &self,
        state: &str,
        start: &LoginStart,
    ) -> Result<String, OidcError> {
        let md = self.metadata().await?;
        let challenge = B64.encode(Sha256::digest(start.pkce_verifier.as_bytes()));
        let mut url = url::Url::parse(&md.authorization_endpoint)
            .map_err(|e| OidcError::Invalid(format!("authorization_endpoint: {e}")))?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.cfg.client_id)
            .append_pair("redirect_uri", &self.redirect_uri)
            .append_pair("scope", &self.cfg.scopes.join(" "))
            .append_pair("state", state)
            .append_pair("nonce", &start.nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        Ok(url.into())
    }

    async fn token_request(&self, form: &[(&str, &str)]) -> Result<TokenResponse, OidcError> {
        let md = self.metadata().await?;
        let credentials = format!(
            "{}:{}",
            form_encode(&self.cfg.client_id),
            form_encode(&self.cfg.client_secret)
        );
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let req = transport::request(
            http::Method::POST,
            &md.token_endpoint,
            Some(format!("Basic {}", STANDARD.encode(credentials))),
            Some(("application/x-www-form-urlencoded", body.into_bytes())),
        )
        .map_err(OidcError::Http)?;
        let resp = self.http.send(req).await.map_err(OidcError::Http)?;
        let status = resp.status();
        if !status.is_success() {
            let err: OAuthError = transport::json(resp).unwrap_or(OAuthError {
                error: String::new(),
            });
            return Err(OidcError::Provider {
                endpoint: "token",
                status: status.as_u16(),
                error: err.error,
            });
        }
        transport::json(resp).map_err(|e| OidcError::Invalid(format!("token response: {e}")))
    }

    /// Redeems an authorization code with its PKCE verifier.
    pub async fn exchange(&self, code: &str, verifier: &str) -> Result<TokenResponse, OidcError> {
        self.token_request(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &self.redirect_uri),
            ("code_verifier", verifier),
        ])
        .await
    }

    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenResponse, OidcError> {
        self.token_request(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ])
        .await
    }

    async fn get(
        &self,
        url: &str,
        authorization: Option<String>,
    ) -> Result<transport::Answer, OidcError> {
        let req = transport::request(http::Method::GET, url, authorization, None)
            .map_err(OidcError::Http)?;
        self.http.send(req).await.map_err(OidcError::Http)
    }

    /// Validates an ID token: the header ([`id_token::check_header`]), the
    /// signature with the provider's key for its `kid`, then every claim
    /// ([`id_token::check_claims`]) at `now`.
    pub async fn validate_id_token(
        &self,
        id_token: &str,
        nonce: &str,
        now: u64,
    ) -> Result<serde_json::Map<String, serde_json::Value>, OidcError> {
        let header = jsonwebtoken::decode_header(id_token)
            .map_err(|e| OidcError::IdToken(format!("header: {e}")))?;
        id_token::check_header(&header).map_err(|e| OidcError::IdToken(e.to_string()))?;
        let key = self.decoding_key(header.kid.as_deref()).await?;
        // jsonwebtoken checks the signature only; its claim checks are
        // lenient (see `id_token`), so they are all off and ours run below.
        let mut v = Validation::new(header.alg);
        v.required_spec_claims.clear();
        v.validate_exp = false;
        v.validate_nbf = false;
        v.validate_aud = false;
        let claims =
            jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(id_token, &key, &v)
                .map_err(|e| OidcError::IdToken(e.to_string()))?
                .claims;
        let want = id_token::Expected {
            issuer: &self.cfg.issuer,
            client_id: &self.cfg.client_id,
            nonce,
        };
        id_token::check_claims(&claims, &want, now)
            .map_err(|e| OidcError::IdToken(e.to_string()))?;
        Ok(claims)
    }

    async fn decoding_key(&self, kid: Option<&str>) -> Result<DecodingKey, OidcError> {
        if let Some(k) = self.find_key(kid).await? {
            return Ok(k);
        }
        // Unknown key id: the provider may have rotated. One refetch per
        // burst of such logins, at most one per JWKS_MIN_REFRESH.
        let seen = self.jwks_fetched().await;
        let _one = self.refetch.lock().await;
        let now_held = self.jwks_fetched().await;
        if now_held == seen {
            if let Some(at) = seen {
                tokio::time::sleep_until(at + JWKS_MIN_REFRESH).await;
            }
            let md = self.metadata().await?;
            let set = self.fetch_jwks(&md.jwks_uri).await?;
            *self.jwks.write().await = Some(Jwks {
                set,
                fetched: Instant::now(),
            });
        }
        // Otherwise another login refetched while this one waited: its
        // set is as fresh as it gets.
        self.find_key(kid)
            .await?
            .ok_or_else(|| OidcError::IdToken("signed by an unknown key".into()))
    }

    async fn jwks_fetched(&self) -> Option<Instant> {
        self.jwks.read().await.as_ref().map(|j| j.fetched)
    }

    async fn find_key(&self, kid: Option<&str>) -> Result<Option<DecodingKey>, OidcError> {
        let guard = self.jwks.read().await;
        let Some(jwks) = guard.as_ref() else {
            return Err(OidcError::NotReady);
        };
        let jwk = match kid {
            Some(kid) => jwks.set.find(kid),
            None if jwks.set.keys.len() == 1 => jwks.set.keys.first(),
            None => None,
        };
        match jwk {
            Some(j) => DecodingKey::from_jwk(j)
                .map(Some)
                .map_err(|e| OidcError::IdToken(format!("provider key: {e}"))),
            None => Ok(None),
        }
    }

    /// Asks the provider's userinfo endpoint who holds `access_token`.
    pub async fn userinfo(
        &self,
        access_token: &str,
    ) -> Result<serde_json::Map<String, serde_json::Value>, OidcError> {
        let md = self.metadata().await?;
        let Some(endpoint) = md.userinfo_endpoint.as_deref() else {
            return Err(OidcError::Invalid(
                "the provider has no userinfo endpoint".into(),
            ));
        };
        let resp = self
            .get(endpoint, Some(format!("Bearer {access_token}")))
            .await?;
        if !resp.status().is_success() {
            return Err(OidcError::Provider {
                endpoint: "userinfo",
                status: resp.status().as_u16(),
                error: String::new(),
            });
        }
        transport::json(resp).map_err(|e| OidcError::Invalid(format!("userinfo: {e}")))
    }

    /// The identity in an ID token's or userinfo's claims
    /// ([`id_token::identity`]).
    pub fn identity(
        &self,
        claims: &serde_json::Map<String, serde_json::Value>,
    ) -> Option<Identity> {
        id_token::identity(claims, &self.cfg.username_claim)
    }

    pub fn username_claim(&self) -> &str {
        &self.cfg.username_claim
    }
}

/// RFC 6749 2.3.1: client credentials are form-encoded before HTTP Basic.
fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A provider on a scripted transport, for the unit tests of the relying
/// party and of the authorizers that refresh through it.
#[cfg(test)]
pub(crate) mod testing {
    use super::transport::scripted::{Step, step};
    use super::*;

    pub(crate) const ISSUER: &str = "https://idp.test";
    pub(crate) const TOKEN: &str = "https://idp.test/token";
    pub(crate) const USERINFO: &str = "https://idp.test/userinfo";

    pub(crate) fn provider(http: Arc<dyn Transport>) -> Provider {
        Provider::with_transport(
            http,
            OidcConfig {
                issuer: ISSUER.into(),
                client_id: "gate".into(),
                client_secret: "s3cret:/".into(),
                scopes: vec!["openid".into()],
                username_claim: "preferred_username".into(),
            },
            "https://auth.test/auth/callback".into(),
        )
    }

    /// The discovery document and an empty key set.
    pub(crate) fn discovery() -> [Step; 2] {
        [
            step(
                "GET",
                "https://idp.test/.well-known/openid-configuration",
                200,
                r#"{"issuer":"https://idp.test/","authorization_endpoint":"https://idp.test/authorize",
                   "token_endpoint":"https://idp.test/token","jwks_uri":"https://idp.test/jwks",
                   "userinfo_endpoint":"https://idp.test/userinfo"}"#,
            ),
            step("GET", "https://idp.test/jwks", 200, r#"{"keys":[]}"#),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{ISSUER, TOKEN, USERINFO, discovery, provider};
    use super::transport::scripted::{Script, Step, step, too_large};
    use super::*;

    const WELL_KNOWN: &str = "https://idp.test/.well-known/openid-configuration";

    async fn ready(more: impl IntoIterator<Item = Step>) -> (Arc<Script>, Provider) {
        let script = Script::new(discovery().into_iter().chain(more));
        let p = provider(script.clone());
        p.discover().await.unwrap();
        (script, p)
    }

    fn label<T>(r: Result<T, OidcError>) -> String {
        match r {
            Ok(_) => "ok".into(),
            Err(OidcError::Provider {
                endpoint, error, ..
            }) => format!("provider {endpoint} {error}"),
            Err(e) => e.metric_label().into(),
        }
    }

    #[tokio::test]
    async fn discovery_failures_are_reported_and_leave_the_provider_not_ready() {
        let md = |issuer: &str| {
            format!(
                r#"{{"issuer":"{issuer}","authorization_endpoint":"a","token_endpoint":"t","jwks_uri":"https://idp.test/jwks"}}"#
            )
        };
        let cases: Vec<(&str, Vec<Step>, &str)> = vec![
            (
                "discovery 404",
                vec![step("GET", WELL_KNOWN, 404, "")],
                "provider discovery ",
            ),
            (
                "not JSON",
                vec![step("GET", WELL_KNOWN, 200, "<html>")],
                "invalid",
            ),
            (
                "too large",
                vec![too_large("GET", WELL_KNOWN, 200)],
                "invalid",
            ),
            (
                "another issuer",
                vec![step("GET", WELL_KNOWN, 200, &md("https://evil.test"))],
                "invalid",
            ),
            (
                "key set 500",
                vec![
                    step("GET", WELL_KNOWN, 200, &md(ISSUER)),
                    step("GET", "https://idp.test/jwks", 500, ""),
                ],
                "provider jwks ",
            ),
        ];
        for (name, steps, want) in cases {
            let script = Script::new(steps);
            let p = provider(script.clone());
            assert_eq!(label(p.discover().await), want, "{name}");
            assert!(!p.is_ready().await, "{name}");
            script.assert_done();
        }
        let (_, p) = ready([]).await;
        assert!(p.is_ready().await);
    }

    #[tokio::test]
    async fn code_redemption_sends_the_verifier_and_form_encoded_client_credentials() {
        let (script, p) = ready([step(
            "POST",
            TOKEN,
            200,
            r#"{"access_token":"at","refresh_token":"rt","expires_in":60,"id_token":"x.y.z"}"#,
        )])
        .await;
        let t = p.exchange("the-code", "the-verifier").await.unwrap();
        assert_eq!(
            (t.access_token.as_str(), t.refresh_token.as_deref()),
            ("at", Some("rt"))
        );
        let body = script.body(2);
        assert_eq!(
            body,
            "grant_type=authorization_code&code=the-code&redirect_uri=https%3A%2F%2Fauth.test%2Fauth%2Fcallback&code_verifier=the-verifier"
        );
        // RFC 6749 2.3.1: `s3cret:/` is form-encoded before Basic.
        let basic = STANDARD.encode("gate:s3cret%3A%2F");
        assert_eq!(
            script.header(2, http::header::AUTHORIZATION),
            Some(format!("Basic {basic}"))
        );
        assert_eq!(
            script.header(2, http::header::CONTENT_TYPE).as_deref(),
            Some("application/x-www-form-urlencoded")
        );
        script.assert_done();
    }

    #[tokio::test]
    async fn token_endpoint_answers_map_to_errors() {
        let cases: Vec<(&str, Step, &str)> = vec![
            (
                "refused with a code",
                step(
                    "POST",
                    TOKEN,
                    400,
                    r#"{"error":"invalid_grant","error_description":"<echo>"}"#,
                ),
                "provider token invalid_grant",
            ),
            (
                "refused, no JSON",
                step("POST", TOKEN, 401, "nope"),
                "provider token ",
            ),
            (
                "refused, body past the bound",
                too_large("POST", TOKEN, 400),
                "provider token ",
            ),
            ("no access token", step("POST", TOKEN, 200, "{}"), "invalid"),
            ("past the bound", too_large("POST", TOKEN, 200), "invalid"),
            (
                "ok",
                step("POST", TOKEN, 200, r#"{"access_token":"at"}"#),
                "ok",
            ),
        ];
        for (name, answer, want) in cases {
            let (script, p) = ready([answer]).await;
            assert_eq!(label(p.refresh("rt").await), want, "{name}");
            assert_eq!(
                script.body(2),
                "grant_type=refresh_token&refresh_token=rt",
                "{name}"
            );
        }
    }

    #[tokio::test]
    async fn userinfo_carries_the_access_token_and_maps_refusals() {
        let cases: Vec<(&str, Step, &str)> = vec![
            ("ok", step("GET", USERINFO, 200, r#"{"sub":"42"}"#), "ok"),
            (
                "refused",
                step("GET", USERINFO, 401, ""),
                "provider userinfo ",
            ),
            ("not JSON", step("GET", USERINFO, 200, "[1"), "invalid"),
        ];
        for (name, answer, want) in cases {
            let (script, p) = ready([answer]).await;
            assert_eq!(label(p.userinfo("at").await), want, "{name}");
            assert_eq!(
                script.header(2, http::header::AUTHORIZATION).as_deref(),
                Some("Bearer at")
            );
        }
    }

    #[tokio::test]
    async fn nothing_is_asked_before_discovery() {
        let p = provider(Script::new([]));
        assert_eq!(label(p.refresh("rt").await), "not_ready");
        assert_eq!(label(p.userinfo("at").await), "not_ready");
        assert_eq!(
            label(p.authorize_url("s", &LoginStart::new()).await),
            "not_ready"
        );
    }

    /// A token whose header names `kid`, signed by nothing that matters
    /// here (the tests below are about finding the key).
    fn token_with_kid(kid: &str) -> String {
        let header = B64.encode(format!(r#"{{"alg":"RS256","kid":"{kid}"}}"#));
        format!("{header}.e30.c2ln")
    }

    /// The provider's set after rotating to `k2` (an RSA key whose
    /// modulus is filler: the signature never verifies, the key is found).
    fn rotated() -> String {
        let n = B64.encode([0xc5u8; 256]);
        format!(r#"{{"keys":[{{"kty":"RSA","kid":"k2","alg":"RS256","n":"{n}","e":"AQAB"}}]}}"#)
    }

    #[tokio::test(start_paused = true)]
    async fn a_key_rotated_right_after_a_fetch_is_found_after_a_short_wait() {
        // The set was fetched just now; the provider has since rotated to
        // `k2`. The login waits out JWKS_MIN_REFRESH (not 30 s of refused
        // logins), refetches once and finds the key.
        let (script, p) = ready([step("GET", "https://idp.test/jwks", 200, &rotated())]).await;
        let start = Instant::now();
        let got = p.validate_id_token(&token_with_kid("k2"), "n", 0).await;
        assert!(
            !matches!(&got, Err(OidcError::IdToken(m)) if m.contains("unknown key")),
            "{got:?}"
        );
        assert_eq!(start.elapsed(), JWKS_MIN_REFRESH);
        script.assert_done();
    }

    #[tokio::test(start_paused = true)]
    async fn logins_arriving_together_with_an_unknown_key_fetch_once() {
        let (script, p) = ready([step("GET", "https://idp.test/jwks", 200, &rotated())]).await;
        let p = Arc::new(p);
        let logins: Vec<_> = ["k2", "k9", "k2", "k9", "k2"]
            .into_iter()
            .map(|kid| {
                let p = p.clone();
                tokio::spawn(async move { p.validate_id_token(&token_with_kid(kid), "n", 0).await })
            })
            .collect();
        let mut unknown = Vec::new();
        for l in logins {
            let got = l.await.unwrap();
            unknown.push(matches!(&got, Err(OidcError::IdToken(m)) if m.contains("unknown key")));
        }
        // k2 is in the rotated set; k9 is in no set and is refused after
        // the one refetch, without a second.
        assert_eq!(unknown, [false, true, false, true, false]);
        script.assert_done();
    }

    #[tokio::test(start_paused = true)]
    async fn an_unknown_key_refetches_at_most_once_per_interval() {
        let (script, p) = ready([
            step("GET", "https://idp.test/jwks", 200, r#"{"keys":[]}"#),
            step("GET", "https://idp.test/jwks", 200, r#"{"keys":[]}"#),
        ])
        .await;
        let start = Instant::now();
        for _ in 0..2 {
            let got = p.validate_id_token(&token_with_kid("k9"), "n", 0).await;
            assert!(
                matches!(&got, Err(OidcError::IdToken(m)) if m.contains("unknown key")),
                "{got:?}"
            );
        }
        assert_eq!(start.elapsed(), 2 * JWKS_MIN_REFRESH);
        script.assert_done();
    }
}
