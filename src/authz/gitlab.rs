//! The `gitlab` authorizer: the same question GitLab's own workspaces proxy
//! asks. With the user's token, GraphQL returns the current user and the
//! workspace; the user may enter iff the workspace's user is the current
//! user.

use std::sync::Arc;

use serde::Deserialize;

use super::{AuthzError, Outcome};
use crate::oidc::transport::{self, Transport};
use crate::session::Identity;
use crate::workspaces::Workspace;

pub(crate) struct Gitlab {
    http: Arc<dyn Transport>,
    endpoint: String,
}

#[derive(Deserialize)]
struct Answer {
    data: Option<Data>,
    /// GraphQL errors come with a 200; GitLab answers a bad token with 401.
    #[serde(default)]
    errors: Vec<serde_json::Value>,
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
    pub(crate) fn new(http: Arc<dyn Transport>, base: &str) -> Self {
        Gitlab {
            http,
            endpoint: format!("{}/api/graphql", base.trim_end_matches('/')),
        }
    }

    pub(crate) async fn check(&self, token: &str, ws: &Workspace) -> Result<Outcome, AuthzError> {
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
        let req = transport::request(
            http::Method::POST,
            &self.endpoint,
            Some(format!("Bearer {token}")),
            Some(("application/json", body.to_string().into_bytes())),
        )
        .map_err(AuthzError::Http)?;
        let resp = self.http.send(req).await.map_err(AuthzError::Http)?;
        match resp.status().as_u16() {
            200 => {}
            401 | 403 => return Ok(Outcome::InvalidToken),
            s => return Err(AuthzError::Status(s)),
        }
        let answer: Answer =
            transport::json(resp).map_err(|e| AuthzError::Invalid(e.to_string()))?;
        // An answer with errors is GitLab failing, not the token: an
        // outage, never cached as a refusal. Only the count is kept; the
        // messages may echo the query.
        if !answer.errors.is_empty() {
            return Err(AuthzError::Graphql(answer.errors.len()));
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oidc::transport::scripted::{Script, step, too_large};

    const GRAPHQL: &str = "https://gitlab.test/api/graphql";

    pub(crate) fn ws(id: &str) -> Workspace {
        Workspace {
            id: id.into(),
            name: "ws".into(),
            namespace: "ns".into(),
            owner: None,
            hosts: Vec::new(),
            service: None,
            ssh: None,
        }
    }

    fn gitlab(script: &Arc<Script>) -> Gitlab {
        Gitlab::new(script.clone(), "https://gitlab.test/")
    }

    fn alice() -> Outcome {
        Outcome::Allowed(Identity {
            user_id: "42".into(),
            username: "alice".into(),
        })
    }

    #[tokio::test]
    async fn graphql_answers_decide_the_outcome() {
        let me = r#""currentUser":{"id":"gid://gitlab/User/42","username":"alice"}"#;
        let cases: Vec<(&str, u16, String, Result<Outcome, &str>)> = vec![
            (
                "owner matches",
                200,
                format!(r#"{{"data":{{{me},"workspace":{{"id":"w","user":{{"id":"gid://gitlab/User/42"}}}}}}}}"#),
                Ok(alice()),
            ),
            (
                "owner differs",
                200,
                format!(r#"{{"data":{{{me},"workspace":{{"id":"w","user":{{"id":"gid://gitlab/User/7"}}}}}}}}"#),
                Ok(Outcome::Denied),
            ),
            (
                "workspace unknown to GitLab",
                200,
                format!(r#"{{"data":{{{me},"workspace":null}}}}"#),
                Ok(Outcome::Denied),
            ),
            (
                "no username: the user id stands in",
                200,
                r#"{"data":{"currentUser":{"id":"gid://gitlab/User/42"},"workspace":{"user":{"id":"gid://gitlab/User/42"}}}}"#.into(),
                Ok(Outcome::Allowed(Identity { user_id: "42".into(), username: "42".into() })),
            ),
            ("data null", 200, r#"{"data":null}"#.into(), Ok(Outcome::InvalidToken)),
            (
                "errors only",
                200,
                r#"{"errors":[{"message":"Internal server error"}]}"#.into(),
                Err("graphql"),
            ),
            (
                "errors and data null",
                200,
                r#"{"errors":[{"message":"timeout"}],"data":null}"#.into(),
                Err("graphql"),
            ),
            (
                "no current user",
                200,
                r#"{"data":{"currentUser":null,"workspace":null}}"#.into(),
                Ok(Outcome::InvalidToken),
            ),
            ("401", 401, String::new(), Ok(Outcome::InvalidToken)),
            ("403", 403, String::new(), Ok(Outcome::InvalidToken)),
            ("500", 500, String::new(), Err("status")),
            ("not JSON", 200, "<html>".into(), Err("invalid")),
        ];
        for (name, status, body, want) in cases {
            let script = Script::new([step("POST", GRAPHQL, status, &body)]);
            let got = gitlab(&script).check("tok", &ws("17")).await;
            match (&got, want) {
                (Ok(o), Ok(w)) => assert_eq!(o, &w, "{name}"),
                (Err(e), Err(label)) => assert_eq!(e.metric_label(), label, "{name}"),
                _ => panic!("{name}: {got:?}"),
            }
            script.assert_done();
        }
    }

    #[tokio::test]
    async fn the_query_carries_the_token_and_the_workspace_global_id() {
        let script = Script::new([step("POST", GRAPHQL, 401, "")]);
        gitlab(&script).check("tok", &ws("17")).await.unwrap();
        let auth = script.header(0, http::header::AUTHORIZATION);
        assert_eq!(auth.as_deref(), Some("Bearer tok"));
        let body: serde_json::Value = serde_json::from_str(&script.body(0)).unwrap();
        assert_eq!(
            body["variables"]["id"],
            "gid://gitlab/RemoteDevelopment::Workspace/17"
        );
    }

    #[tokio::test]
    async fn odd_workspace_ids_are_denied_without_asking() {
        for id in ["", "1/../2", "a b", "1\"}"] {
            let script = Script::new([]);
            assert_eq!(
                gitlab(&script).check("tok", &ws(id)).await.unwrap(),
                Outcome::Denied,
                "{id:?}"
            );
        }
    }

    #[tokio::test]
    async fn an_answer_past_the_bound_is_not_understood() {
        let script = Script::new([too_large("POST", GRAPHQL, 200)]);
        let err = gitlab(&script).check("tok", &ws("17")).await.unwrap_err();
        assert_eq!(err.metric_label(), "invalid");
    }

    #[tokio::test]
    async fn a_token_http_cannot_carry_fails_as_a_request_error() {
        let script = Script::new([]);
        let err = gitlab(&script).check("a\nb", &ws("17")).await.unwrap_err();
        assert_eq!(err.metric_label(), "http");
    }
}
