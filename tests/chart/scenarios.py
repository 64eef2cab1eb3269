"""Values for the installations the chart tests render: the defaults, each
routing mode with chart-created and with existing Secrets, Traefik over
https, namespaced RBAC, the install guide's private-CA recipe, the SSH
gateway with existing and with chart-created host keys (and as the install
guide sets it up), and every optional object switched on."""

import re

import yaml

from chart_support import (
    BASE_VALUES,
    HERE,
    KEY_A,
    KEY_B,
    NAMESPACE,
    RELEASE,
    REPO,
    deep_merge,
    private_ca_and_server,
    self_signed_tls,
)

# Test-only SSH keys (fixtures/ssh/README.md): host keys of the gateway, the
# key it offers the workspaces' sshd, and a known_hosts line for that sshd.
SSH = {f.name: f.read_text() for f in (HERE / "fixtures" / "ssh").iterdir() if f.suffix != ".md"}

# Secrets a user creates before `helm install` in the "existing" scenarios
# (what `kubectl create secret generic ... --from-file` would hold, and the
# TLS Secret a cert-manager Certificate for the gate's Service would).
EXISTING_SECRETS = {
    "gitlab-oauth": {"client-secret": "gloas-0123456789abcdef0123456789abcdef"},
    "gate-keys": {"key-2026-11": KEY_B, "key-2026-05": KEY_A},
    "gate-check-tls": self_signed_tls(f"{RELEASE}-workspace-gate.{NAMESPACE}.svc.cluster.local"),
    # workspace-gate keygen --ssh > host_ed25519 && kubectl create secret
    # generic gate-ssh-host-keys --from-file=host_ed25519 ...
    "gate-ssh-host-keys": {"host_ed25519": SSH["host_ed25519"], "host_ed25519_next": SSH["host_ed25519_next"]},
    "gate-ssh-backend": {"ssh-privatekey": SSH["backend_ed25519"]},
    # The install guide's recipe, as it names the Secret and its entry.
    "workspace-gate-ssh-host-keys": {"host_ed25519": SSH["host_ed25519"]},
}

# The private CA of a GitLab behind a company CA: `ca.crt` goes into the
# ConfigMap the install guide creates, `tls.crt`/`tls.key` are what that
# GitLab (the stand-in provider) serves.
GITLAB_TLS = private_ca_and_server("IP:127.0.0.1")
EXISTING_CONFIG_MAPS = {
    "gitlab-ca": {"ca.crt": GITLAB_TLS["ca.crt"]},
    "workspaces-sshd-known-hosts": {"known_hosts": SSH["known_hosts"]},
}


def install_guide_values(name: str) -> dict:
    """The YAML block of docs/install.md that starts with `# <name>`."""
    text = (REPO / "docs" / "install.md").read_text()
    blocks = re.findall(r"```yaml\n(# " + re.escape(name) + r"\b.*?)```", text, re.S)
    assert len(blocks) == 1, f"docs/install.md has {len(blocks)} blocks starting with # {name}"
    return yaml.safe_load(blocks[0])


PRIVATE_CA = install_guide_values("values-private-ca.yaml")
SSH_GUIDE = install_guide_values("values-ssh.yaml")

CREATED = {
    "oidc": {"clientSecret": "gloas-0123456789abcdef0123456789abcdef"},
    "keys": {"signingKeys": [KEY_B, KEY_A]},
}
EXISTING = {
    "oidc": {"existingSecret": "gitlab-oauth"},
    "keys": {"existingSecret": "gate-keys", "existingSecretKeys": ["key-2026-11", "key-2026-05"]},
}
GATEWAY = {"routing": {"mode": "gateway-api", "gateway": {"name": "eg", "namespace": "envoy-gateway-system", "sectionName": "https-workspaces"}}}


def _v(*parts):
    out = dict(BASE_VALUES)
    for p in parts:
        out = deep_merge(out, p)
    return out


# The SSH gateway with everything from objects the user manages: two host
# keys (a new one next to the old), a backend key, known_hosts from a
# ConfigMap, a restricted load balancer, and the NetworkPolicy with egress
# restricted (so the rule to the workspaces' sshd is rendered).
SSH_EXISTING = {
    "ssh": {
        "enabled": True,
        "hostKeys": {"existingSecret": "gate-ssh-host-keys", "existingSecretKeys": ["host_ed25519_next", "host_ed25519"]},
        "backendKey": {"existingSecret": "gate-ssh-backend"},
        "backendKnownHostsFrom": {"configMap": "workspaces-sshd-known-hosts"},
        "service": {
            "annotations": {"service.beta.kubernetes.io/aws-load-balancer-type": "nlb"},
            "loadBalancerSourceRanges": ["203.0.113.0/24", "2001:db8::/32"],
            "externalTrafficPolicy": "Local",
        },
        "networkPolicy": {"from": [{"ipBlock": {"cidr": "203.0.113.0/24"}}]},
    },
    "networkPolicy": {
        "enabled": True,
        "httpFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}],
        "egress": [{"ports": [{"port": 53, "protocol": "UDP"}, {"port": 443, "protocol": "TCP"}, {"port": 6443, "protocol": "TCP"}]}],
    },
}
# The SSH gateway with chart-created host keys and known_hosts, a NodePort,
# every tunable changed, in mode none (no gate_service of its own) with
# another cluster domain.
SSH_INLINE = {
    "routing": {"mode": "none"},
    "clusterDomain": "cluster.example",
    "ssh": {
        "enabled": True,
        "containerPort": 2022,
        "hostKeys": {"keys": {"host_ed25519": SSH["host_ed25519"]}},
        "backendKnownHosts": SSH["known_hosts"],
        "service": {"type": "NodePort", "port": 2222, "nodePort": 30022},
        "backendUser": "workspace",
        "idleTimeout": "30m",
        "maxSession": "8h",
        "recheckInterval": "15s",
        "keyCacheTtl": "2m",
        "allowAgentForwarding": False,
        "allowRemoteForwarding": True,
        "workspacePort": 22,
    },
}

# name -> (values, ready to run: all secrets present)
SCENARIOS = {
    "defaults": ({}, False),
    "ingress-nginx-created-secrets": (_v({"routing": {"mode": "ingress-nginx", "tlsSecret": "workspaces-wildcard-tls"}}, CREATED), True),
    "ingress-nginx-existing-secrets": (_v({"routing": {"mode": "ingress-nginx"}}, EXISTING), True),
    "traefik-created-secrets": (_v({"routing": {"mode": "traefik"}}, CREATED), True),
    "traefik-existing-secrets": (_v({"routing": {"mode": "traefik", "ingressClass": "traefik-internal"}}, EXISTING), True),
    "gateway-api-created-secrets": (_v(GATEWAY, CREATED), True),
    "gateway-api-existing-secrets": (_v(GATEWAY, EXISTING), True),
    "none-generated-key": (_v({"routing": {"mode": "none"}, "oidc": {"clientSecret": "s"}}), True),
    "namespaced-rbac": (
        _v(
            CREATED,
            {
                "discovery": {
                    "namespaces": ["team-a-workspaces", "team-b-workspaces"],
                    "ownerIdAnnotation": "example.test/owner-id",
                    "ownerUsernameAnnotation": "example.test/owner",
                    "leaseName": "gate-lease",
                    "leaseDuration": "20s",
                },
                "authorization": {"mode": "owner-annotation"},
            },
        ),
        True,
    ),
    "traefik-check-tls": (
        _v(
            EXISTING,
            {
                "routing": {"mode": "traefik"},
                "checkTls": {"secretName": "gate-check-tls", "caSecret": "gate-ca"},
                "networkPolicy": {
                    "enabled": True,
                    "httpFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "traefik"}}}],
                    "adminFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
                },
            },
        ),
        True,
    ),
    "private-ca": (_v({"routing": {"mode": "ingress-nginx"}}, EXISTING, PRIVATE_CA), True),
    "ssh-existing-secrets": (_v({"routing": {"mode": "ingress-nginx"}}, EXISTING, SSH_EXISTING), True),
    "ssh-inline-keys": (_v(CREATED, SSH_INLINE), True),
    "ssh-install-guide": (_v({"routing": {"mode": "ingress-nginx"}}, EXISTING, SSH_GUIDE), True),
    "namespace-selector": (
        _v(EXISTING, {"routing": {"mode": "traefik"}, "discovery": {"namespaceSelector": "gitlab-workspaces=true,team!=legacy"}}),
        True,
    ),
    "everything-on": (
        _v(
            CREATED,
            GATEWAY,
            {
                "authHost": "login.workspaces-auth.example.test",
                "publicPort": 8443,
                "autoscaling": {"enabled": True, "minReplicas": 3, "maxReplicas": 9},
                "serviceMonitor": {
                    "enabled": True,
                    "labels": {"release": "prometheus"},
                    "scrapeTimeout": "10s",
                    "relabelings": [{"action": "replace", "sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "node"}],
                    "metricRelabelings": [{"action": "drop", "sourceLabels": ["__name__"], "regex": "go_.*"}],
                },
                "networkPolicy": {
                    "enabled": True,
                    "httpFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "envoy-gateway-system"}}}],
                    "adminFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
                    "egress": [{"ports": [{"port": 53, "protocol": "UDP"}, {"port": 443, "protocol": "TCP"}, {"port": 6443, "protocol": "TCP"}]}],
                },
                "extraEnv": [{"name": "WORKSPACE_GATE_LOG_LEVEL", "value": "info,workspace_gate=debug"}],
                "extraConfig": {"session": {"transfer_ttl": "30s"}},
                "session": {"passTtl": "8h", "loginTtl": "3d"},
                "imagePullSecrets": [{"name": "regcred"}],
                "podAnnotations": {"example.test/team": "platform"},
                "commonLabels": {"example.test/team": "platform", "app.kubernetes.io/part-of": "developer-platform"},
                "podLabels": {"example.test/sidecar-injection": "disabled"},
                "envFrom": [{"secretRef": {"name": "gate-proxy-env", "optional": True}}],
                "extraVolumes": [{"name": "scratch", "emptyDir": {"sizeLimit": "1Mi"}}],
                "extraVolumeMounts": [{"name": "scratch", "mountPath": "/var/scratch"}],
                "extraObjects": [
                    {
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "metadata": {"name": "{{ include \"workspace-gate.fullname\" . }}-extra", "labels": {"release": "{{ .Release.Name }}"}},
                        "data": {"namespace": "{{ .Release.Namespace }}"},
                    },
                    "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {{ .Release.Name }}-proxy-env\nstringData:\n  NO_PROXY: .svc,.{{ .Values.clusterDomain }}\n",
                ],
                "podDisruptionBudget": {"minAvailable": "50%"},
                "priorityClassName": "platform-critical",
                "topologySpreadConstraints": [
                    {
                        "maxSkew": 1,
                        "topologyKey": "topology.kubernetes.io/zone",
                        "whenUnsatisfiable": "DoNotSchedule",
                        "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "workspace-gate", "app.kubernetes.io/instance": RELEASE}},
                    }
                ],
                "nodeSelector": {"kubernetes.io/os": "linux"},
                "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gate", "effect": "NoSchedule"}],
            },
        ),
        True,
    ),
}
