//! The reconciler: makes the cluster hold exactly the routing objects the
//! index asks for. Runs only on the Lease holder.
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
//! them and leaves other fields alone. Only hashes of what was applied are
//! kept in memory, never the bodies (10,000 workspaces would cost ~100 MB).

use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use futures::{FutureExt, StreamExt};
use kube::api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::Value;

use super::config::NamespaceScope;
use super::metrics::DiscoveryMetrics;
use super::render::{
    FIELD_MANAGER, FOR_NAMESPACE_LABEL, MANAGED_SELECTOR, ObjectKey, ObjectKind, RenderContext,
    RoutingObject, WORKSPACE_ID_LABEL, namespace_objects, workspace_objects,
};
use crate::workspaces::{IndexReader, Snapshot, Workspace};

/// Concurrent API requests during a sync.
const CONCURRENCY: usize = 16;
/// Page size of the sweep's lists.
const PAGE: u32 = 500;

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
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

/// Who wants an object: one workspace (by Service key) or one namespace
/// (shared objects such as ReferenceGrants).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Owner {
    Workspace(String),
    Namespace(String),
}

#[derive(Debug)]
struct Owned {
    ws: Option<Arc<Workspace>>,
    keys: Vec<ObjectKey>,
    /// False when a write failed; the next pass redoes this owner.
    ok: bool,
}

pub(crate) struct Reconciler {
    client: Client,
    ctx: RenderContext,
    scope: NamespaceScope,
    metrics: DiscoveryMetrics,
    /// Hash of the body last applied (or found in the cluster matching).
    applied: HashMap<ObjectKey, u64>,
    owned: HashMap<Owner, Owned>,
}

fn ws_key(ws: &Workspace) -> String {
    match &ws.service {
        Some(s) => format!("{}/{}", s.namespace, s.name),
        None => format!("{}/{}", ws.namespace, ws.name),
    }
}

fn hash(v: &Value) -> u64 {
    let mut h = DefaultHasher::new();
    v.to_string().hash(&mut h);
    h.finish()
}

/// True when every field of `want` is present in `have` with the same
/// value. Fields the API server or other managers added are ignored; lists
/// must match element by element (the gate's lists are atomic or fully
/// owned by it).
pub fn is_subset(want: &Value, have: &Value) -> bool {
    match (want, have) {
        (Value::Object(w), Value::Object(h)) => w
            .iter()
            .all(|(k, wv)| h.get(k).is_some_and(|hv| is_subset(wv, hv))),
        (Value::Array(w), Value::Array(h)) => {
            w.len() == h.len() && w.iter().zip(h).all(|(a, b)| is_subset(a, b))
        }
        (w, h) => w == h,
    }
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
            applied: HashMap::new(),
            owned: HashMap::new(),
        }
    }

    /// Forgets everything (a new leadership term starts from the cluster).
    pub(crate) fn reset(&mut self) {
        self.applied.clear();
        self.owned.clear();
    }

    pub(crate) fn has_failures(&self) -> bool {
        self.owned.values().any(|o| !o.ok)
    }

    fn render(&self, owner: &Owner, ws: Option<&Workspace>) -> Vec<RoutingObject> {
        let r = match (owner, ws) {
            (Owner::Workspace(_), Some(ws)) => workspace_objects(&self.ctx, ws),
            (Owner::Namespace(ns), _) => namespace_objects(&self.ctx, ns),
            (Owner::Workspace(_), None) => Ok(Vec::new()),
        };
        r.unwrap_or_else(|e| {
            tracing::warn!("cannot render routing objects: {e}");
            self.metrics.reconcile_errors.inc();
            Vec::new()
        })
    }

    /// Every owner the snapshot implies.
    fn wanted(snap: &Snapshot) -> HashMap<Owner, Option<Arc<Workspace>>> {
        let mut out = HashMap::with_capacity(snap.len() + 16);
        for ws in snap.workspaces() {
            out.insert(Owner::Workspace(ws_key(ws)), Some(ws.clone()));
            out.insert(Owner::Namespace(ws.namespace.clone()), None);
        }
        out
    }

    /// Applies what changed since the last pass and deletes what is no
    /// longer wanted. Returns the number of failed writes.
    pub(crate) async fn incremental(&mut self, snap: &Snapshot) -> usize {
        let wanted = Self::wanted(snap);
        let mut work: Vec<(Owner, Option<Arc<Workspace>>)> = Vec::new();
        for (owner, ws) in &wanted {
            let same = self.owned.get(owner).is_some_and(|o| {
                o.ok && match (&o.ws, ws) {
                    (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a == b,
                    (None, None) => true,
                    _ => false,
                }
            });
            if !same {
                work.push((owner.clone(), ws.clone()));
            }
        }
        let gone: Vec<Owner> = self
            .owned
            .keys()
            .filter(|o| !wanted.contains_key(*o))
            .cloned()
            .collect();
        let mut failures = 0;
        let stale_owned: Vec<ObjectKey> = gone
            .iter()
            .filter_map(|o| self.owned.remove(o))
            .flat_map(|o| o.keys)
            .collect();
        for k in &stale_owned {
            self.applied.remove(k);
        }
        failures += self.delete_many(stale_owned).await;
        // Render, compare and write owner by owner, a bounded number at a
        // time: only those owners' bodies are in memory at once.
        let results: Vec<_> = futures::stream::iter(work.into_iter().map(|(owner, ws)| {
            let this = &*self;
            async move {
                let objs = this.render(&owner, ws.as_deref());
                let keys: Vec<ObjectKey> = objs.iter().map(RoutingObject::key).collect();
                let stale: Vec<ObjectKey> = this
                    .owned
                    .get(&owner)
                    .map(|o| {
                        o.keys
                            .iter()
                            .filter(|k| !keys.contains(k))
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default();
                let mut ok = true;
                let mut applied = Vec::new();
                for obj in objs {
                    let h = hash(&obj.body);
                    let key = obj.key();
                    if this.applied.get(&key) == Some(&h) {
                        continue;
                    }
                    match this.apply(&obj).await {
                        Ok(()) => applied.push((key, h)),
                        Err(e) => {
                            tracing::warn!("{e}");
                            ok = false;
                        }
                    }
                }
                for k in stale {
                    if let Err(e) = this.delete(&k).await {
                        tracing::warn!("{e}");
                        ok = false;
                    }
                }
                (owner, ws, keys, applied, ok)
            }
        }))
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
        for (owner, ws, keys, applied, ok) in results {
            if !ok {
                failures += 1;
            }
            for k in self
                .owned
                .get(&owner)
                .map(|o| o.keys.clone())
                .unwrap_or_default()
            {
                if !keys.contains(&k) {
                    self.applied.remove(&k);
                }
            }
            self.applied.extend(applied);
            self.owned.insert(owner, Owned { ws, keys, ok });
        }
        failures
    }

    /// Which owner wants each object key, from what `incremental` keeps.
    fn key_owners(&self) -> HashMap<ObjectKey, Owner> {
        let mut m = HashMap::with_capacity(self.owned.len() * 3);
        for (owner, o) in &self.owned {
            for k in &o.keys {
                m.insert(k.clone(), owner.clone());
            }
        }
        m
    }

    /// Adopts a snapshot without writing: what each owner wants is
    /// recorded, and nothing counts as applied until seen in the cluster.
    fn adopt(&mut self, snap: &Snapshot) {
        for (owner, ws) in Self::wanted(snap) {
            let keys = self
                .render(&owner, ws.as_deref())
                .iter()
                .map(RoutingObject::key)
                .collect();
            self.owned.insert(owner, Owned { ws, keys, ok: true });
        }
    }

    /// Compares the cluster with the index: deletes orphans, re-applies
    /// drifted or missing objects. At the start of a leadership term
    /// (nothing known yet) objects already in place are not rewritten.
    /// Index changes that arrive meanwhile are handled between list pages,
    /// so a sweep of a large cluster does not hold them up. Returns the
    /// number of failed writes.
    pub(crate) async fn full_sync(&mut self, reader: &mut IndexReader) -> usize {
        if self.owned.is_empty() {
            self.adopt(&reader.current());
        }
        let mut key_owner = self.key_owners();
        let mut failures = 0;
        let mut orphans: Vec<ObjectKey> = Vec::new();
        let mut seen: HashSet<ObjectKey> = HashSet::with_capacity(key_owner.len());
        let mut rendered: Option<(Owner, Vec<RoutingObject>)> = None;
        // Page by page: only one page of existing objects is held at a time.
        for kind in ObjectKind::ALL {
            for api in self.list_apis(kind) {
                let mut lp = ListParams::default().labels(MANAGED_SELECTOR).limit(PAGE);
                loop {
                    if let Some(true) = reader.changed().now_or_never() {
                        failures += self.incremental(&reader.current()).await;
                        key_owner = self.key_owners();
                        rendered = None;
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
                    for obj in page.items {
                        let key = ObjectKey {
                            kind,
                            namespace: obj.metadata.namespace.clone().unwrap_or_default(),
                            name: obj.metadata.name.clone().unwrap_or_default(),
                        };
                        let Some(owner) = key_owner.get(&key) else {
                            if is_ours(&obj) {
                                orphans.push(key);
                            }
                            continue;
                        };
                        // Lists come sorted by namespace/name, so consecutive
                        // objects usually share an owner: render once per owner.
                        if rendered.as_ref().is_none_or(|(o, _)| o != owner) {
                            let ws = self.owned.get(owner).and_then(|o| o.ws.clone());
                            rendered = Some((owner.clone(), self.render(owner, ws.as_deref())));
                        }
                        let want = rendered
                            .as_ref()
                            .and_then(|(_, objs)| objs.iter().find(|o| o.key() == key));
                        if let Some(want) = want {
                            let have = serde_json::to_value(&obj).unwrap_or(Value::Null);
                            if is_subset(&want.body, &have) {
                                self.applied.insert(key.clone(), hash(&want.body));
                                seen.insert(key);
                            }
                        }
                    }
                    match page.metadata.continue_.filter(|c| !c.is_empty()) {
                        Some(c) => lp = lp.continue_token(&c),
                        None => break,
                    }
                }
            }
        }
        drop(rendered);
        // Orphans: only what nothing wants now (a workspace may have been
        // added while the sweep ran).
        let key_owner = self.key_owners();
        orphans.retain(|k| !key_owner.contains_key(k));
        failures += self.delete_many(orphans).await;
        // Whatever was not found in place (missing, or changed by hand) is
        // written again.
        for o in self.owned.values_mut() {
            for k in &o.keys {
                if !seen.contains(k) {
                    self.applied.remove(k);
                    o.ok = false;
                }
            }
        }
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

/// Only objects with the gate's own labels are ever deleted: an object
/// someone else labelled `managed-by: workspace-gate` (the gate's chart, say)
/// is left alone.
fn is_ours(obj: &DynamicObject) -> bool {
    obj.metadata
        .labels
        .as_ref()
        .is_some_and(|l| l.contains_key(WORKSPACE_ID_LABEL) || l.contains_key(FOR_NAMESPACE_LABEL))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subset_ignores_server_added_fields_but_not_changed_ones() {
        let want = json!({"spec": {"rules": [{"host": "a"}]}, "metadata": {"labels": {"x": "1"}}});
        let have = json!({"spec": {"rules": [{"host": "a", "http": {}}], "extra": 1},
            "metadata": {"labels": {"x": "1", "y": "2"}, "resourceVersion": "5"}});
        assert!(is_subset(&want, &have));
        let edited =
            json!({"spec": {"rules": [{"host": "b"}]}, "metadata": {"labels": {"x": "1"}}});
        assert!(!is_subset(&want, &edited));
        let extra_rule = json!({"spec": {"rules": [{"host": "a"}, {"host": "c"}]}, "metadata": {"labels": {"x": "1"}}});
        assert!(!is_subset(&want, &extra_rule));
    }
}
