"""values.schema.json rejects bad values before anything renders, with a
message naming the field. Each case is checked twice: through the Helm
library's schema validation and through a render (what `helm install` does)."""

import pytest

import chart_support as cs

# (description, bad values, text the message must contain: the field and why)
BAD_VALUES = [
    ("unknown routing mode", {"routing": {"mode": "istio"}}, ["/routing/mode", "must be one of"]),
    ("URL instead of a host name", {"workspaceDomain": "https://workspaces.example.test"}, ["/workspaceDomain", "does not match pattern"]),
    ("auth host with a port", {"authHost": "login.example.test:443"}, ["/authHost"]),
    ("string instead of a number", {"replicaCount": "two"}, ["/replicaCount", "want integer"]),
    ("signing key too short", {"keys": {"signingKeys": ["c2hvcnQ="]}}, ["/keys/signingKeys/0", "does not match pattern"]),
    ("issuer not https", {"oidc": {"issuer": "http://gitlab.example.test"}}, ["/oidc/issuer", "does not match pattern"]),
    ("scopes without openid", {"oidc": {"scopes": ["profile", "read_api"]}}, ["/oidc/scopes", "'openid'"]),
    ("misspelt top-level key", {"replicas": 3}, ["additional properties 'replicas' not allowed"]),
    ("misspelt nested key", {"oidc": {"clientID": "x"}}, ["/oidc", "additional properties 'clientID' not allowed"]),
    ("gateway-api mode without a Gateway", {"routing": {"mode": "gateway-api"}}, ["/routing/gateway/name", "/routing/gateway/namespace"]),
    ("existing keys Secret without entries", {"keys": {"existingSecret": "gate-keys"}}, ["/keys/existingSecretKeys", "minItems"]),
    (
        "existing keys Secret and inline keys together",
        {"keys": {"existingSecret": "gate-keys", "existingSecretKeys": ["k"], "signingKeys": [cs.KEY_A]}},
        ["/keys/signingKeys", "maxItems"],
    ),
    ("namespaced RBAC without namespaces", {"rbac": {"scope": "namespaced"}}, ["/discovery/namespaces", "minItems"]),
    ("port out of range", {"ports": {"grpc": 70000}}, ["/ports/grpc", "maximum"]),
    ("public port as text", {"publicPort": "443"}, ["/publicPort"]),
    ("not a duration", {"session": {"passTtl": "soon"}}, ["/session/passTtl", "does not match pattern"]),
    ("unknown authorization mode", {"authorization": {"mode": "ldap"}}, ["/authorization/mode", "must be one of"]),
    ("unknown transfer method", {"session": {"transfer": "cookie"}}, ["/session/transfer", "must be one of"]),
    ("invalid namespace name", {"discovery": {"namespaces": ["Team_A"]}}, ["/discovery/namespaces/0"]),
    (
        "namespace list and selector together",
        {"discovery": {"namespaces": ["team-a"], "namespaceSelector": "gitlab-workspaces=true"}},
        ["/discovery/namespaceSelector", "maxLength"],
    ),
    ("lease name with a dot", {"discovery": {"leaseName": "gate.lease"}}, ["/discovery/leaseName"]),
    ("annotation key with a space", {"discovery": {"ownerIdAnnotation": "owner id"}}, ["/discovery/ownerIdAnnotation"]),
    ("check CA Secret without the TLS Secret", {"checkTls": {"caSecret": "gate-ca"}}, ["/checkTls/secretName", "minLength"]),
    ("check TLS Secret name with capitals", {"checkTls": {"secretName": "Gate_TLS"}}, ["/checkTls/secretName"]),
    ("check CA Secret name with a dot", {"checkTls": {"secretName": "gate-tls", "caSecret": "gate.ca"}}, ["/checkTls/caSecret"]),
    ("check port out of range", {"checkTls": {"secretName": "gate-tls", "port": 0}}, ["/checkTls/port", "minimum"]),
    ("check port as text", {"checkTls": {"port": "8443"}}, ["/checkTls/port", "want integer"]),
    ("misspelt checkTls key", {"checkTls": {"secret": "gate-tls"}}, ["/checkTls", "additional properties 'secret' not allowed"]),
    # The SSH gateway.
    ("misspelt ssh key", {"ssh": {"enable": True}}, ["/ssh", "additional properties 'enable' not allowed"]),
    ("misspelt ssh service key", {"ssh": {"service": {"loadBalancerSourceRange": ["203.0.113.0/24"]}}}, ["/ssh/service", "additional properties 'loadBalancerSourceRange' not allowed"]),
    ("misspelt ssh host keys key", {"ssh": {"hostKeys": {"existingSecretName": "k"}}}, ["/ssh/hostKeys", "additional properties 'existingSecretName' not allowed"]),
    ("unknown SSH Service type", {"ssh": {"service": {"type": "ExternalName"}}}, ["/ssh/service/type", "must be one of"]),
    ("SSH node port as text", {"ssh": {"service": {"nodePort": "30022"}}}, ["/ssh/service/nodePort"]),
    ("SSH source range without a prefix length", {"ssh": {"service": {"loadBalancerSourceRanges": ["203.0.113.7"]}}}, ["/ssh/service/loadBalancerSourceRanges/0", "does not match pattern"]),
    ("lower-case traffic policy", {"ssh": {"service": {"externalTrafficPolicy": "local"}}}, ["/ssh/service/externalTrafficPolicy", "must be one of"]),
    ("public key as a host key", {"ssh": {"hostKeys": {"keys": {"host_ed25519": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5"}}}}, ["/ssh/hostKeys/keys/host_ed25519", "does not match pattern"]),
    ("existing host-key Secret without entries", {"ssh": {"hostKeys": {"existingSecret": "ssh-host", "existingSecretKeys": []}}}, ["/ssh/hostKeys/existingSecretKeys", "minItems"]),
    (
        "existing host-key Secret and inline host keys together",
        {"ssh": {"hostKeys": {"existingSecret": "ssh-host", "keys": {"k": "-----BEGIN OPENSSH PRIVATE KEY-----"}}}},
        ["/ssh/hostKeys/keys", "maxProperties"],
    ),
    ("known_hosts inline and from a ConfigMap", {"ssh": {"backendKnownHosts": "* ssh-ed25519 AAAA", "backendKnownHostsFrom": {"configMap": "hosts"}}}, ["/ssh/backendKnownHostsFrom/configMap", "maxLength"]),
    ("known_hosts from a ConfigMap and a Secret", {"ssh": {"backendKnownHostsFrom": {"configMap": "hosts", "secret": "hosts"}}}, ["/ssh/backendKnownHostsFrom/secret", "maxLength"]),
    ("SSH idle timeout in words", {"ssh": {"idleTimeout": "forever"}}, ["/ssh/idleTimeout", "does not match pattern"]),
    ("agent forwarding as text", {"ssh": {"allowAgentForwarding": "yes"}}, ["/ssh/allowAgentForwarding", "want boolean"]),
    ("workspace SSH port zero", {"ssh": {"workspacePort": 0}}, ["/ssh/workspacePort", "minimum"]),
    ("empty backend user", {"ssh": {"backendUser": ""}}, ["/ssh/backendUser"]),
    ("SSH peers as a map", {"ssh": {"networkPolicy": {"from": {"ipBlock": {}}}}}, ["/ssh/networkPolicy/from", "want array"]),
    # Values users bring from other charts.
    ("env value as a number", {"extraEnv": [{"name": "PORT", "value": 8080}]}, ["/extraEnv/0/value", "want string"]),
    ("env entry without a name", {"extraEnv": [{"value": "x"}]}, ["/extraEnv/0", "missing property 'name'"]),
    ("misspelt env field", {"extraEnv": [{"name": "A", "valueFom": {}}]}, ["/extraEnv/0", "additional properties 'valueFom' not allowed"]),
    ("envFrom with a misspelt source", {"envFrom": [{"secret": {"name": "s"}}]}, ["/envFrom/0", "additional properties 'secret' not allowed"]),
    ("envFrom reference without a name", {"envFrom": [{"configMapRef": {}}]}, ["/envFrom/0/configMapRef", "missing property 'name'"]),
    ("extraEnv as a map", {"extraEnv": {"A": "b"}}, ["/extraEnv", "want array"]),
    ("volume without a source", {"extraVolumes": [{"name": "ca"}]}, ["/extraVolumes/0", "minProperties"]),
    ("volume with two sources", {"extraVolumes": [{"name": "ca", "configMap": {"name": "a"}, "secret": {"secretName": "b"}}]}, ["/extraVolumes/0", "maxProperties"]),
    ("volume source not a map", {"extraVolumes": [{"name": "ca", "configMap": "gitlab-ca"}]}, ["/extraVolumes/0/configMap", "want object"]),
    ("volume name with capitals", {"extraVolumes": [{"name": "GitLab_CA", "emptyDir": {}}]}, ["/extraVolumes/0/name"]),
    ("relative mount path", {"extraVolumeMounts": [{"name": "ca", "mountPath": "etc/ca"}]}, ["/extraVolumeMounts/0/mountPath", "does not match pattern"]),
    ("mount without a path", {"extraVolumeMounts": [{"name": "ca"}]}, ["/extraVolumeMounts/0", "missing property 'mountPath'"]),
    ("readOnly as text", {"extraVolumeMounts": [{"name": "ca", "mountPath": "/ca", "readOnly": "yes"}]}, ["/extraVolumeMounts/0/readOnly", "want boolean"]),
    ("misspelt mount field", {"extraVolumeMounts": [{"name": "ca", "mountPath": "/ca", "readonly": True}]}, ["/extraVolumeMounts/0", "additional properties 'readonly' not allowed"]),
    ("extra object without a kind", {"extraObjects": [{"apiVersion": "v1", "metadata": {"name": "x"}}]}, ["/extraObjects/0", "missing property 'kind'"]),
    ("extraObjects as a map", {"extraObjects": {"apiVersion": "v1"}}, ["/extraObjects", "want array"]),
    ("label value as a number", {"commonLabels": {"tier": 1}}, ["/commonLabels/tier", "want string"]),
    # The validator reports a bad key at '' but names it.
    ("label key with a space", {"podLabels": {"my team": "a"}}, ["invalid propertyName 'my team'"]),
    ("label value too long", {"commonLabels": {"team": "a" * 64}}, ["/commonLabels/team", "maxLength"]),
    ("annotation value as a boolean", {"podAnnotations": {"example.test/scrape": True}}, ["/podAnnotations/example.test~1scrape", "want string"]),
    ("disruption budget as words", {"podDisruptionBudget": {"minAvailable": "half"}}, ["/podDisruptionBudget/minAvailable", "does not match pattern"]),
    ("negative disruption budget", {"podDisruptionBudget": {"maxUnavailable": -1}}, ["/podDisruptionBudget/maxUnavailable", "minimum"]),
    ("misspelt disruption budget key", {"podDisruptionBudget": {"minAvailible": 1}}, ["/podDisruptionBudget", "additional properties 'minAvailible' not allowed"]),
    ("scrape timeout without a unit", {"serviceMonitor": {"scrapeTimeout": "10"}}, ["/serviceMonitor/scrapeTimeout", "does not match pattern"]),
    ("unknown relabel action", {"serviceMonitor": {"relabelings": [{"action": "rename"}]}}, ["/serviceMonitor/relabelings/0/action", "must be one of"]),
    ("relabel source label as text", {"serviceMonitor": {"metricRelabelings": [{"sourceLabels": "__name__"}]}}, ["/serviceMonitor/metricRelabelings/0/sourceLabels", "want array"]),
    ("misspelt relabel field", {"serviceMonitor": {"relabelings": [{"source_labels": ["a"]}]}}, ["/serviceMonitor/relabelings/0", "additional properties 'source_labels' not allowed"]),
    ("spread constraint without a topology key", {"topologySpreadConstraints": [{"maxSkew": 1, "whenUnsatisfiable": "ScheduleAnyway"}]}, ["/topologySpreadConstraints/0", "missing property 'topologyKey'"]),
    ("unknown whenUnsatisfiable", {"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "Sometimes"}]}, ["/topologySpreadConstraints/0/whenUnsatisfiable", "must be one of"]),
    ("priority class with capitals", {"priorityClassName": "High_Priority"}, ["/priorityClassName"]),
]


@pytest.mark.parametrize("values, expected", [(v, e) for _, v, e in BAD_VALUES], ids=[d for d, _, _ in BAD_VALUES])
def test_schema_rejects_bad_values_naming_the_field(values, expected):
    with cs.helm.Chart.load(str(cs.CHART_DIR)) as chart:
        with pytest.raises(cs.helm.HelmValuesError) as validated:
            chart.validate_schema(chart.merge_values(values))
        with pytest.raises(cs.helm.HelmValuesError) as rendered:
            chart.render(values, name=cs.RELEASE, namespace=cs.NAMESPACE)
    for err in (validated.value, rendered.value):
        for text in expected:
            assert text in str(err), f"{text!r} not in: {err}"


def test_schema_accepts_the_defaults_and_every_scenario():
    from scenarios import SCENARIOS

    with cs.helm.Chart.load(str(cs.CHART_DIR)) as chart:
        for values, _ in SCENARIOS.values():
            chart.validate_schema(chart.merge_values(values))
