//! workspace-gate: login and authorization for cloud development
//! workspaces, answering the auth checks of ingress-nginx, Traefik and
//! Envoy. It never proxies traffic.
//!
//! Modules in layers, bottom first. A module imports only modules of lower
//! layers; `tests/layers.rs` fails on any other import (see
//! `docs/architecture.md` for the picture and the known exceptions).
//!
//! 0. Leaves, no crate imports: [`files`] (bounded reads of operator
//!    files), [`bounded`], [`dns`] (host and Kubernetes name syntax),
//!    [`metrics`] (takes label strings), [`scheme`] (`http`/`https` and
//!    the origin built from it), [`connections`] (every listener's accept
//!    loop, header and idle timeouts, bounded shutdown).
//! 1. [`material`]: key and certificate files, read and checked.
//!    [`log_output`]: the bounded, non-blocking log writer (counts what it
//!    drops in `metrics`).
//! 2. [`config`]: plain settings values that other modules receive, read
//!    once by one reader; imports only the leaves and `material`.
//!    [`session`]: token formats (pass, transfer, login, state, sign-out)
//!    and keys.
//! 3. [`workspaces`]: the workspace model and the host -> workspace index,
//!    published as snapshots; fed by a file or by discovery.
//! 4. [`core`]: pure `decide()`, `rd` validation, reserved paths. No I/O;
//!    uses only `session`, `workspaces` and `scheme`.
//! 5. [`answer`]: every refusal, redirect and page, for every path.
//!    [`oidc`]: the login with the identity provider.
//! 6. [`authz`]: may this user use this workspace (GitLab GraphQL or owner
//!    annotation), cached.
//! 7. [`adapters`]: one file per controller; wire format ->
//!    [`core::CheckRequest`] and [`core::Decision`] -> wire format, through
//!    the [`adapters::Checks`] interface, never `server`.
//!    [`discovery`]: Kubernetes watcher and routing objects; never adapters.
//!    [`ssh`]: the SSH gateway to the workspaces' sshd (the one part that
//!    carries traffic); uses `authz` and `workspaces`, never adapters.
//! 8. [`server`]: wiring (settings from config, routes, admin port,
//!    shutdown); imported only by `main.rs` and tests.
#![forbid(unsafe_code)]
// Items are `pub(crate)` unless the binary, the tests or the benches use
// them through a public module.
#![warn(unreachable_pub)]

pub mod adapters;
pub(crate) mod answer;
pub mod authz;
pub(crate) mod bounded;
pub mod config;
pub mod connections;
pub mod core;
pub mod discovery;
pub(crate) mod dns;
pub mod files;
pub mod log_output;
pub(crate) mod material;
pub(crate) mod metrics;
pub mod oidc;
pub(crate) mod scheme;
pub mod server;
pub mod session;
pub mod ssh;
pub mod workspaces;
