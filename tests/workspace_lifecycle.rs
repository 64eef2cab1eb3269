//! A workspace's whole life on a real control plane, through a real
//! controller reading the API server: GitLab's agent creates the workspace
//! Service, the gate (its discovery, in the gate's own process) indexes it
//! and writes its routing objects, the controller routes them, a user logs
//! in and uses the workspace (a WebSocket included); the Service is
//! deleted, the next request with the same pass is refused and the real
//! garbage collector removes the objects. Once per routing mode: `traefik`
//! (Traefik's kubernetesIngress + kubernetesCRD), `ingress-nginx` (Traefik's
//! kubernetesIngressNGINX) and `gateway-api` (Envoy Gateway, with a real
//! Envoy running what it translated).

mod support;

use std::time::Duration;

use anyhow::{Context, bail, ensure};
use support::control_plane::ControlPlane;
use support::controller::ControllerKind;
use support::scenarios::visit;
use support::stack::{DOMAIN, Stack, StackOptions};
use support::traefik_kubernetes::workspace_objects;
use support::workspaces::{WorkspaceSpec, default_workspaces};
use support::ws::{self, Handshake};

const HOST: &str = "ws-4.workspaces.test";
const NET: &str = "networking.k8s.io/v1";
const GW: &str = "gateway.networking.k8s.io/v1";

/// Polls `cond` every 100 ms; fails with `what` after `limit` (a bound
/// against hangs only).
async fn until<F, Fut>(what: &str, limit: Duration, mut cond: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !cond().await? {
        if tokio::time::Instant::now() > deadline {
            bail!("timed out waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// The routing objects discovery writes for workspace `ws-4` in `kind`'s
/// mode: (api version, plural, name).
fn objects_of(kind: ControllerKind) -> Vec<(&'static str, &'static str, &'static str)> {
    match kind {
        ControllerKind::TraefikKubernetes => vec![
            (NET, "ingresses", "ws-4-wg"),
            ("traefik.io/v1alpha1", "middlewares", "ws-4-wg-auth"),
            (NET, "networkpolicies", "ws-4-wg-allow"),
        ],
        ControllerKind::EnvoyGateway => vec![
            (GW, "httproutes", "ws-4-8080-wg"),
            (
                "gateway.envoyproxy.io/v1alpha1",
                "securitypolicies",
                "ws-4-wg-auth",
            ),
            (NET, "networkpolicies", "ws-4-wg-allow"),
        ],
        _ => vec![
            (NET, "ingresses", "ws-4-wg"),
            (NET, "ingresses", "ws-4-wg-reserved"),
            ("v1", "services", "ws-4-wg-gate"),
            (NET, "networkpolicies", "ws-4-wg-allow"),
        ],
    }
}

async fn life(s: &Stack, kind: ControllerKind) -> anyhow::Result<()> {
    let cp = ControlPlane::shared().await;
    let ns = s.kube.clone().context("the stack runs no discovery")?;

    // GitLab creates a workspace for alice: the API double learns it, the
    // agent writes its Service.
    let spec = WorkspaceSpec::explicit("4", "ws-4", "alice", &[HOST]);
    let mut list = default_workspaces(DOMAIN);
    list.push(spec.clone());
    s.workspaces.write(&list)?;
    let upstream = s.echo.listen_as(HOST).await?;
    for o in workspace_objects(&ns.workspaces, &spec, &[(HOST.to_string(), upstream)])? {
        cp.apply_yaml(&o.to_string()).await?;
    }
    let svc = cp
        .get("v1", "services", &ns.workspaces, "ws-4")
        .await
        .context("the workspace Service")?;
    let uid = svc["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();

    // Discovery writes its objects, owned by the Service.
    let objects = objects_of(kind);
    until(
        "the gate writes the workspace's objects",
        Duration::from_secs(60),
        || async { Ok(cp.count_present(&ns.workspaces, &objects).await == objects.len()) },
    )
    .await?;
    for (v, plural, name) in &objects {
        let o = cp
            .get(v, plural, &ns.workspaces, name)
            .await
            .unwrap_or_default();
        ensure!(
            o["metadata"]["ownerReferences"][0]["uid"] == uid.as_str(),
            "{plural}/{name} is not owned by the Service: {}",
            o["metadata"]
        );
    }

    // The controller picks them up: alice logs in and lands on the new
    // workspace's own upstream. Until it has the routes, the host
    // meets the catch-all (the sample workspace, or a refused login where
    // the reserved path is not routed yet).
    let b = s.browser("alice");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let landed = visit(s, &b, HOST, "/").await;
        if landed.is_ok() && !s.echo.seen_by(HOST).is_empty() {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            return landed
                .and_then(|_| bail!("only the catch-all answered"))
                .context("the controller did not route the new workspace within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let url = format!("wss://{HOST}:{}/ws", s.port);
    let origin = s.url(HOST, "");
    let cookie = b.jar.lock().unwrap().header_for(HOST, "/", true);
    let mut sock = match ws::connect(&s.ca, s.port, &url, cookie.as_deref(), &origin).await? {
        Handshake::Open(sock) => sock,
        Handshake::Refused { status, location } => {
            bail!("WebSocket with the pass refused: {status} {location:?}")
        }
    };
    ensure!(ws::next_text(&mut sock).await? == "hello alice");
    ws::send_text(&mut sock, "edit main.rs").await?;
    ensure!(ws::next_text(&mut sock).await? == "edit main.rs");
    ensure!(
        s.echo.seen_by(HOST).iter().any(|r| r.uri == "/ws"),
        "the WebSocket did not reach the workspace's upstream"
    );
    drop(sock);

    // The workspace is deleted: with the same pass, the next request the
    // gate answers after the watch event is refused, and so is every one
    // after it.
    cp.delete("v1", "services", &ns.workspaces, "ws-4").await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let r = loop {
        let r = b.fetch(&s.url(HOST, "/after-delete")).await?;
        if r.status != 200 {
            break r;
        }
        if tokio::time::Instant::now() > deadline {
            bail!("the deleted workspace was still allowed after 30 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    ensure!(
        [401, 403, 404].contains(&r.status),
        "a deleted workspace answered {}",
        r.describe()
    );
    let reached = s.echo.seen_by(HOST).len();
    for path in ["/later", "/ws"] {
        let r = b.fetch(&s.url(HOST, path)).await?;
        ensure!(r.status != 200, "{path} after deletion: {}", r.describe());
    }
    ensure!(
        s.echo.seen_by(HOST).len() == reached,
        "a request reached the deleted workspace after its first refusal"
    );

    // The real garbage collector removes what the gate wrote.
    until(
        "the objects are collected",
        Duration::from_secs(180),
        || async { Ok(cp.count_present(&ns.workspaces, &objects).await == 0) },
    )
    .await?;
    Ok(())
}

async fn run(kind: ControllerKind) {
    let mut options = StackOptions::new(kind, "lifecycle");
    options.discovery = true;
    let s = Stack::start(options).await.expect("stack");
    // A bound only against hangs; no assertion depends on time.
    match tokio::time::timeout(Duration::from_secs(400), life(&s, kind)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("{e:?}\n{}", s.diagnostics()),
        Err(_) => panic!("hung for 400 s\n{}", s.diagnostics()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspace_lives_and_ends_through_traefik_reading_the_api_server() {
    run(ControllerKind::TraefikKubernetes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspace_lives_and_ends_through_envoy_gateway_reading_the_api_server() {
    run(ControllerKind::EnvoyGateway).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspace_lives_and_ends_through_traefiks_ingress_nginx_provider() {
    run(ControllerKind::TraefikIngressNginx).await;
}
