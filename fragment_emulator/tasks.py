"""What a write does to a task: uids, create defaults, merge rules, item checks.

Pure functions over plain data: given validated items (`WrittenTask`: the
keys each client item sent, canonical values) and the stored tasks they
name, `plan_writes` says which tasks to insert or update (or leave alone,
when nothing changed) and which items are unacceptable, with the item's
index so a batch client can isolate them. It neither parses requests
(`models`) nor touches SQLite (`store`).

Rules (fragment-api.md §6-§9, [I] choices adopted):
- create: `fields.title` required; defaults status TODO, archived false,
  due_at, created_at and updated_at = now;
- every real change stamps `updated_at` = now unless the write sets it, so
  `GET /tasks?order_by=updated_at&updated_at_after=…` finds an operator's change;
- update (PUT on an existing uid, PATCH): omitted keys are kept, `fields` is
  shallow-merged, every other key replaces;
- `status_global` is validated, copied into `status` when `status` is absent,
  and never stored;
- `assignee_email` resolves to `assignee_uid` through the `UserDirectory`.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fragment_emulator.models import JsonObject, Loc, WrittenTask
from fragment_emulator.users import UserDirectory, normalise_email, user_uid


class WriteMode(enum.Enum):
    """What the endpoint promises to do with each item."""

    CREATE = "create"  # POST: the uid must be new
    UPSERT = "upsert"  # PUT: create or update
    UPDATE = "update"  # PATCH: the uid must exist


@dataclass(slots=True)
class StoredTask:
    """A task as stored: its write-side document plus server bookkeeping.

    `doc` holds the keys of the read model a client can write (never the
    write-only ones). `version` counts real changes, starting at 1.
    `seq` is the insertion rank, None until inserted.
    """

    uid: str
    doc: JsonObject
    version: int
    internal_created_at: str
    internal_updated_at: str
    seq: int | None = None


@dataclass(frozen=True, slots=True)
class ItemError:
    """Why item `index` of a write cannot be applied; `loc` is inside the item."""

    index: int
    loc: Loc
    msg: str
    type: str
    input: Any = None


@dataclass(slots=True)
class WritePlan:
    """Everything a write request would do; apply only when `errors` is empty.

    `tasks` are the items' tasks once applied, in request order (the answer);
    `inserted` and `updated` are those to write, unchanged ones in neither.
    """

    tasks: list[StoredTask] = field(default_factory=list)
    inserted: list[StoredTask] = field(default_factory=list)
    updated: list[StoredTask] = field(default_factory=list)
    errors: list[ItemError] = field(default_factory=list)
    new_user_emails: set[str] = field(default_factory=set)


def assign_uids(
    mode: WriteMode, items: Sequence[WrittenTask | None]
) -> tuple[list[str | None], list[ItemError]]:
    """The uid each item writes to, and the items whose uid is unusable.

    POST items without a uid get a fresh uuid4; PUT and PATCH items must carry
    one. A uid twice in one request is refused: which write should win is
    ambiguous, and a sync client that does it has a dedup bug. `None` items
    (already refused by validation) get no uid.
    """
    uids: list[str | None] = []
    errors: list[ItemError] = []
    first_seen: dict[str, int] = {}
    for index, item in enumerate(items):
        uid = None if item is None else item.get("uid")
        if item is not None and uid is None:
            if mode is WriteMode.CREATE:
                uid = str(uuid.uuid4())
            else:
                errors.append(ItemError(index, ("uid",), "Field required", "missing"))
        if uid is not None and uid in first_seen:
            errors.append(
                ItemError(
                    index,
                    ("uid",),
                    f"uid {uid} appears more than once in this request "
                    f"(first at item {first_seen[uid]})",
                    "duplicate_uid",
                    uid,
                )
            )
            uid = None
        if uid is not None:
            first_seen[uid] = index
        uids.append(uid)
    return uids, errors


def plan_writes(
    mode: WriteMode,
    items: Sequence[WrittenTask | None],
    uids: Sequence[str | None],
    stored: Mapping[str, StoredTask],
    users: UserDirectory,
    now: str,
) -> WritePlan:
    """What applying `items` (to `uids`) over the `stored` tasks would do.

    `None` items or uids are skipped (their error is already known). Never
    raises for a bad item: its problem goes into `WritePlan.errors`.
    """
    plan = WritePlan()
    for index, (item, uid) in enumerate(zip(items, uids, strict=True)):
        if item is None or uid is None:
            continue
        current = stored.get(uid)
        if mode is WriteMode.CREATE and current is not None:
            plan.errors.append(
                ItemError(index, ("uid",), f"Task {uid} already exists", "task_exists", uid)
            )
            continue
        if mode is WriteMode.UPDATE and current is None:
            plan.errors.append(
                ItemError(index, ("uid",), f"Task {uid} not found", "task_not_found", uid)
            )
            continue
        changes, problems = _changes(index, item, users, plan.new_user_emails)
        plan.errors.extend(problems)
        if problems:
            continue
        if current is None:
            doc = _created(uid, changes, now)
            if not isinstance(doc["fields"].get("title"), str):
                plan.errors.append(
                    ItemError(
                        index,
                        ("fields", "title"),
                        "fields.title is required to create a task",
                        "missing",
                    )
                )
                continue
            task = StoredTask(uid, doc, 1, now, now)
            plan.inserted.append(task)
        else:
            doc = _merged(current.doc, changes)
            if doc == current.doc:
                plan.tasks.append(current)
                continue
            if "updated_at" not in changes:
                doc["updated_at"] = now
            task = StoredTask(
                uid, doc, current.version + 1, current.internal_created_at, now, current.seq
            )
            plan.updated.append(task)
        plan.tasks.append(task)
    return plan


def _changes(
    index: int, item: WrittenTask, users: UserDirectory, new_user_emails: set[str]
) -> tuple[JsonObject, list[ItemError]]:
    """The stored keys `item` sets, with write-only keys resolved, and its problems."""
    changes = dict(item)
    changes.pop("uid", None)
    problems: list[ItemError] = []

    status_global = changes.pop("status_global", None)
    if status_global is not None and "status" not in changes:
        changes["status"] = status_global

    if "assignee_email" in changes:
        email = changes.pop("assignee_email")
        resolved: str | None = None
        if email is not None:
            if not users.knows(email):
                problems.append(
                    ItemError(
                        index, ("assignee_email",), f"unknown user {email}", "unknown_user", email
                    )
                )
            else:
                resolved = user_uid(email)
                new_user_emails.add(normalise_email(email))
        if "assignee_uid" in changes and changes["assignee_uid"] != resolved:
            problems.append(
                ItemError(
                    index,
                    ("assignee_uid",),
                    "assignee_uid and assignee_email name different users; send one of them",
                    "assignee_conflict",
                    changes["assignee_uid"],
                )
            )
        changes["assignee_uid"] = resolved

    fields = changes.get("fields", {})
    if "title" in fields:
        title = fields["title"]
        if not isinstance(title, str) or not title.strip():
            problems.append(
                ItemError(
                    index,
                    ("fields", "title"),
                    "fields.title must be a non-empty string",
                    "string_type",
                    title,
                )
            )
    if "url" in fields and not isinstance(fields["url"], str):
        problems.append(
            ItemError(
                index,
                ("fields", "url"),
                "fields.url must be a string",
                "string_type",
                fields["url"],
            )
        )
    return changes, problems


def _created(uid: str, changes: JsonObject, now: str) -> JsonObject:
    """The document of a new task: POST defaults under the client's keys."""
    doc: JsonObject = {
        "uid": uid,
        "status": "TODO",
        "archived": False,
        "fields": {},
        "due_at": now,
        "created_at": now,
        "updated_at": now,
    }
    return _merged(doc, changes)


def _merged(current: JsonObject, changes: JsonObject) -> JsonObject:
    """`current` with `changes` applied: `fields` merged key by key, the rest replaced.

    A key set to null is dropped: the read model shows it null either way, and
    keeping it would make "null" and "never set" differ, so that re-sending
    an identical task could count as a change. (One dict merge, then the
    nulls out: the same keys, values and order as applying the changes one by
    one, at a third of the cost on a batch's every item.)
    """
    doc = {**current, **changes}
    if "fields" in changes:
        doc["fields"] = {**current.get("fields", {}), **changes["fields"]}
    for key, value in changes.items():
        if value is None:
            del doc[key]
    return doc
