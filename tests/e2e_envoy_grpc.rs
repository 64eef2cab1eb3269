//! The end-to-end scenarios of tests/support/scenarios/, unchanged,
//! through real Envoy (ext_authz over gRPC).

mod support;

use support::controller::ControllerKind;

scenario_tests!(ControllerKind::EnvoyGrpc);
