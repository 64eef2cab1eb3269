//! The reconciler's executor: makes the cluster hold exactly the routing
//! objects the index asks for. Runs only on the Lease holder. What to write
//! and delete is decided in `plan.rs`; this file lists, writes, deletes, and
//! logs and counts what happened.
//!
//! - `full_sync` (at the start of each leadership term and every
//!   `resync_interval`): lists every object the gate manages, deletes those
//!   nothing wants (orphans), re-applies those that drifted (hand edits) or
//!   are missing.
//! - `incremental` (on every index change): re-renders only the workspaces
//!   that changed and applies only objects whose rendering changed.
//!
//! Writes are server-side applies with field manager `workspace-gate` and
//! `force`, so the gate takes back the fields it owns from anyone who edited
//! them and leaves other fields alone.

use futures::{FutureExt, StreamExt};
use kube::api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::{Api, Client};

use super::metrics::DiscoveryMetrics;
use super::plan::{self, Ledger, Outcome, Owner, Pass, Sweep};
use super::render::{
    FIELD_MANAGER, MANAGED_SELECTOR, ObjectKey, ObjectKind, RenderContext, RoutingObject,
};
use crate::config::discovery::NamespaceScope;
use crate::workspaces::{IndexReader, Snapshot, Workspace};

/// Concurrent API requests during a sync.
const CONCURRENCY: usize = 16;
/// Page size of the sweep's lists.
const PAGE: u32 = 500;

#[derive(Debug, thiserror::Error)]
pub(crate) enum ApplyError {
    #[error("apply {kind} {namespace}/{name}: {source}")]
    Apply {
        kind: &'static str,
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("delete {kind} {namespace}/{name}: {source}")]
    Delete {
        kind: &'static str,
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("list {kind}: {source}")]
    List {
        kind: &'static str,
        #[source]
        source: kube::Error,
    },
}

impl ApplyError {
    /// The API server refused the body itself (400, 422: schema, CEL
    /// rule, admission policy), so the same write would fail again.
    fn is_rejection(&self) -> bool {
        matches!(self, ApplyError::Apply { source, .. } if is_invalid(source))
    }
}

fn is_invalid(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 400 || s.code == 422)
}

pub(crate) struct Reconciler {
    client: Client,
    ctx: RenderContext,
    scope: NamespaceScope,
    metrics: DiscoveryMetrics,
    ledger: Ledger,
}

/// What `owner` wants; a rendering error is logged, counted, and taken as
/// wanting nothing.
fn render(
    ctx: &RenderContext,
    metrics: &DiscoveryMetrics,
    owner: &Owner,
    ws: Option<&Workspace>,
) -> Vec<RoutingObject> {
    plan::desired(ctx, owner, ws).unwrap_or_else(|e| {
        tracing::warn!("cannot render routing objects: {e}");
        metrics.reconcile_errors.inc();
        Vec::new()
    })
}

impl Reconciler {
    pub(crate) fn new(
        client: Client,
        ctx: RenderContext,
        scope: NamespaceScope,
        metrics: DiscoveryMetrics,
    ) -> Self {
        Reconciler {
            client,
            ctx,
            scope,
            metrics,
            ledger: Ledger::default(),
        }
    }

    /// Forgets everything (a new leadership term starts from the cluster).
    pub(crate) fn reset(&mut self) {
        self.ledger.clear();
    }

    pub(crate) fn has_failures(&self) -> bool {
        self.ledger.has_failures()
    }

    /// Applies what changed since the last pass and deletes what is no
    /// longer wanted. Returns the number of failed writes.
    pub(crate) async fn incremental(&mut self, snap: &Snapshot) -> usize {
        let Pass { delete, redo } = self.ledger.pass(&plan::wanted(snap));
        let mut failures = self.delete_many(delete).await;
        // Render, plan and write owner by owner, a bounded number at a
        // time: only those owners' bodies are in memory at once.
        let results: Vec<_> = futures::stream::iter(redo.into_iter().map(|(owner, ws)| {
            let this = &*self;
            async move {
                let rendered = render(&this.ctx, &this.metrics, &owner, ws.as_deref());
                let plan = this.ledger.plan_owner(&owner, rendered);
                let mut outcome = Outcome::Written;
                let mut applied = Vec::new();
                for (obj, h) in plan.apply {
                    match this.apply(&obj).await {
                        Ok(()) => applied.push((obj.key(), h)),
                        Err(e) if e.is_rejection() => {
                            tracing::warn!(
                                "{e} (refused as invalid: written again when the workspace \
                                 changes or at the next resync)"
                            );
                            outcome = outcome.and(Outcome::Rejected);
                        }
                        Err(e) => {
                            tracing::warn!("{e}");
                            outcome = outcome.and(Outcome::Failed);
                        }
                    }
                }
                for k in plan.delete {
                    if let Err(e) = this.delete(&k).await {
                        tracing::warn!("{e}");
                        outcome = outcome.and(Outcome::Failed);
                    }
                }
                (owner, ws, plan.keys, applied, outcome)
            }
        }))
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
        for (owner, ws, keys, applied, outcome) in results {
            if outcome != Outcome::Written {
                failures += 1;
            }
            self.ledger.record(owner, ws, keys, applied, outcome);
        }
        failures
    }

    /// Compares the cluster with the index: deletes orphans, re-applies
    /// drifted or missing objects. At the start of a leadership term
    /// (nothing known yet) objects already in place are not rewritten.
    /// Index changes that arrive meanwhile are handled between list pages,
    /// so a sweep of a large cluster does not hold them up. Returns the
    /// number of failed writes.
    pub(crate) async fn full_sync(&mut self, reader: &mut IndexReader) -> usize {
        if self.ledger.is_empty() {
            let (ctx, metrics) = (&self.ctx, &self.metrics);
            self.ledger.adopt(plan::wanted(&reader.current()), |o, ws| {
                render(ctx, metrics, o, ws)
            });
        }
        let mut sweep = Sweep::new(&self.ledger);
        let mut failures = 0;
        // Page by page: only one page of existing objects is held at a time.
        for kind in ObjectKind::ALL {
            for api in self.list_apis(kind) {
                let mut lp = ListParams::default().labels(MANAGED_SELECTOR).limit(PAGE);
                loop {
                    if let Some(true) = reader.changed().now_or_never() {
                        failures += self.incremental(&reader.current()).await;
                        sweep.index_changed(&self.ledger);
                    }
                    let page = match api.list(&lp).await {
                        Ok(page) => page,
                        // Not installed (404) or not granted (403): nothing
                        // of this kind can have been written by the gate.
                        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 403 => {
                            tracing::debug!(
                                kind = kind.kind(),
                                code = s.code,
                                "cannot list; skipping"
                            );
                            break;
                        }
                        Err(source) => {
                            tracing::warn!(
                                "{}",
                                ApplyError::List {
                                    kind: kind.kind(),
                                    source
                                }
                            );
                            self.metrics.reconcile_errors.inc();
                            failures += 1;
                            break;
                        }
                    };
                    let (ctx, metrics) = (&self.ctx, &self.metrics);
                    for obj in &page.items {
                        sweep.observe(&mut self.ledger, kind, obj, |o, ws| {
                            render(ctx, metrics, o, ws)
                        });
                    }
                    match page.metadata.continue_.filter(|c| !c.is_empty()) {
                        Some(c) => lp = lp.continue_token(&c),
                        None => break,
                    }
                }
            }
        }
        let orphans = sweep.finish(&mut self.ledger);
        failures += self.delete_many(orphans).await;
        failures += self.incremental(&reader.current()).await;
        self.metrics.full_syncs.inc();
        failures
    }

    async fn apply(&self, obj: &RoutingObject) -> Result<(), ApplyError> {
        let api: Api<DynamicObject> = Api::namespaced_with(
            self.client.clone(),
            &obj.namespace,
            &obj.kind.api_resource(),
        );
        let params = PatchParams::apply(FIELD_MANAGER).force();
        match api
            .patch(&obj.name, &params, &Patch::Apply(&obj.body))
            .await
        {
            Ok(_) => {
                self.metrics.applied(obj.kind.kind());
                Ok(())
            }
            Err(source) => {
                self.metrics.reconcile_errors.inc();
                if is_invalid(&source) {
                    self.metrics.rejected(obj.kind.kind());
                }
                Err(ApplyError::Apply {
                    kind: obj.kind.kind(),
                    namespace: obj.namespace.clone(),
                    name: obj.name.clone(),
                    source,
                })
            }
        }
    }

    /// Deletes one object; already gone (Kubernetes' garbage collector got
    /// there first) counts as done.
    async fn delete(&self, key: &ObjectKey) -> Result<(), ApplyError> {
        let api: Api<DynamicObject> = Api::namespaced_with(
            self.client.clone(),
            &key.namespace,
            &key.kind.api_resource(),
        );
        match api.delete(&key.name, &DeleteParams::default()).await {
            Ok(_) => {
                self.metrics.deleted(key.kind.kind());
                Ok(())
            }
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(source) => {
                self.metrics.reconcile_errors.inc();
                Err(ApplyError::Delete {
                    kind: key.kind.kind(),
                    namespace: key.namespace.clone(),
                    name: key.name.clone(),
                    source,
                })
            }
        }
    }

    /// Deletes objects concurrently; returns the number that failed.
    async fn delete_many(&self, keys: Vec<ObjectKey>) -> usize {
        futures::stream::iter(
            keys.into_iter()
                .map(|k| async move { self.delete(&k).await }),
        )
        .buffer_unordered(CONCURRENCY)
        .filter_map(|r| async move { r.err().map(|e| tracing::warn!("{e}")) })
        .count()
        .await
    }

    /// Where to list objects of `kind` the gate may have written: the
    /// watched namespaces (ReferenceGrants: the gate's namespace).
    fn list_apis(&self, kind: ObjectKind) -> Vec<Api<DynamicObject>> {
        let ar = kind.api_resource();
        match &self.scope {
            // Grants live only in the gate's namespace, so a Role there is
            // all the RBAC they need.
            _ if kind == ObjectKind::ReferenceGrant => vec![Api::namespaced_with(
                self.client.clone(),
                &self.ctx.routing.gate.namespace,
                &ar,
            )],
            NamespaceScope::List(nss) => nss
                .iter()
                .map(|ns| Api::namespaced_with(self.client.clone(), ns, &ar))
                .collect(),
            _ => vec![Api::all_with(self.client.clone(), &ar)],
        }
    }
}
