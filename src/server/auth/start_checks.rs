//! What `/auth/start` does with a request on the auth host, decided
//! without I/O: refuse what is not a page load, refuse a bad return
//! address, hand an existing login over, or begin a new one.

use axum::http::{HeaderMap, header};

use super::current_login;
use crate::core::Settings;
use crate::core::rd::{self, RdError, Target};
use crate::core::request::is_navigation;
use crate::session::binding;
use crate::session::{Keyring, LoginClaims};

#[derive(Debug)]
pub(super) enum Start {
    /// ingress-nginx sends every 401 here, fetches and WebSockets
    /// included; only a top-level navigation may go on to the provider.
    SignInRequired,
    BadRd(RdError),
    /// No bind digest (`b`) from the target's workspace host, or a
    /// malformed one: the login must start there, which sets the bind
    /// cookie (an `auth-signin` pointing here directly, an old link).
    Bind(Target),
    /// Signed in already: authorize for the target and hand a transfer
    /// token over, bound to `b`.
    Transfer(Box<LoginClaims>, Target, String),
    /// Off to the provider, carrying `b` in the state.
    Begin(Target, String),
}

pub(super) fn check_start(
    settings: &Settings,
    keyring: &Keyring,
    headers: &HeaderMap,
    rd: &str,
    b: &str,
    now: u64,
) -> Start {
    let h = |n: header::HeaderName| headers.get(n).and_then(|v| v.to_str().ok());
    let navigation = is_navigation(
        "GET",
        h(header::ACCEPT),
        headers.get("sec-fetch-mode").and_then(|v| v.to_str().ok()),
        headers.contains_key(header::UPGRADE),
    );
    if !navigation {
        return Start::SignInRequired;
    }
    let target = match rd::validate(settings, rd) {
        Ok(t) => t,
        Err(e) => return Start::BadRd(e),
    };
    if !binding::is_digest(b) {
        return Start::Bind(target);
    }
    match current_login(settings, keyring, headers, now) {
        Some(login) => Start::Transfer(Box::new(login), target, b.to_string()),
        None => Start::Begin(target, b.to_string()),
    }
}

/// Most CSRF cookies one browser keeps for logins under way. A browser
/// that starts more (a flood of login links) has the ones it sent
/// cleared, so its auth-host cookies stay within a controller's header
/// buffers; only those unfinished logins then fail.
pub(super) const MAX_CSRF_SLOTS: usize = 8;

/// The CSRF cookie name of the login in `slot`.
pub(super) fn csrf_cookie_name(settings: &Settings, slot: &str) -> String {
    if slot.is_empty() {
        settings.csrf_cookie.clone()
    } else {
        format!("{}-{slot}", settings.csrf_cookie)
    }
}

/// The names of the per-login CSRF cookies `headers` carries.
pub(super) fn csrf_slots_sent(settings: &Settings, headers: &HeaderMap) -> Vec<String> {
    let prefix = format!("{}-", settings.csrf_cookie);
    let mut names = Vec::new();
    for value in headers.get_all(header::COOKIE) {
        let text = crate::core::cookies::header_text(value.as_bytes());
        for pair in text.split(';') {
            if let Some((name, _)) = pair.trim().split_once('=')
                && name.starts_with(&prefix)
            {
                names.push(name.to_string());
            }
        }
    }
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::super::testing::{NOW, headers, keyring, login_cookie, settings};
    use super::*;

    const RD: &str = "https://ws-1.workspaces.test/p?q=1";

    /// A bind digest as the workspace host's login start sends it.
    const B: &str = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFG";

    fn decide(h: &[(&str, &str)], rd: &str) -> String {
        decide_bound(h, rd, B)
    }

    fn decide_bound(h: &[(&str, &str)], rd: &str, b: &str) -> String {
        match check_start(
            &settings(),
            &keyring(),
            &headers(h.iter().copied()),
            rd,
            b,
            NOW,
        ) {
            Start::SignInRequired => "sign in required".into(),
            Start::BadRd(e) => format!("bad rd: {e}"),
            Start::Bind(t) => format!("bind on {}", t.host),
            Start::Transfer(login, t, b) => {
                format!("transfer {} to {} bound to {b}", login.who.username, t.host)
            }
            Start::Begin(t, b) => format!("begin for {} bound to {b}", t.host),
        }
    }

    /// Name, headers, `rd`, start of the expected step.
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str, &'a str);

    #[test]
    fn start_branches() {
        let login = login_cookie(NOW + 60);
        let expired = login_cookie(NOW - 1);
        let html = ("accept", "text/html");
        let cases: Vec<Case<'_>> = vec![
            (
                "a fetch",
                vec![("accept", "application/json")],
                RD,
                "sign in required",
            ),
            (
                "fetch mode wins over Accept",
                vec![html, ("sec-fetch-mode", "cors")],
                RD,
                "sign in required",
            ),
            (
                "a WebSocket",
                vec![html, ("upgrade", "websocket")],
                RD,
                "sign in required",
            ),
            (
                "not a navigation, bad rd: still only sign in required",
                vec![],
                "https://evil.test/",
                "sign in required",
            ),
            ("no rd", vec![html], "", "bad rd: missing"),
            ("foreign rd", vec![html], "https://evil.test/", "bad rd"),
            (
                "signed out",
                vec![html],
                RD,
                "begin for ws-1.workspaces.test",
            ),
            (
                "navigate mode",
                vec![("sec-fetch-mode", "navigate")],
                RD,
                "begin for ws-1.workspaces.test",
            ),
            (
                "signed in",
                vec![html, ("cookie", &login)],
                RD,
                "transfer alice to ws-1.workspaces.test",
            ),
            (
                "expired login: begin again",
                vec![html, ("cookie", &expired)],
                RD,
                "begin for ws-1.workspaces.test",
            ),
        ];
        for (name, h, rd, want) in cases {
            let got = decide(&h, rd);
            assert!(got.starts_with(want), "{name}: {got}");
        }
    }

    #[test]
    fn a_start_without_a_bind_digest_goes_to_the_workspace_host_first() {
        let html = ("accept", "text/html");
        let login = login_cookie(NOW + 60);
        for b in ["", "short", &format!("{}=", &B[..42]), &format!("{B}A")] {
            for h in [vec![html], vec![html, ("cookie", login.as_str())]] {
                assert_eq!(
                    decide_bound(&h, RD, b),
                    "bind on ws-1.workspaces.test",
                    "b = {b:?}"
                );
            }
        }
        // The digest is carried on, into the state or the transfer.
        assert!(decide(&[html], RD).ends_with(&format!("bound to {B}")));
        assert!(decide(&[html, ("cookie", &login)], RD).ends_with(&format!("bound to {B}")));
        // Refusals come before the bounce: no detour for a fetch or a bad rd.
        assert_eq!(
            decide_bound(&[("accept", "application/json")], RD, ""),
            "sign in required"
        );
        assert!(decide_bound(&[html], "https://evil.test/", "").starts_with("bad rd"));
    }

    #[test]
    fn per_login_csrf_cookies_are_named_by_slot_and_counted() {
        let s = settings();
        assert_eq!(csrf_cookie_name(&s, ""), s.csrf_cookie);
        assert_eq!(
            csrf_cookie_name(&s, "ab12"),
            format!("{}-ab12", s.csrf_cookie)
        );
        let cookie = format!(
            "{c}-a=1; other=2; {c}=legacy; {c}-b=3; {c}-a=4",
            c = s.csrf_cookie
        );
        assert_eq!(
            csrf_slots_sent(&s, &headers([("cookie", cookie.as_str())])),
            [
                format!("{}-a", s.csrf_cookie),
                format!("{}-b", s.csrf_cookie)
            ]
        );
    }
}
