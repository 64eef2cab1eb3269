//! The `gitlab` authorizer: the same question GitLab's own workspaces proxy
//! asks. With the user's token, GraphQL returns the current user and the
//! workspace; the user may enter iff the workspace's user is the current
//! user.

use serde::Deserialize;

use super::{AuthzError, Outcome};
use crate::session::Identity;
use crate::workspaces::Workspace;

pub struct Gitlab {
    http: reqwest::Client,
    endpoint: String,
}

#[derive(Deserialize)]
struct Answer {
    data: Option<Data>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Data {
    current_user: Option<User>,
    workspace: Option<WorkspaceNode>,
}

#[derive(Deserialize)]
struct User {
    id: String,
    #[serde(default)]
    username: Option<String>,
}

#[derive(Deserialize)]
struct WorkspaceNode {
    user: Option<User>,
}

impl Gitlab {
    pub fn new(http: reqwest::Client, base: &str) -> Self {
        Gitlab {
            http,
            endpoint: format!("{}/api/graphql", base.trim_end_matches('/')),
        }
    }

    pub async fn check(&self, token: &str, ws: &Workspace) -> Result<Outcome, AuthzError> {
        // Workspace ids come from Kubernetes annotations or a file; only
        // plain ids may be placed into the global id.
        if ws.id.is_empty()
            || !ws
                .id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Ok(Outcome::Denied);
        }
        let query = "query($id: RemoteDevelopmentWorkspaceID!) { currentUser { id username } workspace(id: $id) { id user { id } } }";
        let body = serde_json::json!({
            "query": query,
            "variables": { "id": format!("gid://gitlab/RemoteDevelopment::Workspace/{}", ws.id) },
        });
        let resp = self
            .http
            .post(&self.endpoint)
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .map_err(AuthzError::Http)?;
        match resp.status().as_u16() {
            200 => {}
            401 | 403 => return Ok(Outcome::InvalidToken),
            s => return Err(AuthzError::Status(s)),
        }
        let answer: Answer = crate::bounded::json(resp, crate::bounded::PROVIDER_ANSWER_LIMIT)
            .await
            .map_err(|e| AuthzError::Invalid(e.to_string()))?;
        let Some(data) = answer.data else {
            return Ok(Outcome::InvalidToken);
        };
        let Some(me) = data.current_user else {
            return Ok(Outcome::InvalidToken);
        };
        let owner = data.workspace.and_then(|w| w.user).map(|u| u.id);
        if owner.as_deref() != Some(me.id.as_str()) {
            return Ok(Outcome::Denied);
        }
        let user_id = me
            .id
            .strip_prefix("gid://gitlab/User/")
            .unwrap_or(&me.id)
            .to_string();
        Ok(Outcome::Allowed(Identity {
            username: me.username.unwrap_or_else(|| user_id.clone()),
            user_id,
        }))
    }
}
