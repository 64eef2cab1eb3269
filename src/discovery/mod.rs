//! Kubernetes discovery: workspace Services in, workspace index and routing
//! objects out.
//!
//! - `config.rs`: the `discovery` and `routing` configuration sections.
//! - `service.rs`: Service -> [`Workspace`] (pure).
//! - `watcher.rs`: kube-runtime watches -> the published index.
//! - `render/`: Workspace -> routing objects, one file per routing mode (pure).
//! - `plan.rs`: the reconciler's decisions (pure): which objects to write,
//!   which to delete, what a sweep of the cluster found.
//! - `apply.rs`: the reconciler's executor: lists, runs the plan, performs
//!   the server-side applies and deletes, counts and logs them.
//! - `lease.rs`: Lease leader election; only the leader writes.
//! - `metrics.rs`: Prometheus metrics.
//!
//! Every replica runs the watcher; the leader additionally runs the
//! reconciler. See docs/discovery.md for the objects, RBAC and design.

pub(crate) mod apply;
mod lease;
pub(crate) mod metrics;
mod plan;
pub mod render;
pub(crate) mod service;
mod watcher;

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use kube::{Api, Client};
use tokio::sync::watch;

pub use crate::config::discovery::{DiscoveryConfig, NamespaceScope, RoutingMode};
pub use metrics::DiscoveryMetrics;
pub use render::{ObjectKind, RenderContext, RoutingObject};
pub use service::{ServiceError, ServiceRules, workspace_from_service};

use crate::workspaces::{IndexPublisher, IndexReader, Workspace};

/// How often a leader retries owners whose writes failed.
const RETRY_FAILED: Duration = Duration::from_secs(5);

impl DiscoveryConfig {
    /// What a Service must satisfy, given the gate's workspace domain.
    pub fn service_rules(&self, gate: &crate::config::Config) -> ServiceRules {
        ServiceRules {
            owner_id_annotation: self.owner_id_annotation.clone(),
            owner_username_annotation: self.owner_username_annotation.clone(),
            workspace_domain: gate.workspace_domain.clone(),
            ssh_port: self.routing.ssh_port,
            cluster_domain: self.routing.gate.cluster_domain.clone(),
        }
    }

    pub fn render_context(&self, gate: &crate::config::Config) -> RenderContext {
        RenderContext {
            routing: self.routing.clone(),
            signin_url: format!(
                "{}{}",
                crate::scheme::origin(gate.public_scheme, "$host", gate.public_port),
                crate::core::reserved::START_PATH
            ),
        }
    }
}

/// Watches workspace Services into `index` and, while this replica holds
/// the Lease, keeps the routing objects in line. Returns after `shutdown`
/// (releasing the Lease) or on an unrecoverable error.
///
/// Readiness: the index's snapshot has `loaded == true` once every watch
/// completed its first list; nothing is published before that.
pub async fn run(
    cfg: DiscoveryConfig,
    gate: &crate::config::Config,
    client: Client,
    index: IndexPublisher,
    metrics: DiscoveryMetrics,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let rules = cfg.service_rules(gate);
    let reader = index.reader();
    let watch = watcher::run(
        client.clone(),
        &cfg.namespaces,
        rules,
        index,
        metrics.clone(),
    );
    if cfg.routing.mode == RoutingMode::None {
        // Nothing to write, so no need to elect a writer.
        tokio::select! {
            r = watch => return r,
            _ = shutdown => return Ok(()),
        }
    }
    let (leader_tx, leader_rx) = watch::channel(false);
    let elector = lease::Elector::new(
        Api::namespaced(client.clone(), &cfg.lease.namespace),
        cfg.lease.clone(),
        leader_tx,
        metrics.clone(),
    );
    let reconciler = apply::Reconciler::new(
        client,
        cfg.render_context(gate),
        cfg.namespaces.clone(),
        metrics,
    );
    let reconcile = reconcile_while_leader(reconciler, reader, leader_rx, cfg.resync_interval);
    tokio::select! {
        r = watch => r,
        r = reconcile => r,
        // Ends only at shutdown, after stepping down and releasing the Lease.
        r = elector.run(shutdown) => r,
    }
}

/// Runs the reconciler for each leadership term; a lost Lease cancels any
/// write in flight at its next await point.
async fn reconcile_while_leader(
    mut rec: apply::Reconciler,
    mut reader: IndexReader,
    mut leader: watch::Receiver<bool>,
    resync: Duration,
) -> anyhow::Result<()> {
    loop {
        if leader.wait_for(|l| *l).await.is_err() {
            return Ok(());
        }
        rec.reset();
        let term = async {
            while !reader.current().loaded {
                if !reader.changed().await {
                    return;
                }
            }
            rec.full_sync(&mut reader).await;
            let mut resync_tick =
                tokio::time::interval_at(tokio::time::Instant::now() + resync, resync);
            let mut retry_tick = tokio::time::interval(RETRY_FAILED);
            loop {
                tokio::select! {
                    changed = reader.changed() => {
                        if !changed { return; }
                        rec.incremental(&reader.current()).await;
                    }
                    _ = resync_tick.tick() => { rec.full_sync(&mut reader).await; }
                    _ = retry_tick.tick(), if rec.has_failures() => {
                        rec.incremental(&reader.current()).await;
                    }
                }
            }
        };
        tokio::select! {
            _ = term => {}
            r = leader.wait_for(|l| !*l) => { if r.is_err() { return Ok(()); } }
        }
    }
}

/// The objects that would be written for `service_yaml` under `cfg`, as a
/// multi-document YAML (for `workspace-gate render`).
pub fn render_cli(cfg: &crate::config::Config, service_yaml: &str) -> anyhow::Result<String> {
    let dcfg = &cfg.discovery;
    let mut svc: Service = serde_yaml::from_str(service_yaml)
        .map_err(|e| anyhow::anyhow!("the Service file is not a Service: {e}"))?;
    let mut out = String::new();
    // A Service written by hand has no uid yet; Kubernetes assigns one.
    if svc.metadata.uid.is_none() {
        svc.metadata.uid = Some("00000000-0000-0000-0000-000000000000".into());
        out.push_str(
            "# The Service has no metadata.uid; a placeholder is used in ownerReferences.\n",
        );
    }
    if svc.metadata.namespace.is_none() {
        svc.metadata.namespace = Some("default".into());
        out.push_str("# The Service has no metadata.namespace; `default` is assumed.\n");
    }
    let ws: Workspace = workspace_from_service(&svc, &dcfg.service_rules(cfg))
        .map_err(|e| anyhow::anyhow!("the Service is not a workspace: {e}"))?;
    let ctx = dcfg.render_context(cfg);
    let mut objs = render::workspace_objects(&ctx, &ws)?;
    objs.extend(render::namespace_objects(&ctx, &ws.namespace)?);
    out.push_str(&format!(
        "# workspace {} ({}), routing.mode {}: {} object(s)\n",
        ws.id,
        ws.hosts
            .iter()
            .map(|h| h.host.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        dcfg.routing.mode.as_str(),
        objs.len()
    ));
    for o in objs {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&o.body)?);
    }
    Ok(out)
}

/// Builds the kube client from the environment (in-cluster or kubeconfig).
pub async fn client() -> anyhow::Result<Client> {
    Ok(Client::try_default().await?)
}
