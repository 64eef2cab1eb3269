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

#[path = "kube_api/watches.rs"]
mod watches;
#[path = "kube_api/writes.rs"]
mod writes;

use watches::watch_stream;
use writes::{Write, delete, write};

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
    /// Clients answered 503 (a network partition between them and us).
    blocked: Mutex<std::collections::HashSet<String>>,
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
            blocked: Mutex::new(Default::default()),
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

    /// Answers every request of client `name` with 503 until unblocked, as
    /// if it were cut off from the API server (open watches keep running).
    pub fn block(&self, name: &str, blocked: bool) {
        let mut b = self.shared.blocked.lock().unwrap();
        if blocked {
            b.insert(name.to_string());
        } else {
            b.remove(name);
        }
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
        "networkpolicies" => "NetworkPolicy",
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
    if s.blocked.lock().unwrap().contains(&t.client) {
        return status(503, "ServiceUnavailable", "cut off (test)");
    }
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
