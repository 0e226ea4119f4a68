"""docker-compose.yml as Compose sees it: .env.example's values interpolated.

Only the interpolation forms the file uses are understood (`${NAME}`,
`${NAME:-default}`, `${NAME:?message}`, `$$`); anything else fails loudly.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.manifests import EXAMPLE_VALUES, ROOT

COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
_REFERENCE = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:-|:\?)(?P<arg>[^}]*))?\}|\$\$|\$")


def env_example(path: Path = ENV_EXAMPLE) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, f".env.example: not NAME=value: {line!r}"
            values[name.strip()] = value.strip()
    return values


def _strings(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [s for key, value in node.items() for s in _strings(key) + _strings(value)]
    if isinstance(node, list):
        return [s for item in node for s in _strings(item)]
    return [node] if isinstance(node, str) else []


def referenced() -> set[str]:
    """Every variable the compose file interpolates (comments do not count)."""
    return {m["name"] for text in _strings(raw()) for m in _REFERENCE.finditer(text) if m["name"]}


def interpolate(text: str, values: dict[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match["name"], match["op"], match["arg"]
        if name is None:
            raise AssertionError(f"unsupported interpolation in {text!r}")
        value = values.get(name, "")
        if op == ":-":
            return value or arg
        if op == ":?" and not value:
            raise AssertionError(f"compose would stop: {name} is unset ({arg})")
        return value

    return _REFERENCE.sub(replace, text)


def _interpolated(node: Any, values: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {key: _interpolated(value, values) for key, value in node.items()}
    if isinstance(node, list):
        return [_interpolated(item, values) for item in node]
    return interpolate(node, values) if isinstance(node, str) else node


def load(values: dict[str, str] | None = None) -> dict[str, Any]:
    """The compose file with `values` (default: .env.example, blanks filled)."""
    if values is None:
        values = {
            k: v or EXAMPLE_VALUES.get(k, f"example-{k.lower()}") for k, v in env_example().items()
        }
    document: dict[str, Any] = _interpolated(raw(), values)
    return document


def raw() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return document
