"""The shapes the emulated API reads and writes: write model, read model, errors.

Owns the pydantic write model (`TaskWrite`, `TaskBatch`), the read model's key
set and defaults (`render_task`), the canonical text form of timestamps and
uids, and turning validation failures into FastAPI-style 422 `detail` lists.
It does not decide what a write does to a stored task (`tasks`) nor store
anything (`store`).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    GetPydanticSchema,
    ValidationError,
)
from pydantic_core import core_schema

Status = Literal["TODO", "STARTED", "DONE"]
STATUSES: tuple[Status, ...] = ("TODO", "STARTED", "DONE")

JsonObject = dict[str, Any]
Loc = tuple[str | int, ...]
ErrorDetail = dict[str, Any]
"""One FastAPI validation error: `{"type", "loc", "msg", "input"}`."""


def timestamp_text(moment: dt.datetime) -> str:
    """`moment` in the emulator's one stored form: UTC, microseconds, `Z`.

    Fixed width, so stored timestamps sort and compare correctly as text.
    The text `isoformat(timespec="microseconds")` gives for the naive UTC
    time, plus `Z`; built with one %-format because this runs for every
    timestamp of every batch item, and `isoformat` (or an f-string) is slower.
    """
    utc = moment.astimezone(dt.UTC)
    parts = (utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second, utc.microsecond)
    return "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ" % parts  # noqa: UP031 (see above)


def now_text() -> str:
    """The server clock, as `timestamp_text`."""
    return timestamp_text(dt.datetime.now(dt.UTC))


def _kept_as_text(source: Any, to_text: Callable[[Any], str]) -> GetPydanticSchema:
    """An annotation that validates as `source` and keeps `to_text` of the result.

    Checks, strictness and error messages are exactly those of `source`;
    `to_text` only ever sees a valid value.
    """
    return GetPydanticSchema(
        lambda _type, handler: core_schema.no_info_after_validator_function(
            to_text, handler.generate_schema(source)
        )
    )


# Any 128-bit UUID is accepted (the docs' md5 recipe has no version bits) and
# held as str(UUID), the lowercase hyphenated form, from validation on.
Uid = Annotated[str, _kept_as_text(UUID, str)]
# Timestamps stay datetimes until `TaskWrite.written` gives their stored text:
# a valid moment can still fail to convert to UTC (0001-01-01T00:30:00+01:00
# overflows), and that failure belongs to writing the item, not to validating it.
Timestamp = AwareDatetime


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
    fields: JsonObject = Field(default_factory=dict)
    legacy_data: JsonObject | None = None
    participants: JsonObject | None = None
    form_data: JsonObject | None = None
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

    def written(self) -> JsonObject:
        """The keys the client sent, as JSON values in canonical form."""
        written: JsonObject = {}
        for name in self.model_fields_set:
            value = getattr(self, name)
            written[name] = timestamp_text(value) if isinstance(value, dt.datetime) else value
        return written


class TaskBatch(BaseModel):
    """The batch envelope `{"items": [...]}`.

    `meta` is accepted and ignored: the docs' request sample carries the
    paginated page's `meta` block, an artefact clients may copy.
    """

    model_config = ConfigDict(extra="forbid", strict=True)

    items: list[TaskWrite]
    meta: Any = None


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
_EMPTY_READ_MODEL: JsonObject = dict.fromkeys(READ_KEYS)


def render_task(
    doc: Mapping[str, Any],
    internal_created_at: str,
    internal_updated_at: str,
    assignee: JsonObject | None,
) -> JsonObject:
    """The read model of a stored task: every read key, null when unset."""
    task = dict(_EMPTY_READ_MODEL)
    task.update(doc)
    task["internal_created_at"] = internal_created_at
    task["internal_updated_at"] = internal_updated_at
    task["assignee"] = assignee
    return task


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
    # pydantic refused what the json module reads (e.g. NaN): same answer.
    return {
        "type": "json_invalid",
        "loc": ["body", 0],
        "msg": "JSON decode error",
        "input": {},
        "ctx": {"error": "not strict JSON"},
    }
