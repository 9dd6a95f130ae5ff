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

from fragment_emulator.models import STATUSES, TaskWrite, WrittenTask, timestamp_text


class _Unsure(Exception):
    """Not plainly valid: pydantic must decide."""


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
# The commonest shape, `...:SSZ`, on a day no month lacks (1-28) of a year
# `datetime` has: a valid moment, already in UTC, so the stored form needs
# neither parsing nor arithmetic.
_EARLY_DAY_ZULU_SECONDS = re.compile(
    r"(?!0000)[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])"
    r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]Z"
)
_STATUSES = frozenset(STATUSES)

# pydantic validates every member of a free-form object, even one a later
# duplicate key overwrites, while decoding keeps only the last: a number too
# big for a double hidden that way would pass here and fail there. Such a
# number has an exponent of 3 digits or more, or over 200 digits before it;
# the body is searched for either, with its digits made "0" and its "E"s "e"
# first, so that one literal-led search finds them (a uid's hex never ends a
# number: the exponent must be followed by whitespace, `,`, `]` or `}`).
_NUMBER_SHAPES = bytes.maketrans(b"123456789E", b"000000000e")
_HUGE_EXPONENT = re.compile(rb"0e[+-]?0{3,}[\s,\]}]")
_HUGE_MANTISSA = b"0" * 210

# One converter per kind of key: the value as `written()` holds it, or `_Unsure`
# raised. The `_or_null` ones take null too, as the model's `... | None` keys do.


def _uid(value: Any) -> Any:
    if type(value) is str and _CANONICAL_UID.fullmatch(value):
        return value
    raise _Unsure


def _uid_or_null(value: Any) -> Any:
    # `_uid`'s test again rather than a call to it: every item has a uid.
    if value is None or (type(value) is str and _CANONICAL_UID.fullmatch(value)):
        return value
    raise _Unsure


def _timestamp_or_null(value: Any) -> Any:
    """The stored form (`timestamp_text`) of a plainly shaped timestamp."""
    if value is None:
        return None
    if type(value) is not str:
        raise _Unsure
    if _EARLY_DAY_ZULU_SECONDS.fullmatch(value):
        return value[:-1] + ".000000Z"
    if not _PLAIN_TIMESTAMP.fullmatch(value):
        raise _Unsure
    try:
        return timestamp_text(dt.datetime.fromisoformat(value))
    except (ValueError, OverflowError):  # no such day (February 30); outside years 1-9999 in UTC
        raise _Unsure from None


def _status(value: Any) -> Any:
    if type(value) is str and value in _STATUSES:
        return value
    raise _Unsure


def _status_or_null(value: Any) -> Any:
    return None if value is None else _status(value)


def _flag(value: Any) -> Any:
    if value is True or value is False:
        return value
    raise _Unsure


def _flag_or_null(value: Any) -> Any:
    if value is None or value is True or value is False:
        return value
    raise _Unsure


def _text_or_null(value: Any) -> Any:
    if value is None or type(value) is str:
        return value
    raise _Unsure


def _object(value: Any) -> Any:
    if type(value) is dict and is_plain_json(value):
        return value
    raise _Unsure


def _object_or_null(value: Any) -> Any:
    return None if value is None else _object(value)


def _uid_list_or_null(value: Any) -> Any:
    if value is None:
        return None
    if type(value) is not list:
        raise _Unsure
    return [_uid(entry) for entry in value]


def is_plain_json(value: Any) -> bool:
    """Whether decoded JSON `value` holds only what `JsonValue` keeps as is.

    Strings, ints of any size, finite floats, booleans, null, and lists and
    objects of them: exactly what `JsonValue` accepts from JSON, and it
    returns such a value equal to its input. (A loop rather than a call per
    member: `fields` is checked for every item of every batch.)
    """
    kind = type(value)
    if kind is dict:
        members = value.values()
    elif kind is list:
        members = value
    else:
        return kind is str or kind is int or kind is bool or value is None or _is_finite(value)
    for member in members:
        kind = type(member)
        if kind is str or kind is int or kind is bool or member is None:
            continue
        if kind is float:
            if not math.isfinite(member):
                return False
        elif not is_plain_json(member):
            return False
    return True


def _is_finite(value: Any) -> bool:
    return type(value) is float and math.isfinite(value)


# Key → its converter: one row per `TaskWrite` field, null allowed where the
# model allows it (a test holds the two level).
_RULES: dict[str, Callable[[Any], Any]] = {
    "uid": _uid_or_null,
    "archived": _flag,
    "status": _status,
    "status_global": _status_or_null,
    "external_status": _status_or_null,
    "fields": _object,
    "legacy_data": _object_or_null,
    "participants": _object_or_null,
    "form_data": _object_or_null,
    "form_type": _text_or_null,
    "skills": _uid_list_or_null,
    "queue_uid": _uid_or_null,
    "assignee_uid": _uid_or_null,
    "assignee_email": _text_or_null,
    "parent_uid": _uid_or_null,
    "case_uid": _uid_or_null,
    "metadata_form_uid": _uid_or_null,
    "external_assignee_uid": _uid_or_null,
    "assignee_updated_by": _uid_or_null,
    "queue_updated_by": _uid_or_null,
    "is_assigned_player": _flag_or_null,
    "due_at": _timestamp_or_null,
    "snooze_expires_at": _timestamp_or_null,
    "assigned_at": _timestamp_or_null,
    "started_at": _timestamp_or_null,
    "done_at": _timestamp_or_null,
    "created_at": _timestamp_or_null,
    "updated_at": _timestamp_or_null,
    "external_created_at": _timestamp_or_null,
    "external_updated_at": _timestamp_or_null,
    "external_status_updated_at": _timestamp_or_null,
}
assert _RULES.keys() == TaskWrite.model_fields.keys(), "a TaskWrite field has no fast-path rule"


def _written(item: Any) -> WrittenTask:
    """`TaskWrite.written()` of a plainly valid decoded item; raises `_Unsure` otherwise."""
    if type(item) is not dict:
        raise _Unsure
    try:
        return {key: _RULES[key](value) for key, value in item.items()}
    except KeyError:  # a key the model does not have (converters raise no KeyError)
        raise _Unsure from None


def plain_written(item: Any) -> WrittenTask | None:
    """`TaskWrite.written()` of decoded JSON `item` if it is plainly valid, else None."""
    try:
        return _written(item)
    except _Unsure:
        return None


def plain_batch(body: bytes) -> list[WrittenTask] | None:
    """Each item's `written()` if `body` is a plainly valid `TaskBatch`, else None."""
    envelope = _decoded(body)
    if type(envelope) is not dict or not envelope.keys() <= {"items", "meta"}:
        return None
    items = envelope.get("items")
    if type(items) is not list or not is_plain_json(envelope.get("meta")):
        return None
    try:
        return [_written(item) for item in items]
    except _Unsure:
        return None


def plain_task(body: bytes) -> WrittenTask | None:
    """`written()` of a single-task body if it is plainly valid, else None."""
    return plain_written(_decoded(body))


def _decoded(body: bytes) -> Any:
    """`body` as pydantic-core decodes JSON for validation; None if unsure.

    None too when the body holds a number no double can hold, anywhere (NaN
    and Infinity are refused by the decoder, too large numbers by
    `_may_overflow`): pydantic refuses those even where decoding drops them.
    Only keys are interned: a batch's values are mostly unique, and caching
    them cost more than it saved.
    """
    try:
        decoded = pydantic_core.from_json(body, allow_inf_nan=False, cache_strings="keys")
    except ValueError:
        return None
    return None if _may_overflow(body) else decoded


def _may_overflow(body: bytes) -> bool:
    """Whether `body` may hold a JSON number too large for a double (false alarms allowed)."""
    shapes = body.translate(_NUMBER_SHAPES)
    return _HUGE_MANTISSA in shapes or _HUGE_EXPONENT.search(shapes) is not None
