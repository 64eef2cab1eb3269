//! Requests that name one host to the controller and another to the check
//! (absolute request targets, repeated `Host`, client-sent `X-Original-URL`
//! and `X-Forwarded-*`, HTTP/2 `:authority` against `host`), through every
//! real controller: none reaches another workspace's upstream.

mod support;

use support::controller::ControllerKind;
use support::host_confusion::requests_naming_another_host_never_reach_it as attack;

macro_rules! per_controller {
    ($($name:ident => $kind:expr),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                if let Err(e) = attack($kind).await {
                    panic!("{e:?}");
                }
            }
        )*
    };
}

per_controller! {
    ingress_nginx_routes_and_checks_the_same_host => ControllerKind::Nginx,
    traefik_routes_and_checks_the_same_host => ControllerKind::Traefik,
    traefik_https_routes_and_checks_the_same_host => ControllerKind::TraefikHttps,
    traefik_ingress_nginx_routes_and_checks_the_same_host => ControllerKind::TraefikIngressNginx,
    traefik_kubernetes_routes_and_checks_the_same_host => ControllerKind::TraefikKubernetes,
    envoy_grpc_routes_and_checks_the_same_host => ControllerKind::EnvoyGrpc,
    envoy_grpc_raw_headers_routes_and_checks_the_same_host => ControllerKind::EnvoyGrpcRaw,
    envoy_http_routes_and_checks_the_same_host => ControllerKind::EnvoyHttp,
    envoy_gateway_routes_and_checks_the_same_host => ControllerKind::EnvoyGateway,
}
