//! The Helm chart installed for real into the test control plane
//! (tests/support/control_plane.rs: etcd, kube-apiserver with RBAC and the
//! released Gateway API, Envoy Gateway, Traefik and ServiceMonitor CRDs,
//! kube-controller-manager), once per routing mode, for Traefik over https
//! and with every optional object on: `tests/chart/install_into.py` runs a
//! Helm SDK install (not a render), reads every object of the release back
//! from the API server and runs this crate's `workspace-gate check-config`
//! on the Deployment's files laid out from those objects. Each test then
//! checks, from the API server itself, the objects the routing mode needs.
//! A negative control installs into a namespace whose ResourceQuota admits
//! no Deployment: the install must fail.
//!
//! Every installation has its own namespace and release name (the
//! ClusterRole and ClusterRoleBinding are cluster-scoped and named after
//! the release). No test skips: a missing .venv fails naming
//! scripts/install-deps.sh.

#[path = "support/control_plane.rs"]
mod control_plane;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use control_plane::ControlPlane;
use k8s_openapi::api::core::v1::ResourceQuota;
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::Api;
use kube::api::PostParams;
use serde_json::{Value, json};

const NET: &str = "networking.k8s.io/v1";

/// What the gate writes in gateway-api mode.
const GATEWAY_API_KINDS: &[&str] = &["httproutes", "securitypolicies"];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The project venv's Python, or a failure saying how to get it.
fn venv_python() -> PathBuf {
    let python = root().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/install-deps.sh (it creates .venv with helm-python-sdk, pyyaml and the chart tests' packages)",
        python.display()
    );
    python
}

/// What one run of install_into.py did.
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs tests/chart/install_into.py for `scenario` into `ns` (release name
/// `release`) as the control plane's admin. The kubeconfig holds the admin
/// token: it is written readable by its owner only and removed afterwards.
fn install_into(cp: &ControlPlane, ns: &str, release: &str, scenario: &str) -> Run {
    let kubeconfig = std::env::temp_dir().join(format!("wg-chart-{ns}.kubeconfig"));
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&kubeconfig)
            .expect("kubeconfig file");
        f.write_all(cp.kubeconfig(cp.admin_token()).as_bytes())
            .expect("write kubeconfig");
    }
    let started = Instant::now();
    let out = Command::new(venv_python())
        .arg(root().join("tests/chart/install_into.py"))
        .arg(&kubeconfig)
        .arg(ns)
        .arg(scenario)
        .arg("--release")
        .arg(release)
        .env("WORKSPACE_GATE_BIN", env!("CARGO_BIN_EXE_workspace-gate"))
        .output()
        .expect("run tests/chart/install_into.py");
    let _ = std::fs::remove_file(&kubeconfig);
    eprintln!(
        "install_into.py {scenario} into {ns}: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// One installation that succeeded: where, and the script's summary.
struct Installed {
    ns: String,
    /// The chart's full name: `<release>-workspace-gate`.
    name: String,
    summary: Value,
}

/// Installs `scenario` into a fresh namespace; panics with the script's
/// message (and the API server's log) when anything failed.
async fn install(cp: &ControlPlane, tag: &str, scenario: &str) -> Installed {
    let ns = cp.new_namespace(tag).await;
    // The namespace's name is unique on this control plane, so is the
    // release's and so the cluster-scoped objects named after it.
    let release = ns.clone();
    let run = install_into(cp, &ns, &release, scenario);
    assert!(
        run.ok,
        "installing scenario {scenario} failed:\n{}{}\nkube-apiserver:\n{}",
        run.stdout,
        run.stderr,
        cp.log_of("kube-apiserver")
    );
    let summary: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("summary of {scenario} is not JSON ({e}):\n{}", run.stdout));
    assert_eq!(summary["status"], "deployed", "{summary:#}");
    assert_eq!(
        summary["check_config"], "configuration is valid",
        "{summary:#}"
    );
    Installed {
        ns,
        name: format!("{release}-workspace-gate"),
        summary,
    }
}

impl Installed {
    /// The object from the API server, which must exist and be the one the
    /// script read back (same uid).
    async fn live(&self, cp: &ControlPlane, api_version: &str, plural: &str, kind: &str) -> Value {
        self.live_named(cp, api_version, plural, kind, &self.name)
            .await
    }

    /// Like [`Self::live`], for an object of the release named `name`.
    async fn live_named(
        &self,
        cp: &ControlPlane,
        api_version: &str,
        plural: &str,
        kind: &str,
        name: &str,
    ) -> Value {
        let v = cp
            .get(api_version, plural, &self.ns, name)
            .await
            .unwrap_or_else(|| panic!("{kind} {}/{name} not on the API server", self.ns));
        self.same_uid(kind, &v);
        v
    }

    async fn absent(&self, cp: &ControlPlane, api_version: &str, plural: &str) {
        assert!(
            cp.get(api_version, plural, &self.ns, &self.name)
                .await
                .is_none(),
            "{plural} {}/{} exists but this mode has none",
            self.ns,
            self.name
        );
    }

    fn same_uid(&self, kind: &str, live: &Value) {
        let name = live["metadata"]["name"].as_str().unwrap_or_default();
        let listed = self.summary["objects"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|o| o["kind"] == kind && o["name"] == name)
            .unwrap_or_else(|| panic!("{kind} {name} missing from the summary"));
        assert_eq!(
            listed["uid"], live["metadata"]["uid"],
            "{kind} {name}: the summary names another object"
        );
    }

    /// The ClusterRole's rules' resources.
    async fn cluster_role_resources(&self, cp: &ControlPlane) -> Vec<String> {
        let role = Api::<ClusterRole>::all(cp.admin().await)
            .get_opt(&self.name)
            .await
            .expect("get ClusterRole")
            .unwrap_or_else(|| panic!("ClusterRole {} not on the API server", self.name));
        let live = serde_json::to_value(&role).unwrap();
        self.same_uid("ClusterRole", &live);
        role.rules
            .into_iter()
            .flatten()
            .flat_map(|r| r.resources.unwrap_or_default())
            .collect()
    }
}

/// What every installation holds, whatever the mode: the Deployment runs
/// `serve` with the chart's configuration as its ServiceAccount, the
/// ConfigMap carries the mode, the ClusterRole grants the mode's kinds and
/// the leader Role exists when the gate writes routing objects.
async fn check_common(cp: &ControlPlane, it: &Installed, mode: &str, routing_kinds: &[&str]) {
    let deployment = it.live(cp, "apps/v1", "deployments", "Deployment").await;
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], it.name.as_str());
    assert_eq!(
        pod["containers"][0]["args"],
        json!(["serve", "--config", "/etc/workspace-gate/config.yaml"])
    );
    it.live(cp, "v1", "serviceaccounts", "ServiceAccount").await;
    it.live(cp, "v1", "services", "Service").await;

    let cm = it.live(cp, "v1", "configmaps", "ConfigMap").await;
    let config: Value = serde_yaml::from_str(cm["data"]["config.yaml"].as_str().unwrap())
        .expect("config.yaml is YAML");
    assert_eq!(config["routing"]["mode"], mode, "{config:#}");

    let resources = it.cluster_role_resources(cp).await;
    for kind in routing_kinds {
        assert!(
            resources.iter().any(|r| r == kind),
            "ClusterRole grants no {kind}: {resources:?}"
        );
    }
    assert!(resources.iter().any(|r| r == "services"), "{resources:?}");
    let leader = cp
        .get(
            "rbac.authorization.k8s.io/v1",
            "roles",
            &it.ns,
            &format!("{}-leader", it.name),
        )
        .await;
    assert_eq!(
        leader.is_some(),
        mode != "none",
        "the leader-election Role exists only when the gate writes routing objects"
    );
}

/// The auth host's Ingress with its class.
async fn check_auth_ingress(cp: &ControlPlane, it: &Installed, class: &str) {
    let ing = it.live(cp, NET, "ingresses", "Ingress").await;
    assert_eq!(ing["spec"]["ingressClassName"], class);
    let path = &ing["spec"]["rules"][0]["http"]["paths"][0];
    assert_eq!(path["path"], "/auth");
    assert_eq!(path["backend"]["service"]["name"], it.name.as_str());
}

/// What both Traefik installations hold: the rights to write Ingresses and
/// Middlewares, and the auth host's Ingress of class `traefik`.
async fn check_traefik(cp: &ControlPlane, it: &Installed) {
    check_common(cp, it, "traefik", &["ingresses", "middlewares"]).await;
    check_auth_ingress(cp, it, "traefik").await;
}

#[tokio::test]
async fn mode_none_installs_with_a_generated_key() {
    let cp = ControlPlane::shared().await;
    let it = install(cp, "chart-none", "none-generated-key").await;
    check_common(cp, &it, "none", &[]).await;
    it.absent(cp, NET, "ingresses").await;
    // The key the chart generated at install is on the API server, kept
    // across uninstall, and was what check-config read.
    let keys = cp
        .get("v1", "secrets", &it.ns, &format!("{}-keys", it.name))
        .await
        .expect("keys Secret");
    it.same_uid("Secret", &keys);
    assert_eq!(
        keys["metadata"]["annotations"]["helm.sh/resource-policy"],
        "keep"
    );
    assert!(keys["data"]["key-0"].is_string());
}

#[tokio::test]
async fn mode_ingress_nginx_installs_with_existing_secrets() {
    let cp = ControlPlane::shared().await;
    let it = install(cp, "chart-nginx", "ingress-nginx-existing-secrets").await;
    check_common(cp, &it, "ingress-nginx", &["ingresses"]).await;
    check_auth_ingress(cp, &it, "nginx").await;
    assert_eq!(
        it.summary["pre_existing"],
        json!(["Secret/gitlab-oauth", "Secret/gate-keys"])
    );
}

#[tokio::test]
async fn mode_ingress_nginx_installs_with_the_private_ca_recipe() {
    let cp = ControlPlane::shared().await;
    let it = install(cp, "chart-private-ca", "private-ca").await;
    check_common(cp, &it, "ingress-nginx", &["ingresses"]).await;
    assert!(
        it.summary["pre_existing"]
            .as_array()
            .unwrap()
            .contains(&json!("ConfigMap/gitlab-ca")),
        "{:#}",
        it.summary
    );
}

#[tokio::test]
async fn mode_traefik_installs_with_chart_created_secrets() {
    let cp = ControlPlane::shared().await;
    let it = install(cp, "chart-traefik", "traefik-created-secrets").await;
    check_traefik(cp, &it).await;
    for secret in ["oidc", "keys"] {
        let name = format!("{}-{secret}", it.name);
        let live = cp
            .get("v1", "secrets", &it.ns, &name)
            .await
            .unwrap_or_else(|| panic!("the chart's Secret {name}"));
        it.same_uid("Secret", &live);
    }
}

#[tokio::test]
async fn mode_traefik_over_https_installs_with_its_network_policy() {
    let cp = ControlPlane::shared().await;
    let it = install(cp, "chart-traefik-https", "traefik-check-tls").await;
    check_traefik(cp, &it).await;
    let svc = it.live(cp, "v1", "services", "Service").await;
    assert!(
        svc["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "https-check"),
        "{svc:#}"
    );
    it.live(cp, NET, "networkpolicies", "NetworkPolicy").await;
}

#[tokio::test]
async fn mode_gateway_api_installs_its_auth_route() {
    let cp = ControlPlane::shared().await;
    let it = install(cp, "chart-gateway", "gateway-api-existing-secrets").await;
    check_common(cp, &it, "gateway-api", GATEWAY_API_KINDS).await;
    it.absent(cp, NET, "ingresses").await;
    let route = it
        .live(
            cp,
            "gateway.networking.k8s.io/v1",
            "httproutes",
            "HTTPRoute",
        )
        .await;
    let parent = &route["spec"]["parentRefs"][0];
    assert_eq!(parent["name"], "eg");
    assert_eq!(parent["namespace"], "envoy-gateway-system");
    assert_eq!(
        route["spec"]["hostnames"],
        json!(["workspaces.example.test"])
    );
}

/// Every optional object on (autoscaler, disruption budget, the
/// Prometheus Operator's ServiceMonitor with its released CRD,
/// NetworkPolicy, extra objects), in gateway-api mode.
#[tokio::test]
async fn every_optional_object_is_admitted() {
    let cp = ControlPlane::shared().await;
    let it = install(cp, "chart-everything", "everything-on").await;
    check_common(cp, &it, "gateway-api", GATEWAY_API_KINDS).await;
    let hpa = it
        .live(
            cp,
            "autoscaling/v2",
            "horizontalpodautoscalers",
            "HorizontalPodAutoscaler",
        )
        .await;
    assert_eq!(hpa["spec"]["minReplicas"], 3);
    assert_eq!(hpa["spec"]["maxReplicas"], 9);
    let pdb = it
        .live(
            cp,
            "policy/v1",
            "poddisruptionbudgets",
            "PodDisruptionBudget",
        )
        .await;
    assert_eq!(pdb["spec"]["minAvailable"], "50%");
    let monitor = it
        .live(
            cp,
            "monitoring.coreos.com/v1",
            "servicemonitors",
            "ServiceMonitor",
        )
        .await;
    assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");
    it.live(cp, NET, "networkpolicies", "NetworkPolicy").await;
    let extra = format!("{}-extra", it.name);
    let cm = cp
        .get("v1", "configmaps", &it.ns, &extra)
        .await
        .unwrap_or_else(|| panic!("extraObjects' ConfigMap {extra}"));
    it.same_uid("ConfigMap", &cm);
    assert_eq!(cm["data"]["namespace"], it.ns.as_str());
}

/// The SSH gateway from objects the user created (host keys, backend key,
/// known_hosts): the API server admits the SSH Service, a LoadBalancer
/// keeping client addresses, and the NetworkPolicy lets the gate reach the
/// workspaces' sshd.
#[tokio::test]
async fn the_ssh_gateway_installs_with_existing_host_keys() {
    let cp = ControlPlane::shared().await;
    let it = install(cp, "chart-ssh", "ssh-existing-secrets").await;
    check_common(cp, &it, "ingress-nginx", &["ingresses"]).await;
    assert_eq!(
        it.summary["pre_existing"],
        json!([
            "Secret/gitlab-oauth",
            "Secret/gate-keys",
            "Secret/gate-ssh-host-keys",
            "Secret/gate-ssh-backend",
            "ConfigMap/workspaces-sshd-known-hosts"
        ])
    );
    let ssh = format!("{}-ssh", it.name);
    let svc = it.live_named(cp, "v1", "services", "Service", &ssh).await;
    assert_eq!(svc["spec"]["type"], "LoadBalancer");
    assert_eq!(svc["spec"]["externalTrafficPolicy"], "Local");
    assert_eq!(svc["spec"]["ports"][0]["port"], 22);
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], "ssh");
    let policy = it.live(cp, NET, "networkpolicies", "NetworkPolicy").await;
    assert!(
        policy["spec"]["egress"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|r| r["ports"][0]["port"] == 60022),
        "{policy:#}"
    );
}

/// The SSH gateway with the chart's own host-key Secret and a NodePort, in
/// mode none.
#[tokio::test]
async fn the_ssh_gateway_installs_with_chart_created_host_keys() {
    let cp = ControlPlane::shared().await;
    let it = install(cp, "chart-ssh-inline", "ssh-inline-keys").await;
    check_common(cp, &it, "none", &[]).await;
    let host_keys = format!("{}-ssh-host-keys", it.name);
    let keys = it
        .live_named(cp, "v1", "secrets", "Secret", &host_keys)
        .await;
    assert!(keys["data"]["host_ed25519"].is_string(), "{keys:#}");
    let ssh = format!("{}-ssh", it.name);
    let svc = it.live_named(cp, "v1", "services", "Service", &ssh).await;
    assert_eq!(svc["spec"]["type"], "NodePort");
    assert_eq!(svc["spec"]["ports"][0]["nodePort"], 30022);
}

/// Negative control: an object the API server refuses makes the install,
/// and so the script, fail, naming the refusal.
#[tokio::test]
async fn an_object_the_api_server_refuses_fails_the_install() {
    let cp = ControlPlane::shared().await;
    let ns = cp.new_namespace("chart-refused").await;
    let quota: ResourceQuota = serde_json::from_value(json!({
        "metadata": {"name": "no-deployments"},
        "spec": {"hard": {"count/deployments.apps": "0"}}
    }))
    .unwrap();
    Api::<ResourceQuota>::namespaced(cp.admin().await, &ns)
        .create(&PostParams::default(), &quota)
        .await
        .expect("create ResourceQuota");
    // Admission enforces the quota once its controller has counted usage.
    let deadline = Instant::now() + Duration::from_secs(60);
    while cp
        .get("v1", "resourcequotas", &ns, "no-deployments")
        .await
        .is_none_or(|q| q["status"]["used"].is_null())
    {
        assert!(
            Instant::now() < deadline,
            "ResourceQuota status not set:\n{}",
            cp.log_of("kube-controller-manager")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let run = install_into(cp, &ns, &ns, "traefik-created-secrets");
    assert!(!run.ok, "the install succeeded:\n{}", run.stdout);
    assert!(
        run.stderr.contains("helm install") && run.stderr.contains("exceeded quota"),
        "{}",
        run.stderr
    );
    assert!(
        cp.get(
            "apps/v1",
            "deployments",
            &ns,
            &format!("{ns}-workspace-gate")
        )
        .await
        .is_none()
    );
}
