//! deploy/rbac.yaml is the least privilege that works: every request the
//! gate makes (in each routing mode, with a namespace selector, through
//! leader election, writes, sweeps and deletes) is allowed by its rules,
//! and every rule is used by some request.

#[path = "support/discovery_env.rs"]
mod env;
#[path = "support/kube_api.rs"]
mod kube_api;

use std::collections::BTreeSet;
use std::path::PathBuf;

use env::*;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::Api;
use kube::api::DeleteParams;
use kube_api::{Access, KubeApi};
use serde_yaml::Value;

const GATE_NS: &str = "workspace-gate";
const SA: &str = "workspace-gate";

fn rbac_docs() -> Vec<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/rbac.yaml");
    let text = std::fs::read_to_string(&path).expect("deploy/rbac.yaml");
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).expect("yaml"))
        .filter(|v| !v.is_null())
        .collect()
}

use serde::Deserialize;

/// (namespace of a Role, or None for a ClusterRole bound cluster-wide) and its rules.
fn bound_rules(docs: &[Value]) -> Vec<(Option<String>, Value)> {
    let binds_us = |b: &Value| {
        b["subjects"].as_sequence().is_some_and(|s| {
            s.iter().any(|s| {
                s["kind"] == "ServiceAccount" && s["name"] == SA && s["namespace"] == GATE_NS
            })
        })
    };
    let find = |kind: &str, name: &Value, ns: Option<&Value>| {
        docs.iter()
            .find(|d| {
                d["kind"] == kind
                    && &d["metadata"]["name"] == name
                    && ns.is_none_or(|n| &d["metadata"]["namespace"] == n)
            })
            .cloned()
    };
    let mut out = Vec::new();
    for b in docs.iter().filter(|d| binds_us(d)) {
        let role_ref = &b["roleRef"];
        match (b["kind"].as_str(), role_ref["kind"].as_str()) {
            (Some("ClusterRoleBinding"), Some("ClusterRole")) => {
                let r =
                    find("ClusterRole", &role_ref["name"], None).expect("bound ClusterRole exists");
                out.extend(
                    r["rules"]
                        .as_sequence()
                        .unwrap()
                        .iter()
                        .map(|r| (None, r.clone())),
                );
            }
            (Some("RoleBinding"), Some(kind)) => {
                let ns = b["metadata"]["namespace"].as_str().unwrap().to_string();
                let r = find(
                    kind,
                    &role_ref["name"],
                    (kind == "Role").then_some(&b["metadata"]["namespace"]),
                )
                .expect("bound role exists");
                out.extend(
                    r["rules"]
                        .as_sequence()
                        .unwrap()
                        .iter()
                        .map(|r| (Some(ns.clone()), r.clone())),
                );
            }
            other => panic!("unexpected binding {other:?}"),
        }
    }
    out
}

fn list_has(v: &Value, s: &str) -> bool {
    v.as_sequence().is_some_and(|l| {
        l.iter()
            .any(|x| x.as_str() == Some(s) || x.as_str() == Some("*"))
    })
}

fn allows(scope: &Option<String>, rule: &Value, a: &Access) -> bool {
    let scope_ok = match (scope, &a.namespace) {
        (None, _) => true,
        (Some(ns), Some(req)) => ns == req,
        (Some(_), None) => false,
    };
    let names_ok = match rule["resourceNames"].as_sequence() {
        None => true,
        Some(names) => a
            .name
            .as_ref()
            .is_some_and(|n| names.iter().any(|x| x.as_str() == Some(n))),
    };
    scope_ok
        && names_ok
        && list_has(&rule["apiGroups"], &a.group)
        && list_has(&rule["resources"], &a.resource)
        && list_has(&rule["verbs"], &a.verb)
}

fn config(dir: &TempDir, mode: &str, extra: &str) -> workspace_gate::config::Config {
    gate_config(
        dir,
        &format!(
            "discovery:\n  identity: gate-0\n  lease_namespace: {GATE_NS}\n  lease_duration: 2s\n{extra}\
             routing:\n  mode: {mode}\n  tls_secret: wildcard-tls\n\
             \x20 gate_service: {{name: workspace-gate, namespace: {GATE_NS}}}\n\
             \x20 gateway: {{name: eg, namespace: gateway-system}}\n"
        ),
    )
}

/// A workspace comes and goes under `mode`; returns when all of `objects`
/// (group, plural, namespace/name) were written and deleted again.
async fn exercise(api: &KubeApi, mode: &str, extra: &str, objects: &[(&str, &str, &str)]) {
    let dir = TempDir::new(&format!("rbac-{mode}"));
    let gate = Gate::start(api.client("gate"), &config(&dir, mode, extra));
    let tester = api.client("tester");
    create_service(
        &tester,
        &workspace_service("team", "ws-1", 1, &[60001], "1"),
    )
    .await;
    let present = |o: &(&str, &str, &str)| {
        let (ns, name) = o.2.split_once('/').unwrap();
        api.get(o.0, o.1, ns, name).is_some()
    };
    eventually(&format!("{mode}: objects written"), || {
        objects.iter().all(present)
    })
    .await;
    Api::<Service>::namespaced(tester, "team")
        .delete("ws-1", &DeleteParams::default())
        .await
        .unwrap();
    eventually(&format!("{mode}: objects deleted"), || {
        !objects.iter().any(present)
    })
    .await;
    gate.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_rbac_allows_every_request_the_gate_makes_and_grants_nothing_unused() {
    let api = KubeApi::start().await;
    let tester = api.client("tester");
    let ns: Namespace = serde_json::from_value(
        serde_json::json!({"metadata": {"name": "team", "labels": {"workspaces": "yes"}}}),
    )
    .unwrap();
    Api::<Namespace>::all(tester)
        .create(&Default::default(), &ns)
        .await
        .unwrap();

    const NET: &str = "networking.k8s.io";
    const GW: &str = "gateway.networking.k8s.io";
    exercise(
        &api,
        "ingress-nginx",
        "  namespace_selector: workspaces=yes\n",
        &[
            (NET, "ingresses", "team/ws-1-wg"),
            (NET, "ingresses", "team/ws-1-wg-reserved"),
            ("", "services", "team/ws-1-wg-gate"),
            (NET, "networkpolicies", "team/ws-1-wg-allow"),
        ],
    )
    .await;
    exercise(
        &api,
        "traefik",
        "",
        &[
            (NET, "ingresses", "team/ws-1-wg"),
            ("traefik.io", "middlewares", "team/ws-1-wg-auth"),
            (NET, "networkpolicies", "team/ws-1-wg-allow"),
        ],
    )
    .await;
    exercise(
        &api,
        "gateway-api",
        "",
        &[
            (GW, "httproutes", "team/ws-1-60001-wg"),
            (
                "gateway.envoyproxy.io",
                "securitypolicies",
                "team/ws-1-wg-auth",
            ),
            (
                GW,
                "referencegrants",
                "workspace-gate/workspace-gate-from-team",
            ),
            (NET, "networkpolicies", "team/ws-1-wg-allow"),
        ],
    )
    .await;

    let rules = bound_rules(&rbac_docs());
    let log: Vec<Access> = api
        .requests()
        .log
        .into_iter()
        .filter(|a| a.client == "gate")
        .collect();
    assert!(!log.is_empty());
    let denied: BTreeSet<String> = log
        .iter()
        .filter(|a| !rules.iter().any(|(scope, r)| allows(scope, r, a)))
        .map(|a| {
            format!(
                "{} {}/{} in {:?} ({:?})",
                a.verb, a.group, a.resource, a.namespace, a.name
            )
        })
        .collect();
    assert!(
        denied.is_empty(),
        "deploy/rbac.yaml denies requests the gate makes:\n{denied:#?}"
    );

    let mut unused = Vec::new();
    for (scope, rule) in &rules {
        for group in rule["apiGroups"].as_sequence().unwrap() {
            for res in rule["resources"].as_sequence().unwrap() {
                for verb in rule["verbs"].as_sequence().unwrap() {
                    let used = log.iter().any(|a| {
                        a.group == group.as_str().unwrap()
                            && a.resource == res.as_str().unwrap()
                            && a.verb == verb.as_str().unwrap()
                            && allows(scope, rule, a)
                    });
                    if !used {
                        unused.push(format!(
                            "{} {}/{} ({scope:?})",
                            verb.as_str().unwrap(),
                            group.as_str().unwrap(),
                            res.as_str().unwrap()
                        ));
                    }
                }
            }
        }
    }
    assert!(
        unused.is_empty(),
        "deploy/rbac.yaml grants what the gate never uses: {unused:#?}"
    );
}

#[test]
fn deploy_rbac_validates_against_the_kubernetes_schemas() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let bin = root.join(".venv/bin/kubernetes-validate");
    assert!(
        bin.exists(),
        "{} is missing: run scripts/install-deps.sh (pip install -r tests/requirements.txt into .venv)",
        bin.display()
    );
    let out = std::process::Command::new(bin)
        .arg("--strict")
        .arg(root.join("deploy/rbac.yaml"))
        .output()
        .expect("run kubernetes-validate");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
