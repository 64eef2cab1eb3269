//! Attacks on the login callback, through real nginx and the real provider:
//! a callback whose state does not match the browser's CSRF cookie is
//! refused, and a replayed authorization code fails cleanly (a page, not a
//! 500, and no login cookie).

mod support;

use std::time::Duration;

use anyhow::{Context, ensure};
use support::controller::ControllerKind;
use support::gate::login_failures as failures;
use support::stack::{AUTH_HOST, Stack, StackOptions, WS1};

const CSRF: &str = "__Host-workspace-gate-csrf";
const LOGIN: &str = "__Host-workspace-gate-login";

/// The `/auth/callback?code=..&state=..` URL of a completed login.
fn callback_url(b: &support::client::Browser) -> anyhow::Result<String> {
    b.hops()
        .into_iter()
        .find(|h| h.url.contains("/auth/callback?"))
        .map(|h| h.url)
        .context("the login never reached /auth/callback")
}

#[tokio::test]
async fn callback_with_foreign_csrf_cookie_is_refused_and_replayed_code_fails_cleanly() {
    let s = Stack::start(StackOptions::new(ControllerKind::Nginx, "login-attacks"))
        .await
        .expect("stack");
    let result = tokio::time::timeout(Duration::from_secs(120), async {
        let alice = s.browser("alice");
        let landed = alice.navigate(&s.url(WS1, "/")).await?;
        ensure!(landed.status == 200, "alice's login: {}", landed.describe());
        let callback = callback_url(&alice)?;

        // Another browser whose CSRF cookie differs from the one the state
        // was bound to: refused before the code is redeemed.
        let mallory = s.browser("mallory");
        mallory
            .jar
            .lock()
            .unwrap()
            .plant(AUTH_HOST, CSRF, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
        let r = mallory.navigate(&callback).await?;
        ensure!(r.status == 400, "foreign CSRF cookie: {}", r.describe());
        ensure!(r.body.contains("Sign-in failed"), "{}", r.body);
        ensure!(
            mallory.cookie(AUTH_HOST, LOGIN).is_none(),
            "no login cookie may be set"
        );
        // A browser without any CSRF cookie is refused the same way.
        let r = s.browser("mallory").navigate(&callback).await?;
        ensure!(r.status == 400, "missing CSRF cookie: {}", r.describe());
        let m = s.gate.metrics().await?;
        ensure!(failures(&m, "csrf_mismatch") >= 2.0, "metrics:\n{m}");

        // The right browser replays the same callback: its CSRF cookie was
        // spent (cleared) by the login it completed, so the replay is
        // refused before the provider is asked to redeem the used code; the
        // gate shows its page and sets nothing.
        let before = alice.cookie(AUTH_HOST, LOGIN);
        let r = alice.navigate(&callback).await?;
        ensure!(r.status == 400, "replayed code: {}", r.describe());
        ensure!(r.body.contains("Reference"), "{}", r.body);
        ensure!(
            alice.cookie(AUTH_HOST, LOGIN) == before,
            "a failed callback must not change the login cookie"
        );
        let m = s.gate.metrics().await?;
        ensure!(failures(&m, "csrf_mismatch") >= 3.0, "metrics:\n{m}");
        ensure!(failures(&m, "code_exchange") == 0.0, "metrics:\n{m}");
        Ok(())
    })
    .await;
    finish(&s, result);
}

/// Ten workspace tabs restored at once in one browser with no login and no
/// CSRF cookie yet: each starts a login before any answer has set a
/// cookie. Every one of them must complete and land on its own page (one
/// CSRF cookie per login), and the CSRF cookies are cleared as the logins
/// complete.
#[tokio::test]
async fn logins_started_together_in_ten_tabs_all_complete() {
    use support::client::Mode;
    let s = Stack::start(StackOptions::new(ControllerKind::Nginx, "restored-tabs"))
        .await
        .expect("stack");
    let result = tokio::time::timeout(Duration::from_secs(180), async {
        let b = s.browser("alice");
        // Each tab: the workspace sends it to the login start (nginx's
        // auth-signin redirect).
        let mut starts = Vec::new();
        for i in 0..10 {
            let r = b
                .get(&s.url(WS1, &format!("/tab-{i}")), Mode::Navigate, &[])
                .await?;
            ensure!(r.status == 302, "tab {i}: {}", r.describe());
            starts.push(r.location().context("no Location")?);
        }
        // All ten starts in flight together, none carrying a CSRF cookie.
        let answers =
            futures::future::join_all(starts.iter().map(|u| b.get(u, Mode::Navigate, &[]))).await;
        let mut to_provider = Vec::new();
        for (i, a) in answers.into_iter().enumerate() {
            let a = a?;
            ensure!(a.status == 302, "start {i}: {}", a.describe());
            to_provider.push(a.location().context("no Location")?);
        }
        for (i, url) in to_provider.iter().enumerate() {
            let r = b.navigate(url).await?;
            ensure!(
                r.status == 200 && r.body.contains(&format!("/tab-{i}")),
                "tab {i} did not land on its page: {}\nhops: {:#?}",
                r.describe(),
                b.hops()
            );
        }
        let left: Vec<String> = b
            .jar
            .lock()
            .unwrap()
            .cookies
            .iter()
            .filter(|c| c.host == AUTH_HOST && c.name.starts_with(CSRF))
            .map(|c| c.name.clone())
            .collect();
        ensure!(
            left.is_empty(),
            "CSRF cookies left after the logins: {left:?}"
        );
        let m = s.gate.metrics().await?;
        ensure!(failures(&m, "csrf_mismatch") == 0.0, "metrics:\n{m}");
        Ok(())
    })
    .await;
    finish(&s, result);
}

/// Fails the test with every component's logs unless `result` is a pass.
fn finish(s: &Stack, result: Result<anyhow::Result<()>, tokio::time::error::Elapsed>) {
    match result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("{e:#}\n{}", s.diagnostics()),
        Err(_) => panic!("hung\n{}", s.diagnostics()),
    }
}
