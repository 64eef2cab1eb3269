"""Shared helpers for the chart tests: render the chart with the real Helm
library, split manifests, validate objects, find the workspace-gate binary,
and lay out a rendered Deployment's volumes on disk so the binary can read the
files the Deployment would mount.
"""

from __future__ import annotations

import base64
import contextlib
import http.server
import json
import os
import pathlib
import socket
import subprocess
from typing import Any

# Missing Python packages fail loudly with what to install, never a skip.
_MISSING = []
try:
    import helm_python as helm
except ImportError:  # pragma: no cover - exercised only on a broken setup
    _MISSING.append("helm-python-sdk")
try:
    import kubernetes_validate
except ImportError:  # pragma: no cover
    _MISSING.append("kubernetes-validate")
try:
    import jsonschema
except ImportError:  # pragma: no cover
    _MISSING.append("jsonschema")
try:
    import yaml
except ImportError:  # pragma: no cover
    _MISSING.append("pyyaml")
if _MISSING:
    raise RuntimeError(
        "chart tests need the Python packages "
        + ", ".join(_MISSING)
        + ": run `.venv/bin/pip install -r tests/requirements.txt` (or scripts/install-deps.sh)"
    )

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent
CHART_DIR = REPO / "charts" / "workspace-gate"
CRD_DIR = HERE / "fixtures" / "crds"

RELEASE = "gate"
NAMESPACE = "workspace-gate"

# Oldest (Chart.yaml kubeVersion) and newest Kubernetes whose schemas we check.
KUBE_VERSIONS = ["1.30", kubernetes_validate.utils.latest_version()]

# A valid base64 key of 32 bytes each (fixed so renders are reproducible).
KEY_A = base64.b64encode(bytes(range(32))).decode()
KEY_B = base64.b64encode(bytes(range(32, 64))).decode()

# Base values of a realistic installation; scenarios add to them.
BASE_VALUES: dict[str, Any] = {
    "workspaceDomain": "workspaces.example.test",
    "oidc": {"issuer": "https://gitlab.example.test", "clientId": "0123456789abcdef"},
}


def deep_merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def render(values: dict | None, name: str = RELEASE, namespace: str = NAMESPACE) -> dict[str, str]:
    """Renders the chart; returns template path -> manifest text."""
    with helm.Chart.load(str(CHART_DIR)) as chart:
        return chart.render(values or {}, name=name, namespace=namespace)


def objects(rendered: dict[str, str]) -> list[dict]:
    """Every Kubernetes object in a render (NOTES.txt excluded)."""
    out = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                doc.setdefault("__template__", path)
                out.append(doc)
    return out


def strip(obj: dict) -> dict:
    return {k: v for k, v in obj.items() if k != "__template__"}


def find(objs: list[dict], kind: str, name: str | None = None) -> list[dict]:
    return [
        o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]


def one(objs: list[dict], kind: str, name: str | None = None) -> dict:
    found = find(objs, kind, name)
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def gate_config(objs: list[dict]) -> dict:
    """The gate's configuration file from a render (the chart's ConfigMap,
    told apart from any ConfigMap in `extraObjects` by its `config.yaml`)."""
    (cm,) = [o for o in find(objs, "ConfigMap") if "config.yaml" in o.get("data", {})]
    return yaml.safe_load(cm["data"]["config.yaml"])


def notes(rendered: dict[str, str]) -> str:
    return next(v for k, v in rendered.items() if k.endswith("NOTES.txt"))


def load_crd_validators() -> dict[tuple[str, str], Any]:
    """(apiVersion, kind) -> jsonschema validator, from the CRD fixtures."""
    validators = {}
    for f in sorted(CRD_DIR.glob("*.yaml")):
        crd = yaml.safe_load(f.read_text())
        group = crd["spec"]["group"]
        kind = crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = version["schema"]["openAPIV3Schema"]
            jsonschema.Draft202012Validator.check_schema(schema)
            validators[(f"{group}/{version['name']}", kind)] = jsonschema.Draft202012Validator(
                schema
            )
    return validators


def validate_object(obj: dict, crd_validators: dict, kube_version: str) -> None:
    """Validates one object: built-in kinds with the official schemas (strict:
    unknown fields fail), custom kinds with the CRD fixtures. Raises on error,
    including for a kind that has neither."""
    body = strip(obj)
    key = (body["apiVersion"], body["kind"])
    if key in crd_validators:
        errors = sorted(crd_validators[key].iter_errors(body), key=lambda e: list(e.path))
        if errors:
            raise AssertionError(
                f"{body['kind']}/{body['metadata']['name']}: "
                + "; ".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)
            )
        return
    kubernetes_validate.validate(body, kube_version, strict=True)


def _openssl(*args: str) -> None:
    try:
        done = subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        raise AssertionError("the openssl command is missing (apt-get install openssl)") from None
    assert done.returncode == 0, f"openssl {args[0]} failed: {done.stderr}"


_P256 = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"]


def self_signed_tls(dns_name: str) -> dict[str, str]:
    """A `kubernetes.io/tls` Secret's entries (`tls.crt`, `tls.key`) for
    `dns_name`: a fresh self-signed P-256 certificate made with the openssl
    command, as cert-manager would store one."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        cert, key = pathlib.Path(d, "tls.crt"), pathlib.Path(d, "tls.key")
        _openssl("req", "-x509", *_P256, "-subj", f"/CN={dns_name}",
                 "-addext", f"subjectAltName=DNS:{dns_name}", "-keyout", str(key), "-out", str(cert))
        return {"tls.crt": cert.read_text(), "tls.key": key.read_text()}


def private_ca_and_server(subject_alt_name: str) -> dict[str, str]:
    """A private CA (`ca.crt`) and a server certificate it issued
    (`tls.crt`, `tls.key`) for `subject_alt_name` (e.g.
    `IP:127.0.0.1`): what a GitLab behind a company CA presents."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        f = {n: str(pathlib.Path(d, n)) for n in ("ca.crt", "ca.key", "tls.csr", "tls.crt", "tls.key", "ext")}
        _openssl("req", "-x509", *_P256, "-subj", "/CN=Example Private CA",
                 "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                 "-keyout", f["ca.key"], "-out", f["ca.crt"])
        _openssl("req", "-new", *_P256[:-2], "-subj", "/CN=gitlab", "-keyout", f["tls.key"], "-out", f["tls.csr"])
        pathlib.Path(f["ext"]).write_text(
            f"subjectAltName={subject_alt_name}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
        )
        _openssl("x509", "-req", "-in", f["tls.csr"], "-CA", f["ca.crt"], "-CAkey", f["ca.key"],
                 "-CAcreateserial", "-days", "2", "-extfile", f["ext"], "-out", f["tls.crt"])
        return {n: pathlib.Path(f[n]).read_text() for n in ("ca.crt", "tls.crt", "tls.key")}


# --- the binary -------------------------------------------------------------


@contextlib.contextmanager
def discovery_server(tls: dict[str, str] | None = None):
    """Serves the stand-in provider on 127.0.0.1, over https when `tls`
    holds `tls.crt` and `tls.key`; yields its issuer URL."""
    import ssl
    import tempfile
    import threading

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Discovery)
    scheme = "http"
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with tempfile.TemporaryDirectory() as d:
            cert, key = pathlib.Path(d, "tls.crt"), pathlib.Path(d, "tls.key")
            cert.write_text(tls["tls.crt"])
            key.write_text(tls["tls.key"])
            ctx.load_cert_chain(str(cert), str(key))
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    issuer = f"{scheme}://127.0.0.1:{server.server_address[1]}"
    server.RequestHandlerClass = type("ProviderAt", (Discovery,), {"issuer": issuer})
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield issuer
    finally:
        server.shutdown()
        server.server_close()


def write_file_source_config(root: pathlib.Path, issuer: str) -> tuple[int, int]:
    """Writes a tiny configuration (static workspaces file, `issuer` as the
    provider, loopback listeners on free ports) with its key, client secret
    and workspaces file into `root`; returns the HTTP and admin ports."""
    key = root / "key"
    key.write_text(KEY_A + "\n")
    secret = root / "client-secret"
    secret.write_text("not-a-real-secret\n")
    (root / "workspaces.yaml").write_text(
        "workspaces:\n"
        "  - id: '1'\n"
        "    name: ws-1\n"
        "    namespace: team-a\n"
        "    owner: {id: '42', username: alice}\n"
        "    hosts: [ws-1.workspaces.test]\n"
    )
    http_port, admin_port, grpc_port = free_port(), free_port(), free_port()
    (root / "config.yaml").write_text(
        "auth_host: workspaces.test\n"
        "workspace_domain: workspaces.test\n"
        "listen:\n"
        f"  http: 127.0.0.1:{http_port}\n"
        f"  admin: 127.0.0.1:{admin_port}\n"
        f"  grpc: 127.0.0.1:{grpc_port}\n"
        "oidc:\n"
        f"  issuer: {issuer}\n"
        "  client_id: workspace-gate\n"
        f"  client_secret_file: {secret}\n"
        "keys:\n"
        f"  files: [{key}]\n"
        "workspaces:\n"
        "  source: file\n"
        f"  file: {root / 'workspaces.yaml'}\n"
        "authorization:\n"
        "  mode: owner-annotation\n"
    )
    return http_port, admin_port


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Discovery(http.server.BaseHTTPRequestHandler):
    """Serves just enough of an OpenID provider for startup: the discovery
    document and an empty key set."""

    issuer = ""

    def do_GET(self):  # noqa: N802 (http.server naming)
        base = self.issuer
        if self.path == "/.well-known/openid-configuration":
            body = {
                "issuer": base,
                "authorization_endpoint": f"{base}/authorize",
                "token_endpoint": f"{base}/token",
                "userinfo_endpoint": f"{base}/userinfo",
                "jwks_uri": f"{base}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
            }
        elif self.path == "/jwks":
            body = {"keys": []}
        else:
            self.send_error(404)
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass




def gate_binary() -> pathlib.Path:
    """The workspace-gate binary: $WORKSPACE_GATE_BIN, else
    $CARGO_TARGET_DIR/debug, else target/debug. Raises with a clear message."""
    candidates = []
    if os.environ.get("WORKSPACE_GATE_BIN"):
        candidates.append(pathlib.Path(os.environ["WORKSPACE_GATE_BIN"]))
    else:
        if os.environ.get("CARGO_TARGET_DIR"):
            candidates.append(pathlib.Path(os.environ["CARGO_TARGET_DIR"]) / "debug" / "workspace-gate")
        candidates.append(REPO / "target" / "debug" / "workspace-gate")
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return c
    raise AssertionError(
        "workspace-gate binary not found (looked at "
        + ", ".join(str(c) for c in candidates)
        + "): run `cargo build` first, or point WORKSPACE_GATE_BIN at the binary"
    )


# --- laying out a rendered Deployment on disk ----------------------------------


class PodFiles:
    """The files a rendered Deployment's container would see, written under a
    root directory: each volumeMount's path P becomes <root>/P, filled from the
    rendered ConfigMaps and Secrets (or from `existing_secrets` for Secrets
    the user creates before installing). Paths in arguments and in the
    configuration are mapped the same way, and nothing else changes."""

    def __init__(
        self,
        root: pathlib.Path,
        objs: list[dict],
        existing_secrets: dict[str, dict[str, str]],
        existing_config_maps: dict[str, dict[str, str]] | None = None,
    ):
        self.root = root
        self.objs = objs
        self.deployment = one(objs, "Deployment")
        self.pod = self.deployment["spec"]["template"]["spec"]
        self.container = self.pod["containers"][0]
        self.existing = existing_secrets
        self.existing_config_maps = existing_config_maps or {}
        self.mounts = [m["mountPath"] for m in self.container.get("volumeMounts", [])]
        self._write_volumes()

    def host_path(self, container_path: str) -> str:
        """Maps a path inside the container to the file written for it."""
        for m in sorted(self.mounts, key=len, reverse=True):
            if container_path == m or container_path.startswith(m.rstrip("/") + "/"):
                return str(self.root) + container_path
        return container_path

    def _volume_data(self, volume: dict) -> dict[str, bytes]:
        if "configMap" in volume:
            name = volume["configMap"]["name"]
            rendered = find(self.objs, "ConfigMap", name)
            if rendered:
                data = {k: v.encode() for k, v in rendered[0].get("data", {}).items()}
            elif name in self.existing_config_maps:
                data = {k: v.encode() for k, v in self.existing_config_maps[name].items()}
            else:
                raise AssertionError(f"ConfigMap {name} is neither rendered nor given as existing")
            source = volume["configMap"]
        elif "secret" in volume:
            name = volume["secret"]["secretName"]
            rendered = find(self.objs, "Secret", name)
            if rendered:
                data = {k: base64.b64decode(v) for k, v in rendered[0].get("data", {}).items()}
                data.update({k: v.encode() for k, v in rendered[0].get("stringData", {}).items()})
            elif name in self.existing:
                data = {k: v.encode() for k, v in self.existing[name].items()}
            else:
                raise AssertionError(f"Secret {name} is neither rendered nor given as existing")
            source = volume["secret"]
        elif "emptyDir" in volume:
            return {}
        else:
            raise AssertionError(f"volume kind not handled by the test: {volume}")
        if "items" in source:
            picked = {}
            for item in source["items"]:
                assert item["key"] in data, f"volume {volume['name']}: key {item['key']} missing"
                picked[item["path"]] = data[item["key"]]
            return picked
        return data

    def _write_volumes(self) -> None:
        volumes = {v["name"]: v for v in self.pod.get("volumes", [])}
        for m in self.container.get("volumeMounts", []):
            volume = volumes[m["name"]]
            data = self._volume_data(volume)
            target = pathlib.Path(str(self.root) + m["mountPath"])
            if "subPath" in m:
                assert m["subPath"] in data, f"mount {m['name']}: subPath {m['subPath']} missing"
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data[m["subPath"]])
                target.chmod(0o444)
            else:
                target.mkdir(parents=True, exist_ok=True)
                for rel, content in data.items():
                    f = target / rel
                    f.parent.mkdir(parents=True, exist_ok=True)
                    f.write_bytes(content)
                    f.chmod(0o444)
        # The configuration file's own paths point into the mounts too.
        for m in self.container.get("volumeMounts", []):
            if m.get("subPath", "").endswith((".yaml", ".yml")):
                f = pathlib.Path(str(self.root) + m["mountPath"])
                config = yaml.safe_load(f.read_text())
                f.chmod(0o644)
                f.write_text(yaml.safe_dump(self._map_paths(config)))
                f.chmod(0o444)

    def _map_paths(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: self._map_paths(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._map_paths(v) for v in value]
        if isinstance(value, str) and value.startswith("/"):
            return self.host_path(value)
        return value

    def argv(self, binary: pathlib.Path) -> list[str]:
        """The container's command line with the binary and mapped paths."""
        args = self.container.get("command", [])[1:] + self.container.get("args", [])
        return [str(binary)] + [self.host_path(a) if a.startswith("/") else a for a in args]

    def env(self, pod_name: str = "gate-7d9c-abcde") -> dict[str, str]:
        """The container's environment: literal values and the downward API
        fields the chart uses."""
        fields = {"metadata.name": pod_name, "metadata.namespace": self.deployment["metadata"]["namespace"]}
        env = {"PATH": "/usr/bin:/bin"}
        for e in self.container.get("env", []):
            if "value" in e:
                env[e["name"]] = str(e["value"])
            elif "fieldRef" in e.get("valueFrom", {}):
                path = e["valueFrom"]["fieldRef"]["fieldPath"]
                assert path in fields, f"downward API field {path} not emulated by the test"
                env[e["name"]] = fields[path]
            else:
                raise AssertionError(f"env {e['name']}: source not emulated by the test: {e}")
        return env

    def config_path(self) -> str:
        args = self.container.get("args", [])
        return self.host_path(args[args.index("--config") + 1])


def run(argv: list[str], env: dict[str, str], cwd: str | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
