"""KEDA's CRD schemas as JSON Schemas that reject unknown keys.

A CRD's `openAPIV3Schema` is nearly JSON Schema. Three differences matter:
`x-kubernetes-int-or-string` (an integer or a string), `nullable`, and the
API server's pruning of unknown fields, which would let a misspelt key
through silently. Here an object with declared properties admits no others,
unless the CRD says `x-kubernetes-preserve-unknown-fields`.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMAS = Path(__file__).parent / "schemas" / "keda-v2.20.2"
KEDA_GROUP = "keda.sh"


def strict(node: Any) -> Any:
    if isinstance(node, list):
        return [strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: strict(value) for key, value in node.items()}
    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if out.pop("nullable", False) and "type" in out:
        out["type"] = [out["type"], "null"]
    preserve = out.get("x-kubernetes-preserve-unknown-fields", False)
    if "properties" in out and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    return out


@cache
def validators() -> dict[tuple[str, str], jsonschema.protocols.Validator]:
    """(apiVersion, kind) -> a validator for that KEDA kind."""
    found: dict[tuple[str, str], jsonschema.protocols.Validator] = {}
    for path in sorted(SCHEMAS.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = strict(version["schema"]["openAPIV3Schema"])
            jsonschema.Draft7Validator.check_schema(schema)
            found[(f"{group}/{version['name']}", kind)] = jsonschema.Draft7Validator(schema)
    return found


def errors(obj: dict[str, Any]) -> list[str]:
    """Every way `obj` breaks its KEDA CRD's schema (empty when valid)."""
    validator = validators().get((obj["apiVersion"], obj["kind"]))
    if validator is None:
        return [f"no KEDA schema for {obj['apiVersion']} {obj['kind']}"]
    return [
        f"{'.'.join(str(p) for p in error.absolute_path) or '<root>'}: {error.message}"
        for error in validator.iter_errors(obj)
    ]
