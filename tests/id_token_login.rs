//! Hostile ID tokens through the real login: real nginx and the real gate,
//! logging in at the hostile provider (`support/hostile_provider.rs`), which
//! signs whatever ID token a case chooses. Each malformed token must leave
//! the browser without a login cookie and outside the workspace, and count
//! once as `workspace_gate_logins_total{stage="failed",reason="id_token"}`;
//! valid RS256, PS256 and ES256 tokens complete the login.
//!
//! The workspace ws-1 belongs to `alice` (id and username) and the gate
//! runs the `owner-annotation` authorizer, so a token whose subject is
//! blank but whose username is `alice` would reach it if accepted.

mod support;

use std::time::Duration;

use anyhow::{Context, ensure};
use jsonwebtoken::Algorithm;
use serde_json::json;
use support::controller::ControllerKind;
use support::gate::login_failures;
use support::hostile_provider::{IdToken, USER};
use support::stack::{AUTH_HOST, Stack, StackOptions, WS1};

const LOGIN: &str = "__Host-workspace-gate-login";

async fn hostile_stack(label: &str) -> Stack {
    let mut options = StackOptions::new(ControllerKind::Nginx, label);
    options.authorization = "owner-annotation".into();
    options.hostile_provider = true;
    Stack::start(options).await.expect("stack")
}

fn id_token_failures(metrics: &str) -> f64 {
    login_failures(metrics, "id_token")
}

/// Runs `body` with a bound, printing every component's logs on failure.
async fn run(s: &Stack, body: impl std::future::Future<Output = anyhow::Result<()>>) {
    match tokio::time::timeout(Duration::from_secs(180), body).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("{e:#}\n{}", s.diagnostics()),
        Err(_) => panic!("hung\n{}", s.diagnostics()),
    }
}

#[tokio::test]
async fn hostile_id_tokens_are_refused_at_login() {
    let s = hostile_stack("hostile-id-tokens").await;
    let in_an_hour = || json!(now() + 3600);
    let cases = [
        ("no iss", IdToken::claims(json!({"iss": null}))),
        (
            "iss array holding the issuer",
            IdToken::claims(json!({"iss": [s.provider.issuer()]})),
        ),
        ("no aud", IdToken::claims(json!({"aud": null}))),
        (
            "aud [client, other] without azp",
            IdToken::claims(json!({"aud": [support::provider::CLIENT_ID, "other"]})),
        ),
        (
            "azp naming another client",
            IdToken::claims(json!({"azp": "other-client"})),
        ),
        ("no iat", IdToken::claims(json!({"iat": null}))),
        (
            "nbf an hour ahead",
            IdToken::claims(json!({"nbf": in_an_hour()})),
        ),
        (
            "crit naming an unknown extension",
            IdToken::header(json!({"crit": ["urn:example:unknown"], "urn:example:unknown": true})),
        ),
        ("sub empty", IdToken::claims(json!({"sub": ""}))),
        ("sub whitespace", IdToken::claims(json!({"sub": "   "}))),
        ("sub a number", IdToken::claims(json!({"sub": 42}))),
    ];
    run(&s, async {
        // Every case runs; the failures of all are reported together.
        let mut wrong = Vec::new();
        let mut failures = id_token_failures(&s.gate.metrics().await?);
        for (name, token) in cases {
            s.provider.hostile().serve(token);
            let seen_before = s.echo.seen().len();
            let b = s.browser(USER);
            let r = b.navigate(&s.url(WS1, "/")).await?;
            if r.status != 400 || !r.body.contains("Sign-in failed") {
                wrong.push(format!(
                    "{name}: the login was not refused: {}",
                    r.describe()
                ));
            }
            if b.cookie(AUTH_HOST, LOGIN).is_some() {
                wrong.push(format!("{name}: a login cookie was set"));
            }
            if s.echo.seen().len() != seen_before {
                wrong.push(format!("{name}: the workspace was reached"));
            }
            let now_failures = id_token_failures(&s.gate.metrics().await?);
            if now_failures != failures + 1.0 {
                wrong.push(format!(
                    "{name}: id_token failures went from {failures} to {now_failures}"
                ));
            }
            failures = now_failures;
        }
        ensure!(wrong.is_empty(), "{}", wrong.join("\n"));
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn valid_rs256_ps256_es256_id_tokens_complete_the_login() {
    let s = hostile_stack("valid-id-tokens").await;
    run(&s, async {
        for alg in [Algorithm::RS256, Algorithm::PS256, Algorithm::ES256] {
            s.provider.hostile().serve(IdToken::valid(alg));
            let b = s.browser(USER);
            let r = b.navigate(&s.url(WS1, "/")).await?;
            ensure!(
                r.status == 200,
                "{alg:?}: the login did not complete: {}\nhops: {:#?}",
                r.describe(),
                b.hops()
            );
            ensure!(
                r.body.contains(&format!(r#"<b id="user">{USER}</b>"#)),
                "{alg:?}: not the workspace page: {}",
                r.describe()
            );
            b.cookie(AUTH_HOST, LOGIN)
                .with_context(|| format!("{alg:?}: no login cookie"))?;
        }
        let m = s.gate.metrics().await?;
        ensure!(id_token_failures(&m) == 0.0, "metrics:\n{m}");
        Ok(())
    })
    .await;
}

/// The provider rotates its signing key right after the gate fetched the
/// key set: the next login is signed by a key the cached set lacks. It must
/// complete (the gate refetches promptly), not fail as "signed by an
/// unknown key" until a refetch interval has passed.
#[tokio::test]
async fn a_login_right_after_a_key_rotation_completes() {
    let s = hostile_stack("key-rotation").await;
    run(&s, async {
        s.provider.hostile().serve(IdToken::valid(Algorithm::RS256));
        let first = s.browser(USER);
        let r = first.navigate(&s.url(WS1, "/")).await?;
        ensure!(r.status == 200, "before the rotation: {}", r.describe());
        s.provider.hostile().rotate().await?;
        let b = s.browser(USER);
        let r = b.navigate(&s.url(WS1, "/")).await?;
        ensure!(
            r.status == 200 && r.body.contains(&format!(r#"<b id="user">{USER}</b>"#)),
            "the login after the rotation did not complete: {}\nhops: {:#?}",
            r.describe(),
            b.hops()
        );
        let m = s.gate.metrics().await?;
        ensure!(id_token_failures(&m) == 0.0, "metrics:\n{m}");
        Ok(())
    })
    .await;
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A token response of 32 MB (a broken or hostile provider) is refused
/// with a clear reason instead of being read whole.
#[tokio::test]
async fn an_oversized_token_response_is_refused() {
    let s = hostile_stack("oversized-token-response").await;
    run(&s, async {
        s.provider
            .hostile()
            .serve(IdToken::with_access_token(32 << 20));
        let b = s.browser(USER);
        let r = b.navigate(&s.url(WS1, "/")).await?;
        ensure!(
            r.status != 200 && b.cookie(AUTH_HOST, LOGIN).is_none(),
            "a 32 MB token response completed the login: {}",
            r.describe()
        );
        ensure!(
            s.gate.logs().contains("larger than 1048576 bytes"),
            "the gate did not say why:\n{}",
            s.gate.logs()
        );
        Ok(())
    })
    .await;
}
