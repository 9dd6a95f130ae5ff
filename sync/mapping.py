"""Mapping: a source ticket becomes a Fragment task payload.

Runs a connector's mapping spec (`sync.spec`: templates, paths, status table,
snake_case keys, the Python hook) on its tickets, and owns the deterministic
task uid and the canonical encoding whose hash the diff compares. Does not
decide what to push (that is the diff's job), never touches the network or
the state database, and reads no configuration beyond the spec it is given.

Task uids follow Fragment's "Map IDs" guide: the md5 of a stable key, read as
a UUID. The key is `"{uid_namespace}#ticket#{source_id}"`; `uid_namespace`
defaults to the connector's name and is pinned in config so that renaming a
connector does not change every uid. This scheme is frozen: changing it would
duplicate every task. So is the canonical encoding: the state stores each
task's content hash, and a changed byte would push every ticket again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import unicodedata
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from connectors.base import Cursor, SourceComment, SourceTicket
from connectors.records import MISSING
from connectors.values import isoformat, parse_datetime
from sync.errors import MappingError, SkipTicket
from sync.paths import MappingPath, PathNotReadable, Read
from sync.spec import STATUSES, DateOnly, MappingSettings, ParsedMapping, Template, parse_mapping

MAX_DEPTH = 32
"""Custom field values nested deeper than this are refused (hostile input)."""

# One encoder for every task: `json.dumps` with options builds a new one per call.
_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)
# The C encoder behind `_CANONICAL`, called directly for the tasks the declarative mapping
# builds: `JSONEncoder.encode`'s Python wrappers were a fifth of the encoding's cost. Those
# tasks hold fresh values only, never a cycle, so it skips the circular-reference check; a
# hook's result goes through `_CANONICAL`, which keeps it.
_C_MAKE_ENCODER = getattr(json.encoder, "c_make_encoder", None)  # None without CPython's _json
_BUILT_ENCODER = _C_MAKE_ENCODER and _C_MAKE_ENCODER(
    None, _CANONICAL.default, json.encoder.encode_basestring, None, ":", ",", True, False, False
)
_PLAIN_JSON = frozenset((str, int, bool, type(None)))
"""Types a custom field value keeps as they are (`bool` is listed: its type is not int)."""

Value = Callable[[Any, str], Any]
"""One task value from (record, source id); raises `_Invalid` naming the field."""

People = Mapping[str, str | None]
"""Resolved assignees: source user id to email, None for one that has none (`sync.people`)."""
NOBODY: People = MappingProxyType({})
SUMMARY_FIELDS = ("comment_count", "last_comment_at", "last_comment_author", "last_comment")
"""The custom fields the conversation's summary sets (`CommentSummary`)."""
ELLIPSIS = "\u2026"


def task_uid(namespace: str, source_id: str) -> str:
    """The Fragment uid of ticket `source_id` of the connector whose namespace is `namespace`."""
    key = f"{namespace}#ticket#{source_id}"
    digest = hashlib.md5(key.encode("utf-8"), usedforsecurity=False).hexdigest()
    # str(uuid.UUID(digest)), spelt out: this runs once per ticket.
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:]}"


# Not frozen: one is built per ticket, and frozen dataclasses cost ~1 µs more each.
@dataclass(slots=True)
class TaskPayload:
    """One task ready to push: its canonical JSON `body` and that body's hash."""

    source_id: str
    uid: str
    cursor: Cursor
    body: bytes
    content_hash: str
    archived: bool = False
    """It archives the task: a deletion's, a tombstone, or a mapping that says so."""
    sides_hash: str | None = None
    """The hash of the status and assignee it sets (`sides_hash`): what two-way sync
    compares Fragment's task with, to tell an operator's change from this push's echo."""

    @classmethod
    def encode(
        cls, source_id: str, cursor: Cursor, task: Mapping[str, Any], *, built: bool = False
    ) -> TaskPayload:
        """Canonical encoding (sorted keys, no spaces), so equal tasks hash equal.

        `built`: the mapper built `task` itself (no hook touched it), so it can't hold a cycle.
        """
        if built and _BUILT_ENCODER:
            text = "".join(_BUILT_ENCODER(task, 0))
        else:
            text = _CANONICAL.encode(task)
        body = text.encode("utf-8")
        archived = task.get("archived") is True
        sides = sides_hash(task.get("status"), task.get("assignee_email"))
        return cls(source_id, str(task["uid"]), cursor, body, content_hash(body), archived, sides)

    def task(self) -> dict[str, Any]:
        """The payload as a dict (for dry runs and failed-item records)."""
        decoded: dict[str, Any] = json.loads(self.body)
        return decoded


def content_hash(body: bytes) -> str:
    """The hash of a task's canonical body that the diff compares with the stored one."""
    return hashlib.blake2b(body, digest_size=16).hexdigest()


def sides_hash(status: Any, assignee_email: Any) -> str:
    """The hash of a task's status and assignee, the fields two-way sync writes back.

    The same whether built from a payload (`assignee_email`) or from Fragment's read
    model (its assignee's `email`): an email in any case hashes alike.
    """
    email = assignee_email.casefold() if isinstance(assignee_email, str) else ""
    text = f"{status if isinstance(status, str) else ''}\x00{email}"  # once per ticket pushed
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


@dataclass(frozen=True, slots=True)
class CommentSummary:
    """How a ticket's comments become the summary fields of its task (`SUMMARY_FIELDS`).

    `excerpt`: characters of the last comment kept in `last_comment` (0: the
    key is left out); `private`: private comments count too. Built from
    `[connectors.NAME.conversation]` when the connector reads comments.
    """

    excerpt: int = 280
    private: bool = False

    def fields(self, comments: Sequence[SourceComment]) -> dict[str, Any]:
        """The summary fields of a ticket with `comments` (oldest first, as read).

        Without a comment that counts: `comment_count` 0 and the others None,
        so that Fragment, which merges `fields` key by key, forgets a last
        comment deleted at the source. The last comment is the latest
        `created_at` (the source's order among equals).
        """
        shown = comments if self.private else [c for c in comments if c.public]
        last: SourceComment | None = None
        for comment in shown:
            if last is None or comment.created_at >= last.created_at:
                last = comment
        fields: dict[str, Any] = {
            "comment_count": len(shown),
            "last_comment_at": None if last is None else isoformat(last.created_at),
            "last_comment_author": None if last is None else (last.author or last.author_id),
        }
        if self.excerpt:
            fields["last_comment"] = None if last is None else excerpt(last.body, self.excerpt)
        return fields


def excerpt(text: str, limit: int) -> str:
    """`text` with its whitespace collapsed, cut to at most `limit` characters.

    A cut ends at a word's end where one falls in the last third of the room,
    never between a character and its combining marks, and is marked with "…"
    (which counts in `limit`).
    """
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    room = limit - 1  # for the ellipsis
    cut = room
    space = text.rfind(" ", 0, room + 1)
    if space >= room * 2 // 3:
        cut = space
    while cut > 0 and unicodedata.combining(text[cut]):
        cut -= 1
    return text[:cut].rstrip() + ELLIPSIS


class _Invalid(Exception):
    """A record value the mapping can't carry: a `MappingError` before the ticket is named."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(field, message)
        self.field = field
        self.message = message


class Mapper:
    """Maps the tickets of one connector; build it once per run.

    The spec is resolved once, here, into readers and small functions per task
    value, so mapping a ticket runs no lookup of the settings and no check
    that could have been made in advance. `zone`: where the records' naive
    date-times are (the connector's `timezone` option, as
    `connectors.values.record_zone` reads it); aware ones keep their offset.
    `comments`: the summary fields a ticket whose comments were read gets
    (None: the connector reads none); a ticket with `comments` None gets none.
    Raises `ConfigError` naming the key under `connectors.NAME.mapping` if the
    spec can never map a ticket (configuration loading has checked that already).
    """

    def __init__(
        self,
        connector: str,
        namespace: str,
        settings: MappingSettings,
        *,
        zone: dt.tzinfo = dt.UTC,
        comments: CommentSummary | None = None,
    ) -> None:
        self.connector = connector
        self.namespace = namespace
        spec = parse_mapping(settings, f"connectors.{connector}.mapping")
        self._hook = spec.hook
        self._title = _renderer(spec.title, "title")
        self._url = None if spec.url is None else _renderer(spec.url, "url")
        self._source_id_key = spec.source_id_key
        self._fields: tuple[tuple[str, Read], ...] = tuple(
            (name, _reader(path, name)) for name, path in spec.fields
        )
        self._zone = zone
        self._values = _task_values(spec, zone)
        self._comments = comments
        self._assignee = None if spec.assignee is None else _reader(spec.assignee, "assignee")

    @property
    def resolves_assignees(self) -> bool:
        """Whether the mapping names the assignee by a source user id (`mapping.assignee`)."""
        return self._assignee is not None

    def assignee_id(self, ticket: SourceTicket) -> str | None:
        """The source user id of `ticket`'s assignee, as text; None when it has none.

        None too when the mapping reads no `assignee`, or the value is no user
        id (an object): mapping the ticket then fails naming the field.
        """
        if self._assignee is None:
            return None
        try:
            return _user_id(self._assignee(ticket.record))
        except _Invalid:
            return None

    def uid(self, source_id: str) -> str:
        return task_uid(self.namespace, source_id)

    def map(self, ticket: SourceTicket, people: People = NOBODY) -> TaskPayload:
        """The task for `ticket`; raises `MappingError` naming the field that failed.

        `people`: the emails of the assignees of the tickets being mapped, by
        source user id, for a mapping with `assignee` (`sync.people` resolves
        them); an id it lacks, or maps to None, leaves the task unassigned.
        """
        try:
            task = self._declarative(ticket, people)
        except _Invalid as exc:
            raise self._error(ticket, exc.field, exc.message) from None
        hook = self._hook
        if hook is not None:
            task = self._run_hook(hook, ticket, task)
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

    def _declarative(self, ticket: SourceTicket, people: People) -> dict[str, Any]:
        """The task the spec builds from `ticket`; raises `_Invalid` naming the field."""
        record, source_id = ticket.record, ticket.source_id
        title = self._title(record, source_id)
        if not title.strip():
            raise _Invalid("title", "is empty")
        fields: dict[str, Any] = {"title": title}
        if self._url is not None:
            url = self._url(record, source_id).strip()
            if url:
                fields["url"] = url
        fields[self._source_id_key] = source_id
        for name, read in self._fields:
            value = read(record)
            kind = type(value)
            if kind in _PLAIN_JSON:
                fields[name] = value
            elif kind is list and all(type(item) in _PLAIN_JSON for item in value):
                fields[name] = list(value)  # a list of tags, the other common shape
            else:
                fields[name] = None if value is MISSING else _json(name, value, 0, self._zone)
        if self._comments is not None and ticket.comments is not None:
            for name, value in self._comments.fields(ticket.comments).items():
                fields.setdefault(name, value)  # a field the mapping names itself wins
        task: dict[str, Any] = {
            "uid": task_uid(self.namespace, source_id),
            "archived": ticket.deleted,
            "fields": fields,
        }
        for keys, value_of in self._values:
            value = value_of(record, source_id)
            for key in keys:
                task[key] = value
        if self._assignee is not None and task.get("assignee_email") is None:
            # `assignee_email`'s path wins where it gives an address.
            user_id = _user_id(self._assignee(record))
            task["assignee_email"] = None if user_id is None else people.get(user_id)
        return task

    def _run_hook(
        self, hook: Callable[..., Any], ticket: SourceTicket, task: dict[str, Any]
    ) -> dict[str, Any]:
        uid = task["uid"]
        try:
            result = hook(ticket, task)
        except SkipTicket:  # the hook's own, naming its field
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


def _task_values(spec: ParsedMapping, zone: dt.tzinfo) -> tuple[tuple[tuple[str, ...], Value], ...]:
    """The task's keys beside `uid`, `archived` and `fields`, each with its value's function.

    In the order a hook sees them: status, the date-times, assignee, queue.
    """
    values: list[tuple[tuple[str, ...], Value]] = []
    if spec.status is not None:
        keys = ("external_status", "status") if spec.settings.set_status else ("external_status",)
        values.append((keys, _status(spec.status, spec.status_map, spec.settings.status_default)))
    date_only = spec.date_only
    if date_only.zone is None:
        date_only = DateOnly(date_only.time, zone)
    for target, path in spec.datetimes:
        values.append(((target,), _datetime(target, path, zone, date_only)))
    if spec.assignee_email is not None:
        values.append((("assignee_email",), _email(spec.assignee_email)))
    if spec.queue_uid is not None:
        values.append((("queue_uid",), _queue_uid(_renderer(spec.queue_uid, "queue_uid"))))
    return tuple(values)


def _reader(path: MappingPath, field: str) -> Read:
    """`path`'s reader for the task's `field`, whose failure raises `_Invalid` naming it."""
    if not path.may_fail:
        return path.read  # nothing to catch: the reader as it is, for speed
    read = path.read

    def read_or_fail(record: Any) -> Any:
        try:
            return read(record)
        except PathNotReadable as exc:
            raise _Invalid(field, str(exc)) from None

    return read_or_fail


def _renderer(template: Template, field: str) -> Value:
    """The function filling `template` from (record, source id) for the task's `field`.

    `{source_id}` is the ticket's id unless the record has a key of that name.
    """
    parts = tuple(
        (literal, None if path is None else path.read, None if path is None else path.path, spec)
        for literal, path, spec in template.parts
    )

    def render(record: Any, source_id: str) -> str:
        out: list[str] = []
        try:
            for literal, read, name, spec in parts:
                out.append(literal)
                if read is None:
                    continue
                value = read(record)
                if type(value) is str and not spec:
                    out.append(value)
                    continue
                if value is MISSING:
                    if name != "source_id":
                        raise KeyError(name)
                    value = source_id
                if value is None:
                    continue
                if isinstance(value, dt.datetime):
                    value = isoformat(value)
                out.append(format(value, spec) if spec else str(value))
        except KeyError as exc:
            raise _Invalid(field, f"template key {exc.args[0]!r} is absent") from None
        except PathNotReadable as exc:
            raise _Invalid(field, str(exc)) from None
        except (TypeError, ValueError) as exc:
            raise _Invalid(field, f"can't format: {exc}") from None
        return "".join(out)

    return render


def _status(path: MappingPath, table: Mapping[str, str], default: str) -> Value:
    read = _reader(path, "status")

    def status(record: Any, _source_id: str) -> str:
        value = read(record)
        if type(value) is str:  # the common case, ahead of the checks below
            return table.get(value.casefold(), default)
        if value is MISSING or value is None:
            return default
        if isinstance(value, dict | list):
            raise _Invalid("status", f"expected a status value, got {_kind(value)}")
        return table.get(str(value).casefold(), default)

    return status


def _datetime(field: str, path: MappingPath, zone: dt.tzinfo, date_only: DateOnly) -> Value:
    read = _reader(path, field)

    def datetime(record: Any, _source_id: str) -> str | None:
        try:
            return datetime_text(read(record), zone, date_only)
        except ValueError as exc:
            raise _Invalid(field, str(exc)) from None

    return datetime


def _email(path: MappingPath) -> Value:
    read = _reader(path, "assignee_email")

    def email(record: Any, _source_id: str) -> str | None:
        value = read(record)
        if value is MISSING or value is None or value == "":
            return None
        if not isinstance(value, str) or "@" not in value:
            raise _Invalid("assignee_email", f"{value!r} is not an email address")
        return value.strip()

    return email


def _user_id(value: Any) -> str | None:
    """A source user id as text (Redmine's are numbers); None for none.

    Raises `_Invalid` naming `assignee` for a value that is no id (an object, a list).
    """
    kind = type(value)
    if kind is str:
        return value.strip() or None
    if kind is int:
        return str(value)
    if value is MISSING or value is None:
        return None
    raise _Invalid("assignee", f"expected a user id, got {_kind(value)}")


def _queue_uid(render: Value) -> Value:
    def queue_uid(record: Any, source_id: str) -> str | None:
        text = render(record, source_id).strip()
        if not text:
            return None
        try:
            return str(uuid.UUID(text))
        except ValueError:
            raise _Invalid("queue_uid", f"{text!r} is not a UUID") from None

    return queue_uid


def _json(field: str, value: Any, depth: int, zone: dt.tzinfo) -> Any:
    """`value` as plain JSON; raises `_Invalid` for what JSON can't carry."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _Invalid(field, f"{value!r} is not a JSON number")
        return value
    if isinstance(value, dt.datetime):
        return isoformat(parse_datetime(value, zone))
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise _Invalid(field, f"{value!r} is not a JSON number")
        return int(value) if value == value.to_integral_value() else float(value)
    if depth >= MAX_DEPTH:
        raise _Invalid(field, f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, Mapping):
        return {str(k): _json(field, v, depth + 1, zone) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json(field, v, depth + 1, zone) for v in value]
    raise _Invalid(field, f"{_kind(value)} is not a JSON value")


def datetime_text(
    value: Any, zone: dt.tzinfo = dt.UTC, date_only: DateOnly | None = None
) -> str | None:
    """A date-time field's value as a task carries it: UTC ISO 8601 text, or None if unset.

    A naive value is read in `zone`. A date without a time (`2026-11-30`, a `date`)
    falls at `date_only`'s time in its zone (`zone` if it has none), or at midnight in
    `zone` without `date_only`. Raises `ValueError` naming what is wrong with the value.
    """
    if value is MISSING or value is None or value == "":
        return None
    if type(value) is str and is_canonical_utc(value):
        return value  # already what isoformat(parse_datetime(value)) would give
    if date_only is not None:
        day = _date_only(value)
        if day is not None:
            moment = dt.datetime.combine(day, date_only.time, date_only.zone or zone)
            return isoformat(moment)
    return isoformat(parse_datetime(value, zone))


def _date_only(value: Any) -> dt.date | None:
    """The date `value` names when it is a date without a time, else None."""
    if type(value) is dt.date:
        return value
    if type(value) is str and len(value) == 10 and value[4] == value[7] == "-":
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            return None  # parse_datetime names what is wrong with it
    return None


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
