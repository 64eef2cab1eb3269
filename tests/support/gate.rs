//! workspace-gate itself: a config file, key and secret files under the test
//! directory, the binary started with JSON logs captured to
//! `<dir>/gate.stdout`, and `/readyz` polled before any test request.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine;

use super::process::{Proc, free_port};

#[derive(Debug, Clone)]
pub struct GateConfig {
    pub auth_host: String,
    pub workspace_domain: String,
    pub public_port: u16,
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    pub workspaces_file: PathBuf,
    /// `gitlab` (with `gitlab_url`) or `owner-annotation`.
    pub authorization_mode: String,
    pub gitlab_url: Option<String>,
    /// `fragment`, `form_post` or `query`.
    pub transfer: String,
    /// `session.pass_ttl` (a duration).
    pub pass_ttl: String,
    pub grpc: bool,
    /// Also serve `listen.https`, with a certificate for 127.0.0.1 from a
    /// CA of its own.
    pub https: bool,
    /// Workspaces from discovery (`workspaces.source: kubernetes`) instead
    /// of the file.
    pub discovery: Option<GateDiscovery>,
    /// Serve `listen.ssh` on a free loopback port, with this `ssh:`
    /// section (YAML, indented under `ssh:`).
    pub ssh: Option<String>,
}

/// The gate's discovery: the API server it reads and its YAML sections.
#[derive(Debug, Clone)]
pub struct GateDiscovery {
    /// Given to the gate as `KUBECONFIG`.
    pub kubeconfig: PathBuf,
    /// `discovery:` and `routing:` sections of the configuration;
    /// `{{GATE_HTTP_PORT}}` stands for the port of `listen.http`.
    pub sections: String,
}

pub struct Gate {
    pub http: SocketAddr,
    pub admin: SocketAddr,
    pub grpc: Option<SocketAddr>,
    /// `listen.https` and the CA file that its certificate chains to.
    pub https: Option<(SocketAddr, PathBuf)>,
    /// `listen.ssh`, when [`GateConfig::ssh`] was given.
    pub ssh: Option<SocketAddr>,
    pub config_file: PathBuf,
    /// The running process; replaced by [`Gate::restart`].
    pub proc: std::sync::Mutex<Proc>,
    binary: PathBuf,
    dir: PathBuf,
    kubeconfig: Option<PathBuf>,
    /// Log files of every run of the gate, in order.
    log_files: std::sync::Mutex<Vec<PathBuf>>,
}

/// Where the gate binary is: `WORKSPACE_GATE_BIN` when set, else the
/// integration test's own `CARGO_BIN_EXE_workspace-gate`, else next to the
/// running example.
///
/// `WORKSPACE_GATE_BIN` runs the scenarios against another build (a release
/// binary, an older version). Note: git worktrees of this repository that
/// share one CARGO_TARGET_DIR build to the same artifact names (cargo's
/// metadata hash does not depend on the worktree's path), so they overwrite
/// each other's binaries, test executables included: give each worktree its
/// own target dir when running these tests.
pub fn default_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("WORKSPACE_GATE_BIN") {
        return PathBuf::from(p);
    }
    if let Some(p) = option_env!("CARGO_BIN_EXE_workspace-gate") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/examples/local -> target/<profile>/workspace-gate
    exe.parent()
        .and_then(Path::parent)
        .map(|d| d.join("workspace-gate"))
        .expect("target dir")
}

impl Gate {
    pub async fn start(dir: &Path, binary: &Path, cfg: &GateConfig) -> anyhow::Result<Gate> {
        if !binary.is_file() {
            bail!("workspace-gate binary not found at {}", binary.display());
        }
        let http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse()?;
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse()?;
        let grpc: Option<SocketAddr> = cfg
            .grpc
            .then(|| format!("127.0.0.1:{}", free_port()).parse())
            .transpose()?;
        let https = if cfg.https {
            let tls_dir = dir.join("gate-tls");
            std::fs::create_dir_all(&tls_dir)?;
            let ca = super::tls::TestCa::issue(&tls_dir, &["127.0.0.1".to_string()])?;
            let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse()?;
            Some((addr, ca))
        } else {
            None
        };
        let https_lines = https
            .as_ref()
            .map(|(a, ca)| {
                format!(
                    "  https: {a}\ntls:\n  cert_file: {}\n  key_file: {}\n",
                    ca.cert_file.display(),
                    ca.key_file.display()
                )
            })
            .unwrap_or_default();
        let key = dir.join("gate-key-1");
        let mut raw = [0u8; 32];
        rand::fill(&mut raw[..]);
        std::fs::write(&key, base64::engine::general_purpose::STANDARD.encode(raw))?;
        let secret = dir.join("gate-client-secret");
        std::fs::write(&secret, &cfg.client_secret)?;
        let authz = match (&cfg.authorization_mode[..], &cfg.gitlab_url) {
            ("gitlab", Some(url)) => format!("  mode: gitlab\n  gitlab_url: {url}\n"),
            (mode, _) => format!("  mode: {mode}\n"),
        };
        let mut grpc_line = grpc.map(|g| format!("  grpc: {g}\n")).unwrap_or_default();
        let ssh: Option<SocketAddr> = cfg
            .ssh
            .as_ref()
            .map(|_| format!("127.0.0.1:{}", free_port()).parse())
            .transpose()?;
        let ssh_section = match (&cfg.ssh, ssh) {
            (Some(section), Some(addr)) => {
                grpc_line.push_str(&format!("  ssh: {addr}\n"));
                format!("ssh:\n{section}")
            }
            _ => String::new(),
        };
        let workspaces = match &cfg.discovery {
            Some(d) => format!(
                "workspaces:\n  source: kubernetes\n{}",
                d.sections
                    .replace("{{GATE_HTTP_PORT}}", &http.port().to_string())
            ),
            None => format!(
                "workspaces:\n  source: file\n  file: {}\n",
                cfg.workspaces_file.display()
            ),
        };
        let yaml = format!(
            "# written by tests/support/gate.rs\n\
auth_host: {auth}\n\
workspace_domain: {domain}\n\
public_scheme: https\n\
public_port: {port}\n\
listen:\n  http: {http}\n  admin: {admin}\n{grpc_line}{https_lines}\
oidc:\n  issuer: {issuer}\n  client_id: {client_id}\n  client_secret_file: {secret}\n  scopes: [openid, profile, offline_access, read_api]\n  username_claim: preferred_username\n\
keys:\n  files: [{key}]\n\
session:\n  pass_ttl: {pass_ttl}\n  login_ttl: 7d\n  transfer: {transfer}\n\
{workspaces}{ssh_section}\
authorization:\n{authz}\
log:\n  format: json\n  level: info,workspace_gate=debug\n",
            auth = cfg.auth_host,
            domain = cfg.workspace_domain,
            port = cfg.public_port,
            issuer = cfg.issuer,
            client_id = cfg.client_id,
            secret = secret.display(),
            key = key.display(),
            transfer = cfg.transfer,
            pass_ttl = cfg.pass_ttl,
        );
        let config_file = dir.join("gate.yaml");
        std::fs::write(&config_file, yaml)?;

        let kubeconfig = cfg.discovery.as_ref().map(|d| d.kubeconfig.clone());
        let proc = spawn(
            binary,
            dir,
            &config_file,
            "gate",
            admin,
            kubeconfig.as_deref(),
        )
        .await?;
        let log_files = vec![proc.stdout.clone(), proc.stderr.clone()];
        Ok(Gate {
            http,
            admin,
            grpc,
            https: https.map(|(a, ca)| (a, ca.ca_file)),
            ssh,
            config_file,
            proc: std::sync::Mutex::new(proc),
            binary: binary.to_path_buf(),
            dir: dir.to_path_buf(),
            kubeconfig,
            log_files: std::sync::Mutex::new(log_files),
        })
    }

    /// Stops the gate (SIGTERM, then SIGKILL); the controller keeps running.
    pub fn stop(&self) {
        self.proc.lock().unwrap().kill();
    }

    /// Starts the gate again with the same configuration, ports and keys,
    /// and waits until it is ready.
    pub async fn restart(&self) -> anyhow::Result<()> {
        self.stop();
        let n = self.log_files.lock().unwrap().len() / 2;
        let name = format!("gate-run{}", n + 1);
        let proc = spawn(
            &self.binary,
            &self.dir,
            &self.config_file,
            &name,
            self.admin,
            self.kubeconfig.as_deref(),
        )
        .await?;
        self.log_files
            .lock()
            .unwrap()
            .extend([proc.stdout.clone(), proc.stderr.clone()]);
        *self.proc.lock().unwrap() = proc;
        Ok(())
    }

    /// stdout and stderr of the gate so far (its JSON logs).
    pub fn logs(&self) -> String {
        self.log_files
            .lock()
            .unwrap()
            .iter()
            .map(|f| std::fs::read_to_string(f).unwrap_or_default())
            .collect()
    }

    pub async fn metrics(&self) -> anyhow::Result<String> {
        let http = reqwest::Client::builder().no_proxy().build()?;
        Ok(http
            .get(format!("http://{}/metrics", self.admin))
            .send()
            .await?
            .text()
            .await?)
    }
}

/// `workspace_gate_logins_total{stage="failed",reason="<reason>"}` in a
/// `/metrics` text (0 when the series does not exist yet).
pub fn login_failures(metrics: &str, reason: &str) -> f64 {
    metrics
        .lines()
        .find(|l| {
            l.starts_with("workspace_gate_logins_total")
                && l.contains("stage=\"failed\"")
                && l.contains(&format!("reason=\"{reason}\""))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

async fn spawn(
    binary: &Path,
    dir: &Path,
    config_file: &Path,
    name: &str,
    admin: SocketAddr,
    kubeconfig: Option<&Path>,
) -> anyhow::Result<Proc> {
    let mut cmd = Command::new(binary);
    cmd.arg("serve").arg("--config").arg(config_file);
    // Only what we configure counts: no stray WORKSPACE_GATE_* from the caller.
    for (k, _) in std::env::vars() {
        if k.starts_with("WORKSPACE_GATE_") {
            cmd.env_remove(k);
        }
    }
    match kubeconfig {
        Some(k) => cmd.env("KUBECONFIG", k),
        None => cmd.env_remove("KUBECONFIG"),
    };
    let mut proc = Proc::spawn(name, dir, cmd)?;
    wait_ready(&mut proc, admin).await.with_context(|| {
        format!(
            "binary {} (another worktree's build in a shared target dir? see default_binary)",
            binary.display()
        )
    })?;
    Ok(proc)
}

async fn wait_ready(proc: &mut Proc, admin: SocketAddr) -> anyhow::Result<()> {
    super::install_crypto_provider();
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()?;
    let url = format!("http://{admin}/readyz");
    let mut last = String::new();
    for _ in 0..600 {
        proc.ensure_running()
            .context("workspace-gate exited before it was ready")?;
        match http.get(&url).send().await {
            // Ready for checks, and for logins too: the tests log in.
            Ok(r) if r.status().is_success() => {
                let body = r.text().await.unwrap_or_default();
                if body.contains("oidc: true") {
                    return Ok(());
                }
                last = format!("200 {body}");
            }
            Ok(r) => last = format!("{} {}", r.status(), r.text().await.unwrap_or_default()),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!(
        "workspace-gate not ready within 30 s (last /readyz: {last})\n{}",
        proc.output()
    )
}
