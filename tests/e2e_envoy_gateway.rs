//! The end-to-end behaviours through real Envoy Gateway: its Kubernetes
//! provider reads the HTTPRoutes, SecurityPolicies and ReferenceGrants
//! discovery wrote in `gateway-api` routing mode into a real API server,
//! and a real Envoy runs what it serves over xDS
//! (tests/support/envoy_gateway.rs).
//!
//! The scenarios live in tests/support/scenarios/ and run unchanged
//! against every controller fixture.

mod support;

use support::controller::ControllerKind;

scenario_tests!(ControllerKind::EnvoyGateway);
