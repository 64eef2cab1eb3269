//! End-to-end test support: real nginx, a real OpenID provider, the GitLab
//! GraphQL test double, a sample workspace and workspace-gate, wired on
//! 127.0.0.1 per test.
//!
//! - `tls`: throwaway CA + `*.workspaces.test` certificate
//! - `process`: child processes killed on drop, free ports, test dirs
//! - `provider`: node-oidc-provider (`oidc/provider.mjs`) + harness token flow
//! - `hostile_provider`: an in-process provider signing any ID token a test
//!   chooses (`StackOptions::hostile_provider`)
//! - `gitlab`: GitLab GraphQL test double (tokens resolved at the provider)
//! - `echo`: the sample workspace (headers as JSON/HTML, WebSocket echo)
//! - `gate`: workspace-gate's config and process
//! - `controller`: the controller fixture (`ControllerKind`), `nginx` its
//!   first implementation (`tests/fixtures/nginx/nginx.conf.tmpl`)
//! - `jar`, `client`: a scripted browser (cookie jar, redirects, forms)
//! - `stack`: all of the above for one test
//! - `control_plane`, `discovery_env`: a real Kubernetes control plane and
//!   discovery running against it (the `kubernetesIngressNGINX` fixture)
//! - `scenarios`: the behaviours, parameterized by controller
//! - `raw`, `host_confusion`: hand-written requests that name two hosts, and
//!   the proof that none reaches the workspace the check did not decide on
#![allow(dead_code, unused_imports)]

pub mod client;
pub mod control_plane;
pub mod controller;
pub mod discovery_env;
pub mod echo;
pub mod envoy;
pub mod envoy_gateway;
pub mod failure;
pub mod gate;
pub mod gitlab;
pub mod host_confusion;
pub mod hostile_provider;
pub mod jar;
pub mod nginx;
pub mod process;
pub mod provider;
pub mod raw;
pub mod scenarios;
pub mod stack;
pub mod tls;
pub mod traefik;
pub mod traefik_kubernetes;
pub mod workspaces;
pub mod ws;

/// reqwest and rustls are built without a default crypto provider here.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
