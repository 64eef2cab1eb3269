//! The end-to-end behaviours through real Traefik v3 and its
//! `kubernetesIngress` and `kubernetesCRD` providers, reading the Ingresses
//! and forwardAuth Middlewares discovery wrote in `traefik` routing mode
//! into a real API server (tests/support/traefik_kubernetes.rs).
//!
//! The scenarios live in tests/support/scenarios/ and run unchanged
//! against every controller fixture.

mod support;

use support::controller::ControllerKind;

scenario_tests!(ControllerKind::TraefikKubernetes);
