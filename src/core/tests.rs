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

fn transfer_for(host: &str) -> String {
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
    match run(&req("ws-1.workspaces.test", &path, None)) {
        Decision::Redirect {
            location,
            set_cookies,
            redeems,
        } => {
            assert_eq!(location, "https://ws-1.workspaces.test/src?x=1");
            assert!(set_cookies[0].starts_with("__Host-workspace-gate-pass="));
            assert!(set_cookies[0].contains("Secure") && set_cookies[0].contains("HttpOnly"));
            assert_eq!(redeems.as_deref(), Some("j1"));
        }
        d => panic!("expected redirect, got {d:?}"),
    }
    // The same token on another host is refused.
    let path = format!(
        "/.workspace-gate/callback?token={}",
        transfer_for("ws-1.workspaces.test")
    );
    assert_eq!(
        run(&req("ws-2.workspaces.test", &path, None)).label(),
        "sign_in_failed"
    );
}

#[test]
fn no_pass_navigation_goes_to_sign_in_with_rd() {
    match run(&req("ws-1.workspaces.test", "/src?x=1", None)) {
        Decision::SignIn { location } => assert_eq!(
            location,
            "https://workspaces.test/auth/start?rd=https%3A%2F%2Fws-1.workspaces.test%2Fsrc%3Fx%3D1"
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
