//! The local try-out: everything on loopback, nothing but this machine's
//! package registries needed (run scripts/install-deps.sh once).
//!
//!     cargo run --example local            # TLS port 8443
//!     cargo run --example local -- 9443    # another port
//!
//! Starts the real OpenID provider (node-oidc-provider; any password), the
//! GitLab GraphQL test double (authorization mode `gitlab`: the gate asks
//! "GitLab" whether the signed-in user owns the workspace, and the double
//! answers from the workspaces file after checking the token at the
//! provider), real nginx configured exactly as ingress-nginx renders the
//! `auth-url`/`auth-signin` annotations, TLS from a throwaway CA,
//! workspace-gate with a static workspaces file, and a sample workspace (an
//! echo page showing the identity headers, with a WebSocket).
//!
//! alice owns ws-1, bob owns ws-2 (and 60001-ws-3 via a GitLab host template).
//! Runs until Ctrl-C, then stops every child and removes its directory.

#[path = "../tests/support/mod.rs"]
mod support;

use std::process::Command;

use support::controller::ControllerKind;
use support::stack::{AUTH_HOST, DOMAIN, Stack, StackOptions};
use support::workspaces::WorkspaceSpec;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let port: u16 = match std::env::args().nth(1) {
        Some(p) => p
            .parse()
            .map_err(|_| anyhow::anyhow!("usage: cargo run --example local [PORT]"))?,
        None => 8443,
    };
    if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
        anyhow::bail!("port {port} is busy: cargo run --example local -- <free port>");
    }
    build_gate()?;
    let mut options = StackOptions::new(ControllerKind::Nginx, "local");
    options.port = Some(port);
    options.workspaces = vec![
        WorkspaceSpec::explicit("1", "ws-1", "alice", &[&format!("ws-1.{DOMAIN}")]),
        WorkspaceSpec::explicit("2", "ws-2", "bob", &[&format!("ws-2.{DOMAIN}")]),
        WorkspaceSpec::templated(
            "3",
            "ws-3",
            "bob",
            &format!("{{{{.port}}}}-ws-3.{DOMAIN}"),
            &[60001],
        ),
    ];
    let stack = Stack::start(options).await?;
    let dir = stack.dir();
    println!(
        r#"
workspace-gate local try-out is running (Ctrl-C stops everything).

  Open:   https://ws-1.{DOMAIN}:{port}/          (alice's workspace)
          https://ws-2.{DOMAIN}:{port}/          (bob's; alice is refused)
  Users:  alice, bob — any password; then "Continue" on the consent page.

  *.{DOMAIN} must resolve to 127.0.0.1. Easiest, a throwaway Chromium:

    chromium --user-data-dir=$(mktemp -d) \
      --host-resolver-rules="MAP *.{DOMAIN} 127.0.0.1, MAP {DOMAIN} 127.0.0.1" \
      --ignore-certificate-errors-spki-list={spki} \
      https://ws-1.{DOMAIN}:{port}/

  or trust {ca} and add to /etc/hosts:
    127.0.0.1 {AUTH_HOST} ws-1.{DOMAIN} ws-2.{DOMAIN} 60001-ws-3.{DOMAIN}

  curl goes through the same check (no pass: ingress-nginx turns the 401
  into a 302 to the sign-in URL; add -H 'Authorization: Bearer <token>'
  with a provider access token to be let in):
    curl -i --cacert {ca} --resolve ws-1.{DOMAIN}:{port}:127.0.0.1 \
      -H 'Accept: application/json' https://ws-1.{DOMAIN}:{port}/

  Provider:  {issuer}
  Gate:      http://{http} (check), http://{admin}/metrics
  Files:     {dir}  (gate.yaml, workspaces.yaml — edit it to remove a workspace,
             gate.stdout = the gate's JSON logs, nginx/nginx.conf)
"#,
        spki = stack.ca.spki_sha256,
        ca = stack.ca.ca_file.display(),
        issuer = stack.provider.issuer(),
        http = stack.gate.http,
        admin = stack.gate.admin,
        dir = dir.display(),
    );
    // Ctrl-C, or SIGTERM (e.g. from `timeout`): stop children either way.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    println!("stopping");
    drop(stack);
    Ok(())
}

/// `cargo run --example` does not build the binary the stack starts.
fn build_gate() -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--bin", "workspace-gate"])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if !cfg!(debug_assertions) {
        cmd.arg("--release");
    }
    let status = cmd.status()?;
    anyhow::ensure!(status.success(), "building workspace-gate failed");
    Ok(())
}
