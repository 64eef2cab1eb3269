//! Traefik: an Ingress whose router runs a forwardAuth Middleware. The
//! check itself answers `/.workspace-gate/` (Traefik relays a non-2xx auth
//! answer, Location and Set-Cookie included), so no second Ingress.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    Ingress, IngressBackend, IngressServiceBackend, ServiceBackendPort,
};

use super::crds::{ForwardAuth, ForwardAuthTls, Middleware, MiddlewareSpec};
use super::nginx::ingress_spec;
use super::{
    AUTH_RESPONSE_HEADERS, ObjectKind, PASS_COOKIE, RenderContext, RenderError, RoutingObject,
    object_name, owned_meta, routable_hosts, service_name,
};
use crate::config::discovery::GateService;
use crate::workspaces::Workspace;

pub(super) fn render(
    ctx: &RenderContext,
    ws: &Workspace,
) -> Result<Vec<RoutingObject>, RenderError> {
    let svc = service_name(ws)?;
    let hosts = routable_hosts(ws)?;
    let gate = &ctx.routing.gate;
    let ns = &ws.namespace;

    let mw_name = object_name(svc, "wg-auth");
    let middleware = Middleware {
        metadata: owned_meta(ws, mw_name.clone(), None)?,
        spec: MiddlewareSpec {
            forward_auth: ForwardAuth {
                address: check_address(gate),
                // Traefik then overwrites client-sent X-Forwarded-*, which
                // is what the gate reads the host from.
                trust_forward_header: false,
                auth_response_headers: AUTH_RESPONSE_HEADERS
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                add_auth_cookies_to_response: vec![PASS_COOKIE.to_string()],
                tls: gate
                    .https_port
                    .and(ctx.routing.traefik_ca_secret.clone())
                    .map(|ca_secret| ForwardAuthTls { ca_secret }),
            },
        },
    };

    let mut annotations = BTreeMap::new();
    annotations.insert(
        "traefik.ingress.kubernetes.io/router.middlewares".to_string(),
        format!("{ns}-{mw_name}@kubernetescrd"),
    );
    if ctx.routing.tls_secret.is_some() {
        annotations.insert(
            "traefik.ingress.kubernetes.io/router.tls".to_string(),
            "true".to_string(),
        );
    }
    let ing_name = object_name(svc, "wg");
    let ingress = Ingress {
        metadata: owned_meta(ws, ing_name.clone(), Some(annotations))?,
        spec: Some(ingress_spec(ctx, &hosts, "/", "Prefix", |port| {
            IngressBackend {
                service: Some(IngressServiceBackend {
                    name: svc.to_string(),
                    port: Some(ServiceBackendPort {
                        number: Some(i32::from(port)),
                        ..Default::default()
                    }),
                }),
                ..Default::default()
            }
        })),
        ..Default::default()
    };
    Ok(vec![
        RoutingObject::new(ObjectKind::Middleware, ns, &mw_name, middleware)?,
        RoutingObject::new(ObjectKind::Ingress, ns, &ing_name, ingress)?,
    ])
}

/// Where Traefik sends checks: the gate's HTTPS port when it has one (over
/// https Traefik negotiates HTTP/2 and multiplexes checks on one connection;
/// over plain http it opens a connection per check).
fn check_address(gate: &GateService) -> String {
    match gate.https_port {
        Some(port) => format!("https://{}:{port}/check/traefik", gate.dns_name()),
        None => format!(
            "http://{}:{}/check/traefik",
            gate.dns_name(),
            gate.http_port
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{ctx, ws};
    use super::*;
    use crate::config::discovery::RoutingMode;

    #[test]
    fn ingress_runs_the_forward_auth_middleware() {
        let objs = render(&ctx(RoutingMode::Traefik), &ws()).unwrap();
        let mw = &objs[0].body;
        assert_eq!(mw["apiVersion"], "traefik.io/v1alpha1");
        let fa = &mw["spec"]["forwardAuth"];
        assert_eq!(
            fa["address"],
            "http://workspace-gate.gate.svc.cluster.local:8080/check/traefik"
        );
        assert_eq!(fa["trustForwardHeader"], false);
        assert!(fa.get("tls").is_none(), "no tls block over http: {fa}");
        assert_eq!(fa["addAuthCookiesToResponse"][0], PASS_COOKIE);
        assert_eq!(fa["authResponseHeaders"].as_array().unwrap().len(), 5);
        let ing = &objs[1].body;
        assert_eq!(
            ing["metadata"]["annotations"]["traefik.ingress.kubernetes.io/router.middlewares"],
            "team-ws-1-wg-auth@kubernetescrd"
        );
        assert_eq!(ing["spec"]["rules"][1]["host"], "3000-ws-1.workspaces.test");
    }

    fn https_ctx(ca_secret: Option<&str>) -> RenderContext {
        let mut c = ctx(RoutingMode::Traefik);
        c.routing.gate.https_port = Some(8443);
        c.routing.traefik_ca_secret = ca_secret.map(str::to_string);
        c
    }

    #[test]
    fn https_port_points_forward_auth_at_https_with_the_ca_secret() {
        let objs = render(&https_ctx(Some("gate-ca")), &ws()).unwrap();
        let fa = &objs[0].body["spec"]["forwardAuth"];
        assert_eq!(
            fa["address"],
            "https://workspace-gate.gate.svc.cluster.local:8443/check/traefik"
        );
        assert_eq!(fa["tls"], serde_json::json!({"caSecret": "gate-ca"}));
    }

    #[test]
    fn https_without_a_ca_secret_leaves_verification_to_system_roots() {
        let objs = render(&https_ctx(None), &ws()).unwrap();
        let fa = &objs[0].body["spec"]["forwardAuth"];
        assert!(fa["address"].as_str().unwrap().starts_with("https://"));
        assert!(fa.get("tls").is_none(), "{fa}");
    }

    #[test]
    fn a_ca_secret_without_https_port_adds_no_tls_block() {
        // Refused by the configuration; the renderer stays http regardless.
        let mut c = ctx(RoutingMode::Traefik);
        c.routing.traefik_ca_secret = Some("gate-ca".into());
        let objs = render(&c, &ws()).unwrap();
        let fa = &objs[0].body["spec"]["forwardAuth"];
        assert!(fa["address"].as_str().unwrap().starts_with("http://"));
        assert!(fa.get("tls").is_none(), "{fa}");
    }
}
