//! The `owner-annotation` authorizer, for identity providers other than
//! GitLab: the workspace's owner (from its Service annotation or the
//! workspaces file) is compared with the OIDC subject. Only the subject:
//! OpenID Connect Core 5.7 warns that `preferred_username` and the like are
//! neither unique nor stable, and the per-request check compares the
//! subject only too, so a login and every later request decide alike.

use super::{AuthzError, Outcome};
use crate::oidc::Provider;
use crate::session::{Identity, is_blank};
use crate::workspaces::Workspace;

/// Allowed when the owner's id equals the user id (the OIDC subject). The
/// username is shown, never compared. A blank value on either side never
/// matches: the sources refuse blank owners and identities, and this holds
/// even if one slips through.
pub fn check_identity(who: &Identity, ws: &Workspace) -> Outcome {
    match &ws.owner {
        Some(o) if !is_blank(&o.id) && o.id == who.user_id => Outcome::Allowed(who.clone()),
        _ => Outcome::Denied,
    }
}

/// Resolves a bearer token through the provider's userinfo endpoint.
pub async fn check_token(
    provider: &Provider,
    token: &str,
    ws: &Workspace,
) -> Result<Outcome, AuthzError> {
    match provider.userinfo(token).await {
        Ok(claims) => match provider.identity(&claims) {
            Some(who) => Ok(check_identity(&who, ws)),
            None => Ok(Outcome::InvalidToken),
        },
        Err(crate::oidc::OidcError::Provider {
            status: 400 | 401 | 403,
            ..
        }) => Ok(Outcome::InvalidToken),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workspaces::Owner;

    fn ws(id: &str, username: &str) -> Workspace {
        Workspace {
            id: "1".into(),
            name: "ws-1".into(),
            namespace: "ns".into(),
            owner: Some(Owner {
                id: id.into(),
                username: username.into(),
            }),
            hosts: Vec::new(),
            service: None,
            ssh: None,
        }
    }

    fn who(user_id: &str, username: &str) -> Identity {
        Identity {
            user_id: user_id.into(),
            username: username.into(),
        }
    }

    #[test]
    fn owner_matches_by_subject_only() {
        let alice = who("42", "alice");
        assert!(matches!(
            check_identity(&alice, &ws("42", "")),
            Outcome::Allowed(_)
        ));
        assert!(matches!(
            check_identity(&alice, &ws("42", "someone-else")),
            Outcome::Allowed(_)
        ));
        // `sub: mallory, preferred_username: alice` is not alice.
        let mallory = who("mallory", "alice");
        assert_eq!(
            check_identity(&mallory, &ws("42", "alice")),
            Outcome::Denied
        );
        assert_eq!(check_identity(&alice, &ws("7", "bob")), Outcome::Denied);
    }

    #[test]
    fn blank_owner_or_identity_never_matches() {
        for (owner_id, owner_name, user_id, username) in [
            ("", "", "", ""),
            ("", "bob", "", "alice"),
            ("  ", "", "  ", "alice"),
            ("7", "", "42", ""),
            ("7", " ", "42", " "),
            ("7", "\t", "42", "\t"),
        ] {
            assert_eq!(
                check_identity(&who(user_id, username), &ws(owner_id, owner_name)),
                Outcome::Denied,
                "owner {owner_id:?}/{owner_name:?} vs {user_id:?}/{username:?}"
            );
        }
    }
}
