//! A Kubernetes API server double for discovery tests and the benchmark.
//!
//! Real HTTP on 127.0.0.1 (port 0), spoken to by a real kube-rs `Client`.
//! It stores any resource under `/api/v1/...` and `/apis/<group>/<version>/...`
//! generically and implements what the gate uses:
//!
//! - get, list (label selectors `k`, `!k`, `k=v`, `k!=v`; `limit` +
//!   `continue` pages), create (POST), replace (PUT, with resourceVersion
//!   preconditions -> 409), delete;
//! - watch from a resourceVersion, with `ADDED`/`MODIFIED`/`DELETED`
//!   (selector-aware: an object that stops matching arrives as `DELETED`),
//!   periodic `BOOKMARK`s, and an in-stream `ERROR` 410 Gone when the
//!   version was compacted away ([`KubeApi::compact`]);
//! - server-side apply (`PATCH application/apply-patch+yaml`): create, or
//!   merge by field manager, tracking which manager owns which field, with
//!   conflicts (409) unless `force=true`, and removal of fields a manager
//!   stopped applying; JSON merge patch for "hand edits".
//!
//! What it does NOT emulate: authentication and RBAC, admission (defaulting,
//! validation against schemas), garbage collection by ownerReference,
//! finalizers and graceful deletion, `generation`/status, field selectors,
//! set-based label selectors (`in`, `notin`), list-map merge keys in
//! server-side apply (every list is atomic), consistent snapshots across
//! list pages, streaming lists (`sendInitialEvents`), discovery endpoints,
//! protobuf, and API priority and fairness.
//!
//! A path prefix `/client/<name>/` names the caller (give each replica its
//! own `cluster_url`), so tests can tell which replica wrote.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};

/// Which collection an object belongs to: (group, plural).
type ResKey = (String, String);
type FieldPath = Vec<String>;

#[derive(Clone, Debug)]
struct Stored {
    value: Value,
    /// Field manager -> the leaf fields it owns.
    managers: BTreeMap<String, BTreeSet<FieldPath>>,
}

#[derive(Clone, Debug)]
struct Event {
    rv: u64,
    res: ResKey,
    namespace: String,
    /// State before and after (None: did not exist / deleted).
    old: Option<Value>,
    new: Option<Value>,
}

#[derive(Default)]
struct Store {
    rv: u64,
    /// Watches from a version below this get 410 Gone.
    compacted: u64,
    objects: HashMap<ResKey, BTreeMap<(String, String), Stored>>,
    log: VecDeque<Event>,
}

/// One request, as an authorizer would see it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Access {
    pub client: String,
    /// RBAC verb: get, list, watch, create, update, patch, delete. A
    /// server-side apply that creates its object is logged twice, as
    /// `patch` and `create`, because Kubernetes authorizes both.
    pub verb: String,
    pub group: String,
    pub resource: String,
    /// None for a cluster-wide request.
    pub namespace: Option<String>,
    pub name: Option<String>,
}

/// Requests seen, by verb, and writes by client name.
#[derive(Default, Debug, Clone)]
pub struct RequestCounts {
    /// Every request, in order.
    pub log: Vec<Access>,
    pub by_verb: BTreeMap<String, u64>,
    /// (client, verb, kind plural, namespace/name) of every write.
    pub writes: Vec<(String, String, String, String)>,
}

impl RequestCounts {
    pub fn total(&self) -> u64 {
        self.by_verb.values().sum()
    }
    pub fn verb(&self, v: &str) -> u64 {
        self.by_verb.get(v).copied().unwrap_or(0)
    }
}

struct Shared {
    store: Mutex<Store>,
    events: broadcast::Sender<Arc<Event>>,
    /// Bumped to end every open watch (a dropped connection).
    drop_watches: watch::Sender<u64>,
    requests: Mutex<RequestCounts>,
    list_delay: Mutex<Duration>,
    bookmark_interval: Duration,
    /// Cap on the log of events kept for watch resumption.
    log_cap: usize,
}

/// A running API server double; stops when dropped.
pub struct KubeApi {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for KubeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl KubeApi {
    pub async fn start() -> KubeApi {
        Self::start_with(Duration::from_millis(500)).await
    }

    pub async fn start_with(bookmark_interval: Duration) -> KubeApi {
        let (events, _) = broadcast::channel(1 << 16);
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::default()),
            events,
            drop_watches: watch::channel(0).0,
            requests: Mutex::new(RequestCounts::default()),
            list_delay: Mutex::new(Duration::ZERO),
            bookmark_interval,
            log_cap: 200_000,
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let s = shared.clone();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let s = s.clone();
                async move { handle(s, method, uri, headers, body).await }
            },
        );
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        KubeApi { addr, shared, task }
    }

    /// Base URL for a client called `name`.
    pub fn url(&self, name: &str) -> String {
        format!("http://{}/client/{name}", self.addr)
    }

    /// A kube client for this server, identified as `name`.
    pub fn client(&self, name: &str) -> kube::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut cfg = kube::Config::new(self.url(name).parse().expect("url"));
        cfg.read_timeout = Some(Duration::from_secs(600));
        kube::Client::try_from(cfg).expect("kube client")
    }

    pub fn requests(&self) -> RequestCounts {
        self.shared.requests.lock().unwrap().clone()
    }

    pub fn reset_requests(&self) {
        *self.shared.requests.lock().unwrap() = RequestCounts::default();
    }

    /// Makes every list answer only after `d` (to widen race windows).
    pub fn set_list_delay(&self, d: Duration) {
        *self.shared.list_delay.lock().unwrap() = d;
    }

    /// Ends every open watch stream, as a dropped connection would.
    pub fn drop_watches(&self) {
        self.shared.drop_watches.send_modify(|g| *g += 1);
    }

    /// Forgets history: a watch resuming from any version seen so far gets
    /// 410 Gone and must list again.
    pub fn compact(&self) {
        let mut st = self.shared.store.lock().unwrap();
        st.rv += 1;
        st.compacted = st.rv;
        st.log.clear();
    }

    /// The stored object, if any (`group` is "" for core kinds).
    pub fn get(&self, group: &str, plural: &str, ns: &str, name: &str) -> Option<Value> {
        let st = self.shared.store.lock().unwrap();
        st.objects
            .get(&(group.to_string(), plural.to_string()))
            .and_then(|m| m.get(&(ns.to_string(), name.to_string())))
            .map(|o| o.value.clone())
    }

    /// Every stored object of a collection, sorted by namespace/name.
    pub fn list(&self, group: &str, plural: &str) -> Vec<Value> {
        let st = self.shared.store.lock().unwrap();
        st.objects
            .get(&(group.to_string(), plural.to_string()))
            .map(|m| m.values().map(|o| o.value.clone()).collect())
            .unwrap_or_default()
    }

    /// The field managers of an object.
    pub fn managers(&self, group: &str, plural: &str, ns: &str, name: &str) -> Vec<String> {
        let st = self.shared.store.lock().unwrap();
        st.objects
            .get(&(group.to_string(), plural.to_string()))
            .and_then(|m| m.get(&(ns.to_string(), name.to_string())))
            .map(|o| o.managers.keys().cloned().collect())
            .unwrap_or_default()
    }
}

fn status(code: u16, reason: &str, message: impl Into<String>) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message.into(), "reason": reason, "code": code,
    });
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn ok_json(code: StatusCode, v: &Value) -> Response {
    (code, [("content-type", "application/json")], v.to_string()).into_response()
}

/// A parsed request path.
#[derive(Clone)]
struct Target {
    client: String,
    group: String,
    version: String,
    plural: String,
    /// None: all namespaces (or a cluster-scoped kind).
    namespace: Option<String>,
    name: Option<String>,
}

impl Target {
    fn res(&self) -> ResKey {
        (self.group.clone(), self.plural.clone())
    }
    fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
    fn kind(&self) -> String {
        kind_of(&self.plural)
    }
}

fn kind_of(plural: &str) -> String {
    match plural {
        "services" => "Service",
        "namespaces" => "Namespace",
        "leases" => "Lease",
        "ingresses" => "Ingress",
        "middlewares" => "Middleware",
        "httproutes" => "HTTPRoute",
        "securitypolicies" => "SecurityPolicy",
        "referencegrants" => "ReferenceGrant",
        "configmaps" => "ConfigMap",
        other => return other.trim_end_matches('s').to_string(),
    }
    .to_string()
}

fn parse_path(path: &str) -> Option<Target> {
    let mut segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let mut client = "default".to_string();
    if segs.first() == Some(&"client") && segs.len() > 2 {
        client = segs[1].to_string();
        segs.drain(..2);
    }
    let (group, version, rest) = match *segs.first()? {
        "api" => (String::new(), segs.get(1)?.to_string(), &segs[2..]),
        "apis" => (
            segs.get(1)?.to_string(),
            segs.get(2)?.to_string(),
            &segs[3..],
        ),
        _ => return None,
    };
    let (namespace, plural, name) = match rest {
        ["namespaces", ns, plural] => (Some(ns.to_string()), plural.to_string(), None),
        ["namespaces", ns, plural, name] => (
            Some(ns.to_string()),
            plural.to_string(),
            Some(name.to_string()),
        ),
        [plural] => (None, plural.to_string(), None),
        [plural, name] => (None, plural.to_string(), Some(name.to_string())),
        _ => return None,
    };
    Some(Target {
        client,
        group,
        version,
        plural,
        namespace,
        name,
    })
}

fn query_map(uri: &Uri) -> HashMap<String, String> {
    uri.query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

async fn handle(
    s: Arc<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // Out-of-band control for a double running in another process (the
    // benchmark): request counts, and resetting them.
    match uri.path() {
        "/_stats" => {
            let r = s.requests.lock().unwrap();
            return ok_json(
                StatusCode::OK,
                &json!({"total": r.total(), "by_verb": r.by_verb}),
            );
        }
        "/_reset" => {
            *s.requests.lock().unwrap() = RequestCounts::default();
            return ok_json(StatusCode::OK, &json!({}));
        }
        _ => {}
    }
    let Some(t) = parse_path(uri.path()) else {
        return status(404, "NotFound", format!("no route {}", uri.path()));
    };
    let q = query_map(&uri);
    let is_watch = q.get("watch").is_some_and(|w| w == "true" || w == "1");
    let verb = match (&method, t.name.is_some(), is_watch) {
        (&Method::GET, _, true) => "watch",
        (&Method::GET, false, _) => "list",
        (&Method::GET, true, _) => "get",
        (&Method::POST, _, _) => "create",
        (&Method::PUT, _, _) => "update",
        (&Method::PATCH, _, _) => "patch",
        (&Method::DELETE, _, _) => "delete",
        _ => "other",
    };
    {
        let mut r = s.requests.lock().unwrap();
        *r.by_verb.entry(verb.to_string()).or_default() += 1;
        if matches!(verb, "create" | "update" | "patch" | "delete") {
            r.writes.push((
                t.client.clone(),
                verb.to_string(),
                t.plural.clone(),
                format!(
                    "{}/{}",
                    t.namespace.clone().unwrap_or_default(),
                    t.name.clone().unwrap_or_default()
                ),
            ));
        }
    }
    let access = |verb: &str| Access {
        client: t.client.clone(),
        verb: verb.to_string(),
        group: t.group.clone(),
        resource: t.plural.clone(),
        namespace: t.namespace.clone(),
        name: t.name.clone(),
    };
    s.requests.lock().unwrap().log.push(access(verb));
    let response = answer(&s, &t, &q, &headers, body, verb).await;
    if verb == "patch" && response.status() == StatusCode::CREATED {
        s.requests.lock().unwrap().log.push(access("create"));
    }
    response
}

async fn answer(
    s: &Arc<Shared>,
    t: &Target,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    body: Bytes,
    verb: &str,
) -> Response {
    match verb {
        "watch" => watch_stream(s.clone(), t.clone(), q.clone()),
        "list" => {
            let delay = *s.list_delay.lock().unwrap();
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            list(s, t, q)
        }
        "get" => {
            let st = s.store.lock().unwrap();
            match st.objects.get(&t.res()).and_then(|m| {
                m.get(&(
                    t.namespace.clone().unwrap_or_default(),
                    t.name.clone().unwrap_or_default(),
                ))
            }) {
                Some(o) => ok_json(StatusCode::OK, &o.value),
                None => status(
                    404,
                    "NotFound",
                    format!("{} {:?} not found", t.plural, t.name),
                ),
            }
        }
        "create" => write(s, t, q, headers, body, Write::Create),
        "update" => write(s, t, q, headers, body, Write::Replace),
        "patch" => write(s, t, q, headers, body, Write::Patch),
        "delete" => delete(s, t),
        _ => status(405, "MethodNotAllowed", "unsupported"),
    }
}

// ---------- label selectors ----------

fn labels_of(v: &Value) -> BTreeMap<String, String> {
    v.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

fn matches_selector(sel: Option<&String>, v: &Value) -> bool {
    let Some(sel) = sel.filter(|s| !s.trim().is_empty()) else {
        return true;
    };
    let labels = labels_of(v);
    sel.split(',').map(str::trim).all(|term| {
        if let Some(k) = term.strip_prefix('!') {
            !labels.contains_key(k)
        } else if let Some((k, val)) = term.split_once("!=") {
            labels.get(k.trim()).map(String::as_str) != Some(val.trim())
        } else if let Some((k, val)) = term.split_once("==").or_else(|| term.split_once('=')) {
            labels.get(k.trim()).map(String::as_str) == Some(val.trim())
        } else {
            labels.contains_key(term)
        }
    })
}

// ---------- list ----------

fn list(s: &Shared, t: &Target, q: &HashMap<String, String>) -> Response {
    let st = s.store.lock().unwrap();
    let limit: usize = q
        .get("limit")
        .and_then(|l| l.parse().ok())
        .filter(|l| *l > 0)
        .unwrap_or(usize::MAX);
    // continue token: "<rv>|<namespace>|<name>" of the last item sent.
    let (list_rv, after) = match q.get("continue").filter(|c| !c.is_empty()) {
        Some(c) => {
            let mut p = c.splitn(3, '|');
            let rv = p.next().and_then(|r| r.parse().ok()).unwrap_or(st.rv);
            let ns = p.next().unwrap_or_default().to_string();
            let name = p.next().unwrap_or_default().to_string();
            (rv, Some((ns, name)))
        }
        None => (st.rv, None),
    };
    let empty = BTreeMap::new();
    let coll = st.objects.get(&t.res()).unwrap_or(&empty);
    let range: Box<dyn Iterator<Item = (&(String, String), &Stored)>> = match &after {
        Some(a) => Box::new(coll.range((
            std::ops::Bound::Excluded(a.clone()),
            std::ops::Bound::Unbounded,
        ))),
        None => Box::new(coll.iter()),
    };
    let sel = q.get("labelSelector");
    let mut items = Vec::new();
    let mut last = None;
    let mut more = false;
    for (k, o) in range {
        if let Some(ns) = &t.namespace
            && &k.0 != ns
        {
            continue;
        }
        if !matches_selector(sel, &o.value) {
            continue;
        }
        if items.len() == limit {
            more = true;
            break;
        }
        items.push(o.value.clone());
        last = Some(k.clone());
    }
    let cont = match (more, last) {
        (true, Some((ns, name))) => format!("{list_rv}|{ns}|{name}"),
        _ => String::new(),
    };
    let body = json!({
        "apiVersion": t.api_version(),
        "kind": format!("{}List", t.kind()),
        "metadata": {"resourceVersion": list_rv.to_string(), "continue": cont},
        "items": items,
    });
    ok_json(StatusCode::OK, &body)
}

// ---------- watch ----------

fn watch_line(kind: &str, obj: &Value) -> Bytes {
    let mut s = json!({"type": kind, "object": obj}).to_string();
    s.push('\n');
    Bytes::from(s)
}

/// The event as this watch (namespace, selector) sees it, if at all.
fn view(ev: &Event, t: &Target, sel: Option<&String>) -> Option<Bytes> {
    if ev.res != t.res() {
        return None;
    }
    if let Some(ns) = &t.namespace
        && &ev.namespace != ns
    {
        return None;
    }
    let was = ev.old.as_ref().is_some_and(|o| matches_selector(sel, o));
    let is = ev.new.as_ref().is_some_and(|n| matches_selector(sel, n));
    match (was, is, &ev.new) {
        (false, true, Some(n)) => Some(watch_line("ADDED", n)),
        (true, true, Some(n)) => Some(watch_line("MODIFIED", n)),
        // Deleted, or no longer matching the selector.
        (true, false, Some(n)) => Some(watch_line("DELETED", n)),
        (true, false, None) => ev.old.as_ref().map(|o| watch_line("DELETED", o)),
        _ => None,
    }
}

fn watch_stream(s: Arc<Shared>, t: Target, q: HashMap<String, String>) -> Response {
    let sel = q.get("labelSelector").cloned();
    let bookmarks = q.get("allowWatchBookmarks").is_some_and(|b| b == "true");
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(1800));
    let from: Option<u64> = q
        .get("resourceVersion")
        .and_then(|r| r.parse().ok())
        .filter(|r| *r > 0);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1024);
    let mut drops = s.drop_watches.subscribe();
    drops.borrow_and_update();
    // Under the lock: the backlog, and a subscription that starts exactly
    // after it (events are broadcast while the lock is held).
    let (backlog, mut live, mut last_rv, gone) = {
        let st = s.store.lock().unwrap();
        let live = s.events.subscribe();
        match from {
            Some(rv) if rv < st.compacted => (Vec::new(), live, st.rv, true),
            Some(rv) => {
                let b: Vec<Bytes> = st
                    .log
                    .iter()
                    .filter(|e| e.rv > rv)
                    .filter_map(|e| view(e, &t, sel.as_ref()))
                    .collect();
                (b, live, st.rv, false)
            }
            None => {
                // No version: current objects as ADDED, then changes.
                let b: Vec<Bytes> = st
                    .objects
                    .get(&t.res())
                    .map(|m| {
                        m.iter()
                            .filter(|(k, _)| t.namespace.as_ref().is_none_or(|ns| &k.0 == ns))
                            .filter(|(_, o)| matches_selector(sel.as_ref(), &o.value))
                            .map(|(_, o)| watch_line("ADDED", &o.value))
                            .collect()
                    })
                    .unwrap_or_default();
                (b, live, st.rv, false)
            }
        }
    };
    let kind = t.kind();
    let api_version = t.api_version();
    let interval = s.bookmark_interval;
    tokio::spawn(async move {
        if gone {
            let err = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "too old resource version", "reason": "Expired", "code": 410});
            let _ = tx.send(Ok(watch_line("ERROR", &err))).await;
            return;
        }
        for b in backlog {
            if tx.send(Ok(b)).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut tick = tokio::time::interval(interval);
        loop {
            tokio::select! {
                ev = live.recv() => match ev {
                    Ok(ev) => {
                        last_rv = last_rv.max(ev.rv);
                        if let Some(b) = view(&ev, &t, sel.as_ref())
                            && tx.send(Ok(b)).await.is_err() {
                            return;
                        }
                    }
                    // Too slow a reader: like the real server, end the watch.
                    Err(_) => return,
                },
                _ = tick.tick(), if bookmarks => {
                    let bm = json!({"kind": kind, "apiVersion": api_version,
                        "metadata": {"resourceVersion": last_rv.to_string()}});
                    if tx.send(Ok(watch_line("BOOKMARK", &bm))).await.is_err() {
                        return;
                    }
                }
                _ = drops.changed() => return,
                _ = &mut deadline => return,
            }
        }
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    (StatusCode::OK, [("content-type", "application/json")], body).into_response()
}

// ---------- writes ----------

enum Write {
    Create,
    Replace,
    Patch,
}

fn leaves(v: &Value, prefix: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                prefix.push(k.clone());
                leaves(child, prefix, out);
                prefix.pop();
            }
        }
        _ => {
            out.insert(prefix.clone());
        }
    }
}

/// Leaf fields of an object a manager can own (identity and server-set
/// metadata excluded).
fn owned_fields(v: &Value) -> BTreeSet<FieldPath> {
    let mut out = BTreeSet::new();
    leaves(v, &mut Vec::new(), &mut out);
    out.retain(|p| {
        let top = p.first().map(String::as_str);
        let meta = p.get(1).map(String::as_str);
        !(matches!(top, Some("apiVersion" | "kind" | "status"))
            || (top == Some("metadata")
                && matches!(
                    meta,
                    Some(
                        "name"
                            | "namespace"
                            | "uid"
                            | "resourceVersion"
                            | "creationTimestamp"
                            | "managedFields"
                            | "generation"
                    )
                )))
    });
    out
}

fn get_path<'a>(v: &'a Value, p: &FieldPath) -> Option<&'a Value> {
    p.iter().try_fold(v, |cur, k| cur.get(k))
}

fn set_path(v: &mut Value, p: &FieldPath, val: Value) {
    let mut cur = v;
    for (i, k) in p.iter().enumerate() {
        if !cur.is_object() {
            *cur = json!({});
        }
        let m = cur.as_object_mut().expect("object");
        if i == p.len() - 1 {
            m.insert(k.clone(), val);
            return;
        }
        cur = m.entry(k.clone()).or_insert_with(|| json!({}));
    }
}

fn remove_path(v: &mut Value, p: &FieldPath) {
    fn rec(cur: &mut Value, p: &[String]) {
        let Some(m) = cur.as_object_mut() else { return };
        if p.len() == 1 {
            m.remove(&p[0]);
            return;
        }
        if let Some(child) = m.get_mut(&p[0]) {
            rec(child, &p[1..]);
            if child.as_object().is_some_and(|c| c.is_empty()) && p[0] != "metadata" {
                m.remove(&p[0]);
            }
        }
    }
    rec(v, p);
}

/// Two field paths overlap when one is a prefix of the other.
fn overlaps(a: &FieldPath, b: &FieldPath) -> bool {
    let n = a.len().min(b.len());
    a[..n] == b[..n]
}

fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            let t = target.as_object_mut().expect("object");
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

fn write(
    s: &Shared,
    t: &Target,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    body: Bytes,
    kind: Write,
) -> Response {
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let manager = q
        .get("fieldManager")
        .cloned()
        .unwrap_or_else(|| "unknown".to_string());
    let force = q.get("force").is_some_and(|f| f == "true");
    // apply-patch+yaml bodies from kube-rs are JSON, which is YAML.
    let input: Value = if ct.contains("yaml") {
        match serde_yaml::from_slice(&body) {
            Ok(v) => v,
            Err(e) => return status(400, "BadRequest", format!("bad yaml: {e}")),
        }
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => return status(400, "BadRequest", format!("bad json: {e}")),
        }
    };
    let name = match (
        &t.name,
        input.pointer("/metadata/name").and_then(Value::as_str),
    ) {
        (Some(n), _) => n.clone(),
        (None, Some(n)) => n.to_string(),
        (None, None) => return status(422, "Invalid", "metadata.name is required"),
    };
    if let Some(body_name) = input.pointer("/metadata/name").and_then(Value::as_str)
        && body_name != name
    {
        return status(400, "BadRequest", "name in body does not match the URL");
    }
    let ns = t.namespace.clone().unwrap_or_default();
    let key = (ns.clone(), name.clone());
    let mut st = s.store.lock().unwrap();
    let existing = st.objects.get(&t.res()).and_then(|m| m.get(&key)).cloned();
    let previous = existing.clone();
    let result: Result<Stored, Response> = match kind {
        Write::Create => match existing {
            Some(_) => Err(status(
                409,
                "AlreadyExists",
                format!("{} {name} already exists", t.plural),
            )),
            None => Ok(Stored {
                managers: BTreeMap::from([(manager.clone(), owned_fields(&input))]),
                value: input,
            }),
        },
        Write::Replace => match existing {
            None => Err(status(
                404,
                "NotFound",
                format!("{} {name} not found", t.plural),
            )),
            Some(old) => {
                let want_rv = input
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let have_rv = old
                    .value
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                if !want_rv.is_empty() && want_rv != have_rv {
                    Err(status(
                        409,
                        "Conflict",
                        "the object has been modified; please apply your changes to the latest version and try again",
                    ))
                } else {
                    Ok(take_changed(old, input, &manager))
                }
            }
        },
        Write::Patch if ct.starts_with("application/apply-patch") => {
            server_side_apply(existing, input, &manager, force)
        }
        Write::Patch => match existing {
            None => Err(status(
                404,
                "NotFound",
                format!("{} {name} not found", t.plural),
            )),
            Some(old) => {
                let mut new = old.value.clone();
                merge_patch(&mut new, &input);
                Ok(take_changed(old, new, &manager))
            }
        },
    };
    let mut stored = match result {
        Ok(s) => s,
        Err(r) => return r,
    };
    st.rv += 1;
    let rv = st.rv;
    let existing = previous;
    let created = existing.is_none();
    let uid = existing
        .as_ref()
        .and_then(|e| e.value.pointer("/metadata/uid").cloned())
        .unwrap_or_else(|| Value::String(uuid::Uuid::new_v4().to_string()));
    let created_at = existing
        .as_ref()
        .and_then(|e| e.value.pointer("/metadata/creationTimestamp").cloned())
        .unwrap_or_else(|| {
            Value::String(
                humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            )
        });
    {
        let v = &mut stored.value;
        if !v.is_object() {
            *v = json!({});
        }
        v["apiVersion"] = Value::String(t.api_version());
        v["kind"] = Value::String(t.kind());
        if !v["metadata"].is_object() {
            v["metadata"] = json!({});
        }
        let m = &mut v["metadata"];
        m["name"] = Value::String(name.clone());
        if !ns.is_empty() {
            m["namespace"] = Value::String(ns.clone());
        }
        m["uid"] = uid;
        m["resourceVersion"] = Value::String(rv.to_string());
        m["creationTimestamp"] = created_at;
        m["managedFields"] = Value::Array(
            stored
                .managers
                .keys()
                .map(|mgr| json!({"manager": mgr, "operation": "Apply", "apiVersion": t.api_version(), "fieldsType": "FieldsV1"}))
                .collect(),
        );
    }
    let value = stored.value.clone();
    st.objects.entry(t.res()).or_default().insert(key, stored);
    let ev = Event {
        rv,
        res: t.res(),
        namespace: ns,
        old: existing.map(|e| e.value),
        new: Some(value.clone()),
    };
    push_event(s, &mut st, ev);
    ok_json(
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        &value,
    )
}

/// A non-apply write: the writer takes every field whose value changed.
fn take_changed(old: Stored, new: Value, manager: &str) -> Stored {
    let before = owned_fields(&old.value);
    let after = owned_fields(&new);
    let changed: BTreeSet<FieldPath> = after
        .iter()
        .filter(|p| !before.contains(*p) || get_path(&old.value, p) != get_path(&new, p))
        .cloned()
        .collect();
    let mut managers = old.managers;
    for fields in managers.values_mut() {
        fields.retain(|p| after.contains(p) && !changed.iter().any(|c| overlaps(c, p)));
    }
    managers
        .entry(manager.to_string())
        .or_default()
        .extend(changed);
    managers.retain(|_, f| !f.is_empty());
    Stored {
        value: new,
        managers,
    }
}

/// Server-side apply of `applied` by `manager`. The error is the ready
/// HTTP answer (409); its size does not matter in a test double.
#[allow(clippy::result_large_err)]
fn server_side_apply(
    existing: Option<Stored>,
    applied: Value,
    manager: &str,
    force: bool,
) -> Result<Stored, Response> {
    let fields = owned_fields(&applied);
    let Some(old) = existing else {
        return Ok(Stored {
            managers: BTreeMap::from([(manager.to_string(), fields)]),
            value: applied,
        });
    };
    let mut managers = old.managers.clone();
    // Conflicts: a field another manager owns, applied with another value.
    let mut conflicts = Vec::new();
    for (other, owned) in &managers {
        if other == manager {
            continue;
        }
        for p in owned {
            if fields.iter().any(|f| overlaps(f, p)) {
                let differs = fields
                    .iter()
                    .filter(|f| overlaps(f, p))
                    .any(|f| get_path(&old.value, f) != get_path(&applied, f));
                if differs {
                    conflicts.push(format!("{} owned by {other}", p.join(".")));
                }
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(status(
            409,
            "Conflict",
            format!(
                "Apply failed with {} conflicts: {}",
                conflicts.len(),
                conflicts.join(", ")
            ),
        ));
    }
    // Fields this manager no longer applies and nobody else owns go away.
    let previously = managers.remove(manager).unwrap_or_default();
    let mut value = old.value.clone();
    for p in previously.difference(&fields) {
        let owned_by_other = managers.values().any(|o| o.iter().any(|q| overlaps(q, p)));
        if !owned_by_other {
            remove_path(&mut value, p);
        }
    }
    // Others lose what this apply takes (with force) or shares (same value).
    for owned in managers.values_mut() {
        owned.retain(|p| !fields.iter().any(|f| overlaps(f, p)));
    }
    for f in &fields {
        if let Some(v) = get_path(&applied, f) {
            set_path(&mut value, f, v.clone());
        }
    }
    managers.insert(manager.to_string(), fields);
    managers.retain(|_, f| !f.is_empty());
    Ok(Stored { value, managers })
}

fn delete(s: &Shared, t: &Target) -> Response {
    let ns = t.namespace.clone().unwrap_or_default();
    let Some(name) = t.name.clone() else {
        return status(
            405,
            "MethodNotAllowed",
            "collection delete is not supported",
        );
    };
    let mut st = s.store.lock().unwrap();
    let removed = st
        .objects
        .get_mut(&t.res())
        .and_then(|m| m.remove(&(ns.clone(), name.clone())));
    let Some(old) = removed else {
        return status(404, "NotFound", format!("{} {name} not found", t.plural));
    };
    st.rv += 1;
    let rv = st.rv;
    let mut gone = old.value.clone();
    gone["metadata"]["resourceVersion"] = Value::String(rv.to_string());
    let ev = Event {
        rv,
        res: t.res(),
        namespace: ns,
        old: Some(gone.clone()),
        new: None,
    };
    push_event(s, &mut st, ev);
    ok_json(StatusCode::OK, &gone)
}

fn push_event(s: &Shared, st: &mut Store, ev: Event) {
    st.log.push_back(ev.clone());
    while st.log.len() > s.log_cap {
        if let Some(e) = st.log.pop_front() {
            st.compacted = st.compacted.max(e.rv);
        }
    }
    let _ = s.events.send(Arc::new(ev));
}

#[cfg(test)]
mod tests {
    // Unused when a bench (harness = false) includes this file.
    #[allow(unused_imports)]
    use super::*;

    #[test]
    fn apply_removes_fields_the_manager_stopped_applying_and_keeps_others() {
        let first = server_side_apply(
            None,
            json!({"metadata": {"labels": {"a": "1", "b": "2"}}}),
            "gate",
            false,
        )
        .unwrap();
        let edited = take_changed(
            first.clone(),
            json!({"metadata": {"labels": {"a": "1", "b": "2", "c": "3"}}}),
            "human",
        );
        let second = server_side_apply(
            Some(edited),
            json!({"metadata": {"labels": {"a": "1"}}}),
            "gate",
            false,
        )
        .unwrap();
        assert_eq!(
            second.value,
            json!({"metadata": {"labels": {"a": "1", "c": "3"}}})
        );
    }

    #[test]
    fn apply_conflicts_without_force() {
        let first = server_side_apply(None, json!({"spec": {"x": 1}}), "gate", false).unwrap();
        let edited = take_changed(first, json!({"spec": {"x": 2}}), "human");
        assert!(
            server_side_apply(
                Some(edited.clone()),
                json!({"spec": {"x": 1}}),
                "gate",
                false
            )
            .is_err()
        );
        let forced =
            server_side_apply(Some(edited), json!({"spec": {"x": 1}}), "gate", true).unwrap();
        assert_eq!(forced.value, json!({"spec": {"x": 1}}));
        assert!(!forced.managers.contains_key("human"));
    }
}
