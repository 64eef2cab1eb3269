//! The first invariant of ARCHITECTURE.md, attacked through each real
//! controller: the host the check decides on is the host the controller
//! routes on. alice holds a pass for her `ws-1` and a token; every request
//! below names bob's `ws-3` to one reader and `ws-1` to another (request
//! line against `Host`, SNI, a repeated `Host`, client-sent
//! `X-Original-URL` / `X-Forwarded-*`, HTTP/2 `:authority` against `host`).
//! Each controller routes every workspace host to its own upstream port
//! (see `ControllerSetup::routes`), so the test sees which workspace a
//! request reached: none may reach `ws-3`, and an allowed one may only
//! reach `ws-1`.

use anyhow::{Context, ensure};

use super::controller::ControllerKind;
use super::raw::{self, RawResp};
use super::scenarios::{PASS, run_with, visit};
use super::stack::{StackOptions, WS1, WS3_BOB};

/// A hand-written request and what became of it.
struct Outcome {
    name: String,
    result: anyhow::Result<RawResp>,
}

impl Outcome {
    fn reached(&self) -> Option<&str> {
        self.result
            .as_ref()
            .ok()
            .and_then(|r| r.header("x-upstream"))
    }

    fn line(&self) -> String {
        match &self.result {
            Ok(r) => format!(
                "{:<44} {} upstream={}",
                self.name,
                r.status,
                r.header("x-upstream").unwrap_or("-")
            ),
            Err(e) => format!("{:<44} refused by the controller: {e:#}", self.name),
        }
    }
}

/// HTTP/1.1 requests naming two hosts, as (name, SNI, request).
fn http1_variants(port: u16, pass: &str, token: &str) -> Vec<(String, &'static str, String)> {
    let own = format!("{WS1}:{port}");
    let victim = format!("{WS3_BOB}:{port}");
    let cookie = format!("Cookie: {PASS}={pass}\r\n");
    let bearer = format!("Authorization: Bearer {token}\r\n");
    let get = |target: &str, host: &str, creds: &str| {
        format!(
            "GET {target} HTTP/1.1\r\nHost: {host}\r\n{creds}Accept: application/json\r\nConnection: close\r\n\r\n"
        )
    };
    let abs = format!("https://{victim}/secret");
    vec![
        (
            "absolute target, SNI ws-1".into(),
            WS1,
            get(&abs, &own, &cookie),
        ),
        (
            "absolute target, SNI ws-3".into(),
            WS3_BOB,
            get(&abs, &own, &cookie),
        ),
        (
            "absolute http:// target".into(),
            WS1,
            get(&format!("http://{victim}/secret"), &own, &cookie),
        ),
        (
            "absolute target without port".into(),
            WS1,
            get(&format!("https://{WS3_BOB}/secret"), &own, &cookie),
        ),
        (
            "absolute target, POST".into(),
            WS1,
            format!(
                "POST {abs} HTTP/1.1\r\nHost: {own}\r\n{cookie}Content-Type: text/plain\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"
            ),
        ),
        (
            "absolute target, WebSocket upgrade".into(),
            WS1,
            format!(
                "GET https://{victim}/ws HTTP/1.1\r\nHost: {own}\r\n{cookie}Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
            ),
        ),
        (
            "absolute target, Host with trailing dot".into(),
            WS1,
            get(&abs, &format!("{WS1}.:{port}"), &cookie),
        ),
        (
            "absolute target, Host in upper case".into(),
            WS1,
            get(&abs, &own.to_ascii_uppercase(), &cookie),
        ),
        (
            "absolute target, bearer token".into(),
            WS1,
            get(&abs, &own, &bearer),
        ),
        (
            "two Host headers, ws-3 first".into(),
            WS3_BOB,
            get("/secret", &format!("{victim}\r\nHost: {own}"), &cookie),
        ),
        (
            "two Host headers, ws-1 first".into(),
            WS1,
            get("/secret", &format!("{own}\r\nHost: {victim}"), &cookie),
        ),
        (
            "client-sent X-Original-URL and X-Forwarded-*".into(),
            WS3_BOB,
            get(
                "/secret",
                &victim,
                &format!(
                    "{cookie}X-Original-URL: https://{own}/secret\r\nX-Forwarded-Host: {own}\r\nX-Forwarded-Uri: /secret\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Method: GET\r\n"
                ),
            ),
        ),
        (
            "client-sent headers, bearer token".into(),
            WS3_BOB,
            get(
                "/secret",
                &victim,
                &format!(
                    "{bearer}X-Original-URL: https://{own}/secret\r\nX-Forwarded-Host: {own}\r\n"
                ),
            ),
        ),
    ]
}

/// Every request naming `ws-3` to one reader and alice's `ws-1` to another
/// is refused or served by `ws-1`; nothing reaches `ws-3`. alice's plain
/// requests to `ws-1` still pass.
pub async fn requests_naming_another_host_never_reach_it(
    kind: ControllerKind,
) -> anyhow::Result<()> {
    run_with(StackOptions::new(kind, "host-confusion"), |s| async move {
        let alice = s.browser("alice");
        visit(&s, &alice, WS1, "/").await?;
        let pass = alice.cookie(WS1, PASS).context("alice's pass on ws-1")?;
        let token = s.provider.real().user_tokens("alice").await?.access_token;
        let port = s.port;
        let own = format!("{WS1}:{port}");

        // The normal flow, by the same client: its bytes are not refused
        // for being hand-written.
        let controls = [
            ("origin-form to ws-1", format!("GET /own HTTP/1.1\r\nHost: {own}\r\n")),
            (
                "absolute target naming ws-1 with Host ws-1",
                format!("GET https://{own}/own-abs HTTP/1.1\r\nHost: {own}\r\n"),
            ),
        ];
        for (name, head) in controls {
            let req = format!(
                "{head}Cookie: {PASS}={pass}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
            );
            let r = raw::http1(&s.ca, port, WS1, &req).await?;
            ensure!(
                r.status == 200 && r.header("x-upstream") == Some(WS1),
                "{name}: expected 200 from ws-1, got {}",
                r.describe()
            );
        }

        let mut outcomes = Vec::new();
        for (name, sni, req) in http1_variants(port, &pass, &token) {
            let result = raw::http1(&s.ca, port, sni, &req).await;
            outcomes.push(Outcome { name, result });
        }
        let cookie = format!("{PASS}={pass}");
        let h2_variants = [
            ("HTTP/2 :authority ws-3, host ws-1", WS3_BOB, WS1, WS1),
            ("HTTP/2 :authority ws-1, host ws-3", WS1, WS3_BOB, WS1),
            ("HTTP/2 :authority ws-3, host ws-1, SNI ws-3", WS3_BOB, WS1, WS3_BOB),
        ];
        for (name, authority, host, sni) in h2_variants {
            let uri = format!("https://{authority}:{port}/secret-h2");
            let host = format!("{host}:{port}");
            let result = raw::http2(
                &s.ca,
                port,
                sni,
                &uri,
                &[
                    ("host", &host),
                    ("cookie", &cookie),
                    ("accept", "application/json"),
                ],
            )
            .await;
            outcomes.push(Outcome {
                name: name.into(),
                result,
            });
        }

        let table: Vec<String> = outcomes.iter().map(Outcome::line).collect();
        let table = table.join("\n");
        let wrong: Vec<&Outcome> = outcomes
            .iter()
            .filter(|o| match &o.result {
                Ok(r) => matches!(r.status, 200..=299 | 101) && o.reached() != Some(WS1),
                Err(_) => false,
            })
            .collect();
        ensure!(
            wrong.is_empty() && outcomes.iter().all(|o| o.reached() != Some(WS3_BOB)),
            "through {}, a request naming two hosts was let through to a host it was \
             not checked for:\n{table}",
            kind.name()
        );
        let at_bob = s.echo.seen_by(WS3_BOB);
        ensure!(
            at_bob.is_empty(),
            "through {}, requests reached bob's ws-3: {at_bob:#?}\n{table}",
            kind.name()
        );
        if kind == ControllerKind::Nginx {
            // Refused by the gate, not only by nginx, and counted as such.
            let metrics = s.gate.metrics().await?;
            ensure!(
                metrics.lines().any(|l| l.starts_with("workspace_gate_checks_total")
                    && l.contains("controller=\"nginx\"")
                    && l.contains("decision=\"host_mismatch\"")
                    && !l.ends_with(" 0")),
                "no nginx check counted as host_mismatch:\n{metrics}"
            );
        }
        // Whatever the controller did with them, alice's pass still works.
        let r = alice.fetch(&s.url(WS1, "/after")).await?;
        ensure!(r.status == 200, "alice on ws-1 afterwards: {}", r.describe());
        eprintln!("{}:\n{table}", kind.name());
        Ok(())
    })
    .await
}
