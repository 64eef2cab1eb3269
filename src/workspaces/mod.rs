//! The workspace index: which host belongs to which workspace.
//!
//! Sources (a static YAML file, or Kubernetes discovery) build a complete
//! [`Snapshot`] and publish it through an [`IndexPublisher`]. Checks read the
//! current snapshot through an [`IndexReader`] without taking a lock across
//! any `.await`; a new snapshot replaces the old one atomically, so the index
//! is never seen half-built or empty between two lists.

pub mod file;
pub(crate) mod template;

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::watch;

/// The person a workspace belongs to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Owner {
    /// Identity-provider user id (GitLab's numeric user id, or the OIDC `sub`).
    pub id: String,
    /// Username, compared by the `owner-annotation` authorizer when set.
    #[serde(default)]
    pub username: String,
}

/// The Kubernetes object a workspace came from, when discovery found it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ServiceRef {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// The Service's pod selector: the workspace's pods (discovery's
    /// NetworkPolicy selects them). Empty when the Service selects none.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub selector: std::collections::BTreeMap<String, String>,
    /// The Service's target ports, where its pods listen (discovery's
    /// NetworkPolicy admits the controller to them), in Service port order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_ports: Vec<TargetPort>,
    /// Target port of the Service's SSH port (`routing.ssh_port`), where
    /// the workspace's sshd listens: discovery's NetworkPolicy admits the
    /// gate's own pods to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_target_port: Option<TargetPort>,
}

/// A Service's `targetPort`: a number or the name of a container port.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum TargetPort {
    Number(u16),
    Name(String),
}

/// One workspace port: the host it is reached on and the Service port behind it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HostPort {
    pub host: String,
    /// Service port the host routes to (absent for explicit hosts in a file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_port: Option<u16>,
}

/// A workspace as the gate knows it, whichever source produced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    /// GitLab workspace id (numeric, as in `gid://gitlab/RemoteDevelopment::Workspace/<id>`).
    pub id: String,
    pub name: String,
    pub namespace: String,
    /// Known owner; `None` when only the `gitlab` authorizer can tell.
    pub owner: Option<Owner>,
    /// Every host of the workspace, lower-case, one per port.
    pub hosts: Vec<HostPort>,
    pub service: Option<ServiceRef>,
    /// Where the workspace's sshd is reached; `None` when it has none.
    pub ssh: Option<WorkspaceSsh>,
}

/// The SSH side of a workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceSsh {
    /// `host:port` of the workspace's own sshd.
    pub backend: String,
    /// The owner's public keys (OpenSSH lines) from the workspaces file,
    /// for identity providers that publish none; discovered workspaces
    /// leave it empty and the keys come from GitLab.
    pub owner_keys: Vec<String>,
}

impl Workspace {
    /// A fingerprint that changes whenever anything authorization depends on
    /// changes; cached decisions are keyed by it so they drop with the change.
    pub fn authz_fingerprint(&self) -> String {
        let owner = self
            .owner
            .as_ref()
            .map(|o| format!("{}/{}", o.id, o.username))
            .unwrap_or_default();
        let uid = self.service.as_ref().map(|s| s.uid.as_str()).unwrap_or("");
        format!("{}|{}|{}|{}", self.id, self.namespace, owner, uid)
    }
}

/// Errors that make a set of workspaces unusable as an index.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IndexError {
    #[error("host {host} is claimed by workspaces {first} and {second}")]
    DuplicateHost {
        host: String,
        first: String,
        second: String,
    },
}

/// An immutable view of every known workspace, looked up by host.
#[derive(Debug, Default)]
pub struct Snapshot {
    by_host: HashMap<String, Arc<Workspace>>,
    by_id: HashMap<String, Arc<Workspace>>,
    /// True once a source delivered its first complete list.
    pub loaded: bool,
}

impl Snapshot {
    /// Builds a snapshot, refusing two workspaces that claim the same host.
    pub fn build(workspaces: Vec<Workspace>) -> Result<Self, IndexError> {
        let mut by_host: HashMap<String, Arc<Workspace>> = HashMap::new();
        let mut by_id = HashMap::new();
        for ws in workspaces {
            let ws = Arc::new(ws);
            for hp in &ws.hosts {
                let host = hp.host.to_ascii_lowercase();
                if let Some(prev) = by_host.get(&host)
                    && prev.id != ws.id
                {
                    return Err(IndexError::DuplicateHost {
                        host,
                        first: prev.id.clone(),
                        second: ws.id.clone(),
                    });
                }
                by_host.insert(host, ws.clone());
            }
            by_id.insert(ws.id.clone(), ws);
        }
        Ok(Self {
            by_host,
            by_id,
            loaded: true,
        })
    }

    /// The workspace serving `host` (already lower-case, without port).
    pub fn by_host(&self, host: &str) -> Option<&Arc<Workspace>> {
        self.by_host.get(host)
    }

    pub fn by_id(&self, id: &str) -> Option<&Arc<Workspace>> {
        self.by_id.get(id)
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    pub fn workspaces(&self) -> impl Iterator<Item = &Arc<Workspace>> {
        self.by_id.values()
    }
}

/// The writing side of the index; one per source.
#[derive(Debug, Clone)]
pub struct IndexPublisher {
    tx: Arc<watch::Sender<Arc<Snapshot>>>,
}

/// The reading side of the index; cheap to clone, one per task.
#[derive(Debug, Clone)]
pub struct IndexReader {
    rx: watch::Receiver<Arc<Snapshot>>,
}

/// Creates an empty, not-yet-loaded index.
pub fn index() -> (IndexPublisher, IndexReader) {
    let (tx, rx) = watch::channel(Arc::new(Snapshot::default()));
    (IndexPublisher { tx: Arc::new(tx) }, IndexReader { rx })
}

impl IndexPublisher {
    /// Replaces the whole index at once.
    pub fn publish(&self, snapshot: Snapshot) {
        self.tx.send_replace(Arc::new(snapshot));
    }

    pub fn reader(&self) -> IndexReader {
        IndexReader {
            rx: self.tx.subscribe(),
        }
    }
}

impl IndexReader {
    /// The current snapshot. Holding the `Arc` keeps that version alive; it
    /// never blocks a publisher.
    pub fn current(&self) -> Arc<Snapshot> {
        self.rx.borrow().clone()
    }

    /// Waits until the snapshot changes (for cache invalidation and tests).
    pub async fn changed(&mut self) -> bool {
        self.rx.changed().await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws(id: &str, hosts: &[&str]) -> Workspace {
        Workspace {
            id: id.into(),
            name: format!("ws-{id}"),
            namespace: "ns".into(),
            owner: None,
            hosts: hosts
                .iter()
                .map(|h| HostPort {
                    host: h.to_string(),
                    service_port: None,
                })
                .collect(),
            service: None,
            ssh: None,
        }
    }

    #[test]
    fn lookup_by_host_is_case_insensitive_at_build() {
        let snap = Snapshot::build(vec![ws("1", &["WS-1.example.test"])]).unwrap();
        assert_eq!(snap.by_host("ws-1.example.test").unwrap().id, "1");
    }

    #[test]
    fn two_workspaces_claiming_one_host_are_refused() {
        let err = Snapshot::build(vec![ws("1", &["a.t"]), ws("2", &["a.t"])]).unwrap_err();
        assert!(matches!(err, IndexError::DuplicateHost { .. }));
    }

    #[test]
    fn publish_replaces_whole_snapshot() {
        let (tx, rx) = index();
        assert!(!rx.current().loaded);
        tx.publish(Snapshot::build(vec![ws("1", &["a.t"])]).unwrap());
        assert_eq!(rx.current().len(), 1);
        assert!(rx.current().loaded);
    }
}
