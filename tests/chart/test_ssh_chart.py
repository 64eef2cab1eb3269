"""The SSH gateway in the chart (`ssh.*`): off by default and then without
trace; on, a listener on a container port with its own Service, host keys
from a Secret the user creates or from values (never generated), the
optional backend key and known_hosts, every tunable in the configuration,
the NetworkPolicy rules and the NOTES. The rendered configurations pass the
real binary's check-config in test_rendered_config_binary.py (the
`ssh-*` scenarios), and tests/chart_control_plane.rs installs them."""

import base64

import pytest

import chart_support as cs
from scenarios import SCENARIOS, SSH
from test_chart_values import refused

FULLNAME = "gate-workspace-gate"
SSH_SERVICE = f"{FULLNAME}-ssh"


def render(scenario, extra=None):
    values, _ = SCENARIOS[scenario]
    return cs.objects(cs.render(cs.deep_merge(values, extra or {})))


def container(objs):
    return cs.one(objs, "Deployment")["spec"]["template"]["spec"]["containers"][0]


def volumes(objs):
    return {v["name"]: v for v in cs.one(objs, "Deployment")["spec"]["template"]["spec"]["volumes"]}


def mounts(objs):
    return {m["name"]: m for m in container(objs)["volumeMounts"]}


def ssh_rules(policy):
    """The NetworkPolicy's ingress rules for port 2222 and egress rules for 60022."""
    spec = policy["spec"]
    ingress = [r for r in spec["ingress"] if {"port": 2222, "protocol": "TCP"} in r["ports"]]
    egress = [r for r in spec.get("egress", []) if {"port": 60022, "protocol": "TCP"} in r["ports"]]
    return ingress, egress


# --- off ----------------------------------------------------------------------


def test_ssh_is_off_by_default_and_its_values_change_nothing_until_enabled():
    values, _ = SCENARIOS["ingress-nginx-existing-secrets"]
    off = cs.render(values)
    ignored = cs.render(cs.deep_merge(values, {"ssh": {k: v for k, v in SCENARIOS["ssh-inline-keys"][0]["ssh"].items() if k != "enabled"}}))
    assert ignored == off
    objs = cs.objects(off)
    assert cs.find(objs, "Service", SSH_SERVICE) == []
    assert "ssh" not in {p["name"] for p in container(objs)["ports"]}
    assert not {"ssh-host-keys", "ssh-backend-key", "ssh-known-hosts"} & set(volumes(objs))
    config = cs.gate_config(objs)
    assert "ssh" not in config and "ssh" not in config["listen"] and "ssh_port" not in config["routing"]
    assert "SSH" not in cs.notes(off)


# --- listener, port and Service -------------------------------------------------


def test_ssh_listens_on_its_container_port_and_readiness_stays_the_same():
    off = render("ingress-nginx-existing-secrets")
    on = render("ssh-existing-secrets")
    assert cs.gate_config(on)["listen"]["ssh"] == "0.0.0.0:2222"
    c = container(on)
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"http": 8080, "grpc": 9091, "admin": 9090, "ssh": 2222}
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert c[probe] == container(off)[probe], probe
    # The port follows the value, in the listener and the container.
    moved = render("ssh-inline-keys")
    assert cs.gate_config(moved)["listen"]["ssh"] == "0.0.0.0:2022"
    assert {p["name"]: p["containerPort"] for p in container(moved)["ports"]}["ssh"] == 2022


def test_ssh_service_is_a_load_balancer_of_its_own_selecting_the_gate_pods():
    objs = render("ssh-existing-secrets")
    svc = cs.one(objs, "Service", SSH_SERVICE)
    spec = svc["spec"]
    assert spec["type"] == "LoadBalancer"
    assert spec["ports"] == [{"name": "ssh", "port": 22, "targetPort": "ssh", "protocol": "TCP"}]
    assert spec["selector"] == cs.one(objs, "Deployment")["spec"]["selector"]["matchLabels"]
    assert spec["externalTrafficPolicy"] == "Local"
    assert spec["loadBalancerSourceRanges"] == ["203.0.113.0/24", "2001:db8::/32"]
    assert "loadBalancerIP" not in spec and "nodePort" not in spec["ports"][0]
    assert svc["metadata"]["annotations"] == {"service.beta.kubernetes.io/aws-load-balancer-type": "nlb"}
    assert svc["metadata"]["labels"]["app.kubernetes.io/component"] == "ssh"
    # The checks' Service stays in-cluster and without the SSH port.
    main = cs.one(objs, "Service", FULLNAME)
    assert main["spec"]["type"] == "ClusterIP"
    assert "ssh" not in {p["name"] for p in main["spec"]["ports"]}
    pinned = cs.one(render("ssh-existing-secrets", {"ssh": {"service": {"loadBalancerIP": "198.51.100.7"}}}), "Service", SSH_SERVICE)
    assert pinned["spec"]["loadBalancerIP"] == "198.51.100.7"


def test_ssh_service_as_a_node_port():
    svc = cs.one(render("ssh-inline-keys"), "Service", SSH_SERVICE)["spec"]
    assert svc["type"] == "NodePort"
    assert svc["ports"] == [{"name": "ssh", "port": 2222, "targetPort": "ssh", "protocol": "TCP", "nodePort": 30022}]
    # Load balancer settings do not apply to a NodePort Service.
    lb = {"loadBalancerIP": "198.51.100.7", "loadBalancerSourceRanges": ["203.0.113.0/24"], "externalTrafficPolicy": "Local"}
    svc = cs.one(render("ssh-inline-keys", {"ssh": {"service": lb}}), "Service", SSH_SERVICE)["spec"]
    assert "loadBalancerIP" not in svc and "loadBalancerSourceRanges" not in svc
    assert svc["externalTrafficPolicy"] == "Local"
    picked = cs.one(render("ssh-inline-keys", {"ssh": {"service": {"nodePort": ""}}}), "Service", SSH_SERVICE)["spec"]
    assert "nodePort" not in picked["ports"][0], "empty: Kubernetes picks one"


def test_ssh_service_as_cluster_ip_carries_no_external_fields():
    extra = {"ssh": {"service": {"type": "ClusterIP", "externalTrafficPolicy": "Local"}}}
    svc = cs.one(render("ssh-inline-keys", extra), "Service", SSH_SERVICE)["spec"]
    assert svc["type"] == "ClusterIP"
    assert "externalTrafficPolicy" not in svc and "nodePort" not in svc["ports"][0]


# --- host keys ----------------------------------------------------------------------


def test_existing_host_key_secret_is_mounted_and_every_entry_offered():
    objs = render("ssh-existing-secrets")
    assert cs.find(objs, "Secret") == [], "every Secret is the user's"
    vol = volumes(objs)["ssh-host-keys"]["secret"]
    assert vol["secretName"] == "gate-ssh-host-keys"
    assert [i["key"] for i in vol["items"]] == ["host_ed25519_next", "host_ed25519"]
    assert mounts(objs)["ssh-host-keys"] == {"name": "ssh-host-keys", "mountPath": "/etc/workspace-gate/ssh/host-keys", "readOnly": True}
    assert cs.gate_config(objs)["ssh"]["host_key_files"] == [
        "/etc/workspace-gate/ssh/host-keys/host_ed25519_next",
        "/etc/workspace-gate/ssh/host-keys/host_ed25519",
    ]
    annotations = cs.one(objs, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert "checksum/ssh-host-keys" not in annotations


def test_the_install_guide_recipe_needs_only_the_secret_name():
    """`kubectl create secret generic ... --from-file=host_ed25519` makes the
    entry the default `existingSecretKeys` names, so the guide's
    values-ssh.yaml names just the Secret."""
    objs = render("ssh-install-guide")
    vol = volumes(objs)["ssh-host-keys"]["secret"]
    assert (vol["secretName"], [i["key"] for i in vol["items"]]) == ("workspace-gate-ssh-host-keys", ["host_ed25519"])


def test_inline_host_keys_go_into_a_secret_of_the_chart():
    objs = render("ssh-inline-keys")
    secret = cs.one(objs, "Secret", f"{FULLNAME}-ssh-host-keys")
    assert base64.b64decode(secret["data"]["host_ed25519"]).decode() == SSH["host_ed25519"]
    assert "annotations" not in secret["metadata"], "not generated, so nothing to keep"
    assert volumes(objs)["ssh-host-keys"]["secret"]["secretName"] == f"{FULLNAME}-ssh-host-keys"
    assert cs.gate_config(objs)["ssh"]["host_key_files"] == ["/etc/workspace-gate/ssh/host-keys/host_ed25519"]
    # A changed key rolls the pods.
    ann = lambda o: cs.one(o, "Deployment")["spec"]["template"]["metadata"]["annotations"]  # noqa: E731
    rolled = render("ssh-inline-keys", {"ssh": {"hostKeys": {"keys": {"host_ed25519": SSH["host_ed25519_next"]}}}})
    assert ann(rolled)["checksum/ssh-host-keys"] != ann(objs)["checksum/ssh-host-keys"]


def test_inline_host_keys_are_rendered_in_name_order_and_the_same_each_time():
    keys = {"new": SSH["host_ed25519_next"], "host_ed25519": SSH["host_ed25519"]}
    first = cs.render(cs.deep_merge(SCENARIOS["ssh-inline-keys"][0], {"ssh": {"hostKeys": {"keys": keys}}}))
    again = cs.render(cs.deep_merge(SCENARIOS["ssh-inline-keys"][0], {"ssh": {"hostKeys": {"keys": keys}}}))
    assert first == again, "nothing random: replicas and upgrades keep the same host key"
    files = cs.gate_config(cs.objects(first))["ssh"]["host_key_files"]
    assert files == ["/etc/workspace-gate/ssh/host-keys/host_ed25519", "/etc/workspace-gate/ssh/host-keys/new"]


def test_without_a_host_key_the_render_fails_telling_how_to_make_one():
    message = refused({"ssh": {"enabled": True}})
    for text in (
        "ssh.enabled needs a host key, and the chart does not generate one",
        "every replica must offer the same key",
        "known_hosts",
        "workspace-gate keygen --ssh > host_ed25519",
        f"kubectl -n {cs.NAMESPACE} create secret generic workspace-gate-ssh-host-keys --from-file=host_ed25519",
        "ssh.hostKeys.existingSecret=workspace-gate-ssh-host-keys",
        "ssh.hostKeys.keys",
    ):
        assert text in message, f"{text!r} not in: {message}"


# --- backend key and known_hosts ----------------------------------------------------


def test_backend_key_from_an_existing_secret():
    objs = render("ssh-existing-secrets")
    vol = volumes(objs)["ssh-backend-key"]["secret"]
    assert vol["secretName"] == "gate-ssh-backend"
    assert [i["key"] for i in vol["items"]] == ["ssh-privatekey"]
    assert mounts(objs)["ssh-backend-key"]["mountPath"] == "/etc/workspace-gate/ssh/backend-key"
    assert cs.gate_config(objs)["ssh"]["backend_key_file"] == "/etc/workspace-gate/ssh/backend-key/ssh-privatekey"
    # Without one: none and an empty password, as GitLab's image expects.
    objs = render("ssh-inline-keys")
    assert "ssh-backend-key" not in volumes(objs)
    assert "backend_key_file" not in cs.gate_config(objs)["ssh"]


@pytest.mark.parametrize(
    "extra, source, key",
    [
        ({"backendKnownHosts": SSH["known_hosts"]}, {"configMap": {"name": FULLNAME}}, "ssh_known_hosts"),
        ({"backendKnownHostsFrom": {"configMap": "workspaces-sshd-known-hosts"}}, {"configMap": {"name": "workspaces-sshd-known-hosts"}}, "known_hosts"),
        ({"backendKnownHostsFrom": {"secret": "sshd-hosts", "key": "hosts"}}, {"secret": {"secretName": "sshd-hosts", "defaultMode": 0o440}}, "hosts"),
    ],
    ids=["inline", "existing-configmap", "existing-secret"],
)
def test_backend_known_hosts_sources(extra, source, key):
    values = {"ssh": {"enabled": True, "hostKeys": {"existingSecret": "gate-ssh-host-keys"}, **extra}}
    objs = render("ingress-nginx-existing-secrets", values)
    vol = volumes(objs)["ssh-known-hosts"]
    (kind,) = set(vol) - {"name"}
    items = vol[kind].pop("items")
    assert {kind: vol[kind]} == source
    assert items == [{"key": key, "path": key}]
    assert mounts(objs)["ssh-known-hosts"]["mountPath"] == "/etc/workspace-gate/ssh/known-hosts"
    assert cs.gate_config(objs)["ssh"]["backend_known_hosts_file"] == f"/etc/workspace-gate/ssh/known-hosts/{key}"
    if "backendKnownHosts" in extra:
        (cm,) = cs.find(objs, "ConfigMap", FULLNAME)
        assert cm["data"]["ssh_known_hosts"] == SSH["known_hosts"]


def test_without_known_hosts_each_workspace_key_is_pinned_on_first_use():
    objs = render("ingress-nginx-existing-secrets", {"ssh": {"enabled": True, "hostKeys": {"existingSecret": "gate-ssh-host-keys"}}})
    assert "ssh-known-hosts" not in volumes(objs)
    assert "backend_known_hosts_file" not in cs.gate_config(objs)["ssh"]
    assert "ssh_known_hosts" not in cs.one(objs, "ConfigMap")["data"]


# --- tunables ---------------------------------------------------------------------


def test_every_tunable_reaches_the_configuration():
    config = cs.gate_config(render("ssh-inline-keys"))
    assert config["ssh"] == {
        "host_key_files": ["/etc/workspace-gate/ssh/host-keys/host_ed25519"],
        "backend_known_hosts_file": "/etc/workspace-gate/ssh/known-hosts/ssh_known_hosts",
        "backend_user": "workspace",
        "idle_timeout": "30m",
        "max_session": "8h",
        "recheck_interval": "15s",
        "key_cache_ttl": "2m",
        "allow_agent_forwarding": False,
        "allow_remote_forwarding": True,
    }
    assert config["routing"]["ssh_port"] == 22


def test_defaults_are_the_gates_own():
    config = cs.gate_config(render("ssh-existing-secrets"))
    ssh = config["ssh"]
    assert (ssh["backend_user"], ssh["idle_timeout"], ssh["max_session"]) == ("gitlab-workspaces", "1h", "12h")
    assert (ssh["recheck_interval"], ssh["key_cache_ttl"]) == ("30s", "60s")
    assert (ssh["allow_agent_forwarding"], ssh["allow_remote_forwarding"]) == (True, False)
    assert config["routing"]["ssh_port"] == 60022


def test_mode_none_still_tells_the_gate_the_cluster_domain():
    """The gate reaches each sshd at <service>.<namespace>.svc.<cluster
    domain>; mode none renders no gate_service, so the domain alone."""
    routing = cs.gate_config(render("ssh-inline-keys"))["routing"]
    assert routing == {"mode": "none", "ssh_port": 22, "gate_service": {"cluster_domain": "cluster.example"}}
    nginx = cs.gate_config(render("ssh-existing-secrets"))["routing"]["gate_service"]
    assert nginx["name"] == FULLNAME and nginx["cluster_domain"] == "cluster.local"


# --- NetworkPolicy -----------------------------------------------------------------


def test_network_policy_admits_ssh_clients_and_lets_the_gate_reach_the_sshd():
    policy = cs.one(render("ssh-existing-secrets"), "NetworkPolicy")
    (ingress,), (egress,) = ssh_rules(policy)
    assert ingress["from"] == [{"ipBlock": {"cidr": "203.0.113.0/24"}}]
    assert egress == {"ports": [{"port": 60022, "protocol": "TCP"}], "to": [{"namespaceSelector": {}}]}
    # The user's egress rules stay, first.
    assert policy["spec"]["egress"][0] == SCENARIOS["ssh-existing-secrets"][0]["networkPolicy"]["egress"][0]


def test_network_policy_ssh_ingress_from_anywhere_by_default():
    policy = cs.one(render("ssh-existing-secrets", {"ssh": {"networkPolicy": {"from": []}}}), "NetworkPolicy")
    (ingress,), _ = ssh_rules(policy)
    assert "from" not in ingress, "users come from outside the cluster"


def test_network_policy_egress_to_the_sshd_follows_the_values():
    def egress_of(extra):
        policy = cs.one(render("ssh-existing-secrets", extra), "NetworkPolicy")
        return [r for r in policy["spec"]["egress"] if r.get("to")]

    (rule,) = egress_of({"ssh": {"networkPolicy": {"workspaceTargetPort": 2222}}})
    assert rule["ports"] == [{"port": 2222, "protocol": "TCP"}]
    (rule,) = egress_of({"discovery": {"namespaces": ["team-a", "team-b"]}})
    assert rule["to"] == [
        {"namespaceSelector": {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["team-a", "team-b"]}]}}
    ]
    peers = [{"namespaceSelector": {"matchLabels": {"gitlab-workspaces": "true"}}}]
    (rule,) = egress_of({"ssh": {"networkPolicy": {"workspacesTo": peers}}})
    assert rule["to"] == peers


def test_network_policy_leaves_egress_open_when_it_was_open():
    """Without `networkPolicy.egress` the policy restricts no egress, so it
    needs no rule for the sshd (adding one would restrict the rest)."""
    policy = cs.one(render("ssh-existing-secrets", {"networkPolicy": {"egress": []}}), "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert "egress" not in policy["spec"]
    (ingress,), _ = ssh_rules(policy)


def test_network_policy_has_no_ssh_rules_with_ssh_off():
    values, _ = SCENARIOS["ssh-existing-secrets"]
    policy = cs.one(cs.objects(cs.render(cs.deep_merge(values, {"ssh": {"enabled": False}}))), "NetworkPolicy")
    assert ssh_rules(policy) == ([], [])


# --- the chart's own names -------------------------------------------------------


@pytest.mark.parametrize(
    "values, text",
    [
        ({"extraVolumes": [{"name": "ssh-host-keys", "emptyDir": {}}]}, 'the name "ssh-host-keys" is the chart\'s own volume'),
        ({"extraVolumeMounts": [{"name": "x", "mountPath": "/etc/workspace-gate/ssh"}]}, "would hide the chart's /etc/workspace-gate/ssh/host-keys"),
        ({"extraVolumeMounts": [{"name": "x", "mountPath": "/etc/workspace-gate/ssh/known-hosts"}]}, "would hide the chart's /etc/workspace-gate/ssh/known-hosts"),
    ],
)
def test_extra_volumes_cannot_take_the_ssh_mounts(values, text):
    assert text in refused(values, "ssh-existing-secrets")


# --- NOTES.txt ----------------------------------------------------------------


def test_notes_tell_how_to_connect_and_warn_about_the_data_path():
    text = cs.notes(cs.render(SCENARIOS["ssh-existing-secrets"][0]))
    assert "ssh.enabled: the gate is in the data path for SSH" in text
    assert "ssh <workspace-name>@<ssh host>" in text
    assert f"kubectl -n {cs.NAMESPACE} get service {SSH_SERVICE} -o jsonpath='{{.status.loadBalancer.ingress[0]}}'" in text
    assert "host keys of Secret gate-ssh-host-keys" in text
    # The workspaces' side of the hop is the user's to open.
    assert "<service>.<namespace>.svc.cluster.local:60022" in text
    assert f"app.kubernetes.io/name=workspace-gate,app.kubernetes.io/instance={cs.RELEASE}" in text


def test_notes_for_a_node_port_name_the_port():
    text = cs.notes(cs.render(SCENARIOS["ssh-inline-keys"][0]))
    assert "ssh -p 30022 <workspace-name>@<node address>" in text
    assert "host keys of Secret gate-workspace-gate-ssh-host-keys" in text
    picked = cs.notes(cs.render(cs.deep_merge(SCENARIOS["ssh-inline-keys"][0], {"ssh": {"service": {"nodePort": ""}}})))
    assert "ssh -p <node port> <workspace-name>@<node address>" in picked
    assert "jsonpath='{.spec.ports[0].nodePort}'" in picked


def test_notes_for_another_service_port_and_cluster_ip():
    extra = {"ssh": {"service": {"type": "ClusterIP"}}}
    text = cs.notes(cs.render(cs.deep_merge(SCENARIOS["ssh-inline-keys"][0], extra)))
    assert "ssh -p 2222 <workspace-name>@<ssh host>" in text
    assert f"{SSH_SERVICE}.{cs.NAMESPACE}.svc.cluster.example:2222" in text
