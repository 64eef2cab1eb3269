//! TEST DOUBLE of GitLab's GraphQL API (`POST /api/graphql`), just the part
//! the gate's `gitlab` authorizer uses: `currentUser { id username }` and
//! `workspace(id: "gid://gitlab/RemoteDevelopment::Workspace/<id>") { id user { id } }`.
//!
//! Tokens are real: the bearer token is resolved through the real OpenID
//! provider's userinfo endpoint (`<issuer>/me`); an invalid token gets HTTP
//! 401 like GitLab. Workspaces come from the same workspaces file the gate
//! reads (owner.id -> `gid://gitlab/User/<owner.id>`). Unlike GitLab, a
//! workspace is returned with its real owner even to other users (GitLab
//! answers `null` there), so the gate's id comparison is what is tested.
//! Not emulated: query parsing beyond these fields, variables typing,
//! rate limits, token scopes.
//!
//! Also `GET /api/v4/users/:id/keys` (public, as on GitLab): the SSH keys a
//! test gave a user with [`GitlabDouble::set_keys`]; an unknown user gets
//! 404. Not emulated: pagination beyond the first page, key titles and
//! dates, expired keys.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::Router;
use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

#[derive(Clone)]
pub struct GitlabDouble {
    pub addr: SocketAddr,
    pub calls: Arc<Mutex<Vec<Call>>>,
    keys: Keys,
}

/// User id -> OpenSSH public key lines.
type Keys = Arc<Mutex<HashMap<String, Vec<String>>>>;

#[derive(Debug, Clone)]
pub struct Call {
    pub authorization: Option<String>,
    pub query: String,
    pub status: u16,
}

#[derive(Clone)]
struct Ctx {
    issuer: String,
    workspaces_file: PathBuf,
    http: reqwest::Client,
    calls: Arc<Mutex<Vec<Call>>>,
    keys: Keys,
}

impl GitlabDouble {
    pub async fn start(issuer: &str, workspaces_file: PathBuf) -> anyhow::Result<GitlabDouble> {
        super::install_crypto_provider();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let calls: Arc<Mutex<Vec<Call>>> = Default::default();
        let keys: Keys = Default::default();
        let ctx = Ctx {
            issuer: issuer.to_string(),
            workspaces_file,
            http: reqwest::Client::builder().no_proxy().build()?,
            calls: calls.clone(),
            keys: keys.clone(),
        };
        let app = Router::new()
            .route("/api/graphql", post(graphql))
            .route("/api/v4/users/{id}/keys", get(user_keys))
            .with_state(ctx);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(GitlabDouble { addr, calls, keys })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// The SSH keys GitLab publishes for `user_id` from now on (an empty
    /// list: a known user without keys).
    pub fn set_keys(&self, user_id: &str, keys: &[String]) {
        self.keys
            .lock()
            .unwrap()
            .insert(user_id.to_string(), keys.to_vec());
    }
}

/// `GET /api/v4/users/:id/keys`, shaped like GitLab's answer.
async fn user_keys(State(ctx): State<Ctx>, Path(id): Path<String>) -> Response {
    let found = ctx.keys.lock().unwrap().get(&id).cloned();
    ctx.calls.lock().unwrap().push(Call {
        authorization: None,
        query: format!("GET /api/v4/users/{id}/keys"),
        status: if found.is_some() { 200 } else { 404 },
    });
    match found {
        Some(list) => {
            let body: Vec<Value> = list
                .iter()
                .enumerate()
                .map(|(i, k)| json!({"id": i + 1, "title": format!("key {i}"), "key": k}))
                .collect();
            axum::Json(body).into_response()
        }
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"message": "404 User Not Found"})),
        )
            .into_response(),
    }
}

async fn graphql(State(ctx): State<Ctx>, headers: HeaderMap, body: String) -> Response {
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let (status, answer) = answer(&ctx, authorization.as_deref(), &body).await;
    ctx.calls.lock().unwrap().push(Call {
        authorization,
        query: body,
        status: status.as_u16(),
    });
    (status, axum::Json(answer)).into_response()
}

async fn answer(ctx: &Ctx, authorization: Option<&str>, body: &str) -> (StatusCode, Value) {
    let unauthorized = (
        StatusCode::UNAUTHORIZED,
        json!({"errors": [{"message": "Invalid token"}]}),
    );
    let Some(token) = authorization.and_then(|a| {
        a.strip_prefix("Bearer ")
            .or_else(|| a.strip_prefix("bearer "))
    }) else {
        return unauthorized;
    };
    let Ok(req) = serde_json::from_str::<Value>(body) else {
        return (
            StatusCode::BAD_REQUEST,
            json!({"errors": [{"message": "body is not a GraphQL JSON request"}]}),
        );
    };
    // Resolve the token at the real provider.
    let userinfo = match ctx
        .http
        .get(format!("{}/me", ctx.issuer))
        .bearer_auth(token.trim())
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => r.json::<Value>().await.unwrap_or(Value::Null),
        _ => return unauthorized,
    };
    let Some(sub) = userinfo["sub"].as_str() else {
        return unauthorized;
    };
    let username = userinfo["preferred_username"].as_str().unwrap_or(sub);

    let query = req["query"].as_str().unwrap_or_default().to_string();
    // The workspace gid may be inline in the query or in a variable.
    let mut haystack = query.clone();
    haystack.push_str(&req["variables"].to_string());
    let mut data = serde_json::Map::new();
    if query.contains("currentUser") {
        data.insert(
            "currentUser".into(),
            json!({"id": format!("gid://gitlab/User/{sub}"), "username": username}),
        );
    }
    if query.contains("workspace") {
        let ws = workspace_gid(&haystack).and_then(|id| {
            let owner = owner_of(&ctx.workspaces_file, &id)?;
            Some(json!({
                "id": format!("gid://gitlab/RemoteDevelopment::Workspace/{id}"),
                "user": {"id": format!("gid://gitlab/User/{owner}")},
            }))
        });
        data.insert("workspace".into(), ws.unwrap_or(Value::Null));
    }
    (StatusCode::OK, json!({"data": data}))
}

fn workspace_gid(s: &str) -> Option<String> {
    let marker = "RemoteDevelopment::Workspace/";
    let i = s.find(marker)? + marker.len();
    let id: String = s[i..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    (!id.is_empty()).then_some(id)
}

fn owner_of(file: &PathBuf, id: &str) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    let v: serde_yaml::Value = serde_yaml::from_str(&text).ok()?;
    v.get("workspaces")?
        .as_sequence()?
        .iter()
        .find(|w| w.get("id").and_then(yaml_str).as_deref() == Some(id))?
        .get("owner")?
        .get("id")
        .and_then(yaml_str)
}

fn yaml_str(v: &serde_yaml::Value) -> Option<String> {
    match v {
        serde_yaml::Value::String(s) => Some(s.clone()),
        serde_yaml::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}
