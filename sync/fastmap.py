"""The declarative mapping compiled into one Python function per connector.

The general path (`Mapper._declarative`, then the canonical encoder) walks the
settings for every ticket: a loop over the field table, a method call per
value, a dict per task that the C encoder then sorts and walks. It was the
largest share of a backfill's CPU. `compile_fast_map` writes, once per mapper,
a function specialised to the connector's settings: each path is read with
dict lookups, templates are filled by concatenation, and the canonical JSON is
written directly, its keys sorted when the function is written.

The function takes the plain case only: a dict record, values that are
strings, integers, booleans, nulls, finite floats or lists of those, and
templates without format specs. Anything else, and anything that would be an
error, returns None: the general path then maps the ticket, so rare shapes
and every error message have one implementation. Whatever it returns is byte
for byte the payload the general path builds; `tests/sync/test_fastmap.py`
checks that over generated settings and records.

Not compiled: mappings with a hook (it needs the task as a dict) or a
`queue_uid` template (rare, and UUID parsing is its own rules).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import linecache
import math
from collections.abc import Callable, Mapping
from typing import Any

from connectors.base import SourceTicket
from connectors.records import MISSING, FieldPath
from sync.config import MappingSettings
from sync.mapping import (
    BUILT_ENCODER,
    PLAIN_JSON,
    CompiledMapping,
    TaskPayload,
    Template,
    content_hash,
    datetime_text,
    is_canonical_utc,
    task_uid,
)

FastMap = Callable[[SourceTicket], TaskPayload | None]
"""A ticket's payload, or None when the general path must map it."""

_Member = tuple[str, str, str | None]
"""A JSON object member: key, expression of its JSON text, and the variable whose
emptiness leaves it out (None: always there)."""

_encode_text = json.encoder.encode_basestring  # what the canonical encoder writes a str with


def compile_fast_map(
    namespace: str, mapping: CompiledMapping, settings: MappingSettings
) -> FastMap | None:
    """The fast path of `mapping` for the connector whose uid namespace is `namespace`.

    None when the mapping is not one it takes: a hook, a `queue_uid`, or a
    title or url template with a format spec.
    """
    if mapping.hook is not None or mapping.queue_uid is not None:
        return None
    writer = _Writer(namespace)
    if not writer.template("title", mapping.title):
        return None
    writer.line("if not title.strip():")
    writer.line("    return None")
    # (key, expression of its JSON text, the variable whose emptiness leaves it out)
    fields: list[_Member] = [("title", "_enc(title)", None)]
    if mapping.url is not None:
        if not writer.template("url", mapping.url):
            return None
        writer.line("url = url.strip()")
        fields.append(("url", "_enc(url)", "url"))
    fields.append((mapping.source_id_key, "_enc(source_id)", None))
    for index, (name, path) in enumerate(mapping.fields):
        fields.append((name, writer.custom_field(f"field_{index}", path), None))
    task: list[_Member] = [("archived", "archived", None), ("fields", "fields_json", None)]
    if mapping.status is not None:
        writer.status(mapping.status, mapping.status_map, settings.status_default)
        task.append(("external_status", "_enc(status)", None))
        if settings.set_status:
            task.append(("status", "_enc(status)", None))
    for target, path in mapping.datetimes:
        task.append((target, writer.datetime(target, path, mapping.zone), None))
    if mapping.assignee_email is not None:
        task.append(("assignee_email", writer.email(mapping.assignee_email), None))
    writer.line("uid = _task_uid(NAMESPACE, source_id)")
    task.append(("uid", "_enc(uid)", None))
    writer.line("archived = 'true' if ticket.deleted else 'false'")
    writer.line(f"fields_json = {_json_object(fields)}")
    writer.line(f"text = {_json_object(task)}")
    writer.line("try:")
    writer.line("    body = text.encode('utf-8')")
    writer.line("except UnicodeEncodeError:")
    writer.line("    return None  # a lone surrogate: the general path names the field")
    writer.line("return _TaskPayload(source_id, uid, ticket.cursor, body, _content_hash(body))")
    return writer.function()


class _Writer:
    """The source of one fast-path function, and the objects it refers to."""

    def __init__(self, namespace: str) -> None:
        self.lines = [
            "def fast_map(ticket):",
            "    record = ticket.record",
            "    if type(record) is not dict:",
            "        return None",
            "    source_id = ticket.source_id",
        ]
        self.globals: dict[str, Any] = {
            "MISSING": MISSING,
            "NAMESPACE": namespace,
            "_enc": _encode_text,
            "_task_uid": task_uid,
            "_content_hash": content_hash,
            "_TaskPayload": TaskPayload,
            "_template_text": _template_text,
            "_value_json": _value_json,
            "_datetime_json": _datetime_json,
            "_is_canonical_utc": is_canonical_utc,
        }

    def line(self, text: str) -> None:
        self.lines.append(f"    {text}")

    def constant(self, prefix: str, value: Any) -> str:
        name = f"_{prefix}{len(self.globals)}"
        self.globals[name] = value
        return name

    def read(self, variable: str, path: FieldPath) -> None:
        """Lines that set `variable` to `path.read(record)` (`record` is a dict)."""
        segments = path.path.split(".")
        key = repr(path.path)
        if len(segments) == 1:
            self.line(f"{variable} = record.get({key}, MISSING)")
            return
        read = self.constant("read", path.read)
        if len(segments) > 2:
            self.line(f"{variable} = {read}(record)")
            return
        # `a.b`: a flat key spelt so wins; else a dict under `a` answers; else the general walk.
        head, tail = (repr(segment) for segment in segments)
        self.line(f"{variable} = record.get({key}, MISSING)")
        self.line(f"if {variable} is MISSING:")
        self.line(f"    {variable} = record.get({head})")
        self.line(
            f"    {variable} = {variable}.get({tail}, MISSING) "
            f"if type({variable}) is dict else {read}(record)"
        )

    def template(self, variable: str, template: Template) -> bool:
        """Lines that set `variable` to the filled template; False if it has a format spec."""
        if any(spec for _literal, _path, spec in template.parts):
            return False
        pieces: list[str] = []
        for index, (literal, path, _spec) in enumerate(template.parts):
            if literal:
                pieces.append(repr(literal))
            if path is None:
                continue
            value = f"{variable}_{index}"
            self.read(value, path)
            if path.path == "source_id":
                self.line(f"if {value} is MISSING:")
                self.line(f"    {value} = source_id")
            self.line(f"if type({value}) is not str:")
            self.line(f"    {value} = _template_text({value})")
            self.line(f"    if {value} is None:")
            self.line("        return None")
            pieces.append(value)
        self.line(f"{variable} = {' + '.join(pieces) or repr('')}")
        return True

    def custom_field(self, variable: str, path: FieldPath) -> str:
        """Lines that set `variable` to the field's JSON text; returns the expression."""
        self.read(variable, path)
        self.line(f"if type({variable}) is str:")
        self.line(f"    {variable} = _enc({variable})")
        self.line("else:")
        self.line(f"    {variable} = _value_json({variable})")
        self.line(f"    if {variable} is None:")
        self.line("        return None")
        return variable

    def status(self, path: FieldPath, status_map: Mapping[str, str], default: str) -> None:
        table, fallback = self.constant("status_map", status_map), repr(default)
        self.read("status", path)
        self.line("if type(status) is str:")
        self.line(f"    status = {table}.get(status.casefold(), {fallback})")
        self.line("elif type(status) is int:")
        self.line(f"    status = {table}.get(str(status), {fallback})")
        self.line("elif status is MISSING or status is None:")
        self.line(f"    status = {fallback}")
        self.line("else:")
        self.line("    return None")

    def datetime(self, target: str, path: FieldPath, zone: dt.tzinfo) -> str:
        variable = f"{target}_json"
        self.read(variable, path)
        self.line(f"if type({variable}) is str and _is_canonical_utc({variable}):")
        self.line(f"    {variable} = _enc({variable})")
        self.line("else:")
        self.line(f"    {variable} = _datetime_json({variable}, {self.constant('zone', zone)})")
        self.line(f"    if {variable} is None:")
        self.line("        return None")
        return variable

    def email(self, path: FieldPath) -> str:
        self.read("email", path)
        self.line("if type(email) is str and '@' in email:")
        self.line("    email = _enc(email.strip())")
        self.line("elif email is MISSING or email is None or email == '':")
        self.line("    email = 'null'")
        self.line("else:")
        self.line("    return None")
        return "email"

    def function(self) -> FastMap:
        source = "\n".join(self.lines) + "\n"
        # A file name in linecache, so tracebacks and profilers show the lines. Named by the
        # source itself: a daemon compiles each connector's mapping every pass, and the same
        # mapping must take the same entry, not a new one each time.
        digest = hashlib.blake2b(source.encode(), digest_size=8).hexdigest()
        filename = f"<fragment-sync fast map {digest}>"
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        exec(compile(source, filename, "exec"), self.globals)  # noqa: S102 - our own source
        function: FastMap = self.globals["fast_map"]
        return function


def _json_object(members: list[_Member]) -> str:
    """An expression writing `members` as a JSON object with its keys sorted, no spaces."""
    ordered = sorted(members, key=lambda member: member[0])
    # Commas: every member after the first one that is always there writes one before
    # itself; an optional member ahead of that one writes one after itself.
    first = next(i for i, (_key, _value, unless_empty) in enumerate(ordered) if not unless_empty)
    pieces: list[str] = ["'{'"]
    for index, (key, value, unless_empty) in enumerate(ordered):
        name = f"{_encode_text(key)}:"
        if index < first:
            pieces.append(f"(({name!r} + {value} + ',') if {unless_empty} else '')")
        elif unless_empty:
            pieces.append(f"(({',' + name!r} + {value}) if {unless_empty} else '')")
        else:
            pieces += [repr(("," if index > first else "") + name), value]
    pieces.append("'}'")
    return f"''.join(({', '.join(pieces)}))"


def _template_text(value: Any) -> str | None:
    """A non-str template value as the general path writes it; None to leave it to that path."""
    if value is None:
        return ""
    kind = type(value)
    if kind is int or kind is float or kind is bool:
        return str(value)
    return None


def _value_json(value: Any) -> str | None:
    """A custom field's non-str value as canonical JSON; None to leave it to the general path."""
    if value is MISSING or value is None:
        return "null"
    kind = type(value)
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return int.__repr__(value)
    if kind is float:
        return float.__repr__(value) if math.isfinite(value) else None
    if kind is list and BUILT_ENCODER and all(map(PLAIN_JSON.__contains__, map(type, value))):
        return "".join(BUILT_ENCODER(value, 0))
    return None


def _datetime_json(value: Any, zone: dt.tzinfo) -> str | None:
    """A date-time value as JSON (`datetime_text`'s rules); None to leave it to the general path."""
    try:
        text = datetime_text(value, zone)
    except Exception:  # the general path raises it again, naming the field
        return None
    return "null" if text is None else _encode_text(text)
