//! Table-driven tests of `decide()`.

use super::*;
use crate::session::signed::sign;
use crate::session::{Identity, Keyring, PassClaims, TokenKind, TransferClaims};
use crate::workspaces::{HostPort, Owner, Snapshot, Workspace};

const NOW: u64 = 1_800_000_000;

fn settings() -> Settings {
    super::settings::test_settings()
}

fn keyring() -> Keyring {
    Keyring::new(&[vec![1u8; 32]]).unwrap()
}

fn ws(id: &str, host: &str, owner: &str) -> Workspace {
    Workspace {
        id: id.into(),
        name: format!("ws-{id}"),
        namespace: "ns".into(),
        owner: Some(Owner {
            id: owner.into(),
            username: owner.into(),
        }),
        hosts: vec![HostPort {
            host: host.into(),
            service_port: None,
        }],
        service: None,
        ssh: None,
    }
}

fn snapshot() -> Snapshot {
    Snapshot::build(vec![
        ws("1", "ws-1.workspaces.test", "alice"),
        ws("2", "ws-2.workspaces.test", "bob"),
    ])
    .unwrap()
}

fn pass_for(host: &str, wid: &str, user: &str) -> String {
    sign(
        &keyring(),
        TokenKind::Pass,
        &PassClaims {
            aud: host.into(),
            who: Identity {
                user_id: user.into(),
                username: user.into(),
            },
            wid: wid.into(),
            iat: NOW,
            exp: NOW + 60,
        },
    )
}

/// The bind secret of the browser the test transfers were issued to.
const BIND_SECRET: &str = "bind-secret-of-alices-browser";

/// That browser's bind cookie, as `Cookie` text.
fn bind_cookie() -> String {
    let b = crate::session::binding::digest(BIND_SECRET);
    format!(
        "{}={BIND_SECRET}",
        crate::session::binding::cookie_name(&settings().bind_cookie, &b)
    )
}

fn transfer_for(host: &str) -> String {
    transfer_bound(host, &crate::session::binding::digest(BIND_SECRET))
}

fn transfer_bound(host: &str, b: &str) -> String {
    sign(
        &keyring(),
        TokenKind::Transfer,
        &TransferClaims {
            aud: host.into(),
            who: Identity {
                user_id: "alice".into(),
                username: "alice".into(),
            },
            wid: "1".into(),
            path: "/src?x=1".into(),
            iat: NOW,
            exp: NOW + 60,
            jti: "j1".into(),
            b: b.into(),
        },
    )
}

fn req<'a>(host: &'a str, path: &'a str, cookie: Option<&'a str>) -> CheckRequest<'a> {
    CheckRequest {
        method: "GET",
        host,
        path,
        cookie,
        accept: Some("text/html"),
        ..Default::default()
    }
}

fn run(r: &CheckRequest<'_>) -> Decision {
    decide(&snapshot(), &keyring(), &settings(), NOW, r)
}

#[test]
fn valid_pass_allows_with_identity_and_strips_gate_cookies() {
    let c = format!(
        "a=1; __Host-workspace-gate-pass={}; b=2",
        pass_for("ws-1.workspaces.test", "1", "alice")
    );
    match run(&req("ws-1.workspaces.test", "/", Some(&c))) {
        Decision::Allow(a) => {
            assert_eq!(a.who.username, "alice");
            assert_eq!(a.workspace.id, "1");
            assert_eq!(a.upstream_cookie.as_deref(), Some("a=1; b=2"));
        }
        d => panic!("expected allow, got {d:?}"),
    }
}

#[test]
fn pass_for_other_host_is_rejected() {
    let c = format!(
        "__Host-workspace-gate-pass={}",
        pass_for("ws-1.workspaces.test", "1", "alice")
    );
    assert!(matches!(
        run(&req("ws-2.workspaces.test", "/", Some(&c))),
        Decision::SignIn { .. }
    ));
}

#[test]
fn transfer_token_is_not_a_pass() {
    let c = format!(
        "__Host-workspace-gate-pass={}",
        transfer_for("ws-1.workspaces.test")
    );
    assert!(matches!(
        run(&req("ws-1.workspaces.test", "/", Some(&c))),
        Decision::SignIn { .. }
    ));
}

#[test]
fn pass_is_not_a_transfer_token() {
    let p = pass_for("ws-1.workspaces.test", "1", "alice");
    let path = format!("/.workspace-gate/callback?token={p}");
    assert_eq!(
        run(&req("ws-1.workspaces.test", &path, None)).label(),
        "sign_in_failed"
    );
}

#[test]
fn transfer_token_sets_pass_and_returns_to_same_host_path() {
    let path = format!(
        "/.workspace-gate/callback?token={}",
        transfer_for("ws-1.workspaces.test")
    );
    let cookie = format!("a=1; {}", bind_cookie());
    match run(&req("ws-1.workspaces.test", &path, Some(&cookie))) {
        Decision::Redirect {
            location,
            set_cookies,
            redeems,
        } => {
            assert_eq!(location, "https://ws-1.workspaces.test/src?x=1");
            assert!(set_cookies[0].starts_with("__Host-workspace-gate-pass="));
            assert!(set_cookies[0].contains("Secure") && set_cookies[0].contains("HttpOnly"));
            // The bind cookie has served: cleared.
            let bind_name = bind_cookie().split('=').next().unwrap().to_string();
            assert!(set_cookies[1].starts_with(&format!("{bind_name}=;")));
            assert!(set_cookies[1].contains("Max-Age=0"));
            assert_eq!(set_cookies.len(), 2, "{set_cookies:?}");
            assert_eq!(redeems.as_deref(), Some("j1"));
        }
        d => panic!("expected redirect, got {d:?}"),
    }
    // The same token on another host is refused.
    assert_eq!(
        run(&req("ws-2.workspaces.test", &path, Some(&cookie))).label(),
        "sign_in_failed"
    );
}

#[test]
fn a_transfer_token_needs_the_bind_cookie_of_the_browser_that_started_the_login() {
    let host = "ws-1.workspaces.test";
    let path = format!("/.workspace-gate/callback?token={}", transfer_for(host));
    let name = bind_cookie().split('=').next().unwrap().to_string();
    let other = crate::session::binding::new_binding().0;
    for (case, cookie) in [
        ("no cookie at all", None),
        ("other cookies only", Some("a=1".to_string())),
        ("another browser's secret", Some(format!("{name}={other}"))),
        ("an empty secret", Some(format!("{name}="))),
        (
            "the digest instead of the secret",
            Some(format!(
                "{name}={}",
                crate::session::binding::digest(BIND_SECRET)
            )),
        ),
    ] {
        assert_eq!(
            run(&req(host, &path, cookie.as_deref())).label(),
            "sign_in_failed",
            "{case}"
        );
    }
    // A token without a digest (from a replica before binding) is never
    // redeemed, whatever cookie comes with it.
    let unbound = format!(
        "/.workspace-gate/callback?token={}",
        transfer_bound(host, "")
    );
    for cookie in [
        bind_cookie(),
        format!("{}-=x", settings().bind_cookie),
        format!("{}=x", settings().bind_cookie),
    ] {
        assert_eq!(
            run(&req(host, &unbound, Some(&cookie))).label(),
            "sign_in_failed",
            "{cookie}"
        );
    }
}

#[test]
fn the_login_start_on_a_workspace_host_sets_a_bind_cookie_and_sends_its_digest() {
    let host = "ws-1.workspaces.test";
    let rd = "https%3A%2F%2Fws-1.workspaces.test%2Fsrc%3Fx%3D1";
    let path = format!("/.workspace-gate/start?rd={rd}");
    let (location, cookie) = match run(&req(host, &path, None)) {
        Decision::Redirect {
            location,
            set_cookies,
            redeems: None,
        } => (location, set_cookies[0].clone()),
        d => panic!("expected a redirect, got {d:?}"),
    };
    let (name, rest) = cookie.split_once('=').unwrap();
    let secret = rest.split(';').next().unwrap();
    let b = location.split("&b=").nth(1).unwrap();
    assert_eq!(
        location,
        format!("https://workspaces.test/auth/start?rd={rd}&b={b}")
    );
    assert!(crate::session::binding::matches(secret, b));
    assert_eq!(
        name,
        crate::session::binding::cookie_name(&settings().bind_cookie, b)
    );
    assert!(cookie.contains("HttpOnly") && cookie.contains("Secure"));
    assert!(cookie.contains("Max-Age=600"));
    // Every start draws a new secret.
    let again = run(&req(host, &path, None));
    assert!(matches!(again, Decision::Redirect { ref location, .. } if !location.ends_with(b)));
    // A return address on another host, or none, lands on this host's root.
    for path in [
        "/.workspace-gate/start?rd=https%3A%2F%2Fws-2.workspaces.test%2F".to_string(),
        "/.workspace-gate/start?rd=https%3A%2F%2Fevil.test%2F".to_string(),
        "/.workspace-gate/start".to_string(),
    ] {
        match run(&req(host, &path, None)) {
            Decision::Redirect { location, .. } => assert!(
                location.starts_with(
                    "https://workspaces.test/auth/start?rd=https%3A%2F%2Fws-1.workspaces.test%2F&b="
                ),
                "{path}: {location}"
            ),
            d => panic!("{path}: {d:?}"),
        }
    }
}

#[test]
fn the_callback_without_a_token_is_the_hand_over_page_and_redeems_from_its_cookie() {
    let host = "ws-1.workspaces.test";
    let s = settings();
    match run(&req(host, "/.workspace-gate/callback", None)) {
        Decision::Handover { cookie } => assert_eq!(cookie, s.transfer_cookie),
        d => panic!("expected the hand-over page, got {d:?}"),
    }
    let token = transfer_for(host);
    let path = "/.workspace-gate/callback?redeem=1";
    let cookie = format!("{}={token}; {}", s.transfer_cookie, bind_cookie());
    match run(&req(host, path, Some(&cookie))) {
        Decision::Redirect {
            location,
            set_cookies,
            redeems,
        } => {
            assert_eq!(location, "https://ws-1.workspaces.test/src?x=1");
            assert_eq!(redeems.as_deref(), Some("j1"));
            assert!(
                set_cookies
                    .iter()
                    .any(|c| c.starts_with(&format!("{}=;", s.transfer_cookie))),
                "the transfer cookie is cleared: {set_cookies:?}"
            );
        }
        d => panic!("expected a redirect, got {d:?}"),
    }
    // The token without the bind cookie, or no token at all: refused.
    let alone = format!("{}={token}", s.transfer_cookie);
    assert_eq!(
        run(&req(host, path, Some(&alone))).label(),
        "sign_in_failed"
    );
    assert_eq!(
        run(&req(host, path, Some(&bind_cookie()))).label(),
        "sign_in_failed"
    );
}

#[test]
fn no_pass_navigation_starts_the_login_on_its_own_host() {
    match run(&req("ws-1.workspaces.test", "/src?x=1", None)) {
        Decision::SignIn { location } => assert_eq!(
            location,
            "https://ws-1.workspaces.test/.workspace-gate/start?rd=https%3A%2F%2Fws-1.workspaces.test%2Fsrc%3Fx%3D1"
        ),
        d => panic!("{d:?}"),
    }
}

#[test]
fn fetch_and_websocket_without_pass_get_401_not_redirect() {
    let mut r = req("ws-1.workspaces.test", "/api", None);
    r.accept = Some("application/json");
    assert_eq!(run(&r).label(), "unauthorized");
    let mut r = req("ws-1.workspaces.test", "/ws", None);
    r.upgrade = true;
    assert_eq!(run(&r).label(), "unauthorized");
}

#[test]
fn a_form_without_pass_is_refused_as_not_sent_never_sent_to_a_login() {
    let mut r = req("ws-1.workspaces.test", "/submit", None);
    r.method = "POST";
    r.sec_fetch_mode = Some("navigate");
    assert_eq!(run(&r).label(), "form_not_sent");
    // fetch() with POST stays a plain refusal.
    r.sec_fetch_mode = Some("cors");
    assert_eq!(run(&r).label(), "unauthorized");
    // The sign-in start that ingress-nginx sends it to says so too, and
    // starts a login for GET.
    let start = |m: &str| {
        let path =
            format!("/.workspace-gate/start?m={m}&rd=https%3A%2F%2Fws-1.workspaces.test%2Fsubmit");
        let r = req("ws-1.workspaces.test", &path, None);
        super::reserved::answer(&keyring(), &settings(), NOW, "ws-1.workspaces.test", &r).label()
    };
    assert_eq!(start("POST"), "form_not_sent");
    assert_eq!(start("PUT"), "form_not_sent");
    for m in ["GET", "HEAD", "$request_method", ""] {
        assert_eq!(start(m), "redirect", "m={m}");
    }
}

#[test]
fn unknown_host_and_foreign_port_are_refused() {
    assert_eq!(
        run(&req("ws-9.workspaces.test", "/", None)).label(),
        "unknown_host"
    );
    assert_eq!(
        run(&req("ws-1.workspaces.test:8443", "/", None)).label(),
        "unknown_host"
    );
}

#[test]
fn before_the_index_is_loaded_a_workspace_host_is_not_ready_not_unknown() {
    let c = format!(
        "__Host-workspace-gate-pass={}",
        pass_for("ws-1.workspaces.test", "1", "alice")
    );
    let d = decide(
        &Snapshot::default(),
        &keyring(),
        &settings(),
        NOW,
        &req("ws-1.workspaces.test", "/", Some(&c)),
    );
    assert_eq!(d.label(), "not_ready");
}

#[test]
fn workspace_replaced_or_reowned_refuses_old_pass() {
    let c = format!(
        "__Host-workspace-gate-pass={}",
        pass_for("ws-1.workspaces.test", "1", "alice")
    );
    let replaced = Snapshot::build(vec![ws("7", "ws-1.workspaces.test", "alice")]).unwrap();
    let d = decide(
        &replaced,
        &keyring(),
        &settings(),
        NOW,
        &req("ws-1.workspaces.test", "/", Some(&c)),
    );
    assert_eq!(d.label(), "forbidden");
    let reowned = Snapshot::build(vec![ws("1", "ws-1.workspaces.test", "mallory")]).unwrap();
    let d = decide(
        &reowned,
        &keyring(),
        &settings(),
        NOW,
        &req("ws-1.workspaces.test", "/", Some(&c)),
    );
    assert_eq!(d.label(), "forbidden");
    let removed = Snapshot::build(vec![]).unwrap();
    let d = decide(
        &removed,
        &keyring(),
        &settings(),
        NOW,
        &req("ws-1.workspaces.test", "/", Some(&c)),
    );
    assert_eq!(d.label(), "unknown_host");
}

#[test]
fn bearer_and_basic_credentials_go_to_the_authorizer() {
    let mut r = req("ws-1.workspaces.test", "/", None);
    r.authorization = Some("Bearer glpat-abc");
    match run(&r) {
        Decision::Bearer {
            token, workspace, ..
        } => {
            assert_eq!(token, "glpat-abc");
            assert_eq!(workspace.id, "1");
        }
        d => panic!("{d:?}"),
    }
    // user:token in Basic
    r.authorization = Some("Basic dXNlcjpnbHBhdC1hYmM=");
    assert!(matches!(run(&r), Decision::Bearer { ref token, .. } if token == "glpat-abc"));
    r.authorization = Some("Digest x");
    assert_eq!(run(&r).label(), "sign_in");
}

#[test]
fn sign_out_clears_pass_and_continues_at_auth_host() {
    match run(&req(
        "ws-1.workspaces.test",
        "/.workspace-gate/sign_out",
        None,
    )) {
        Decision::Redirect {
            location,
            set_cookies,
            ..
        } => {
            assert_eq!(location, "https://workspaces.test/auth/sign_out");
            assert!(set_cookies[0].contains("Max-Age=0"));
        }
        d => panic!("{d:?}"),
    }
}

#[test]
fn sign_out_chain_visits_every_host_then_ends() {
    let k = keyring();
    let s = settings();
    let first = reserved::next_sign_out_hop(
        &k,
        &s,
        NOW,
        vec![
            "ws-1.workspaces.test".into(),
            "ws-2.workspaces.test".into(),
            "evil.test".into(),
        ],
    );
    assert!(first.starts_with("https://ws-1.workspaces.test/.workspace-gate/sign_out?chain="));
    let path = &first["https://ws-1.workspaces.test".len()..];
    let Decision::Redirect { location, .. } = run(&req("ws-1.workspaces.test", path, None)) else {
        panic!()
    };
    assert!(location.starts_with("https://ws-2.workspaces.test/.workspace-gate/sign_out?chain="));
    let path = &location["https://ws-2.workspaces.test".len()..];
    let Decision::Redirect { location, .. } = run(&req("ws-2.workspaces.test", path, None)) else {
        panic!()
    };
    assert_eq!(location, "https://workspaces.test/auth/signed_out");
}

#[test]
fn a_pass_past_half_its_life_is_renewed_on_the_allowed_answer() {
    let pass_at = |iat: u64| {
        let p = sign(
            &keyring(),
            TokenKind::Pass,
            &PassClaims {
                aud: "ws-1.workspaces.test".into(),
                who: Identity {
                    user_id: "alice".into(),
                    username: "alice".into(),
                },
                wid: "1".into(),
                iat,
                exp: iat + 3600,
            },
        );
        format!("__Host-workspace-gate-pass={p}")
    };
    // One keyring throughout: it remembers the passes it verified.
    let ring = keyring();
    let renewed = |iat: u64| {
        let cookie = pass_at(iat);
        let r = req("ws-1.workspaces.test", "/", Some(&cookie));
        match decide(&snapshot(), &ring, &settings(), NOW, &r) {
            Decision::Allow(a) => a.renewed_pass,
            d => panic!("expected allow, got {d:?}"),
        }
    };
    // The test settings give passes an hour: renewed from half an hour on.
    assert_eq!(renewed(NOW - 60), None);
    assert_eq!(renewed(NOW - 1799), None);
    let cookie = renewed(NOW - 1800).expect("a renewed pass");
    // The same pass again: the renewal made for it, not a second signing.
    let again = renewed(NOW - 1800).expect("a renewed pass");
    assert!(std::sync::Arc::ptr_eq(&cookie, &again));
    assert!(cookie.starts_with("__Host-workspace-gate-pass="));
    assert!(cookie.contains("Max-Age=3600") && cookie.contains("HttpOnly"));
    // The renewed pass is a pass for the same host and user, from now.
    let value = cookie.split(';').next().unwrap().to_string();
    match run(&req("ws-1.workspaces.test", "/", Some(&value))) {
        Decision::Allow(a) => {
            assert_eq!(a.who.username, "alice");
            assert_eq!(a.renewed_pass, None, "a fresh pass is not renewed again");
        }
        d => panic!("the renewed pass is refused: {d:?}"),
    }
}
