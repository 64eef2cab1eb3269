//! The `owner-annotation` authorizer, for identity providers other than
//! GitLab: the workspace's owner (from its Service annotation or the
//! workspaces file) is compared with the OIDC subject or username.

use super::{AuthzError, Outcome};
use crate::oidc::Provider;
use crate::session::Identity;
use crate::workspaces::Workspace;

pub fn check_identity(who: &Identity, ws: &Workspace) -> Outcome {
    match &ws.owner {
        Some(o)
            if o.id == who.user_id || (!o.username.is_empty() && o.username == who.username) =>
        {
            Outcome::Allowed(who.clone())
        }
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
