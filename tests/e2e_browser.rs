//! Headless Chromium completes the whole login through every controller
//! (nginx as ingress-nginx, Traefik, Envoy gRPC and HTTP mode) with TLS from
//! the test CA and `__Host-` cookies, lands on
//! the original workspace URL and sees its identity and a WebSocket.
//!
//! Needs /usr/bin/chromium and playwright-core (scripts/install-deps.sh);
//! when either is missing the test fails saying what to install.

mod support;

use std::process::Command;
use std::time::Duration;

use support::controller::ControllerKind;
use support::provider::{oidc_dir, which};
use support::stack::{DOMAIN, Stack, StackOptions, WS1, WS2_A, WS2_B};

async fn chromium_logs_in_through(kind: ControllerKind) {
    chromium_run(kind, false, false).await;
}

/// Logs in, then lets the workspace page set a domain-wide cookie whose
/// value is not ASCII (`x=café`), as a hostile page on any workspace host
/// can: the pass, the login cookie and a fresh login's CSRF cookie must
/// all still be read beside it.
async fn chromium_survives_a_non_ascii_cookie_through(kind: ControllerKind) {
    chromium_run(kind, true, false).await;
}

/// Before logging in, a page on the workspace origin calls `fetch()` and
/// opens a WebSocket: both are refused with a status the page can read,
/// never redirected to the login, and neither reaches the workspace; the
/// navigation that follows still goes to the login and lands.
async fn chromium_is_refused_without_a_redirect_before_login_through(kind: ControllerKind) {
    chromium_run(kind, false, true).await;
}

async fn chromium_run(kind: ControllerKind, poison: bool, refusals: bool) {
    let chromium = which("chromium")
        .or_else(|| which("chromium-browser"))
        .expect(
            "chromium is not installed: run scripts/install-deps.sh (apt-get install -y chromium)",
        );
    assert!(
        oidc_dir().join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed: run scripts/install-deps.sh (npm ci in tests/support/oidc)"
    );
    let node = which("node").expect("node is not installed: run scripts/install-deps.sh");
    let s = Stack::start(StackOptions::new(kind, "browser"))
        .await
        .expect("stack");
    let url = s.url(WS1, "/src/index.html?tab=2&q=a%20b");
    let opts = serde_json::json!({
        "chromium": chromium,
        "url": url,
        "user": "alice",
        "domain": DOMAIN,
        "spki": s.ca.spki_sha256,
        "profile": s.dir().join("chromium-profile"),
        "poison": poison,
        "secondUrl": s.url(WS2_A, "/second"),
        "thirdUrl": s.url(WS2_B, "/third"),
        "refusals": refusals,
    });
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/login.mjs");
    let mut cmd = tokio::process::Command::from(Command::new(node));
    cmd.arg(script).arg(opts.to_string()).kill_on_drop(true);
    // Bounded only against hangs.
    let out = tokio::time::timeout(Duration::from_secs(150), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("chromium run hung\n{}", s.diagnostics()))
        .expect("running node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("result "))
        .unwrap_or_else(|| {
            panic!(
                "no result from the browser script\nstdout:{stdout}\nstderr:{stderr}\n{}",
                s.diagnostics()
            )
        });
    let r: serde_json::Value = serde_json::from_str(line).expect("result JSON");
    let ctx = || {
        format!(
            "browser result: {}\n{}",
            serde_json::to_string_pretty(&r).unwrap(),
            s.diagnostics()
        )
    };
    assert_eq!(r["ok"], true, "{}", ctx());
    assert_eq!(r["finalUrl"], url.as_str(), "{}", ctx());
    assert_eq!(r["user"], "alice", "{}", ctx());
    assert_eq!(r["ws"], "hello alice", "WebSocket from the page: {}", ctx());
    if refusals {
        assert_refused_without_redirect(&s, kind, &r["refusals"], &ctx());
    }
    let cookies = r["cookies"].as_array().cloned().unwrap_or_default();
    let pass = cookies
        .iter()
        .find(|c| c["name"] == "__Host-workspace-gate-pass" && c["domain"] == WS1)
        .unwrap_or_else(|| panic!("Chromium holds no pass cookie for {WS1}: {}", ctx()));
    assert_eq!(pass["secure"], true);
    assert_eq!(pass["httpOnly"], true);
    assert_eq!(pass["sameSite"], "Lax");
    assert_eq!(pass["path"], "/");
    if !poison {
        assert!(
            cookies
                .iter()
                .any(|c| c["name"] == "__Host-workspace-gate-login" && c["domain"] == DOMAIN),
            "Chromium holds no login cookie on the auth host: {}",
            ctx()
        );
        return;
    }
    let p = &r["poisoned"];
    assert_eq!(
        p["cookieHeader"],
        true,
        "the page could not set x=café: {}",
        ctx()
    );
    assert_eq!(p["reload"], "alice", "the pass beside x=café: {}", ctx());
    assert_eq!(
        p["second"],
        "alice",
        "the login cookie beside x=café: {}",
        ctx()
    );
    assert_eq!(
        p["third"],
        "alice",
        "a fresh login beside x=café: {}",
        ctx()
    );
    assert_eq!(p["thirdUrl"], s.url(WS2_B, "/third"), "{}", ctx());
}

/// What [`chromium_is_refused_without_a_redirect_before_login_through`]
/// requires of the browser's `refusals` result.
fn assert_refused_without_redirect(
    s: &Stack,
    kind: ControllerKind,
    refusals: &serde_json::Value,
    ctx: &str,
) {
    // 401 where the controller relays the gate's answer; behind
    // ingress-nginx, which sends every 401 to the login, 403.
    let expected = match kind {
        ControllerKind::Nginx | ControllerKind::TraefikIngressNginx => 403,
        _ => 401,
    };
    let f = &refusals["fetch"];
    assert_eq!(f["status"], expected, "fetch() without a pass: {ctx}");
    assert_eq!(f["redirected"], false, "fetch() was redirected: {ctx}");
    assert_eq!(f["url"], s.url(WS1, "/api/data").as_str(), "{ctx}");
    assert_eq!(refusals["ws"]["opened"], false, "WebSocket opened: {ctx}");
    let handshakes = refusals["handshakes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        handshakes.iter().all(|h| *h == expected),
        "WebSocket handshake answered {handshakes:?}, not {expected}: {ctx}"
    );
    if kind == ControllerKind::Nginx {
        // nginx's own record of the handshake, whatever the browser tells.
        let logs = s.controller.logs();
        let lines: Vec<&str> = logs
            .lines()
            .filter(|l| l.contains("\"GET /ws?before-login "))
            .collect();
        assert!(
            !lines.is_empty() && lines.iter().all(|l| l.contains(&format!("\" {expected} "))),
            "nginx answered the handshake otherwise: {lines:#?}\n{ctx}"
        );
    }
    let reached: Vec<String> = s
        .echo
        .seen()
        .into_iter()
        .map(|r| r.uri)
        .filter(|u| u == "/api/data" || u == "/ws?before-login")
        .collect();
    assert!(
        reached.is_empty(),
        "reached the workspace: {reached:?}\n{ctx}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_fetch_and_websocket_without_a_pass_get_no_redirect_through_nginx() {
    chromium_is_refused_without_a_redirect_before_login_through(ControllerKind::Nginx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_fetch_and_websocket_without_a_pass_get_no_redirect_through_traefik() {
    chromium_is_refused_without_a_redirect_before_login_through(ControllerKind::Traefik).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_completes_login_through_nginx_with_tls_and_host_cookies() {
    chromium_logs_in_through(ControllerKind::Nginx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_completes_login_through_traefik() {
    chromium_logs_in_through(ControllerKind::Traefik).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_completes_login_through_traefik_checking_over_https() {
    chromium_logs_in_through(ControllerKind::TraefikHttps).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_completes_login_through_envoy_grpc() {
    chromium_logs_in_through(ControllerKind::EnvoyGrpc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_completes_login_through_envoy_http() {
    chromium_logs_in_through(ControllerKind::EnvoyHttp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_keeps_its_login_beside_a_non_ascii_cookie_through_nginx() {
    chromium_survives_a_non_ascii_cookie_through(ControllerKind::Nginx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_keeps_its_login_beside_a_non_ascii_cookie_through_traefik() {
    chromium_survives_a_non_ascii_cookie_through(ControllerKind::Traefik).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_keeps_its_login_beside_a_non_ascii_cookie_through_envoy_grpc() {
    chromium_survives_a_non_ascii_cookie_through(ControllerKind::EnvoyGrpc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_keeps_its_login_beside_a_non_ascii_cookie_through_envoy_http() {
    chromium_survives_a_non_ascii_cookie_through(ControllerKind::EnvoyHttp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_completes_login_through_traefik_reading_discoverys_objects_from_the_api_server() {
    chromium_logs_in_through(ControllerKind::TraefikKubernetes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_completes_login_through_traefiks_ingress_nginx_provider_reading_the_api_server() {
    chromium_logs_in_through(ControllerKind::TraefikIngressNginx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_completes_login_through_envoy_gateway_translating_discoverys_objects() {
    chromium_logs_in_through(ControllerKind::EnvoyGateway).await;
}
