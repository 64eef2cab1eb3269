//! Token kinds kept apart (a transfer token is not a pass, a pass is not
//! a transfer token, a transfer token is good once and on its own host) and
//! the provider's access token as a bearer or Basic credential.

use anyhow::{Context, ensure};
use base64::Engine;

use super::{
    PASS, last_seen_on, provider_hops, run, sign_in_refusal, transfer_token_for, urlencode, visit,
};
use crate::support::client::{Browser, Mode, Resp};
use crate::support::controller::ControllerKind;
use crate::support::stack::{Stack, WS1, WS2_A, WS2_B};

pub async fn transfer_token_is_not_a_pass_and_pass_is_not_a_transfer_token(
    kind: ControllerKind,
) -> anyhow::Result<()> {
    run(kind, "token-kinds", |s| async move {
        let alice = s.browser("alice");
        visit(&s, &alice, WS1, "/").await?;
        let pass = alice.cookie(WS1, PASS).context("pass on ws-1")?;
        let transfer = transfer_token_for(&s, &alice, WS2_A).await?;

        // A transfer token (audience WS2_A) planted as WS2_A's pass.
        let b = s.browser("alice");
        b.jar.lock().unwrap().plant(WS2_A, PASS, &transfer);
        let r = b.fetch(&s.url(WS2_A, "/as-pass")).await?;
        ensure!(
            r.status == sign_in_refusal(kind),
            "transfer token used as pass: {}",
            r.describe()
        );

        // A pass (audience WS1) handed to WS1's callback as a transfer token.
        let c = s.browser("alice");
        let cb = s.url(WS1, "/.workspace-gate/callback");
        let r = c
            .send(
                reqwest::Method::POST,
                &cb,
                Mode::Navigate,
                &[],
                Some(&[("token".to_string(), pass.clone())]),
            )
            .await?;
        let q = c
            .get(
                &format!("{cb}?token={}", urlencode(&pass)),
                Mode::Navigate,
                &[],
            )
            .await?;
        for r in [&r, &q] {
            ensure!(
                !r.set_cookies().iter().any(|c| c.starts_with(PASS)),
                "a pass was accepted as transfer token: {}",
                r.describe()
            );
        }
        let r = c.fetch(&s.url(WS1, "/as-transfer")).await?;
        ensure!(
            r.status == sign_in_refusal(kind),
            "after posting a pass as transfer token: {}",
            r.describe()
        );
        ensure!(
            s.echo
                .seen()
                .iter()
                .all(|r| r.uri != "/as-pass" && r.uri != "/as-transfer"),
            "a wrong token kind reached the workspace"
        );

        // A transfer token for WS2_A redeemed on another host's callback.
        let e = s.browser("alice");
        let r = redeem_transfer(&s, &e, kind, WS2_B, &transfer).await?;
        ensure!(
            e.cookie(WS2_B, PASS).is_none(),
            "a transfer token for {WS2_A} gave a pass on {WS2_B}: {}",
            r.describe()
        );

        // The transfer token itself is good where it belongs, once.
        let d = s.browser("alice");
        let r = redeem_transfer(&s, &d, kind, WS2_A, &transfer).await?;
        ensure!(
            (300..400).contains(&r.status) && d.cookie(WS2_A, PASS).is_some(),
            "the genuine transfer token was refused: {}",
            r.describe()
        );
        let replay = s.browser("alice");
        let r = redeem_transfer(&s, &replay, kind, WS2_A, &transfer).await?;
        ensure!(
            replay.cookie(WS2_A, PASS).is_none(),
            "a transfer token was redeemed twice: {}",
            r.describe()
        );
        Ok(())
    })
    .await
}

/// Hands `token` to `host`'s callback the way the stack's transfer mode does.
async fn redeem_transfer(
    s: &Stack,
    b: &Browser,
    kind: ControllerKind,
    host: &str,
    token: &str,
) -> anyhow::Result<Resp> {
    let query = s.options.transfer.as_deref().unwrap_or(kind.transfer()) == "query";
    let cb = s.url(host, "/.workspace-gate/callback");
    if query {
        b.get(
            &format!("{cb}?token={}", urlencode(token)),
            Mode::Navigate,
            &[],
        )
        .await
    } else {
        let form = [("token".to_string(), token.to_string())];
        b.send(reqwest::Method::POST, &cb, Mode::Navigate, &[], Some(&form))
            .await
    }
}

pub async fn provider_access_token_works_as_bearer_and_wrong_one_gets_401(
    kind: ControllerKind,
) -> anyhow::Result<()> {
    run(kind, "bearer", |s| async move {
        let alice = s.provider.real().user_tokens("alice").await?;
        let bob = s.provider.real().user_tokens("bob").await?;
        let b = s.browser("nobody");
        let bearer = format!("Bearer {}", alice.access_token);
        let r = b
            .get(
                &s.url(WS1, "/bearer"),
                Mode::Fetch,
                &[("authorization", &bearer)],
            )
            .await?;
        ensure!(
            r.status == 200,
            "alice's bearer token on ws-1: {}",
            r.describe()
        );
        let seen = last_seen_on(&s, "/bearer")?;
        ensure!(seen.header("x-workspace-user") == Some("alice"), "{seen:?}");
        ensure!(
            seen.header("authorization").is_none(),
            "Authorization reached the workspace: {seen:?}"
        );

        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD
                .encode(format!("alice:{}", alice.access_token))
        );
        let r = b
            .get(
                &s.url(WS1, "/basic"),
                Mode::Fetch,
                &[("authorization", &basic)],
            )
            .await?;
        ensure!(r.status == 200, "token as Basic password: {}", r.describe());
        ensure!(
            last_seen_on(&s, "/basic")?
                .header("authorization")
                .is_none(),
            "Authorization reached the workspace"
        );

        let wrong = format!("Bearer {}x", alice.access_token);
        let r = b
            .get(
                &s.url(WS1, "/wrong"),
                Mode::Fetch,
                &[("authorization", &wrong)],
            )
            .await?;
        // Never the auth-signin redirect, behind ingress-nginx either.
        ensure!(
            r.status == sign_in_refusal(kind),
            "a wrong bearer token: {}",
            r.describe()
        );
        ensure!(
            provider_hops(&s, &b).is_empty(),
            "a bearer request went to the provider"
        );

        let bob_bearer = format!("Bearer {}", bob.access_token);
        let r = b
            .get(
                &s.url(WS1, "/bob"),
                Mode::Fetch,
                &[("authorization", &bob_bearer)],
            )
            .await?;
        ensure!(
            r.status == 403,
            "bob's token on alice's workspace: {}",
            r.describe()
        );
        ensure!(
            s.echo
                .seen()
                .iter()
                .all(|r| r.uri != "/wrong" && r.uri != "/bob"),
            "a refused bearer request reached the workspace"
        );
        let calls = s.gitlab.calls();
        ensure!(
            calls.iter().all(|c| c.query.contains("currentUser")),
            "GraphQL calls without currentUser: {calls:?}"
        );
        Ok(())
    })
    .await
}
