//! Issue 2's end-to-end behaviours through real Traefik v3 configured as
//! its `kubernetesIngressNGINX` provider translates the ingress-nginx
//! Ingresses discovery renders (tests/support/traefik_ingress_nginx.rs:
//! the `Snippet` auth middleware, through the REST provider).
//!
//! The scenarios live in tests/support/scenarios/ and run unchanged
//! against every controller fixture.

mod support;

use support::controller::ControllerKind;

scenario_tests!(ControllerKind::TraefikIngressNginx);
