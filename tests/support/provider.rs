//! The real OpenID provider (node-oidc-provider, `oidc/provider.mjs`), started
//! on 127.0.0.1 with a random port, and a harness-side authorization-code
//! flow that yields real access tokens for bearer tests.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine;
use sha2::Digest;

use super::client::{Browser, Mode};
use super::process::Proc;

pub const CLIENT_ID: &str = "workspace-gate";
/// A redirect URI the harness registers for its own flows; never contacted,
/// the harness reads `code` from the Location header.
pub const HARNESS_REDIRECT: &str = "http://127.0.0.1:9/harness/callback";

pub struct Provider {
    pub issuer: String,
    pub client_secret: String,
    pub proc: Proc,
}

#[derive(Debug, Clone)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub id_token: Option<String>,
}

pub fn oidc_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/oidc")
}

impl Provider {
    /// Starts the provider with one confidential client whose redirect URIs
    /// are `redirect_uris` plus the harness' own.
    pub async fn start(dir: &Path, redirect_uris: &[String]) -> anyhow::Result<Provider> {
        Self::start_with(dir, redirect_uris, None).await
    }

    /// [`Provider::start`] with a custom access-token lifetime (seconds).
    pub async fn start_with(
        dir: &Path,
        redirect_uris: &[String],
        access_token_ttl: Option<u64>,
    ) -> anyhow::Result<Provider> {
        let node = which("node").context(
            "node is not installed: run scripts/install-deps.sh (apt-get install -y nodejs npm)",
        )?;
        let oidc = oidc_dir();
        if !oidc.join("node_modules/oidc-provider").is_dir() {
            bail!(
                "the OpenID provider is not installed: run scripts/install-deps.sh \
                 (or `npm ci` in {})",
                oidc.display()
            );
        }
        let client_secret = format!("secret-{}", uuid::Uuid::new_v4().simple());
        let mut uris = redirect_uris.to_vec();
        uris.push(HARNESS_REDIRECT.to_string());
        let mut cmd = Command::new(node);
        cmd.arg(oidc.join("provider.mjs"))
            .arg("--client")
            .arg(format!("{CLIENT_ID}:{client_secret}:{}", uris.join(",")))
            .current_dir(&oidc);
        if let Some(ttl) = access_token_ttl {
            cmd.env("OIDC_ACCESS_TOKEN_TTL", ttl.to_string());
        }
        let mut proc = Proc::spawn("provider", dir, cmd)?;
        let line = wait_line(&mut proc, "ready ").await?;
        let issuer = line.trim_start_matches("ready ").trim().to_string();
        Ok(Provider {
            issuer,
            client_secret,
            proc,
        })
    }

    /// Runs a complete authorization-code flow with PKCE as `user` (scripted
    /// login and consent on the provider's pages) and redeems the code.
    pub async fn user_tokens(&self, user: &str) -> anyhow::Result<Tokens> {
        // The provider is plain http on an IP literal: the test CA is unused.
        let b = Browser::new(None, "invalid.test")?.with_user(user);
        let verifier = format!(
            "v{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(verifier.as_bytes()));
        let mut url = reqwest::Url::parse(&format!("{}/auth", self.issuer))?;
        url.query_pairs_mut()
            .append_pair("client_id", CLIENT_ID)
            .append_pair("response_type", "code")
            .append_pair("scope", "openid profile offline_access read_api")
            .append_pair("redirect_uri", HARNESS_REDIRECT)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("state", "harness-state-0123456789")
            .append_pair("nonce", "harness-nonce-0123456789")
            .append_pair("prompt", "consent");
        // Follow until the redirect to HARNESS_REDIRECT, which we do not fetch.
        let mut next = url.to_string();
        let mut form: Option<Vec<(String, String)>> = None;
        let code = 'flow: {
            for _ in 0..20 {
                let method = if form.is_some() {
                    reqwest::Method::POST
                } else {
                    reqwest::Method::GET
                };
                let r = b
                    .send(method, &next, Mode::Navigate, &[], form.as_deref())
                    .await?;
                form = None;
                if let Some(loc) = r.location() {
                    let u = r.url.join(&loc)?;
                    if u.as_str().starts_with(HARNESS_REDIRECT) {
                        let code = u
                            .query_pairs()
                            .find(|(k, _)| k == "code")
                            .map(|(_, v)| v.to_string())
                            .with_context(|| format!("no code in {u}"))?;
                        break 'flow code;
                    }
                    next = u.to_string();
                    continue;
                }
                let f = super::client::Form::parse(&r.body)
                    .with_context(|| format!("provider page without form: {}", r.describe()))?;
                let mut fields = f.hidden.clone();
                if f.visible.iter().any(|n| n == "login") {
                    fields.push(("login".into(), user.into()));
                    fields.push(("password".into(), "x".into()));
                }
                next = r.url.join(&f.action)?.to_string();
                form = Some(fields);
            }
            bail!("provider flow did not end: {:#?}", b.hops());
        };
        let http = reqwest::Client::builder().no_proxy().build()?;
        let resp = http
            .post(format!("{}/token", self.issuer))
            .basic_auth(CLIENT_ID, Some(&self.client_secret))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", HARNESS_REDIRECT),
                ("code_verifier", &verifier),
            ])
            .send()
            .await?;
        let status = resp.status();
        let v: serde_json::Value = resp.json().await?;
        if !status.is_success() {
            bail!("token endpoint answered {status}: {v}");
        }
        Ok(Tokens {
            access_token: v["access_token"]
                .as_str()
                .context("no access_token")?
                .to_string(),
            refresh_token: v["refresh_token"].as_str().map(str::to_string),
            id_token: v["id_token"].as_str().map(str::to_string),
        })
    }
}

pub async fn wait_line(proc: &mut Proc, prefix: &str) -> anyhow::Result<String> {
    for _ in 0..600 {
        let text = std::fs::read_to_string(&proc.stdout).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.starts_with(prefix)) {
            return Ok(line.to_string());
        }
        proc.ensure_running()?;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!(
        "{} did not print `{prefix}` within 30 s\n{}",
        proc.name,
        proc.output()
    )
}

pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}
