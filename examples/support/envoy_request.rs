//! A `CheckRequest` shaped like the ones Envoy 1.40 sends with the
//! `allowed_headers` of `examples/envoy/envoy-grpc.yaml` (captured from a
//! real Envoy): both peers' addresses, the time, the request id, three
//! headers, path, host, scheme, protocol and two empty metadata contexts.
//! Shared by `examples/grpc_bench.rs` and `benches/decide.rs`.

use std::collections::HashMap;

use envoy_types::pb::envoy::config::core::v3::{
    Address, Metadata, SocketAddress, address, socket_address,
};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Peer, Request};
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};

/// `cookie` is the whole `Cookie` header.
pub fn envoy_check_request(host: &str, cookie: &str) -> CheckRequest {
    let peer = |port: u32| Peer {
        address: Some(Address {
            address: Some(address::Address::SocketAddress(SocketAddress {
                address: "127.0.0.1".into(),
                port_specifier: Some(socket_address::PortSpecifier::PortValue(port)),
                ..Default::default()
            })),
        }),
        ..Default::default()
    };
    let headers = HashMap::from([
        (
            "x-request-id".to_string(),
            "6240fbe1-f53e-4bfe-a2a6-3f301334f171".to_string(),
        ),
        ("accept".to_string(), "text/html".to_string()),
        ("cookie".to_string(), cookie.to_string()),
    ]);
    CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(peer(36980)),
            destination: Some(peer(42001)),
            request: Some(Request {
                time: Some(envoy_types::pb::google::protobuf::Timestamp {
                    seconds: 1_795_338_297,
                    nanos: 750_182_000,
                }),
                http: Some(HttpRequest {
                    id: "16295462864675257343".into(),
                    method: "GET".into(),
                    host: host.into(),
                    path: "/src/main.rs?x=1".into(),
                    scheme: "http".into(),
                    protocol: "HTTP/1.1".into(),
                    headers,
                    ..Default::default()
                }),
            }),
            metadata_context: Some(Metadata::default()),
            route_metadata_context: Some(Metadata::default()),
            ..Default::default()
        }),
    }
}
