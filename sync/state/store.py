"""The state store's API: watermarks, pushed-content hashes, run history, failed items, leases.

Any SQLAlchemy URL works; SQLite (the default), PostgreSQL and MariaDB are
tested. The one write that matters, `commit_batch`, stores a batch's hashes,
its failed items and the new watermark in a single transaction, so state
never runs ahead of what Fragment acknowledged. What to store is decided by
`sync.run`, and when a failed item is tried again by the policy the store is
given (`sync.failures`); this module only keeps it. Opening and migrating a
database is `sync.state.bootstrap`'s, the batch SQL `sync.state.bulk`'s, the
text kept about failures `sync.state.text`'s (redacted on the way in).
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from connectors.base import Cursor, Person
from sync import failures
from sync.batches import Payload, batched
from sync.errors import FixConfiguration, StopConnector, first_line
from sync.state import bootstrap
from sync.state.bootstrap import HEAD_REVISION, shown
from sync.state.bulk import (
    IN_CHUNK,
    clear_failed,
    failed_error_rows,
    read_time,
    stored_task_rows,
    upsert,
    upsert_columns,
)
from sync.state.history import (
    ConnectorCounts,
    ConnectorStats,
    HistoryPolicy,
    PassRecord,
    all_counts,
    all_stats,
    mark_running,
    record_pass,
    recount,
)
from sync.state.schema import (
    censuses,
    connector_stats,
    connectors,
    failed_items,
    leases,
    people,
    pushes_in_flight,
    runs,
    tasks,
    watermarks,
)
from sync.state.text import error_text, kept_record, kept_text
from sync.state.upkeep import RunPruning, TableStatistics
from sync.watermark import cursor_kind, decode, encode
from sync_http import clock

ABANDONED = "abandoned"
"""The outcome of a run whose process died (SIGKILL, a lost host) before it could say."""
_ABANDONED_ERROR = (
    "the process running this pass ended without finishing it (killed, or its host lost); "
    "the next pass resumed from the last checkpoint"
)


class StateError(FixConfiguration):
    """The state database (`state.url`) can't be reached or used; the command exits 2."""

    def __init__(self, message: str) -> None:
        super().__init__(message, key="state.url")


UNREACHABLE = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError)
"""What the driver raises when the state database is out of reach: refused, gone, not
accepting connections, a connection dropped, a file that can't be opened or written; and
what the pool raises when none of its connections came free in time (`state.pool_timeout`)."""


def unreachable_message(exc: BaseException) -> str:
    """How a pass reports an `UNREACHABLE` error: what happened, and the driver's reason."""
    return f"the state database is unreachable: {first_line(exc)}"


STATE_FAILURES = sa.exc.SQLAlchemyError
"""Whatever the state database or its connection pool raises: `UNREACHABLE`, a pool
timeout (every connection in use), a statement refused. A pass fails on it, reported."""


def state_failure_message(exc: BaseException) -> str:
    """How a pass reports a `STATE_FAILURES` error: what happened, and the driver's reason."""
    if isinstance(exc, sa.exc.TimeoutError):  # one of `UNREACHABLE`, said more exactly
        return (
            "the state database's connection pool had no free connection in time; the next "
            f"pass tries again: {first_line(exc)}"
        )
    if isinstance(exc, UNREACHABLE):
        return unreachable_message(exc)
    return f"the state database failed: {type(exc).__name__}: {first_line(exc)}"


class LeaseLost(StopConnector):
    """Another process holds the connector's lease now: this one must stop writing.

    The pass ends `lease_lost` (not `failed`): the other process goes on with it.
    """


@dataclass(frozen=True, slots=True)
class Lease:
    connector: str
    owner: str
    acquired_at: dt.datetime
    expires_at: dt.datetime


@dataclass(frozen=True, slots=True)
class StoredTask:
    uid: str
    content_hash: str
    cursor: str
    pushed_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class FailedItem:
    """A ticket that did not reach Fragment, kept to be retried on every run."""

    source_id: str
    uid: str | None
    stage: str  # "source", "mapping" or "rejected"
    field: str | None
    error: str
    cursor: str | None = None  # as `sync.watermark.encode` wrote it
    deleted: bool = False
    record: str | None = None  # the raw record as JSON, to map again
    attempts: int = 1
    first_seen: dt.datetime | None = None
    last_seen: dt.datetime | None = None
    retry_at: dt.datetime | None = None  # None: it can't be retried (no record to map)

    @property
    def retryable(self) -> bool:
        return self.record is not None and self.stage != "source"


@dataclass(frozen=True, slots=True)
class KnownPerson:
    """What the people cache keeps of one source user id (see `sync.people`).

    `email` None: the source has none for them, or hides it; `reason` says why.
    `changed_at`: when an answer last changed their email (None: never since first asked).
    """

    user_id: str
    email: str | None
    name: str | None
    reason: str | None
    resolved_at: dt.datetime
    changed_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class Acked:
    """A task Fragment acknowledged, as the state records it."""

    source_id: str
    uid: str
    content_hash: str
    cursor: Cursor
    archived: bool = False


@dataclass(frozen=True)
class RunRecord:
    id: str
    connector: str
    name: str
    started_at: dt.datetime
    ended_at: dt.datetime | None
    outcome: str
    pulled: int
    pushed: int
    unchanged: int
    failed: int
    requests: int
    watermark_before: str | None
    watermark_after: str | None
    error: str | None


@dataclass(frozen=True)
class PassStart:
    """What a pass reads of its connector's state as it begins, in one query (`pass_start`)."""

    watermark: Cursor | None
    fingerprint: str | None
    """The settings' fingerprint of the last complete pass (`settings_fingerprint`)."""
    snapshot: str | None
    """The source's content token then (`source_snapshot`)."""
    failed: bool
    """The connector has failed items (`has_failed`)."""
    due: bool
    """Some retryable failed item is due before the time given."""
    waiting: int
    """Retryable failed items not due before it (`waiting_count`)."""
    people_changed_at: dt.datetime | None
    """When an answer last changed one of its people's email (`people_changed_at`); only
    read when asked for."""
    last_recorded: dt.datetime | None
    """When a pass of it was last written to the run history."""


@dataclass(frozen=True)
class CensusRecord:
    """A connector's last census, as `record_census` kept it."""

    connector: str
    began_at: dt.datetime
    outcome: str
    gone: int | None
    """Live tasks found gone (None: recorded before the state kept counts)."""
    archived: int | None
    forced: bool


def utcnow() -> dt.datetime:
    return clock.now()  # the clock the engine compares with its sources' (`sync_http.clock`)


class StateStore:
    """One state database. Thread-safe: each call takes its own connection."""

    def __init__(
        self,
        engine: Engine,
        history: HistoryPolicy | None = None,
        retry_policy: failures.FailedItemPolicy = failures.FAILED_ITEM_POLICY,
    ) -> None:
        self.engine = engine
        self.history = history or HistoryPolicy()
        """How much run history is kept (`sync.state.history`)."""
        self._pruning = RunPruning(self.history.keep, self.history.keep_for)
        self.retry_policy = retry_policy
        """When a failed item is due again: `retry_at` of each item recorded follows it."""
        self._statistics = TableStatistics(tasks) if engine.dialect.name == "postgresql" else None

    @classmethod
    def open(
        cls,
        url: str,
        *,
        upgrade: bool = True,
        history: HistoryPolicy | None = None,
        retry_policy: failures.FailedItemPolicy = failures.FAILED_ITEM_POLICY,
        pool: bootstrap.Pool | None = None,
    ) -> StateStore:
        """Connect to `url`, upgrading the schema to the latest revision unless told not to.

        `pool`: the connection pool's size and timeout (a server database's).

        Raises `StateError` naming the URL (without its password) when that fails, or
        when the schema is newer than this version knows (a rollback after an upgrade):
        a migration can't be undone by code that doesn't know it.
        """
        try:
            engine = bootstrap.create_engine(url, pool)
            store = cls(engine, history, retry_policy)
            revision = store.revision()  # connects: an unreachable database fails here
            if revision is not None and revision > HEAD_REVISION:  # zero-padded: text order
                raise StateError(
                    f"state database {shown(url)} is at schema revision {revision}, newer than "
                    f"this version of fragment-sync knows ({HEAD_REVISION}): run the version "
                    "that upgraded it, or a newer one; this one leaves it alone"
                )
            if upgrade and revision != HEAD_REVISION:
                store.upgrade()
        except (sa.exc.SQLAlchemyError, OSError) as exc:
            raise StateError(f"state database {shown(url)}: {first_line(exc)}") from None
        except ImportError as exc:  # the URL names a driver this install lacks
            raise StateError(
                f"state database {shown(url)}: its driver is not installed ({exc}); install "
                "it, or use the drivers the extras bring: postgresql+psycopg (fragment-sync"
                "[postgres]), mysql+pymysql (fragment-sync[mysql])"
            ) from None
        return store

    @classmethod
    def open_to_read(cls, url: str) -> StateStore:
        """The state at `url` to read from, changing and creating nothing (a dry run's).

        A database that holds no state yet (a SQLite file not there, a database
        without our tables) reads as an empty state kept in memory. Raises
        `StateError` when the database can't be read, or its schema is older
        than this version reads (upgrading it would change it).
        """
        parsed = sa.engine.make_url(url)
        database = parsed.database
        if (
            parsed.get_backend_name() == "sqlite"
            and database
            and database != ":memory:"
            and not Path(database).exists()
        ):
            return cls._empty()
        store = cls.open(url, upgrade=False)
        try:
            revision = store.revision()
        except sa.exc.SQLAlchemyError as exc:
            store.close()
            raise StateError(f"state database {shown(url)}: {first_line(exc)}") from None
        if revision is None:
            store.close()
            return cls._empty()
        if revision != HEAD_REVISION:
            store.close()
            raise StateError(
                f"state database {shown(url)} is at schema revision {revision}; this version "
                f"reads {HEAD_REVISION}. A dry run changes nothing: run `python -m sync db "
                "upgrade` first"
            )
        return store

    @classmethod
    def _empty(cls) -> StateStore:
        """A state with nothing in it, in this process's memory only."""
        return cls(bootstrap.memory_engine())

    def revision(self) -> str | None:
        """The schema revision the database is at (None: not created yet)."""
        return bootstrap.revision(self.engine)

    def upgrade(self, revision: str = "head", *, replay: bool = False) -> None:
        """Run the migrations up to `revision` (the latest by default); see `bootstrap.upgrade`."""
        bootstrap.upgrade(self.engine, revision, replay=replay)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def ping(self) -> None:
        """Raise if the database does not answer a trivial query."""
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    # Watermarks

    def watermark(self, connector: str) -> Cursor | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(watermarks.c.cursor_kind, watermarks.c.cursor_value).where(
                    watermarks.c.connector == connector
                )
            ).first()
        return None if row is None else decode(row.cursor_kind, row.cursor_value)

    def pass_start(
        self, connector: str, now: dt.datetime, *, with_people: bool = False
    ) -> PassStart:
        """What a pass reads of `connector`'s state as it begins, in one query.

        Its watermark, the fingerprint and content token of its last complete
        pass, whether it has failed items and any due before `now`, how many
        are not, when its run was last written to the history, and with
        `with_people` when a cached email last changed. Each is a lookup by key or a
        range of an index: an idle pass reads nothing else.
        """
        with self.engine.connect() as conn:
            query = _pass_start_query(with_people)
            row = conn.execute(query, {"connector": connector, "now": now}).one()
        kind, value, fingerprint, snapshot, failed, due, waiting, recorded, *changed_at = row
        return PassStart(
            watermark=None if kind is None else decode(kind, value),
            fingerprint=fingerprint,
            snapshot=snapshot,
            failed=bool(failed),
            due=bool(due),
            waiting=int(waiting),
            people_changed_at=aware(read_time(conn, changed_at[0])) if changed_at else None,
            last_recorded=aware(read_time(conn, recorded)),
        )

    def watermarks_each(self) -> dict[str, Cursor]:
        """Every connector's watermark, by connector (one query, whatever their number)."""
        query = sa.select(
            watermarks.c.connector, watermarks.c.cursor_kind, watermarks.c.cursor_value
        )
        with self.engine.connect() as conn:
            return {row[0]: decode(row[1], row[2]) for row in conn.execute(query).all()}

    def set_watermark(self, connector: str, cursor: Cursor | None) -> None:
        """Put the watermark at `cursor` (None forgets it: the next run is a backfill).

        Forgets the source's content token too, so the next pass reads even an
        unchanged source from there.
        """
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(connectors)
                .where(connectors.c.connector == connector)
                .values(source_snapshot=None)
            )
            if cursor is None:
                conn.execute(sa.delete(watermarks).where(watermarks.c.connector == connector))
            else:
                _save_watermark(conn, connector, cursor)

    # Tasks and their hashes

    def stored_tasks(self, connector: str, source_ids: Iterable[str]) -> dict[str, StoredTask]:
        """The stored hash (and uid, cursor) of each of `source_ids` that has one."""
        wanted = list(dict.fromkeys(source_ids))
        found: dict[str, StoredTask] = {}
        with self.engine.connect() as conn:
            for chunk in batched(wanted, IN_CHUNK):
                for source_id, uid, content_hash, cursor, pushed_at in stored_task_rows(
                    conn, connector, chunk
                ):
                    found[source_id] = StoredTask(
                        uid, content_hash, cursor, aware(read_time(conn, pushed_at))
                    )
        return found

    def forget_tasks(self, connector: str) -> int:
        """Forget the pushed-content hashes, so the next pass pushes every ticket it reads."""
        with self.engine.begin() as conn:
            forgotten = conn.execute(sa.delete(tasks).where(tasks.c.connector == connector))
            recount(conn, connector)
        return int(forgotten.rowcount)

    def mark_in_flight(self, connector: str, source_ids: Sequence[str]) -> None:
        """Record that these tickets are about to be sent, before they are."""
        if not source_ids:
            return
        columns: dict[str, list[Any]] = {
            "connector": [connector] * len(source_ids),
            "source_id": list(source_ids),
            "sent_at": [utcnow()] * len(source_ids),
        }
        with self.engine.begin() as conn:
            upsert_columns(conn, pushes_in_flight, columns, keys=("connector", "source_id"))

    def in_flight(self, connector: str, source_ids: Iterable[str]) -> set[str]:
        """Those of `source_ids` whose push went out and whose answer was never recorded."""
        wanted = list(dict.fromkeys(source_ids))
        found: set[str] = set()
        if not wanted:
            return found
        with self.engine.connect() as conn:
            for chunk in batched(wanted, IN_CHUNK):
                found.update(
                    conn.execute(_IN_FLIGHT, {"connector": connector, "ids": chunk}).scalars()
                )
        return found

    def tracked_pages(self, connector: str, size: int) -> Iterator[list[tuple[str, bool]]]:
        """Every task of `connector` the state tracks, `size` at a time, in source-id order.

        Each as (source id, whether it was last pushed archived). The order is
        code-point order on every backend (PostgreSQL's `C` collation, the
        binary one on MySQL and SQLite), the order Python compares text in: the
        census merges it with the source's ids. Each page is its own query keyed
        past the last id of the one before, so a million tasks are never held at
        once and checkpoints may land between.
        """
        source_id: Any = tasks.c.source_id
        if self.engine.dialect.name == "postgresql":
            source_id = source_id.collate("C")
        query = (
            sa.select(tasks.c.source_id, tasks.c.archived)
            .where(tasks.c.connector == connector)
            .order_by(source_id)
            .limit(size)
        )
        after: str | None = None
        while True:
            page = query if after is None else query.where(source_id > after)
            with self.engine.connect() as conn:
                rows = [(row[0], bool(row[1])) for row in conn.execute(page)]
            if rows:
                yield rows
            if len(rows) < size:
                return
            after = rows[-1][0]

    def live_task_count(self, connector: str) -> int:
        """How many of `connector`'s tracked tasks were not last pushed archived."""
        with self.engine.connect() as conn:
            count = conn.execute(
                sa.select(sa.func.count())
                .select_from(tasks)
                .where(tasks.c.connector == connector, tasks.c.archived == sa.false())
            ).scalar_one()
        return int(count)

    def record_census(
        self,
        connector: str,
        began: dt.datetime,
        outcome: str,
        *,
        gone: int | None = None,
        archived: int | None = None,
        forced: bool = False,
    ) -> None:
        """Record that a census of `connector` began at `began` and ended `outcome`, having
        found `gone` live tasks gone and archived `archived` (`forced`: beyond the share)."""
        row = {
            "connector": connector,
            "began_at": began,
            "outcome": outcome,
            "gone": gone,
            "archived": archived,
            "forced": forced,
        }
        with self.engine.begin() as conn:
            upsert(conn, censuses, [row], keys=("connector",))
            recount(conn, connector)  # what it archived and failed to: the summary's counts

    def census_record(self, connector: str) -> CensusRecord | None:
        """The last census of `connector` as recorded (None: it never took one)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(
                    censuses.c.began_at,
                    censuses.c.outcome,
                    censuses.c.gone,
                    censuses.c.archived,
                    censuses.c.forced,
                ).where(censuses.c.connector == connector)
            ).first()
        if row is None:
            return None
        began = aware(row.began_at)
        assert began is not None
        return CensusRecord(connector, began, row.outcome, row.gone, row.archived, bool(row.forced))

    def census_records_each(self) -> dict[str, CensusRecord]:
        """Every connector's last census, by connector (one query, whatever their number)."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(censuses)).mappings().all()
        return {
            row["connector"]: CensusRecord(
                row["connector"],
                aware(row["began_at"]) or utcnow(),
                row["outcome"],
                row["gone"],
                row["archived"],
                bool(row["forced"]),
            )
            for row in rows
        }

    def last_census(self, connector: str) -> dt.datetime | None:
        """When the last census of `connector` began (None: it never took one)."""
        with self.engine.connect() as conn:
            began = conn.execute(
                sa.select(censuses.c.began_at).where(censuses.c.connector == connector)
            ).scalar()
        return aware(began)

    def task_count(self, connector: str) -> int:
        with self.engine.connect() as conn:
            count = conn.execute(
                sa.select(sa.func.count()).select_from(tasks).where(tasks.c.connector == connector)
            ).scalar_one()
        return int(count)

    # People

    def known_people(self, connector: str, user_ids: Iterable[str]) -> dict[str, KnownPerson]:
        """What the people cache holds of each of `user_ids` that it holds, by user id."""
        wanted = list(dict.fromkeys(user_ids))
        found: dict[str, KnownPerson] = {}
        with self.engine.connect() as conn:
            for chunk in batched(wanted, IN_CHUNK):
                query = sa.select(people).where(
                    people.c.connector == connector, people.c.user_id.in_(chunk)
                )
                for row in conn.execute(query).mappings():
                    found[row["user_id"]] = _known_person(row)
        return found

    def keep_people(self, connector: str, answers: Sequence[Person]) -> list[str]:
        """Cache what the source said of each person in `answers`, as resolved now.

        Returns the user ids whose email the answer changed (from one address
        to another, or between an address and none): their `changed_at`
        becomes now. A first answer changes nothing. Names and reasons are
        kept redacted and cut to their columns' length.
        """
        if not answers:
            return []
        latest = {person.user_id: person for person in answers}
        now = utcnow()
        changed: list[str] = []
        with self.engine.begin() as conn:
            before: dict[str, tuple[str | None, dt.datetime | None]] = {}
            for chunk in batched(list(latest), IN_CHUNK):
                query = sa.select(people.c.user_id, people.c.email, people.c.changed_at).where(
                    people.c.connector == connector, people.c.user_id.in_(chunk)
                )
                for row in conn.execute(query):
                    before[row.user_id] = (row.email, aware(row.changed_at))
            rows = []
            for user_id, person in latest.items():
                changed_at = None
                if user_id in before:
                    email, changed_at = before[user_id]
                    if email != person.email:
                        changed_at = now
                        changed.append(user_id)
                rows.append(
                    {
                        "connector": connector,
                        "user_id": user_id,
                        "email": person.email,
                        "name": _short_text(person.name),
                        "reason": _short_text(person.reason),
                        "resolved_at": now,
                        "changed_at": changed_at,
                    }
                )
            upsert(conn, people, rows, keys=("connector", "user_id"))
        return changed

    def people_changed_at(self, connector: str) -> dt.datetime | None:
        """When an answer last changed the email of one of the connector's people, if ever."""
        with self.engine.connect() as conn:
            moment = conn.execute(
                sa.select(sa.func.max(people.c.changed_at)).where(people.c.connector == connector)
            ).scalar()
        return aware(moment)

    def people_pages(self, connector: str, size: int) -> Iterator[list[KnownPerson]]:
        """Every person the connector's cache holds, `size` at a time in user-id order."""
        query = (
            sa.select(people)
            .where(people.c.connector == connector)
            .order_by(people.c.user_id)
            .limit(size)
        )
        after: str | None = None
        while True:
            page = query if after is None else query.where(people.c.user_id > after)
            with self.engine.connect() as conn:
                rows = [_known_person(row) for row in conn.execute(page).mappings()]
            if rows:
                yield rows
            if len(rows) < size:
                return
            after = rows[-1].user_id

    # The checkpoint

    def commit_batch(
        self,
        connector: str,
        *,
        acked: Sequence[Payload] = (),
        failed: Sequence[FailedItem] = (),
        resolved: Sequence[str] = (),
        watermark: Cursor | None = None,
        fingerprint: str | None = None,
        snapshot: str | None = None,
        lease: tuple[str, float] | None = None,
    ) -> None:
        """Record one acknowledged batch, in one transaction.

        Stores the hashes of `acked`, adds or updates `failed`, clears the
        failed items `resolved` (and those of every acked ticket), moves the
        watermark to `watermark` when given, and records `fingerprint` as the
        settings of a complete pass when given (with `snapshot`, the source's
        content token when that pass began). With `lease` (owner, ttl
        seconds) the same transaction renews the lease, and raises `LeaseLost`
        (writing nothing) if another process holds it now.
        """
        now = utcnow()
        with self.engine.begin() as conn:
            if lease is not None and not _renew(conn, connector, *lease, now):
                raise LeaseLost(f"connector {connector!r}: the lease passed to another process")
            if acked:
                columns: dict[str, list[Any]] = {
                    "connector": [connector] * len(acked),
                    "source_id": [item.source_id for item in acked],
                    "uid": [item.uid for item in acked],
                    "content_hash": [item.content_hash for item in acked],
                    "source_cursor": [encode(item.cursor) for item in acked],
                    "pushed_at": [now] * len(acked),
                    "archived": [item.archived for item in acked],
                    "sides_hash": [getattr(item, "sides_hash", None) for item in acked],
                }
                upsert_columns(conn, tasks, columns, keys=("connector", "source_id"))
            if resolved or _has_rows(conn, failed_items, connector):
                cleared = [*resolved, *(item.source_id for item in acked)]
                for chunk in batched(cleared, IN_CHUNK):
                    clear_failed(conn, connector, chunk)
            if _has_rows(conn, pushes_in_flight, connector):
                answered = [*(i.source_id for i in acked), *(i.source_id for i in failed)]
                for chunk in batched(answered, IN_CHUNK):
                    conn.execute(_CLEAR_IN_FLIGHT, {"connector": connector, "ids": chunk})
            if failed:
                _record_failures(conn, connector, failed, now, self.retry_policy)
            if watermark is not None:
                _save_watermark(conn, connector, watermark)
            if fingerprint is not None:
                row = {
                    "connector": connector,
                    "settings_fingerprint": fingerprint,
                    "full_pass_at": now,
                    "source_snapshot": snapshot,
                }
                upsert(conn, connectors, [row], keys=("connector",))
        if self._statistics is not None and acked:
            self._statistics.wrote(self.engine, len(acked))

    def source_snapshot(self, connector: str) -> str | None:
        """The source's content token at the connector's last complete pass, if it gave one."""
        with self.engine.connect() as conn:
            value = conn.execute(
                sa.select(connectors.c.source_snapshot).where(connectors.c.connector == connector)
            ).scalar_one_or_none()
        return None if value is None else str(value)

    def refresh_snapshot(self, connector: str, previous: str, snapshot: str) -> None:
        """Keep `snapshot`, a fresher token of the content `previous` describes.

        Only while `previous` is still the token kept: a reset in between wins.
        """
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(connectors)
                .where(
                    connectors.c.connector == connector,
                    connectors.c.source_snapshot == previous,
                )
                .values(source_snapshot=snapshot)
            )

    def settings_fingerprint(self, connector: str) -> str | None:
        """The fingerprint of the settings the connector's last complete pass ran with."""
        with self.engine.connect() as conn:
            value = conn.execute(
                sa.select(connectors.c.settings_fingerprint).where(
                    connectors.c.connector == connector
                )
            ).scalar_one_or_none()
        return None if value is None else str(value)

    # Leases

    def acquire_lease(self, connector: str, owner: str, ttl: float) -> bool:
        """Take the connector's lease for `ttl` seconds if it is free (released: no owner),
        expired or ours.

        Returns False when another live process holds it. A released lease is free
        whatever its time says: this machine's clock may have gone back since.
        """
        now = utcnow()
        expires = now + dt.timedelta(seconds=ttl)
        with self.engine.begin() as conn:
            taken = conn.execute(
                sa.update(leases)
                .where(
                    leases.c.connector == connector,
                    sa.or_(
                        leases.c.expires_at <= now, leases.c.owner == owner, leases.c.owner == ""
                    ),
                )
                .values(owner=owner, acquired_at=now, expires_at=expires)
            ).rowcount
            if taken:
                return True
            exists = conn.execute(
                sa.select(leases.c.owner).where(leases.c.connector == connector)
            ).first()
            if exists is not None:
                return False
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    sa.insert(leases).values(
                        connector=connector, owner=owner, acquired_at=now, expires_at=expires
                    )
                )
        except sa.exc.IntegrityError:
            return False  # another process inserted it first
        return True

    def renew_lease(self, connector: str, owner: str, ttl: float) -> bool:
        """Extend our lease by `ttl` from now; False if it is no longer ours."""
        with self.engine.begin() as conn:
            return _renew(conn, connector, owner, ttl, utcnow())

    def release_lease(
        self, connector: str, owner: str, *, due_at: dt.datetime | None = None
    ) -> None:
        """Give the lease up now, if it is still `owner`'s, the daemon's next pass of the
        connector due at `due_at` (None: when it was). The row stays (`sync.state.claims`)."""
        values = {"which": connector, "holder": owner, "now": utcnow(), "due": due_at}
        with self.engine.begin() as conn:
            conn.execute(_RELEASE if due_at is None else _RELEASE_DUE, values)

    def lease(self, connector: str) -> Lease | None:
        """Who holds the connector's lease, if anyone does and it has not expired."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(leases).where(leases.c.connector == connector)).first()
        if row is None:
            return None
        expires = aware(row.expires_at)
        assert expires is not None
        if expires <= utcnow() or not row.owner:
            return None
        acquired = aware(row.acquired_at)
        assert acquired is not None
        return Lease(row.connector, row.owner, acquired, expires)

    # Failed items

    def failed_items(
        self, connector: str | None = None, limit: int | None = None
    ) -> list[FailedItem]:
        """The failed items, oldest first (at most `limit`)."""
        query = sa.select(failed_items).order_by(
            failed_items.c.connector, failed_items.c.first_seen
        )
        if connector is not None:
            query = query.where(failed_items.c.connector == connector)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [_failed_item(row) for row in conn.execute(query).mappings()]

    def oldest_failed_items_each(
        self, limit: int, connectors: Sequence[str] | None = None
    ) -> dict[str, list[FailedItem]]:
        """Each connector's `limit` oldest failed items, by connector: in one query.

        Of `connectors` only (uid namespaces), when given.
        """
        oldest = (
            sa.func.row_number()
            .over(
                partition_by=failed_items.c.connector,
                order_by=(failed_items.c.first_seen, failed_items.c.source_id),
            )
            .label("oldest")
        )
        every = sa.select(failed_items, oldest)
        if connectors is not None:
            every = every.where(failed_items.c.connector.in_(connectors))
        ranked = every.subquery()
        query = (
            sa.select(*(ranked.c[column.name] for column in failed_items.c))
            .where(ranked.c.oldest <= limit)
            .order_by(ranked.c.connector, ranked.c.oldest)
        )
        found: dict[str, list[FailedItem]] = {}
        with self.engine.connect() as conn:
            for row in conn.execute(query).mappings():
                found.setdefault(row["connector"], []).append(_failed_item(row))
        return found

    def failed_item_pages(self, connector: str, size: int) -> Iterator[list[FailedItem]]:
        """The connector's failed items, `size` at a time in source-id order."""
        where = failed_items.c.connector == connector
        return self._failed_pages(where, (failed_items.c.source_id,), size)

    def due_failed_item_pages(
        self, connector: str, size: int, before: dt.datetime
    ) -> Iterator[list[FailedItem]]:
        """The connector's retryable failed items due before `before`, `size` at a time.

        A range of the index on (connector, retry_at, source_id). An item tried
        again meanwhile is due after `before` (pass the time the pass began), so
        it is not met twice.
        """
        where = sa.and_(failed_items.c.connector == connector, failed_items.c.retry_at < before)
        return self._failed_pages(where, (failed_items.c.retry_at, failed_items.c.source_id), size)

    def _failed_pages(
        self, where: Any, key: tuple[Any, ...], size: int
    ) -> Iterator[list[FailedItem]]:
        """Failed items matching `where`, `size` at a time in the order of the `key` columns.

        Each page is its own query, keyed past the last row of the one before:
        items cleared or failing again meanwhile don't shift the pages, and a
        connector with a million failures is never held in memory at once.
        """
        query = sa.select(failed_items).order_by(*key).limit(size)
        after: tuple[Any, ...] | None = None
        while True:
            clause = where if after is None else sa.and_(where, sa.tuple_(*key) > sa.tuple_(*after))
            with self.engine.connect() as conn:
                rows = list(conn.execute(query.where(clause)).mappings())
            if rows:
                yield [_failed_item(row) for row in rows]
            if len(rows) < size:
                return
            after = tuple(rows[-1][column.name] for column in key)

    def waiting_count(self, connector: str, before: dt.datetime) -> int:
        """How many of the connector's retryable failed items are not due before `before`."""
        with self.engine.connect() as conn:
            count = conn.execute(
                sa.select(sa.func.count())
                .select_from(failed_items)
                .where(failed_items.c.connector == connector, failed_items.c.retry_at >= before)
            ).scalar_one()
        return int(count)

    def failed_errors(self, connector: str, source_ids: Iterable[str]) -> dict[str, str]:
        """The error of each of `source_ids` that is a failed item of `connector`."""
        wanted = list(dict.fromkeys(source_ids))
        found: dict[str, str] = {}
        with self.engine.connect() as conn:
            for chunk in batched(wanted, IN_CHUNK):
                found.update(failed_error_rows(conn, connector, chunk))
        return found

    def has_failed(self, connector: str) -> bool:
        """Whether the connector has any failed item (without counting them all)."""
        with self.engine.connect() as conn:
            return _has_rows(conn, failed_items, connector)

    def failed_count(self, connector: str) -> int:
        with self.engine.connect() as conn:
            count = conn.execute(
                sa.select(sa.func.count())
                .select_from(failed_items)
                .where(failed_items.c.connector == connector)
            ).scalar_one()
        return int(count)

    def drop_failed(self, connector: str, source_ids: Sequence[str] | None = None) -> int:
        """Forget failed items (all of the connector's when `source_ids` is None)."""
        query = sa.delete(failed_items).where(failed_items.c.connector == connector)
        if source_ids is not None:
            query = query.where(failed_items.c.source_id.in_(list(source_ids)))
        with self.engine.begin() as conn:
            dropped = conn.execute(query)
            recount(conn, connector)
        return int(dropped.rowcount)

    # Runs and the connectors' summary rows (`sync.state.history`)

    def start_run(
        self, connector: str, name: str, watermark: Cursor | None, run_id: str | None = None
    ) -> str:
        """Record a pass of `connector` beginning its work; its caller holds the connector's lease.

        So any run of the connector still marked running belongs to a process
        that died: it is marked abandoned. The summary row shows it running.
        Returns its id (`run_id` when given). An idle pass needs none of this:
        `finish_pass` keeps it.
        """
        run_id = run_id or str(uuid.uuid4())
        now = utcnow()
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(runs)
                .where(runs.c.connector == connector, runs.c.outcome == "running")
                .values(outcome=ABANDONED, error=_ABANDONED_ERROR)
            )
            conn.execute(
                sa.insert(runs).values(
                    id=run_id,
                    connector=connector,
                    name=name,
                    started_at=now,
                    outcome="running",
                    pulled=0,
                    pushed=0,
                    unchanged=0,
                    failed=0,
                    requests=0,
                    watermark_before=None if watermark is None else encode(watermark),
                )
            )
            mark_running(conn, connector, name, run_id, now)
            self._pruning.wrote(conn, connector, now)
        return run_id

    def finish_pass(self, record: PassRecord) -> None:
        """Keep how a pass ended: its summary row, and its run when kept (`history.record_pass`).

        One statement for an idle pass between the history's samples.
        """
        record = replace(record, error=None if record.error is None else error_text(record.error))
        with self.engine.begin() as conn:
            if record_pass(conn, record, self.history):
                self._pruning.wrote(conn, record.connector, record.ended_at)

    def finish_run(
        self,
        run_id: str,
        *,
        outcome: str,
        counts: dict[str, int],
        watermark: Cursor | None,
        error: str | None = None,
    ) -> None:
        """Record how the run `start_run` began ended, with its connector's summary row."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(runs).where(runs.c.id == run_id)).mappings().one()
        self.finish_pass(
            PassRecord(
                connector=row["connector"],
                name=row["name"],
                run_id=run_id,
                started_at=aware(row["started_at"]) or utcnow(),
                ended_at=utcnow(),
                outcome=outcome,
                error=error,
                counts=counts,
                watermark_before=row["watermark_before"],
                watermark_after=None if watermark is None else encode(watermark),
                running=True,
                changed=True,
                last_recorded=None,
            )
        )

    def connector_stats(self) -> dict[str, ConnectorStats]:
        """Every connector's summary row, by uid namespace; in one query, whatever their number.

        A pass still shown running whose process is gone (no live lease on its
        connector) reads as abandoned, as in `recent_runs`.
        """
        with self.engine.connect() as conn:
            stats = all_stats(conn)
            live = (
                _live_leases(conn) if any(s.outcome == "running" for s in stats.values()) else set()
            )
        return {
            connector: replace(row, outcome=ABANDONED, error=row.error or _ABANDONED_ERROR)
            if row.outcome == "running" and connector not in live
            else row
            for connector, row in stats.items()
        }

    def connector_counts(self) -> dict[str, ConnectorCounts]:
        """Every connector's tasks, failed items and last ok pass, by uid namespace (one query)."""
        with self.engine.connect() as conn:
            return all_counts(conn)

    def recent_runs(self, connector: str | None = None, limit: int = 20) -> list[RunRecord]:
        """The latest runs, newest first.

        A run still marked running whose process is gone reads as abandoned:
        it is not the newest of its connector, or no live lease is held on
        the connector (it expired: its holder stopped renewing it).
        """
        query = sa.select(runs).order_by(runs.c.started_at.desc()).limit(limit)
        if connector is not None:
            query = query.where(runs.c.connector == connector)
        with self.engine.connect() as conn:
            records = [_run_record(row) for row in conn.execute(query).mappings()]
            running = {record.connector for record in records if record.outcome == "running"}
            live = {_live_run(conn, name) for name in running}
        return _abandoned_shown(records, live)

    def recent_runs_each(
        self, limit: int, connectors: Sequence[str] | None = None
    ) -> dict[str, list[RunRecord]]:
        """Each connector's latest `limit` runs, newest first, by connector: in two queries.

        Of `connectors` only (uid namespaces), when given. On PostgreSQL, a
        range of the index on (connector, started_at) per connector with a
        summary row (a lateral join); elsewhere a window over the history.
        Abandoned runs read as `recent_runs` reads them.
        """
        columns = [runs.c[column.name] for column in runs.c]
        if self.engine.dialect.name == "postgresql":
            chosen = sa.select(connector_stats.c.connector)
            if connectors is not None:
                chosen = chosen.where(connector_stats.c.connector.in_(connectors))
            keys = chosen.subquery()
            newest = (
                sa.select(*columns)
                .where(runs.c.connector == keys.c.connector)
                .order_by(runs.c.started_at.desc())
                .limit(limit)
                .lateral()
            )
            query = sa.select(newest).select_from(keys).join(newest, sa.true())
            query = query.order_by(newest.c.connector, newest.c.started_at.desc())
        else:
            rank = (
                sa.func.row_number()
                .over(partition_by=runs.c.connector, order_by=runs.c.started_at.desc())
                .label("newest")
            )
            every = sa.select(*columns, rank)
            if connectors is not None:
                every = every.where(runs.c.connector.in_(connectors))
            ranked = every.subquery()
            query = (
                sa.select(*(ranked.c[column.name] for column in runs.c))
                .where(ranked.c.newest <= limit)
                .order_by(ranked.c.connector, ranked.c.newest)
            )
        found: dict[str, list[RunRecord]] = {}
        live: set[str | None] = set()
        with self.engine.connect() as conn:
            rows = list(conn.execute(query).mappings())
            leased = _live_leases(conn) if any(r["outcome"] == "running" for r in rows) else set()
        for row in rows:
            record = _run_record(row)
            newest_of_its_connector = record.connector not in found
            found.setdefault(record.connector, []).append(record)
            if newest_of_its_connector and record.connector in leased:
                live.add(record.id)
        return {name: _abandoned_shown(records, live) for name, records in found.items()}


def _run_record(row: Any) -> RunRecord:
    return RunRecord(
        **{**row, "started_at": aware(row["started_at"]), "ended_at": aware(row["ended_at"])}
    )


def _abandoned_shown(records: list[RunRecord], live: set[str | None]) -> list[RunRecord]:
    """`records`, those marked running but not in `live` shown abandoned."""
    return [
        replace(record, outcome=ABANDONED, error=record.error or _ABANDONED_ERROR)
        if record.outcome == "running" and record.id not in live
        else record
        for record in records
    ]


@functools.cache
def _pass_start_query(with_people: bool) -> sa.Select[Any]:
    """`StateStore.pass_start`'s one query, built once: building it cost an idle pass more
    CPU than running it."""
    key: Any = sa.bindparam("connector")
    failed_of = failed_items.c.connector == key
    columns: list[Any] = [
        _of(watermarks.c.cursor_kind, key),
        _of(watermarks.c.cursor_value, key),
        _of(connectors.c.settings_fingerprint, key),
        _of(connectors.c.source_snapshot, key),
        sa.exists().where(failed_of).label("failed"),
        sa.exists().where(failed_of, failed_items.c.retry_at < sa.bindparam("now")),
        sa.select(sa.func.count())
        .select_from(failed_items)
        .where(failed_of, failed_items.c.retry_at >= sa.bindparam("now"))
        .scalar_subquery(),
        _of(connector_stats.c.recorded_at, key),
    ]
    if with_people:
        changed = sa.select(sa.func.max(people.c.changed_at))
        columns.append(changed.where(people.c.connector == key).scalar_subquery())
    return sa.select(*columns)


def _live_leases(conn: Connection) -> set[str]:
    """The connectors whose lease is held and unexpired now (one query); a released claim
    keeps its row, with no owner."""
    query = sa.select(leases.c.connector).where(
        leases.c.expires_at >= utcnow(), leases.c.owner != ""
    )
    return set(conn.execute(query).scalars())


def _of(column: sa.Column[Any], key: Any) -> Any:
    """A scalar subquery: `column` of the row keyed `key` of its table (NULL: none)."""
    return sa.select(column).where(column.table.c.connector == key).scalar_subquery()


def _has_rows(conn: Connection, table: sa.Table, connector: str) -> bool:
    """Whether `table` holds any row of `connector` (so a batch's ids are worth clearing)."""
    return conn.execute(_HAS_ROWS[table.name], {"connector": connector}).first() is not None


# Built once: building a statement costs more than running it from the compiled cache.
# (Lookups and deletes by ids run for every batch are `sync.state.bulk`'s.)
_HAS_ROWS = {
    table.name: sa.select(table.c.source_id)
    .where(table.c.connector == sa.bindparam("connector"))
    .limit(1)
    for table in (failed_items, pushes_in_flight)
}
_IN_FLIGHT = sa.select(pushes_in_flight.c.source_id).where(
    pushes_in_flight.c.connector == sa.bindparam("connector"),
    pushes_in_flight.c.source_id.in_(sa.bindparam("ids", expanding=True)),
)
_CLEAR_IN_FLIGHT = sa.delete(pushes_in_flight).where(
    pushes_in_flight.c.connector == sa.bindparam("connector"),
    pushes_in_flight.c.source_id.in_(sa.bindparam("ids", expanding=True)),
)


def _record_failures(
    conn: Connection,
    connector: str,
    failed: Sequence[FailedItem],
    now: dt.datetime,
    policy: failures.FailedItemPolicy,
) -> None:
    ids = [item.source_id for item in failed]
    existing: dict[str, tuple[int, dt.datetime]] = {}
    for chunk in batched(ids, IN_CHUNK):
        for row in conn.execute(
            sa.select(
                failed_items.c.source_id, failed_items.c.attempts, failed_items.c.first_seen
            ).where(failed_items.c.connector == connector, failed_items.c.source_id.in_(chunk))
        ):
            existing[row.source_id] = (row.attempts, row.first_seen)
    rows = []
    for item in {item.source_id: item for item in failed}.values():
        attempts, first_seen = existing.get(item.source_id, (0, now))
        since = aware(first_seen) or now
        retry_at = failures.retry_at(since, now, policy) if item.retryable else None
        rows.append(
            {
                "connector": connector,
                "source_id": item.source_id,
                "uid": item.uid,
                "stage": item.stage,
                "field": None if item.field is None else kept_text(item.field),
                "error": error_text(item.error),
                "cursor_value": item.cursor,
                "deleted": item.deleted,
                "record": kept_record(item.record),
                "attempts": attempts + 1,
                "first_seen": first_seen,
                "last_seen": now,
                "retry_at": retry_at,
            }
        )
    upsert(conn, failed_items, rows, keys=("connector", "source_id"))


def renew(conn: Connection, connector: str, owner: str, ttl: float, now: dt.datetime) -> bool:
    """Renew `owner`'s lease on `connector` within `conn`'s transaction; False if not theirs."""
    return _renew(conn, connector, owner, ttl, now)


def _renew(conn: Connection, connector: str, owner: str, ttl: float, now: dt.datetime) -> bool:
    expires = now + dt.timedelta(seconds=ttl)
    values = {"which": connector, "holder": owner, "until": expires}
    return bool(conn.execute(_RENEW, values).rowcount)


# Bind names differ from the columns': an UPDATE keeps those for its SET clause.
_RENEW = (
    sa.update(leases)
    .where(leases.c.connector == sa.bindparam("which"), leases.c.owner == sa.bindparam("holder"))
    .values(expires_at=sa.bindparam("until"))
)
# Released: no owner (a renewal arriving late finds none, and can't take it back) and
# expired now. The row stays: its connector's next pass claims it again (sync.state.claims).
_RELEASE = (
    sa.update(leases)
    .where(leases.c.connector == sa.bindparam("which"), leases.c.owner == sa.bindparam("holder"))
    .values(owner="", expires_at=sa.bindparam("now"))
)
_RELEASE_DUE = _RELEASE.values(due_at=sa.bindparam("due"))


def _live_run(conn: Connection, connector: str) -> str | None:
    """The id of the run a live process has going on `connector`, if any.

    That is its newest run, while the connector's lease is unexpired: a pass
    renews it until it ends, and a dead one's lapses within `lease_ttl`.
    """
    expires = conn.execute(
        sa.select(leases.c.expires_at).where(leases.c.connector == connector)
    ).scalar()
    expires_at = aware(expires)
    if expires_at is None or expires_at < utcnow():
        return None
    newest = conn.execute(
        sa.select(runs.c.id)
        .where(runs.c.connector == connector)
        .order_by(runs.c.started_at.desc())
        .limit(1)
    ).scalar()
    return None if newest is None else str(newest)


def _save_watermark(conn: Connection, connector: str, cursor: Cursor) -> None:
    upsert(
        conn,
        watermarks,
        [
            {
                "connector": connector,
                "cursor_kind": cursor_kind(cursor),
                "cursor_value": encode(cursor),
                "updated_at": utcnow(),
            }
        ],
        keys=("connector",),
    )


def _failed_item(row: Any) -> FailedItem:
    return FailedItem(
        source_id=row["source_id"],
        uid=row["uid"],
        stage=row["stage"],
        field=row["field"],
        error=row["error"],
        cursor=row["cursor_value"],
        deleted=bool(row["deleted"]),
        record=row["record"],
        attempts=row["attempts"],
        first_seen=aware(row["first_seen"]),
        last_seen=aware(row["last_seen"]),
        retry_at=aware(row["retry_at"]),
    )


def _known_person(row: Any) -> KnownPerson:
    resolved = aware(row["resolved_at"])
    assert resolved is not None
    return KnownPerson(
        user_id=row["user_id"],
        email=row["email"],
        name=row["name"],
        reason=row["reason"],
        resolved_at=resolved,
        changed_at=aware(row["changed_at"]),
    )


def _short_text(text: str | None, length: int = 255) -> str | None:
    """`text` as a short column keeps it: redacted, storable, at most `length` characters."""
    return None if text is None else kept_text(text)[:length]


def aware(moment: dt.datetime | None) -> dt.datetime | None:
    """`moment` in UTC as a column gave it back."""
    # SQLite hands timestamps back naive; they were written in UTC.
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    return moment
