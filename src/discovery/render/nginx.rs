//! ingress-nginx: the workspace Ingress asks the gate (`auth-url`) before
//! every request; a second Ingress without auth sends the reserved
//! `/.workspace-gate/` prefix to the gate through an ExternalName Service
//! (an Ingress can only name Services in its own namespace).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS, ServiceBackendPort,
};

use super::{
    AUTH_RESPONSE_HEADERS, ObjectKind, RenderContext, RenderError, RoutingObject, object_name,
    owned_meta, routable_hosts, service_name,
};
use crate::workspaces::Workspace;

pub(super) const RESERVED_PREFIX: &str = "/.workspace-gate/";

/// `proxy-buffer-size` of the workspace Ingress. ingress-nginx reads the
/// check's answer into a buffer of this size (4k by default), and the
/// answer carries the workspace's own cookies back: 32k leaves room for
/// 16 KB of them and more. The same size goes into `auth-url` as
/// `buffer=`, so the gate knows what fits.
const PROXY_BUFFER_SIZE: &str = "32k";

pub(super) fn render(
    ctx: &RenderContext,
    ws: &Workspace,
) -> Result<Vec<RoutingObject>, RenderError> {
    let svc = service_name(ws)?;
    let hosts = routable_hosts(ws)?;
    let gate = &ctx.routing.gate;
    let ns = &ws.namespace;

    let mut auth = BTreeMap::new();
    // `$host` is expanded by the controller, per request, to the host it
    // chose this Ingress' server by: the gate decides on that host and
    // refuses when the client's Host header names another one.
    auth.insert(
        "nginx.ingress.kubernetes.io/auth-url".to_string(),
        format!(
            "http://{}:{}/check/nginx?host=$host&buffer={PROXY_BUFFER_SIZE}",
            gate.dns_name(),
            gate.http_port
        ),
    );
    // The check's answer (and the workspace's own answers) are read into
    // this buffer: the allow carries the workspace's cookies.
    auth.insert(
        "nginx.ingress.kubernetes.io/proxy-buffer-size".to_string(),
        PROXY_BUFFER_SIZE.to_string(),
    );
    // nginx appends `&rd=<original URL>` itself, and expands the method:
    // a form sent with an expired pass is shown a page, not replayed as a
    // GET through a login.
    auth.insert(
        "nginx.ingress.kubernetes.io/auth-signin".to_string(),
        format!("{}?m=$request_method", ctx.signin_url),
    );
    // Listed headers replace the client's copy, or remove it when the gate
    // omits them: identity cannot be forged and the gate's own cookies and
    // the bearer token never reach the workspace.
    auth.insert(
        "nginx.ingress.kubernetes.io/auth-response-headers".to_string(),
        AUTH_RESPONSE_HEADERS.join(", "),
    );
    // Keeps connections to the gate open instead of one per check.
    if ctx.routing.auth_keepalive > 0 {
        auth.insert(
            "nginx.ingress.kubernetes.io/auth-keepalive".to_string(),
            ctx.routing.auth_keepalive.to_string(),
        );
    }
    let main_name = object_name(svc, "wg");
    let main = Ingress {
        metadata: owned_meta(ws, main_name.clone(), Some(auth))?,
        spec: Some(ingress_spec(ctx, &hosts, "/", "Prefix", |port| {
            backend(svc, port)
        })),
        ..Default::default()
    };

    let gate_svc_name = object_name(svc, "wg-gate");
    let reserved = Ingress {
        metadata: owned_meta(ws, object_name(svc, "wg-reserved"), None)?,
        // ImplementationSpecific: ingress-nginx's strict path validation
        // (on by default since 1.12) rejects a `.` in Prefix/Exact paths; an
        // ImplementationSpecific path without `use-regex` is a prefix match.
        spec: Some(ingress_spec(
            ctx,
            &hosts,
            RESERVED_PREFIX,
            "ImplementationSpecific",
            |_| backend(&gate_svc_name, gate.http_port),
        )),
        ..Default::default()
    };

    let external = Service {
        metadata: owned_meta(ws, gate_svc_name.clone(), None)?,
        spec: Some(ServiceSpec {
            type_: Some("ExternalName".into()),
            external_name: Some(gate.dns_name()),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: i32::from(gate.http_port),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    };

    Ok(vec![
        RoutingObject::new(ObjectKind::Ingress, ns, &main_name, main)?,
        RoutingObject::new(
            ObjectKind::Ingress,
            ns,
            &object_name(svc, "wg-reserved"),
            reserved,
        )?,
        RoutingObject::new(ObjectKind::Service, ns, &gate_svc_name, external)?,
    ])
}

fn backend(service: &str, port: u16) -> IngressBackend {
    IngressBackend {
        service: Some(IngressServiceBackend {
            name: service.to_string(),
            port: Some(ServiceBackendPort {
                number: Some(i32::from(port)),
                ..Default::default()
            }),
        }),
        ..Default::default()
    }
}

/// One rule per host, the TLS secret for all of them, the ingress class.
/// Shared by the Traefik renderer.
pub(super) fn ingress_spec(
    ctx: &RenderContext,
    hosts: &[(&str, u16)],
    path: &str,
    path_type: &str,
    backend_for: impl Fn(u16) -> IngressBackend,
) -> IngressSpec {
    IngressSpec {
        ingress_class_name: ctx.routing.ingress_class.clone(),
        tls: ctx.routing.tls_secret.as_ref().map(|secret| {
            vec![IngressTLS {
                hosts: Some(hosts.iter().map(|(h, _)| h.to_string()).collect()),
                secret_name: Some(secret.clone()),
            }]
        }),
        rules: Some(
            hosts
                .iter()
                .map(|(host, port)| IngressRule {
                    host: Some(host.to_string()),
                    http: Some(HTTPIngressRuleValue {
                        paths: vec![HTTPIngressPath {
                            path: Some(path.to_string()),
                            path_type: path_type.to_string(),
                            backend: backend_for(*port),
                        }],
                    }),
                })
                .collect(),
        ),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{ctx, ws};
    use super::*;
    use crate::config::discovery::RoutingMode;

    #[test]
    fn workspace_ingress_asks_the_gate_and_routes_each_host_to_its_port() {
        let objs = render(&ctx(RoutingMode::IngressNginx), &ws()).unwrap();
        let main = &objs[0].body;
        let a = &main["metadata"]["annotations"];
        assert_eq!(
            a["nginx.ingress.kubernetes.io/auth-url"],
            "http://workspace-gate.gate.svc.cluster.local:8080/check/nginx?host=$host&buffer=32k"
        );
        assert_eq!(a["nginx.ingress.kubernetes.io/proxy-buffer-size"], "32k");
        assert_eq!(
            a["nginx.ingress.kubernetes.io/auth-signin"],
            "https://$host/.workspace-gate/start?m=$request_method"
        );
        assert_eq!(
            a["nginx.ingress.kubernetes.io/auth-response-headers"],
            "X-Workspace-User, X-Workspace-User-Id, X-Workspace-Id, Cookie, Authorization"
        );
        let rules = main["spec"]["rules"].as_array().unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0]["host"], "60001-ws-1.workspaces.test");
        assert_eq!(
            rules[0]["http"]["paths"][0]["backend"]["service"]["port"]["number"],
            60001
        );
        assert_eq!(main["spec"]["tls"][0]["secretName"], "wildcard-tls");
        assert_eq!(main["spec"]["ingressClassName"], "nginx");
        assert!(
            a["nginx.ingress.kubernetes.io/auth-keepalive"].is_null(),
            "a connection per check unless asked"
        );
    }

    #[test]
    fn auth_keepalive_is_written_when_set() {
        let mut ctx = ctx(RoutingMode::IngressNginx);
        ctx.routing.auth_keepalive = 64;
        let objs = render(&ctx, &ws()).unwrap();
        assert_eq!(
            objs[0].body["metadata"]["annotations"]["nginx.ingress.kubernetes.io/auth-keepalive"],
            "64"
        );
        // Only the checked Ingress asks the gate.
        assert!(objs[1].body["metadata"]["annotations"].is_null());
    }

    #[test]
    fn reserved_prefix_goes_to_the_gate_without_auth() {
        let objs = render(&ctx(RoutingMode::IngressNginx), &ws()).unwrap();
        let reserved = &objs[1].body;
        assert!(reserved["metadata"]["annotations"].is_null());
        let path = &reserved["spec"]["rules"][1]["http"]["paths"][0];
        assert_eq!(path["path"], RESERVED_PREFIX);
        assert_eq!(path["backend"]["service"]["name"], "ws-1-wg-gate");
        assert_eq!(path["backend"]["service"]["port"]["number"], 8080);
        let ext = &objs[2].body;
        assert_eq!(ext["spec"]["type"], "ExternalName");
        assert_eq!(
            ext["spec"]["externalName"],
            "workspace-gate.gate.svc.cluster.local"
        );
    }
}
