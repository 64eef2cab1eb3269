//! The workspace owner's SSH public keys: from the workspaces file, and in
//! `gitlab` mode from GitLab's public `GET /api/v4/users/:id/keys`, kept
//! for `ssh.key_cache_ttl` so a removed key stops working soon after.

use std::sync::Arc;
use std::time::Duration;

use russh::keys::PublicKey;

use crate::oidc::transport::{self, Transport, TransportError};
use crate::workspaces::Workspace;

/// Largest page GitLab serves; users with more keys than this have the
/// first page's keys accepted.
const PER_PAGE: u32 = 100;

#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error("GitLab keys request failed: {0}")]
    Http(#[source] TransportError),
    #[error("GitLab answered {0} for the owner's keys")]
    Status(u16),
    #[error("GitLab's keys answer not understood: {0}")]
    Invalid(String),
}

#[derive(serde::Deserialize)]
struct GitlabKey {
    key: String,
}

pub struct OwnerKeys {
    /// `<gitlab_url>/api/v4` when keys come from GitLab.
    api: Option<String>,
    http: Arc<dyn Transport>,
    cache: moka::future::Cache<String, Arc<Vec<PublicKey>>>,
}

impl OwnerKeys {
    pub fn new(gitlab_url: Option<&str>, http: Arc<dyn Transport>, ttl: Duration) -> Self {
        OwnerKeys {
            api: gitlab_url.map(|u| format!("{}/api/v4", u.trim_end_matches('/'))),
            http,
            cache: moka::future::Cache::builder()
                .max_capacity(50_000)
                .time_to_live(ttl)
                .build(),
        }
    }

    /// Is `key` one of the owner's keys? Compares the key material only
    /// (not the comment).
    pub async fn holds(&self, ws: &Workspace, key: &PublicKey) -> Result<bool, KeysError> {
        let listed = ws.ssh.as_ref().map(|s| &s.owner_keys[..]).unwrap_or(&[]);
        if listed
            .iter()
            .filter_map(|l| PublicKey::from_openssh(l).ok())
            .any(|k| same(&k, key))
        {
            return Ok(true);
        }
        let (Some(api), Some(owner)) = (&self.api, &ws.owner) else {
            return Ok(false);
        };
        let keys = self.gitlab(api, &owner.id).await?;
        Ok(keys.iter().any(|k| same(k, key)))
    }

    async fn gitlab(&self, api: &str, user_id: &str) -> Result<Arc<Vec<PublicKey>>, KeysError> {
        if let Some(hit) = self.cache.get(user_id).await {
            return Ok(hit);
        }
        // Owner ids are numeric for GitLab; anything else has no keys there.
        if user_id.is_empty() || !user_id.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(Arc::new(Vec::new()));
        }
        let url = format!("{api}/users/{user_id}/keys?per_page={PER_PAGE}");
        let req =
            transport::request(http::Method::GET, &url, None, None).map_err(KeysError::Http)?;
        let answer = self.http.send(req).await.map_err(KeysError::Http)?;
        let status = answer.status().as_u16();
        let keys = match status {
            200 => {
                let body = answer
                    .into_body()
                    .map_err(|e| KeysError::Invalid(e.to_string()))?;
                let list: Vec<GitlabKey> =
                    serde_json::from_slice(&body).map_err(|e| KeysError::Invalid(e.to_string()))?;
                list.iter()
                    .filter_map(|k| PublicKey::from_openssh(k.key.trim()).ok())
                    .collect()
            }
            // A user GitLab does not know has no keys.
            404 => Vec::new(),
            s => return Err(KeysError::Status(s)),
        };
        let keys = Arc::new(keys);
        self.cache.insert(user_id.to_string(), keys.clone()).await;
        Ok(keys)
    }
}

fn same(a: &PublicKey, b: &PublicKey) -> bool {
    a.key_data() == b.key_data()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oidc::transport::scripted::{Script, step};
    use crate::workspaces::{Owner, WorkspaceSsh};

    const ALICE: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHAnU/SWCWDeSSqx/qWNDbjRT3h8uhRVyYVEZxeJChiL alice@laptop";
    const BOB: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBhDDB8AoNHxhxJsUc03SwTvNhaVGkU9gJYzJHdYTRWt bob";

    fn ws(owner: Option<&str>, listed: &[&str]) -> Workspace {
        Workspace {
            id: "1".into(),
            name: "ws-1".into(),
            namespace: "ns".into(),
            owner: owner.map(|id| Owner {
                id: id.into(),
                username: "alice".into(),
            }),
            hosts: Vec::new(),
            service: None,
            ssh: Some(WorkspaceSsh {
                backend: "127.0.0.1:22".into(),
                owner_keys: listed.iter().map(|s| s.to_string()).collect(),
            }),
        }
    }

    fn key(line: &str) -> PublicKey {
        PublicKey::from_openssh(line).unwrap()
    }

    #[tokio::test]
    async fn listed_keys_match_by_key_material_not_comment() {
        let keys = OwnerKeys::new(None, Script::new(vec![]), Duration::from_secs(60));
        let w = ws(Some("42"), &[ALICE]);
        let renamed = ALICE.replace("alice@laptop", "other-comment");
        assert!(keys.holds(&w, &key(&renamed)).await.unwrap());
        assert!(!keys.holds(&w, &key(BOB)).await.unwrap());
    }

    #[tokio::test]
    async fn gitlab_keys_are_fetched_once_per_ttl_and_errors_fail_closed() {
        let body = format!(r#"[{{"id":1,"title":"t","key":"{ALICE}"}}]"#);
        let script = Script::new(vec![
            step(
                "GET",
                "https://gitlab.test/api/v4/users/42/keys?per_page=100",
                200,
                &body,
            ),
            step(
                "GET",
                "https://gitlab.test/api/v4/users/43/keys?per_page=100",
                500,
                "oops",
            ),
        ]);
        let keys = OwnerKeys::new(
            Some("https://gitlab.test/"),
            script.clone(),
            Duration::from_secs(60),
        );
        let w = ws(Some("42"), &[]);
        assert!(keys.holds(&w, &key(ALICE)).await.unwrap());
        // Second call: from the cache (the script has no second step for 42).
        assert!(!keys.holds(&w, &key(BOB)).await.unwrap());
        assert!(matches!(
            keys.holds(&ws(Some("43"), &[]), &key(ALICE)).await,
            Err(KeysError::Status(500))
        ));
        // No owner known: no key can be the owner's.
        assert!(!keys.holds(&ws(None, &[]), &key(ALICE)).await.unwrap());
    }
}
