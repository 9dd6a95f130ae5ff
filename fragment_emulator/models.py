"""The shapes the emulated API reads and writes: write model, read model, errors.

Owns the pydantic write model (`TaskWrite`, `TaskBatch`), the read model's key
set and its JSON (`read_model_json`), the canonical text form of timestamps and
uids, what a free-form JSON value may hold, and turning validation failures
into FastAPI-style 422 `detail` lists.
It does not decide what a write does to a stored task (`tasks`) nor store
anything (`store`).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Annotated, Any, Literal
from uuid import UUID

import pydantic_core
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetPydanticSchema,
    ValidationError,
)
from pydantic_core import PydanticKnownError, core_schema

Status = Literal["TODO", "STARTED", "DONE"]
STATUSES: tuple[Status, ...] = ("TODO", "STARTED", "DONE")

JsonObject = dict[str, Any]
Loc = tuple[str | int, ...]
ErrorDetail = dict[str, Any]
"""One FastAPI validation error: `{"type", "loc", "msg", "input"}`."""
WrittenTask = dict[str, Any]
"""One task write as the keys the client sent, values in canonical form (`TaskWrite.written`)."""


def timestamp_text(moment: dt.datetime) -> str:
    """Aware `moment` in the emulator's one stored form: UTC, microseconds, `Z`.

    Fixed width, so stored timestamps sort and compare correctly as text.
    The text `isoformat(timespec="microseconds")` gives for the naive UTC
    time, plus `Z`; built with one %-format because this runs for every
    timestamp of every batch item, and `isoformat` (or an f-string) is slower.
    For the same reason UTC is reached by subtracting the offset, which is
    what `astimezone(dt.UTC)` does, minus a third of its cost. Raises
    `OverflowError` when the UTC time falls outside years 1-9999.
    """
    offset = moment.utcoffset()
    assert offset is not None, "timestamp_text needs an aware datetime"
    utc = moment - offset
    parts = (utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second, utc.microsecond)
    return "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ" % parts  # noqa: UP031 (see above)


def now_text() -> str:
    """The server clock, as `timestamp_text`."""
    return timestamp_text(dt.datetime.now(dt.UTC))


def _stored_timestamp_text(moment: dt.datetime) -> str:
    """`timestamp_text(moment)`; a pydantic `datetime_parsing` error if UTC cannot hold it.

    0001-01-01T00:30:00+01:00 is a valid moment, but in UTC it falls in year 0,
    which `datetime` (and so the stored form) does not have.
    """
    try:
        return timestamp_text(moment)
    except OverflowError:
        raise PydanticKnownError(
            "datetime_parsing", {"error": "in UTC it falls outside years 1-9999"}
        ) from None


def _kept_as_text(source: Any, to_text: Callable[[Any], str]) -> GetPydanticSchema:
    """An annotation that validates as `source` and keeps `to_text` of the result.

    Checks, strictness and error messages are those of `source`; `to_text`
    only ever sees a valid value, and may still refuse it by raising a
    pydantic error (`PydanticKnownError`), reported like `source`'s own.
    """
    return GetPydanticSchema(
        lambda _type, handler: core_schema.no_info_after_validator_function(
            to_text, handler.generate_schema(source)
        )
    )


# Any 128-bit UUID is accepted (the docs' md5 recipe has no version bits) and
# held as str(UUID), the lowercase hyphenated form, from validation on.
Uid = Annotated[str, _kept_as_text(UUID, str)]
# Timestamps are held in their stored form (`timestamp_text`) from validation
# on, so a moment UTC cannot hold is refused with the item's other errors.
Timestamp = Annotated[str, _kept_as_text(AwareDatetime, _stored_timestamp_text)]


class _StandardJson:
    """The pydantic-core schema behind `JsonValue`.

    A class because pydantic registers a recursive definition only from a
    type's own schema hook, not from an `Annotated` one; `JsonValue` wraps
    it so that type checkers see plain values (`Any`), not this class.
    """

    @classmethod
    def __get_pydantic_core_schema__(
        cls, _source: Any, _handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        value = core_schema.definition_reference_schema("emulator-json-value")
        # Left to right, commonest first: a string is accepted by the first try.
        # Strict members, so none converts another's input (1.5 never becomes 1).
        any_finite = core_schema.union_schema(
            [
                core_schema.str_schema(strict=True),
                core_schema.list_schema(value, strict=True),
                core_schema.dict_schema(core_schema.str_schema(), value, strict=True),
                core_schema.int_schema(strict=True),
                core_schema.float_schema(allow_inf_nan=False, strict=True),
                core_schema.bool_schema(strict=True),
                core_schema.none_schema(),
            ],
            mode="left_to_right",
            ref="emulator-json-value",
        )
        # A JSON input fails every member only for a non-finite number (even a
        # nested one): one `finite_number` error at the key, not one per member.
        return core_schema.definitions_schema(
            core_schema.custom_error_schema(value, custom_error_type="finite_number"),
            [any_finite],
        )


JsonValue = Annotated[
    Any, GetPydanticSchema(lambda _type, handler: handler.generate_schema(_StandardJson))
]
"""Any standard JSON value, at any depth, in a free-form key (`fields`, `form_data`...).

pydantic-core reads `NaN`, `Infinity` and numbers beyond a double (`1e400`)
as non-finite floats, which standard JSON (and SQLite's JSON functions) cannot
hold; they are refused with `finite_number` as the body is validated.
"""


class TaskWrite(BaseModel):
    """One task as a client writes it (POST/PUT/PATCH, single or batch item).

    Strict: unknown keys, strings for booleans, naive date-times are errors, so
    client mistakes surface here rather than in production. Only the keys a
    client sent count (`model_fields_set`); the defaults below are never stored
    as such. `status`, `archived` and `fields` cannot be null: a task always
    has them.
    """

    model_config = ConfigDict(extra="forbid", strict=True)

    uid: Uid | None = None
    archived: bool = False
    status: Status = "TODO"
    status_global: Status | None = None
    external_status: Status | None = None
    fields: dict[str, JsonValue] = Field(default_factory=dict)
    legacy_data: dict[str, JsonValue] | None = None
    participants: dict[str, JsonValue] | None = None
    form_data: dict[str, JsonValue] | None = None
    form_type: str | None = None
    skills: list[Uid] | None = None
    queue_uid: Uid | None = None
    assignee_uid: Uid | None = None
    assignee_email: str | None = None
    parent_uid: Uid | None = None
    case_uid: Uid | None = None
    metadata_form_uid: Uid | None = None
    external_assignee_uid: Uid | None = None
    assignee_updated_by: Uid | None = None
    queue_updated_by: Uid | None = None
    is_assigned_player: bool | None = None
    due_at: Timestamp | None = None
    snooze_expires_at: Timestamp | None = None
    assigned_at: Timestamp | None = None
    started_at: Timestamp | None = None
    done_at: Timestamp | None = None
    created_at: Timestamp | None = None
    updated_at: Timestamp | None = None
    external_created_at: Timestamp | None = None
    external_updated_at: Timestamp | None = None
    external_status_updated_at: Timestamp | None = None

    def written(self) -> WrittenTask:
        """The keys the client sent, as JSON values in canonical form."""
        values = self.__dict__  # the fields' values by name: cheaper than getattr per key
        return {name: values[name] for name in self.model_fields_set}


class TaskBatch(BaseModel):
    """The batch envelope `{"items": [...]}`.

    `meta` is accepted and ignored: the docs' request sample carries the
    paginated page's `meta` block, an artefact clients may copy.
    """

    model_config = ConfigDict(extra="forbid", strict=True)

    items: list[TaskWrite]
    meta: JsonValue = None


WRITE_ONLY_KEYS = frozenset({"status_global", "assignee_email"})

# Every key of the read model (fragment-api.md §8, column R), in the order the
# docs' sample lists them. Keys the emulator does not compute stay null.
READ_KEYS: tuple[str, ...] = (
    "uid",
    "archived",
    "status",
    "legacy_data",
    "skills",
    "queue_uid",
    "assignee_uid",
    "participants",
    "case_uid",
    "parent_uid",
    "fields",
    "due_at",
    "snooze_expires_at",
    "metadata_form_uid",
    "form_data",
    "form_type",
    "assigned_at",
    "started_at",
    "done_at",
    "created_at",
    "updated_at",
    "assignee_updated_by",
    "queue_updated_by",
    "is_assigned_player",
    "external_created_at",
    "external_updated_at",
    "external_status",
    "external_status_updated_at",
    "external_assignee_uid",
    "internal_created_at",
    "internal_updated_at",
    "queue_time",
    "queue_time_business",
    "work_time",
    "work_time_business",
    "incremental_work_time",
    "incremental_work_time_business",
    "resolution_time",
    "resolution_time_business",
    "wait_time",
    "wait_time_business",
    "num_children",
    "num_children_done",
    "sla_breach_at",
    "sla_breach_business_at",
    "review_status",
    "task_type",
    "played_at",
    "assignee",
    "parent",
    "children",
)
# A read model is the task's document, then the server's keys: every key a
# client can write comes before `internal_created_at`.
_DOCUMENT_KEYS = READ_KEYS[: READ_KEYS.index("internal_created_at")]
_EMPTY_DOCUMENT: JsonObject = dict.fromkeys(_DOCUMENT_KEYS)
assert set(TaskWrite.model_fields) - WRITE_ONLY_KEYS <= set(_DOCUMENT_KEYS), (
    "a writable key is missing from the read model's document keys"
)
_SERVER_KEYS = READ_KEYS[len(_DOCUMENT_KEYS) :]
assert _SERVER_KEYS[:2] == ("internal_created_at", "internal_updated_at")
# The server's keys as JSON around the three values it has: its two timestamps
# (canonical text, which JSON shows as it is) and the assignee's record.
_SERVER_JSON = (
    ',"internal_created_at":"%s","internal_updated_at":"%s",'
    + ",".join(
        '"assignee":%s' if key == "assignee" else f'"{key}":null' for key in _SERVER_KEYS[2:]
    )
    + "}"
).encode()


def read_model_json(
    doc: Mapping[str, Any], internal_created_at: str, internal_updated_at: str, assignee_json: bytes
) -> bytes:
    """The read model of a stored task as JSON: every read key, in order, null when unset.

    `assignee_json` is the assignee's user record as JSON (or `null`): a
    batch shows the same few users over and over, and they are encoded once.
    Bytes, not text: a batch's answer is half a megabyte of them, joined as
    they are. Non-finite numbers, which validation keeps out of documents,
    would be written as strings.
    """
    document = dict(_EMPTY_DOCUMENT)
    document.update(doc)
    server = (internal_created_at.encode(), internal_updated_at.encode(), assignee_json)
    return pydantic_core.to_json(document, inf_nan_mode="strings")[:-1] + _SERVER_JSON % server


def error_detail(loc: Iterable[str | int], msg: str, type_: str, value: Any = None) -> ErrorDetail:
    """One 422 `detail` entry."""
    return {"type": type_, "loc": list(loc), "msg": msg, "input": value}


def validation_details(
    exc: ValidationError, body: bytes, prefix: Loc = ("body",)
) -> list[ErrorDetail]:
    """FastAPI's 422 `detail` for a pydantic failure on a request body.

    Locations get `prefix` in front (`["body", "items", 3, "status"]`). A JSON
    syntax error is reported as FastAPI does: `json_invalid` at the character
    position, without echoing the body.
    """
    details: list[ErrorDetail] = []
    for failure in exc.errors(include_url=False):
        if failure["type"] == "json_invalid":
            details.append(json_syntax_detail(body))
            continue
        entry = error_detail(
            (*prefix, *failure["loc"]), failure["msg"], failure["type"], failure["input"]
        )
        if "ctx" in failure:
            # ctx may hold exception objects; the wire needs text.
            entry["ctx"] = {key: str(value) for key, value in failure["ctx"].items()}
        details.append(entry)
    return details


def json_syntax_detail(body: bytes) -> ErrorDetail:
    """The `json_invalid` entry FastAPI gives for a body that is not JSON."""
    try:
        json.loads(body)
    except json.JSONDecodeError as exc:
        return {
            "type": "json_invalid",
            "loc": ["body", exc.pos],
            "msg": "JSON decode error",
            "input": {},
            "ctx": {"error": exc.msg},
        }
    except UnicodeDecodeError as exc:
        return {
            "type": "json_invalid",
            "loc": ["body", exc.start],
            "msg": "JSON decode error",
            "input": {},
            "ctx": {"error": "body is not UTF-8"},
        }
    # pydantic refused what the json module reads (e.g. a lone surrogate
    # escape such as \ud800): same answer.
    return {
        "type": "json_invalid",
        "loc": ["body", 0],
        "msg": "JSON decode error",
        "input": {},
        "ctx": {"error": "not strict JSON"},
    }
