//! Logging in: landing on the original URL (query intact) with the
//! cookies the architecture names, a second host without a new provider
//! login, the query transfer mode, and an expired access token refreshed
//! without one.

use std::time::Duration;

use anyhow::{Context, ensure};

use super::{
    CSRF, LOGIN, PASS, hops_text, last_seen_on, metric_sum, provider_hops, run, run_with, visit,
};
use crate::support::controller::ControllerKind;
use crate::support::stack::{AUTH_HOST, StackOptions, WS1, WS2_A};

pub async fn login_lands_on_original_url_with_query(kind: ControllerKind) -> anyhow::Result<()> {
    run(kind, "login-query", |s| async move {
        let b = s.browser("alice");
        let path = "/src/main.rs?x=1&y=a%20b&z=%2F";
        visit(&s, &b, WS1, path).await?;
        let hops = b.hops();
        ensure!(
            !provider_hops(&s, &b).is_empty(),
            "a first visit must log in at the provider:\n{}",
            hops_text(&b)
        );
        let first = &hops[0];
        ensure!(
            first.status == 302 || first.status == 401,
            "first answer: {first:?}"
        );
        // The login starts on the workspace host itself (which binds it to
        // this browser), and reaches the auth host with the bind digest: no
        // detour through an unbound start.
        // Behind ingress-nginx the start also carries the method
        // (`m=GET`), which auth-signin asks nginx to add.
        ensure!(
            hops[1]
                .url
                .starts_with(&s.url(WS1, "/.workspace-gate/start?rd="))
                || hops[1]
                    .url
                    .starts_with(&s.url(WS1, "/.workspace-gate/start?m=GET&rd=")),
            "the second hop is not the workspace host's login start:\n{}",
            hops_text(&b)
        );
        let starts: Vec<_> = hops
            .iter()
            .filter(|h| h.url.starts_with(&s.url(AUTH_HOST, "/auth/start")))
            .collect();
        ensure!(
            starts.len() == 1 && starts[0].url.contains("&b="),
            "expected one bound /auth/start:\n{}",
            hops_text(&b)
        );
        // Upstream got the original request target, query intact.
        let seen = last_seen_on(&s, "/src/main.rs")?;
        ensure!(
            seen.uri == path,
            "workspace saw {} instead of {path}",
            seen.uri
        );
        ensure!(seen.header("x-workspace-user") == Some("alice"), "{seen:?}");
        ensure!(seen.header("x-workspace-id") == Some("1"), "{seen:?}");
        ensure!(
            seen.header("x-workspace-user-id")
                .is_some_and(|v| !v.is_empty()),
            "{seen:?}"
        );
        // Cookies where and how the architecture says.
        let jar = b.jar.lock().unwrap().clone();
        let pass = jar
            .get(WS1, PASS)
            .with_context(|| format!("no {PASS} on {WS1}: {jar:#?}"))?;
        ensure!(
            pass.secure && pass.http_only && !pass.domain_attr && pass.path == "/",
            "pass cookie attributes: {}",
            pass.raw
        );
        ensure!(
            pass.same_site
                .as_deref()
                .is_some_and(|v| v.eq_ignore_ascii_case("lax")),
            "pass cookie must be SameSite=Lax: {}",
            pass.raw
        );
        let login = jar
            .get(AUTH_HOST, LOGIN)
            .with_context(|| format!("no {LOGIN} on {AUTH_HOST}"))?;
        ensure!(
            login.secure && login.http_only && !login.domain_attr,
            "login cookie: {}",
            login.raw
        );
        ensure!(
            jar.get(WS1, LOGIN).is_none(),
            "the login cookie must stay on the auth host"
        );
        // The login's one-time cookies end with it: the auth host's CSRF
        // (state) cookie and the workspace host's bind cookie.
        let leftovers: Vec<_> = jar
            .cookies
            .iter()
            .filter(|c| c.name.starts_with(CSRF) || c.name.contains("-bind"))
            .map(|c| format!("{} on {}", c.name, c.host))
            .collect();
        ensure!(
            leftovers.is_empty(),
            "login cookies left after the login: {leftovers:?}"
        );
        ensure!(
            jar.rejected.is_empty(),
            "cookies a browser refuses: {:?}",
            jar.rejected
        );
        Ok(())
    })
    .await
}

pub async fn second_host_needs_no_new_provider_login_and_gets_its_own_pass(
    kind: ControllerKind,
) -> anyhow::Result<()> {
    run(kind, "second-host", |s| async move {
        let b = s.browser("alice");
        visit(&s, &b, WS1, "/").await?;
        b.clear_hops();
        visit(&s, &b, WS2_A, "/second?q=2").await?;
        let p = provider_hops(&s, &b);
        ensure!(
            p.is_empty(),
            "second host went to the provider again: {p:#?}"
        );
        let pass1 = b.cookie(WS1, PASS).context("pass on ws-1")?;
        let pass2 = b.cookie(WS2_A, PASS).context("pass on the second host")?;
        ensure!(
            pass1 != pass2,
            "the second host got the same pass value as the first"
        );
        let seen = last_seen_on(&s, "/second")?;
        ensure!(seen.header("x-workspace-id") == Some("2"), "{seen:?}");
        Ok(())
    })
    .await
}

pub async fn query_transfer_mode_completes_the_login(kind: ControllerKind) -> anyhow::Result<()> {
    let mut options = StackOptions::new(kind, "query-transfer");
    options.transfer = Some("query".into());
    run_with(options, |s| async move {
        let b = s.browser("alice");
        visit(&s, &b, WS1, "/q?x=1").await?;
        let hops = b.hops();
        ensure!(
            hops.iter().any(|h| h.method == "GET"
                && h.url.starts_with(&s.url(WS1, "/.workspace-gate/callback?"))),
            "no GET transfer to the callback:\n{}",
            hops_text(&b)
        );
        visit(&s, &b, WS2_A, "/").await?;
        Ok(())
    })
    .await
}

pub async fn expired_access_token_is_refreshed_without_a_new_login(
    kind: ControllerKind,
) -> anyhow::Result<()> {
    let mut options = StackOptions::new(kind, "refresh");
    options.access_token_ttl = Some(2);
    run_with(options, |s| async move {
        let b = s.browser("alice");
        visit(&s, &b, WS1, "/").await?;
        let first_token = s
            .gitlab
            .calls()
            .last()
            .and_then(|c| c.authorization.clone())
            .context("the gitlab authorizer made no call at login")?;
        // Let the access token in the login cookie expire (a wait, not an
        // assertion on time), then ask for another workspace: authorizing
        // it needs GitLab, so the gate must refresh the token first.
        tokio::time::sleep(Duration::from_secs(4)).await;
        b.clear_hops();
        visit(&s, &b, WS2_A, "/after-expiry").await?;
        let p = provider_hops(&s, &b);
        ensure!(
            p.is_empty(),
            "an expired access token sent the browser back to the provider: {p:#?}"
        );
        let calls = s.gitlab.calls();
        let last = calls
            .last()
            .context("no GraphQL call for the second workspace")?;
        ensure!(last.status == 200, "last GraphQL call: {last:?}");
        ensure!(
            last.authorization.as_deref() != Some(first_token.as_str()),
            "the second workspace was authorized with the expired token; GraphQL calls: {:#?}",
            calls
                .iter()
                .map(|c| (
                    c.status,
                    c.authorization
                        .as_deref()
                        .map(|a| a.chars().take(20).collect::<String>())
                ))
                .collect::<Vec<_>>()
        );
        let m = s.gate.metrics().await?;
        let ok = metric_sum(&m, "workspace_gate_token_refreshes_total", &["ok"]);
        ensure!(ok >= 1.0, "no successful token refresh counted:\n{m}");
        Ok(())
    })
    .await
}

/// A pass past half its lifetime is renewed on the answer to a request it
/// allows, through the controller: a tab in use never meets an expired
/// pass. Before half its lifetime the answer sets none.
pub async fn a_pass_in_use_is_renewed_before_it_expires(
    kind: ControllerKind,
) -> anyhow::Result<()> {
    let mut options = StackOptions::new(kind, "pass-renewal");
    options.pass_ttl = Some("4s".into());
    run_with(options, |s| async move {
        let b = s.browser("alice");
        visit(&s, &b, WS1, "/").await?;
        let first = b.cookie(WS1, PASS).context("no pass after login")?;
        let r = b.fetch(&s.url(WS1, "/early")).await?;
        ensure!(r.status == 200, "{}", r.describe());
        ensure!(
            !r.set_cookies().iter().any(|c| c.starts_with(PASS)),
            "a fresh pass was renewed: {}",
            r.describe()
        );
        // Past half of the 4 s lifetime (whole seconds).
        tokio::time::sleep(Duration::from_millis(2_200)).await;
        let r = b.fetch(&s.url(WS1, "/later")).await?;
        ensure!(r.status == 200, "{}", r.describe());
        if kind == ControllerKind::TraefikIngressNginx {
            // Traefik's ingress-nginx provider copies only the listed
            // response headers onto the request and relays no cookie of an
            // allowing check: no renewal there (the README says so).
            ensure!(
                !r.set_cookies().iter().any(|c| c.starts_with(PASS)),
                "Traefik's ingress-nginx provider relayed a renewed pass: {}",
                r.describe()
            );
            return Ok(());
        }
        ensure!(
            r.set_cookies()
                .iter()
                .any(|c| c.starts_with(&format!("{PASS}="))),
            "no renewed pass on the allowed answer: {}",
            r.describe()
        );
        let renewed = b
            .cookie(WS1, PASS)
            .context("the renewed pass was not kept")?;
        ensure!(renewed != first, "the pass was not replaced");
        ensure!(
            expiry(&renewed)? > expiry(&first)?,
            "the renewed pass does not outlive the first"
        );
        // The renewed pass is what the browser sends now, and it is accepted.
        let r = b.fetch(&s.url(WS1, "/with-renewed")).await?;
        ensure!(r.status == 200, "{}", r.describe());
        let seen = last_seen_on(&s, "/with-renewed")?;
        ensure!(seen.header("x-workspace-user") == Some("alice"), "{seen:?}");
        Ok(())
    })
    .await
}

/// The `exp` claim of a pass.
fn expiry(pass: &str) -> anyhow::Result<u64> {
    use base64::Engine;
    let payload = pass.split('.').nth(1).context("not a signed token")?;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload)?;
    let v: serde_json::Value = serde_json::from_slice(&raw)?;
    v["exp"].as_u64().context("no exp")
}

/// A form sent from a tab whose pass has expired (a tab left alone past
/// `session.pass_ttl`, so no renewal came) is never replayed: without care
/// ingress-nginx's sign-in redirect turns it into a `GET` of the form's
/// address after a silent re-login, its fields lost. Through every
/// controller the browser ends on a page that says the form was not
/// delivered and offers to sign in again; the form's address never reaches
/// the workspace, and the offered link signs in again.
pub async fn a_form_sent_after_the_pass_expired_is_never_replayed(
    kind: ControllerKind,
) -> anyhow::Result<()> {
    let mut options = StackOptions::new(kind, "form-after-expiry");
    options.pass_ttl = Some("2s".into());
    run_with(options, |s| async move {
        let b = s.browser("alice");
        visit(&s, &b, WS1, "/").await?;
        // Past the pass's whole lifetime (whole seconds), unused.
        tokio::time::sleep(Duration::from_millis(3_200)).await;
        b.clear_hops();
        let r = b
            .submit(&s.url(WS1, "/submit"), &[("note", "written before lunch")])
            .await?;
        ensure!(
            !s.echo
                .seen()
                .iter()
                .any(|seen| seen.uri.starts_with("/submit")),
            "the form's address reached the workspace:\n{}",
            hops_text(&b)
        );
        ensure!(
            r.status == 401
                && r.body.contains("was not delivered")
                && r.body.contains("href=\"/.workspace-gate/start\""),
            "the browser did not land on the form-not-sent page: {}\nhops:\n{}",
            r.describe(),
            hops_text(&b)
        );
        // The way back works: signed in again, on the workspace.
        let r = b.navigate(&s.url(WS1, "/.workspace-gate/start")).await?;
        ensure!(
            r.status == 200 && r.url.as_str() == s.url(WS1, "/"),
            "signing in again from the page did not land on the workspace: {}",
            r.describe()
        );
        Ok(())
    })
    .await
}
