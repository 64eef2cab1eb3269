//! What `/auth/callback` checks before a login counts: the provider's
//! answer, the sealed state, the browser's CSRF cookie and the return
//! address ([`check_callback`], no I/O), then the code redemption and the
//! ID token ([`sign_in`], through the provider).

use axum::http::HeaderMap;
use subtle::ConstantTimeEq;

use super::{CallbackQuery, cookie};
use crate::core::Settings;
use crate::core::rd::{self, Target};
use crate::oidc::{Provider, TokenResponse};
use crate::session::sealed::open;
use crate::session::{Identity, Keyring, StateClaims, TokenKind};

/// Why a login is refused; each is a `reason` of the login metric.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Failure {
    /// The provider sent an error instead of a code; only its (cleaned)
    /// error code is kept, descriptions may echo input.
    ProviderError(String),
    MissingCode,
    /// The state is not ours, altered or expired.
    BadState,
    /// The state was issued to another browser.
    CsrfMismatch,
    BadRd,
    CodeExchange,
    NoIdToken,
    IdToken,
    /// The authorizer refused the tokens of a login just completed.
    TokenRefused,
}

impl Failure {
    pub(super) fn metric_label(&self) -> &'static str {
        match self {
            Failure::ProviderError(_) => "provider_error",
            Failure::MissingCode => "missing_code",
            Failure::BadState => "bad_state",
            Failure::CsrfMismatch => "csrf_mismatch",
            Failure::BadRd => "bad_rd",
            Failure::CodeExchange => "code_exchange",
            Failure::NoIdToken => "no_id_token",
            Failure::IdToken => "id_token",
            Failure::TokenRefused => "token_refused",
        }
    }
}

/// A callback that may go on to redeem its code. (No `Debug`: the
/// state holds the PKCE verifier and the nonce.)
pub(super) struct Validated<'q> {
    pub(super) code: &'q str,
    pub(super) state: StateClaims,
    pub(super) target: Target,
}

/// The checks of a callback, in order: the provider's error, a code and a
/// state, the state's seal and age at `now`, the CSRF cookie (compared in
/// constant time, any of the browser's values may match), the return
/// address.
pub(super) fn check_callback<'q>(
    settings: &Settings,
    keyring: &Keyring,
    q: &'q CallbackQuery,
    headers: &HeaderMap,
    now: u64,
) -> Result<Validated<'q>, Failure> {
    if let Some(err) = q.error.as_deref() {
        let code = err
            .chars()
            .take(64)
            .filter(|c| c.is_ascii_graphic())
            .collect();
        return Err(Failure::ProviderError(code));
    }
    let (Some(code), Some(raw_state)) = (q.code.as_deref(), q.state.as_deref()) else {
        return Err(Failure::MissingCode);
    };
    let state = open::<StateClaims>(keyring, TokenKind::State, raw_state, now)
        .map_err(|_| Failure::BadState)?;
    let csrf_name = super::start_checks::csrf_cookie_name(settings, &state.slot);
    let csrf_ok =
        cookie(headers, &csrf_name).any(|v| bool::from(v.as_bytes().ct_eq(state.csrf.as_bytes())));
    if !csrf_ok {
        return Err(Failure::CsrfMismatch);
    }
    let target = rd::validate(settings, &state.rd).map_err(|_| Failure::BadRd)?;
    Ok(Validated {
        code,
        state,
        target,
    })
}

/// Redeems the code and validates the ID token; the identity comes from
/// the ID token, completed from userinfo when the username is only there.
pub(super) async fn sign_in(
    provider: &Provider,
    code: &str,
    state: &StateClaims,
    now: u64,
) -> Result<(Identity, TokenResponse), Failure> {
    let tokens = match provider.exchange(code, &state.pkce).await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "code redemption failed");
            return Err(Failure::CodeExchange);
        }
    };
    let Some(id_token) = tokens.id_token.as_deref() else {
        return Err(Failure::NoIdToken);
    };
    let mut claims = match provider
        .validate_id_token(id_token, &state.nonce, now)
        .await
    {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "ID token refused");
            return Err(Failure::IdToken);
        }
    };
    if !claims.contains_key(provider.username_claim()) {
        // Some providers put the username only into userinfo.
        if let Ok(info) = provider.userinfo(&tokens.access_token).await
            && info.get("sub") == claims.get("sub")
        {
            claims.extend(info);
        }
    }
    let Some(who) = provider.identity(&claims) else {
        // A blank or non-string subject or username: refused like any
        // other bad ID token (userinfo only adds to a validated one).
        tracing::warn!("ID token refused: blank or non-string subject or username");
        return Err(Failure::IdToken);
    };
    Ok((who, tokens))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{NOW, headers, keyring, settings};
    use super::*;
    use crate::oidc::testing::{TOKEN, discovery, provider};
    use crate::oidc::transport::scripted::{Script, Step, step};
    use crate::session::sealed::seal;

    fn state_claims(rd: &str, csrf: &str, exp: u64) -> StateClaims {
        StateClaims {
            rd: rd.into(),
            pkce: "verifier".into(),
            nonce: "nonce".into(),
            csrf: csrf.into(),
            slot: String::new(),
            b: String::new(),
            iat: NOW - 10,
            exp,
        }
    }

    fn sealed(claims: &StateClaims) -> String {
        seal(&keyring(), TokenKind::State, claims)
    }

    fn query(code: Option<&str>, state: Option<&str>, error: Option<&str>) -> CallbackQuery {
        CallbackQuery {
            code: code.map(str::to_string),
            state: state.map(str::to_string),
            error: error.map(str::to_string),
        }
    }

    const CSRF: &str = "csrf-value-of-this-browser";
    const RD: &str = "https://ws-1.workspaces.test/src?x=1";

    /// Name, query, `Cookie` headers, expected outcome.
    type Case<'a> = (&'a str, CallbackQuery, Vec<&'a str>, Result<(), Failure>);

    #[test]
    fn each_check_of_the_callback_refuses_with_its_reason() {
        let s = settings();
        let good = sealed(&state_claims(RD, CSRF, NOW + 600));
        let csrf_cookie = format!("{}={CSRF}", s.csrf_cookie);
        let other_cookie = format!("{}=another-browser-value", s.csrf_cookie);
        let both = format!("{}=stale-value; {csrf_cookie}", s.csrf_cookie);
        let expired = sealed(&state_claims(RD, CSRF, NOW - 1));
        let elsewhere = sealed(&state_claims("https://evil.test/", CSRF, NOW + 600));
        let signed_as_login = seal(
            &keyring(),
            TokenKind::Login,
            &state_claims(RD, CSRF, NOW + 600),
        );
        let cases: Vec<Case<'_>> = vec![
            (
                "the provider's error wins over a code",
                query(Some("c"), Some(&good), Some("access_denied\n<x y>")),
                vec![&csrf_cookie],
                Err(Failure::ProviderError("access_denied<xy>".into())),
            ),
            (
                "no code",
                query(None, Some(&good), None),
                vec![&csrf_cookie],
                Err(Failure::MissingCode),
            ),
            (
                "no state",
                query(Some("c"), None, None),
                vec![&csrf_cookie],
                Err(Failure::MissingCode),
            ),
            (
                "state not sealed by us",
                query(Some("c"), Some("garbage"), None),
                vec![&csrf_cookie],
                Err(Failure::BadState),
            ),
            (
                "state expired",
                query(Some("c"), Some(&expired), None),
                vec![&csrf_cookie],
                Err(Failure::BadState),
            ),
            (
                "a login token is not a state",
                query(Some("c"), Some(&signed_as_login), None),
                vec![&csrf_cookie],
                Err(Failure::BadState),
            ),
            (
                "no CSRF cookie",
                query(Some("c"), Some(&good), None),
                vec![],
                Err(Failure::CsrfMismatch),
            ),
            (
                "another browser's CSRF cookie",
                query(Some("c"), Some(&good), None),
                vec![&other_cookie],
                Err(Failure::CsrfMismatch),
            ),
            (
                "return address outside the workspace domain",
                query(Some("c"), Some(&elsewhere), None),
                vec![&csrf_cookie],
                Err(Failure::BadRd),
            ),
            (
                "all good",
                query(Some("c"), Some(&good), None),
                vec![&csrf_cookie],
                Ok(()),
            ),
            (
                "any of the browser's CSRF values may match",
                query(Some("c"), Some(&good), None),
                vec![&both],
                Ok(()),
            ),
        ];
        for (name, q, cookies, want) in cases {
            let h = headers(cookies.iter().map(|c| ("cookie", *c)));
            let got = check_callback(&s, &keyring(), &q, &h, NOW).map(|v| {
                assert_eq!(v.code, "c");
                assert_eq!(v.target.url(&s), RD);
                assert_eq!(v.state.pkce, "verifier");
            });
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn every_failure_has_its_metric_reason() {
        let labels: Vec<_> = [
            Failure::ProviderError(String::new()),
            Failure::MissingCode,
            Failure::BadState,
            Failure::CsrfMismatch,
            Failure::BadRd,
            Failure::CodeExchange,
            Failure::NoIdToken,
            Failure::IdToken,
            Failure::TokenRefused,
        ]
        .iter()
        .map(Failure::metric_label)
        .collect();
        assert_eq!(
            labels,
            [
                "provider_error",
                "missing_code",
                "bad_state",
                "csrf_mismatch",
                "bad_rd",
                "code_exchange",
                "no_id_token",
                "id_token",
                "token_refused"
            ]
        );
    }

    #[tokio::test]
    async fn provider_answers_that_end_the_login() {
        let cases: Vec<(&str, Step, Failure)> = vec![
            (
                "code refused",
                step("POST", TOKEN, 400, r#"{"error":"invalid_grant"}"#),
                Failure::CodeExchange,
            ),
            (
                "provider down",
                step("POST", TOKEN, 502, ""),
                Failure::CodeExchange,
            ),
            (
                "no ID token",
                step("POST", TOKEN, 200, r#"{"access_token":"at"}"#),
                Failure::NoIdToken,
            ),
            (
                "ID token not a JWT",
                step(
                    "POST",
                    TOKEN,
                    200,
                    r#"{"access_token":"at","id_token":"not-a-jwt"}"#,
                ),
                Failure::IdToken,
            ),
        ];
        for (name, answer, want) in cases {
            let script = Script::new(discovery().into_iter().chain([answer]));
            let p = provider(script.clone());
            p.discover().await.unwrap();
            let st = state_claims(RD, CSRF, NOW + 600);
            let got = sign_in(&p, "c", &st, NOW).await.map(|_| ());
            assert_eq!(got, Err(want), "{name}");
            assert!(
                script.body(2).contains("code_verifier=verifier"),
                "{name}: the state's PKCE verifier is sent"
            );
            script.assert_done();
        }
    }
}
