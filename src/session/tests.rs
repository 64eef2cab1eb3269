//! Attacks on the token formats.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::Mac;

use super::claims::*;
use super::keyring::{Keyring, TokenKind};
use super::memo::PassMemo;
use super::sealed::{open, seal};
use super::signed::{TokenError, sign, verify, verify_pass};

const NOW: u64 = 1_800_000_000;

fn ring(keys: &[u8]) -> Keyring {
    Keyring::new(&keys.iter().map(|k| vec![*k; 32]).collect::<Vec<_>>()).unwrap()
}

fn pass(aud: &str, iat: u64, exp: u64) -> PassClaims {
    PassClaims {
        aud: aud.into(),
        who: Identity {
            user_id: "42".into(),
            username: "alice".into(),
        },
        wid: "1".into(),
        iat,
        exp,
    }
}

fn parts(t: &str) -> (String, String, String) {
    let v: Vec<&str> = t.split('.').collect();
    (v[0].into(), v[1].into(), v[2].into())
}

fn header_json(t: &str) -> serde_json::Value {
    serde_json::from_slice(&B64.decode(parts(t).0).unwrap()).unwrap()
}

fn with_header(t: &str, h: serde_json::Value) -> String {
    let (_, p, s) = parts(t);
    format!("{}.{p}.{s}", B64.encode(h.to_string()))
}

/// Verifies a pass both ways the gate does: the generic `verify` and the
/// check path's `verify_pass` (twice, so the second call goes through the
/// memo when the first remembered the token). All must agree.
fn check(r: &Keyring, t: &str) -> Result<PassClaims, TokenError> {
    let generic = verify::<PassClaims>(r, TokenKind::Pass, t, NOW);
    for _ in 0..2 {
        let fast = verify_pass(r, t, NOW);
        match (&generic, &fast) {
            (Ok(g), Ok(f)) => {
                assert_eq!((&g.aud, &g.who, &g.wid), (&f.aud, &*f.who, &f.wid));
                assert_eq!((g.iat, g.exp), (f.iat, f.exp));
            }
            (Err(_), Err(_)) => {}
            _ => panic!("verify and verify_pass disagree: {generic:?} vs {fast:?}"),
        }
    }
    generic
}

#[test]
fn a_valid_pass_verifies() {
    let r = ring(&[1]);
    let t = sign(&r, TokenKind::Pass, &pass("ws-1.w.test", NOW, NOW + 60));
    assert_eq!(check(&r, &t).unwrap().aud, "ws-1.w.test");
}

#[test]
fn alg_none_is_rejected() {
    let r = ring(&[1]);
    let t = sign(&r, TokenKind::Pass, &pass("h", NOW, NOW + 60));
    let mut h = header_json(&t);
    h["alg"] = "none".into();
    let forged = with_header(&t, h);
    assert_eq!(check(&r, &forged).unwrap_err(), TokenError::Algorithm);
    let (hh, p, _) = parts(&forged);
    assert!(check(&r, &format!("{hh}.{p}.")).is_err());
}

#[test]
fn algorithm_swap_is_rejected() {
    let r = ring(&[1]);
    let t = sign(&r, TokenKind::Pass, &pass("h", NOW, NOW + 60));
    for alg in ["HS512", "RS256", "ES256", "hs256"] {
        let mut h = header_json(&t);
        h["alg"] = alg.into();
        assert_eq!(
            check(&r, &with_header(&t, h)).unwrap_err(),
            TokenError::Algorithm
        );
    }
}

#[test]
fn unknown_or_injected_kid_is_rejected() {
    let r = ring(&[1]);
    let t = sign(&r, TokenKind::Pass, &pass("h", NOW, NOW + 60));
    for kid in ["nope", "../../etc/passwd", "' OR 1=1", ""] {
        let mut h = header_json(&t);
        h["kid"] = kid.into();
        assert_eq!(
            check(&r, &with_header(&t, h)).unwrap_err(),
            TokenError::UnknownKey
        );
    }
    // A key id injected together with a signature made by the attacker's
    // own key: the kid is not in the keyring, so the key is never used.
    let attacker = ring(&[9]);
    let forged = sign(&attacker, TokenKind::Pass, &pass("h", NOW, NOW + 60));
    assert_eq!(check(&r, &forged).unwrap_err(), TokenError::UnknownKey);
}

#[test]
fn expired_and_future_tokens_are_rejected() {
    let r = ring(&[1]);
    let t = sign(&r, TokenKind::Pass, &pass("h", NOW - 100, NOW - 1));
    assert_eq!(check(&r, &t).unwrap_err(), TokenError::Expired);
    let t = sign(&r, TokenKind::Pass, &pass("h", NOW - 100, NOW));
    assert_eq!(check(&r, &t).unwrap_err(), TokenError::Expired);
    let t = sign(&r, TokenKind::Pass, &pass("h", NOW + 3600, NOW + 7200));
    assert_eq!(check(&r, &t).unwrap_err(), TokenError::NotYetValid);
}

#[test]
fn modified_payload_is_rejected() {
    let r = ring(&[1]);
    let t = sign(&r, TokenKind::Pass, &pass("ws-1.w.test", NOW, NOW + 60));
    let (h, _, s) = parts(&t);
    let other = B64.encode(serde_json::to_vec(&pass("ws-2.w.test", NOW, NOW + 60)).unwrap());
    assert_eq!(
        check(&r, &format!("{h}.{other}.{s}")).unwrap_err(),
        TokenError::Signature
    );
    let mut bytes = t.into_bytes();
    let i = bytes.len() - 3;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    assert!(check(&r, &String::from_utf8(bytes).unwrap()).is_err());
}

#[test]
fn a_token_of_one_kind_is_never_another() {
    let r = ring(&[1]);
    let transfer = TransferClaims {
        aud: "h".into(),
        who: Identity {
            user_id: "42".into(),
            username: "a".into(),
        },
        wid: "1".into(),
        path: "/".into(),
        iat: NOW,
        exp: NOW + 60,
        jti: "j".into(),
        b: String::new(),
    };
    let t = sign(&r, TokenKind::Transfer, &transfer);
    assert_eq!(check(&r, &t).unwrap_err(), TokenError::WrongKind);
    // Even with the header relabelled, the per-kind subkey differs.
    let mut h = header_json(&t);
    h["typ"] = "wg-pass".into();
    assert_eq!(
        check(&r, &with_header(&t, h)).unwrap_err(),
        TokenError::Signature
    );
    let p = sign(&r, TokenKind::Pass, &pass("h", NOW, NOW + 60));
    assert!(verify::<TransferClaims>(&r, TokenKind::Transfer, &p, NOW).is_err());
}

#[test]
fn a_removed_key_no_longer_verifies_and_rotation_keeps_old_passes() {
    let old = ring(&[1]);
    let t = sign(&old, TokenKind::Pass, &pass("h", NOW, NOW + 60));
    // New key first: signs; old key second: still verifies.
    let rotated = ring(&[2, 1]);
    assert!(check(&rotated, &t).is_ok());
    let new = sign(&rotated, TokenKind::Pass, &pass("h", NOW, NOW + 60));
    assert_ne!(header_json(&new)["kid"], header_json(&t)["kid"]);
    assert!(check(&rotated, &new).is_ok());
    // Old key removed.
    let retired = ring(&[2]);
    assert_eq!(check(&retired, &t).unwrap_err(), TokenError::UnknownKey);
}

#[test]
fn a_token_signed_with_the_right_kid_but_another_secret_is_rejected() {
    let r = ring(&[1]);
    let t = sign(&r, TokenKind::Pass, &pass("h", NOW, NOW + 60));
    let (h, p, _) = parts(&t);
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&[7u8; 32]).unwrap();
    mac.update(format!("{h}.{p}").as_bytes());
    let sig = B64.encode(mac.finalize().into_bytes());
    assert_eq!(
        check(&r, &format!("{h}.{p}.{sig}")).unwrap_err(),
        TokenError::Signature
    );
}

#[test]
fn garbage_is_rejected_without_panicking() {
    let r = ring(&[1]);
    for t in [
        "",
        ".",
        "..",
        "a.b.c",
        "e30.e30.",
        "😀.😀.😀",
        &"A".repeat(10_000),
    ] {
        assert!(check(&r, t).is_err());
        assert!(open::<LoginClaims>(&r, TokenKind::Login, t, NOW).is_err());
    }
}

fn login(exp: u64) -> LoginClaims {
    LoginClaims {
        who: Identity {
            user_id: "42".into(),
            username: "alice".into(),
        },
        at: "secret-access".into(),
        at_exp: 0,
        rt: Some("secret-refresh".into()),
        hosts: vec![],
        iat: NOW,
        exp,
    }
}

#[test]
fn sealed_login_hides_provider_tokens_and_resists_tampering() {
    let r = ring(&[1]);
    let t = seal(&r, TokenKind::Login, &login(NOW + 60));
    assert!(!t.contains("secret"));
    let decoded = B64.decode(t.split_once('.').unwrap().1).unwrap();
    assert!(!String::from_utf8_lossy(&decoded).contains("secret"));
    assert_eq!(
        open::<LoginClaims>(&r, TokenKind::Login, &t, NOW)
            .unwrap()
            .at,
        "secret-access"
    );
    // Sealed as state, opened as login: refused.
    let st = seal(&r, TokenKind::State, &login(NOW + 60));
    assert!(open::<LoginClaims>(&r, TokenKind::Login, &st, NOW).is_err());
    let expired = seal(&r, TokenKind::Login, &login(NOW - 1));
    assert_eq!(
        open::<LoginClaims>(&r, TokenKind::Login, &expired, NOW).unwrap_err(),
        TokenError::Expired
    );
    let mut bytes = t.clone().into_bytes();
    let i = bytes.len() - 5;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    assert!(
        open::<LoginClaims>(
            &r,
            TokenKind::Login,
            &String::from_utf8(bytes).unwrap(),
            NOW
        )
        .is_err()
    );
    assert!(open::<LoginClaims>(&ring(&[2]), TokenKind::Login, &t, NOW).is_err());
}

#[test]
fn a_remembered_pass_is_served_from_the_memo_only_for_the_same_bytes() {
    let r = ring(&[1]);
    let t = sign(&r, TokenKind::Pass, &pass("ws-1.w.test", NOW, NOW + 60));
    let first = verify_pass(&r, &t, NOW).unwrap();
    let again = verify_pass(&r, &t, NOW).unwrap();
    assert!(
        std::sync::Arc::ptr_eq(&first, &again),
        "second check must hit the memo"
    );
    assert_eq!(r.passes().len(), 1);

    // The remembered token with one signature character changed.
    let (h, p, sig) = parts(&t);
    let last = sig.chars().last().unwrap();
    let other = if last == 'A' { 'B' } else { 'A' };
    let forged = format!("{h}.{p}.{}{other}", &sig[..sig.len() - 1]);
    assert_eq!(verify_pass(&r, &forged, NOW), Err(TokenError::Signature));
    // A payload changed under the remembered signature.
    let mut claims: serde_json::Value = serde_json::from_slice(&B64.decode(&p).unwrap()).unwrap();
    claims["wid"] = "2".into();
    let swapped = format!("{h}.{}.{sig}", B64.encode(claims.to_string()));
    assert_eq!(verify_pass(&r, &swapped, NOW), Err(TokenError::Signature));
    // A prefix or an extension of the remembered token.
    assert!(verify_pass(&r, &t[..t.len() - 1], NOW).is_err());
    assert!(verify_pass(&r, &format!("{t}A"), NOW).is_err());
    assert_eq!(r.passes().len(), 1, "refused tokens are never remembered");
}

#[test]
fn a_remembered_pass_still_expires() {
    let r = ring(&[1]);
    let t = sign(&r, TokenKind::Pass, &pass("h", NOW, NOW + 60));
    assert!(verify_pass(&r, &t, NOW).is_ok());
    assert_eq!(verify_pass(&r, &t, NOW + 60), Err(TokenError::Expired));
    assert_eq!(verify_pass(&r, &t, NOW + 3600), Err(TokenError::Expired));
}

#[test]
fn another_keyring_does_not_share_the_memo() {
    let a = ring(&[1]);
    let b = ring(&[2]);
    let t = sign(&a, TokenKind::Pass, &pass("h", NOW, NOW + 60));
    assert!(verify_pass(&a, &t, NOW).is_ok());
    assert_eq!(verify_pass(&b, &t, NOW), Err(TokenError::UnknownKey));
}

#[test]
fn the_memo_stays_within_its_capacity_and_drops_expired_passes_first() {
    let r = ring(&[1]);
    // 16 entries per shard.
    let cap = 16 * super::memo::SHARDS;
    let memo = PassMemo::new(cap);
    let entry = |exp: u64| {
        std::sync::Arc::new(super::VerifiedPass {
            aud: "h".into(),
            who: std::sync::Arc::new(Identity {
                user_id: "1".into(),
                username: "a".into(),
            }),
            wid: "1".into(),
            iat: NOW,
            exp,
            renewed: Default::default(),
        })
    };
    let tokens: Vec<String> = (0..2100)
        .map(|i| {
            sign(
                &r,
                TokenKind::Pass,
                &pass(&format!("ws-{i}"), NOW, NOW + 60),
            )
        })
        .collect();
    for t in &tokens[..2000] {
        memo.insert(t, entry(NOW + 1), NOW);
        assert!(memo.len() <= cap, "memo grew to {}", memo.len());
    }
    // A full shard starts over, so each holds between 1 and 16 entries
    // depending on how many passes hashed to it; the newest is always kept.
    assert!(
        memo.get(&tokens[1999]).is_some(),
        "the newest pass is remembered"
    );
    assert!(
        memo.len() >= super::memo::SHARDS,
        "every shard holds passes: {}",
        memo.len()
    );
    // Later every remembered pass has expired: a hundred new ones make room
    // by dropping expired entries, never each other.
    let later = NOW + 10;
    for t in &tokens[2000..] {
        memo.insert(t, entry(later + 60), later);
    }
    for t in &tokens[2000..] {
        assert!(memo.get(t).is_some_and(|p| p.exp > later));
    }
    assert!(memo.len() <= cap);
}
