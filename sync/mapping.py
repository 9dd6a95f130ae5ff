"""Mapping: a source ticket becomes a Fragment task payload.

Owns the declarative mapping (templates, paths, status table, snake_case
keys), the Python hook, the deterministic task uid and the canonical encoding
whose hash the diff compares. Does not decide what to push (that is
`sync.run`) and never touches the network or the state database.

Task uids follow Fragment's "Map IDs" guide: the md5 of a stable key, read as
a UUID. The key is `"{uid_namespace}#ticket#{source_id}"`; `uid_namespace`
defaults to the connector's name and is pinned in config so that renaming a
connector does not change every uid. This scheme is frozen: changing it would
duplicate every task.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
import string
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from connectors.base import Cursor, SourceTicket
from connectors.records import MISSING, FieldPath
from connectors.values import isoformat, parse_datetime
from sync.config import STATUSES, MappingSettings, callable_name, resolve_callable
from sync.errors import ConfigError, MappingError

MAX_DEPTH = 32
"""Custom field values nested deeper than this are refused (hostile input)."""

_CAMEL_ACRONYM = re.compile(r"([A-Z]+)([A-Z][a-z])")
_CAMEL = re.compile(r"([a-z0-9])([A-Z])")
_NOT_WORD = re.compile(r"[\W_]+")

Hook = Callable[[SourceTicket, dict[str, Any]], dict[str, Any] | None]

# One encoder for every task: `json.dumps` with options builds a new one per call.
_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)
# The C encoder behind `_CANONICAL`, called directly for the tasks the declarative mapping
# builds: `JSONEncoder.encode`'s Python wrappers were a fifth of the encoding's cost. Those
# tasks hold fresh values only, never a cycle, so it skips the circular-reference check; a
# hook's result goes through `_CANONICAL`, which keeps it.
_C_MAKE_ENCODER = getattr(json.encoder, "c_make_encoder", None)  # None without CPython's _json
BUILT_ENCODER = _C_MAKE_ENCODER and _C_MAKE_ENCODER(
    None, _CANONICAL.default, json.encoder.encode_basestring, None, ":", ",", True, False, False
)
PLAIN_JSON = frozenset((str, int, bool, type(None)))
"""Types a custom field value keeps as they are (`bool` is listed: its type is not int)."""


def task_uid(namespace: str, source_id: str) -> str:
    """The Fragment uid of ticket `source_id` of the connector whose namespace is `namespace`."""
    key = f"{namespace}#ticket#{source_id}"
    digest = hashlib.md5(key.encode("utf-8"), usedforsecurity=False).hexdigest()
    # str(uuid.UUID(digest)), spelt out: this runs once per ticket.
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:]}"


def snake_case(name: str) -> str:
    """`name` as a snake_case key: `ticketId` → `ticket_id`, `Country Code` → `country_code`.

    Raises `ValueError` when nothing is left (a key made only of punctuation).
    """
    text = _CAMEL_ACRONYM.sub(r"\1_\2", name)
    text = _CAMEL.sub(r"\1_\2", text)
    key = _NOT_WORD.sub("_", text).strip("_").lower()
    if not key:
        raise ValueError(f"{name!r} has no letters or digits to make a key from")
    return key


# Not frozen: one is built per ticket, and frozen dataclasses cost ~1 µs more each.
@dataclass(slots=True)
class TaskPayload:
    """One task ready to push: its canonical JSON `body` and that body's hash."""

    source_id: str
    uid: str
    cursor: Cursor
    body: bytes
    content_hash: str

    @classmethod
    def encode(
        cls, source_id: str, cursor: Cursor, task: Mapping[str, Any], *, built: bool = False
    ) -> TaskPayload:
        """Canonical encoding (sorted keys, no spaces), so equal tasks hash equal.

        `built`: the mapper built `task` itself (no hook touched it), so it can't hold a cycle.
        """
        if built and BUILT_ENCODER:
            text = "".join(BUILT_ENCODER(task, 0))
        else:
            text = _CANONICAL.encode(task)
        body = text.encode("utf-8")
        return cls(source_id, str(task["uid"]), cursor, body, content_hash(body))

    def task(self) -> dict[str, Any]:
        """The payload as a dict (for dry runs and failed-item records)."""
        decoded: dict[str, Any] = json.loads(self.body)
        return decoded


def content_hash(body: bytes) -> str:
    """The hash of a task's canonical body that the diff compares with the stored one."""
    return hashlib.blake2b(body, digest_size=16).hexdigest()


class Template:
    """A `str.format`-style template whose `{names}` are paths into the record."""

    def __init__(self, text: str) -> None:
        """Parse `text`; raises `ValueError` for unbalanced braces or a `!conversion`."""
        self.text = text
        self.parts: list[tuple[str, FieldPath | None, str]] = []
        try:
            for literal, name, spec, conversion in string.Formatter().parse(text):
                if conversion:
                    raise ValueError(f"conversion !{conversion} is not supported")
                if name is not None and not name:
                    raise ValueError("empty {} placeholder; name a field, e.g. {subject}")
                path = None if name is None else FieldPath(name)
                self.parts.append((literal, path, spec or ""))
        except ValueError as exc:
            raise ValueError(f"template {text!r}: {exc}") from None

    def render(self, record: Mapping[str, Any], source_id: str) -> str:
        """The text with every placeholder filled; raises `KeyError(path)` when one is absent.

        `{source_id}` is the ticket's id unless the record has a key of that name.
        """
        out: list[str] = []
        for literal, path, spec in self.parts:
            out.append(literal)
            if path is None:
                continue
            value = path.read(record)
            if type(value) is str and not spec:
                out.append(value)
                continue
            if value is MISSING:
                if path.path != "source_id":
                    raise KeyError(path.path)
                value = source_id
            if value is None:
                continue
            if isinstance(value, dt.datetime):
                value = isoformat(value)
            out.append(format(value, spec) if spec else str(value))
        return "".join(out)


def check_mapping(settings: MappingSettings, key: str, *, import_hook: bool = True) -> None:
    """Raise `ConfigError` naming the key if `settings` can never map a ticket.

    `import_hook` off, a `hook` is checked for its form only: importing it
    runs its code, which only a command that maps tickets needs.
    """
    _compile(settings, key, dt.UTC, import_hook)


@dataclass(frozen=True)
class CompiledMapping:
    """A mapping parsed once: templates split, paths split, keys normalised."""

    title: Template
    url: Template | None
    queue_uid: Template | None
    source_id_key: str
    fields: tuple[tuple[str, FieldPath], ...]
    status: FieldPath | None
    status_map: Mapping[str, str]
    datetimes: tuple[tuple[str, FieldPath], ...]
    """(task key, path) of due_at, external_created_at, external_updated_at when mapped."""
    zone: dt.tzinfo
    """Where the record's naive date-times are: the connector's `timezone`."""
    assignee_email: FieldPath | None
    hook: Hook | None


def _compile(
    settings: MappingSettings, key: str, zone: dt.tzinfo, import_hook: bool = True
) -> CompiledMapping:
    templates: dict[str, Template | None] = {}
    for name in ("title", "url", "queue_uid"):
        text = getattr(settings, name)
        try:
            templates[name] = Template(text) if text is not None else None
        except ValueError as exc:
            raise ConfigError(f"{key}.{name}", str(exc)) from None
    reserved = {"title": "title", "url": "url"}
    source_key = _field_key(settings.source_id_field, f"{key}.source_id_field")
    reserved[source_key] = "source_id_field"
    fields: list[tuple[str, str]] = []
    for name, path in settings.fields.items():
        normalised = _field_key(name, f"{key}.fields.{name}")
        if normalised in reserved:
            raise ConfigError(
                f"{key}.fields.{name}",
                f"becomes {normalised!r}, which {reserved[normalised]!r} already sets",
            )
        reserved[normalised] = name
        fields.append((normalised, path))
    hook: Hook | None = None
    if settings.hook:
        try:
            if import_hook:
                hook = resolve_callable(settings.hook)
            else:
                callable_name(settings.hook)
        except ValueError as exc:
            raise ConfigError(f"{key}.hook", str(exc)) from None
    title = templates["title"]
    assert title is not None
    return CompiledMapping(
        title=title,
        url=templates["url"],
        queue_uid=templates["queue_uid"],
        source_id_key=source_key,
        fields=tuple((name, FieldPath(path)) for name, path in fields),
        status=None if settings.status is None else FieldPath(settings.status),
        status_map={str(k).casefold(): v for k, v in settings.status_map.items()},
        datetimes=tuple(
            (target, FieldPath(path))
            for target in ("due_at", "external_created_at", "external_updated_at")
            if (path := getattr(settings, target)) is not None
        ),
        zone=zone,
        assignee_email=(
            None if settings.assignee_email is None else FieldPath(settings.assignee_email)
        ),
        hook=hook,
    )


def _field_key(name: str, key: str) -> str:
    try:
        return snake_case(name)
    except ValueError as exc:
        raise ConfigError(key, str(exc)) from None


class Mapper:
    """Maps the tickets of one connector; build it once per run.

    `zone`: where the records' naive date-times are (the connector's `timezone`
    option, as `connectors.values.record_zone` reads it); aware ones keep their
    offset. `fast`: map plain tickets through the function `sync.fastmap`
    compiles from the settings (the same payloads, at a fraction of the cost);
    off, every ticket takes the general path.
    """

    def __init__(
        self,
        connector: str,
        namespace: str,
        settings: MappingSettings,
        *,
        zone: dt.tzinfo = dt.UTC,
        fast: bool = True,
    ) -> None:
        self.connector = connector
        self.namespace = namespace
        self.settings = settings
        self._compiled = _compile(settings, f"connectors.{connector}.mapping", zone)
        self._fast = None
        if fast:
            from sync.fastmap import compile_fast_map  # it builds on this module

            self._fast = compile_fast_map(namespace, self._compiled, settings)

    def uid(self, source_id: str) -> str:
        return task_uid(self.namespace, source_id)

    def map(self, ticket: SourceTicket) -> TaskPayload:
        """The task for `ticket`; raises `MappingError` naming the field that failed."""
        if self._fast is not None:
            payload = self._fast(ticket)
            if payload is not None:
                return payload
        task = self._declarative(ticket)
        hook = self._compiled.hook
        if hook is not None:
            task = self._run_hook(ticket, task)
        try:
            return TaskPayload.encode(ticket.source_id, ticket.cursor, task, built=hook is None)
        except UnicodeEncodeError:
            field = _unencodable(task) or "hook"
            raise self._error(
                ticket, field, "text that UTF-8 can't carry (a lone surrogate)"
            ) from None
        except (TypeError, ValueError, RecursionError) as exc:  # only a hook puts these here
            raise self._error(ticket, "hook", f"result is not JSON: {exc}") from None

    def tombstone(self, ticket: SourceTicket) -> TaskPayload:
        """The smallest payload that archives a deleted ticket's task."""
        task = {"uid": self.uid(ticket.source_id), "archived": True}
        return TaskPayload.encode(ticket.source_id, ticket.cursor, task, built=True)

    def _declarative(self, ticket: SourceTicket) -> dict[str, Any]:
        compiled, record = self._compiled, ticket.record
        fields: dict[str, Any] = {"title": self._render(ticket, "title", compiled.title)}
        if not fields["title"].strip():
            raise self._error(ticket, "title", "is empty")
        if compiled.url is not None:
            url = self._render(ticket, "url", compiled.url).strip()
            if url:
                fields["url"] = url
        fields[compiled.source_id_key] = ticket.source_id
        for name, path in compiled.fields:
            value = path.read(record)
            kind = type(value)
            if kind in PLAIN_JSON:
                fields[name] = value
            elif kind is list and all(type(item) in PLAIN_JSON for item in value):
                fields[name] = list(value)  # a list of tags, the other common shape
            else:
                fields[name] = None if value is MISSING else self._json(ticket, name, value, 0)
        task: dict[str, Any] = {
            "uid": self.uid(ticket.source_id),
            "archived": ticket.deleted,
            "fields": fields,
        }
        if compiled.status is not None:
            status = self._status(ticket, compiled.status)
            task["external_status"] = status
            if self.settings.set_status:
                task["status"] = status
        for target, path in compiled.datetimes:
            task[target] = self._datetime(ticket, target, path)
        if compiled.assignee_email is not None:
            task["assignee_email"] = self._email(ticket, compiled.assignee_email)
        if compiled.queue_uid is not None:
            task["queue_uid"] = self._queue_uid(ticket, compiled.queue_uid)
        return task

    def _render(self, ticket: SourceTicket, field: str, template: Template) -> str:
        try:
            return template.render(ticket.record, ticket.source_id)
        except KeyError as exc:
            raise self._error(ticket, field, f"template key {exc.args[0]!r} is absent") from None
        except (TypeError, ValueError) as exc:
            raise self._error(ticket, field, f"can't format: {exc}") from None

    def _status(self, ticket: SourceTicket, path: FieldPath) -> str:
        value = path.read(ticket.record)
        if type(value) is str:  # the common case, ahead of the checks below
            return self._compiled.status_map.get(value.casefold(), self.settings.status_default)
        if value is MISSING or value is None:
            return self.settings.status_default
        if isinstance(value, dict | list):
            raise self._error(ticket, "status", f"expected a status value, got {_kind(value)}")
        return self._compiled.status_map.get(str(value).casefold(), self.settings.status_default)

    def _datetime(self, ticket: SourceTicket, field: str, path: FieldPath) -> str | None:
        try:
            return datetime_text(path.read(ticket.record), self._compiled.zone)
        except ValueError as exc:
            raise self._error(ticket, field, str(exc)) from None

    def _email(self, ticket: SourceTicket, path: FieldPath) -> str | None:
        value = path.read(ticket.record)
        if value is MISSING or value is None or value == "":
            return None
        if not isinstance(value, str) or "@" not in value:
            raise self._error(ticket, "assignee_email", f"{value!r} is not an email address")
        return value.strip()

    def _queue_uid(self, ticket: SourceTicket, template: Template) -> str | None:
        text = self._render(ticket, "queue_uid", template).strip()
        if not text:
            return None
        try:
            return str(uuid.UUID(text))
        except ValueError:
            raise self._error(ticket, "queue_uid", f"{text!r} is not a UUID") from None

    def _json(self, ticket: SourceTicket, field: str, value: Any, depth: int) -> Any:
        """`value` as plain JSON; raises `MappingError` for what JSON can't carry."""
        if value is None or isinstance(value, str | bool | int):
            return value
        if isinstance(value, float):
            if not math.isfinite(value):
                raise self._error(ticket, field, f"{value!r} is not a JSON number")
            return value
        if isinstance(value, dt.datetime):
            return isoformat(parse_datetime(value, self._compiled.zone))
        if isinstance(value, dt.date):
            return value.isoformat()
        if isinstance(value, Decimal):
            if not value.is_finite():
                raise self._error(ticket, field, f"{value!r} is not a JSON number")
            return int(value) if value == value.to_integral_value() else float(value)
        if depth >= MAX_DEPTH:
            raise self._error(ticket, field, f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, Mapping):
            return {str(k): self._json(ticket, field, v, depth + 1) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._json(ticket, field, v, depth + 1) for v in value]
        raise self._error(ticket, field, f"{_kind(value)} is not a JSON value")

    def _run_hook(self, ticket: SourceTicket, task: dict[str, Any]) -> dict[str, Any]:
        assert self._compiled.hook is not None
        uid = task["uid"]
        try:
            result = self._compiled.hook(ticket, task)
        except MappingError:
            raise
        except Exception as exc:
            raise self._error(ticket, "hook", f"{type(exc).__name__}: {exc}") from None
        if result is not None:
            task = result
        if not isinstance(task, dict):
            raise self._error(ticket, "hook", f"returned {_kind(task)}, not a task dict")
        if task.get("uid") != uid:
            raise self._error(ticket, "hook", "must not change the task uid")
        fields = task.get("fields")
        if not isinstance(fields, dict) or not isinstance(fields.get("title"), str):
            raise self._error(ticket, "hook", "result needs fields.title as a string")
        status = task.get("status")
        if status is not None and status not in STATUSES:
            raise self._error(ticket, "hook", f"status {status!r} is not one of {STATUSES}")
        return task

    def _error(self, ticket: SourceTicket, field: str, message: str) -> MappingError:
        return MappingError(self.connector, ticket.source_id, field, message)


def datetime_text(value: Any, zone: dt.tzinfo = dt.UTC) -> str | None:
    """A date-time field's value as a task carries it: UTC ISO 8601 text, or None if unset.

    A naive value is read in `zone`. Raises `ValueError` naming what is wrong with the value.
    """
    if value is MISSING or value is None or value == "":
        return None
    if type(value) is str and is_canonical_utc(value):
        return value  # already what isoformat(parse_datetime(value)) would give
    return isoformat(parse_datetime(value, zone))


def is_canonical_utc(text: str) -> bool:
    """Whether `text` is a valid `YYYY-MM-DDTHH:MM:SSZ`, the form `isoformat` writes."""
    if not (
        len(text) == 20
        and text[19] == "Z"
        and text[10] == "T"
        and text[4] == text[7] == "-"
        and text[13] == text[16] == ":"
    ):
        return False
    try:
        dt.datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def _holds_unencodable(value: Any) -> bool:
    """Whether `value` holds a string UTF-8 can't encode, at any depth.

    Searched with a stack, not recursion: the encoder takes nesting deeper
    than Python's recursion limit allows a recursive walk.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, Mapping):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _unencodable(task: Mapping[str, Any]) -> str | None:
    """The task key (a `fields` key for custom fields) holding text UTF-8 can't encode."""
    for key, value in task.items():
        if key == "fields" and isinstance(value, Mapping):
            for name, item in value.items():
                if _holds_unencodable(name) or _holds_unencodable(item):
                    return str(name)
        elif _holds_unencodable(value):
            return key
    return None


def _kind(value: Any) -> str:
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__
