//! ID token rules (OpenID Connect Core 3.1.3.7, RFC 7515 4.1.11) as pure
//! functions: the JWS header and the claim set are checked here, the
//! signature in `Provider::validate_id_token`. No I/O; `now` is an argument.
//!
//! jsonwebtoken compares `iss` and `aud` only when they are present, leaves
//! `nbf` unchecked by default and never enforces `crit`, so none of its
//! claim checks are used: every rule below is ours and has a test.

use jsonwebtoken::{Algorithm, Header};
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;

use crate::session::{Identity, is_blank};

/// Seconds of clock skew allowed between the gate and the provider.
pub(crate) const LEEWAY: u64 = 30;

/// What an ID token must say to be accepted.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Expected<'a> {
    /// `oidc.issuer`, without a trailing '/'; `<issuer>/` is accepted too.
    pub issuer: &'a str,
    pub client_id: &'a str,
    /// The nonce sealed into this login's state.
    pub nonce: &'a str,
}

/// Why an ID token is refused; the text names the claim, never its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Refused(pub &'static str);

/// Asymmetric algorithms only: a symmetric one would let anyone holding the
/// client secret (or a `none` token, anyone at all) mint ID tokens.
pub(crate) fn check_header(header: &Header) -> Result<(), Refused> {
    if !matches!(
        header.alg,
        Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512
            | Algorithm::ES256
            | Algorithm::ES384
            | Algorithm::EdDSA
    ) {
        return Err(Refused("the algorithm is not accepted"));
    }
    // RFC 7515 4.1.11: a recipient that does not understand every listed
    // extension must refuse the JWS. The gate understands none, and an
    // empty list is not allowed either.
    if header.crit.is_some() {
        return Err(Refused(
            "the header has crit, and no extension is understood",
        ));
    }
    Ok(())
}

/// Checks the claims of an ID token whose signature has been verified.
pub(crate) fn check_claims(
    claims: &Map<String, Value>,
    want: &Expected<'_>,
    now: u64,
) -> Result<(), Refused> {
    match claims.get("iss").and_then(Value::as_str) {
        Some(iss) if iss == want.issuer || iss.strip_suffix('/') == Some(want.issuer) => {}
        Some(_) => return Err(Refused("iss is not the configured issuer")),
        None => return Err(Refused("iss is missing or not a single string")),
    }
    check_audience(claims, want.client_id)?;
    let exp = numeric_date(claims, "exp")?.ok_or(Refused("exp is missing"))?;
    if exp.saturating_add(LEEWAY) <= now {
        return Err(Refused("the token has expired"));
    }
    let iat = numeric_date(claims, "iat")?.ok_or(Refused("iat is missing"))?;
    if iat > now.saturating_add(LEEWAY) {
        return Err(Refused("iat is in the future"));
    }
    if let Some(nbf) = numeric_date(claims, "nbf")?
        && nbf > now.saturating_add(LEEWAY)
    {
        return Err(Refused("nbf is in the future"));
    }
    match claims.get("sub").and_then(Value::as_str) {
        Some(sub) if !is_blank(sub) => {}
        _ => return Err(Refused("sub is missing, blank or not a string")),
    }
    let nonce = claims.get("nonce").and_then(Value::as_str).unwrap_or("");
    if !bool::from(nonce.as_bytes().ct_eq(want.nonce.as_bytes())) {
        return Err(Refused("nonce does not match"));
    }
    Ok(())
}

/// The identity in a claim set: `sub` and `username_claim` (falling back to
/// `nickname`, then `sub`). `None` when `sub`, or the username claim that
/// applies, is blank or not a string: such an identity could match a
/// workspace whose owner is blank.
pub(crate) fn identity(claims: &Map<String, Value>, username_claim: &str) -> Option<Identity> {
    let sub = claims.get("sub")?.as_str().filter(|s| !is_blank(s))?;
    let username = match [username_claim, "nickname"]
        .iter()
        .find_map(|c| claims.get(*c).filter(|v| !v.is_null()))
    {
        Some(v) => v.as_str().filter(|u| !is_blank(u))?,
        None => sub,
    };
    Some(Identity {
        user_id: sub.to_string(),
        username: username.to_string(),
    })
}

/// `aud` is the client id or a list holding it; a token meant for several
/// audiences must name the gate as its authorized party (`azp`), and an
/// `azp` naming anyone else refuses the token.
fn check_audience(claims: &Map<String, Value>, client_id: &str) -> Result<(), Refused> {
    let several = match claims.get("aud") {
        Some(Value::String(aud)) if aud == client_id => false,
        Some(Value::Array(list)) if list.iter().all(Value::is_string) => {
            if !list.iter().any(|a| a.as_str() == Some(client_id)) {
                return Err(Refused("aud does not name the client"));
            }
            list.len() > 1
        }
        Some(Value::String(_)) => return Err(Refused("aud does not name the client")),
        Some(_) => return Err(Refused("aud is not a string or a list of strings")),
        None => return Err(Refused("aud is missing")),
    };
    match claims.get("azp") {
        Some(Value::String(azp)) if azp == client_id => Ok(()),
        Some(_) => Err(Refused("azp is not the client")),
        None if several => Err(Refused("aud has several values and azp is missing")),
        None => Ok(()),
    }
}

/// A NumericDate (seconds, possibly fractional); `None` when absent.
fn numeric_date(claims: &Map<String, Value>, name: &'static str) -> Result<Option<u64>, Refused> {
    let Some(v) = claims.get(name) else {
        return Ok(None);
    };
    match v.as_f64() {
        // Truncating a fraction away is within any leeway.
        Some(f) if f.is_finite() && f >= 0.0 => Ok(Some(f as u64)),
        _ => Err(match name {
            "exp" => Refused("exp is not a number"),
            "iat" => Refused("iat is not a number"),
            _ => Refused("nbf is not a number"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const NOW: u64 = 1_700_000_000;
    const WANT: Expected<'static> = Expected {
        issuer: "https://idp.test",
        client_id: "gate",
        nonce: "n-0123456789",
    };

    fn valid() -> Value {
        json!({
            "iss": "https://idp.test",
            "aud": "gate",
            "sub": "alice",
            "exp": NOW + 300,
            "iat": NOW,
            "nonce": "n-0123456789",
        })
    }

    /// The valid claim set with `changes` applied (`null` removes a claim).
    fn with(changes: Value) -> Map<String, Value> {
        let mut c = valid().as_object().unwrap().clone();
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                c.remove(k);
            } else {
                c.insert(k.clone(), v.clone());
            }
        }
        c
    }

    #[test]
    fn id_token_claims_table() {
        let accepted = [
            ("valid", json!({})),
            (
                "issuer with trailing slash",
                json!({"iss": "https://idp.test/"}),
            ),
            ("aud list of one", json!({"aud": ["gate"]})),
            (
                "aud list with azp",
                json!({"aud": ["gate", "other"], "azp": "gate"}),
            ),
            ("azp naming the client", json!({"azp": "gate"})),
            ("exp within leeway", json!({"exp": NOW - LEEWAY + 1})),
            (
                "fractional dates",
                json!({"exp": (NOW + 300) as f64 + 0.5, "iat": NOW as f64 + 0.25}),
            ),
            ("iat within leeway", json!({"iat": NOW + LEEWAY})),
            ("nbf in the past", json!({"nbf": NOW - 10})),
            ("nbf within leeway", json!({"nbf": NOW + LEEWAY})),
        ];
        for (name, changes) in accepted {
            assert_eq!(check_claims(&with(changes), &WANT, NOW), Ok(()), "{name}");
        }
        let refused = [
            ("no iss", json!({"iss": null})),
            (
                "iss array with the issuer",
                json!({"iss": ["https://idp.test"]}),
            ),
            ("other iss", json!({"iss": "https://evil.test"})),
            ("iss prefix", json!({"iss": "https://idp.test.evil"})),
            ("iss with two slashes", json!({"iss": "https://idp.test//"})),
            ("no aud", json!({"aud": null})),
            ("other aud", json!({"aud": "other"})),
            ("empty aud list", json!({"aud": []})),
            ("aud list without the client", json!({"aud": ["other"]})),
            ("aud number", json!({"aud": 7})),
            ("aud list with a number", json!({"aud": ["gate", 7]})),
            (
                "aud [client, other] without azp",
                json!({"aud": ["gate", "other"]}),
            ),
            (
                "aud [client, other], azp other",
                json!({"aud": ["gate", "other"], "azp": "other"}),
            ),
            ("azp other client", json!({"azp": "other"})),
            ("azp not a string", json!({"azp": ["gate"]})),
            ("no exp", json!({"exp": null})),
            ("expired", json!({"exp": NOW - LEEWAY})),
            ("exp string", json!({"exp": (NOW + 300).to_string()})),
            ("no iat", json!({"iat": null})),
            ("iat string", json!({"iat": NOW.to_string()})),
            ("iat far in the future", json!({"iat": NOW + 3600})),
            ("nbf in the future", json!({"nbf": NOW + 3600})),
            ("nbf negative", json!({"nbf": -1})),
            ("nbf string", json!({"nbf": "0"})),
            ("no sub", json!({"sub": null})),
            ("empty sub", json!({"sub": ""})),
            ("whitespace sub", json!({"sub": "   "})),
            ("sub number", json!({"sub": 42})),
            ("no nonce", json!({"nonce": null})),
            ("other nonce", json!({"nonce": "n-0123456780"})),
            ("nonce prefix", json!({"nonce": "n-012345678"})),
        ];
        for (name, changes) in refused {
            assert!(
                check_claims(&with(changes), &WANT, NOW).is_err(),
                "{name} was accepted"
            );
        }
    }

    #[test]
    fn refusals_name_the_claim_not_its_value() {
        let err = check_claims(&with(json!({"sub": "   "})), &WANT, NOW).unwrap_err();
        assert!(err.to_string().contains("sub"), "{err}");
        let err = check_claims(&with(json!({"aud": ["gate", "x"]})), &WANT, NOW).unwrap_err();
        assert!(err.to_string().contains("azp"), "{err}");
    }

    #[test]
    fn header_allows_asymmetric_algorithms_without_crit() {
        for alg in [
            Algorithm::RS256,
            Algorithm::PS256,
            Algorithm::ES256,
            Algorithm::EdDSA,
        ] {
            assert_eq!(check_header(&Header::new(alg)), Ok(()), "{alg:?}");
        }
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            assert!(check_header(&Header::new(alg)).is_err(), "{alg:?}");
        }
        for crit in [vec!["exp".to_string()], vec!["b64".to_string()], vec![]] {
            let mut h = Header::new(Algorithm::RS256);
            h.crit = Some(crit.clone());
            assert!(check_header(&h).is_err(), "crit {crit:?}");
        }
    }

    #[test]
    fn identity_refuses_blank_or_non_string_subject_and_username() {
        let id = |c: Value| identity(c.as_object().unwrap(), "preferred_username");
        let who = |sub: &str, name: &str| {
            Some(Identity {
                user_id: sub.into(),
                username: name.into(),
            })
        };
        assert_eq!(
            id(json!({"sub": "42", "preferred_username": "alice"})),
            who("42", "alice")
        );
        assert_eq!(id(json!({"sub": "42", "nickname": "al"})), who("42", "al"));
        assert_eq!(
            id(json!({"sub": "42", "preferred_username": null})),
            who("42", "42")
        );
        assert_eq!(id(json!({"sub": "42"})), who("42", "42"));
        for bad in [
            json!({}),
            json!({"sub": ""}),
            json!({"sub": " \t"}),
            json!({"sub": 42}),
            json!({"sub": null}),
            json!({"sub": "42", "preferred_username": ""}),
            json!({"sub": "42", "preferred_username": "  "}),
            json!({"sub": "42", "preferred_username": 7}),
            json!({"sub": "42", "nickname": ""}),
        ] {
            assert_eq!(id(bad.clone()), None, "{bad}");
        }
    }
}
