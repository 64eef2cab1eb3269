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
//! ```
//!
//! The file is checked for changes every [`POLL`]; a broken file keeps the
//! last good index and logs why.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{HostPort, IndexPublisher, Owner, Snapshot, Workspace, template};
use crate::metrics::Metrics;

pub const POLL: Duration = Duration::from_millis(500);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    workspaces: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    id: String,
    name: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    owner: Option<Owner>,
    #[serde(default)]
    hosts: Vec<String>,
    #[serde(default)]
    host_template: Option<String>,
    #[serde(default)]
    ports: Vec<u16>,
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
    let file: File = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(file.workspaces.len());
    for (i, e) in file.workspaces.into_iter().enumerate() {
        let at = format!("workspaces[{i}] (id {:?})", e.id);
        if e.id.is_empty() {
            return Err(format!("{at}: id is empty"));
        }
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
        out.push(Workspace {
            id: e.id,
            name: e.name,
            namespace: e.namespace,
            owner: e.owner,
            hosts,
            service: None,
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
}
