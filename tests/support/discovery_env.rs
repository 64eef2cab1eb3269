//! Helpers for discovery tests and the benchmark: a gate configuration on
//! disk, workspace Services as GitLab's agent writes them, and a running
//! discovery instance that can be stopped gracefully or killed.

#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use kube::Api;
use kube::api::PostParams;
use serde_json::{Value, json};
use workspace_gate::config::Config;
use workspace_gate::discovery::{self, DiscoveryMetrics};
use workspace_gate::workspaces::{IndexReader, index};

pub const DOMAIN: &str = "workspaces.test";

/// A throwaway directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "wg-{tag}-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4()
        ));
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A complete gate configuration with the given `discovery`/`routing`
/// YAML appended.
pub fn gate_config(dir: &TempDir, sections: &str) -> Config {
    gate_config_result(dir, sections).unwrap_or_else(|e| panic!("{e}"))
}

/// Loads the gate's configuration with `sections`; every problem, the
/// discovery sections' included, comes back in one error.
pub fn gate_config_result(
    dir: &TempDir,
    sections: &str,
) -> Result<Config, workspace_gate::config::ConfigErrors> {
    gate_config_env(dir, sections, &|_| None)
}

/// [`gate_config_result`] under the environment `env`.
pub fn gate_config_env(
    dir: &TempDir,
    sections: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, workspace_gate::config::ConfigErrors> {
    let key = dir.0.join("key");
    std::fs::write(&key, workspace_gate::session::keyring::generate_key()).unwrap();
    let secret = dir.0.join("secret");
    std::fs::write(&secret, "s3cret").unwrap();
    let file = dir.0.join("gate.yaml");
    let yaml = format!(
        "auth_host: {DOMAIN}\nworkspace_domain: {DOMAIN}\n\
         oidc: {{issuer: 'https://gitlab.test', client_id: gate, client_secret_file: {}}}\n\
         keys: {{files: [{}]}}\nworkspaces: {{source: kubernetes}}\nauthorization: {{mode: owner-annotation}}\n{sections}",
        secret.display(),
        key.display()
    );
    std::fs::write(&file, yaml).unwrap();
    Config::load(Some(&file), env)
}

/// Routing and lease settings used by most tests.
pub fn sections(mode: &str, identity: &str, extra_discovery: &str) -> String {
    format!(
        "discovery:\n  identity: {identity}\n  lease_namespace: gate\n  lease_duration: 2s\n{extra_discovery}\
         routing:\n  mode: {mode}\n  tls_secret: wildcard-tls\n  ingress_class: nginx\n\
         \x20 gate_service: {{name: workspace-gate, namespace: gate}}\n\
         \x20 gateway: {{name: eg, namespace: gateway-system}}\n"
    )
}

/// A workspace Service as GitLab's agent creates it (plus owner annotations).
pub fn workspace_service(
    ns: &str,
    name: &str,
    id: u64,
    target_ports: &[u16],
    owner: &str,
) -> Service {
    let ports: Vec<Value> = target_ports
        .iter()
        .enumerate()
        .map(|(i, p)| json!({"name": format!("p{i}"), "port": p, "targetPort": p, "protocol": "TCP"}))
        .collect();
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {
            "name": name, "namespace": ns,
            "labels": {"agent.gitlab.com/id": "1"},
            "annotations": {
                "workspaces.gitlab.com/host-template": format!("{{{{.port}}}}-{name}.{DOMAIN}"),
                "workspaces.gitlab.com/id": id.to_string(),
                "workspace-gate.dev/owner-id": owner,
                "workspace-gate.dev/owner-username": owner,
            }
        },
        "spec": {"ports": ports, "selector": {"app": name}}
    }))
    .unwrap()
}

pub async fn create_service(client: &kube::Client, svc: &Service) -> Service {
    let ns = svc.metadata.namespace.clone().unwrap();
    Api::<Service>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), svc)
        .await
        .expect("create Service")
}

/// Polls `cond` until true; panics with `what` after a generous timeout
/// (only there to avoid hanging; no test asserts on time).
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !cond() {
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A running discovery instance.
pub struct Gate {
    pub reader: IndexReader,
    pub metrics: DiscoveryMetrics,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Gate {
    pub fn start(client: kube::Client, gate: &Config) -> Gate {
        let cfg = gate.discovery.clone();
        let (publisher, reader) = index();
        let metrics = DiscoveryMetrics::default();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let gate = gate.clone();
        let m = metrics.clone();
        let task = tokio::spawn(async move {
            discovery::run(cfg, &gate, client, publisher, m, async move {
                let _ = stopped.await;
            })
            .await
        });
        Gate {
            reader,
            metrics,
            stop: Some(stop),
            task,
        }
    }

    /// Graceful stop: steps down and releases the Lease.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let r = (&mut self.task).await;
        if let Ok(Err(e)) = r {
            panic!("discovery failed: {e}");
        }
    }

    /// Abrupt end, as a killed pod: nothing is released.
    pub fn kill(self) {
        self.task.abort();
    }

    pub fn has_host(&self, host: &str) -> bool {
        self.reader.current().by_host(host).is_some()
    }
}
