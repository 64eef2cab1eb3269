"""Validates Kubernetes objects against CRD fixtures (openAPIV3Schema).

usage: validate_crd.py <crd-dir> <object.yaml>...

Each object is matched to the CRD of its apiVersion and kind. The structural
schema is turned into JSON Schema: int-or-string and nullable are honoured,
int32/int64 formats become bounds, and objects with `properties` reject
unknown fields (unless x-kubernetes-preserve-unknown-fields). CEL rules
(x-kubernetes-validations) are not evaluated. Exit status 1 on any error.
"""
import glob
import os
import sys

try:
    import jsonschema
    import yaml
except ImportError as e:  # pragma: no cover
    sys.exit(f"missing Python package ({e}); run scripts/install-deps.sh "
             "(pip install -r tests/requirements.txt into .venv)")

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
DROP = {"description", "default", "nullable", "format", "example", "x-kubernetes-validations",
        "x-kubernetes-list-type", "x-kubernetes-list-map-keys", "x-kubernetes-map-type",
        "x-kubernetes-preserve-unknown-fields", "x-kubernetes-int-or-string",
        "x-kubernetes-embedded-resource"}


def convert(s):
    out = {}
    for k, v in s.items():
        if k == "properties":
            out[k] = {pk: convert(pv) for pk, pv in v.items()}
        elif k == "items":
            out[k] = convert(v)
        elif k == "additionalProperties" and isinstance(v, dict):
            out[k] = convert(v)
        elif k in ("allOf", "anyOf", "oneOf"):
            out[k] = [convert(x) for x in v]
        elif k == "not":
            out[k] = convert(v)
        elif k not in DROP:
            out[k] = v
    if s.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    fmt = s.get("format")
    if out.get("type") == "integer" and fmt in ("int32", "int64"):
        lo, hi = INT32 if fmt == "int32" else INT64
        out.setdefault("minimum", lo)
        out.setdefault("maximum", hi)
    if s.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if (out.get("type") == "object" and "properties" in out
            and "additionalProperties" not in out
            and not s.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


def load_crds(d):
    schemas = {}
    for f in sorted(glob.glob(os.path.join(d, "*.yaml"))):
        with open(f) as fh:
            crd = yaml.safe_load(fh)
        group = crd["spec"]["group"]
        kind = crd["spec"]["names"]["kind"]
        for v in crd["spec"]["versions"]:
            if v.get("served", True):
                schemas[(f"{group}/{v['name']}", kind)] = convert(v["schema"]["openAPIV3Schema"])
    return schemas


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    schemas = load_crds(sys.argv[1])
    failed = False
    for path in sys.argv[2:]:
        with open(path) as fh:
            docs = [d for d in yaml.safe_load_all(fh) if d]
        for doc in docs:
            key = (doc.get("apiVersion"), doc.get("kind"))
            schema = schemas.get(key)
            name = (doc.get("metadata") or {}).get("name")
            if schema is None:
                print(f"ERROR {path}: no CRD fixture for {key[0]} {key[1]}")
                failed = True
                continue
            errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(doc), key=lambda e: list(e.path))
            for e in errors:
                loc = ".".join(str(p) for p in e.path) or "(root)"
                print(f"ERROR {path}: {key[1]} {name}: {loc}: {e.message}")
                failed = True
            if not errors:
                print(f"PASS {path}: {key[1]} {name}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
