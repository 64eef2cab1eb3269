//! The controller fixture: which ingress controller sits in front of the
//! gate. Scenarios take a [`ControllerKind`] and never know more about the
//! controller than this trait; adding Traefik or Envoy means one more
//! variant and one more `start` arm, not new scenarios.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Everything a controller needs to route to the gate and the workspace.
#[derive(Debug, Clone)]
pub struct ControllerSetup {
    pub dir: PathBuf,
    /// The one TLS port browsers use for the auth host and every workspace host.
    pub port: u16,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub auth_host: String,
    pub workspace_domain: String,
    pub gate_http: SocketAddr,
    pub gate_grpc: Option<SocketAddr>,
    /// The gate's `listen.https` and the CA file its certificate chains to.
    pub gate_https: Option<(SocketAddr, PathBuf)>,
    /// The sample workspace: hosts without a route of their own go here.
    pub upstream: SocketAddr,
    /// Each workspace host with its own upstream port (the sample
    /// workspace, recording the host as [`Seen::upstream`]), routed by
    /// the controller as discovery routes each host to its workspace.
    ///
    /// [`Seen::upstream`]: super::echo::Seen::upstream
    pub routes: Vec<(String, SocketAddr)>,
    /// The workspaces those hosts belong to.
    pub workspaces: Vec<super::workspaces::WorkspaceSpec>,
    /// Set when the gate runs discovery against the test control plane in
    /// these namespaces (the Kubernetes fixtures then leave the writing to
    /// it).
    pub kube: Option<super::traefik_kubernetes::KubeNamespaces>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControllerKind {
    /// nginx configured as ingress-nginx renders `auth-url` / `auth-signin`.
    Nginx,
    /// Traefik v3 with a forwardAuth middleware.
    Traefik,
    /// The same, asking the gate's `listen.https` (HTTP/2 over TLS).
    TraefikHttps,
    /// Traefik v3 with its `kubernetesIngressNGINX` provider reading the
    /// Ingresses discovery wrote into the test control plane's API server.
    TraefikIngressNginx,
    /// Traefik v3 with its `kubernetesIngress` and `kubernetesCRD` providers
    /// reading what discovery wrote in `traefik` mode (Ingresses and
    /// forwardAuth Middlewares) into the test control plane's API server.
    TraefikKubernetes,
    /// Envoy Gateway (its Kubernetes provider) translating what discovery
    /// wrote in `gateway-api` mode into a real Envoy's configuration.
    EnvoyGateway,
    /// Envoy with ext_authz over gRPC.
    EnvoyGrpc,
    /// The same, with `encode_raw_headers: true`: Envoy sends the headers
    /// as the raw `header_map` list instead of the `headers` map.
    EnvoyGrpcRaw,
    /// Envoy with ext_authz in HTTP mode.
    EnvoyHttp,
}

impl ControllerKind {
    pub fn name(self) -> &'static str {
        match self {
            ControllerKind::Nginx => "ingress-nginx",
            ControllerKind::Traefik => "traefik",
            ControllerKind::TraefikHttps => "traefik-https",
            ControllerKind::TraefikIngressNginx => "traefik-ingress-nginx",
            ControllerKind::TraefikKubernetes => "traefik-kubernetes",
            ControllerKind::EnvoyGateway => "envoy-gateway",
            ControllerKind::EnvoyGrpc => "envoy-grpc",
            ControllerKind::EnvoyGrpcRaw => "envoy-grpc-raw-headers",
            ControllerKind::EnvoyHttp => "envoy-http",
        }
    }

    /// How the gate hands transfer tokens to workspace hosts behind this
    /// controller in the tests: the gate's default, `fragment`, which works
    /// behind every controller (`form_post` needs the reserved prefix routed
    /// to the gate itself, as ingress-nginx does; scenarios that test the
    /// other modes set `StackOptions::transfer`).
    pub fn transfer(self) -> &'static str {
        "fragment"
    }

    /// Whether the gate must listen for gRPC (Envoy ext_authz).
    pub fn needs_grpc(self) -> bool {
        matches!(
            self,
            ControllerKind::EnvoyGrpc | ControllerKind::EnvoyGrpcRaw | ControllerKind::EnvoyGateway
        )
    }

    /// Whether the gate must listen for HTTPS checks.
    pub fn needs_https(self) -> bool {
        self == ControllerKind::TraefikHttps
    }

    pub async fn start(
        self,
        setup: &ControllerSetup,
    ) -> anyhow::Result<Box<dyn ControllerFixture>> {
        match self {
            ControllerKind::Nginx => Ok(Box::new(super::nginx::Nginx::start(setup).await?)),
            ControllerKind::Traefik | ControllerKind::TraefikHttps => {
                Ok(Box::new(super::traefik::Traefik::start(self, setup).await?))
            }
            ControllerKind::TraefikIngressNginx | ControllerKind::TraefikKubernetes => Ok(
                Box::new(super::traefik_kubernetes::TraefikKubernetes::start(self, setup).await?),
            ),
            ControllerKind::EnvoyGateway => Ok(Box::new(
                super::envoy_gateway::EnvoyGateway::start(setup).await?,
            )),
            ControllerKind::EnvoyGrpc
            | ControllerKind::EnvoyGrpcRaw
            | ControllerKind::EnvoyHttp => {
                Ok(Box::new(super::envoy::Envoy::start(self, setup).await?))
            }
        }
    }
}

pub trait ControllerFixture: Send + Sync {
    fn kind(&self) -> ControllerKind;
    fn public_port(&self) -> u16;
    /// The controller's own logs, for failure messages.
    fn logs(&self) -> String;
}
