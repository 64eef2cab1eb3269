//! Every controller refuses requests while the gate is down or hung, and
//! lets them through again when it returns, without being restarted.

mod support;

use support::controller::ControllerKind;
use support::failure::gate_down_or_hung_refuses_then_recovers as scenario;

async fn run(kind: ControllerKind) {
    if let Err(e) = scenario(kind).await {
        panic!("{e:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_fails_closed_and_recovers() {
    run(ControllerKind::Nginx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traefik_fails_closed_and_recovers() {
    run(ControllerKind::Traefik).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_grpc_fails_closed_and_recovers() {
    run(ControllerKind::EnvoyGrpc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_http_fails_closed_and_recovers() {
    run(ControllerKind::EnvoyHttp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_grpc_raw_headers_fails_closed_and_recovers() {
    run(ControllerKind::EnvoyGrpcRaw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traefik_over_https_fails_closed_and_recovers() {
    run(ControllerKind::TraefikHttps).await;
}
