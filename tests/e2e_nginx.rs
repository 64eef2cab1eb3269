//! Issue 2's end-to-end behaviours through real nginx configured as
//! ingress-nginx renders `auth-url` / `auth-signin` / `auth-response-headers`
//! (tests/fixtures/nginx/nginx.conf.tmpl), with TLS from a throwaway CA, the
//! real OpenID provider and the GitLab GraphQL test double.
//!
//! The scenarios live in tests/support/scenarios/ and run unchanged
//! against every controller fixture.

mod support;

use support::controller::ControllerKind;

scenario_tests!(ControllerKind::Nginx);
