//! Where `/auth/sign_out` sends the browser: through every workspace
//! host the login handed a pass to (each clears its own pass cookie),
//! then to the signed-out page.

use axum::http::HeaderMap;

use super::current_login;
use crate::core::Settings;
use crate::core::reserved::next_sign_out_hop;
use crate::session::Keyring;

pub(super) fn sign_out_location(
    settings: &Settings,
    keyring: &Keyring,
    headers: &HeaderMap,
    now: u64,
) -> String {
    let hosts = current_login(settings, keyring, headers, now)
        .map(|l| l.hosts)
        .unwrap_or_default();
    next_sign_out_hop(keyring, settings, now, hosts)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{NOW, headers, keyring, login_cookie_with_hosts, settings};
    use super::*;
    use crate::session::TokenKind;
    use crate::session::claims::SignOutClaims;
    use crate::session::signed::verify;

    fn location(cookie: Option<&str>) -> String {
        let h = headers(cookie.map(|c| ("cookie", c)));
        sign_out_location(&settings(), &keyring(), &h, NOW)
    }

    #[test]
    fn without_a_login_sign_out_ends_at_once() {
        let signed_out = "https://workspaces.test/auth/signed_out";
        assert_eq!(location(None), signed_out);
        let expired = login_cookie_with_hosts(NOW - 1, &["ws-1.workspaces.test"]);
        assert_eq!(location(Some(&expired)), signed_out);
        let none_visited = login_cookie_with_hosts(NOW + 60, &[]);
        assert_eq!(location(Some(&none_visited)), signed_out);
        let foreign = login_cookie_with_hosts(NOW + 60, &["evil.test"]);
        assert_eq!(location(Some(&foreign)), signed_out);
    }

    #[test]
    fn sign_out_visits_the_first_host_with_the_rest_in_the_chain() {
        let hosts = ["ws-1.workspaces.test", "evil.test", "ws-2.workspaces.test"];
        let cookie = login_cookie_with_hosts(NOW + 60, &hosts);
        let loc = location(Some(&cookie));
        let chain = loc
            .strip_prefix("https://ws-1.workspaces.test/")
            .and_then(|rest| rest.split_once("?chain="))
            .map(|(_, c)| c.to_string())
            .unwrap_or_else(|| panic!("{loc}"));
        let claims: SignOutClaims = verify(&keyring(), TokenKind::SignOut, &chain, NOW).unwrap();
        assert_eq!(
            claims.hosts,
            ["ws-1.workspaces.test", "ws-2.workspaces.test"]
        );
    }
}
