//! The end-to-end behaviours of issue 2, written once and run against every
//! controller fixture (`ControllerKind`). Each scenario starts its own
//! stack; on failure the error carries every component's logs.
//!
//! A test file instantiates all of them for one controller with
//! `scenario_tests!(ControllerKind::Nginx);`.
//!
//! Where a controller shapes the answer (ingress-nginx turns every 401 into
//! the `auth-signin` redirect), the scenario asserts what the client finally
//! gets and that nothing reached the provider or the workspace, which holds
//! for every controller.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use base64::Engine;

use super::client::{Browser, Form, Mode, Resp};
use super::controller::ControllerKind;
use super::stack::{AUTH_HOST, Stack, StackOptions, UNKNOWN, WS1, WS2_A, WS2_B, WS3_BOB};
use super::workspaces::default_workspaces;
use super::ws::{self, Handshake};

/// Cookie names in https mode (ARCHITECTURE.md, "Cookies").
pub const PASS: &str = "__Host-workspace-gate-pass";
pub const LOGIN: &str = "__Host-workspace-gate-login";
pub const CSRF: &str = "__Host-workspace-gate-csrf";
pub const GATE_COOKIE_PREFIX: &str = "workspace-gate-";

/// Instantiates every scenario as a `#[tokio::test]` for one controller.
#[macro_export]
macro_rules! scenario_tests {
    ($kind:expr) => {
        $crate::scenario_tests!(@each $kind;
            login_lands_on_original_url_with_query,
            second_host_needs_no_new_provider_login_and_gets_its_own_pass,
            other_users_workspace_is_refused_with_not_allowed_page,
            unknown_workspace_host_is_refused,
            pass_for_one_host_is_rejected_on_another,
            transfer_token_is_not_a_pass_and_pass_is_not_a_transfer_token,
            upstream_never_sees_gate_cookies_and_gets_real_identity_headers,
            websocket_works_after_login_and_is_refused_before,
            unauthenticated_fetch_gets_401_and_never_reaches_the_provider,
            sign_out_on_workspace_host_ends_access_there,
            sign_out_on_auth_host_ends_access_everywhere,
            provider_access_token_works_as_bearer_and_wrong_one_gets_401,
            workspace_removed_from_file_is_refused_with_the_old_pass,
            logs_contain_no_token_or_cookie_value,
            owner_change_refuses_the_old_pass,
            owner_annotation_mode_allows_the_owner_only,
            query_transfer_mode_completes_the_login,
            reserved_prefix_never_lets_a_request_through,
            expired_access_token_is_refreshed_without_a_new_login,
            metrics_count_checks_logins_and_authorizer_calls,
        );
    };
    (@each $kind:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                if let Err(e) = support::scenarios::$name($kind).await {
                    panic!("{e:?}");
                }
            }
        )*
    };
}

/// Starts a stack, runs `body`, and on failure attaches all logs.
async fn run<F, Fut>(kind: ControllerKind, label: &str, body: F) -> anyhow::Result<()>
where
    F: FnOnce(Arc<Stack>) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    run_with(StackOptions::new(kind, label), body).await
}

/// [`run`] with stack options (authorization mode, transfer mode, workspaces).
pub async fn run_with<F, Fut>(options: StackOptions, body: F) -> anyhow::Result<()>
where
    F: FnOnce(Arc<Stack>) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let kind = options.controller;
    let label = options.label.clone();
    let stack = Stack::start(options)
        .await
        .with_context(|| format!("starting the stack for {label} on {}", kind.name()))?;
    let stack = Arc::new(stack);
    // A bound only against hangs; no assertion depends on time.
    let result = tokio::time::timeout(Duration::from_secs(120), body(stack.clone())).await;
    let diagnostics = stack.diagnostics();
    match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.context(format!(
            "scenario {label} on {}\n{diagnostics}",
            kind.name()
        ))),
        Err(_) => bail!(
            "scenario {label} on {} hung for 120 s\n{diagnostics}",
            kind.name()
        ),
    }
}

// ---------------------------------------------------------------- helpers

/// Navigates to `https://<host><path>` and requires landing there (200,
/// same URL) with the echo page showing `user`.
pub async fn visit(s: &Stack, b: &Browser, host: &str, path: &str) -> anyhow::Result<Resp> {
    let url = s.url(host, path);
    let r = b.navigate(&url).await?;
    ensure!(
        r.status == 200 && r.url.as_str() == url,
        "navigating to {url} as {:?} did not land there: {}\nhops: {:#?}",
        b.user,
        r.describe(),
        b.hops()
    );
    let user = b.user.clone().unwrap_or_default();
    ensure!(
        r.body.contains(&format!(r#"<b id="user">{user}</b>"#)),
        "the workspace page does not show X-Workspace-User {user}: {}",
        r.describe()
    );
    Ok(r)
}

fn provider_hops(s: &Stack, b: &Browser) -> Vec<String> {
    b.hops()
        .into_iter()
        .filter(|h| h.url.starts_with(s.provider.issuer()))
        .map(|h| format!("{} {} -> {}", h.method, h.url, h.status))
        .collect()
}

fn hops_text(b: &Browser) -> String {
    b.hops()
        .iter()
        .map(|h| format!("  {} {} -> {}", h.method, h.url, h.status))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The echo's record of the last request that reached the workspace on `path`.
fn last_seen_on(s: &Stack, path_prefix: &str) -> anyhow::Result<super::echo::Seen> {
    s.echo
        .seen()
        .into_iter()
        .rev()
        .find(|r| r.uri.starts_with(path_prefix))
        .with_context(|| format!("no request for {path_prefix} reached the workspace"))
}

fn cookie_header(b: &Browser, host: &str) -> Option<String> {
    b.jar.lock().unwrap().header_for(host, "/", true)
}

/// Asks the auth host for a transfer to `host` without following it, and
/// returns the transfer token (from the form or the redirect).
async fn transfer_token_for(s: &Stack, b: &Browser, host: &str) -> anyhow::Result<String> {
    let start = format!(
        "{}?rd={}",
        s.url(AUTH_HOST, "/auth/start"),
        urlencode(&s.url(host, "/"))
    );
    let r = b.get(&start, Mode::Navigate, &[]).await?;
    if let Some(loc) = r.location() {
        let u = r.url.join(&loc)?;
        if let Some((_, t)) = u.query_pairs().find(|(k, _)| k == "token") {
            return Ok(t.to_string());
        }
        bail!(
            "/auth/start redirected without a transfer token: {}",
            r.describe()
        );
    }
    let f = Form::parse(&r.body).with_context(|| format!("no transfer form: {}", r.describe()))?;
    ensure!(
        f.action
            .starts_with(&s.url(host, "/.workspace-gate/callback")),
        "transfer form posts to {} instead of {host}'s callback",
        f.action
    );
    f.hidden
        .iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.clone())
        .with_context(|| format!("transfer form without `token`: {f:?}"))
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

pub fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

// -------------------------------------------------------------- scenarios

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

pub async fn other_users_workspace_is_refused_with_not_allowed_page(
    kind: ControllerKind,
) -> anyhow::Result<()> {
    run(kind, "other-user", |s| async move {
        let bob = s.browser("bob");
        visit(&s, &bob, WS3_BOB, "/").await?; // bob's own workspace works
        let before = s.echo.seen().len();
        let r = bob.navigate(&s.url(WS1, "/secret")).await?;
        ensure!(
            r.status == 403,
            "bob on alice's ws-1: {}\nhops:\n{}",
            r.describe(),
            hops_text(&bob)
        );
        ensure!(
            r.body.to_ascii_lowercase().contains("not allowed"),
            "403 without the \"not allowed\" page: {}",
            r.describe()
        );
        ensure!(
            r.header("content-type")
                .is_some_and(|c| c.contains("text/html")),
            "not-allowed page is not HTML: {}",
            r.describe()
        );
        ensure!(
            bob.cookie(WS1, PASS).is_none(),
            "bob got a pass for alice's host"
        );
        ensure!(
            s.echo.seen()[before..]
                .iter()
                .all(|r| !r.uri.starts_with("/secret")),
            "bob's request reached alice's workspace"
        );
        Ok(())
    })
    .await
}

pub async fn unknown_workspace_host_is_refused(kind: ControllerKind) -> anyhow::Result<()> {
    run(kind, "unknown-host", |s| async move {
        let b = s.browser("alice");
        visit(&s, &b, WS1, "/").await?;
        let r = b.navigate(&s.url(UNKNOWN, "/x")).await?;
        ensure!(
            r.status == 403,
            "unknown host: {}\nhops:\n{}",
            r.describe(),
            hops_text(&b)
        );
        ensure!(
            s.echo.seen().iter().all(|r| r.uri != "/x"),
            "reached the upstream"
        );
        Ok(())
    })
    .await
}

pub async fn pass_for_one_host_is_rejected_on_another(kind: ControllerKind) -> anyhow::Result<()> {
    run(kind, "pass-other-host", |s| async move {
        let alice = s.browser("alice");
        visit(&s, &alice, WS1, "/").await?;
        let pass = alice.cookie(WS1, PASS).context("pass on ws-1")?;
        // Same user, same cookie name, other hosts: alice's other workspace's
        // host, bob's workspace, a host nobody owns.
        for (host, allowed) in [
            (WS2_B, &[401u16][..]),
            (WS3_BOB, &[401, 403]),
            (UNKNOWN, &[401, 403]),
        ] {
            let thief = s.browser("alice");
            thief.jar.lock().unwrap().plant(host, PASS, &pass);
            let r = thief.fetch(&s.url(host, "/stolen")).await?;
            ensure!(
                allowed.contains(&r.status),
                "ws-1's pass on {host}: expected {allowed:?}, got {}\nhops:\n{}",
                r.describe(),
                hops_text(&thief)
            );
            ensure!(
                provider_hops(&s, &thief).is_empty(),
                "a fetch went to the provider"
            );
        }
        ensure!(
            s.echo.seen().iter().all(|r| r.uri != "/stolen"),
            "a pass for another host reached a workspace"
        );
        // The pass still works where it belongs.
        let r = alice.fetch(&s.url(WS1, "/own")).await?;
        ensure!(r.status == 200, "own host with own pass: {}", r.describe());
        Ok(())
    })
    .await
}

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
            r.status == 401,
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
            r.status == 401,
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

pub async fn upstream_never_sees_gate_cookies_and_gets_real_identity_headers(
    kind: ControllerKind,
) -> anyhow::Result<()> {
    run(kind, "identity-headers", |s| async move {
        let b = s.browser("alice");
        visit(&s, &b, WS1, "/").await?;
        b.jar
            .lock()
            .unwrap()
            .store(WS1, "/", true, "app_session=keep-me; Path=/");
        let forged_url = s.url(WS3_BOB, "/");
        let mut forged = vec![
            ("x-workspace-user", "mallory"),
            ("x-workspace-user-id", "666"),
            ("x-workspace-id", "3"),
            ("x-forwarded-host", WS3_BOB),
            ("x-original-url", forged_url.as_str()),
        ];
        if kind == ControllerKind::TraefikIngressNginx {
            // Traefik's ingress-nginx provider passes a client's
            // X-Original-URL into the check (nginx overwrites it): naming
            // another host, it makes the check refuse, and nothing passes.
            let r = b
                .get(&s.url(WS1, "/forged-url"), Mode::Fetch, &forged)
                .await?;
            ensure!(r.status == 403, "forged X-Original-URL: {}", r.describe());
            ensure!(
                s.echo.seen().iter().all(|r| r.uri != "/forged-url"),
                "a request with a forged X-Original-URL reached a workspace"
            );
            forged.pop();
        }
        let r = b.get(&s.url(WS1, "/forged"), Mode::Fetch, &forged).await?;
        ensure!(r.status == 200, "{}", r.describe());
        let seen = last_seen_on(&s, "/forged")?;
        ensure!(
            seen.headers_named("x-workspace-user") == vec!["alice"],
            "{seen:?}"
        );
        ensure!(
            seen.headers_named("x-workspace-id") == vec!["1"],
            "{seen:?}"
        );
        ensure!(
            seen.headers_named("x-workspace-user-id").len() == 1
                && seen.header("x-workspace-user-id") != Some("666"),
            "{seen:?}"
        );
        let cookies = seen.headers_named("cookie").join("; ");
        ensure!(
            cookies.contains("app_session=keep-me"),
            "the app's own cookie was lost: {seen:?}"
        );
        // Nothing the gate set, by name or value, ever reached the workspace.
        let secrets = b.secrets();
        for req in s.echo.seen() {
            for (k, v) in &req.headers {
                ensure!(
                    !(k.eq_ignore_ascii_case("cookie") && v.contains(GATE_COOKIE_PREFIX)),
                    "the workspace received a gate cookie on {}: {v}",
                    req.uri
                );
                if let Some(sec) = secrets.iter().find(|sec| v.contains(sec.as_str())) {
                    bail!(
                        "the workspace received a gate secret in {k} on {}: {}…",
                        req.uri,
                        &sec[..12]
                    );
                }
            }
            ensure!(
                req.header("authorization").is_none(),
                "Authorization reached the workspace: {req:?}"
            );
        }
        // The workspace's own HTTP auth (not a token the gate checks) passes
        // through untouched when the browser also holds a pass.
        let app_auth = "Basic YXBwLXVzZXI6YXBwLXBhc3N3b3Jk";
        let r = b
            .get(
                &s.url(WS1, "/app-auth"),
                Mode::Fetch,
                &[("authorization", app_auth)],
            )
            .await?;
        ensure!(
            r.status == 200,
            "pass + the app's own Authorization: {}",
            r.describe()
        );
        let seen = last_seen_on(&s, "/app-auth")?;
        ensure!(
            seen.headers_named("authorization") == vec![app_auth],
            "the app's own Authorization header did not reach it unchanged: {seen:?}"
        );
        Ok(())
    })
    .await
}

pub async fn websocket_works_after_login_and_is_refused_before(
    kind: ControllerKind,
) -> anyhow::Result<()> {
    run(kind, "websocket", |s| async move {
        let url = format!("wss://{WS1}:{}/ws", s.port);
        let origin = s.url(WS1, "");
        match ws::connect(&s.ca, s.port, &url, None, &origin).await? {
            Handshake::Open(_) => bail!("WebSocket opened without a pass"),
            Handshake::Refused { status, location } => {
                // ingress-nginx sends every 401 to auth-signin (302 to /auth/start).
                let ok = status == 401
                    || (status == 302
                        && location
                            .as_deref()
                            .is_some_and(|l| l.starts_with(&s.url(AUTH_HOST, "/auth/start"))));
                ensure!(ok, "handshake without pass answered {status} {location:?}");
            }
        }
        ensure!(
            s.echo.seen().iter().all(|r| r.uri != "/ws"),
            "an unauthenticated handshake reached the workspace"
        );

        let b = s.browser("alice");
        visit(&s, &b, WS1, "/").await?;
        let cookie = cookie_header(&b, WS1);
        let mut sock = match ws::connect(&s.ca, s.port, &url, cookie.as_deref(), &origin).await? {
            Handshake::Open(sock) => sock,
            Handshake::Refused { status, location } => {
                bail!("handshake with pass refused: {status} {location:?}")
            }
        };
        let hello = ws::next_text(&mut sock).await?;
        ensure!(hello == "hello alice", "first message {hello:?}");
        ws::send_text(&mut sock, "ping over nginx").await?;
        let back = ws::next_text(&mut sock).await?;
        ensure!(back == "ping over nginx", "echoed {back:?}");
        let seen = last_seen_on(&s, "/ws")?;
        ensure!(
            !seen
                .headers_named("cookie")
                .join(";")
                .contains(GATE_COOKIE_PREFIX),
            "gate cookie on the WebSocket upgrade: {seen:?}"
        );
        Ok(())
    })
    .await
}

pub async fn unauthenticated_fetch_gets_401_and_never_reaches_the_provider(
    kind: ControllerKind,
) -> anyhow::Result<()> {
    run(kind, "fetch-401", |s| async move {
        let b = s.browser("alice");
        let r = b.fetch(&s.url(WS1, "/api/data")).await?;
        ensure!(
            r.status == 401,
            "fetch without session: {}\nhops:\n{}",
            r.describe(),
            hops_text(&b)
        );
        let p = provider_hops(&s, &b);
        ensure!(p.is_empty(), "a fetch was sent to the provider: {p:#?}");
        ensure!(s.echo.seen().is_empty(), "reached the workspace");
        // Also a plain API client (curl-like: */*, no Sec-Fetch headers, no redirects).
        let r = b
            .get(
                &s.url(WS1, "/api/data"),
                Mode::Fetch,
                &[("accept", "*/*"), ("sec-fetch-mode", "no-cors")],
            )
            .await?;
        ensure!(r.status == 401 || r.status == 302, "{}", r.describe());
        if r.status == 302 {
            let loc = r.location().unwrap_or_default();
            ensure!(
                loc.starts_with(&s.url(AUTH_HOST, "/auth/start")),
                "302 not to the auth host: {loc}"
            );
            let r2 = b
                .get(
                    &loc,
                    Mode::Fetch,
                    &[("accept", "*/*"), ("sec-fetch-mode", "no-cors")],
                )
                .await?;
            ensure!(
                r2.status == 401,
                "/auth/start for a non-navigation: {}",
                r2.describe()
            );
        }
        Ok(())
    })
    .await
}

/// Signs out by navigating to `url` (GET, as a link would); falls back to a
/// POST form submission when the gate wants POST.
async fn sign_out(b: &Browser, url: &str) -> anyhow::Result<Resp> {
    let r = b.navigate(url).await?;
    if r.status == 405 {
        return b
            .send(reqwest::Method::POST, url, Mode::Navigate, &[], Some(&[]))
            .await;
    }
    Ok(r)
}

pub async fn sign_out_on_workspace_host_ends_access_there(
    kind: ControllerKind,
) -> anyhow::Result<()> {
    run(kind, "sign-out-ws", |s| async move {
        let b = s.browser("alice");
        visit(&s, &b, WS1, "/").await?;
        visit(&s, &b, WS2_A, "/").await?;
        let r = sign_out(&b, &s.url(WS1, "/.workspace-gate/sign_out")).await?;
        ensure!(r.status < 500, "sign-out: {}", r.describe());
        ensure!(
            b.cookie(WS1, PASS).is_none(),
            "ws-1's pass survived its sign-out\nhops:\n{}",
            hops_text(&b)
        );
        let r = b.fetch(&s.url(WS1, "/after")).await?;
        ensure!(r.status == 401, "ws-1 after its sign-out: {}", r.describe());
        Ok(())
    })
    .await
}

pub async fn sign_out_on_auth_host_ends_access_everywhere(
    kind: ControllerKind,
) -> anyhow::Result<()> {
    run(kind, "sign-out-auth", |s| async move {
        let b = s.browser("alice");
        visit(&s, &b, WS1, "/").await?;
        visit(&s, &b, WS2_A, "/").await?;
        let r = sign_out(&b, &s.url(AUTH_HOST, "/auth/sign_out")).await?;
        ensure!(
            r.status < 500,
            "sign-out: {}\nhops:\n{}",
            r.describe(),
            hops_text(&b)
        );
        ensure!(
            b.cookie(AUTH_HOST, LOGIN).is_none(),
            "login cookie survived sign-out"
        );
        for host in [WS1, WS2_A] {
            ensure!(
                b.cookie(host, PASS).is_none(),
                "{host}'s pass survived the auth-host sign-out\nhops:\n{}",
                hops_text(&b)
            );
            let r = b.fetch(&s.url(host, "/after")).await?;
            ensure!(r.status == 401, "{host} after sign-out: {}", r.describe());
        }
        // Coming back needs the provider again.
        b.clear_hops();
        visit(&s, &b, WS1, "/back").await?;
        ensure!(
            !provider_hops(&s, &b).is_empty(),
            "signed back in without the provider"
        );
        Ok(())
    })
    .await
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
        let status = if r.status == 302 {
            // ingress-nginx: every 401 becomes the auth-signin redirect.
            b.get(
                r.url.join(&r.location().unwrap_or_default())?.as_ref(),
                Mode::Fetch,
                &[],
            )
            .await?
            .status
        } else {
            r.status
        };
        ensure!(
            status == 401,
            "a wrong bearer token: {} (final {status})",
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

pub async fn workspace_removed_from_file_is_refused_with_the_old_pass(
    kind: ControllerKind,
) -> anyhow::Result<()> {
    run(kind, "removed", |s| async move {
        let b = s.browser("alice");
        visit(&s, &b, WS1, "/").await?;
        visit(&s, &b, WS2_A, "/").await?;
        let remaining: Vec<_> = default_workspaces(super::stack::DOMAIN)
            .into_iter()
            .filter(|w| w.id != "2")
            .collect();
        s.workspaces.write(&remaining)?;
        // The gate reloads on a file event; poll (bounded against hangs)
        // until the answer changes, then require it to be a refusal.
        let mut last = None;
        for _ in 0..200 {
            let r = b.fetch(&s.url(WS2_A, "/after-removal")).await?;
            if r.status != 200 {
                last = Some(r);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let r =
            last.context("the removed workspace was still allowed 20 s after the file changed")?;
        ensure!(
            r.status == 403,
            "removed workspace with the old pass: {}",
            r.describe()
        );
        let r = b.fetch(&s.url(WS1, "/still-there")).await?;
        ensure!(
            r.status == 200,
            "ws-1 after removing ws-2: {}",
            r.describe()
        );
        Ok(())
    })
    .await
}

pub async fn logs_contain_no_token_or_cookie_value(kind: ControllerKind) -> anyhow::Result<()> {
    run(kind, "log-secrets", |s| async move {
        let alice = s.browser("alice");
        visit(&s, &alice, WS1, "/a?token=visible-in-url-is-fine").await?;
        visit(&s, &alice, WS2_A, "/").await?;
        let _ = transfer_token_for(&s, &alice, WS2_B).await?;
        let bob = s.browser("bob");
        let _ = bob.navigate(&s.url(WS1, "/")).await?;
        let tokens = s.provider.real().user_tokens("alice").await?;
        let b = s.browser("nobody");
        let _ = b
            .get(
                &s.url(WS1, "/"),
                Mode::Fetch,
                &[("authorization", &format!("Bearer {}", tokens.access_token))],
            )
            .await?;
        let _ = b
            .get(
                &s.url(WS1, "/"),
                Mode::Fetch,
                &[("authorization", "Bearer wrong-token-0123456789abcdef")],
            )
            .await?;
        let _ = sign_out(&alice, &s.url(AUTH_HOST, "/auth/sign_out")).await?;

        let mut secrets = alice.secrets();
        secrets.extend(bob.secrets());
        secrets.extend(b.secrets());
        secrets.push(tokens.access_token.clone());
        secrets.extend(tokens.refresh_token.clone());
        secrets.extend(tokens.id_token.clone());
        secrets.push("wrong-token-0123456789abcdef".into());
        secrets.push(s.provider.client_secret().to_string());
        secrets.push(
            std::fs::read_to_string(s.dir().join("gate-key-1"))?
                .trim()
                .to_string(),
        );
        ensure!(
            secrets.len() > 8,
            "too few secrets collected: {}",
            secrets.len()
        );
        s.assert_logs_free_of(&secrets)?;
        ensure!(
            !s.gate.logs().trim().is_empty(),
            "the gate logged nothing at all"
        );
        Ok(())
    })
    .await
}

pub async fn owner_change_refuses_the_old_pass(kind: ControllerKind) -> anyhow::Result<()> {
    run(kind, "owner-change", |s| async move {
        let b = s.browser("alice");
        visit(&s, &b, WS2_A, "/").await?;
        // ws-2 changes hands: alice's pass for its host must stop working.
        let mut list = default_workspaces(super::stack::DOMAIN);
        for w in &mut list {
            if w.id == "2" {
                w.owner = "bob".into();
            }
        }
        s.workspaces.write(&list)?;
        let mut last = None;
        for _ in 0..200 {
            let r = b.fetch(&s.url(WS2_A, "/after-change")).await?;
            if r.status != 200 {
                last = Some(r);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let r = last.context("alice's pass still worked 20 s after ws-2 changed owner")?;
        ensure!(
            r.status == 401 || r.status == 403,
            "old pass after an owner change: {}",
            r.describe()
        );
        // And a fresh transfer is refused: alice no longer owns it.
        let r = b.navigate(&s.url(WS2_A, "/again")).await?;
        ensure!(
            r.status == 403,
            "alice re-entering bob's ws-2: {}\nhops:\n{}",
            r.describe(),
            hops_text(&b)
        );
        Ok(())
    })
    .await
}

pub async fn owner_annotation_mode_allows_the_owner_only(
    kind: ControllerKind,
) -> anyhow::Result<()> {
    let mut options = StackOptions::new(kind, "owner-annotation");
    options.authorization = "owner-annotation".into();
    run_with(options, |s| async move {
        let alice = s.browser("alice");
        visit(&s, &alice, WS1, "/?mode=owner").await?;
        let bob = s.browser("bob");
        let r = bob.navigate(&s.url(WS1, "/")).await?;
        ensure!(
            r.status == 403,
            "bob on alice's ws-1 (owner-annotation): {}",
            r.describe()
        );
        ensure!(
            s.gitlab.calls().is_empty(),
            "owner-annotation mode called GitLab: {:?}",
            s.gitlab.calls()
        );
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

pub async fn reserved_prefix_never_lets_a_request_through(
    kind: ControllerKind,
) -> anyhow::Result<()> {
    run(kind, "reserved-prefix", |s| async move {
        // Paths that start with the reserved prefix as the check sees them
        // (raw request target) but may resolve elsewhere after the
        // controller's normalisation, and the reserved paths themselves
        // without any token: none may reach the workspace.
        let paths = [
            "/.workspace-gate/..%2Fsecret-1",
            "/.workspace-gate/%2e%2e/secret-2",
            "/.workspace-gate/..%5Csecret-3",
            "/.workspace-gate/callback/..%2F..%2Fsecret-4",
            "/.workspace-gate/callback",
            "/.workspace-gate/sign_out",
            "/.workspace-gate/anything",
            "/.Workspace-Gate/secret-5",
            "//.workspace-gate/../secret-6",
        ];
        let b = s.browser("mallory");
        for p in paths {
            for mode in [Mode::Fetch, Mode::Navigate] {
                let r = b.get(&s.url(WS1, p), mode, &[]).await?;
                ensure!(
                    r.status != 200,
                    "{p} ({mode:?}) answered 200 without a pass: {}",
                    r.describe()
                );
            }
        }
        let reached: Vec<String> = s.echo.seen().into_iter().map(|r| r.uri).collect();
        ensure!(
            reached.is_empty(),
            "unauthenticated requests reached the workspace: {reached:?}"
        );
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

/// Sum of the samples of `metric` whose line contains every one of `labels`.
fn metric_sum(text: &str, metric: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(metric) && l[metric.len()..].starts_with(['{', ' ']))
        .filter(|l| labels.iter().all(|x| l.contains(x)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

pub async fn metrics_count_checks_logins_and_authorizer_calls(
    kind: ControllerKind,
) -> anyhow::Result<()> {
    run(kind, "metrics", |s| async move {
        let b = s.browser("alice");
        visit(&s, &b, WS1, "/").await?;
        visit(&s, &b, WS2_A, "/").await?;
        let _ = s.browser("bob").navigate(&s.url(WS1, "/")).await?;
        let m = s.gate.metrics().await?;
        let checks = metric_sum(&m, "workspace_gate_checks_total", &[]);
        ensure!(checks >= 4.0, "workspace_gate_checks_total = {checks}\n{m}");
        let completed = metric_sum(&m, "workspace_gate_logins_total", &["completed"]);
        ensure!(completed >= 2.0, "completed logins = {completed}\n{m}");
        let started = metric_sum(&m, "workspace_gate_logins_total", &["started"]);
        ensure!(started >= 2.0, "started logins = {started}\n{m}");
        let authz = metric_sum(&m, "workspace_gate_authorizer_calls_total", &[]);
        ensure!(authz >= 2.0, "authorizer calls = {authz}\n{m}");
        let hist = metric_sum(&m, "workspace_gate_check_duration_seconds_count", &[]);
        ensure!(hist >= 4.0, "check latency histogram count = {hist}\n{m}");
        let ws = metric_sum(&m, "workspace_gate_index_workspaces", &[]);
        ensure!(ws == 3.0, "index_workspaces = {ws}\n{m}");
        Ok(())
    })
    .await
}
