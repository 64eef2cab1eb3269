//! The end-to-end scenarios of tests/support/scenarios/, unchanged,
//! through real Traefik v3 whose forwardAuth asks the gate over HTTPS
//! (`listen.https`; Traefik verifies the gate's certificate and speaks
//! HTTP/2 to it).

mod support;

use support::controller::ControllerKind;

scenario_tests!(ControllerKind::TraefikHttps);
