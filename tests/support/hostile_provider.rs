//! A HOSTILE OpenID provider, in process: it signs whatever ID token the test
//! asks for, so the gate's ID token validation can be tested through the
//! real login (the real provider never signs a malformed token).
//!
//! - `/.well-known/openid-configuration`: a plain discovery document.
//! - `/jwks`: an RSA key (`kid` `rsa-1`, signs RS256 and PS256) and a P-256
//!   key (`ec-1`, ES256), both generated when the provider starts.
//!   [`HostileProvider::rotate`] adds an RSA key (`rsa-2`) that signs from
//!   then on, as a provider rotating its keys does.
//! - `/authorize`: no login page; redirects at once to `redirect_uri` with a
//!   fresh code and the request's `state`, and remembers the request's
//!   `nonce` and the [`IdToken`] being served for that code.
//! - `/token`: redeems a code (once) for an opaque access token and the
//!   chosen ID token, signed, carrying the nonce unless the case removes it.
//!
//! Not emulated: PKCE verification, client authentication, refresh, userinfo
//! (the ID tokens carry `preferred_username`, so the gate does not ask).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use axum::Router;
use axum::extract::{Form, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use serde_json::{Map, Value, json};

use super::provider::CLIENT_ID;

/// The subject and `preferred_username` of the ID tokens by default.
pub const USER: &str = "alice";

/// The ID token a login gets: `alg` picks the key; `header` and `claims` are
/// merged over the valid defaults, a `null` value removing the field.
#[derive(Debug, Clone)]
pub struct IdToken {
    pub alg: Algorithm,
    pub header: Value,
    pub claims: Value,
    /// The length of the access token in the token response (0: a short
    /// one), to send answers of any size.
    pub access_token_len: usize,
}

impl IdToken {
    /// A valid ID token signed with `alg`.
    pub fn valid(alg: Algorithm) -> IdToken {
        IdToken {
            alg,
            header: json!({}),
            claims: json!({}),
            access_token_len: 0,
        }
    }

    /// A valid RS256 ID token in a token response whose access token is
    /// `len` bytes long.
    pub fn with_access_token(len: usize) -> IdToken {
        IdToken {
            access_token_len: len,
            ..IdToken::valid(Algorithm::RS256)
        }
    }

    /// A valid RS256 ID token with `claims` changed.
    pub fn claims(claims: Value) -> IdToken {
        IdToken {
            claims,
            ..IdToken::valid(Algorithm::RS256)
        }
    }

    /// A valid RS256 ID token with its JWS header changed.
    pub fn header(header: Value) -> IdToken {
        IdToken {
            header,
            ..IdToken::valid(Algorithm::RS256)
        }
    }
}

struct Keys {
    rsa: EncodingKey,
    ec: EncodingKey,
    jwks: Value,
}

#[derive(Default)]
struct Served {
    /// What the next authorization request gets.
    next: Option<IdToken>,
    /// Code -> (nonce, ID token) until redeemed.
    codes: HashMap<String, (String, IdToken)>,
}

/// A key added by [`HostileProvider::rotate`]: it signs RSA tokens.
struct Rotated {
    key: EncodingKey,
    jwk: Value,
}

#[derive(Clone)]
struct Ctx {
    issuer: String,
    keys: Arc<Keys>,
    rotated: Arc<Mutex<Option<Arc<Rotated>>>>,
    served: Arc<Mutex<Served>>,
}

pub struct HostileProvider {
    pub issuer: String,
    pub client_secret: String,
    served: Arc<Mutex<Served>>,
    rotated: Arc<Mutex<Option<Arc<Rotated>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HostileProvider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HostileProvider {
    pub async fn start() -> anyhow::Result<HostileProvider> {
        let keys = Arc::new(tokio::task::spawn_blocking(generate_keys).await??);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr: SocketAddr = listener.local_addr()?;
        let issuer = format!("http://{addr}");
        let served: Arc<Mutex<Served>> = Default::default();
        let rotated: Arc<Mutex<Option<Arc<Rotated>>>> = Default::default();
        let ctx = Ctx {
            issuer: issuer.clone(),
            keys,
            rotated: rotated.clone(),
            served: served.clone(),
        };
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .with_state(ctx);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(HostileProvider {
            issuer,
            client_secret: format!("secret-{}", uuid::Uuid::new_v4().simple()),
            served,
            rotated,
            task,
        })
    }

    /// Publishes a new RSA key (`rsa-2`) beside the others and signs RSA
    /// tokens with it from now on.
    pub async fn rotate(&self) -> anyhow::Result<()> {
        let rotated = tokio::task::spawn_blocking(|| -> anyhow::Result<Rotated> {
            let rsa = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048)
                .context("generating the RSA key")?;
            let der = rsa.to_pkcs1_der().context("encoding the RSA key")?;
            Ok(Rotated {
                key: EncodingKey::from_rsa_der(der.as_bytes()),
                jwk: rsa_jwk(&rsa, "rsa-2"),
            })
        })
        .await??;
        *self.rotated.lock().unwrap() = Some(Arc::new(rotated));
        Ok(())
    }

    /// The ID token that the next login is given.
    pub fn serve(&self, token: IdToken) {
        self.served.lock().unwrap().next = Some(token);
    }
}

fn generate_keys() -> anyhow::Result<Keys> {
    let rsa = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048)
        .context("generating the RSA key")?;
    let rsa_der = rsa.to_pkcs1_der().context("encoding the RSA key")?;
    let ec = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .context("generating the P-256 key")?;
    // Uncompressed point: 0x04 || x || y.
    let point = ec.public_key_raw();
    anyhow::ensure!(point.len() == 65, "unexpected P-256 public key");
    let jwks = json!({"keys": [
        rsa_jwk(&rsa, "rsa-1"),
        {
            "kty": "EC", "use": "sig", "kid": "ec-1", "crv": "P-256",
            "x": B64.encode(&point[1..33]),
            "y": B64.encode(&point[33..]),
        },
    ]});
    Ok(Keys {
        // jsonwebtoken without `use_pem` takes PKCS#1 (RSA) and PKCS#8 (EC) DER.
        rsa: EncodingKey::from_rsa_der(rsa_der.as_bytes()),
        ec: EncodingKey::from_ec_der(&ec.serialize_der()),
        jwks,
    })
}

fn rsa_jwk(rsa: &rsa::RsaPrivateKey, kid: &str) -> Value {
    json!({
        "kty": "RSA", "use": "sig", "kid": kid,
        "n": B64.encode(rsa.n().to_bytes_be()),
        "e": B64.encode(rsa.e().to_bytes_be()),
    })
}

async fn discovery(State(ctx): State<Ctx>) -> Response {
    let i = &ctx.issuer;
    axum::Json(json!({
        "issuer": i,
        "authorization_endpoint": format!("{i}/authorize"),
        "token_endpoint": format!("{i}/token"),
        "jwks_uri": format!("{i}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "PS256", "ES256"],
    }))
    .into_response()
}

async fn jwks(State(ctx): State<Ctx>) -> Response {
    let mut set = ctx.keys.jwks.clone();
    if let (Some(r), Some(keys)) = (
        ctx.rotated.lock().unwrap().clone(),
        set["keys"].as_array_mut(),
    ) {
        keys.push(r.jwk.clone());
    }
    axum::Json(set).into_response()
}

async fn authorize(State(ctx): State<Ctx>, Query(q): Query<HashMap<String, String>>) -> Response {
    let (Some(redirect_uri), Some(state)) = (q.get("redirect_uri"), q.get("state")) else {
        return (StatusCode::BAD_REQUEST, "redirect_uri and state are needed").into_response();
    };
    let mut served = ctx.served.lock().unwrap();
    let Some(token) = served.next.clone() else {
        return (StatusCode::BAD_REQUEST, "the test chose no ID token").into_response();
    };
    let code = format!("code-{}", uuid::Uuid::new_v4().simple());
    let nonce = q.get("nonce").cloned().unwrap_or_default();
    served.codes.insert(code.clone(), (nonce, token));
    let Ok(mut location) = reqwest::Url::parse(redirect_uri) else {
        return (StatusCode::BAD_REQUEST, "redirect_uri is not a URL").into_response();
    };
    location
        .query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", state);
    (
        StatusCode::FOUND,
        [(header::LOCATION, location.to_string())],
    )
        .into_response()
}

async fn token(State(ctx): State<Ctx>, Form(form): Form<HashMap<String, String>>) -> Response {
    let redeemed = form
        .get("code")
        .and_then(|c| ctx.served.lock().unwrap().codes.remove(c));
    let Some((nonce, spec)) = redeemed else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "invalid_grant"})),
        )
            .into_response();
    };
    match sign(&ctx, &nonce, &spec) {
        Ok(id_token) => axum::Json(json!({
            "access_token": match spec.access_token_len {
                0 => format!("at-{}", uuid::Uuid::new_v4().simple()),
                n => "a".repeat(n),
            },
            "token_type": "Bearer",
            "expires_in": 3600,
            "id_token": id_token,
        }))
        .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")).into_response(),
    }
}

fn sign(ctx: &Ctx, nonce: &str, spec: &IdToken) -> anyhow::Result<String> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let rotated = ctx.rotated.lock().unwrap().clone();
    let (key, kid) = match (spec.alg, &rotated) {
        (Algorithm::ES256, _) => (&ctx.keys.ec, "ec-1"),
        (_, Some(r)) => (&r.key, "rsa-2"),
        (_, None) => (&ctx.keys.rsa, "rsa-1"),
    };
    let header = merge(
        json!({"alg": spec.alg, "typ": "JWT", "kid": kid}),
        &spec.header,
    );
    let header: Header = serde_json::from_value(Value::Object(header))?;
    let claims = merge(
        json!({
            "iss": ctx.issuer,
            "aud": CLIENT_ID,
            "sub": USER,
            "preferred_username": USER,
            "exp": now + 300,
            "iat": now,
            "nonce": nonce,
        }),
        &spec.claims,
    );
    Ok(jsonwebtoken::encode(&header, &claims, key)?)
}

/// `base` with `changes` applied; a `null` change removes the field.
fn merge(base: Value, changes: &Value) -> Map<String, Value> {
    let mut out = match base {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    for (k, v) in changes.as_object().into_iter().flatten() {
        if v.is_null() {
            out.remove(k);
        } else {
            out.insert(k.clone(), v.clone());
        }
    }
    out
}
