//! The static workspaces file, for local use, tests and clusters without
//! discovery. Same fields as discovery produces:
//!
//! ```yaml
//! workspaces:
//!   - id: "1"
//!     name: ws-1
//!     namespace: team-a
//!     owner: { id: "42", username: alice }
//!     hosts: [ws-1.workspaces.example.dev]
//!   - id: "2"
//!     name: ws-2
//!     namespace: team-a
//!     owner: { id: "43", username: bob }
//!     host_template: "{{.port}}-ws-2.workspaces.example.dev"
//!     ports: [60001, 3000]
//!     ssh:
//!       backend: "10.0.0.7:60022"
//!       owner_keys: ["ssh-ed25519 AAAAC3Nz... bob@laptop"]
//! ```
//!
//! The file is checked for changes every [`POLL`]; a broken file keeps the
//! last good index and logs why.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{HostPort, IndexPublisher, Owner, Snapshot, Workspace, WorkspaceSsh, template};
use crate::metrics::Metrics;
use crate::session::is_blank;

pub const POLL: Duration = Duration::from_millis(500);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    /// Required, as a list: a file that does not say `workspaces: [...]`
    /// (empty, or cut short by a half-written update) is refused, never
    /// read as "none".
    workspaces: Option<Vec<Entry>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    id: String,
    name: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    owner: Option<FileOwner>,
    #[serde(default)]
    hosts: Vec<String>,
    #[serde(default)]
    host_template: Option<String>,
    #[serde(default)]
    ports: Vec<u16>,
    #[serde(default)]
    ssh: Option<FileSsh>,
}

/// `ssh:` as written: where the workspace's sshd listens, and the owner's
/// public keys for providers that do not publish them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSsh {
    backend: String,
    #[serde(default)]
    owner_keys: Vec<String>,
}

impl FileSsh {
    fn check(self) -> Result<WorkspaceSsh, String> {
        let backend = self.backend.trim().to_string();
        if !is_host_port(&backend) {
            return Err(format!(
                "ssh.backend '{backend}' is not host:port (e.g. 10.0.0.7:60022)"
            ));
        }
        let mut owner_keys = Vec::with_capacity(self.owner_keys.len());
        for (i, k) in self.owner_keys.iter().enumerate() {
            let k = k.trim();
            if russh::keys::PublicKey::from_openssh(k).is_err() {
                return Err(format!(
                    "ssh.owner_keys[{i}] is not an OpenSSH public key line"
                ));
            }
            owner_keys.push(k.to_string());
        }
        Ok(WorkspaceSsh {
            backend,
            owner_keys,
        })
    }
}

/// `host:port` with a non-zero port; `[v6]:port` for IPv6.
fn is_host_port(s: &str) -> bool {
    if s.parse::<std::net::SocketAddr>().is_ok() {
        return true;
    }
    match s.rsplit_once(':') {
        Some((host, port)) => {
            port.parse::<u16>().is_ok_and(|p| p > 0) && template::is_dns_name(host)
        }
        None => false,
    }
}

/// `owner:` as written; `username` may be left out, but not left blank.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileOwner {
    id: String,
    #[serde(default)]
    username: Option<String>,
}

impl FileOwner {
    /// A blank owner id or username would match a blank identity, so the
    /// entry (and with it the whole file) is refused.
    fn check(self) -> Result<Owner, &'static str> {
        if is_blank(&self.id) {
            return Err("owner.id is empty or whitespace");
        }
        if self.username.as_deref().is_some_and(is_blank) {
            return Err("owner.username is empty or whitespace (leave it out instead)");
        }
        Ok(Owner {
            id: self.id,
            username: self.username.unwrap_or_default(),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: crate::files::FileError,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
}

/// Reads and validates the file into a snapshot.
pub fn load(path: &Path) -> Result<Snapshot, FileError> {
    let text =
        crate::files::read_text(path, crate::files::LARGE).map_err(|source| FileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    parse(&text).map_err(|message| FileError::Parse {
        path: path.to_path_buf(),
        message,
    })
}

pub fn parse(text: &str) -> Result<Snapshot, String> {
    crate::files::check_yaml_nesting(text).map_err(|e| e.to_string())?;
    let content = text
        .lines()
        .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
    if !content {
        return Err(
            "the file is empty (a half-written update?); write `workspaces: []` for no workspaces"
                .into(),
        );
    }
    let file: File = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
    let Some(workspaces) = file.workspaces else {
        return Err("`workspaces:` holds no list; write `workspaces: []` for no workspaces".into());
    };
    let mut out = Vec::with_capacity(workspaces.len());
    for (i, e) in workspaces.into_iter().enumerate() {
        let at = format!("workspaces[{i}] (id {:?}, name {:?})", e.id, e.name);
        if e.id.is_empty() {
            return Err(format!("{at}: id is empty"));
        }
        let owner = e
            .owner
            .map(FileOwner::check)
            .transpose()
            .map_err(|why| format!("{at}: {why}"))?;
        let mut hosts = Vec::new();
        for h in &e.hosts {
            let h = h.to_ascii_lowercase();
            if !template::is_dns_name(&h) {
                return Err(format!("{at}: '{h}' is not a host name"));
            }
            hosts.push(HostPort {
                host: h,
                service_port: None,
            });
        }
        match (&e.host_template, e.ports.is_empty()) {
            (Some(t), false) => {
                for p in &e.ports {
                    let host = template::render(t, *p).map_err(|err| format!("{at}: {err}"))?;
                    hosts.push(HostPort {
                        host,
                        service_port: Some(*p),
                    });
                }
            }
            (Some(_), true) => return Err(format!("{at}: host_template needs ports")),
            (None, false) => return Err(format!("{at}: ports need a host_template")),
            (None, true) => {}
        }
        if hosts.is_empty() {
            return Err(format!(
                "{at}: no hosts (give hosts, or host_template with ports)"
            ));
        }
        let ssh = e
            .ssh
            .map(FileSsh::check)
            .transpose()
            .map_err(|why| format!("{at}: {why}"))?;
        out.push(Workspace {
            id: e.id,
            name: e.name,
            namespace: e.namespace,
            owner,
            hosts,
            service: None,
            ssh,
        });
    }
    Snapshot::build(out).map_err(|e| e.to_string())
}

/// Loads the file now and then whenever its content changes, until the
/// publisher's readers are all gone.
pub async fn watch(path: PathBuf, publisher: IndexPublisher, metrics: Arc<Metrics>) {
    let mut last: Option<[u8; 32]> = None;
    loop {
        match crate::files::read(&path, crate::files::LARGE) {
            Ok(bytes) => {
                let digest: [u8; 32] = Sha256::digest(&bytes).into();
                if last != Some(digest) {
                    last = Some(digest);
                    let parsed = std::str::from_utf8(&bytes)
                        .map_err(|e| e.to_string())
                        .and_then(parse);
                    match parsed {
                        Ok(snap) => {
                            tracing::info!(file = %path.display(), workspaces = snap.len(), "workspaces file loaded");
                            metrics.index(snap.len(), "ok");
                            publisher.publish(snap);
                        }
                        Err(e) => {
                            tracing::error!(file = %path.display(), error = %e, "workspaces file is invalid; keeping the last good index");
                            metrics.index(publisher.reader().current().len(), "error");
                        }
                    }
                }
            }
            Err(e) => {
                if last.is_some() {
                    tracing::error!(file = %path.display(), error = %e, "cannot read workspaces file; keeping the last good index");
                    last = None;
                }
            }
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_and_explicit_hosts_both_work() {
        let s = parse(
            "workspaces:\n- {id: '1', name: a, hosts: [A.ws.test]}\n- {id: '2', name: b, host_template: '{{.port}}-b.ws.test', ports: [1, 2]}\n",
        )
        .unwrap();
        assert_eq!(s.by_host("a.ws.test").unwrap().id, "1");
        assert_eq!(s.by_host("2-b.ws.test").unwrap().id, "2");
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn broken_entries_are_explained() {
        assert!(
            parse("workspaces:\n- {id: '1', name: a}\n")
                .unwrap_err()
                .contains("no hosts")
        );
        assert!(parse("workspaces:\n- {id: '1', name: a, hostz: []}\n").is_err());
        assert!(parse("workspaces:\n- {id: '1', name: a, hosts: ['bad host']}\n").is_err());
    }

    #[test]
    fn blank_owner_refuses_the_whole_file_naming_workspace_and_field() {
        let good = "- {id: '1', name: a, hosts: [a.ws.test], owner: {id: '42', username: alice}}\n";
        for (owner, field) in [
            ("{id: ''}", "owner.id"),
            ("{id: '   '}", "owner.id"),
            ("{id: \"\\t\"}", "owner.id"),
            ("{id: '', username: alice}", "owner.id"),
            ("{id: '42', username: ''}", "owner.username"),
            ("{id: '42', username: '  '}", "owner.username"),
        ] {
            let text = format!(
                "workspaces:\n{good}- {{id: '2', name: ws-two, hosts: [b.ws.test], owner: {owner}}}\n"
            );
            let err = parse(&text).unwrap_err();
            assert!(
                err.contains("workspaces[1]") && err.contains("ws-two") && err.contains(field),
                "owner {owner}: {err}"
            );
        }
        // Not a string, or a missing id, is refused by the parser.
        for owner in [
            "{id: ['42']}",
            "{id: {a: 1}}",
            "{username: alice}",
            "{id: '42', usernam: a}",
        ] {
            let text = format!(
                "workspaces:\n- {{id: '2', name: b, hosts: [b.ws.test], owner: {owner}}}\n"
            );
            assert!(parse(&text).is_err(), "owner {owner} was accepted");
        }
        // A username may be left out.
        let s = parse("workspaces:\n- {id: '2', name: b, hosts: [b.ws.test], owner: {id: '42'}}\n")
            .unwrap();
        assert_eq!(s.by_id("2").unwrap().owner.as_ref().unwrap().username, "");
    }

    #[tokio::test]
    async fn a_file_with_a_blank_owner_keeps_the_last_good_index() {
        let entry = "workspaces:\n- {id: '1', name: a, hosts: [a.ws.test], owner: {id: ' '}}\n";
        keeps_the_last_good_index(entry, "the blank owner").await;
    }

    #[tokio::test]
    async fn an_empty_file_keeps_the_last_good_index() {
        for bad in ["", "\n\n", "# nothing yet\n", "{}\n", "workspaces:\n"] {
            keeps_the_last_good_index(bad, &format!("{bad:?}")).await;
        }
        // Saying so explicitly is an empty index.
        assert_eq!(parse("workspaces: []\n").unwrap().len(), 0);
    }

    /// Watches a good file, replaces it with `bad`, and requires the error
    /// to be counted while the index keeps the good file's workspace.
    async fn keeps_the_last_good_index(bad: &str, what: &str) {
        let dir = std::env::temp_dir().join(format!("wg-file-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("workspaces.yaml");
        std::fs::write(
            &path,
            "workspaces:\n- {id: '1', name: a, hosts: [a.ws.test], owner: {id: '42'}}\n",
        )
        .unwrap();
        let (publisher, mut reader) = super::super::index();
        let metrics = Arc::new(Metrics::default());
        let mut registry = prometheus_client::registry::Registry::default();
        metrics.register(&mut registry);
        let task = tokio::spawn(watch(path.clone(), publisher, metrics));
        let owner = |r: &super::super::IndexReader| {
            r.current()
                .by_id("1")
                .and_then(|w| w.owner.clone())
                .map(|o| o.id)
        };
        tokio::time::timeout(Duration::from_secs(10), reader.changed())
            .await
            .unwrap();
        assert_eq!(owner(&reader).as_deref(), Some("42"));

        std::fs::write(&path, bad).unwrap();
        let refused = async {
            loop {
                let mut text = String::new();
                prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
                if text.contains("index_reloads_total{result=\"error\"} 1") {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), refused)
            .await
            .unwrap_or_else(|_| panic!("{what} was never refused"));
        assert_eq!(
            owner(&reader).as_deref(),
            Some("42"),
            "{what}: the last good index must stay"
        );
        task.abort();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
