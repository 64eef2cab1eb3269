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

pub mod id_token;

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use rand::RngCore;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::RwLock;

use crate::bounded;
use crate::config::Oidc as OidcConfig;
use crate::session::Identity;

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("provider discovery has not completed")]
    NotReady,
    #[error("request to the provider failed: {0}")]
    Http(#[source] reqwest::Error),
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

/// Do not refetch the key set more often than this on unknown key ids.
const JWKS_MIN_REFRESH: Duration = Duration::from_secs(30);

pub struct Provider {
    http: reqwest::Client,
    cfg: OidcConfig,
    redirect_uri: String,
    metadata: RwLock<Option<Arc<Metadata>>>,
    jwks: RwLock<Option<Jwks>>,
}

impl Provider {
    pub fn new(http: reqwest::Client, cfg: OidcConfig, redirect_uri: String) -> Self {
        Provider {
            http,
            cfg,
            redirect_uri,
            metadata: RwLock::new(None),
            jwks: RwLock::new(None),
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
        let resp = self.http.get(&url).send().await.map_err(OidcError::Http)?;
        if !resp.status().is_success() {
            return Err(OidcError::Provider {
                endpoint: "discovery",
                status: resp.status().as_u16(),
                error: String::new(),
            });
        }
        let md: Metadata = bounded::json(resp, bounded::PROVIDER_ANSWER_LIMIT)
            .await
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
        let resp = self.http.get(uri).send().await.map_err(OidcError::Http)?;
        if !resp.status().is_success() {
            return Err(OidcError::Provider {
                endpoint: "jwks",
                status: resp.status().as_u16(),
                error: String::new(),
            });
        }
        bounded::json(resp, bounded::PROVIDER_ANSWER_LIMIT)
            .await
            .map_err(|e| OidcError::Invalid(format!("JWKS: {e}")))
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
        let resp = self
            .http
            .post(&md.token_endpoint)
            .basic_auth(
                form_encode(&self.cfg.client_id),
                Some(form_encode(&self.cfg.client_secret)),
            )
            .form(form)
            .send()
            .await
            .map_err(OidcError::Http)?;
        let status = resp.status();
        if !status.is_success() {
            let err: OAuthError = bounded::json(resp, bounded::PROVIDER_ANSWER_LIMIT)
                .await
                .unwrap_or(OAuthError {
                    error: String::new(),
                });
            return Err(OidcError::Provider {
                endpoint: "token",
                status: status.as_u16(),
                error: err.error,
            });
        }
        bounded::json(resp, bounded::PROVIDER_ANSWER_LIMIT)
            .await
            .map_err(|e| OidcError::Invalid(format!("token response: {e}")))
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
        // Unknown key id: the provider may have rotated. Refetch, at most
        // every JWKS_MIN_REFRESH.
        let stale = self
            .jwks
            .read()
            .await
            .as_ref()
            .is_none_or(|j| j.fetched.elapsed() >= JWKS_MIN_REFRESH);
        if stale {
            let md = self.metadata().await?;
            let set = self.fetch_jwks(&md.jwks_uri).await?;
            *self.jwks.write().await = Some(Jwks {
                set,
                fetched: Instant::now(),
            });
        }
        self.find_key(kid)
            .await?
            .ok_or_else(|| OidcError::IdToken("signed by an unknown key".into()))
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
            .http
            .get(endpoint)
            .bearer_auth(access_token)
            .send()
            .await
            .map_err(OidcError::Http)?;
        if !resp.status().is_success() {
            return Err(OidcError::Provider {
                endpoint: "userinfo",
                status: resp.status().as_u16(),
                error: String::new(),
            });
        }
        bounded::json(resp, bounded::PROVIDER_ANSWER_LIMIT)
            .await
            .map_err(|e| OidcError::Invalid(format!("userinfo: {e}")))
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
