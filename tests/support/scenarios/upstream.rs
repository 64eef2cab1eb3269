//! What reaches the workspace: real identity headers and never a gate
//! cookie, WebSocket upgrades, and nothing at all for an unauthenticated
//! fetch or a path under the reserved prefix.

use anyhow::{bail, ensure};

use super::{
    GATE_COOKIE_PREFIX, hops_text, last_seen_on, provider_hops, run, sign_in_refusal, visit,
};
use crate::support::client::{Browser, Mode};
use crate::support::controller::ControllerKind;
use crate::support::stack::{AUTH_HOST, WS1, WS3_BOB};
use crate::support::ws::{self, Handshake};

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

/// 16 KB of the workspace's own cookies (four of about 4 KB, the most a
/// browser keeps in one) reach the workspace byte for byte beside the pass,
/// and the pass does not. Sent as browsers send them: over HTTP/2 each
/// cookie is its own header field (ingress-nginx's default header buffers,
/// 8k per field, refuse a single 16 KB field before any check), over
/// HTTP/1.1 one `Cookie` line.
pub async fn sixteen_kilobytes_of_app_cookies_reach_the_workspace_intact(
    kind: ControllerKind,
) -> anyhow::Result<()> {
    run(kind, "big-app-cookies", |s| async move {
        let b = s.browser("alice");
        let h2 = visit(&s, &b, WS1, "/").await?.version == reqwest::Version::HTTP_2;
        let pass = cookie_header(&b, WS1).unwrap_or_default();
        let app: Vec<String> = (0..4)
            .map(|i| {
                let value: String = (0..4_090)
                    .map(|j| char::from(b'a' + ((i * 7 + j) % 26) as u8))
                    .collect();
                format!("app_{i}={value}")
            })
            .collect();
        let total: usize = app.iter().map(String::len).sum();
        ensure!(total >= 16 * 1024, "only {total} bytes of cookies");
        let line = format!("{pass}; {}", app.join("; "));
        let mut extra: Vec<(&str, &str)> = vec![("cookie", line.as_str())];
        if h2 {
            extra = vec![("cookie", pass.as_str())];
            extra.extend(app.iter().map(|c| ("cookie", c.as_str())));
        }
        for mode in [Mode::Navigate, Mode::Fetch] {
            let path = format!("/big-cookies-{mode:?}");
            let r = b.get(&s.url(WS1, &path), mode, &extra).await?;
            ensure!(
                r.status == 200,
                "{mode:?} with {total} bytes of app cookies: {}",
                r.describe()
            );
            let seen = last_seen_on(&s, &path)?;
            let received = seen.headers_named("cookie").join("; ");
            let mut pairs: Vec<&str> = received.split(';').map(str::trim).collect();
            pairs.sort_unstable();
            ensure!(
                pairs == app.iter().map(String::as_str).collect::<Vec<_>>(),
                "the workspace did not receive exactly the app's cookies ({} bytes of Cookie, \
                 names {:?})",
                received.len(),
                pairs
                    .iter()
                    .map(|p| p.split('=').next().unwrap_or(""))
                    .collect::<Vec<_>>()
            );
            ensure!(
                !received.contains(GATE_COOKIE_PREFIX),
                "the workspace received the gate's pass beside the app cookies"
            );
        }
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
                // Never the login redirect, behind ingress-nginx either.
                ensure!(
                    status == sign_in_refusal(kind) && location.is_none(),
                    "handshake without pass answered {status} {location:?}"
                );
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

fn cookie_header(b: &Browser, host: &str) -> Option<String> {
    b.jar.lock().unwrap().header_for(host, "/", true)
}

pub async fn unauthenticated_fetch_gets_401_and_never_reaches_the_provider(
    kind: ControllerKind,
) -> anyhow::Result<()> {
    run(kind, "fetch-401", |s| async move {
        let b = s.browser("alice");
        let r = b.fetch(&s.url(WS1, "/api/data")).await?;
        ensure!(
            r.status == sign_in_refusal(kind) && b.hops().len() == 1,
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
        ensure!(r.status == sign_in_refusal(kind), "{}", r.describe());
        // The auth host refuses a non-navigation too, should one reach it.
        let start = s.url(AUTH_HOST, "/auth/start");
        let r = b
            .get(
                &format!("{start}?rd={}", super::urlencode(&s.url(WS1, "/api/data"))),
                Mode::Fetch,
                &[("accept", "*/*"), ("sec-fetch-mode", "no-cors")],
            )
            .await?;
        ensure!(
            r.status == 401,
            "/auth/start for a non-navigation: {}",
            r.describe()
        );
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
