//! workspace-gate: login and authorization for cloud development workspaces,
//! answering the auth checks of ingress-nginx, Traefik and Envoy.
#![forbid(unsafe_code)]

pub mod config;
pub mod discovery;
pub mod session;
pub mod workspaces;
