//! Token kinds kept apart (a transfer token is not a pass, a pass is not
//! a transfer token, a transfer token is good once and on its own host) and
//! the provider's access token as a bearer or Basic credential.

use anyhow::{Context, ensure};
use base64::Engine;

use super::{
    PASS, fragment_tokens, last_seen_on, provider_hops, run, run_with, sign_in_refusal,
    transfer_token_for, urlencode, visit,
};
use crate::support::client::{Browser, Mode, Resp};
use crate::support::controller::ControllerKind;
use crate::support::stack::{Stack, StackOptions, WS1, WS2_A, WS2_B};

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

        // The transfer token itself is good where it belongs, in the
        // browser that started the login, once.
        let r = redeem_transfer(&s, &alice, kind, WS2_A, &transfer).await?;
        ensure!(
            (300..400).contains(&r.status) && gives_pass(&r),
            "the genuine transfer token was refused: {}",
            r.describe()
        );
        let r = redeem_transfer(&s, &alice, kind, WS2_A, &transfer).await?;
        ensure!(
            !gives_pass(&r),
            "a transfer token was redeemed twice: {}",
            r.describe()
        );
        Ok(())
    })
    .await
}

/// True when `r` sets a pass.
fn gives_pass(r: &Resp) -> bool {
    r.set_cookies()
        .iter()
        .any(|c| c.starts_with(&format!("{PASS}=")) && !c.starts_with(&format!("{PASS}=;")))
}

/// The hand-over page's cookie (`session.transfer: fragment`).
const TRANSFER_COOKIE: &str = "__Host-workspace-gate-transfer";

/// Hands `token` to `host`'s callback the way the stack's transfer mode
/// does, in one request (the fragment mode's hand-over page already done:
/// the token in its cookie).
async fn redeem_transfer(
    s: &Stack,
    b: &Browser,
    kind: ControllerKind,
    host: &str,
    token: &str,
) -> anyhow::Result<Resp> {
    let cb = s.url(host, "/.workspace-gate/callback");
    match s.options.transfer.as_deref().unwrap_or(kind.transfer()) {
        "query" => {
            b.get(
                &format!("{cb}?token={}", urlencode(token)),
                Mode::Navigate,
                &[],
            )
            .await
        }
        "form_post" => {
            let form = [("token".to_string(), token.to_string())];
            b.send(reqwest::Method::POST, &cb, Mode::Navigate, &[], Some(&form))
                .await
        }
        _ => {
            b.jar.lock().unwrap().plant(host, TRANSFER_COOKIE, token);
            b.get(&format!("{cb}?redeem=1"), Mode::Navigate, &[]).await
        }
    }
}

/// A whole login in the default transfer mode leaves its transfer token in
/// no controller's access log, and the token, taken from the browser that
/// was handed it, is refused in another browser, a second time in the same
/// one, and on another replica (the gate restarted: no memory of redeemed
/// tokens).
pub async fn transfer_tokens_stay_out_of_access_logs_and_bound_to_their_browser(
    kind: ControllerKind,
) -> anyhow::Result<()> {
    run(kind, "transfer-binding", |s| async move {
        let alice = s.browser("alice");
        visit(&s, &alice, WS1, "/").await?;
        let tokens = fragment_tokens(&alice);
        ensure!(
            tokens.len() == 1,
            "expected one hand-over in a URL fragment, got {tokens:?}"
        );
        let token = &tokens[0];
        // The redemption reached the controller's access log (so the log is
        // written and read), the token did not.
        let logged = wait_for_log(&s, "/.workspace-gate/callback?redeem=1").await?;
        ensure!(
            !logged.contains(token.as_str()),
            "the transfer token is in {}'s logs",
            kind.name()
        );
        s.assert_logs_free_of(std::slice::from_ref(token))?;
        refused_everywhere_but_its_first_browser(&s, kind, &alice, WS1, token).await
    })
    .await
}

/// In query mode the token is in every access log: copied from there, it
/// is refused all the same.
pub async fn a_transfer_token_copied_from_an_access_log_is_refused(
    kind: ControllerKind,
) -> anyhow::Result<()> {
    let mut options = StackOptions::new(kind, "transfer-from-log");
    options.transfer = Some("query".into());
    run_with(options, |s| async move {
        let alice = s.browser("alice");
        visit(&s, &alice, WS1, "/").await?;
        let logged = wait_for_log(&s, "/.workspace-gate/callback?token=").await?;
        let at = logged
            .find("/.workspace-gate/callback?token=")
            .context("no callback")?
            + "/.workspace-gate/callback?token=".len();
        let raw: String = logged[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || "%._~-".contains(*c))
            .collect();
        let token = url::form_urlencoded::parse(format!("t={raw}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .context("token")?;
        ensure!(token.len() > 40, "no token read from the log: {raw:?}");
        refused_everywhere_but_its_first_browser(&s, kind, &alice, WS1, &token).await
    })
    .await
}

/// `token` was redeemed by `first`: it now gives no pass to another
/// browser, nor to `first` again, on this replica or a fresh one.
async fn refused_everywhere_but_its_first_browser(
    s: &Stack,
    kind: ControllerKind,
    first: &Browser,
    host: &str,
    token: &str,
) -> anyhow::Result<()> {
    let mallory = s.browser("bob");
    for round in ["this replica", "another replica"] {
        if round == "another replica" {
            s.gate.restart().await?;
        }
        for (who, b) in [("another browser", &mallory), ("the same browser", first)] {
            let r = redeem_transfer(s, b, kind, host, token).await?;
            ensure!(
                !gives_pass(&r),
                "{who} on {round} redeemed a spent transfer token: {}",
                r.describe()
            );
        }
        let r = mallory.fetch(&s.url(host, "/as-mallory")).await?;
        ensure!(
            r.status == sign_in_refusal(kind),
            "{round}: the other browser reached the workspace: {}",
            r.describe()
        );
    }
    ensure!(
        s.echo.seen().iter().all(|r| r.uri != "/as-mallory"),
        "the other browser reached the workspace"
    );
    // The browser that logged in keeps its pass.
    visit(s, first, host, "/still-mine").await?;
    Ok(())
}

/// The controller's logs once they contain `needle` (access logs are
/// written a moment after the answer).
async fn wait_for_log(s: &Stack, needle: &str) -> anyhow::Result<String> {
    for _ in 0..100 {
        let logs = s.controller.logs();
        if logs.contains(needle) {
            return Ok(logs);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    anyhow::bail!("no line with {needle} in the controller's logs within 10 s")
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
