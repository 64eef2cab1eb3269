//! The end-to-end scenarios of tests/support/scenarios/, unchanged,
//! through real Envoy (ext_authz over gRPC) with `encode_raw_headers: true`,
//! where Envoy sends the request headers as a raw list instead of a map.

mod support;

use support::controller::ControllerKind;

scenario_tests!(ControllerKind::EnvoyGrpcRaw);
