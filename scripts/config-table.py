#!/usr/bin/env python3
"""Prints the configuration reference table from src/config/keys.rs (KEYS).

The README's table is this output; tests/docs.rs checks that every key is
documented there.
"""
import re
import sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent
src = (root / "src/config/keys.rs").read_text()
rows = re.findall(r'k\(\s*"([^"]+)",\s*"([^"]*)",\s*"((?:[^"\\]|\\.)*)"\s*,?\s*\)', src)
print("| key | default | environment | meaning |")
print("|---|---|---|---|")
for key, default, doc in rows:
    env = "WORKSPACE_GATE_" + key.replace(".", "_").replace("-", "_").upper()
    default = f"`{default}`" if default else "(none)"
    doc = doc.replace('\\"', '"')
    print(f"| `{key}` | {default} | `{env}` | {doc} |")
