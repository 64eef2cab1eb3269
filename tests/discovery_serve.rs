//! The real binary with `workspaces.source: kubernetes`: it finds the
//! cluster through `KUBECONFIG` (here the test API server double), builds
//! its index from workspace Services, writes the routing objects, answers
//! checks from that index, and refuses a workspace as soon as its Service
//! is deleted.

#[path = "support/discovery_env.rs"]
mod env;
#[path = "support/kube_api.rs"]
mod kube_api;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use env::*;
use k8s_openapi::api::core::v1::Service;
use kube::Api;
use kube::api::DeleteParams;
use workspace_gate::session::signed::sign;
use workspace_gate::session::{Identity, Keyring, PassClaims, TokenKind};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn check(http: &reqwest::Client, gate: u16, host: &str, cookie: &str) -> reqwest::Response {
    // As ingress-nginx calls it: the routed host in the check's address.
    http.get(format!("http://127.0.0.1:{gate}/check/nginx?host={host}"))
        .header("x-original-url", format!("https://{host}/"))
        .header("x-original-method", "GET")
        .header("accept", "application/json")
        .header("cookie", cookie)
        .send()
        .await
        .expect("check request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_kubernetes_source_indexes_routes_and_forgets_deleted_workspaces() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let api = kube_api::KubeApi::start().await;
    let admin = api.client("test");
    create_service(
        &admin,
        &workspace_service("team-a", "ws-a", 41, &[60001], "alice"),
    )
    .await;

    let dir = TempDir::new("serve-kube");
    let kubeconfig = dir.0.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: t, cluster: {{server: '{}'}}}}]\n\
users: [{{name: t, user: {{}}}}]\ncontexts: [{{name: t, context: {{cluster: t, user: t, namespace: gate}}}}]\ncurrent-context: t\n",
            api.url("gate-0")
        ),
    )
    .unwrap();
    let key = workspace_gate::session::keyring::generate_key();
    std::fs::write(dir.0.join("key"), &key).unwrap();
    std::fs::write(dir.0.join("secret"), "s3cret").unwrap();
    let (http_port, admin_port) = (free_port(), free_port());
    std::fs::write(
        dir.0.join("gate.yaml"),
        format!(
            "auth_host: {DOMAIN}\nworkspace_domain: {DOMAIN}\n\
listen: {{http: '127.0.0.1:{http_port}', admin: '127.0.0.1:{admin_port}'}}\n\
oidc: {{issuer: 'https://idp.invalid', client_id: gate, client_secret_file: secret}}\n\
keys: {{files: [key]}}\nworkspaces: {{source: kubernetes}}\nauthorization: {{mode: owner-annotation}}\n{}",
            sections("ingress-nginx", "gate-0", "")
        ),
    )
    .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_workspace-gate"));
    cmd.arg("serve")
        .arg("--config")
        .arg(dir.0.join("gate.yaml"))
        .env("KUBECONFIG", &kubeconfig)
        .env("POD_NAMESPACE", "gate")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, _) in std::env::vars() {
        if k.starts_with("WORKSPACE_GATE_") {
            cmd.env_remove(k);
        }
    }
    let _gate = Killed(cmd.spawn().expect("start the gate"));

    // The leader writes the workspace's Ingress.
    eventually("the workspace Ingress is applied", || {
        api.list("networking.k8s.io", "ingresses")
            .iter()
            .any(|i| i["metadata"]["namespace"] == "team-a")
    })
    .await;

    let host = format!("60001-ws-a.{DOMAIN}");
    let keyring =
        Keyring::new(&[workspace_gate::session::keyring::parse_key(&key).unwrap()]).unwrap();
    let now = workspace_gate::server::now();
    let pass = sign(
        &keyring,
        TokenKind::Pass,
        &PassClaims {
            aud: host.clone(),
            who: Identity {
                user_id: "alice".into(),
                username: "alice".into(),
            },
            wid: "41".into(),
            iat: now,
            exp: now + 600,
        },
    );
    let cookie = format!("__Host-workspace-gate-pass={pass}");
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut allowed = None;
    for _ in 0..300 {
        let r = check(&http, http_port, &host, &cookie).await;
        if r.status() == 200 {
            allowed = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let allowed = allowed.expect("the discovered workspace is allowed for its owner");
    assert_eq!(allowed.headers()["x-workspace-user"], "alice");
    assert_eq!(allowed.headers()["x-workspace-id"], "41");

    let metrics = http
        .get(format!("http://127.0.0.1:{admin_port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("workspace_gate_discovery_index_workspaces 1"),
        "discovery metrics on the admin port:\n{metrics}"
    );

    // Deleting the Service removes the workspace from the index at once.
    Api::<Service>::namespaced(admin.clone(), "team-a")
        .delete("ws-a", &DeleteParams::default())
        .await
        .expect("delete Service");
    let mut status = 0;
    for _ in 0..300 {
        status = check(&http, http_port, &host, &cookie)
            .await
            .status()
            .as_u16();
        if status == 403 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        status, 403,
        "a deleted workspace must be refused with the old pass"
    );
}
