"""The mapping's declarative spec: what a config file may say about turning tickets into tasks.

Owns `MappingSettings` (the `[connectors.NAME.mapping]` table), its templates,
the snake_case rule for custom field keys, hook names, and `parse_mapping`,
which checks a spec once and resolves it into a `ParsedMapping` (templates
split, paths parsed by `sync.paths`, keys normalised, hook imported). `sync.config` validates a
file's mappings with it; `sync.mapping` runs the parsed spec on tickets. It
imports neither: it reads no ticket and knows no other part of the config.
"""

from __future__ import annotations

import datetime as dt
import importlib
import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from connectors.base import SourceTicket, unset
from connectors.values import timezone
from sync.errors import ConfigError
from sync.paths import MappingPath, parse_path

STATUSES = ("TODO", "STARTED", "DONE")
Status = Literal["TODO", "STARTED", "DONE"]

DATETIME_TARGETS = ("due_at", "external_created_at", "external_updated_at")
"""The task's date-time keys, each mapped from a path in the record."""

Hook = Callable[[SourceTicket, dict[str, Any]], dict[str, Any] | None]
"""A mapping's Python hook: adjusts the task the declarative mapping built, or returns another."""

_CAMEL_ACRONYM = re.compile(r"([A-Z]+)([A-Z][a-z])")
_CAMEL = re.compile(r"([a-z0-9])([A-Z])")
_NOT_WORD = re.compile(r"[\W_]+")


class MappingSettings(BaseModel):
    """How a source ticket becomes a Fragment task (see `sync.mapping`).

    `title`, `url` and `queue_uid` are templates over the raw record
    (`"[{priority}] {subject}"`, `{source_id}` is always available); the other
    keys are paths into it (`requester.email`, `tags.0`,
    `custom_fields[name=Severity].value | "none"`, `jmespath:EXPR`: see `sync.paths`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    title: str = "Ticket {source_id}"
    """The task title: a template over the record (`"[{priority}] {subject}"`); `{source_id}`
    is always available."""
    url: str | None = None
    """A template for the task's link back to the ticket."""
    fields: dict[str, str] = Field(default_factory=dict)
    """Custom fields, name = path into the record; names become snake_case (`"Country Code"`
    gives `country_code`)."""
    source_id_field: str = "ticket_id"
    """The custom field that always carries the source id."""
    status: str | None = None
    """The path to the source's status, mapped through `status_map`."""
    status_map: dict[str, Status] = Field(default_factory=dict)
    """Source status values (matched case-insensitively) to `TODO`, `STARTED` or `DONE`."""
    status_default: Status = "TODO"
    """The status of a value `status_map` does not list."""
    set_status: bool = True
    """Write the mapped status to `status` as well as `external_status`; `false` lets operators
    own `status` in Fragment."""
    due_at: str | None = None
    """The path to the ticket's due date."""
    date_only_time: str = "17:00"
    """The time of day (`HH:MM` or `HH:MM:SS`) a date without a time (`2026-11-30`) gets in
    `due_at`, `external_created_at` and `external_updated_at`: the end of the business day."""
    date_only_zone: str | None = None
    """The IANA time zone (`Europe/Paris`) of `date_only_time`; unset, the connector's
    `timezone` option, else UTC."""
    assignee_email: str | None = None
    """The path to the assignee's email address."""
    assignee: str | None = Field(default=None, exclude_if=unset)
    """The path to the assignee's source user id (Redmine's `assigned_to.id`), resolved to
    an email through the connector's `people` table, the people cache and the source
    (`python -m sync people`); `assignee_email` wins where it gives one."""
    queue_uid: str | None = None
    """A template for the Fragment queue uid: a constant, or one read from the record."""
    external_created_at: str | None = None
    """The path to the ticket's creation time."""
    external_updated_at: str | None = None
    """The path to the ticket's last change time."""
    hook: str | None = None
    """A Python function, `package.module:function`, that adjusts each task; it is code,
    imported by `run`, `check` and `failures retry` only."""


MAX_EMAIL_LENGTH = 320
"""The longest email address there can be (RFC 5321: 64 + 1 + 255)."""


def email_problem(text: str) -> str | None:
    """What is wrong with `text` as an email address, or None if it looks like one.

    Only the shape is checked (one `@` with text on each side, no spaces, not
    too long): the people that exist are Fragment's to say.
    """
    email = text.strip()
    local, at, domain = email.rpartition("@")
    if not at or not local or not domain or any(c.isspace() for c in email):
        return f"{text!r} is not an email address"
    if len(email) > MAX_EMAIL_LENGTH:
        return f"an email address of {len(email)} characters is longer than {MAX_EMAIL_LENGTH}"
    return None


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


class Template:
    """A `str.format`-style template whose `{names}` are paths into the record.

    `parts`: (literal text, path of the placeholder after it or None, format spec).
    """

    def __init__(self, text: str) -> None:
        """Parse `text`; raises `ValueError` for unbalanced braces or a `!conversion`."""
        self.text = text
        self.parts: list[tuple[str, MappingPath | None, str]] = []
        try:
            for literal, name, spec, conversion in string.Formatter().parse(text):
                if conversion:
                    raise ValueError(f"conversion !{conversion} is not supported")
                if name is not None and not name:
                    raise ValueError("empty {} placeholder; name a field, e.g. {subject}")
                path = None if name is None else parse_path(name)
                self.parts.append((literal, path, spec or ""))
        except ValueError as exc:
            raise ValueError(f"template {text!r}: {exc}") from None


def callable_name(dotted: str) -> tuple[str, str]:
    """The module and the function `package.module:function` (or `…module.function`) names.

    Raises `ValueError` when it is not of that form. Imports nothing.
    """
    module_name, _, attribute = dotted.partition(":") if ":" in dotted else dotted.rpartition(".")
    if not module_name or not attribute:
        raise ValueError(f"{dotted!r} is not of the form package.module:function")
    return module_name, attribute


def resolve_callable(dotted: str) -> Callable[..., Any]:
    """The function named by `package.module:function` (or `package.module.function`).

    Raises `ValueError` saying why it can't be found.
    """
    module_name, attribute = callable_name(dotted)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"can't import {module_name!r}: {exc}") from None
    function = getattr(module, attribute, None)
    if not callable(function):
        raise ValueError(f"{module_name!r} has no function {attribute!r}")
    return function  # type: ignore[no-any-return]


@dataclass(frozen=True)
class DateOnly:
    """Where a date without a time falls: at `time` in `zone` (None: the records' zone)."""

    time: dt.time
    zone: dt.tzinfo | None


@dataclass(frozen=True)
class ParsedMapping:
    """A mapping spec checked and resolved once: templates split, paths parsed, keys normalised."""

    settings: MappingSettings
    title: Template
    url: Template | None
    queue_uid: Template | None
    source_id_key: str
    fields: tuple[tuple[str, MappingPath], ...]
    """(snake_case task key, path) of each custom field, in the order the spec lists them."""
    status: MappingPath | None
    status_map: Mapping[str, str]
    """The spec's status table with its source values case-folded."""
    datetimes: tuple[tuple[str, MappingPath], ...]
    """(task key, path) of due_at, external_created_at, external_updated_at when mapped."""
    date_only: DateOnly
    assignee_email: MappingPath | None
    assignee: MappingPath | None
    """The path to the assignee's source user id, resolved to an email by `sync.people`."""
    hook: Hook | None
    """None when the spec has no hook, or when it was parsed without importing it."""


def parse_mapping(
    settings: MappingSettings, key: str, *, import_hook: bool = True
) -> ParsedMapping:
    """`settings` resolved for mapping; raises `ConfigError` naming the key under `key` if
    it can never map a ticket.

    `import_hook` off, a `hook` is checked for its form only: importing it runs
    its code, which only a command that maps tickets needs.
    """
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
    fields: list[tuple[str, MappingPath]] = []
    for name, path in settings.fields.items():
        normalised = _field_key(name, f"{key}.fields.{name}")
        if normalised in reserved:
            raise ConfigError(
                f"{key}.fields.{name}",
                f"becomes {normalised!r}, which {reserved[normalised]!r} already sets",
            )
        reserved[normalised] = name
        fields.append((normalised, _path(path, f"{key}.fields.{name}")))
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
    return ParsedMapping(
        settings=settings,
        title=title,
        url=templates["url"],
        queue_uid=templates["queue_uid"],
        source_id_key=source_key,
        fields=tuple(fields),
        status=None if settings.status is None else _path(settings.status, f"{key}.status"),
        status_map={str(k).casefold(): v for k, v in settings.status_map.items()},
        datetimes=tuple(
            (target, _path(path, f"{key}.{target}"))
            for target in DATETIME_TARGETS
            if (path := getattr(settings, target)) is not None
        ),
        date_only=_date_only(settings, key),
        assignee_email=(
            None
            if settings.assignee_email is None
            else _path(settings.assignee_email, f"{key}.assignee_email")
        ),
        assignee=None if settings.assignee is None else _path(settings.assignee, f"{key}.assignee"),
        hook=hook,
    )


def _path(text: str, key: str) -> MappingPath:
    try:
        return parse_path(text)
    except ValueError as exc:
        raise ConfigError(key, str(exc)) from None


def _date_only(settings: MappingSettings, key: str) -> DateOnly:
    text = settings.date_only_time
    try:
        if len(text) not in (5, 8) or text[2] != ":":
            raise ValueError
        time = dt.time.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"{key}.date_only_time", f"{text!r} is not a time of day as HH:MM (17:00)"
        ) from None
    zone = None
    if settings.date_only_zone is not None:
        try:
            zone = timezone(settings.date_only_zone)
        except ValueError as exc:
            raise ConfigError(f"{key}.date_only_zone", str(exc)) from None
    return DateOnly(time, zone)


def _field_key(name: str, key: str) -> str:
    try:
        return snake_case(name)
    except ValueError as exc:
        raise ConfigError(key, str(exc)) from None
