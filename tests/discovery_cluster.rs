//! Discovery against the API server double (tests/support/kube_api.rs):
//! real HTTP, real kube-rs client, real watcher, reconciler and Lease.

#[path = "support/discovery_env.rs"]
mod env;
#[path = "support/kube_api.rs"]
mod kube_api;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use env::*;
use k8s_openapi::api::core::v1::Service;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube_api::KubeApi;
use serde_json::{Value, json};
use workspace_gate::authz::Outcome;
use workspace_gate::authz::owner::check_identity;
use workspace_gate::core::{CheckRequest, Decision, Settings, decide};
use workspace_gate::session::signed::sign;
use workspace_gate::session::{Identity, Keyring, PassClaims, TokenKind};

const NET: &str = "networking.k8s.io";

fn ingress(api: &KubeApi, ns: &str, name: &str) -> Option<Value> {
    api.get(NET, "ingresses", ns, name)
}

fn rule_hosts(ing: &Value) -> Vec<String> {
    ing["spec"]["rules"]
        .as_array()
        .map(|r| {
            r.iter()
                .map(|r| r["host"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_workspace_service_gets_its_index_entry_and_routing_objects() {
    let api = KubeApi::start().await;
    let dir = TempDir::new("new");
    let cfg = gate_config(&dir, &sections("ingress-nginx", "a", ""));
    let gate = Gate::start(api.client("gate"), &cfg);
    eventually("index loaded", || gate.reader.current().loaded).await;

    let tester = api.client("tester");
    let svc = create_service(
        &tester,
        &workspace_service("team", "ws-1", 42, &[60001], "1001"),
    )
    .await;
    let uid = svc.metadata.uid.clone().unwrap();
    eventually("host in index", || {
        gate.has_host("60001-ws-1.workspaces.test")
    })
    .await;
    let snap = gate.reader.current();
    let ws: &workspace_gate::workspaces::Workspace =
        snap.by_host("60001-ws-1.workspaces.test").unwrap();
    assert_eq!(ws.id, "42");
    let owner = ws.owner.clone().expect("owner from the annotation");
    assert_eq!(
        (owner.id.as_str(), owner.username.as_str()),
        ("1001", "1001")
    );

    eventually("objects written", || {
        ingress(&api, "team", "ws-1-wg").is_some()
            && ingress(&api, "team", "ws-1-wg-reserved").is_some()
            && api.get("", "services", "team", "ws-1-wg-gate").is_some()
    })
    .await;
    let main = ingress(&api, "team", "ws-1-wg").unwrap();
    assert_eq!(rule_hosts(&main), ["60001-ws-1.workspaces.test"]);
    assert_eq!(
        main["metadata"]["annotations"]["nginx.ingress.kubernetes.io/auth-url"],
        "http://workspace-gate.gate.svc.cluster.local:8080/check/nginx?host=$host&buffer=32k"
    );
    assert_eq!(main["metadata"]["ownerReferences"][0]["uid"], uid.as_str());
    assert_eq!(
        api.managers(NET, "ingresses", "team", "ws-1-wg"),
        ["workspace-gate"]
    );

    // End to end: the owner is authorized for the discovered workspace, and
    // the pass they then hold is allowed by decide() against the index.
    let owner = Identity {
        user_id: "1001".into(),
        username: "alice".into(),
    };
    let stranger = Identity {
        user_id: "2002".into(),
        username: "mallory".into(),
    };
    assert!(matches!(check_identity(&owner, ws), Outcome::Allowed(_)));
    assert!(matches!(check_identity(&stranger, ws), Outcome::Denied));
    let keyring = Keyring::new(&cfg.keys).unwrap();
    let settings = Settings::from(&cfg);
    let check = |who: &Identity| {
        let now = 1_900_000_000;
        let pass = sign(
            &keyring,
            TokenKind::Pass,
            &PassClaims {
                aud: "60001-ws-1.workspaces.test".into(),
                who: who.clone(),
                wid: "42".into(),
                iat: now,
                exp: now + 600,
            },
        );
        let cookie = format!("{}={pass}", settings.pass_cookie);
        let req = CheckRequest {
            method: "GET",
            host: "60001-ws-1.workspaces.test",
            path: "/",
            cookie: Some(&cookie),
            ..Default::default()
        };
        decide(&gate.reader.current(), &keyring, &settings, now, &req)
    };
    match check(&owner) {
        Decision::Allow(a) => assert_eq!(
            (a.workspace.id.as_str(), a.who.user_id.as_str()),
            ("42", "1001")
        ),
        other => panic!("owner not allowed: {other:?}"),
    }
    assert!(
        matches!(check(&stranger), Decision::Deny(_)),
        "a pass for another user must not pass"
    );
    // A new owner on the Service revokes the old owner's pass at once.
    let reassign = json!({"metadata": {"annotations": {"workspace-gate.dev/owner-id": "3003"}}});
    Api::<Service>::namespaced(tester.clone(), "team")
        .patch("ws-1", &PatchParams::default(), &Patch::Merge(&reassign))
        .await
        .unwrap();
    eventually("owner change indexed", || {
        gate.reader
            .current()
            .by_id("42")
            .is_some_and(|w| w.owner.as_ref().is_some_and(|o| o.id == "3003"))
    })
    .await;
    assert!(matches!(check(&owner), Decision::Deny(_)));
    gate.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn added_port_adds_a_host_and_an_annotation_change_updates_hosts_and_objects() {
    let api = KubeApi::start().await;
    let dir = TempDir::new("change");
    let cfg = gate_config(&dir, &sections("ingress-nginx", "a", ""));
    let gate = Gate::start(api.client("gate"), &cfg);
    let tester = api.client("tester");
    create_service(
        &tester,
        &workspace_service("team", "ws-1", 42, &[60001], "1001"),
    )
    .await;
    eventually("first host", || gate.has_host("60001-ws-1.workspaces.test")).await;
    eventually("first ingress", || {
        ingress(&api, "team", "ws-1-wg").is_some()
    })
    .await;

    let services: Api<Service> = Api::namespaced(tester.clone(), "team");
    let add_port = json!({"spec": {"ports": [
        {"name": "p0", "port": 60001, "targetPort": 60001, "protocol": "TCP"},
        {"name": "p1", "port": 3000, "targetPort": 3000, "protocol": "TCP"}]}});
    services
        .patch("ws-1", &PatchParams::default(), &Patch::Merge(&add_port))
        .await
        .unwrap();
    eventually("second host in index", || {
        gate.has_host("3000-ws-1.workspaces.test")
    })
    .await;
    eventually("second host in the ingress", || {
        ingress(&api, "team", "ws-1-wg").is_some_and(|i| rule_hosts(&i).len() == 2)
    })
    .await;

    let retemplate = json!({"metadata": {"annotations": {
        "workspaces.gitlab.com/host-template": "{{.port}}-renamed.workspaces.test"}}});
    services
        .patch("ws-1", &PatchParams::default(), &Patch::Merge(&retemplate))
        .await
        .unwrap();
    eventually("old hosts gone, new hosts in index", || {
        gate.has_host("3000-renamed.workspaces.test") && !gate.has_host("3000-ws-1.workspaces.test")
    })
    .await;
    eventually("ingress follows the new template", || {
        ingress(&api, "team", "ws-1-wg").is_some_and(|i| {
            rule_hosts(&i)
                == [
                    "60001-renamed.workspaces.test",
                    "3000-renamed.workspaces.test",
                ]
        })
    })
    .await;
    gate.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_changed_or_deleted_by_hand_are_put_back() {
    let api = KubeApi::start().await;
    let dir = TempDir::new("drift");
    let cfg = gate_config(
        &dir,
        &sections("ingress-nginx", "a", "  resync_interval: 1s\n"),
    );
    let gate = Gate::start(api.client("gate"), &cfg);
    let tester = api.client("tester");
    create_service(
        &tester,
        &workspace_service("team", "ws-1", 42, &[60001], "1001"),
    )
    .await;
    eventually("ingress", || ingress(&api, "team", "ws-1-wg").is_some()).await;
    eventually("external name", || {
        api.get("", "services", "team", "ws-1-wg-gate").is_some()
    })
    .await;

    // Someone points the auth check elsewhere and adds their own label.
    let ingresses: Api<kube::api::DynamicObject> = Api::namespaced_with(
        tester.clone(),
        "team",
        &workspace_gate::discovery::ObjectKind::Ingress.api_resource(),
    );
    let edit = json!({"metadata": {
        "annotations": {"nginx.ingress.kubernetes.io/auth-url": "http://evil.test/ok"},
        "labels": {"mine": "yes"}}});
    ingresses
        .patch(
            "ws-1-wg",
            &PatchParams {
                field_manager: Some("kubectl-edit".into()),
                ..Default::default()
            },
            &Patch::Merge(&edit),
        )
        .await
        .unwrap();
    // And deletes the reserved-path Service.
    Api::<Service>::namespaced(tester.clone(), "team")
        .delete("ws-1-wg-gate", &DeleteParams::default())
        .await
        .unwrap();

    eventually("auth-url restored", || {
        ingress(&api, "team", "ws-1-wg").is_some_and(|i| {
            i["metadata"]["annotations"]["nginx.ingress.kubernetes.io/auth-url"]
                == "http://workspace-gate.gate.svc.cluster.local:8080/check/nginx?host=$host&buffer=32k"
        })
    })
    .await;
    eventually("deleted Service recreated", || {
        api.get("", "services", "team", "ws-1-wg-gate").is_some()
    })
    .await;
    // Fields the gate does not own are left alone (server-side apply).
    assert_eq!(
        ingress(&api, "team", "ws-1-wg").unwrap()["metadata"]["labels"]["mine"],
        "yes"
    );
    gate.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_service_leaves_the_index_and_its_objects_carry_the_owner_reference() {
    let api = KubeApi::start().await;
    let dir = TempDir::new("delete");
    let cfg = gate_config(&dir, &sections("ingress-nginx", "a", ""));
    let gate = Gate::start(api.client("gate"), &cfg);
    let tester = api.client("tester");
    let svc = create_service(
        &tester,
        &workspace_service("team", "ws-1", 42, &[60001], "1001"),
    )
    .await;
    let uid = svc.metadata.uid.clone().unwrap();
    eventually("objects", || {
        ingress(&api, "team", "ws-1-wg").is_some()
            && ingress(&api, "team", "ws-1-wg-reserved").is_some()
            && api.get("", "services", "team", "ws-1-wg-gate").is_some()
    })
    .await;
    // What lets Kubernetes' garbage collector remove them with the Service.
    for obj in [
        ingress(&api, "team", "ws-1-wg").unwrap(),
        ingress(&api, "team", "ws-1-wg-reserved").unwrap(),
        api.get("", "services", "team", "ws-1-wg-gate").unwrap(),
    ] {
        let refs = obj["metadata"]["ownerReferences"]
            .as_array()
            .expect("ownerReferences");
        assert_eq!(refs.len(), 1);
        assert_eq!(refs[0]["kind"], "Service");
        assert_eq!(refs[0]["name"], "ws-1");
        assert_eq!(refs[0]["uid"], uid.as_str());
        assert_eq!(
            obj["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "workspace-gate"
        );
    }

    Api::<Service>::namespaced(tester.clone(), "team")
        .delete("ws-1", &DeleteParams::default())
        .await
        .unwrap();
    eventually("index entry gone", || {
        !gate.has_host("60001-ws-1.workspaces.test")
    })
    .await;
    assert!(gate.reader.current().by_id("42").is_none());
    // The double has no garbage collector; the gate deletes them itself too.
    eventually("objects deleted", || {
        ingress(&api, "team", "ws-1-wg").is_none()
    })
    .await;
    gate.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_orphaned_while_the_gate_was_down_are_deleted_at_the_next_start() {
    let api = KubeApi::start().await;
    let dir = TempDir::new("orphans");
    let cfg = gate_config(&dir, &sections("ingress-nginx", "a", ""));
    let tester = api.client("tester");
    create_service(
        &tester,
        &workspace_service("team", "keep", 1, &[60001], "1"),
    )
    .await;
    create_service(
        &tester,
        &workspace_service("team", "gone", 2, &[60001], "2"),
    )
    .await;
    let gate = Gate::start(api.client("gate"), &cfg);
    eventually("both written", || {
        ["keep", "gone"].iter().all(|w| {
            ingress(&api, "team", &format!("{w}-wg")).is_some()
                && ingress(&api, "team", &format!("{w}-wg-reserved")).is_some()
                && api
                    .get("", "services", "team", &format!("{w}-wg-gate"))
                    .is_some()
                && network_policy(&api, "team", &format!("{w}-wg-allow")).is_some()
        })
    })
    .await;
    gate.stop().await;

    // While the gate is down the Service stops being a workspace (label
    // removed: the Service survives, so garbage collection would not help).
    let unlabel = json!({"metadata": {"labels": {"agent.gitlab.com/id": null}}});
    Api::<Service>::namespaced(tester.clone(), "team")
        .patch("gone", &PatchParams::default(), &Patch::Merge(&unlabel))
        .await
        .unwrap();
    // An object someone else labelled managed-by: workspace-gate (without the
    // gate's workspace label) must survive.
    let foreign = json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "not-ours", "namespace": "team",
            "labels": {"app.kubernetes.io/managed-by": "workspace-gate"}},
        "spec": {"defaultBackend": {"service": {"name": "x", "port": {"number": 80}}}}});
    let ingresses: Api<kube::api::DynamicObject> = Api::namespaced_with(
        tester.clone(),
        "team",
        &workspace_gate::discovery::ObjectKind::Ingress.api_resource(),
    );
    ingresses
        .patch(
            "not-ours",
            &PatchParams::apply("chart"),
            &Patch::Apply(&foreign),
        )
        .await
        .unwrap();

    api.reset_requests();
    let gate = Gate::start(api.client("gate"), &cfg);
    eventually("orphans deleted", || {
        ingress(&api, "team", "gone-wg").is_none()
            && ingress(&api, "team", "gone-wg-reserved").is_none()
            && api.get("", "services", "team", "gone-wg-gate").is_none()
            && network_policy(&api, "team", "gone-wg-allow").is_none()
    })
    .await;
    assert!(ingress(&api, "team", "keep-wg").is_some());
    assert!(ingress(&api, "team", "not-ours").is_some());
    // Unchanged objects of the remaining workspace were not rewritten.
    let writes = api.requests().writes;
    assert!(
        !writes
            .iter()
            .any(|w| w.0 == "gate" && w.1 == "patch" && w.3.starts_with("team/keep")),
        "unchanged objects were re-applied: {writes:?}"
    );
    gate.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_ending_in_410_gone_or_a_dropped_connection_never_empties_the_index() {
    let api = KubeApi::start().await;
    let dir = TempDir::new("relist");
    let cfg = gate_config(&dir, &sections("none", "a", ""));
    let tester = api.client("tester");
    for i in 0..50u64 {
        create_service(
            &tester,
            &workspace_service("team", &format!("ws-{i}"), i + 1, &[60001], "1"),
        )
        .await;
    }
    let gate = Gate::start(api.client("gate"), &cfg);
    eventually("50 in index", || gate.reader.current().len() == 50).await;

    // Record the size of every snapshot published from now on.
    let smallest = Arc::new(AtomicUsize::new(usize::MAX));
    let seen = Arc::new(AtomicUsize::new(0));
    let mut r = gate.reader.clone();
    let (s2, n2) = (smallest.clone(), seen.clone());
    let observer = tokio::spawn(async move {
        while r.changed().await {
            s2.fetch_min(r.current().len(), Ordering::SeqCst);
            n2.fetch_add(1, Ordering::SeqCst);
        }
    });
    // Slow lists widen the window in which a half-done relist could show.
    api.set_list_delay(std::time::Duration::from_millis(300));
    api.compact();
    api.drop_watches();
    eventually("relisted after 410", || {
        gate.metrics.watch_restarts_total() >= 1
    })
    .await;
    api.drop_watches();
    // The watch still delivers changes after both.
    create_service(
        &tester,
        &workspace_service("team", "late", 999, &[60001], "1"),
    )
    .await;
    eventually("new Service seen", || {
        gate.has_host("60001-late.workspaces.test")
    })
    .await;
    assert!(seen.load(Ordering::SeqCst) >= 1);
    assert!(
        smallest.load(Ordering::SeqCst) >= 50,
        "index shrank to {}",
        smallest.load(Ordering::SeqCst)
    );
    assert!(
        api.requests().verb("list") >= 2,
        "the 410 must cause a new list"
    );
    observer.abort();
    gate.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_lease_holder_writes_and_another_replica_takes_over_when_it_dies() {
    let api = KubeApi::start().await;
    let dir_a = TempDir::new("lead-a");
    let dir_b = TempDir::new("lead-b");
    let cfg_a = gate_config(&dir_a, &sections("ingress-nginx", "replica-a", ""));
    let cfg_b = gate_config(&dir_b, &sections("ingress-nginx", "replica-b", ""));
    let a = Gate::start(api.client("replica-a"), &cfg_a);
    let b = Gate::start(api.client("replica-b"), &cfg_b);
    eventually("a leader", || {
        a.metrics.is_leader() || b.metrics.is_leader()
    })
    .await;
    let (leader, follower, leader_name, follower_name) = if a.metrics.is_leader() {
        (a, b, "replica-a", "replica-b")
    } else {
        (b, a, "replica-b", "replica-a")
    };
    assert!(!follower.metrics.is_leader());

    let tester = api.client("tester");
    create_service(
        &tester,
        &workspace_service("team", "ws-1", 1, &[60001], "1"),
    )
    .await;
    eventually("both replicas index it", || {
        leader.has_host("60001-ws-1.workspaces.test")
            && follower.has_host("60001-ws-1.workspaces.test")
    })
    .await;
    eventually("objects written", || {
        ingress(&api, "team", "ws-1-wg").is_some()
    })
    .await;
    let routing_writes = |who: &str| {
        api.requests()
            .writes
            .into_iter()
            .filter(|w| w.0 == who && w.2 != "leases")
            .count()
    };
    assert!(routing_writes(leader_name) > 0);
    assert_eq!(
        routing_writes(follower_name),
        0,
        "a follower wrote routing objects"
    );

    leader.kill();
    eventually("the follower takes over", || follower.metrics.is_leader()).await;
    let lease = api
        .get("coordination.k8s.io", "leases", "gate", "workspace-gate")
        .unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], follower_name);
    create_service(
        &tester,
        &workspace_service("team", "ws-2", 2, &[60001], "1"),
    )
    .await;
    eventually("the new leader writes", || {
        ingress(&api, "team", "ws-2-wg").is_some()
    })
    .await;
    assert!(routing_writes(follower_name) > 0);
    follower.stop().await;
    // A graceful stop releases the Lease for the next replica.
    let lease = api
        .get("coordination.k8s.io", "leases", "gate", "workspace-gate")
        .unwrap();
    assert!(lease["spec"]["holderIdentity"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traefik_mode_writes_an_ingress_with_a_forward_auth_middleware() {
    let api = KubeApi::start().await;
    let dir = TempDir::new("traefik");
    let cfg = gate_config(&dir, &sections("traefik", "a", ""));
    let gate = Gate::start(api.client("gate"), &cfg);
    let tester = api.client("tester");
    create_service(
        &tester,
        &workspace_service("team", "ws-1", 1, &[60001], "1"),
    )
    .await;
    eventually("middleware and ingress", || {
        api.get("traefik.io", "middlewares", "team", "ws-1-wg-auth")
            .is_some()
            && ingress(&api, "team", "ws-1-wg").is_some()
    })
    .await;
    let mw = api
        .get("traefik.io", "middlewares", "team", "ws-1-wg-auth")
        .unwrap();
    assert_eq!(
        mw["spec"]["forwardAuth"]["address"],
        "http://workspace-gate.gate.svc.cluster.local:8080/check/traefik"
    );
    gate.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_mode_keeps_one_reference_grant_per_namespace_while_it_has_workspaces() {
    let api = KubeApi::start().await;
    let dir = TempDir::new("gateway");
    let cfg = gate_config(&dir, &sections("gateway-api", "a", ""));
    let gate = Gate::start(api.client("gate"), &cfg);
    let tester = api.client("tester");
    create_service(
        &tester,
        &workspace_service("team", "ws-1", 1, &[60001, 3000], "1"),
    )
    .await;
    create_service(
        &tester,
        &workspace_service("team", "ws-2", 2, &[60001], "1"),
    )
    .await;
    const GW: &str = "gateway.networking.k8s.io";
    eventually("routes, policies and grant", || {
        api.get(GW, "httproutes", "team", "ws-1-60001-wg").is_some()
            && api.get(GW, "httproutes", "team", "ws-1-3000-wg").is_some()
            && api.get(GW, "httproutes", "team", "ws-2-60001-wg").is_some()
            && api
                .get(
                    "gateway.envoyproxy.io",
                    "securitypolicies",
                    "team",
                    "ws-1-wg-auth",
                )
                .is_some()
            && api
                .get(GW, "referencegrants", "gate", "workspace-gate-from-team")
                .is_some()
    })
    .await;
    let services: Api<Service> = Api::namespaced(tester.clone(), "team");
    services
        .delete("ws-1", &DeleteParams::default())
        .await
        .unwrap();
    eventually("ws-1 routes gone", || {
        api.get(GW, "httproutes", "team", "ws-1-60001-wg").is_none()
    })
    .await;
    assert!(
        api.get(GW, "referencegrants", "gate", "workspace-gate-from-team")
            .is_some()
    );
    services
        .delete("ws-2", &DeleteParams::default())
        .await
        .unwrap();
    eventually("grant gone with the last workspace", || {
        api.get(GW, "referencegrants", "gate", "workspace-gate-from-team")
            .is_none()
    })
    .await;
    gate.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_list_and_selector_limit_what_is_indexed() {
    let api = KubeApi::start().await;
    let tester = api.client("tester");
    create_service(
        &tester,
        &workspace_service("team-a", "ws-a", 1, &[60001], "1"),
    )
    .await;
    create_service(
        &tester,
        &workspace_service("team-b", "ws-b", 2, &[60001], "1"),
    )
    .await;
    let ns = |name: &str, labels: Value| {
        serde_json::from_value::<k8s_openapi::api::core::v1::Namespace>(
            json!({"metadata": {"name": name, "labels": labels}}),
        )
        .unwrap()
    };
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(tester.clone());
    namespaces
        .create(
            &Default::default(),
            &ns("team-a", json!({"workspaces": "yes"})),
        )
        .await
        .unwrap();
    namespaces
        .create(&Default::default(), &ns("team-b", json!({})))
        .await
        .unwrap();

    let dir = TempDir::new("ns-list");
    let listed = Gate::start(
        api.client("listed"),
        &gate_config(&dir, &sections("none", "a", "  namespaces: [team-b]\n")),
    );
    let dir2 = TempDir::new("ns-sel");
    let selected = Gate::start(
        api.client("selected"),
        &gate_config(
            &dir2,
            &sections("none", "b", "  namespace_selector: workspaces=yes\n"),
        ),
    );
    eventually("listed namespace indexed", || {
        listed.has_host("60001-ws-b.workspaces.test")
    })
    .await;
    eventually("selected namespace indexed", || {
        selected.has_host("60001-ws-a.workspaces.test")
    })
    .await;
    assert!(!listed.has_host("60001-ws-a.workspaces.test"));
    assert!(!selected.has_host("60001-ws-b.workspaces.test"));
    // Labelling a namespace brings its workspaces in.
    namespaces
        .patch(
            "team-b",
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"labels": {"workspaces": "yes"}}})),
        )
        .await
        .unwrap();
    eventually("newly selected namespace indexed", || {
        selected.has_host("60001-ws-b.workspaces.test")
    })
    .await;
    listed.stop().await;
    selected.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_are_applied_while_a_slow_resync_is_still_running() {
    let api = KubeApi::start().await;
    let dir = TempDir::new("slow-sweep");
    let cfg = gate_config(
        &dir,
        &sections("ingress-nginx", "a", "  resync_interval: 1s\n"),
    );
    let tester = api.client("tester");
    create_service(
        &tester,
        &workspace_service("team", "ws-1", 1, &[60001], "1"),
    )
    .await;
    let gate = Gate::start(api.client("gate"), &cfg);
    eventually("first sync done", || gate.metrics.full_syncs_total() >= 1).await;
    // Every list now takes 5 s, so a sweep (6 kinds) takes at least 30 s.
    api.set_list_delay(std::time::Duration::from_secs(5));
    let syncs = gate.metrics.full_syncs_total();
    let lists = api.requests().verb("list");
    eventually("a sweep started", || api.requests().verb("list") > lists).await;
    create_service(
        &tester,
        &workspace_service("team", "ws-2", 2, &[60001], "1"),
    )
    .await;
    eventually("new workspace's objects written", || {
        ingress(&api, "team", "ws-2-wg").is_some()
    })
    .await;
    assert_eq!(
        gate.metrics.full_syncs_total(),
        syncs,
        "the change waited for the sweep to finish"
    );
    api.set_list_delay(std::time::Duration::ZERO);
    gate.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_the_api_steps_down_and_stops_writing() {
    let api = KubeApi::start().await;
    let dir_a = TempDir::new("cut-a");
    let dir_b = TempDir::new("cut-b");
    let a = Gate::start(
        api.client("replica-a"),
        &gate_config(&dir_a, &sections("ingress-nginx", "replica-a", "")),
    );
    eventually("a leads", || a.metrics.is_leader()).await;
    let b = Gate::start(
        api.client("replica-b"),
        &gate_config(&dir_b, &sections("ingress-nginx", "replica-b", "")),
    );
    eventually("b follows", || b.reader.current().loaded).await;

    api.block("replica-a", true);
    eventually("a steps down", || !a.metrics.is_leader()).await;
    eventually("b takes over", || b.metrics.is_leader()).await;
    let writes_by = |who: &str| {
        api.requests()
            .writes
            .into_iter()
            .filter(|w| w.0 == who && w.2 != "leases")
            .count()
    };
    let a_writes = writes_by("replica-a");
    // a's watch still delivers (the cut only refuses new requests), so
    // both replicas see the new workspace; only b may write for it.
    api.block("replica-a", false);
    let tester = api.client("tester");
    create_service(
        &tester,
        &workspace_service("team", "ws-1", 1, &[60001], "1"),
    )
    .await;
    eventually("b writes", || ingress(&api, "team", "ws-1-wg").is_some()).await;
    eventually("a indexes it too", || {
        a.has_host("60001-ws-1.workspaces.test")
    })
    .await;
    assert!(
        !a.metrics.is_leader(),
        "a took the Lease back from a live leader"
    );
    assert_eq!(
        writes_by("replica-a"),
        a_writes,
        "a wrote after stepping down"
    );
    a.stop().await;
    b.stop().await;
}

fn network_policy(api: &KubeApi, ns: &str, name: &str) -> Option<Value> {
    api.get(NET, "networkpolicies", ns, name)
}

fn policy_ports(np: &Value) -> Vec<i64> {
    np["spec"]["ingress"][0]["ports"]
        .as_array()
        .map(|p| p.iter().filter_map(|p| p["port"].as_i64()).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_workspace_gets_a_network_policy_admitting_the_controller_that_follows_its_ports() {
    let api = KubeApi::start().await;
    let dir = TempDir::new("netpol");
    let cfg = gate_config(
        &dir,
        &sections("ingress-nginx", "a", "  resync_interval: 1s\n"),
    );
    let gate = Gate::start(api.client("gate"), &cfg);
    let tester = api.client("tester");
    let svc = create_service(
        &tester,
        &workspace_service("team", "ws-1", 42, &[60001], "1001"),
    )
    .await;
    let uid = svc.metadata.uid.clone().unwrap();

    eventually("policy written", || {
        network_policy(&api, "team", "ws-1-wg-allow").is_some()
    })
    .await;
    let np = network_policy(&api, "team", "ws-1-wg-allow").unwrap();
    assert_eq!(
        np["spec"]["podSelector"]["matchLabels"],
        json!({"app": "ws-1"})
    );
    assert_eq!(np["spec"]["policyTypes"], json!(["Ingress"]));
    assert_eq!(
        np["spec"]["ingress"][0]["from"],
        json!([{
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "ingress-nginx"}},
        }])
    );
    assert_eq!(policy_ports(&np), [60001]);
    assert_eq!(np["metadata"]["ownerReferences"][0]["uid"], uid.as_str());
    assert_eq!(
        np["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "workspace-gate"
    );
    assert_eq!(
        api.managers(NET, "networkpolicies", "team", "ws-1-wg-allow"),
        ["workspace-gate"]
    );

    // A new port is opened to the controller.
    let services: Api<Service> = Api::namespaced(tester.clone(), "team");
    let add_port = json!({"spec": {"ports": [
        {"name": "p0", "port": 60001, "targetPort": 60001, "protocol": "TCP"},
        {"name": "p1", "port": 3000, "targetPort": 3000, "protocol": "TCP"}]}});
    services
        .patch("ws-1", &PatchParams::default(), &Patch::Merge(&add_port))
        .await
        .unwrap();
    eventually("policy admits the new port", || {
        network_policy(&api, "team", "ws-1-wg-allow")
            .is_some_and(|np| policy_ports(&np) == [60001, 3000])
    })
    .await;

    // Someone opens the workspace to every pod; the gate puts its peer back.
    let policies: Api<kube::api::DynamicObject> = Api::namespaced_with(
        tester.clone(),
        "team",
        &workspace_gate::discovery::ObjectKind::NetworkPolicy.api_resource(),
    );
    let edit = json!({"spec": {"ingress": [{"from": [{"podSelector": {}}]}]}});
    policies
        .patch(
            "ws-1-wg-allow",
            &PatchParams {
                field_manager: Some("kubectl-edit".into()),
                ..Default::default()
            },
            &Patch::Merge(&edit),
        )
        .await
        .unwrap();
    eventually("hand edit put back", || {
        network_policy(&api, "team", "ws-1-wg-allow").is_some_and(|np| {
            np["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"]
                ["app.kubernetes.io/name"]
                == "ingress-nginx"
                && policy_ports(&np) == [60001, 3000]
        })
    })
    .await;

    // The Service goes: so does its policy (the double has no garbage
    // collector; the gate deletes it itself too).
    services
        .delete("ws-1", &DeleteParams::default())
        .await
        .unwrap();
    eventually("policy deleted", || {
        network_policy(&api, "team", "ws-1-wg-allow").is_none()
    })
    .await;
    gate.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_controller_pods_are_admitted_and_turning_policies_off_deletes_them() {
    let api = KubeApi::start().await;
    let dir = TempDir::new("netpol-off");
    let tester = api.client("tester");
    create_service(
        &tester,
        &workspace_service("team", "ws-1", 42, &[60001], "1001"),
    )
    .await;
    let custom = gate_config(
        &dir,
        &sections(
            "traefik",
            "a",
            "  network_policy:\n    controller_namespace: edge\n    \
             controller_pod_labels: 'app=proxy,tier=edge'\n",
        ),
    );
    let gate = Gate::start(api.client("gate"), &custom);
    eventually("policy for the configured pods", || {
        network_policy(&api, "team", "ws-1-wg-allow").is_some_and(|np| {
            np["spec"]["ingress"][0]["from"][0]
                == json!({
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "edge"}},
                    "podSelector": {"matchLabels": {"app": "proxy", "tier": "edge"}},
                })
        })
    })
    .await;
    gate.stop().await;

    let off = gate_config(
        &dir,
        &sections("traefik", "a", "  network_policy:\n    enabled: false\n"),
    );
    let gate = Gate::start(api.client("gate"), &off);
    eventually("policy deleted once turned off", || {
        network_policy(&api, "team", "ws-1-wg-allow").is_none()
    })
    .await;
    // The routing objects stay.
    assert!(ingress(&api, "team", "ws-1-wg").is_some());
    gate.stop().await;
}
