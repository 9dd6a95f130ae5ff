"""Reference text generated from the code, for the documentation site (docs/hooks.py).

Each function returns Markdown; the docs include it at build time, so a key or a
default mapping documented there is the one the code has.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from connectors.registry import connector_class


def default_mapping(kind: str) -> str:
    """A connector's default mapping, as the TOML a user would write to get it."""
    mapping = connector_class(kind).default_mapping
    if not mapping:
        return f"The `{kind}` connector has no default mapping: write one.\n"
    lines = ["```toml", f"[connectors.NAME.mapping]  # kind = {_toml(kind)}"]
    tables = {key: value for key, value in mapping.items() if isinstance(value, dict)}
    lines += [f"{key} = {_toml(value)}" for key, value in mapping.items() if key not in tables]
    for key, table in tables.items():
        lines += ["", f"[connectors.NAME.mapping.{key}]"]
        lines += [f"{_toml_key(name)} = {_toml(value)}" for name, value in table.items()]
    return "\n".join([*lines, "```", ""])


def connector_options(kind: str) -> str:
    """The keys of a connector's own options, one table row each."""
    return fields_table(connector_class(kind).Options, prefix="")


def fields_table(model: type[BaseModel], prefix: str) -> str:
    """A Markdown table of `model`'s fields: key, type, default, description."""
    rows = ["| key | type | default | description |", "| --- | --- | --- | --- |"]
    for name, field in model.model_fields.items():
        annotation = getattr(field.annotation, "__name__", None) or str(field.annotation)
        annotation = annotation.replace("typing.", "").replace("|", "\\|")
        if field.default is not PydanticUndefined:
            default = f"`{_toml(field.default)}`"
        elif field.default_factory is not None:
            default = f"`{_toml(field.default_factory())}`"  # type: ignore[call-arg]
        else:
            default = "required"
        description = (field.description or "").replace("\n", " ").replace("|", "\\|")
        rows.append(f"| `{prefix}{name}` | `{annotation}` | {default} | {description} |")
    return "\n".join([*rows, ""])


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "(unset)"
    if isinstance(value, dict):
        inner = ", ".join(f"{_toml_key(key)} = {_toml(item)}" for key, item in value.items())
        return "{ " + inner + " }" if inner else "{}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(str(value), ensure_ascii=False)


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)
