"""Installs charts/workspace-gate for real into a Kubernetes API server and
checks what the API server then holds.

    install_into.py KUBECONFIG NAMESPACE SCENARIO [--release NAME]

For one installation of tests/chart/scenarios.py (SCENARIOS), into an
existing NAMESPACE:

1. creates the Secrets and ConfigMaps the scenario expects to exist before
   `helm install` (EXISTING_SECRETS, EXISTING_CONFIG_MAPS), only those the
   rendered Deployment mounts and the chart does not create;
2. installs the chart with the Helm SDK (helm_python: a real install, not a
   render; no waiting for pods, which need a kubelet, but Helm's install
   fails when the API server refuses any object);
3. reads every object of the release back from the API server (plain HTTPS
   with the kubeconfig's token and CA), each through the resource the API
   server's discovery names for its kind;
4. lays out the Deployment's mounted files from the objects read back
   (chart_support.PodFiles) and runs the real binary's `check-config` with
   the Deployment's arguments and environment ($WORKSPACE_GATE_BIN, else
   $CARGO_TARGET_DIR/debug or target/debug).

Prints a JSON summary (names and kinds, never Secret contents) on stdout and
exits 0; on any failure prints what failed on stderr and exits 1.
"""

from __future__ import annotations

import argparse
import base64
import json
import pathlib
import ssl
import sys
import tempfile
import time
import urllib.error
import urllib.request

import chart_support as cs
import helm_python as helm
import yaml
from scenarios import EXISTING_CONFIG_MAPS, EXISTING_SECRETS, SCENARIOS


class Failure(Exception):
    """A check that failed; its message is what the user reads."""


class Api:
    """The API server of a kubeconfig's current context, over HTTPS with its
    bearer token and CA."""

    def __init__(self, kubeconfig: pathlib.Path):
        kc = yaml.safe_load(kubeconfig.read_text())
        context = next(c["context"] for c in kc["contexts"] if c["name"] == kc["current-context"])
        cluster = next(c["cluster"] for c in kc["clusters"] if c["name"] == context["cluster"])
        user = next(u["user"] for u in kc["users"] if u["name"] == context["user"])
        if "token" not in user:
            raise Failure(f"{kubeconfig}: the current context's user has no bearer token")
        self.server = cluster["server"].rstrip("/")
        self.token = user["token"]
        if "certificate-authority-data" in cluster:
            ca = base64.b64decode(cluster["certificate-authority-data"]).decode()
            self.tls = ssl.create_default_context(cadata=ca)
        elif "certificate-authority" in cluster:
            self.tls = ssl.create_default_context(cafile=cluster["certificate-authority"])
        else:
            self.tls = ssl.create_default_context()
        self._resources: dict[str, dict[str, dict]] = {}

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.server + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, context=self.tls, timeout=30) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            text = e.read().decode(errors="replace")
            try:
                return e.code, json.loads(text)
            except ValueError:
                return e.code, {"message": text}
        except OSError as e:
            raise Failure(f"{method} {self.server}{path}: {e}") from None

    def resource(self, api_version: str, kind: str) -> dict:
        """The API server's discovery entry for a kind (its plural name and
        whether it is namespaced)."""
        if api_version not in self._resources:
            prefix = f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}"
            status, doc = self.request("GET", prefix)
            if status != 200:
                raise Failure(f"the API server serves no {api_version} (discovery: {status} {doc.get('message', '')})")
            self._resources[api_version] = {
                r["kind"]: r for r in doc["resources"] if "/" not in r["name"]
            }
        found = self._resources[api_version].get(kind)
        if found is None:
            raise Failure(f"the API server has no kind {kind} in {api_version}")
        return found

    def path(self, api_version: str, kind: str, namespace: str, name: str = "") -> str:
        r = self.resource(api_version, kind)
        prefix = f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}"
        where = f"/namespaces/{namespace}" if r["namespaced"] else ""
        return f"{prefix}{where}/{r['name']}" + (f"/{name}" if name else "")

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict | None:
        status, doc = self.request("GET", self.path(api_version, kind, namespace, name))
        if status == 404:
            return None
        if status != 200:
            raise Failure(f"GET {kind} {namespace}/{name}: {status} {doc.get('message', '')}")
        return doc

    def create(self, obj: dict, namespace: str) -> None:
        status, doc = self.request("POST", self.path(obj["apiVersion"], obj["kind"], namespace), obj)
        if status not in (200, 201):
            raise Failure(
                f"creating {obj['kind']} {namespace}/{obj['metadata']['name']}: {status} {doc.get('message', '')}"
            )


def referenced(deployment: dict, kind: str) -> list[str]:
    """Names of the Secrets or ConfigMaps a Deployment's volumes mount."""
    key, field = ("secret", "secretName") if kind == "Secret" else ("configMap", "name")
    volumes = deployment["spec"]["template"]["spec"].get("volumes", [])
    return [v[key][field] for v in volumes if key in v]


def pre_existing(values: dict, release: str, namespace: str) -> list[dict]:
    """The objects a user creates before installing: what the Deployment
    mounts that the chart does not render, taken from EXISTING_SECRETS and
    EXISTING_CONFIG_MAPS (a name found in neither is an error)."""
    objs = cs.objects(cs.render(values, name=release, namespace=namespace))
    deployment = cs.one(objs, "Deployment")
    out = []
    for kind, given in (("Secret", EXISTING_SECRETS), ("ConfigMap", EXISTING_CONFIG_MAPS)):
        for name in referenced(deployment, kind):
            if cs.find(objs, kind, name):
                continue
            if name not in given:
                raise Failure(f"the Deployment mounts {kind} {name}, which the chart does not create and the scenario does not provide")
            obj = {"apiVersion": "v1", "kind": kind, "metadata": {"name": name, "namespace": namespace}}
            if kind == "Secret":
                obj["type"] = "kubernetes.io/tls" if "tls.crt" in given[name] else "Opaque"
                obj["stringData"] = given[name]
            else:
                obj["data"] = given[name]
            out.append(obj)
    return out


def install(kubeconfig: pathlib.Path, namespace: str, release: str, values: dict) -> dict:
    """`helm install` with the SDK; the release summary."""
    with helm.Config(kubeconfig_path=str(kubeconfig), namespace=namespace) as cfg:
        try:
            return cfg.install(str(cs.CHART_DIR), release, values, namespace=namespace, timeout=120)
        except helm.HelmError as e:
            raise Failure(f"helm install {release} into {namespace} failed: {e}") from None


def manifest_objects(manifest: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(manifest) if d]


def read_back(api: Api, objs: list[dict], namespace: str, release: str) -> list[dict]:
    """Every object as the API server holds it; fails naming each missing
    one or one Helm did not mark as the release's."""
    out, problems = [], []
    for o in objs:
        name = o["metadata"]["name"]
        ns = o["metadata"].get("namespace", namespace)
        live = api.get(o["apiVersion"], o["kind"], ns, name)
        if live is None:
            problems.append(f"{o['kind']} {ns}/{name}: not found on the API server")
            continue
        annotations = live["metadata"].get("annotations", {})
        if annotations.get("meta.helm.sh/release-name") != release:
            problems.append(f"{o['kind']} {ns}/{name}: not annotated as release {release}'s")
        # What the API server returns lacks apiVersion/kind on some paths.
        live.setdefault("apiVersion", o["apiVersion"])
        live.setdefault("kind", o["kind"])
        out.append(live)
    if problems:
        raise Failure("objects of the release missing or wrong on the API server:\n  " + "\n  ".join(problems))
    return out


def read_back_given(api: Api, created: list[dict], namespace: str) -> list[dict]:
    """The pre-existing objects as the API server holds them."""
    out = []
    for o in created:
        live = api.get("v1", o["kind"], namespace, o["metadata"]["name"])
        if live is None:
            raise Failure(f"{o['kind']} {namespace}/{o['metadata']['name']} vanished after creation")
        out.append(live)
    return out


def check_config(binary: pathlib.Path, objs: list[dict]) -> str:
    """Runs `workspace-gate check-config` as the Deployment would run
    `serve`, on files laid out from the objects the API server returned."""
    with tempfile.TemporaryDirectory(prefix="wg-install-") as d:
        pod = cs.PodFiles(pathlib.Path(d) / "pod", objs, existing_secrets={})
        argv = pod.argv(binary)
        if argv[1:2] != ["serve"]:
            raise Failure(f"the Deployment does not run `serve`: {argv[1:]}")
        argv[1] = "check-config"
        done = cs.run(argv, pod.env())
        if done.returncode != 0:
            raise Failure(
                f"check-config refused the installed configuration (exit {done.returncode}):\n{done.stdout}{done.stderr}"
            )
        return done.stdout.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kubeconfig", type=pathlib.Path)
    parser.add_argument("namespace")
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--release", default=cs.RELEASE, help="release name (default %(default)s)")
    args = parser.parse_args()
    started = time.monotonic()
    try:
        values, ready = SCENARIOS[args.scenario]
        if not ready:
            raise Failure(f"scenario {args.scenario} is not a complete installation (SCENARIOS marks it not ready)")
        binary = cs.gate_binary()
        api = Api(args.kubeconfig)
        if api.get("v1", "Namespace", "", args.namespace) is None:
            raise Failure(f"namespace {args.namespace} does not exist")
        created = pre_existing(values, args.release, args.namespace)
        for obj in created:
            api.create(obj, args.namespace)
        release = install(args.kubeconfig, args.namespace, args.release, values)
        status = release.get("status")
        if status != "deployed":
            raise Failure(f"release {args.release} is {status!r}, not deployed")
        rendered = manifest_objects(release["manifest"])
        if not rendered:
            raise Failure(f"release {args.release} has no objects")
        live = read_back(api, rendered, args.namespace, args.release)
        # The pre-existing objects come from the API server too.
        given = read_back_given(api, created, args.namespace)
        verdict = check_config(binary, live + given)
    except (Failure, AssertionError, helm.HelmError) as e:
        print(f"install_into: {args.scenario} into {args.namespace}: {e}", file=sys.stderr)
        return 1
    summary = {
        "scenario": args.scenario,
        "release": args.release,
        "namespace": args.namespace,
        "status": status,
        "chart": f"{release['chart_name']}-{release['chart_version']}",
        "pre_existing": [f"{o['kind']}/{o['metadata']['name']}" for o in created],
        "objects": [
            {
                "apiVersion": o["apiVersion"],
                "kind": o["kind"],
                "namespace": o["metadata"].get("namespace"),
                "name": o["metadata"]["name"],
                "uid": o["metadata"]["uid"],
            }
            for o in live
        ],
        "check_config": verdict,
        "seconds": round(time.monotonic() - started, 2),
    }
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
