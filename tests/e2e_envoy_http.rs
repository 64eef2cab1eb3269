//! The end-to-end scenarios of tests/support/scenarios/, unchanged,
//! through real Envoy (ext_authz in HTTP mode).

mod support;

use support::controller::ControllerKind;

scenario_tests!(ControllerKind::EnvoyHttp);
