//! Discovery against a real Kubernetes control plane (etcd, kube-apiserver
//! with RBAC, kube-controller-manager; tests/support/control_plane.rs): the
//! gate runs as a ServiceAccount bound to deploy/rbac.yaml's roles and
//! nothing more, its objects are admitted (or refused) by the real API
//! server with the released CRDs, and the real garbage collector removes
//! what a deleted workspace leaves.

#[path = "support/control_plane.rs"]
mod control_plane;
#[path = "support/discovery_env.rs"]
mod env;

use std::future::Future;
use std::time::Duration;

use control_plane::ControlPlane;
use env::*;
use k8s_openapi::api::core::v1::Service;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::json;

const NET: &str = "networking.k8s.io/v1";

/// Polls `cond` until true; panics with `what` after `limit` (only there to
/// avoid hanging; no test asserts on time).
async fn until<F, Fut>(what: &str, limit: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !cond().await {
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

const SOON: Duration = Duration::from_secs(60);

/// How many of workspace `svc`'s `ingress-nginx` objects (its Ingress, the
/// reserved path's Ingress and ExternalName Service) exist in `ns`.
async fn nginx_objects_present(cp: &ControlPlane, ns: &str, svc: &str) -> usize {
    let (main, reserved, gate) = (
        format!("{svc}-wg"),
        format!("{svc}-wg-reserved"),
        format!("{svc}-wg-gate"),
    );
    cp.count_present(
        ns,
        &[
            (NET, "ingresses", &main),
            (NET, "ingresses", &reserved),
            ("v1", "services", &gate),
        ],
    )
    .await
}

/// One test's corner of a control plane: a namespace for workspaces, one
/// for the gate, deploy/rbac.yaml applied for the gate's ServiceAccount
/// there (cluster-scoped names made unique to the test), and its token.
struct Corner {
    ws: String,
    gate_ns: String,
    token: String,
}

impl Corner {
    async fn new(cp: &ControlPlane, tag: &str) -> Corner {
        let ws = cp.new_namespace(tag).await;
        let gate_ns = format!("{ws}-gate");
        cp.namespace(&gate_ns).await;
        let rbac = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/rbac.yaml"),
        )
        .expect("deploy/rbac.yaml");
        let rbac = rbac
            .replace(
                "namespace: workspace-gate",
                &format!("namespace: {gate_ns}"),
            )
            .replace("name: workspace-gate-", &format!("name: {gate_ns}-"));
        cp.apply_yaml(&rbac).await.expect("apply deploy/rbac.yaml");
        let token = cp.service_account_token(&gate_ns, "workspace-gate").await;
        Corner { ws, gate_ns, token }
    }

    /// The gate's configuration: discovery limited to the test's namespace,
    /// the Lease and the gate's Service in the test's gate namespace.
    fn config(&self, dir: &TempDir, mode: &str, identity: &str) -> workspace_gate::config::Config {
        self.config_resync(dir, mode, identity, "2s")
    }

    /// [`Corner::config`] with another `discovery.resync_interval`.
    fn config_resync(
        &self,
        dir: &TempDir,
        mode: &str,
        identity: &str,
        resync: &str,
    ) -> workspace_gate::config::Config {
        let sections = format!(
            "discovery:\n  identity: {identity}\n  lease_namespace: {gns}\n  lease_duration: 3s\n\
             \x20 resync_interval: {resync}\n  namespaces: [{ws}]\n\
             routing:\n  mode: {mode}\n  tls_secret: wildcard-tls\n  ingress_class: nginx\n\
             \x20 gate_service: {{name: workspace-gate, namespace: {gns}}}\n\
             \x20 gateway: {{name: eg, namespace: {gns}}}\n",
            gns = self.gate_ns,
            ws = self.ws,
        );
        gate_config(dir, &sections)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspace_gets_its_objects_from_a_gate_holding_only_the_documented_rbac() {
    let cp = ControlPlane::shared().await;
    let c = Corner::new(cp, "new").await;
    let dir = TempDir::new("cp-new");
    let cfg = c.config(&dir, "ingress-nginx", "a");
    let gate = Gate::start(cp.client_with_token(&c.token).await, &cfg);
    until("index loaded", SOON, || async {
        gate.reader.current().loaded
    })
    .await;

    let admin = cp.admin().await;
    let svc = create_service(
        &admin,
        &workspace_service(&c.ws, "ws-1", 42, &[60001], "1001"),
    )
    .await;
    let uid = svc.metadata.uid.clone().unwrap();
    until("host indexed", SOON, || async {
        gate.has_host("60001-ws-1.workspaces.test")
    })
    .await;
    until("objects admitted", SOON, || async {
        cp.get(NET, "ingresses", &c.ws, "ws-1-wg").await.is_some()
            && cp
                .get(NET, "ingresses", &c.ws, "ws-1-wg-reserved")
                .await
                .is_some()
            && cp
                .get("v1", "services", &c.ws, "ws-1-wg-gate")
                .await
                .is_some()
            && cp
                .get(NET, "networkpolicies", &c.ws, "ws-1-wg-allow")
                .await
                .is_some()
    })
    .await;
    // The controller's pods are let through to the workspace's pods.
    let policy = cp
        .get(NET, "networkpolicies", &c.ws, "ws-1-wg-allow")
        .await
        .unwrap();
    assert_eq!(policy["spec"]["podSelector"]["matchLabels"]["app"], "ws-1");
    let main = cp.get(NET, "ingresses", &c.ws, "ws-1-wg").await.unwrap();
    assert_eq!(
        main["spec"]["rules"][0]["host"],
        "60001-ws-1.workspaces.test"
    );
    assert_eq!(
        main["metadata"]["annotations"]["nginx.ingress.kubernetes.io/auth-url"],
        format!(
            "http://workspace-gate.{}.svc.cluster.local:8080/check/nginx?host=$host&buffer=32k",
            c.gate_ns
        )
    );
    assert_eq!(main["metadata"]["ownerReferences"][0]["uid"], uid.as_str());
    assert_eq!(
        cp.managers(NET, "ingresses", &c.ws, "ws-1-wg").await,
        ["workspace-gate"]
    );
    // The gate holds the real Lease.
    let lease = cp
        .get(
            "coordination.k8s.io/v1",
            "leases",
            &c.gate_ns,
            "workspace-gate",
        )
        .await
        .expect("Lease");
    assert_eq!(lease["spec"]["holderIdentity"], "a");

    // A port added to the Service gives a new host on the same objects.
    let ports = json!({"spec": {"ports": [
        {"name": "p0", "port": 60001, "targetPort": 60001, "protocol": "TCP"},
        {"name": "p1", "port": 60002, "targetPort": 60002, "protocol": "TCP"}]}});
    Api::<Service>::namespaced(admin.clone(), &c.ws)
        .patch("ws-1", &PatchParams::default(), &Patch::Merge(&ports))
        .await
        .unwrap();
    until("second host routed", SOON, || async {
        gate.has_host("60002-ws-1.workspaces.test")
            && cp
                .get(NET, "ingresses", &c.ws, "ws-1-wg")
                .await
                .is_some_and(|i| i["spec"]["rules"].as_array().is_some_and(|r| r.len() == 2))
    })
    .await;
    assert_eq!(
        gate.metrics.reconcile_errors_total(),
        0,
        "{}",
        cp.log_of("kube-apiserver")
    );
    gate.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_edits_are_put_back_and_a_deleted_workspace_is_collected_by_the_garbage_collector() {
    let cp = ControlPlane::shared().await;
    let c = Corner::new(cp, "gc").await;
    let dir = TempDir::new("cp-gc");
    let cfg = c.config(&dir, "ingress-nginx", "a");
    let gate = Gate::start(cp.client_with_token(&c.token).await, &cfg);
    let admin = cp.admin().await;
    create_service(
        &admin,
        &workspace_service(&c.ws, "ws-1", 7, &[60001], "1001"),
    )
    .await;
    until("objects admitted", SOON, || async {
        cp.get(NET, "ingresses", &c.ws, "ws-1-wg").await.is_some()
            && cp
                .get("v1", "services", &c.ws, "ws-1-wg-gate")
                .await
                .is_some()
    })
    .await;

    // Someone points the check elsewhere and deletes the reserved Service.
    let ingresses: Api<kube::api::DynamicObject> = Api::namespaced_with(
        admin.clone(),
        &c.ws,
        &workspace_gate::discovery::ObjectKind::Ingress.api_resource(),
    );
    let edit = json!({"metadata": {
        "annotations": {"nginx.ingress.kubernetes.io/auth-url": "http://evil.test/ok"},
        "labels": {"mine": "yes"}}});
    ingresses
        .patch(
            "ws-1-wg",
            &PatchParams {
                field_manager: Some("kubectl-edit".into()),
                ..Default::default()
            },
            &Patch::Merge(&edit),
        )
        .await
        .unwrap();
    Api::<Service>::namespaced(admin.clone(), &c.ws)
        .delete("ws-1-wg-gate", &DeleteParams::default())
        .await
        .unwrap();
    until("edits put back", SOON, || async {
        cp.get(NET, "ingresses", &c.ws, "ws-1-wg")
            .await
            .is_some_and(|i| {
                i["metadata"]["annotations"]["nginx.ingress.kubernetes.io/auth-url"]
                    .as_str()
                    .is_some_and(|u| u.starts_with("http://workspace-gate."))
            })
            && cp
                .get("v1", "services", &c.ws, "ws-1-wg-gate")
                .await
                .is_some()
    })
    .await;
    // Fields the gate does not own stay (server-side apply).
    let main = cp.get(NET, "ingresses", &c.ws, "ws-1-wg").await.unwrap();
    assert_eq!(main["metadata"]["labels"]["mine"], "yes");

    // The gate stops first: only the garbage collector can remove them now.
    gate.stop().await;
    Api::<Service>::namespaced(admin.clone(), &c.ws)
        .delete("ws-1", &DeleteParams::default())
        .await
        .unwrap();
    until(
        "objects collected by the garbage collector",
        Duration::from_secs(180),
        || async { nginx_objects_present(cp, &c.ws, "ws-1").await == 0 },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_orphaned_while_the_gate_was_down_are_swept_at_its_next_start() {
    let cp = ControlPlane::shared().await;
    let c = Corner::new(cp, "sweep").await;
    let dir = TempDir::new("cp-sweep");
    let cfg = c.config(&dir, "ingress-nginx", "a");
    let admin = cp.admin().await;
    create_service(&admin, &workspace_service(&c.ws, "keep", 1, &[60001], "1")).await;
    create_service(&admin, &workspace_service(&c.ws, "gone", 2, &[60001], "2")).await;
    let gate = Gate::start(cp.client_with_token(&c.token).await, &cfg);
    until("both written", SOON, || async {
        cp.get(NET, "ingresses", &c.ws, "keep-wg").await.is_some()
            && cp.get(NET, "ingresses", &c.ws, "gone-wg").await.is_some()
    })
    .await;
    gate.stop().await;
    // While the gate is down the Service stops being a workspace: it stays,
    // so the garbage collector leaves its objects alone.
    let unlabel = json!({"metadata": {"labels": {"agent.gitlab.com/id": null}}});
    Api::<Service>::namespaced(admin.clone(), &c.ws)
        .patch("gone", &PatchParams::default(), &Patch::Merge(&unlabel))
        .await
        .unwrap();
    let gate = Gate::start(cp.client_with_token(&c.token).await, &cfg);
    until("orphans swept", SOON, || async {
        nginx_objects_present(cp, &c.ws, "gone").await == 0
    })
    .await;
    assert!(cp.get(NET, "ingresses", &c.ws, "keep-wg").await.is_some());
    gate.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_lease_holder_writes_and_another_replica_takes_over_when_it_dies() {
    let cp = ControlPlane::shared().await;
    let c = Corner::new(cp, "lease").await;
    let (dir_a, dir_b) = (TempDir::new("cp-lease-a"), TempDir::new("cp-lease-b"));
    let a = Gate::start(
        cp.client_with_token(&c.token).await,
        &c.config(&dir_a, "ingress-nginx", "replica-a"),
    );
    let b = Gate::start(
        cp.client_with_token(&c.token).await,
        &c.config(&dir_b, "ingress-nginx", "replica-b"),
    );
    until("a leader", SOON, || async {
        a.metrics.is_leader() || b.metrics.is_leader()
    })
    .await;
    let (leader, follower, follower_name) = if a.metrics.is_leader() {
        (a, b, "replica-b")
    } else {
        (b, a, "replica-a")
    };
    assert!(!follower.metrics.is_leader());
    let admin = cp.admin().await;
    create_service(&admin, &workspace_service(&c.ws, "ws-1", 1, &[60001], "1")).await;
    until("written", SOON, || async {
        cp.get(NET, "ingresses", &c.ws, "ws-1-wg").await.is_some()
    })
    .await;
    assert_eq!(
        cp.managers(NET, "ingresses", &c.ws, "ws-1-wg").await,
        ["workspace-gate"]
    );

    leader.kill();
    until("the follower takes over", SOON, || async {
        follower.metrics.is_leader()
    })
    .await;
    let lease = cp
        .get(
            "coordination.k8s.io/v1",
            "leases",
            &c.gate_ns,
            "workspace-gate",
        )
        .await
        .unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], follower_name);
    create_service(&admin, &workspace_service(&c.ws, "ws-2", 2, &[60001], "1")).await;
    until("the new leader writes", SOON, || async {
        cp.get(NET, "ingresses", &c.ws, "ws-2-wg").await.is_some()
    })
    .await;
    follower.stop().await;
    let lease = cp
        .get(
            "coordination.k8s.io/v1",
            "leases",
            &c.gate_ns,
            "workspace-gate",
        )
        .await
        .unwrap();
    assert!(
        lease["spec"]["holderIdentity"].is_null(),
        "a graceful stop releases the Lease: {lease}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_and_traefik_objects_are_admitted_with_the_released_crds() {
    let cp = ControlPlane::shared().await;
    for mode in ["gateway-api", "traefik"] {
        let c = Corner::new(cp, if mode == "traefik" { "traefik" } else { "gw" }).await;
        let dir = TempDir::new("cp-modes");
        let cfg = c.config(&dir, mode, "a");
        let gate = Gate::start(cp.client_with_token(&c.token).await, &cfg);
        let admin = cp.admin().await;
        create_service(
            &admin,
            &workspace_service(&c.ws, "ws-1", 3, &[60001, 60002], "1"),
        )
        .await;
        const GW: &str = "gateway.networking.k8s.io/v1";
        let grant = format!("workspace-gate-from-{}", c.ws);
        until("objects admitted", SOON, || async {
            gate.metrics.reconcile_errors_total() > 0
                || match mode {
                    "gateway-api" => {
                        cp.get(GW, "httproutes", &c.ws, "ws-1-60001-wg")
                            .await
                            .is_some()
                            && cp
                                .get(GW, "httproutes", &c.ws, "ws-1-60002-wg")
                                .await
                                .is_some()
                            && cp
                                .get(
                                    "gateway.envoyproxy.io/v1alpha1",
                                    "securitypolicies",
                                    &c.ws,
                                    "ws-1-wg-auth",
                                )
                                .await
                                .is_some()
                            && cp
                                .get(
                                    "gateway.networking.k8s.io/v1beta1",
                                    "referencegrants",
                                    &c.gate_ns,
                                    &grant,
                                )
                                .await
                                .is_some()
                    }
                    _ => {
                        cp.get(NET, "ingresses", &c.ws, "ws-1-wg").await.is_some()
                            && cp
                                .get("traefik.io/v1alpha1", "middlewares", &c.ws, "ws-1-wg-auth")
                                .await
                                .is_some()
                    }
                }
        })
        .await;
        assert_eq!(
            gate.metrics.reconcile_errors_total(),
            0,
            "{mode}: the API server refused an object:\n{}",
            cp.log_of("kube-apiserver")
        );
        gate.stop().await;
    }
}

/// A control plane of the test's own (the callers stop its API server)
/// with 20 workspace Services, and a gate in `mode` that has indexed them.
async fn twenty_indexed(tag: &str, mode: &str) -> (ControlPlane, Corner, TempDir, Gate) {
    let cp = ControlPlane::start().await.expect("control plane");
    let c = Corner::new(&cp, tag).await;
    let dir = TempDir::new(&format!("cp-{tag}"));
    let cfg = c.config(&dir, mode, "a");
    let admin = cp.admin().await;
    for i in 0..20u64 {
        create_service(
            &admin,
            &workspace_service(&c.ws, &format!("ws-{i}"), i + 1, &[60001], "1"),
        )
        .await;
    }
    let gate = Gate::start(cp.client_with_token(&c.token).await, &cfg);
    until("20 indexed", SOON, || async {
        gate.reader.current().len() == 20
    })
    .await;
    (cp, c, dir, gate)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_server_restart_keeps_the_index_and_the_watch_resumes() {
    let (cp, c, _dir, gate) = twenty_indexed("restart", "ingress-nginx").await;

    cp.stop_apiserver();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        gate.reader.current().len(),
        20,
        "the index must survive the API server's absence"
    );
    cp.restart_apiserver().await.expect("restart");
    let admin = cp.admin().await;
    create_service(&admin, &workspace_service(&c.ws, "late", 99, &[60001], "1")).await;
    until("watch resumed", Duration::from_secs(120), || async {
        gate.has_host("60001-late.workspaces.test")
    })
    .await;
    assert_eq!(gate.reader.current().len(), 21);
    until("objects of the new workspace", SOON, || async {
        cp.get(NET, "ingresses", &c.ws, "late-wg").await.is_some()
    })
    .await;
    gate.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_resumed_from_a_compacted_version_relists_without_emptying_the_index() {
    captured_logs();
    let (cp, c, _dir, gate) = twenty_indexed("compact", "none").await;
    let restarts = gate.metrics.watch_restarts_total();

    // Every snapshot published from now on.
    let smallest = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(usize::MAX));
    let mut r = gate.reader.clone();
    let s2 = smallest.clone();
    let observer = tokio::spawn(async move {
        while r.changed().await {
            s2.fetch_min(r.current().len(), std::sync::atomic::Ordering::SeqCst);
        }
    });

    // While the API server is away, etcd's history is compacted past the
    // resource version the gate's watch resumes from. The restarted API
    // server answers that watch with 410 Gone ("too old resource
    // version"); its fresh watch cache, which starts at the current
    // revision, would answer so even without the compaction.
    let gone_before = log_lines_with("too old resource version");
    cp.stop_apiserver();
    cp.etcd_write_and_compact().await.expect("etcd compaction");
    cp.restart_apiserver().await.expect("restart");
    let admin = cp.admin().await;
    create_service(&admin, &workspace_service(&c.ws, "late", 99, &[60001], "1")).await;
    until("watch resumed", Duration::from_secs(120), || async {
        gate.has_host("60001-late.workspaces.test")
    })
    .await;
    assert!(
        log_lines_with("too old resource version") > gone_before,
        "the resumed watch was not answered with 410 Gone; watch log lines:\n{}",
        String::from_utf8_lossy(&captured_logs().0.lock().unwrap())
            .lines()
            .filter(|l| l.contains("watch"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        gate.metrics.watch_restarts_total() > restarts,
        "the 410 must cause a new list"
    );
    assert_eq!(gate.reader.current().len(), 21);
    let smallest = smallest.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        smallest >= 20,
        "the index shrank to {smallest} while relisting"
    );
    observer.abort();
    gate.stop().await;
}

/// The library's logs, captured for the whole test binary.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

fn captured_logs() -> &'static Captured {
    static LOGS: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let c = Captured::default();
        let _ = tracing_subscriber::fmt()
            .with_writer(c.clone())
            .with_ansi(false)
            .try_init();
        c
    })
}

/// Lines of the captured logs that contain `needle`.
fn log_lines_with(needle: &str) -> usize {
    let text = String::from_utf8_lossy(&captured_logs().0.lock().unwrap()).to_string();
    text.lines().filter(|l| l.contains(needle)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_the_api_server_refuses_is_counted_logged_and_not_rewritten_in_a_loop() {
    let cp = ControlPlane::shared().await;
    let c = Corner::new(cp, "refused").await;
    captured_logs();
    // A platform team's admission policy, a CEL rule the API server itself
    // evaluates: Ingresses in the workspace namespace must name a team.
    const MESSAGE: &str = "every Ingress must carry a team label";
    let policy = format!(
        "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicy\n\
         metadata: {{name: {ws}-team}}\n\
         spec:\n  failurePolicy: Fail\n  matchConstraints:\n    resourceRules:\n\
         \x20   - {{apiGroups: [networking.k8s.io], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [ingresses]}}\n\
         \x20 validations:\n\
         \x20   - {{expression: \"has(object.metadata.labels) && 'team' in object.metadata.labels\", message: \"{MESSAGE}\"}}\n\
         ---\napiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicyBinding\n\
         metadata: {{name: {ws}-team}}\n\
         spec:\n  policyName: {ws}-team\n  validationActions: [Deny]\n\
         \x20 matchResources: {{namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: {ws}}}}}}}\n",
        ws = c.ws
    );
    cp.apply_yaml(&policy).await.expect("admission policy");
    // In force once a dry-run Ingress without the label is refused.
    let admin = cp.admin().await;
    let probe = json!({"apiVersion": NET, "kind": "Ingress",
        "metadata": {"name": "probe", "namespace": c.ws},
        "spec": {"defaultBackend": {"service": {"name": "x", "port": {"number": 80}}}}});
    // Admitted or refused, without writing.
    let dry_run = || async {
        let req = http::Request::post(format!(
            "/apis/{NET}/namespaces/{}/ingresses?dryRun=All",
            c.ws
        ))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&probe).unwrap())
        .unwrap();
        admin.request::<serde_json::Value>(req).await
    };
    until("the policy is in force", SOON, || async {
        matches!(dry_run().await, Err(kube::Error::Api(e)) if e.code == 422)
    })
    .await;

    let dir = TempDir::new("cp-refused");
    // A resync far off: only the retry of failed writes could rewrite.
    let cfg = c.config_resync(&dir, "ingress-nginx", "a", "10m");
    let gate = Gate::start(cp.client_with_token(&c.token).await, &cfg);
    create_service(
        &admin,
        &workspace_service(&c.ws, "ws-1", 11, &[60001], "1001"),
    )
    .await;
    until("the refusals counted", SOON, || async {
        gate.metrics.rejected_total() >= 2
    })
    .await;
    // What the policy does not cover is written; the index serves the
    // workspace all along.
    until("the rest written", SOON, || async {
        cp.get("v1", "services", &c.ws, "ws-1-wg-gate")
            .await
            .is_some()
            && cp
                .get(NET, "networkpolicies", &c.ws, "ws-1-wg-allow")
                .await
                .is_some()
    })
    .await;
    assert!(gate.has_host("60001-ws-1.workspaces.test"));
    assert!(
        log_lines_with(MESSAGE) >= 1,
        "the API server's reason is not in the logs"
    );
    // Two retry periods of failed writes (5 s each) and more: the refused
    // body is not sent again.
    let (rejected, logged) = (gate.metrics.rejected_total(), log_lines_with(MESSAGE));
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(
        gate.metrics.rejected_total(),
        rejected,
        "the refused objects were written again without a change"
    );
    assert_eq!(
        log_lines_with(MESSAGE),
        logged,
        "the refusal was logged again"
    );
    assert!(cp.get(NET, "ingresses", &c.ws, "ws-1-wg").await.is_none());

    // The team lifts the policy; the next change of the workspace writes
    // its Ingresses.
    cp.delete(
        "admissionregistration.k8s.io/v1",
        "validatingadmissionpolicybindings",
        "",
        &format!("{}-team", c.ws),
    )
    .await
    .expect("delete the binding");
    until("the policy lifted", SOON, || async {
        dry_run().await.is_ok()
    })
    .await;
    let ports = json!({"spec": {"ports": [
        {"name": "p0", "port": 60001, "targetPort": 60001, "protocol": "TCP"},
        {"name": "p1", "port": 60002, "targetPort": 60002, "protocol": "TCP"}]}});
    Api::<Service>::namespaced(admin.clone(), &c.ws)
        .patch("ws-1", &PatchParams::default(), &Patch::Merge(&ports))
        .await
        .unwrap();
    until("the Ingresses written after the change", SOON, || async {
        cp.get(NET, "ingresses", &c.ws, "ws-1-wg").await.is_some()
            && cp
                .get(NET, "ingresses", &c.ws, "ws-1-wg-reserved")
                .await
                .is_some()
    })
    .await;
    gate.stop().await;
}
