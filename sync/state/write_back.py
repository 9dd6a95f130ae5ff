"""The state of two-way sync: what each ticket last received from Fragment, and the poll's mark.

Per ticket (`schema.write_backs`): the hash of the status and assignee last
written back, or met with nothing to write (`written_hash`); a write the source
refused, with what was asked and when it is due again (`sync.failures`); a
conflict the rule decided. Per connector (`schema.write_back_marks`): where the
poll of Fragment's changes resumes. What Fragment last received from the
source is `tasks.sides_hash`, written by each push. What to write, and when,
is `sync.write_back`'s; this only keeps it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from sync import failures
from sync.batches import batched
from sync.state.bulk import IN_CHUNK, upsert
from sync.state.schema import people, tasks, write_back_marks, write_backs
from sync.state.store import StateStore, utcnow
from sync.state.text import error_text


@dataclass(frozen=True)
class TrackedTask:
    """A task this connector pushed: its ticket, and the hash of the status and assignee
    its last push set (None: pushed before two-way sync kept it)."""

    source_id: str
    sides_hash: str | None


@dataclass(frozen=True)
class Written:
    """What a ticket last received from Fragment: the hash written (or met), the task's
    `sides_hash` at the time, and a write begun but not known to have ended."""

    hash: str | None
    over: str | None
    writing: str | None


@dataclass(frozen=True)
class Refusal:
    """A write-back the source refused, due again: the ticket, its task, what was asked."""

    source_id: str
    uid: str
    wanted: dict[str, Any]
    attempts: int
    first_failed: dt.datetime


@dataclass(frozen=True)
class WriteBackRow:
    """A ticket's two-way row as `status` and `failures` show it."""

    source_id: str
    uid: str
    field: str | None
    error: str | None
    wanted: dict[str, Any] | None
    attempts: int
    retry_at: dt.datetime | None
    conflict: str | None
    conflict_at: dt.datetime | None


@dataclass(frozen=True)
class WriteBackCounts:
    """A connector's tickets with a refused write (due again later) and with a conflict."""

    refused: int = 0
    conflicts: int = 0


class WriteBackLedger:
    """Two-way sync's rows in `store`'s database. Thread-safe, as `StateStore`."""

    def __init__(self, store: StateStore) -> None:
        self.engine = store.engine
        self.retry_policy = store.retry_policy

    # The poll's mark

    def mark(self, connector: str) -> dt.datetime | None:
        """Where `connector`'s poll of Fragment's changes resumes (None: from the start)."""
        with self.engine.connect() as conn:
            value = conn.execute(
                sa.select(write_back_marks.c.mark).where(write_back_marks.c.connector == connector)
            ).scalar_one_or_none()
        return _aware(value)

    def set_mark(self, connector: str, mark: dt.datetime) -> None:
        with self.engine.begin() as conn:
            row = {"connector": connector, "mark": mark, "updated_at": utcnow()}
            upsert(conn, write_back_marks, [row], keys=("connector",))

    # Tasks and tickets

    def tracked(self, connector: str, uids: Iterable[str]) -> dict[str, TrackedTask]:
        """The tasks among `uids` this connector pushed, by uid."""
        found: dict[str, TrackedTask] = {}
        with self.engine.connect() as conn:
            for chunk in batched(list(dict.fromkeys(uids)), IN_CHUNK):
                rows = conn.execute(
                    sa.select(tasks.c.uid, tasks.c.source_id, tasks.c.sides_hash).where(
                        tasks.c.connector == connector, tasks.c.uid.in_(chunk)
                    )
                )
                found.update({row[0]: TrackedTask(row[1], row[2]) for row in rows})
        return found

    def written(self, connector: str, source_ids: Iterable[str]) -> dict[str, Written]:
        """What each of these tickets last received from Fragment, by ticket."""
        found: dict[str, Written] = {}
        columns = (
            write_backs.c.source_id,
            write_backs.c.written_hash,
            write_backs.c.written_over,
            write_backs.c.writing_hash,
        )
        with self.engine.connect() as conn:
            for chunk in batched(list(dict.fromkeys(source_ids)), IN_CHUNK):
                rows = conn.execute(
                    sa.select(*columns).where(
                        write_backs.c.connector == connector, write_backs.c.source_id.in_(chunk)
                    )
                )
                found.update({row[0]: Written(row[1], row[2], row[3]) for row in rows})
        return found

    def user_ids(self, connector: str, emails: Iterable[str]) -> dict[str, str]:
        """The source user id of each email the people cache knows (any case), by email
        casefolded; an email two users share is left out (which one is meant?)."""
        wanted = {email.casefold() for email in emails}
        seen: dict[str, set[str]] = {}
        with self.engine.connect() as conn:
            for chunk in batched(sorted(wanted), IN_CHUNK):
                rows = conn.execute(
                    sa.select(people.c.email, people.c.user_id).where(
                        people.c.connector == connector,
                        sa.func.lower(people.c.email).in_(chunk),
                    )
                )
                for email, user_id in rows:
                    seen.setdefault(str(email).casefold(), set()).add(str(user_id))
        return {email: ids.pop() for email, ids in seen.items() if len(ids) == 1}

    # What happened to each change

    def writing(self, connector: str, source_id: str, uid: str, writing_hash: str) -> None:
        """About to write `writing_hash` to the ticket: until `wrote` (or a refusal), the
        source may or may not hold it (a crash in between), and the next pass writes again."""
        self._upsert(connector, source_id, uid, writing_hash=writing_hash)

    def wrote(
        self, connector: str, source_id: str, uid: str, written_hash: str, over: str | None
    ) -> None:
        """Fragment's status and assignee (`written_hash`) are the ticket's now: written, or
        nothing to write; `over`, the task's `sides_hash` then. Clears a refusal."""
        self._upsert(
            connector,
            source_id,
            uid,
            written_hash=written_hash,
            written_over=over,
            written_at=utcnow(),
            writing_hash=None,
            wanted=None,
            error=None,
            field=None,
            attempts=0,
            first_failed=None,
            retry_at=None,
        )

    def refused(
        self,
        connector: str,
        source_id: str,
        uid: str,
        *,
        wanted: dict[str, Any],
        written_hash: str,
        over: str | None,
        field: str,
        error: str,
        previous: Refusal | None = None,
    ) -> None:
        """The source refused to write `wanted`: due again per the failed-item policy. The
        change counts as met (`written_hash`): the poll won't ask again, the retry will."""
        now = utcnow()
        first = now if previous is None else previous.first_failed
        self._upsert(
            connector,
            source_id,
            uid,
            written_hash=written_hash,
            written_over=over,
            writing_hash=None,
            wanted=json.dumps(wanted, sort_keys=True),
            error=error_text(error),
            field=field,
            attempts=1 if previous is None else previous.attempts + 1,
            first_failed=first,
            retry_at=failures.retry_at(first, now, self.retry_policy),
        )

    def conflicted(
        self, connector: str, source_id: str, uid: str, what: str, met: str, over: str | None
    ) -> None:
        """The rule gave the ticket's side the win over Fragment's change (`what`, whose
        hash is `met`); `over`, the task's `sides_hash` then."""
        self._upsert(
            connector,
            source_id,
            uid,
            written_hash=met,
            written_over=over,
            writing_hash=None,
            conflict=error_text(what),
            conflict_at=utcnow(),
        )

    def due(self, connector: str, now: dt.datetime) -> list[Refusal]:
        """The refused writes due again at `now`, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    write_backs.c.source_id,
                    write_backs.c.uid,
                    write_backs.c.wanted,
                    write_backs.c.attempts,
                    write_backs.c.first_failed,
                )
                .where(
                    write_backs.c.connector == connector,
                    write_backs.c.retry_at.is_not(None),
                    write_backs.c.retry_at <= now,
                )
                .order_by(write_backs.c.first_failed)
            ).all()
        return [
            Refusal(row[0], row[1], json.loads(row[2] or "{}"), row[3], _aware(row[4]) or now)
            for row in rows
        ]

    def rows(self, connector: str) -> list[WriteBackRow]:
        """The tickets with a refused write or a conflict, newest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    write_backs.c.source_id,
                    write_backs.c.uid,
                    write_backs.c.field,
                    write_backs.c.error,
                    write_backs.c.wanted,
                    write_backs.c.attempts,
                    write_backs.c.retry_at,
                    write_backs.c.conflict,
                    write_backs.c.conflict_at,
                )
                .where(
                    write_backs.c.connector == connector,
                    sa.or_(write_backs.c.error.is_not(None), write_backs.c.conflict.is_not(None)),
                )
                .order_by(write_backs.c.source_id)
            ).all()
        return [
            WriteBackRow(
                row[0],
                row[1],
                row[2],
                row[3],
                None if row[4] is None else json.loads(row[4]),
                row[5],
                _aware(row[6]),
                row[7],
                _aware(row[8]),
            )
            for row in rows
        ]

    def counts_each(self) -> dict[str, WriteBackCounts]:
        """Each connector's refused writes and conflicts, by connector: one query."""
        refused = sa.func.count(write_backs.c.error)
        conflicts = sa.func.sum(
            sa.case(
                (sa.and_(write_backs.c.error.is_(None), write_backs.c.conflict.is_not(None)), 1),
                else_=0,
            )
        )
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(write_backs.c.connector, refused, conflicts).group_by(
                    write_backs.c.connector
                )
            ).all()
        return {row[0]: WriteBackCounts(int(row[1] or 0), int(row[2] or 0)) for row in rows}

    def _upsert(self, connector: str, source_id: str, uid: str, **values: Any) -> None:
        row = {"connector": connector, "source_id": source_id, "uid": uid, **values}
        with self.engine.begin() as conn:
            upsert(conn, write_backs, [row], keys=("connector", "source_id"))


def _aware(moment: dt.datetime | None) -> dt.datetime | None:
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    return moment
