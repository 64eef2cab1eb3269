//! The reconciler's decisions, without I/O: which owners the index implies,
//! what one owner's objects need (write, delete, leave), and what a sweep of
//! the cluster found (in place, drifted, orphan, someone else's).
//! `apply.rs` lists, calls these, and performs the writes.
//!
//! The [`Ledger`] is what the reconciler remembers between passes: per
//! owner, the workspace it last rendered and the keys it wants, and per
//! object a hash of the body last applied (or found in the cluster
//! matching). Only hashes, never bodies: 10,000 workspaces would cost
//! ~100 MB.

use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use kube::api::DynamicObject;
use serde_json::Value;

use super::render::{
    FOR_NAMESPACE_LABEL, ObjectKey, ObjectKind, RenderContext, RenderError, RoutingObject,
    WORKSPACE_ID_LABEL, namespace_objects, workspace_objects,
};
use crate::workspaces::{Snapshot, Workspace};

/// Who wants an object: one workspace (by Service key) or one namespace
/// (shared objects such as ReferenceGrants).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Owner {
    Workspace(String),
    Namespace(String),
}

/// Every owner the index implies, with the workspace it renders from
/// (none for a namespace).
pub(crate) type Wanted = HashMap<Owner, Option<Arc<Workspace>>>;

/// Every owner `snap` implies: each workspace, and each namespace that has
/// one.
pub(crate) fn wanted(snap: &Snapshot) -> Wanted {
    let mut out = HashMap::with_capacity(snap.len() + 16);
    for ws in snap.workspaces() {
        out.insert(Owner::Workspace(ws_key(ws)), Some(ws.clone()));
        out.insert(Owner::Namespace(ws.namespace.clone()), None);
    }
    out
}

fn ws_key(ws: &Workspace) -> String {
    match &ws.service {
        Some(s) => format!("{}/{}", s.namespace, s.name),
        None => format!("{}/{}", ws.namespace, ws.name),
    }
}

/// The objects `owner` wants. A workspace owner without a workspace wants
/// nothing.
pub(crate) fn desired(
    ctx: &RenderContext,
    owner: &Owner,
    ws: Option<&Workspace>,
) -> Result<Vec<RoutingObject>, RenderError> {
    match (owner, ws) {
        (Owner::Workspace(_), Some(ws)) => workspace_objects(ctx, ws),
        (Owner::Namespace(ns), _) => namespace_objects(ctx, ns),
        (Owner::Workspace(_), None) => Ok(Vec::new()),
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
pub(crate) fn is_subset(want: &Value, have: &Value) -> bool {
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

/// Only objects with the gate's own labels are ever deleted: an object
/// someone else labelled `managed-by: workspace-gate` (the gate's chart, say)
/// is left alone.
fn is_ours(obj: &DynamicObject) -> bool {
    obj.metadata
        .labels
        .as_ref()
        .is_some_and(|l| l.contains_key(WORKSPACE_ID_LABEL) || l.contains_key(FOR_NAMESPACE_LABEL))
}

/// How an owner's last writes went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Every write succeeded.
    Written,
    /// A write failed for a reason that may pass (a dropped connection, a
    /// 5xx, a missing right): the next pass, at the latest the retry tick,
    /// redoes this owner.
    Failed,
    /// The API server refused a body as invalid (schema, CEL rule,
    /// admission policy). The same body would be refused again, so the
    /// owner is redone only when its workspace changes or a full
    /// comparison finds the object still missing.
    Rejected,
}

impl Outcome {
    /// The outcome of two writes of one owner: a failure that may pass
    /// wins (it is retried soon), then a rejection.
    pub(crate) fn and(self, other: Outcome) -> Outcome {
        match (self, other) {
            (Outcome::Failed, _) | (_, Outcome::Failed) => Outcome::Failed,
            (Outcome::Rejected, _) | (_, Outcome::Rejected) => Outcome::Rejected,
            _ => Outcome::Written,
        }
    }
}

/// What the reconciler knows about one owner.
#[derive(Debug)]
struct Owned {
    ws: Option<Arc<Workspace>>,
    keys: Vec<ObjectKey>,
    outcome: Outcome,
}

/// The start of a pass: what to delete at once, which owners to redo.
#[derive(Debug, Default)]
pub(crate) struct Pass {
    /// Every object of the owners nothing wants any more (a deleted
    /// Service, a namespace's last workspace gone).
    pub(crate) delete: Vec<ObjectKey>,
    /// Owners that are new, whose workspace changed, or whose last write
    /// failed.
    pub(crate) redo: Vec<(Owner, Option<Arc<Workspace>>)>,
}

/// What one owner's objects need.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct OwnerPlan {
    /// Objects whose body differs from what was last applied, each with
    /// the hash to record once it is written.
    pub(crate) apply: Vec<(RoutingObject, u64)>,
    /// Objects the owner had and no longer wants (a port removed).
    pub(crate) delete: Vec<ObjectKey>,
    /// Everything the owner wants now.
    pub(crate) keys: Vec<ObjectKey>,
}

/// What the reconciler remembers between passes (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    /// Hash of the body last applied (or found in the cluster matching).
    applied: HashMap<ObjectKey, u64>,
    owned: HashMap<Owner, Owned>,
}

impl Ledger {
    /// Forgets everything (a new leadership term starts from the cluster).
    pub(crate) fn clear(&mut self) {
        self.applied.clear();
        self.owned.clear();
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.owned.is_empty()
    }

    pub(crate) fn has_failures(&self) -> bool {
        self.owned.values().any(|o| o.outcome == Outcome::Failed)
    }

    /// Starts a pass towards `wanted`: owners nothing wants are forgotten
    /// and their objects returned for deletion; the rest that need
    /// rendering again are listed.
    pub(crate) fn pass(&mut self, wanted: &Wanted) -> Pass {
        let redo = wanted
            .iter()
            .filter(|(owner, ws)| {
                !self.owned.get(*owner).is_some_and(|o| {
                    o.outcome != Outcome::Failed
                        && match (&o.ws, ws) {
                            (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a == b,
                            (None, None) => true,
                            _ => false,
                        }
                })
            })
            .map(|(owner, ws)| (owner.clone(), ws.clone()))
            .collect();
        let gone: Vec<Owner> = self
            .owned
            .keys()
            .filter(|o| !wanted.contains_key(*o))
            .cloned()
            .collect();
        let delete: Vec<ObjectKey> = gone
            .iter()
            .filter_map(|o| self.owned.remove(o))
            .flat_map(|o| o.keys)
            .collect();
        for k in &delete {
            self.applied.remove(k);
        }
        Pass { delete, redo }
    }

    /// What `owner` must write and delete so the cluster holds `rendered`.
    /// An object whose body hashes as last applied is skipped. A rendering
    /// error reaches here as no objects, so the owner's objects are deleted.
    pub(crate) fn plan_owner(&self, owner: &Owner, rendered: Vec<RoutingObject>) -> OwnerPlan {
        let keys: Vec<ObjectKey> = rendered.iter().map(RoutingObject::key).collect();
        let delete = self
            .owned
            .get(owner)
            .map(|o| {
                o.keys
                    .iter()
                    .filter(|k| !keys.contains(k))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let apply = rendered
            .into_iter()
            .map(|obj| {
                let h = hash(&obj.body);
                (obj, h)
            })
            .filter(|(obj, h)| self.applied.get(&obj.key()) != Some(h))
            .collect();
        OwnerPlan {
            apply,
            delete,
            keys,
        }
    }

    /// Records an owner's writes: the keys it wants now, the hashes of what
    /// was written, and how the writes went.
    pub(crate) fn record(
        &mut self,
        owner: Owner,
        ws: Option<Arc<Workspace>>,
        keys: Vec<ObjectKey>,
        applied: Vec<(ObjectKey, u64)>,
        outcome: Outcome,
    ) {
        if let Some(old) = self.owned.get(&owner) {
            for k in old.keys.iter().filter(|k| !keys.contains(k)) {
                self.applied.remove(k);
            }
        }
        self.applied.extend(applied);
        self.owned.insert(owner, Owned { ws, keys, outcome });
    }

    /// Adopts `wanted` without writing: what each owner wants is recorded,
    /// and nothing counts as applied until seen in the cluster.
    pub(crate) fn adopt(
        &mut self,
        wanted: Wanted,
        mut render: impl FnMut(&Owner, Option<&Workspace>) -> Vec<RoutingObject>,
    ) {
        for (owner, ws) in wanted {
            let keys = render(&owner, ws.as_deref())
                .iter()
                .map(RoutingObject::key)
                .collect();
            self.owned.insert(
                owner,
                Owned {
                    ws,
                    keys,
                    outcome: Outcome::Written,
                },
            );
        }
    }

    /// Which owner wants each object key.
    fn key_owners(&self) -> HashMap<ObjectKey, Owner> {
        let mut m = HashMap::with_capacity(self.owned.len() * 3);
        for (owner, o) in &self.owned {
            for k in &o.keys {
                m.insert(k.clone(), owner.clone());
            }
        }
        m
    }
}

/// What a sweep made of one listed object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seen {
    /// Matches what its owner wants: not written again.
    InPlace,
    /// Wanted, but edited by hand: the pass after the sweep writes it
    /// again (or deletes it, when its owner no longer renders it).
    Drifted,
    /// Nothing wants it and it carries the gate's own labels: deleted after
    /// the sweep.
    Orphan,
    /// Nothing wants it and only `managed-by` says it is the gate's: left
    /// alone.
    Foreign,
}

/// One comparison of the cluster with the ledger, fed the listed objects
/// page by page, so only one page is held at a time.
#[derive(Debug)]
pub(crate) struct Sweep {
    key_owner: HashMap<ObjectKey, Owner>,
    orphans: Vec<ObjectKey>,
    seen: HashSet<ObjectKey>,
    /// The owner rendered last and its objects: lists come sorted by
    /// namespace/name, so consecutive objects usually share an owner and
    /// each is rendered once.
    rendered: Option<(Owner, Vec<RoutingObject>)>,
}

impl Sweep {
    pub(crate) fn new(ledger: &Ledger) -> Self {
        let key_owner = ledger.key_owners();
        Sweep {
            seen: HashSet::with_capacity(key_owner.len()),
            key_owner,
            orphans: Vec::new(),
            rendered: None,
        }
    }

    /// A pass ran during the sweep: owners are looked up afresh.
    pub(crate) fn index_changed(&mut self, ledger: &Ledger) {
        self.key_owner = ledger.key_owners();
        self.rendered = None;
    }

    /// Judges one listed object of `kind`; one found in place has its hash
    /// recorded in `ledger`, so the pass after the sweep skips it.
    pub(crate) fn observe(
        &mut self,
        ledger: &mut Ledger,
        kind: ObjectKind,
        obj: &DynamicObject,
        mut render: impl FnMut(&Owner, Option<&Workspace>) -> Vec<RoutingObject>,
    ) -> Seen {
        let key = ObjectKey {
            kind,
            namespace: obj.metadata.namespace.clone().unwrap_or_default(),
            name: obj.metadata.name.clone().unwrap_or_default(),
        };
        let Some(owner) = self.key_owner.get(&key) else {
            if is_ours(obj) {
                self.orphans.push(key);
                return Seen::Orphan;
            }
            return Seen::Foreign;
        };
        if self.rendered.as_ref().is_none_or(|(o, _)| o != owner) {
            let ws = ledger.owned.get(owner).and_then(|o| o.ws.clone());
            self.rendered = Some((owner.clone(), render(owner, ws.as_deref())));
        }
        let want = self
            .rendered
            .as_ref()
            .and_then(|(_, objs)| objs.iter().find(|o| o.key() == key));
        let Some(want) = want else {
            return Seen::Drifted;
        };
        let have = serde_json::to_value(obj).unwrap_or(Value::Null);
        if !is_subset(&want.body, &have) {
            return Seen::Drifted;
        }
        ledger.applied.insert(key.clone(), hash(&want.body));
        self.seen.insert(key);
        Seen::InPlace
    }

    /// Ends the sweep. Returns the orphans nothing wants now (a workspace
    /// may have been added while the sweep ran), to delete; every wanted
    /// object not found in place (missing, or changed by hand) is marked
    /// for the next pass to write again.
    pub(crate) fn finish(self, ledger: &mut Ledger) -> Vec<ObjectKey> {
        let key_owner = ledger.key_owners();
        let mut orphans = self.orphans;
        orphans.retain(|k| !key_owner.contains_key(k));
        for o in ledger.owned.values_mut() {
            for k in &o.keys {
                if !self.seen.contains(k) {
                    ledger.applied.remove(k);
                    o.outcome = Outcome::Failed;
                }
            }
        }
        orphans
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::discovery::RoutingMode;
    use crate::discovery::render::tests::{ctx, ws};
    use serde_json::json;

    /// Gateway mode: one HTTPRoute per port, so ports show up as objects.
    /// Without the NetworkPolicy, which is planned like any other object
    /// (its own tests are in `render::netpol` and `tests/discovery_cluster.rs`).
    fn render(owner: &Owner, ws: Option<&Workspace>) -> Vec<RoutingObject> {
        let mut c = ctx(RoutingMode::GatewayApi);
        c.routing.network_policy = None;
        desired(&c, owner, ws).unwrap_or_default()
    }

    fn owner() -> Owner {
        Owner::Workspace("team/ws-1".into())
    }

    fn one_port() -> Workspace {
        let mut w = ws();
        w.hosts.truncate(1);
        w
    }

    fn no_ports() -> Workspace {
        let mut w = ws();
        w.hosts.clear();
        w
    }

    /// A ledger after every object of `w` was written.
    fn written(w: Workspace) -> Ledger {
        let mut l = Ledger::default();
        let plan = l.plan_owner(&owner(), render(&owner(), Some(&w)));
        let applied = plan.apply.iter().map(|(o, h)| (o.key(), *h)).collect();
        l.record(
            owner(),
            Some(Arc::new(w)),
            plan.keys,
            applied,
            Outcome::Written,
        );
        l
    }

    fn names(keys: impl IntoIterator<Item = ObjectKey>) -> Vec<String> {
        let mut v: Vec<String> = keys.into_iter().map(|k| k.name).collect();
        v.sort();
        v
    }

    const EVERY_OBJECT: &[&str] = &["ws-1-3000-wg", "ws-1-60001-wg", "ws-1-wg-auth"];

    /// One row: what was written before, the workspace now, and the names
    /// of the objects the plan must write and delete.
    struct OwnerCase {
        case: &'static str,
        before: Ledger,
        now: Workspace,
        apply: &'static [&'static str],
        delete: &'static [&'static str],
    }

    #[test]
    fn an_owner_writes_what_changed_and_deletes_what_it_no_longer_renders() {
        let cases = [
            OwnerCase {
                case: "new workspace",
                before: Ledger::default(),
                now: ws(),
                apply: EVERY_OBJECT,
                delete: &[],
            },
            OwnerCase {
                case: "unchanged workspace",
                before: written(ws()),
                now: ws(),
                apply: &[],
                delete: &[],
            },
            OwnerCase {
                case: "port added: its route, and the policy naming it",
                before: written(one_port()),
                now: ws(),
                apply: &["ws-1-3000-wg", "ws-1-wg-auth"],
                delete: &[],
            },
            OwnerCase {
                case: "port removed",
                before: written(ws()),
                now: one_port(),
                apply: &["ws-1-wg-auth"],
                delete: &["ws-1-3000-wg"],
            },
            OwnerCase {
                case: "render error (no routable port) counts as wanting nothing",
                before: written(ws()),
                now: no_ports(),
                apply: &[],
                delete: EVERY_OBJECT,
            },
            OwnerCase {
                case: "render error for a new workspace",
                before: Ledger::default(),
                now: no_ports(),
                apply: &[],
                delete: &[],
            },
        ];
        for c in cases {
            let plan = c
                .before
                .plan_owner(&owner(), render(&owner(), Some(&c.now)));
            let applied = names(plan.apply.into_iter().map(|(o, _)| o.key()));
            assert_eq!(applied, c.apply, "{}: apply", c.case);
            assert_eq!(names(plan.delete), c.delete, "{}: delete", c.case);
        }
    }

    /// One row: the ledger before (`None`: empty; otherwise whether the
    /// workspace's last write succeeded), the owners wanted now, and what
    /// the pass must redo and delete.
    struct PassCase {
        case: &'static str,
        last_write: Option<Outcome>,
        now: Wanted,
        redo: Vec<Owner>,
        delete: &'static [&'static str],
    }

    #[test]
    fn a_pass_redoes_new_changed_and_failed_owners_and_drops_unwanted_ones() {
        let w = Arc::new(ws());
        let ns = Owner::Namespace("team".into());
        let snap = |ws: Vec<Workspace>| wanted(&Snapshot::build(ws).unwrap());
        let record = |l: &mut Ledger, w: &Arc<Workspace>, outcome: Outcome| {
            let keys = |o: &Owner, ws| render(o, ws).iter().map(RoutingObject::key).collect();
            l.record(
                owner(),
                Some(w.clone()),
                keys(&owner(), Some(w)),
                vec![],
                outcome,
            );
            l.record(ns.clone(), None, keys(&ns, None), vec![], Outcome::Written);
        };
        let cases = [
            PassCase {
                case: "first pass",
                last_write: None,
                now: snap(vec![ws()]),
                redo: vec![ns.clone(), owner()],
                delete: &[],
            },
            PassCase {
                case: "same workspace",
                last_write: Some(Outcome::Written),
                now: wanted_of(&w),
                redo: vec![],
                delete: &[],
            },
            PassCase {
                case: "an equal copy of the workspace",
                last_write: Some(Outcome::Written),
                now: snap(vec![ws()]),
                redo: vec![],
                delete: &[],
            },
            PassCase {
                case: "changed workspace",
                last_write: Some(Outcome::Written),
                now: snap(vec![one_port()]),
                redo: vec![owner()],
                delete: &[],
            },
            PassCase {
                case: "last write failed",
                last_write: Some(Outcome::Failed),
                now: wanted_of(&w),
                redo: vec![owner()],
                delete: &[],
            },
            PassCase {
                case: "last write refused as invalid, same workspace: not redone",
                last_write: Some(Outcome::Rejected),
                now: wanted_of(&w),
                redo: vec![],
                delete: &[],
            },
            PassCase {
                case: "last write refused as invalid, workspace changed",
                last_write: Some(Outcome::Rejected),
                now: snap(vec![one_port()]),
                redo: vec![owner()],
                delete: &[],
            },
            PassCase {
                case: "Service deleted: its objects and the namespace's grant go",
                last_write: Some(Outcome::Written),
                now: snap(vec![]),
                redo: vec![],
                delete: &[
                    "workspace-gate-from-team",
                    "ws-1-3000-wg",
                    "ws-1-60001-wg",
                    "ws-1-wg-auth",
                ],
            },
        ];
        for c in cases {
            let mut l = Ledger::default();
            if let Some(outcome) = c.last_write {
                record(&mut l, &w, outcome);
            }
            let pass = l.pass(&c.now);
            let mut redo: Vec<Owner> = pass.redo.into_iter().map(|(o, _)| o).collect();
            redo.sort_by_key(|o| format!("{o:?}"));
            assert_eq!(redo, c.redo, "{}: redo", c.case);
            assert_eq!(names(pass.delete), c.delete, "{}: delete", c.case);
            let forgotten = c.last_write.is_none() || !c.delete.is_empty();
            assert_eq!(l.is_empty(), forgotten, "{}: ledger", c.case);
        }
    }

    fn wanted_of(w: &Arc<Workspace>) -> Wanted {
        HashMap::from([
            (owner(), Some(w.clone())),
            (Owner::Namespace("team".into()), None),
        ])
    }

    /// What the API server lists for `obj`: its body plus fields it adds.
    fn listed(obj: &RoutingObject, edit: impl FnOnce(&mut Value)) -> DynamicObject {
        let mut body = obj.body.clone();
        body["metadata"]["resourceVersion"] = json!("7");
        body["status"] = json!({"parents": []});
        edit(&mut body);
        serde_json::from_value(body).unwrap()
    }

    fn stray(name: &str, labels: Value) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": name, "namespace": "team", "labels": labels},
        }))
        .unwrap()
    }

    #[test]
    fn a_sweep_keeps_what_is_in_place_and_finds_hand_edits_and_orphans() {
        let mut ledger = Ledger::default();
        ledger.adopt(wanted_of(&Arc::new(ws())), render);
        let objs = render(&owner(), Some(&ws()));
        let route = objs.iter().find(|o| o.name == "ws-1-3000-wg").unwrap();
        let policy = objs.iter().find(|o| o.name == "ws-1-wg-auth").unwrap();
        let managed = "app.kubernetes.io/managed-by";
        let route_kind = ObjectKind::HttpRoute;
        let cases: [(&str, ObjectKind, DynamicObject, Seen); 6] = [
            (
                "as written, with server fields",
                route_kind,
                listed(route, |_| {}),
                Seen::InPlace,
            ),
            (
                "a field the gate writes changed by hand",
                ObjectKind::SecurityPolicy,
                listed(policy, |b| b["spec"]["extAuth"]["failOpen"] = json!(true)),
                Seen::Drifted,
            ),
            (
                "a workspace's object nothing wants",
                route_kind,
                stray(
                    "old-wg",
                    json!({managed: "workspace-gate", WORKSPACE_ID_LABEL: "9"}),
                ),
                Seen::Orphan,
            ),
            (
                "a namespace's object nothing wants",
                route_kind,
                stray(
                    "old-grant",
                    json!({managed: "workspace-gate", FOR_NAMESPACE_LABEL: "x"}),
                ),
                Seen::Orphan,
            ),
            (
                "only labelled managed-by workspace-gate by someone else",
                route_kind,
                stray("chart", json!({managed: "workspace-gate"})),
                Seen::Foreign,
            ),
            (
                "unlabelled",
                route_kind,
                stray("other", json!({})),
                Seen::Foreign,
            ),
        ];
        let mut sweep = Sweep::new(&ledger);
        for (case, kind, obj, seen) in &cases {
            let got = sweep.observe(&mut ledger, *kind, obj, render);
            assert_eq!(got, *seen, "{case}");
        }
        // The route 60001 was never listed (deleted by hand).
        let orphans = sweep.finish(&mut ledger);
        assert_eq!(names(orphans), ["old-grant", "old-wg"]);
        // The pass after the sweep puts back the edited and the missing
        // object, and leaves the one in place alone.
        let redo = ledger.pass(&wanted_of(&Arc::new(ws()))).redo;
        assert!(redo.iter().any(|(o, _)| *o == owner()));
        let plan = ledger.plan_owner(&owner(), objs.clone());
        assert_eq!(
            names(plan.apply.into_iter().map(|(o, _)| o.key())),
            ["ws-1-60001-wg", "ws-1-wg-auth"]
        );
        assert!(plan.delete.is_empty());
    }

    #[test]
    fn an_orphan_wanted_again_before_the_sweep_ends_is_kept() {
        let mut ledger = Ledger::default();
        let mut sweep = Sweep::new(&ledger);
        let objs = render(&owner(), Some(&ws()));
        let obj = listed(&objs[0], |_| {});
        assert_eq!(
            sweep.observe(&mut ledger, objs[0].kind, &obj, render),
            Seen::Orphan
        );
        // The workspace's Service arrives while the sweep is still listing.
        let w = Arc::new(ws());
        let keys = objs.iter().map(RoutingObject::key).collect();
        ledger.record(owner(), Some(w), keys, Vec::new(), Outcome::Written);
        sweep.index_changed(&ledger);
        assert!(sweep.finish(&mut ledger).is_empty());
    }

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
