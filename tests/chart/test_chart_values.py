"""The values platform teams reach for (labels, annotations, extra volumes,
environment and objects, disruption budget, ServiceMonitor tuning,
scheduling) render where they belong, cannot break what the chart relies on
(selector labels, its own volumes and mounts), and the NetworkPolicy warning
in NOTES.txt follows the admin-port peers."""

import pytest

import chart_support as cs
from scenarios import PRIVATE_CA, SCENARIOS

SELECTOR = {"app.kubernetes.io/name": "workspace-gate", "app.kubernetes.io/instance": cs.RELEASE}


def render(scenario, extra=None):
    values, _ = SCENARIOS[scenario]
    return cs.objects(cs.render(cs.deep_merge(values, extra or {})))


def pod_of(objs):
    return cs.one(objs, "Deployment")["spec"]["template"]


def refused(values, scenario="ingress-nginx-existing-secrets"):
    """The render error for `values` over a scenario (what `helm install` prints)."""
    base, _ = SCENARIOS[scenario]
    with pytest.raises(cs.helm.HelmError) as err:
        cs.render(cs.deep_merge(base, values))
    return str(err.value)


def chart_objects(objs):
    return [o for o in objs if not o["__template__"].endswith("extra-objects.yaml")]


# --- labels and annotations ------------------------------------------------------


def test_common_labels_are_on_every_object_the_chart_renders():
    objs = render("everything-on")
    assert len(chart_objects(objs)) >= 12
    for o in chart_objects(objs):
        labels = o["metadata"]["labels"]
        where = f"{o['kind']}/{o['metadata']['name']}"
        assert labels["example.test/team"] == "platform", where
        # commonLabels may override the chart's informational labels ...
        assert labels["app.kubernetes.io/part-of"] == "developer-platform", where
        # ... and the chart's own stay.
        assert labels["app.kubernetes.io/managed-by"] == "Helm", where
        assert {k: labels[k] for k in SELECTOR} == SELECTOR, where
    assert pod_of(objs)["metadata"]["labels"]["example.test/team"] == "platform"
    # The admin Service keeps the component label the ServiceMonitor selects.
    admin = cs.one(objs, "Service", "gate-workspace-gate-admin")
    monitor = cs.one(objs, "ServiceMonitor")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= admin["metadata"]["labels"].items()
    assert monitor["metadata"]["labels"]["release"] == "prometheus"


def test_pod_labels_and_annotations_are_on_the_pods_only():
    objs = render("everything-on")
    pod = pod_of(objs)["metadata"]
    assert pod["labels"]["example.test/sidecar-injection"] == "disabled"
    assert pod["annotations"]["example.test/team"] == "platform"
    assert pod["annotations"]["checksum/config"], "the chart's own annotations stay"
    dep = cs.one(objs, "Deployment")["metadata"]
    assert "example.test/sidecar-injection" not in dep["labels"]
    assert "annotations" not in dep
    for o in chart_objects(objs):
        if o["kind"] != "Deployment":
            assert "example.test/sidecar-injection" not in o["metadata"]["labels"], o["kind"]


def test_the_selector_still_matches_the_pods_and_the_services():
    objs = render("everything-on")
    dep = cs.one(objs, "Deployment")
    selector = dep["spec"]["selector"]["matchLabels"]
    assert selector == SELECTOR
    labels = pod_of(objs)["metadata"]["labels"]
    assert selector.items() <= labels.items()
    for svc in cs.find(objs, "Service"):
        assert svc["spec"]["selector"].items() <= labels.items(), svc["metadata"]["name"]
    assert cs.one(objs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"] == SELECTOR


@pytest.mark.parametrize("value", ["commonLabels", "podLabels"])
@pytest.mark.parametrize("key", ["app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component"])
def test_selector_labels_cannot_be_set(value, key):
    message = refused({value: {key: "something-else"}})
    assert f"{value}: {key} is a selector label the chart sets itself" in message


# --- environment, volumes, objects ---------------------------------------------


def test_extra_env_and_env_from_follow_the_chart_s_variables():
    c = pod_of(render("everything-on"))["spec"]["containers"][0]
    assert [e["name"] for e in c["env"]] == ["POD_NAME", "POD_NAMESPACE", "WORKSPACE_GATE_LOG_LEVEL"]
    assert c["env"][2]["value"] == "info,workspace_gate=debug"
    assert c["envFrom"] == [{"secretRef": {"name": "gate-proxy-env", "optional": True}}]
    assert "envFrom" not in pod_of(render("defaults"))["spec"]["containers"][0]


def test_extra_env_cannot_replace_the_lease_identity():
    message = refused({"extraEnv": [{"name": "POD_NAME", "value": "fixed"}]})
    assert "extraEnv: POD_NAME is set by the chart" in message


def test_extra_volumes_and_mounts_come_after_the_chart_s_own():
    pod = pod_of(render("everything-on"))["spec"]
    names = [v["name"] for v in pod["volumes"]]
    assert names == ["config", "oidc", "keys", "tmp", "scratch"]
    assert pod["volumes"][-1] == {"name": "scratch", "emptyDir": {"sizeLimit": "1Mi"}}
    mounts = pod["containers"][0]["volumeMounts"]
    assert mounts[-1] == {"name": "scratch", "mountPath": "/var/scratch"}
    assert [m["name"] for m in mounts[:-1]] == ["config", "oidc", "keys", "tmp"]


@pytest.mark.parametrize("name", ["config", "oidc", "keys", "check-tls", "tmp"])
def test_extra_volumes_cannot_take_the_chart_s_names(name):
    message = refused({"extraVolumes": [{"name": name, "emptyDir": {}}]})
    assert f'extraVolumes: the name "{name}" is the chart\'s own volume' in message


@pytest.mark.parametrize(
    "path, hidden",
    [
        ("/etc/workspace-gate", "/etc/workspace-gate/config.yaml"),
        ("/etc/workspace-gate/keys", "/etc/workspace-gate/keys"),
        ("/etc/workspace-gate/oidc/", "/etc/workspace-gate/oidc"),
        ("/tmp", "/tmp"),
        ("/", "/etc/workspace-gate/config.yaml"),
    ],
)
def test_extra_mounts_cannot_hide_the_chart_s_mounts(path, hidden):
    message = refused({"extraVolumes": [{"name": "x", "emptyDir": {}}], "extraVolumeMounts": [{"name": "x", "mountPath": path}]})
    assert f"extraVolumeMounts: mountPath \"{path}\" would hide the chart's {hidden}" in message


def test_a_mount_next_to_the_chart_s_is_fine():
    objs = render("ingress-nginx-existing-secrets", {
        "extraVolumes": [{"name": "x", "emptyDir": {}}],
        "extraVolumeMounts": [{"name": "x", "mountPath": "/etc/workspace-gate/keys-old"}],
    })
    assert pod_of(objs)["spec"]["containers"][0]["volumeMounts"][-1]["mountPath"] == "/etc/workspace-gate/keys-old"


def test_extra_objects_render_maps_and_strings_through_tpl():
    objs = render("everything-on")
    extra = [o for o in objs if o["__template__"].endswith("extra-objects.yaml")]
    assert [(o["kind"], o["metadata"]["name"]) for o in extra] == [("ConfigMap", "gate-workspace-gate-extra"), ("Secret", "gate-proxy-env")]
    assert extra[0]["metadata"]["labels"] == {"release": "gate"}
    assert extra[0]["data"] == {"namespace": cs.NAMESPACE}
    assert extra[1]["stringData"] == {"NO_PROXY": ".svc,.cluster.local"}
    assert all(o["__template__"].endswith("extra-objects.yaml") is False for o in render("defaults"))


# --- the private-CA recipe of the install guide ---------------------------------


def test_private_ca_recipe_mounts_the_bundle_and_points_ssl_cert_file_at_it():
    pod = pod_of(render("private-ca"))["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "gitlab-ca"]
    assert volume == {"name": "gitlab-ca", "configMap": {"name": "gitlab-ca"}}
    c = pod["containers"][0]
    (mount,) = [m for m in c["volumeMounts"] if m["name"] == "gitlab-ca"]
    assert mount == {"name": "gitlab-ca", "mountPath": "/etc/workspace-gate/ca", "readOnly": True}
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["SSL_CERT_FILE"] == "/etc/workspace-gate/ca/ca.crt"
    assert env["SSL_CERT_FILE"].startswith(mount["mountPath"] + "/")
    # The recipe is exactly what the guide prints, nothing more.
    assert set(PRIVATE_CA) == {"extraVolumes", "extraVolumeMounts", "extraEnv"}


# --- disruption budget ----------------------------------------------------------


@pytest.mark.parametrize(
    "pdb, spec",
    [
        ({}, {"maxUnavailable": 1}),
        ({"maxUnavailable": 2}, {"maxUnavailable": 2}),
        ({"maxUnavailable": "25%"}, {"maxUnavailable": "25%"}),
        ({"minAvailable": 1}, {"minAvailable": 1}),
        ({"minAvailable": 0}, {"minAvailable": 0}),
        ({"minAvailable": "50%", "maxUnavailable": ""}, {"minAvailable": "50%"}),
    ],
)
def test_disruption_budget_takes_min_available_or_max_unavailable(pdb, spec):
    objs = render("ingress-nginx-existing-secrets", {"podDisruptionBudget": pdb})
    got = cs.one(objs, "PodDisruptionBudget")["spec"]
    assert {k: v for k, v in got.items() if k != "selector"} == spec


def test_disruption_budget_refuses_both():
    message = refused({"podDisruptionBudget": {"minAvailable": 1, "maxUnavailable": 1}})
    assert "podDisruptionBudget: set minAvailable or maxUnavailable, not both" in message


def test_disruption_budget_can_be_off():
    assert cs.find(render("ingress-nginx-existing-secrets", {"podDisruptionBudget": {"enabled": False}}), "PodDisruptionBudget") == []


# --- ServiceMonitor ------------------------------------------------------------


def test_service_monitor_carries_timeout_and_relabelings():
    (endpoint,) = cs.one(render("everything-on"), "ServiceMonitor")["spec"]["endpoints"]
    values = SCENARIOS["everything-on"][0]["serviceMonitor"]
    assert endpoint["scrapeTimeout"] == "10s"
    assert endpoint["relabelings"] == values["relabelings"]
    assert endpoint["metricRelabelings"] == values["metricRelabelings"]
    assert (endpoint["port"], endpoint["path"], endpoint["interval"]) == ("admin", "/metrics", "30s")


def test_service_monitor_leaves_out_what_is_not_set():
    objs = render("ingress-nginx-existing-secrets", {"serviceMonitor": {"enabled": True}})
    (endpoint,) = cs.one(objs, "ServiceMonitor")["spec"]["endpoints"]
    assert set(endpoint) == {"port", "path", "interval"}


# --- scheduling ----------------------------------------------------------------


def test_priority_class_and_spread_constraints_reach_the_pod():
    pod = pod_of(render("everything-on"))["spec"]
    assert pod["priorityClassName"] == "platform-critical"
    assert pod["topologySpreadConstraints"] == SCENARIOS["everything-on"][0]["topologySpreadConstraints"]
    default = pod_of(render("defaults"))["spec"]
    assert "priorityClassName" not in default
    (spread,) = default["topologySpreadConstraints"]
    assert (spread["topologyKey"], spread["whenUnsatisfiable"]) == ("kubernetes.io/hostname", "ScheduleAnyway")
    assert spread["labelSelector"]["matchLabels"] == SELECTOR


# --- NOTES.txt: who may scrape the admin port -----------------------------------


ADMIN_WARNING = "networkPolicy.adminFrom is empty, so no pod may connect to the admin port 9090"
PROMETHEUS = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]


def notes_for(extra):
    values, _ = SCENARIOS["ingress-nginx-existing-secrets"]
    return cs.notes(cs.render(cs.deep_merge(values, extra)))


def test_notes_warn_when_the_network_policy_lets_nothing_scrape():
    text = notes_for({"networkPolicy": {"enabled": True}})
    assert "WARNINGS" in text and ADMIN_WARNING in text
    assert "ServiceMonitor" not in text
    monitored = notes_for({"networkPolicy": {"enabled": True}, "serviceMonitor": {"enabled": True}})
    assert ADMIN_WARNING in monitored and "the ServiceMonitor's targets stay down" in monitored
    moved = notes_for({"networkPolicy": {"enabled": True}, "ports": {"admin": 9100}})
    assert "admin port 9100" in moved


def test_notes_do_not_warn_when_a_scraper_is_allowed_or_no_policy_is_rendered():
    allowed = notes_for({"networkPolicy": {"enabled": True, "adminFrom": PROMETHEUS}})
    assert "adminFrom is empty" not in allowed and "WARNINGS" not in allowed
    # The policy admits exactly those peers on the admin port.
    values, _ = SCENARIOS["ingress-nginx-existing-secrets"]
    policy = cs.one(cs.objects(cs.render(cs.deep_merge(values, {"networkPolicy": {"enabled": True, "adminFrom": PROMETHEUS}}))), "NetworkPolicy")
    (admin_rule,) = [r for r in policy["spec"]["ingress"] if r["ports"] == [{"port": 9090, "protocol": "TCP"}]]
    assert admin_rule["from"] == PROMETHEUS
    assert "adminFrom is empty" not in notes_for({})


# --- discovery.networkPolicy: the policy admitting the controller ---------------


def test_workspace_network_policy_values_reach_the_gate_config():
    values, _ = SCENARIOS["ingress-nginx-existing-secrets"]
    default = cs.gate_config(cs.objects(cs.render(values)))["discovery"]["network_policy"]
    assert default == {"enabled": True}
    custom = cs.deep_merge(
        values,
        {
            "discovery": {
                "networkPolicy": {
                    "controllerNamespace": "edge",
                    "controllerPodLabels": {"tier": "edge", "app.kubernetes.io/name": "proxy"},
                }
            }
        },
    )
    config = cs.gate_config(cs.objects(cs.render(custom)))["discovery"]["network_policy"]
    assert config == {
        "enabled": True,
        "controller_namespace": "edge",
        "controller_pod_labels": "app.kubernetes.io/name=proxy,tier=edge",
    }


def test_notes_name_the_pods_the_workspace_policy_admits():
    text = notes_for({})
    assert "NetworkPolicy <service>-wg-allow" in text
    assert "kubectl get pods -n ingress-nginx -l app.kubernetes.io/name=ingress-nginx" in text
    custom = notes_for({"discovery": {"networkPolicy": {"controllerNamespace": "edge", "controllerPodLabels": {"app": "proxy"}}}})
    assert "kubectl get pods -n edge -l app=proxy" in custom
    off = notes_for({"discovery": {"networkPolicy": {"enabled": False}}})
    assert "discovery.networkPolicy.enabled is false" in off
    assert "wg-allow" not in off
