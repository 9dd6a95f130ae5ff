"""sync.toml as a user writes it, read off the settings models: keys, TOML types, defaults.

One walk over the pydantic models (`sync.config.Settings`, each installed connector's
`Options`) serves both outputs: the JSON Schema editors validate and complete sync.toml
with (`python -m sync config schema`, shipped as `sync/sync-toml.schema.json`), and the
configuration reference (`sync.shell.reference`). Types and defaults are spelled the way
the loader reads them: durations as "30s", sizes as "16MiB". This module reads no file.
"""

from __future__ import annotations

import datetime as dt
import json
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import AwareDatetime, BaseModel, ByteSize, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from connectors.registry import available
from sync.config import ENV_PREFIX, ConnectorSettings, Settings

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "sync-toml.schema.json"
"""The schema shipped in the package; `REGENERATE` rewrites it."""
REGENERATE = "python -m sync config schema > sync/sync-toml.schema.json"
DRAFT = "http://json-schema.org/draft-07/schema#"

DURATION_PATTERN = r"^ *([0-9]+(\.[0-9]+)? *([mM][sS]|[sSmMhHdD]) *)+$"
"""What `connectors.values.parse_duration` reads: "90s", "5m", "1h30m", "250ms"."""
_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
_SIZES = (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10))


def _either_case(word: str) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" for c in word)


SIZE_PATTERN = (
    r"^ *[0-9]*\.?[0-9]+ *("
    + "|".join(_either_case(unit) for unit in sorted(ByteSize.byte_sizes, key=len, reverse=True))
    + r")? *$"
)
"""What pydantic's `ByteSize` reads: "16MiB", "512KiB", "1.5GB", a number of bytes."""


@dataclass(frozen=True)
class Key:
    """One key of a table of sync.toml."""

    name: str
    field: FieldInfo
    filled_by: str | None = None
    """Another key that gives this one when it is unset (`subdomain` gives `base_url`)."""

    @property
    def description(self) -> str:
        return " ".join((self.field.description or "").split())

    @property
    def required(self) -> bool:
        """Whether a table must give the key (itself, not through `filled_by`)."""
        return self.field.is_required() and self.filled_by is None

    def default(self) -> Any:
        """The default as a TOML value would say it; None when there is none (or it is unset)."""
        if self.field.default_factory is not None:
            value = self.field.default_factory()  # type: ignore[call-arg]
        elif self.field.default is PydanticUndefined:
            return None
        else:
            value = self.field.default
        return toml_value(value)

    def toml_type(self) -> str:
        """The type in words: "duration", "integer, 1 to 1000", "secret string"."""
        return _type_words(self.field.annotation, self.field.metadata)

    def schema(self) -> dict[str, Any]:
        """The key's JSON Schema, with its description and default."""
        schema = value_schema(self.field.annotation, self.field.metadata)
        if self.description:
            schema = {"description": self.description, **schema}
        default = self.default()
        if default is not None and default != {}:
            schema["default"] = default
        return schema

    def tables(self) -> list[type[BaseModel]]:
        """The models this key's value is a table of (several: one per `type` it may take)."""
        return list(_models(self.field.annotation))


def keys(model: type[BaseModel]) -> list[Key]:
    """The keys of `model`'s table, in the model's order."""
    return [Key(name, field) for name, field in model.model_fields.items()]


def common_connector_keys() -> list[Key]:
    """The keys every `[connectors.NAME]` table takes, whatever its kind."""
    return keys(ConnectorSettings)


def kind_keys(kind: str) -> list[Key]:
    """The keys of connector `kind`'s own options (those the common keys don't already hold)."""
    options = available()[kind].Options
    site = getattr(options, "site_option", None)
    common = set(ConnectorSettings.model_fields)
    return [
        Key(key.name, key.field, site[0] if site and key.name == "base_url" else None)
        for key in keys(options)
        if key.name not in common
    ]


def sections() -> Iterator[tuple[str, Key, type[BaseModel]]]:
    """The top-level tables but `[connectors]`: name, the `Settings` key, its model."""
    for key in keys(Settings):
        models = key.tables()
        if key.name != "connectors" and models:
            yield key.name, key, models[0]


def environment_variable(*parts: str) -> str:
    """The variable that sets a dotted key: `fragment.token` is `SYNC_FRAGMENT__TOKEN`."""
    return ENV_PREFIX + "__".join(part.upper() for part in parts)


def sync_toml_schema() -> dict[str, Any]:
    """The JSON Schema (draft-07) of a whole sync.toml, with every installed connector kind."""
    properties: dict[str, Any] = {}
    for name, key, model in sections():
        properties[name] = {"description": key.description, **model_schema(model)}
    connectors = {key.name: key for key in keys(Settings)}["connectors"]
    properties["connectors"] = {
        "description": connectors.description,
        "type": "object",
        "additionalProperties": connector_schema(),
    }
    return {
        "$schema": DRAFT,
        "title": "sync.toml",
        "description": "The configuration of fragment-sync (generated by: python -m sync config "
        "schema).",
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }


def connector_schema() -> dict[str, Any]:
    """A `[connectors.NAME]` table: the common keys, plus the keys of the kind it names.

    One branch per kind, each closed to other keys, so a key that belongs to another
    kind, or to none, is refused. The branches are `if kind = K then ...`, not a `oneOf`:
    a validator then reports the wrong key of the kind named (`'curser_field' was
    unexpected`), where a `oneOf` says only that no branch matched.
    """
    common = {key.name: key.schema() for key in common_connector_keys()}
    kinds = sorted(available())
    branches = []
    for kind in kinds:
        own = kind_keys(kind)
        branch_properties = {**common, **{key.name: key.schema() for key in own}}
        branch_properties["kind"] = {**common["kind"], "enum": [kind]}
        branch_properties["kind"].pop("type", None)
        branch: dict[str, Any] = {
            "title": f'kind = "{kind}"',
            "description": available()[kind].summary,
            "type": "object",
            "properties": branch_properties,
            "required": ["kind", *(key.name for key in own if key.required)],
            "additionalProperties": False,
        }
        either = [[key.name, key.filled_by] for key in own if key.filled_by]
        if either:
            branch["allOf"] = [
                {"anyOf": [{"required": [name]} for name in pair]} for pair in either
            ]
        branches.append(branch)
    properties = dict(common)
    properties["kind"] = {**common["kind"], "enum": kinds}
    properties["kind"].pop("type", None)
    return {
        "type": "object",
        "properties": properties,
        "required": ["kind"],
        "allOf": [
            {"if": {"properties": {"kind": {"const": kind}}, "required": ["kind"]}, "then": branch}
            for kind, branch in zip(kinds, branches, strict=True)
        ],
    }


def model_schema(model: type[BaseModel]) -> dict[str, Any]:
    """A table of `model`'s keys; closed to other keys unless the model allows extras."""
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {key.name: key.schema() for key in keys(model)},
    }
    required = [key.name for key in keys(model) if key.required]
    if required:
        schema["required"] = required
    if model.model_config.get("extra") == "forbid":
        schema["additionalProperties"] = False
    return schema


def value_schema(annotation: Any, metadata: list[Any]) -> dict[str, Any]:
    """The JSON Schema of a value of type `annotation` with constraints `metadata`."""
    origin = get_origin(annotation)
    arguments = get_args(annotation)
    if origin is Annotated:
        return value_schema(arguments[0], [*metadata, *arguments[1:]])
    if origin in (Union, types.UnionType):
        options = [a for a in arguments if a is not type(None)]  # TOML has no null: leave it out
        if len(options) == 1:
            return value_schema(options[0], metadata)
        return {
            "oneOf" if _models(annotation) else "anyOf": [
                value_schema(option, metadata) for option in options
            ]
        }
    if origin is Literal:
        return {"enum": list(arguments)}
    if origin is list:
        return {
            "type": "array",
            "items": value_schema(arguments[0], []),
            **_bounds(metadata, "Items"),
        }
    if origin is dict:
        return {"type": "object", "additionalProperties": value_schema(arguments[1], [])}
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return model_schema(annotation)
    if annotation is bool:
        return {"type": "boolean"}
    if annotation is ByteSize:
        return {
            "anyOf": [
                {"type": "string", "pattern": SIZE_PATTERN},
                {"type": "integer", **_bounds(metadata)},
            ]
        }
    if annotation is int:
        return {"type": "integer", **_bounds(metadata)}
    if annotation is float:
        return {"type": "number", **_bounds(metadata)}
    if annotation is dt.timedelta:
        return {
            "anyOf": [
                {"type": "string", "pattern": DURATION_PATTERN},
                {"type": "number", "minimum": 0},
            ]
        }
    if annotation in (dt.datetime, AwareDatetime):
        return {"type": "string", "format": "date-time"}
    if annotation in (str, SecretStr, Path):
        return {"type": "string", **_bounds(metadata, "Length")}
    raise TypeError(f"no TOML spelling for {annotation!r}: teach sync.shell.schema")


def toml_value(value: Any) -> Any:
    """`value` as a TOML file writes it: durations "30s", sizes "16MiB", tables as dicts.

    None (an unset key) stays None.
    """
    if isinstance(value, BaseModel):
        return toml_value(value.model_dump(exclude_defaults=True))
    if isinstance(value, dt.timedelta):
        return duration_text(value)
    if isinstance(value, ByteSize):
        return size_text(int(value))
    if isinstance(value, SecretStr):
        return "**********"
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): toml_value(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [toml_value(item) for item in value]
    return value


def duration_text(value: dt.timedelta) -> str:
    """`value` as the loader reads it: "5m", "1h30m", "250ms", "0s"."""
    milliseconds = round(value.total_seconds() * 1000)
    seconds, rest = divmod(milliseconds, 1000)
    parts = []
    for unit, size in _UNITS:
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    if rest:
        parts.append(f"{rest}ms")
    return "".join(parts) or "0s"


def size_text(size: int) -> str | int:
    """`size` bytes as "16MiB" when a whole number of KiB, MiB or GiB; else the number."""
    for unit, bytes_ in _SIZES:
        if size and size % bytes_ == 0:
            return f"{size // bytes_}{unit}"
    return size


def schema_text() -> str:
    """The schema as `python -m sync config schema` prints it and the package ships it."""
    return json.dumps(sync_toml_schema(), indent=2, ensure_ascii=False) + "\n"


def _models(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if get_origin(annotation) in (Union, types.UnionType, Annotated):
        return [model for argument in get_args(annotation) for model in _models(argument)]
    return []


def _bounds(metadata: list[Any], length: str = "Length") -> dict[str, Any]:
    """JSON Schema keywords for the constraints in `metadata` (`Field(ge=…, min_length=…)`).

    `length`: how a length bound is named for this type (`minLength`, `minItems`).
    """
    words = {
        "ge": "minimum",
        "le": "maximum",
        "gt": "exclusiveMinimum",
        "lt": "exclusiveMaximum",
        "pattern": "pattern",
    }
    found: dict[str, Any] = {}
    for item in metadata:
        for attribute, keyword in words.items():
            value = getattr(item, attribute, None)
            if value is not None:
                found[keyword] = value
        for bound in ("min", "max"):
            value = getattr(item, f"{bound}_length", None)
            if value is not None:
                found[f"{bound}{length}"] = value
    return found


def _type_words(annotation: Any, metadata: list[Any]) -> str:
    origin = get_origin(annotation)
    arguments = get_args(annotation)
    if origin is Annotated:
        return _type_words(arguments[0], [*metadata, *arguments[1:]])
    if origin in (Union, types.UnionType):
        if _models(annotation):
            return "table"
        options = [a for a in arguments if a is not type(None)]
        return " or ".join(_type_words(option, metadata) for option in options)
    if origin is Literal:
        return " or ".join(json.dumps(value) for value in arguments)
    if origin is list:
        return f"array of {_plural(_type_words(arguments[0], []))}"
    if origin is dict:
        return f"table of {_plural(_type_words(arguments[1], []))}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "table"
    words = {
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        Path: "path",
        SecretStr: "secret string",
        dt.timedelta: "duration",
        ByteSize: "size",
        dt.datetime: "date-time",
        AwareDatetime: "date-time",
    }
    word = words.get(annotation, getattr(annotation, "__name__", str(annotation)))
    bounds = _bounds(metadata)
    low = bounds.get("minimum", bounds.get("exclusiveMinimum"))
    high = bounds.get("maximum", bounds.get("exclusiveMaximum"))
    if annotation in (int, float, ByteSize) and (low is not None or high is not None):
        if "exclusiveMinimum" in bounds and high is None:
            return f"{word} > {low}"
        if high is None:
            shown = size_text(low) if annotation is ByteSize and isinstance(low, int) else low
            return f"{word} ≥ {shown}"
        if low is None:
            return f"{word} ≤ {high}"
        return f"{word}, {low} to {high}"
    return word


def _plural(words: str) -> str:
    if words.startswith(("array", "table", '"')) or " or " in words:
        return words
    return words + "s"
