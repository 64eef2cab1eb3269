//! The `discovery` and `routing` configuration sections and the `render`
//! subcommand's library function.

#[path = "support/discovery_env.rs"]
mod env;

use std::time::Duration;

use env::*;
use workspace_gate::config::discovery::{NamespaceScope, RoutingMode};
use workspace_gate::config::{Config, KEYS};
use workspace_gate::discovery::{DiscoveryConfig, render_cli};

/// The discovery settings of the configuration in `dir` with `sections`,
/// loaded under the environment `env`.
fn parse(dir: &TempDir, sections: &str, env: &[(&str, &str)]) -> DiscoveryConfig {
    let lookup = |k: &str| {
        env.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    };
    gate_config_env(dir, sections, &lookup)
        .unwrap_or_else(|e| panic!("{e}"))
        .discovery
}

/// The problems `Config::load` reports (it validates the discovery and
/// routing sections in the same pass as the rest).
fn load_problems(dir: &TempDir, sections: &str) -> Vec<(String, String)> {
    gate_config_result(dir, sections)
        .expect_err("the configuration must be refused")
        .0
        .into_iter()
        .map(|p| (p.key, p.reason))
        .collect()
}

#[test]
fn defaults_need_no_sections_and_write_nothing() {
    let dir = TempDir::new("cfg-default");
    let d = parse(
        &dir,
        "",
        &[("POD_NAMESPACE", "gate-ns"), ("POD_NAME", "gate-0")],
    );
    assert_eq!(d.namespaces, NamespaceScope::All);
    assert_eq!(d.routing.mode, RoutingMode::None);
    assert_eq!(d.owner_id_annotation, "workspace-gate.dev/owner-id");
    assert_eq!(
        d.owner_username_annotation,
        "workspace-gate.dev/owner-username"
    );
    assert_eq!(d.lease.name, "workspace-gate");
    assert_eq!(d.lease.namespace, "gate-ns");
    assert_eq!(d.lease.identity, "gate-0");
    assert_eq!(d.lease.duration, Duration::from_secs(15));
    assert_eq!(d.routing.gate.http_port, 8080);
    assert_eq!(d.routing.gate.grpc_port, 9091);
    assert_eq!(
        d.routing.auth_keepalive, 0,
        "a connection per check unless asked"
    );
    let d = parse(&dir, "", &[]);
    assert_eq!(d.lease.namespace, "default");
}

#[test]
fn every_problem_is_reported_with_its_dotted_key() {
    let dir = TempDir::new("cfg-bad");
    let problems = load_problems(
        &dir,
        "discovery:\n  namespaces: [Team_A]\n  namespace_selector: 'a b'\n  owner_id_annotation: 'not valid'\n  lease_duration: soon\n  typo: 1\n\
         routing:\n  mode: gateway-api\n  auth_keepalive: -1\n  gate_service: {http_port: 0, grpc_port: x}\n  gateway: {name: eg}\n  extra: {deep: 1}\n",
    );
    let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
    for expected in [
        "discovery.namespaces",
        "discovery.namespace_selector",
        "discovery.owner_id_annotation",
        "discovery.lease_duration",
        "discovery.typo",
        "routing.gate_service.name",
        "routing.gate_service.namespace",
        "routing.gate_service.http_port",
        "routing.gate_service.grpc_port",
        "routing.auth_keepalive",
        "routing.gateway.namespace",
        "routing.extra",
    ] {
        assert!(
            keys.contains(&expected),
            "missing {expected} in {problems:?}"
        );
    }
}

#[test]
fn traefik_https_settings_are_checked_when_the_configuration_loads() {
    let dir = TempDir::new("cfg-https");
    let routing = |extra: &str| {
        format!(
            "routing:\n  mode: traefik\n  gate_service:\n    name: workspace-gate\n    namespace: gate\n{extra}"
        )
    };
    let problems = load_problems(
        &dir,
        &routing("    https_port: 70000\n  traefik_ca_secret: 'Gate CA'\n"),
    );
    let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "routing.gate_service.https_port",
            "routing.traefik_ca_secret"
        ],
        "{problems:?}"
    );
    let problems = load_problems(&dir, &routing("  traefik_ca_secret: gate-ca\n"));
    assert_eq!(
        problems,
        [(
            "routing.traefik_ca_secret".to_string(),
            "only used with routing.gate_service.https_port".to_string()
        )]
    );
    let cfg = gate_config(
        &dir,
        &routing("    https_port: 8443\n  traefik_ca_secret: gate-ca\n"),
    );
    let d = cfg.discovery.clone();
    assert_eq!(d.routing.gate.https_port, Some(8443));
    assert_eq!(d.routing.traefik_ca_secret.as_deref(), Some("gate-ca"));
}

#[test]
fn a_namespace_list_and_a_selector_are_exclusive() {
    let dir = TempDir::new("cfg-excl");
    let problems = load_problems(
        &dir,
        "discovery:\n  namespaces: [a]\n  namespace_selector: team=a\n",
    );
    assert!(
        problems
            .iter()
            .any(|(k, _)| k == "discovery.namespace_selector")
    );
}

#[test]
fn environment_overrides_reach_the_discovery_keys() {
    let dir = TempDir::new("cfg-env");
    let file = dir.0.join("gate.yaml");
    // Build a valid file, then load it with environment overrides.
    let _ = gate_config(&dir, "routing:\n  mode: none\n");
    let env = |k: &str| match k {
        "WORKSPACE_GATE_DISCOVERY_NAMESPACES" => Some("team-a, team-b".to_string()),
        "WORKSPACE_GATE_ROUTING_MODE" => Some("traefik".to_string()),
        "WORKSPACE_GATE_ROUTING_GATE_SERVICE_NAME" => Some("gate".to_string()),
        "WORKSPACE_GATE_ROUTING_GATE_SERVICE_NAMESPACE" => Some("gate-ns".to_string()),
        "WORKSPACE_GATE_ROUTING_AUTH_KEEPALIVE" => Some("64".to_string()),
        _ => None,
    };
    let cfg = Config::load(Some(&file), &env).unwrap();
    let d = cfg.discovery.clone();
    assert_eq!(
        d.namespaces,
        NamespaceScope::List(vec!["team-a".into(), "team-b".into()])
    );
    assert_eq!(d.routing.mode, RoutingMode::Traefik);
    assert_eq!(d.routing.gate.dns_name(), "gate.gate-ns.svc.cluster.local");
    assert_eq!(d.routing.auth_keepalive, 64);
}

#[test]
fn every_discovery_key_is_documented_in_the_configuration_table() {
    for key in [
        "discovery.namespaces",
        "discovery.namespace_selector",
        "discovery.owner_id_annotation",
        "discovery.owner_username_annotation",
        "discovery.lease_name",
        "discovery.lease_namespace",
        "discovery.lease_duration",
        "discovery.identity",
        "discovery.resync_interval",
        "routing.mode",
        "routing.tls_secret",
        "routing.ingress_class",
        "routing.auth_keepalive",
        "routing.gate_service.name",
        "routing.gate_service.namespace",
        "routing.gate_service.http_port",
        "routing.gate_service.grpc_port",
        "routing.gate_service.https_port",
        "routing.traefik_ca_secret",
        "routing.gateway.name",
        "routing.gateway.namespace",
        "routing.gateway.section_name",
    ] {
        let kd = KEYS
            .iter()
            .find(|k| k.key == key)
            .unwrap_or_else(|| panic!("{key} not in KEYS"));
        assert!(!kd.doc.is_empty());
    }
}

const SERVICE: &str = r#"
apiVersion: v1
kind: Service
metadata:
  name: workspace-7-1-abc
  namespace: team
  labels: {agent.gitlab.com/id: "7"}
  annotations:
    workspaces.gitlab.com/host-template: "{{.port}}-workspace-7-1-abc.workspaces.test"
    workspaces.gitlab.com/id: "71"
spec:
  ports:
  - {name: editor, port: 60001, targetPort: 60001}
  - {name: app, port: 3000, targetPort: 3000}
"#;

#[test]
fn render_prints_the_objects_that_would_be_written() {
    let dir = TempDir::new("render");
    let cfg = gate_config(&dir, &sections("ingress-nginx", "a", ""));
    let out = render_cli(&cfg, SERVICE).unwrap();
    let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&out)
        .map(serde::Deserialize::deserialize)
        .collect::<Result<_, _>>()
        .unwrap();
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(kinds, ["Ingress", "Ingress", "Service"]);
    assert!(out.contains("60001-workspace-7-1-abc.workspaces.test"));
    assert!(
        out.contains("placeholder"),
        "a missing uid is called out: {out}"
    );

    let cfg = gate_config(&dir, &sections("gateway-api", "a", ""));
    let out = render_cli(&cfg, SERVICE).unwrap();
    for kind in ["HTTPRoute", "SecurityPolicy", "ReferenceGrant"] {
        assert!(
            out.contains(&format!("kind: {kind}")),
            "{kind} missing:\n{out}"
        );
    }
}

#[test]
fn render_explains_a_service_that_is_not_a_workspace() {
    let dir = TempDir::new("render-bad");
    let cfg = gate_config(&dir, &sections("traefik", "a", ""));
    let err = render_cli(&cfg, "metadata: {name: x}\nspec: {ports: [{port: 1}]}\n").unwrap_err();
    assert!(
        err.to_string()
            .contains("workspaces.gitlab.com/host-template"),
        "{err}"
    );
    let err = render_cli(&cfg, "- not a service").unwrap_err();
    assert!(err.to_string().contains("not a Service"), "{err}");
}
