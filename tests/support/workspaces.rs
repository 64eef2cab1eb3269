//! The static workspaces file the gate (and the GitLab double) read.

use std::path::PathBuf;

use serde_json::{Value, json};

#[derive(Debug, Clone)]
pub struct WorkspaceSpec {
    pub id: String,
    pub name: String,
    pub owner: String,
    /// Explicit hosts, or a GitLab host template with ports.
    pub hosts: Vec<String>,
    pub template: Option<(String, Vec<u16>)>,
}

impl WorkspaceSpec {
    pub fn explicit(id: &str, name: &str, owner: &str, hosts: &[&str]) -> Self {
        WorkspaceSpec {
            id: id.into(),
            name: name.into(),
            owner: owner.into(),
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            template: None,
        }
    }
    pub fn templated(id: &str, name: &str, owner: &str, template: &str, ports: &[u16]) -> Self {
        WorkspaceSpec {
            id: id.into(),
            name: name.into(),
            owner: owner.into(),
            hosts: vec![],
            template: Some((template.into(), ports.to_vec())),
        }
    }

    /// Every host of the workspace.
    pub fn all_hosts(&self) -> Vec<String> {
        match &self.template {
            Some((t, ports)) => ports
                .iter()
                .map(|p| t.replace("{{.port}}", &p.to_string()))
                .collect(),
            None => self.hosts.clone(),
        }
    }

    fn to_value(&self) -> Value {
        let mut v = json!({
            "id": self.id,
            "name": self.name,
            "namespace": "workspaces",
            "owner": {"id": self.owner, "username": self.owner},
        });
        match &self.template {
            Some((t, ports)) => {
                v["host_template"] = json!(t);
                v["ports"] = json!(ports);
            }
            None => v["hosts"] = json!(self.hosts),
        }
        v
    }
}

/// The workspaces of every scenario: alice owns ws-1 (one host) and ws-2 (a
/// GitLab host template with two ports), bob owns ws-3.
pub fn default_workspaces(domain: &str) -> Vec<WorkspaceSpec> {
    vec![
        WorkspaceSpec::explicit("1", "ws-1", "alice", &[&format!("ws-1.{domain}")]),
        WorkspaceSpec::templated(
            "2",
            "ws-2",
            "alice",
            &format!("{{{{.port}}}}-ws-2.{domain}"),
            &[60001, 3000],
        ),
        WorkspaceSpec::explicit("3", "ws-3", "bob", &[&format!("ws-3.{domain}")]),
    ]
}

pub struct WorkspacesFile {
    pub path: PathBuf,
}

impl WorkspacesFile {
    /// Rewrites the file in place (the gate reloads it on change).
    pub fn write(&self, list: &[WorkspaceSpec]) -> anyhow::Result<()> {
        let doc =
            json!({"workspaces": list.iter().map(WorkspaceSpec::to_value).collect::<Vec<_>>()});
        let yaml = serde_yaml::to_string(&doc)?;
        std::fs::write(&self.path, yaml)?;
        Ok(())
    }
}
