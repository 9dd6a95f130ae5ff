"""Batch items read without pydantic when they are plainly valid: the common case, cheaply.

`TaskWrite` stays the definition of a valid item and the only author of 422
details. Validating every item through it was a third of the emulator's CPU
per task in a backfill (pydantic builds a model, then `written()` takes it
apart again, and every uid and timestamp crosses into Python twice). Almost
every item a sync client sends has one plain shape: canonical lowercase uids,
`...:SSZ` or `...:SS±HH:MM` timestamps, finite JSON. For such an item a few type
checks on the decoded JSON give exactly what `TaskWrite.written()` would; for
anything else, invalid or merely unusual (an uppercase uid, a 7-digit
fraction), these functions answer None and the caller asks pydantic. They
never decide that an item is invalid.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable
from typing import Any

import pydantic_core

from sync.emulator.models import STATUSES, TaskWrite, WrittenTask, timestamp_text

# Stands for "not plainly valid: ask pydantic" where None is a real value.
_UNSURE = object()

# The hyphenated lowercase form is the one `str(UUID)` gives back unchanged.
_CANONICAL_UID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# ASCII digits only (`\d` would take any script's), hours 00-23, minutes and
# seconds 00-59, at most microseconds, an offset or Z: within this shape
# `datetime.fromisoformat` and pydantic accept the same moments (fromisoformat
# still refuses impossible dates such as February 30, and those go to pydantic).
_PLAIN_TIMESTAMP = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?"
    r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)
_ZULU_SECONDS_LENGTH = len("2026-01-01T00:00:00Z")
_STATUSES = frozenset(STATUSES)


def _uid(value: Any) -> Any:
    if type(value) is str and _CANONICAL_UID.fullmatch(value):
        return value
    return _UNSURE


def _timestamp(value: Any) -> Any:
    """The stored form (`timestamp_text`) of a plainly shaped timestamp."""
    if type(value) is not str or not _PLAIN_TIMESTAMP.fullmatch(value):
        return _UNSURE
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return _UNSURE
    if len(value) == _ZULU_SECONDS_LENGTH and value[-1] == "Z":
        # Already UTC with whole seconds, the commonest form: skip the arithmetic.
        return value[:-1] + ".000000Z"
    try:
        return timestamp_text(moment)
    except OverflowError:
        return _UNSURE


def _status(value: Any) -> Any:
    return value if type(value) is str and value in _STATUSES else _UNSURE


def _boolean(value: Any) -> Any:
    return value if value is True or value is False else _UNSURE


def _text(value: Any) -> Any:
    return value if type(value) is str else _UNSURE


def _json_object(value: Any) -> Any:
    return value if type(value) is dict and is_plain_json(value) else _UNSURE


def _uid_list(value: Any) -> Any:
    if type(value) is not list:
        return _UNSURE
    uids = [_uid(entry) for entry in value]
    return _UNSURE if _UNSURE in uids else uids


def is_plain_json(value: Any) -> bool:
    """Whether decoded JSON `value` holds only what `JsonValue` keeps as is.

    Strings, ints of any size, finite floats, booleans, null, and lists and
    objects of them: exactly what `JsonValue` accepts from JSON, and it
    returns such a value equal to its input.
    """
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return True
    if kind is float:
        return math.isfinite(value)
    if kind is list:
        return all(map(is_plain_json, value))
    if kind is dict:
        return all(map(is_plain_json, value.values()))
    return False


# Key → (what its plain value is turned into, whether null is allowed): one
# row per `TaskWrite` field, as its annotation says (a test holds them level).
_RULES: dict[str, tuple[Callable[[Any], Any], bool]] = {
    "uid": (_uid, True),
    "archived": (_boolean, False),
    "status": (_status, False),
    "status_global": (_status, True),
    "external_status": (_status, True),
    "fields": (_json_object, False),
    "legacy_data": (_json_object, True),
    "participants": (_json_object, True),
    "form_data": (_json_object, True),
    "form_type": (_text, True),
    "skills": (_uid_list, True),
    "queue_uid": (_uid, True),
    "assignee_uid": (_uid, True),
    "assignee_email": (_text, True),
    "parent_uid": (_uid, True),
    "case_uid": (_uid, True),
    "metadata_form_uid": (_uid, True),
    "external_assignee_uid": (_uid, True),
    "assignee_updated_by": (_uid, True),
    "queue_updated_by": (_uid, True),
    "is_assigned_player": (_boolean, True),
    "due_at": (_timestamp, True),
    "snooze_expires_at": (_timestamp, True),
    "assigned_at": (_timestamp, True),
    "started_at": (_timestamp, True),
    "done_at": (_timestamp, True),
    "created_at": (_timestamp, True),
    "updated_at": (_timestamp, True),
    "external_created_at": (_timestamp, True),
    "external_updated_at": (_timestamp, True),
    "external_status_updated_at": (_timestamp, True),
}
assert _RULES.keys() == TaskWrite.model_fields.keys(), "a TaskWrite field has no fast-path rule"


def plain_written(item: Any) -> WrittenTask | None:
    """`TaskWrite.written()` of decoded JSON `item` if it is plainly valid, else None."""
    if type(item) is not dict:
        return None
    written: WrittenTask = {}
    for key, value in item.items():
        rule = _RULES.get(key)
        if rule is None:
            return None
        convert, nullable = rule
        if value is None:
            if not nullable:
                return None
            written[key] = None
            continue
        canonical = convert(value)
        if canonical is _UNSURE:
            return None
        written[key] = canonical
    return written


def plain_batch(body: bytes) -> list[WrittenTask] | None:
    """Each item's `written()` if `body` is a plainly valid `TaskBatch`, else None."""
    envelope = _decoded(body)
    if type(envelope) is not dict or not envelope.keys() <= {"items", "meta"}:
        return None
    items = envelope.get("items")
    if type(items) is not list or not is_plain_json(envelope.get("meta")):
        return None
    written: list[WrittenTask] = []
    for item in items:
        plain = plain_written(item)
        if plain is None:
            return None
        written.append(plain)
    return written


def plain_task(body: bytes) -> WrittenTask | None:
    """`written()` of a single-task body if it is plainly valid, else None."""
    return plain_written(_decoded(body))


def _decoded(body: bytes) -> Any:
    """`body` as pydantic-core decodes JSON for validation; `_UNSURE` if it cannot."""
    try:
        return pydantic_core.from_json(body)
    except ValueError:
        return _UNSURE
