//! Watches workspace Services (and, with a namespace selector, Namespaces)
//! and publishes the workspace index.
//!
//! Every watch goes through kube-runtime's `watcher`, which lists, then
//! watches from the list's resourceVersion, resumes after a dropped
//! connection and lists again after `410 Gone`. A relist arrives as
//! `Init, InitApply.., InitDone`: the objects are buffered and swapped in at
//! `InitDone`, so the published index is never empty or partial in between.
//! Nothing is published before every watch has completed its first list;
//! the first publication is what makes the gate ready.

use std::collections::{HashMap, HashSet};

use futures::{Stream, StreamExt, stream::BoxStream};
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};

use super::metrics::DiscoveryMetrics;
use super::service::{AGENT_LABEL, ServiceRules, workspace_from_service};
use crate::config::discovery::NamespaceScope;
use crate::workspaces::{IndexPublisher, Snapshot, Workspace};

/// One event from any of the merged watches. Not boxed: each is moved
/// once from the stream into the state, so the size costs nothing.
#[allow(clippy::large_enum_variant)]
enum Incoming {
    Service(usize, Result<watcher::Event<Service>, watcher::Error>),
    Namespace(Result<watcher::Event<Namespace>, watcher::Error>),
}

/// Objects of one watch, plus the buffer of a list in progress.
struct Source<T> {
    /// True once the first list completed.
    ready: bool,
    /// Lists seen (the first is the start, the rest are restarts).
    lists: u64,
    items: HashMap<String, T>,
    buffer: Option<HashMap<String, T>>,
}

impl<T> Default for Source<T> {
    fn default() -> Self {
        Source {
            ready: false,
            lists: 0,
            items: HashMap::new(),
            buffer: None,
        }
    }
}

impl<T: PartialEq> Source<T> {
    /// Applies one watcher event; returns true when `items` changed (a
    /// Service update that changes nothing the gate reads, such as its
    /// status, does not cost an index rebuild).
    fn apply(&mut self, event: watcher::Event<(String, Option<T>)>) -> bool {
        match event {
            watcher::Event::Init => {
                self.lists += 1;
                self.buffer = Some(HashMap::new());
                false
            }
            watcher::Event::InitApply((key, item)) => {
                if let (Some(buf), Some(item)) = (self.buffer.as_mut(), item) {
                    buf.insert(key, item);
                }
                false
            }
            watcher::Event::InitDone => {
                let first = !self.ready;
                self.ready = true;
                match self.buffer.take() {
                    Some(buf) if buf != self.items => {
                        self.items = buf;
                        true
                    }
                    _ => first,
                }
            }
            watcher::Event::Apply((key, Some(item))) => {
                if self.items.get(&key) == Some(&item) {
                    return false;
                }
                self.items.insert(key, item);
                true
            }
            watcher::Event::Apply((key, None)) | watcher::Event::Delete((key, _)) => {
                self.items.remove(&key).is_some()
            }
        }
    }
}

/// The index as the watches see it; builds snapshots.
pub(crate) struct IndexState {
    rules: ServiceRules,
    services: Vec<Source<Workspace>>,
    /// Present with a namespace selector: the namespaces that match it.
    namespaces: Option<Source<()>>,
    /// Keys rejected at the last build, so a conflict is logged once.
    rejected: HashSet<String>,
    /// Invalid Services per key (bad annotations), for the metric.
    invalid: HashSet<String>,
}

fn key(ns: Option<&str>, name: Option<&str>) -> String {
    format!("{}/{}", ns.unwrap_or(""), name.unwrap_or(""))
}

impl IndexState {
    pub(crate) fn new(rules: ServiceRules, service_watches: usize, namespace_filter: bool) -> Self {
        IndexState {
            rules,
            services: (0..service_watches).map(|_| Source::default()).collect(),
            namespaces: namespace_filter.then(Source::default),
            rejected: HashSet::new(),
            invalid: HashSet::new(),
        }
    }

    /// Converts a Service event; invalid Services are dropped with a warning
    /// (and removed from the index if they were valid before).
    pub(crate) fn on_service(&mut self, source: usize, event: watcher::Event<Service>) -> bool {
        let rules = &self.rules;
        let invalid = &mut self.invalid;
        let mut convert = |svc: Service| {
            let k = key(
                svc.metadata.namespace.as_deref(),
                svc.metadata.name.as_deref(),
            );
            match workspace_from_service(&svc, rules) {
                Ok(ws) => {
                    invalid.remove(&k);
                    (k, Some(ws))
                }
                Err(e) => {
                    if invalid.insert(k.clone()) {
                        tracing::warn!(service = %k, reason = e.metric_label(), "not a usable workspace Service: {e}");
                    }
                    (k, None)
                }
            }
        };
        let event = match event {
            watcher::Event::Init => watcher::Event::Init,
            watcher::Event::InitDone => watcher::Event::InitDone,
            watcher::Event::InitApply(s) => watcher::Event::InitApply(convert(s)),
            watcher::Event::Apply(s) => watcher::Event::Apply(convert(s)),
            watcher::Event::Delete(s) => {
                let k = key(s.metadata.namespace.as_deref(), s.metadata.name.as_deref());
                invalid.remove(&k);
                watcher::Event::Delete((k, None))
            }
        };
        match self.services.get_mut(source) {
            Some(s) => s.apply(event),
            None => false,
        }
    }

    pub(crate) fn on_namespace(&mut self, event: watcher::Event<Namespace>) -> bool {
        let Some(ns) = self.namespaces.as_mut() else {
            return false;
        };
        let name = |n: &Namespace| n.metadata.name.clone().unwrap_or_default();
        let event = match event {
            watcher::Event::Init => watcher::Event::Init,
            watcher::Event::InitDone => watcher::Event::InitDone,
            watcher::Event::InitApply(n) => watcher::Event::InitApply((name(&n), Some(()))),
            watcher::Event::Apply(n) => watcher::Event::Apply((name(&n), Some(()))),
            watcher::Event::Delete(n) => watcher::Event::Delete((name(&n), None)),
        };
        ns.apply(event)
    }

    /// Lists started beyond the first of each watch.
    pub(crate) fn restarts(&self) -> u64 {
        let s: u64 = self
            .services
            .iter()
            .map(|s| s.lists.saturating_sub(1))
            .sum();
        s + self
            .namespaces
            .as_ref()
            .map_or(0, |n| n.lists.saturating_sub(1))
    }

    fn ready(&self) -> bool {
        self.services.iter().all(|s| s.ready) && self.namespaces.as_ref().is_none_or(|n| n.ready)
    }

    /// A complete snapshot, or `None` while a first list is outstanding.
    ///
    /// Workspaces are taken in key order; one that reuses an id or a host
    /// already taken is left out (and logged), so one bad Service cannot
    /// make the whole index unbuildable or steal another workspace's host.
    pub(crate) fn snapshot(&mut self) -> Option<(Snapshot, usize)> {
        if !self.ready() {
            return None;
        }
        let mut all: Vec<(&String, &Workspace)> = self
            .services
            .iter()
            .flat_map(|s| s.items.iter())
            .filter(|(_, ws)| {
                self.namespaces
                    .as_ref()
                    .is_none_or(|n| n.items.contains_key(&ws.namespace))
            })
            .collect();
        all.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut hosts: HashSet<&str> = HashSet::with_capacity(all.len() * 2);
        let mut ids: HashSet<&str> = HashSet::with_capacity(all.len());
        let mut accepted = Vec::with_capacity(all.len());
        let mut rejected = HashSet::new();
        for (k, ws) in all {
            let clash = ids.contains(ws.id.as_str())
                || ws.hosts.iter().any(|h| hosts.contains(h.host.as_str()));
            if clash {
                if !self.rejected.contains(k) {
                    tracing::warn!(service = %k, workspace = %ws.id, "workspace id or host already claimed by another Service; left out of the index");
                }
                rejected.insert(k.clone());
                continue;
            }
            ids.insert(&ws.id);
            hosts.extend(ws.hosts.iter().map(|h| h.host.as_str()));
            accepted.push(ws.clone());
        }
        let bad = rejected.len() + self.invalid.len();
        self.rejected = rejected;
        match Snapshot::build(accepted) {
            Ok(s) => Some((s, bad)),
            // Unreachable after the checks above; never publish a partial index.
            Err(e) => {
                tracing::error!("index build failed: {e}");
                None
            }
        }
    }
}

/// Watches until an unrecoverable error; publishes every change.
pub(crate) async fn run(
    client: Client,
    scope: &NamespaceScope,
    rules: ServiceRules,
    index: IndexPublisher,
    metrics: DiscoveryMetrics,
) -> anyhow::Result<()> {
    let wc = || watcher::Config::default().labels(AGENT_LABEL);
    let mut streams: Vec<BoxStream<'static, Incoming>> = Vec::new();
    let service_apis: Vec<Api<Service>> = match scope {
        NamespaceScope::List(nss) => nss
            .iter()
            .map(|ns| Api::namespaced(client.clone(), ns))
            .collect(),
        NamespaceScope::All | NamespaceScope::Selector(_) => vec![Api::all(client.clone())],
    };
    let watches = service_apis.len();
    for (i, api) in service_apis.into_iter().enumerate() {
        streams.push(tag(watcher(api, wc()), move |r| Incoming::Service(i, r)));
    }
    let filter = if let NamespaceScope::Selector(sel) = scope {
        let api: Api<Namespace> = Api::all(client.clone());
        streams.push(tag(
            watcher(api, watcher::Config::default().labels(sel)),
            Incoming::Namespace,
        ));
        true
    } else {
        false
    };
    let mut state = IndexState::new(rules, watches, filter);
    // Handle every event already waiting before building one snapshot, so
    // a burst (a list page, a busy cluster) costs one rebuild, not one each.
    let mut events = futures::stream::select_all(streams).ready_chunks(4096);
    let mut restarts_seen = 0;
    while let Some(batch) = events.next().await {
        let mut changed = false;
        for ev in batch {
            changed |= match ev {
                Incoming::Service(i, Ok(e)) => state.on_service(i, e),
                Incoming::Namespace(Ok(e)) => state.on_namespace(e),
                Incoming::Service(_, Err(e)) | Incoming::Namespace(Err(e)) => {
                    tracing::warn!("watch error (retrying with backoff): {e}");
                    false
                }
            };
        }
        let restarts = state.restarts();
        if restarts > restarts_seen {
            metrics.watch_restarts.inc_by(restarts - restarts_seen);
            restarts_seen = restarts;
        }
        if changed && let Some((snap, bad)) = state.snapshot() {
            metrics.index_size.set(snap.len() as i64);
            metrics.invalid_services.set(bad as i64);
            index.publish(snap);
        }
    }
    anyhow::bail!("the Kubernetes watch streams ended")
}

/// A watcher stream with backoff on errors, mapped to [`Incoming`].
fn tag<K, F>(
    s: impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    f: F,
) -> BoxStream<'static, Incoming>
where
    K: Send + 'static,
    F: Fn(Result<watcher::Event<K>, watcher::Error>) -> Incoming + Send + 'static,
{
    s.default_backoff().map(f).boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> ServiceRules {
        ServiceRules {
            owner_id_annotation: "o".into(),
            owner_username_annotation: "u".into(),
            workspace_domain: "workspaces.test".into(),
            ssh_port: 60022,
            cluster_domain: "cluster.local".into(),
        }
    }

    fn svc(name: &str, id: &str, host_label: &str) -> Service {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"),
                "annotations": {
                    "workspaces.gitlab.com/host-template": format!("{{{{.port}}}}-{host_label}.workspaces.test"),
                    "workspaces.gitlab.com/id": id}},
            "spec": {"ports": [{"port": 80}]}
        }))
        .unwrap()
    }

    #[test]
    fn nothing_is_published_before_the_first_list_completes() {
        let mut st = IndexState::new(rules(), 1, false);
        st.on_service(0, watcher::Event::Init);
        st.on_service(0, watcher::Event::InitApply(svc("a", "1", "a")));
        assert!(st.snapshot().is_none());
        st.on_service(0, watcher::Event::InitDone);
        assert_eq!(st.snapshot().unwrap().0.len(), 1);
    }

    #[test]
    fn a_relist_replaces_the_index_only_when_complete() {
        let mut st = IndexState::new(rules(), 1, false);
        st.on_service(0, watcher::Event::Init);
        st.on_service(0, watcher::Event::InitApply(svc("a", "1", "a")));
        st.on_service(0, watcher::Event::InitApply(svc("b", "2", "b")));
        st.on_service(0, watcher::Event::InitDone);
        // Relist: while it runs the old items stay.
        st.on_service(0, watcher::Event::Init);
        st.on_service(0, watcher::Event::InitApply(svc("a", "1", "a")));
        assert_eq!(st.snapshot().unwrap().0.len(), 2);
        assert!(
            st.on_service(0, watcher::Event::InitDone),
            "a relist that changed items"
        );
        assert_eq!(st.snapshot().unwrap().0.len(), 1);
        assert_eq!(st.restarts(), 1);
        // The same list again, and an unchanged update, change nothing.
        st.on_service(0, watcher::Event::Init);
        st.on_service(0, watcher::Event::InitApply(svc("a", "1", "a")));
        assert!(!st.on_service(0, watcher::Event::InitDone));
        assert!(!st.on_service(0, watcher::Event::Apply(svc("a", "1", "a"))));
        assert!(st.on_service(0, watcher::Event::Apply(svc("a", "1", "b"))));
    }

    #[test]
    fn a_service_claiming_a_taken_host_is_left_out() {
        let mut st = IndexState::new(rules(), 1, false);
        st.on_service(0, watcher::Event::Init);
        st.on_service(0, watcher::Event::InitApply(svc("a", "1", "x")));
        st.on_service(0, watcher::Event::InitApply(svc("b", "2", "x")));
        st.on_service(0, watcher::Event::InitDone);
        let (snap, bad) = st.snapshot().unwrap();
        assert_eq!(snap.len(), 1);
        assert_eq!(snap.by_host("80-x.workspaces.test").unwrap().name, "a");
        assert_eq!(bad, 1);
    }

    #[test]
    fn a_service_with_a_blank_owner_annotation_is_left_out() {
        let mut st = IndexState::new(rules(), 1, false);
        let mut blank = svc("b", "2", "b");
        blank
            .metadata
            .annotations
            .as_mut()
            .unwrap()
            .insert("o".into(), " ".into());
        st.on_service(0, watcher::Event::Init);
        st.on_service(0, watcher::Event::InitApply(svc("a", "1", "a")));
        st.on_service(0, watcher::Event::InitApply(blank));
        st.on_service(0, watcher::Event::InitDone);
        let (snap, _) = st.snapshot().unwrap();
        assert_eq!(snap.len(), 1);
        assert!(snap.by_id("2").is_none());
    }

    #[test]
    fn namespace_selector_filters_workspaces() {
        let mut st = IndexState::new(rules(), 1, true);
        st.on_service(0, watcher::Event::Init);
        st.on_service(0, watcher::Event::InitApply(svc("a", "1", "a")));
        st.on_service(0, watcher::Event::InitDone);
        assert!(st.snapshot().is_none(), "namespaces not listed yet");
        st.on_namespace(watcher::Event::Init);
        st.on_namespace(watcher::Event::InitDone);
        assert_eq!(st.snapshot().unwrap().0.len(), 0);
        let ns: Namespace =
            serde_json::from_value(serde_json::json!({"metadata": {"name": "ns"}})).unwrap();
        st.on_namespace(watcher::Event::Apply(ns));
        assert_eq!(st.snapshot().unwrap().0.len(), 1);
    }
}
