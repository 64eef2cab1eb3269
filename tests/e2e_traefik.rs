//! The end-to-end scenarios of tests/support/scenarios/, unchanged,
//! through real Traefik v3 (forwardAuth).

mod support;

use support::controller::ControllerKind;

scenario_tests!(ControllerKind::Traefik);
