//! Discovery metrics. Cheap to clone (every field is an `Arc` inside);
//! the watcher, reconciler and lease tasks each hold a clone.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

#[derive(Debug, Clone, Default)]
pub struct DiscoveryMetrics {
    /// Workspaces in the published index.
    pub(crate) index_size: Gauge,
    /// Labelled Services left out of the index (bad annotations, a host
    /// claimed by another workspace).
    pub(crate) invalid_services: Gauge,
    /// Watches that had to list again (410 Gone, errors).
    pub(crate) watch_restarts: Counter,
    /// Objects written with server-side apply, by kind.
    pub(crate) objects_applied: Family<Labels, Counter>,
    /// Objects deleted (orphans, removed workspaces), by kind.
    pub(crate) objects_deleted: Family<Labels, Counter>,
    /// Objects the API server refused as invalid, by kind.
    pub(crate) objects_rejected: Family<Labels, Counter>,
    /// Failed applies, deletes, lists and renders.
    pub(crate) reconcile_errors: Counter,
    /// 1 while this replica holds the Lease.
    pub(crate) leader: Gauge,
    /// Full comparisons of the cluster with the index, completed.
    pub(crate) full_syncs: Counter,
}

impl DiscoveryMetrics {
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("workspace_gate_discovery");
        r.register(
            "index_workspaces",
            "Workspaces in the published index",
            self.index_size.clone(),
        );
        r.register(
            "invalid_services",
            "Labelled Services left out of the index (bad annotations or a host claimed twice)",
            self.invalid_services.clone(),
        );
        r.register(
            "watch_restarts",
            "Watches restarted with a new list (410 Gone or an error)",
            self.watch_restarts.clone(),
        );
        r.register(
            "objects_applied",
            "Routing objects written with server-side apply",
            self.objects_applied.clone(),
        );
        r.register(
            "objects_deleted",
            "Routing objects deleted (orphans and removed workspaces)",
            self.objects_deleted.clone(),
        );
        r.register(
            "objects_rejected",
            "Routing object writes the API server refused as invalid (schema, CEL rule, admission policy); retried when the workspace changes or at the next resync",
            self.objects_rejected.clone(),
        );
        r.register(
            "reconcile_errors",
            "Failed renders, applies, deletes and lists",
            self.reconcile_errors.clone(),
        );
        r.register(
            "leader",
            "1 while this replica holds the Lease",
            self.leader.clone(),
        );
    }

    pub(crate) fn applied(&self, kind: &str) {
        self.objects_applied
            .get_or_create(&vec![("kind".to_string(), kind.to_string())])
            .inc();
    }

    pub(crate) fn deleted(&self, kind: &str) {
        self.objects_deleted
            .get_or_create(&vec![("kind".to_string(), kind.to_string())])
            .inc();
    }

    pub(crate) fn rejected(&self, kind: &str) {
        self.objects_rejected
            .get_or_create(&vec![("kind".to_string(), kind.to_string())])
            .inc();
    }

    /// Totals, for tests and the benchmark.
    pub fn applied_total(&self) -> u64 {
        sum(&self.objects_applied)
    }

    pub fn rejected_total(&self) -> u64 {
        sum(&self.objects_rejected)
    }

    pub fn deleted_total(&self) -> u64 {
        sum(&self.objects_deleted)
    }

    pub fn watch_restarts_total(&self) -> u64 {
        self.watch_restarts.get()
    }

    pub fn reconcile_errors_total(&self) -> u64 {
        self.reconcile_errors.get()
    }

    pub fn full_syncs_total(&self) -> u64 {
        self.full_syncs.get()
    }

    pub fn index_size(&self) -> i64 {
        self.index_size.get()
    }

    pub fn is_leader(&self) -> bool {
        self.leader.get() == 1
    }
}

fn sum(f: &Family<Labels, Counter>) -> u64 {
    [
        "Ingress",
        "Service",
        "Middleware",
        "HTTPRoute",
        "SecurityPolicy",
        "ReferenceGrant",
    ]
    .iter()
    .map(|k| {
        f.get(&vec![("kind".to_string(), k.to_string())])
            .map(|c| c.get())
            .unwrap_or(0)
    })
    .sum()
}
