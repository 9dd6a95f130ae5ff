"""The emulator's SQLite persistence of tasks, their comments and users.

One connection shared by all request threads, serialised by a lock; a write
request runs inside `TaskStore.writing()`, one transaction, so a batch lands
whole or not at all. File databases use WAL and survive restarts; ":memory:"
is for tests. The store renders read models (it knows the users an assignee
refers to) but holds no write rules: those are in `tasks`.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pydantic_core

from fragment_emulator.models import JsonObject, read_model_json
from fragment_emulator.tasks import StoredTask, WritePlan
from fragment_emulator.users import user_record

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- insertion order; never reused, so cursors stay valid
    uid TEXT NOT NULL UNIQUE,
    doc TEXT NOT NULL,
    version INTEGER NOT NULL,
    internal_created_at TEXT NOT NULL,
    internal_updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS comments (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- the order they were posted in
    uid TEXT NOT NULL UNIQUE,
    task_uid TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS comments_by_task ON comments (task_uid, seq);
CREATE TABLE IF NOT EXISTS users (
    uid TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    record TEXT NOT NULL
);
"""
# Queries below are f-strings only over these constants and `_filters`' fixed
# clauses; every value is a bound parameter (hence the S608 waivers).
_COLUMNS = "seq, uid, doc, version, internal_created_at, internal_updated_at"
# Stay under SQLite's bound-parameter limit whatever the build.
_IN_CHUNK = 500


# Documents are written and read with pydantic-core's JSON codec: about twice
# as fast as the json module's, and a write batch reads back every task it names.
def _dumps(value: Any) -> str:
    return pydantic_core.to_json(value).decode()


def _loads(text: str | bytes) -> Any:
    # Keys alone are interned: values are mostly unique to their task (20% faster).
    return pydantic_core.from_json(text, cache_strings="keys")


def _task_from_row(row: tuple[int, str, str, int, str, str]) -> StoredTask:
    seq, uid, doc, version, created, updated = row
    return StoredTask(uid, _loads(doc), version, created, updated, seq)


def _load(conn: sqlite3.Connection, uids: Iterable[str | None]) -> dict[str, StoredTask]:
    """The stored tasks among `uids`, by uid (None entries are skipped)."""
    wanted = [uid for uid in dict.fromkeys(uids) if uid is not None]
    found: dict[str, StoredTask] = {}
    for start in range(0, len(wanted), _IN_CHUNK):
        chunk = wanted[start : start + _IN_CHUNK]
        marks = ",".join("?" * len(chunk))
        sql = f"SELECT {_COLUMNS} FROM tasks WHERE uid IN ({marks})"  # noqa: S608
        for row in conn.execute(sql, chunk):
            task = _task_from_row(row)
            found[task.uid] = task
    return found


def _json_value_matches(json_type: str | None, value: Any, wanted: str) -> bool:
    """Whether a stored JSON value equals a query-string value (`?country=FR`)."""
    if json_type is None or json_type in ("array", "object"):
        return False
    if json_type in ("true", "false", "null"):
        return wanted.lower() == json_type
    if json_type == "text":
        return bool(value == wanted)
    try:
        return float(wanted) == float(value)
    except ValueError:
        return False


ORDERS: dict[str | None, str] = {
    None: "''",
    # A task's own updated_at / created_at, which the server stamps on every change
    # unless the client set it (tasks.plan_writes).
    "updated_at": "coalesce(json_extract(doc, '$.updated_at'), internal_updated_at)",
    "created_at": "coalesce(json_extract(doc, '$.created_at'), internal_created_at)",
}
"""`order_by` values and the sort key each stands for; ties go by insertion rank."""


@dataclass(frozen=True, slots=True)
class Position:
    """A place in a listing's order: after the task with sort key `key` and rank `seq`."""

    key: str
    seq: int


START = Position("", 0)
"""Before every task, in any order (keys are timestamps, which sort after "")."""


@dataclass(frozen=True, slots=True)
class TaskQuery:
    """A `GET /tasks` request: filters, page size, and where the page starts.

    `field_equals` pairs a SQLite JSON path (`$.fields."country"`) with the
    wanted value as text. `updated_after` and `created_after` are canonical
    timestamps (see `models.timestamp_text`).
    """

    limit: int = 50
    after: Position | None = None
    order_by: str | None = None
    status: str | None = None
    archived: bool | None = None
    assignee_uid: str | None = None
    updated_after: str | None = None
    created_after: str | None = None
    field_equals: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class TaskPage:
    """One page of `GET /tasks`: the tasks and where the neighbour pages start.

    `items` are the tasks' read models as JSON (`TaskStore.render_json`).
    `next_after` / `prev_after` are None when there is no such page.
    """

    items: list[bytes]
    total_count: int
    next_after: Position | None
    prev_after: Position | None


class StoreWriter:
    """The writes of one transaction; only `TaskStore.writing` makes one."""

    def __init__(self, conn: sqlite3.Connection, store: TaskStore) -> None:
        self._conn = conn
        self._store = store
        self.new_users: list[JsonObject] = []

    def load(self, uids: Iterable[str | None]) -> dict[str, StoredTask]:
        """The stored tasks among `uids`, by uid."""
        return _load(self._conn, uids)

    def save(self, plan: WritePlan) -> None:
        """Insert or update the planned tasks (unchanged ones are in neither list)."""
        if plan.inserted:
            self._conn.executemany(
                "INSERT INTO tasks (uid, doc, version, internal_created_at, internal_updated_at)"
                " VALUES (?, ?, ?, ?, ?)",
                [
                    (t.uid, _dumps(t.doc), t.version, t.internal_created_at, t.internal_updated_at)
                    for t in plan.inserted
                ],
            )
        if plan.updated:
            # By seq, the table's own key, which the loaded task carries: one
            # B-tree search per row instead of two (uid index, then table).
            self._conn.executemany(
                "UPDATE tasks SET doc = ?, version = ?, internal_updated_at = ? WHERE seq = ?",
                [(_dumps(t.doc), t.version, t.internal_updated_at, t.seq) for t in plan.updated],
            )

    def delete(self, uid: str) -> StoredTask | None:
        """Remove the task `uid`; return it, or None when there was none."""
        row = self._conn.execute(
            f"DELETE FROM tasks WHERE uid = ? RETURNING {_COLUMNS}",  # noqa: S608
            (uid,),
        ).fetchone()
        self._conn.execute("DELETE FROM comments WHERE task_uid = ?", (uid,))
        return None if row is None else _task_from_row(row)

    def delete_all(self) -> None:
        """Remove every task, and their comments."""
        self._conn.execute("DELETE FROM tasks")
        self._conn.execute("DELETE FROM comments")

    def add_comment(self, comment: JsonObject) -> None:
        """Store `comment` (its `uid` and `task_uid` set) on its task, after those before it."""
        self._conn.execute(
            "INSERT INTO comments (uid, task_uid, doc) VALUES (?, ?, ?)",
            (comment["uid"], comment["task_uid"], _dumps(comment)),
        )

    def add_users(self, emails: Iterable[str], now: str) -> None:
        """Register users by email (known ones are left as they are)."""
        for email in emails:
            if self._store.user_by_email(email) is None:
                record = user_record(email, now)
                self._conn.execute(
                    "INSERT OR IGNORE INTO users (uid, email, record) VALUES (?, ?, ?)",
                    (record["uid"], record["email"], _dumps(record)),
                )
                self.new_users.append(record)


class TaskStore:
    """Tasks and users in SQLite at `path` (a file, or ":memory:")."""

    def __init__(self, path: str | os.PathLike[str] = ":memory:") -> None:
        self.path = os.fspath(path)
        # isolation_level=None: transactions are opened explicitly in writing().
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._lock = threading.RLock()
        if self.path != ":memory:":
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)
        self._conn.create_function("json_value_matches", 3, _json_value_matches, deterministic=True)
        self._user_json: dict[str, bytes] = {}  # by uid: read models embed them
        self._users_by_email: dict[str, JsonObject] = {}
        for (record_text,) in self._conn.execute("SELECT record FROM users"):
            self._remember_user(json.loads(record_text))

    def close(self) -> None:
        """Close the database; the store is unusable afterwards."""
        with self._lock:
            self._conn.close()

    @contextmanager
    def writing(self) -> Iterator[StoreWriter]:
        """A transaction holding the store's lock: commit on exit, roll back on error."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            writer = StoreWriter(self._conn, self)
            try:
                yield writer
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
            for record in writer.new_users:
                self._remember_user(record)

    # -- reads -------------------------------------------------------------

    def get(self, uid: str) -> JsonObject | None:
        """The read model of task `uid`, or None."""
        task = self.stored(uid)
        return None if task is None else self.render(task)

    def stored(self, uid: str) -> StoredTask | None:
        """Task `uid` as stored, or None."""
        with self._lock:
            return _load(self._conn, [uid]).get(uid)

    def version(self, uid: str) -> int | None:
        """How many times task `uid` changed (1 = as created), or None if unknown."""
        task = self.stored(uid)
        return None if task is None else task.version

    def count(self) -> int:
        """How many tasks are stored."""
        with self._lock:
            (total,) = self._conn.execute("SELECT COUNT(*) FROM tasks").fetchone()
        return int(total)

    def comments(self, task_uid: str) -> list[JsonObject]:
        """The comments on task `task_uid`, oldest first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT doc FROM comments WHERE task_uid = ? ORDER BY seq", (task_uid,)
            ).fetchall()
        return [_loads(doc) for (doc,) in rows]

    def all_tasks(self) -> list[JsonObject]:
        """Every task's read model, in insertion order."""
        with self._lock:
            rows = self._conn.execute(f"SELECT {_COLUMNS} FROM tasks ORDER BY seq").fetchall()  # noqa: S608
        return [self.render(_task_from_row(row)) for row in rows]

    def list_page(self, query: TaskQuery) -> TaskPage:
        """The page of tasks matching `query`, in its order (insertion order by default)."""
        where, params = self._filters(query)
        key = ORDERS[query.order_by]
        after = query.after or START
        # Keyset paging on (key, seq): a task changed while a client pages moves on, and
        # is listed again further along rather than shifting the pages it left.
        beyond = f"({key} > ? OR ({key} = ? AND seq > ?))"
        up_to = f"({key} < ? OR ({key} = ? AND seq <= ?))"
        at = (after.key, after.key, after.seq)
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_COLUMNS}, {key} FROM tasks WHERE {where} AND {beyond}"  # noqa: S608
                f" ORDER BY {key}, seq LIMIT ?",
                (*params, *at, query.limit + 1),
            ).fetchall()
            (total,) = self._conn.execute(
                f"SELECT COUNT(*) FROM tasks WHERE {where}",  # noqa: S608
                params,
            ).fetchone()
            earlier = self._conn.execute(
                f"SELECT {key}, seq FROM tasks WHERE {where} AND {up_to}"  # noqa: S608
                f" ORDER BY {key} DESC, seq DESC LIMIT 1 OFFSET ?",
                (*params, *at, query.limit),
            ).fetchone()
            any_earlier = self._conn.execute(
                f"SELECT 1 FROM tasks WHERE {where} AND {up_to} LIMIT 1",  # noqa: S608
                (*params, *at),
            ).fetchone()
        shown = rows[: query.limit]
        tasks = [_task_from_row(row[:-1]) for row in shown]
        next_after = None
        if len(rows) > query.limit and shown:
            next_after = Position(str(shown[-1][-1]), int(shown[-1][0]))
        # The previous page starts right after the task `limit` places before
        # this page's start; with fewer tasks before, it is the first page.
        prev_after = None
        if any_earlier is not None:
            prev_after = START if earlier is None else Position(str(earlier[0]), int(earlier[1]))
        return TaskPage(
            [self.render_json(task) for task in tasks], int(total), next_after, prev_after
        )

    def render(self, task: StoredTask) -> JsonObject:
        """The read model of `task` (`render_json`, decoded)."""
        rendered: JsonObject = _loads(self.render_json(task))
        return rendered

    def render_json(self, task: StoredTask) -> bytes:
        """The read model of `task` as JSON, its assignee expanded (null when unknown)."""
        assignee_uid = task.doc.get("assignee_uid")
        assignee = b"null" if assignee_uid is None else self._user_json.get(assignee_uid, b"null")
        return read_model_json(
            task.doc, task.internal_created_at, task.internal_updated_at, assignee
        )

    def user_by_email(self, email: str) -> JsonObject | None:
        """The registered user with this email, or None."""
        return self._users_by_email.get(email.strip().lower())

    # -- maintenance -------------------------------------------------------

    def clear_tasks(self) -> None:
        """Delete every task (users stay)."""
        with self.writing() as writer:
            writer.delete_all()

    # -- internals ---------------------------------------------------------

    def _remember_user(self, record: JsonObject) -> None:
        self._user_json[record["uid"]] = pydantic_core.to_json(record)
        self._users_by_email[record["email"]] = record

    @staticmethod
    def _filters(query: TaskQuery) -> tuple[str, tuple[Any, ...]]:
        clauses = ["1"]
        params: list[Any] = []
        if query.status is not None:
            clauses.append("json_extract(doc, '$.status') = ?")
            params.append(query.status)
        if query.archived is not None:
            # A task with archived null counts as not archived.
            clauses.append("coalesce(json_extract(doc, '$.archived'), 0) = ?")
            params.append(int(query.archived))
        if query.assignee_uid is not None:
            clauses.append("json_extract(doc, '$.assignee_uid') = ?")
            params.append(query.assignee_uid)
        if query.updated_after is not None:
            # Tasks the client never gave an updated_at are dated by the server's clock.
            clauses.append("coalesce(json_extract(doc, '$.updated_at'), internal_updated_at) > ?")
            params.append(query.updated_after)
        if query.created_after is not None:
            clauses.append("coalesce(json_extract(doc, '$.created_at'), internal_created_at) > ?")
            params.append(query.created_after)
        for path, wanted in query.field_equals:
            clauses.append("json_value_matches(json_type(doc, ?), json_extract(doc, ?), ?)")
            params.extend((path, path, wanted))
        return " AND ".join(clauses), tuple(params)
