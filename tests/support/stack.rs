//! One complete stack per test: test CA, OpenID provider, GitLab GraphQL
//! double, sample workspace, workspace-gate and the controller in front,
//! all on 127.0.0.1 with ports picked for this test. Dropped at the end of
//! the test (children killed, directory removed unless kept).

use std::path::PathBuf;

use anyhow::Context;

use super::client::Browser;
use super::controller::{ControllerFixture, ControllerKind, ControllerSetup};
use super::echo::Echo;
use super::gate::{Gate, GateConfig, GateDiscovery};
use super::gitlab::GitlabDouble;
use super::hostile_provider::HostileProvider;
use super::process::{TestDir, free_port};
use super::provider::{self, Provider};
use super::tls::TestCa;
use super::traefik_kubernetes::{KubeNamespaces, discovery_sections};
use super::workspaces::{WorkspaceSpec, WorkspacesFile, default_workspaces};

pub const DOMAIN: &str = "workspaces.test";
pub const AUTH_HOST: &str = "workspaces.test";
pub const WS1: &str = "ws-1.workspaces.test";
pub const WS2_A: &str = "60001-ws-2.workspaces.test";
pub const WS2_B: &str = "3000-ws-2.workspaces.test";
pub const WS3_BOB: &str = "ws-3.workspaces.test";
/// Under the workspace domain but owned by no workspace.
pub const UNKNOWN: &str = "nobody.workspaces.test";

#[derive(Debug, Clone)]
pub struct StackOptions {
    pub controller: ControllerKind,
    /// `gitlab` (default; through the GraphQL double) or `owner-annotation`.
    pub authorization: String,
    /// Overrides the controller's transfer mode.
    pub transfer: Option<String>,
    pub workspaces: Vec<WorkspaceSpec>,
    /// Directory label (test name).
    pub label: String,
    /// The controller's TLS port; None picks a free one.
    pub port: Option<u16>,
    /// The provider's access-token lifetime in seconds (None: one hour).
    pub access_token_ttl: Option<u64>,
    /// Log in at the hostile provider (`hostile_provider.rs`), which signs
    /// whatever ID token the test chooses, instead of the real one.
    pub hostile_provider: bool,
    /// The gate's `session.pass_ttl` (None: 12h).
    pub pass_ttl: Option<String>,
    /// The gate reads its workspaces from the test control plane and writes
    /// the routing objects there (discovery) instead of reading the file;
    /// only for the Traefik Kubernetes controllers, which then route what
    /// it wrote.
    pub discovery: bool,
}

impl StackOptions {
    pub fn new(controller: ControllerKind, label: &str) -> StackOptions {
        StackOptions {
            controller,
            authorization: "gitlab".into(),
            transfer: None,
            workspaces: default_workspaces(DOMAIN),
            label: label.into(),
            port: None,
            access_token_ttl: None,
            hostile_provider: false,
            pass_ttl: None,
            discovery: false,
        }
    }
}

/// The provider the stack's gate logs in with.
pub enum OpenIdProvider {
    Real(Provider),
    Hostile(HostileProvider),
}

impl OpenIdProvider {
    pub fn issuer(&self) -> &str {
        match self {
            OpenIdProvider::Real(p) => &p.issuer,
            OpenIdProvider::Hostile(p) => &p.issuer,
        }
    }

    pub fn client_secret(&self) -> &str {
        match self {
            OpenIdProvider::Real(p) => &p.client_secret,
            OpenIdProvider::Hostile(p) => &p.client_secret,
        }
    }

    /// The real provider; a test that needs it must not ask for the hostile one.
    pub fn real(&self) -> &Provider {
        match self {
            OpenIdProvider::Real(p) => p,
            OpenIdProvider::Hostile(_) => panic!("this stack runs the hostile provider"),
        }
    }

    pub fn hostile(&self) -> &HostileProvider {
        match self {
            OpenIdProvider::Hostile(p) => p,
            OpenIdProvider::Real(_) => panic!("this stack runs the real provider"),
        }
    }

    fn output(&self) -> String {
        match self {
            OpenIdProvider::Real(p) => p.proc.output(),
            OpenIdProvider::Hostile(_) => "(hostile provider: in process, no logs)".into(),
        }
    }
}

pub struct Stack {
    // Field order is drop order: controller before gate before the rest.
    pub controller: Box<dyn ControllerFixture>,
    pub gate: Gate,
    pub echo: Echo,
    pub gitlab: GitlabDouble,
    pub provider: OpenIdProvider,
    pub workspaces: WorkspacesFile,
    pub ca: TestCa,
    pub port: u16,
    pub options: StackOptions,
    /// The control plane namespaces when the gate runs discovery.
    pub kube: Option<KubeNamespaces>,
    pub dir: TestDir,
}

impl Stack {
    pub async fn start(options: StackOptions) -> anyhow::Result<Stack> {
        Self::start_with_binary(options, &super::gate::default_binary()).await
    }

    pub async fn start_with_binary(
        options: StackOptions,
        gate_binary: &std::path::Path,
    ) -> anyhow::Result<Stack> {
        super::install_crypto_provider();
        let dir = TestDir::new(&options.label)?;
        let ca = TestCa::create(&dir.path, DOMAIN).context("creating the test CA")?;
        let port = options.port.unwrap_or_else(free_port);
        let provider = if options.hostile_provider {
            OpenIdProvider::Hostile(
                HostileProvider::start()
                    .await
                    .context("starting the hostile OpenID provider")?,
            )
        } else {
            OpenIdProvider::Real(
                Provider::start_with(
                    &dir.path,
                    &[format!("https://{AUTH_HOST}:{port}/auth/callback")],
                    options.access_token_ttl,
                )
                .await
                .context("starting the OpenID provider")?,
            )
        };
        let workspaces = WorkspacesFile {
            path: dir.path.join("workspaces.yaml"),
        };
        workspaces.write(&options.workspaces)?;
        let gitlab = GitlabDouble::start(provider.issuer(), workspaces.path.clone()).await?;
        let echo = Echo::start().await?;
        let kube = if options.discovery {
            let cp = super::control_plane::ControlPlane::shared().await;
            let ns = KubeNamespaces::create(cp).await?;
            let kubeconfig = dir.path.join("kubeconfig");
            std::fs::write(&kubeconfig, cp.kubeconfig(cp.admin_token()))?;
            let sections =
                discovery_sections(options.controller, &ns, "gate", "{{GATE_HTTP_PORT}}")?;
            Some((
                ns,
                GateDiscovery {
                    kubeconfig,
                    sections,
                },
            ))
        } else {
            None
        };
        let transfer = options
            .transfer
            .clone()
            .unwrap_or_else(|| options.controller.transfer().to_string());
        let gate = Gate::start(
            &dir.path,
            gate_binary,
            &GateConfig {
                auth_host: AUTH_HOST.into(),
                workspace_domain: DOMAIN.into(),
                public_port: port,
                issuer: provider.issuer().to_string(),
                client_id: provider::CLIENT_ID.into(),
                client_secret: provider.client_secret().to_string(),
                workspaces_file: workspaces.path.clone(),
                authorization_mode: options.authorization.clone(),
                gitlab_url: Some(gitlab.url()),
                transfer,
                pass_ttl: options.pass_ttl.clone().unwrap_or_else(|| "12h".into()),
                grpc: options.controller.needs_grpc(),
                https: options.controller.needs_https(),
                discovery: kube.as_ref().map(|(_, d)| d.clone()),
                ssh: None,
            },
        )
        .await
        .context("starting workspace-gate")?;
        let mut routes = Vec::new();
        for host in options.workspaces.iter().flat_map(WorkspaceSpec::all_hosts) {
            let addr = echo.listen_as(&host).await?;
            routes.push((host, addr));
        }
        let setup = ControllerSetup {
            dir: dir.path.clone(),
            port,
            cert_file: ca.cert_file.clone(),
            key_file: ca.key_file.clone(),
            auth_host: AUTH_HOST.into(),
            workspace_domain: DOMAIN.into(),
            gate_http: gate.http,
            gate_grpc: gate.grpc,
            gate_https: gate.https.clone(),
            upstream: echo.addr(),
            routes,
            workspaces: options.workspaces.clone(),
            kube: kube.as_ref().map(|(ns, _)| ns.clone()),
        };
        let controller = options
            .controller
            .start(&setup)
            .await
            .with_context(|| format!("starting {}", options.controller.name()))?;
        Ok(Stack {
            kube: kube.map(|(ns, _)| ns),
            controller,
            gate,
            echo,
            gitlab,
            provider,
            workspaces,
            ca,
            port,
            options,
            dir,
        })
    }

    /// `https://<host>:<port><path>`
    pub fn url(&self, host: &str, path: &str) -> String {
        format!("https://{host}:{}{path}", self.port)
    }

    /// A fresh browser (empty jar) that logs in as `user` when asked.
    pub fn browser(&self, user: &str) -> Browser {
        Browser::new(Some(&self.ca.ca_der), DOMAIN)
            .expect("browser")
            .with_user(user)
    }

    pub fn dir(&self) -> PathBuf {
        self.dir.path.clone()
    }

    /// Logs of every component, for failure messages.
    pub fn diagnostics(&self) -> String {
        format!(
            "--- gate logs ---\n{}\n{}\n--- provider ---\n{}",
            tail_str(&self.gate.logs(), 12000),
            tail_str(&self.controller.logs(), 6000),
            self.provider.output()
        )
    }

    /// Fails when any of `secrets` appears in the gate's logs.
    pub fn assert_logs_free_of(&self, secrets: &[String]) -> anyhow::Result<()> {
        let logs = self.gate.logs();
        let leaked: Vec<&String> = secrets
            .iter()
            .filter(|s| s.len() >= 16 && logs.contains(s.as_str()))
            .collect();
        if !leaked.is_empty() {
            let lines: Vec<&str> = logs
                .lines()
                .filter(|l| leaked.iter().any(|s| l.contains(s.as_str())))
                .take(5)
                .collect();
            anyhow::bail!(
                "{} secret value(s) appear in the gate's logs, e.g. {:?}; lines:\n{}",
                leaked.len(),
                leaked.first().map(|s| format!("{}…", &s[..12])),
                lines.join("\n")
            );
        }
        Ok(())
    }
}

fn tail_str(s: &str, n: usize) -> &str {
    let mut start = s.len().saturating_sub(n);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}
