//! Real nginx configured as ingress-nginx renders the `auth-url`,
//! `auth-signin`, `auth-response-headers` and `proxy-buffer-size`
//! annotations (`tests/fixtures/nginx/nginx.conf.tmpl`), terminating TLS
//! with the test CA's certificate on one random port for the auth host and
//! every workspace host. The `auth-url`, `auth-signin` and
//! `proxy-buffer-size` it renders are read from what discovery writes for
//! a workspace.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};

use super::controller::{ControllerFixture, ControllerKind, ControllerSetup};
use super::process::Proc;

pub const MODULES_DIR: &str = "/usr/lib/nginx/modules";

pub struct Nginx {
    pub port: u16,
    pub prefix: PathBuf,
    pub proc: Proc,
}

pub fn template() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nginx/nginx.conf.tmpl")
}

pub fn binary() -> anyhow::Result<PathBuf> {
    let bin = super::provider::which("nginx")
        .context("nginx is not installed: run scripts/install-deps.sh (apt-get install -y nginx-light libnginx-mod-http-set-misc)")?;
    for m in ["ndk_http_module.so", "ngx_http_set_misc_module.so"] {
        if !Path::new(MODULES_DIR).join(m).is_file() {
            bail!(
                "nginx module {MODULES_DIR}/{m} is missing (ingress-nginx's set_escape_uri): \
                 run scripts/install-deps.sh (apt-get install -y libnginx-mod-http-set-misc)"
            );
        }
    }
    Ok(bin)
}

const SERVER_START: &str = "    ## start workspace server\n";
const SERVER_END: &str = "    ## end workspace server\n";

/// The template with its workspace server block repeated: once per
/// workspace host of `setup` (to that host's upstream), then as the
/// wildcard server to the default upstream.
fn expand_servers(tmpl: &str, setup: &ControllerSetup) -> anyhow::Result<String> {
    let (Some(start), Some(end)) = (tmpl.find(SERVER_START), tmpl.find(SERVER_END)) else {
        bail!("nginx template: the workspace server markers are missing");
    };
    let block = &tmpl[start + SERVER_START.len()..end];
    let mut servers = String::new();
    let one = |name: &str, upstream: &str, upstream_name: &str| {
        block
            .replace("{{SERVER_NAME}}", name)
            .replace("{{UPSTREAM}}", upstream)
            .replace("{{UPSTREAM_NAME}}", upstream_name)
    };
    for (host, addr) in &setup.routes {
        let label = host.split('.').next().unwrap_or(host);
        servers.push_str(&one(
            host,
            &addr.to_string(),
            &format!("workspaces-{label}-80"),
        ));
    }
    servers.push_str(&one(
        &format!("*.{}", setup.workspace_domain),
        &setup.upstream.to_string(),
        "workspaces-default-80",
    ));
    Ok(format!(
        "{}{servers}{}",
        &tmpl[..start],
        &tmpl[end + SERVER_END.len()..]
    ))
}

/// What discovery writes on a workspace Ingress that the fixture renders
/// as ingress-nginx would: the path and query of `auth-url` (on the gate's
/// address) and `proxy-buffer-size` (ingress-nginx's 4k when absent).
#[derive(Debug)]
pub struct IngressAnnotations {
    pub auth_path: String,
    /// The `return 302` target of the sign-in location, as ingress-nginx's
    /// `buildAuthSignURL` makes it from `auth-signin`.
    pub signin_redirect: String,
    pub proxy_buffer_size: String,
}

/// ingress-nginx's `buildAuthSignURL` (template.go) with the default
/// redirect parameter `rd`: appends the original URL unless `rd` is given.
fn build_auth_sign_url(signin: &str) -> String {
    let rd = "rd=$pass_access_scheme://$http_host$escaped_request_uri";
    match signin.split_once('?') {
        None => format!("{signin}?{rd}"),
        Some((_, q)) if q.split('&').any(|p| p.starts_with("rd=") && p.len() > 3) => {
            signin.to_string()
        }
        Some(_) => format!("{signin}&{rd}"),
    }
}

/// Renders one workspace through discovery's own ingress-nginx renderer
/// and reads the annotations the fixture depends on, so the fixture sees
/// what discovery writes, not a copy of it.
pub fn discovery_annotations(setup: &ControllerSetup) -> anyhow::Result<IngressAnnotations> {
    use workspace_gate::config::discovery::{GateService, RoutingConfig};
    use workspace_gate::discovery::{RenderContext, RoutingMode, render::workspace_objects};
    use workspace_gate::workspaces::{HostPort, ServiceRef, TargetPort, Workspace};
    let gate = GateService {
        name: "workspace-gate".into(),
        namespace: "gate".into(),
        http_port: setup.gate_http.port(),
        grpc_port: 9091,
        https_port: None,
        cluster_domain: "cluster.local".into(),
    };
    let gate_url = format!("http://{}:{}", gate.dns_name(), gate.http_port);
    let ctx = RenderContext {
        routing: RoutingConfig {
            mode: RoutingMode::IngressNginx,
            tls_secret: None,
            ingress_class: None,
            auth_keepalive: 0,
            ssh_port: 60022,
            gate,
            gateway: None,
            traefik_ca_secret: None,
            network_policy: None,
        },
        // As discovery's render context writes it for a public port.
        signin_url: format!("https://$host:{}/.workspace-gate/start", setup.port),
    };
    let ws = Workspace {
        id: "1".into(),
        name: "ws-1".into(),
        namespace: "team".into(),
        owner: None,
        hosts: vec![HostPort {
            host: format!("ws-1.{}", setup.workspace_domain),
            service_port: Some(80),
        }],
        service: Some(ServiceRef {
            namespace: "team".into(),
            name: "ws-1".into(),
            uid: "uid-1".into(),
            selector: [("workspace".to_string(), "ws-1".to_string())].into(),
            target_ports: vec![TargetPort::Number(80)],
            ssh_target_port: None,
        }),
        ssh: None,
    };
    let objects = workspace_objects(&ctx, &ws)?;
    let annotations = objects
        .iter()
        .map(|o| &o.body["metadata"]["annotations"])
        .find(|a| a.get("nginx.ingress.kubernetes.io/auth-url").is_some())
        .context("discovery wrote no Ingress with auth-url")?;
    let get = |name: &str| {
        annotations
            .get(format!("nginx.ingress.kubernetes.io/{name}"))
            .and_then(|v| v.as_str())
    };
    let auth_url = get("auth-url").context("auth-url")?;
    let auth_path = auth_url
        .strip_prefix(&gate_url)
        .with_context(|| format!("auth-url {auth_url} is not on {gate_url}"))?
        .to_string();
    let signin = get("auth-signin").context("auth-signin")?;
    Ok(IngressAnnotations {
        auth_path,
        signin_redirect: build_auth_sign_url(signin),
        // ingress-nginx's default when the Ingress sets none.
        proxy_buffer_size: get("proxy-buffer-size").unwrap_or("4k").to_string(),
    })
}

/// Renders the fixture for `setup`.
pub fn render(setup: &ControllerSetup, prefix: &Path) -> anyhow::Result<String> {
    let tmpl = expand_servers(&std::fs::read_to_string(template())?, setup)?;
    let ingress = discovery_annotations(setup)?;
    let out = tmpl
        .replace("{{AUTH_PATH}}", &ingress.auth_path)
        .replace("{{SIGNIN_REDIRECT}}", &ingress.signin_redirect)
        .replace("{{PROXY_BUFFER_SIZE}}", &ingress.proxy_buffer_size)
        .replace("{{MODULES}}", MODULES_DIR)
        .replace("{{PREFIX}}", &prefix.display().to_string())
        .replace("{{PORT}}", &setup.port.to_string())
        .replace("{{CERT}}", &setup.cert_file.display().to_string())
        .replace("{{KEY}}", &setup.key_file.display().to_string())
        .replace("{{GATE_HTTP}}", &setup.gate_http.to_string())
        .replace("{{AUTH_HOST}}", &setup.auth_host)
        .replace("{{WORKSPACE_DOMAIN}}", &setup.workspace_domain);
    if let Some(i) = out.find("{{") {
        bail!(
            "unfilled placeholder in nginx template near {:?}",
            &out[i..i + 30]
        );
    }
    Ok(out)
}

impl Nginx {
    pub async fn start(setup: &ControllerSetup) -> anyhow::Result<Nginx> {
        let bin = binary()?;
        let prefix = setup.dir.join("nginx");
        for d in [
            "tmp/body",
            "tmp/proxy",
            "tmp/fastcgi",
            "tmp/uwsgi",
            "tmp/scgi",
        ] {
            std::fs::create_dir_all(prefix.join(d))?;
        }
        let conf = prefix.join("nginx.conf");
        std::fs::write(&conf, render(setup, &prefix)?)?;
        // Validate first: a config error is reported as such.
        let test = Command::new(&bin)
            .arg("-t")
            .arg("-p")
            .arg(&prefix)
            .arg("-c")
            .arg(&conf)
            .output()?;
        if !test.status.success() {
            bail!(
                "nginx -t rejected {}:\n{}",
                conf.display(),
                String::from_utf8_lossy(&test.stderr)
            );
        }
        let mut cmd = Command::new(&bin);
        cmd.arg("-p").arg(&prefix).arg("-c").arg(&conf);
        let mut proc = Proc::spawn("nginx", &setup.dir, cmd)?;
        // Ready when the port accepts connections.
        for _ in 0..600 {
            proc.ensure_running()?;
            if tokio::net::TcpStream::connect(("127.0.0.1", setup.port))
                .await
                .is_ok()
            {
                return Ok(Nginx {
                    port: setup.port,
                    prefix,
                    proc,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!(
            "nginx did not listen on {} within 30 s\n{}",
            setup.port,
            proc.output()
        )
    }
}

impl ControllerFixture for Nginx {
    fn kind(&self) -> ControllerKind {
        ControllerKind::Nginx
    }
    fn public_port(&self) -> u16 {
        self.port
    }
    fn logs(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.prefix.join(f)).unwrap_or_default();
        format!(
            "--- nginx access.log ---\n{}\n--- nginx error.log ---\n{}",
            read("access.log"),
            read("error.log")
        )
    }
}
