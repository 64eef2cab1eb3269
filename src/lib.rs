//! workspace-gate: login and authorization for cloud development
//! workspaces, answering the auth checks of ingress-nginx, Traefik and
//! Envoy. It never proxies traffic.
//!
//! Data flows one way:
//!
//! - [`adapters`]: one file per controller; wire format -> [`core::CheckRequest`]
//!   and [`core::Decision`] -> wire format.
//! - [`core`]: pure `decide()`, `rd` validation, reserved paths. No I/O.
//! - [`answer`]: every refusal, redirect and page, for every path.
//! - [`session`]: token formats (pass, transfer, login, state, sign-out) and keys.
//! - [`oidc`]: the login with the identity provider.
//! - [`authz`]: may this user use this workspace (GitLab GraphQL or owner
//!   annotation), cached.
//! - [`workspaces`]: the host -> workspace index, published as snapshots;
//!   fed by a file or by discovery.
//! - [`server`]: configuration wiring, routes, admin port, shutdown.
//! - [`config`], [`metrics`], [`files`] (bounded reads of operator files).
#![forbid(unsafe_code)]

pub mod adapters;
pub mod answer;
pub mod authz;
pub mod bounded;
pub mod config;
pub mod core;
pub mod discovery;
pub mod files;
pub mod metrics;
pub mod oidc;
pub mod server;
pub mod session;
pub mod workspaces;
