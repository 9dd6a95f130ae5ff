"""The state store: watermarks, pushed-content hashes, run history, failed items.

Any SQLAlchemy URL works; SQLite (the default) and PostgreSQL are tested. The
schema is created and upgraded by the Alembic migrations beside this file.
The one write that matters, `commit_batch`, stores a batch's hashes, its
failed items and the new watermark in a single transaction, so state never
runs ahead of what Fragment acknowledged. What to store is decided by
`sync.run`; this module only keeps it.

Every text it keeps about a failure is redacted on the way in (`_kept_text`,
`_kept_record`): a run's error, a failed item's error and field, and its
record. Not every such text is an exception's message, already redacted:
Fragment's reasons for refusing a ticket, a source's for a bad record and the
record itself are made elsewhere, and `status`, `failures list` and the status
page show what is stored.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Connection, Engine

from connectors.base import Cursor
from sync.state.schema import (
    ID,
    connectors,
    failed_items,
    leases,
    metadata,
    pushes_in_flight,
    runs,
    tasks,
    watermarks,
)
from sync.watermark import cursor_kind, decode, encode
from sync_http import clock
from sync_http.redaction import holds_secret, redact, without_secrets

log = structlog.get_logger("sync.state")
MIGRATIONS = Path(__file__).parent / "migrations"
HEAD_REVISION = "0008"
"""The newest migration's revision; a test checks it against Alembic's own head."""
_IN_CHUNK = 500  # ids per IN (...) lookup: well under every database's parameter limit

RETRY_EVERY_PASS = dt.timedelta(minutes=5)
"""A failed item is due on every pass while it has been failing for less than this;"""
RETRY_WAIT_CAP = dt.timedelta(hours=1)
"""after that, once it has waited as long as it has been failing, up to this long."""


KEEP_RUNS = 1000
"""Runs kept per connector by default (`state.keep_runs`)."""
ABANDONED = "abandoned"
"""The outcome of a run whose process died (SIGKILL, a lost host) before it could say."""
_ABANDONED_ERROR = (
    "the process running this pass ended without finishing it (killed, or its host lost); "
    "the next pass resumed from the last checkpoint"
)


def retry_wait(failing: dt.timedelta) -> dt.timedelta:
    """How long a failed item waits for its next try, having failed for `failing`.

    Items Fragment keeps refusing would otherwise cost requests and state
    writes every interval, forever; a fix made at the source or in Fragment
    still reaches the item within the hour.
    """
    return dt.timedelta(0) if failing < RETRY_EVERY_PASS else min(failing, RETRY_WAIT_CAP)


class StateError(Exception):
    """The state database can't be reached or used; its message is redacted."""

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))


UNREACHABLE = (sa.exc.OperationalError, sa.exc.InterfaceError)
"""What the driver raises when the state database is out of reach: refused, gone, not
accepting connections, a connection dropped, a file that can't be opened or written."""


def unreachable_message(exc: BaseException) -> str:
    """How a pass reports an `UNREACHABLE` error: what happened, and the driver's reason."""
    return f"the state database is unreachable: {_first_line(exc)}"


class LeaseLost(Exception):
    """Another process holds the connector's lease now: this one must stop writing."""


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


class AckedTask(Protocol):
    """What the state records of a task Fragment acknowledged (a `TaskPayload` is one)."""

    @property
    def source_id(self) -> str: ...
    @property
    def uid(self) -> str: ...
    @property
    def content_hash(self) -> str: ...
    @property
    def cursor(self) -> Cursor: ...


@dataclass(frozen=True, slots=True)
class Acked:
    """A task Fragment acknowledged, as the state records it."""

    source_id: str
    uid: str
    content_hash: str
    cursor: Cursor


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


def utcnow() -> dt.datetime:
    return clock.now()  # the clock the engine compares with its sources' (`sync_http.clock`)


def record_json(record: Any) -> str | None:
    """A raw record as JSON text for the failed items (dates become ISO strings).

    Text UTF-8 can't carry (a lone surrogate, from a source's half-escaped
    pair) is written as JSON escapes, which read back as the same record.
    None when the record is nested too deeply to write (it can't be retried).
    """
    try:
        text = json.dumps(record, ensure_ascii=False, default=str, sort_keys=True)
    except RecursionError:
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(record, default=str, sort_keys=True)
    return text


def storable_text(text: str) -> str:
    """`text` with what a state database can't keep written as backslash escapes.

    That is a lone surrogate (UTF-8 can't carry it: no database takes it) and
    the NUL character (PostgreSQL refuses it in text). Free-text columns get this.
    """
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


MAX_ERROR_TEXT = 4000
"""Characters of the longest error text the state keeps (a failed item's, a run's)."""


def error_text(text: str) -> str:
    """`text` as the state keeps an error: as `_kept_text`, at most `MAX_ERROR_TEXT` long.

    A message has no reason to run to 100 KB, yet one quoting a bad value can (a
    100 KB date), and MySQL's `TEXT` holds 64 KB. A longer one keeps its start
    (connector, ticket, field) and its end (what is wrong), with the number of
    characters cut between them. Applying it twice changes nothing, so an error
    compares equal to the one stored for it.
    """
    text = _kept_text(text)
    if len(text) <= MAX_ERROR_TEXT:
        return text

    def marker(cut: int) -> str:
        return f" … [{cut:,} characters cut] … "

    # `len(text)` is more than the count cut: a marker at least as long as the real one.
    keep = MAX_ERROR_TEXT - len(marker(len(text)))
    head = keep // 2
    tail = keep - head
    return text[:head] + marker(len(text) - keep) + text[len(text) - tail :]


def _kept_text(text: str) -> str:
    """`text` as a free-text column keeps it: redacted, then storable."""
    return storable_text(redact(text))


def _kept_record(record: str | None) -> str | None:
    """A failed item's record (JSON text) as the state keeps it: without registered secrets.

    Only registered secrets go (the rest is the ticket, to map again as it
    was); the record is read back and written again only when it holds one.
    """
    if record is None or not holds_secret(record):
        return record
    try:
        return record_json(without_secrets(json.loads(record)))
    except (ValueError, RecursionError):  # not JSON after all: keep none of it
        return None


def create_private_file(path: Path) -> None:
    """Create `path` empty, for its owner alone (0600), with any missing directories (0700).

    Nothing changes when it exists. The state keeps failed tickets' records,
    and SQLite gives its journal and write-ahead log the database file's
    mode. (`Path.mkdir(parents=True)` would give the parents the umask's.)
    """
    missing = [d for d in (path.parent, *path.parent.parents) if not d.exists()]
    for directory in reversed(missing):
        directory.mkdir(mode=0o700, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


class StateStore:
    """One state database. Thread-safe: each call takes its own connection."""

    def __init__(self, engine: Engine, keep_runs: int = KEEP_RUNS) -> None:
        self.engine = engine
        self.keep_runs = keep_runs
        """Runs kept per connector; older ones are deleted as each pass starts."""
        self._statistics = _TableStatistics(tasks) if engine.dialect.name == "postgresql" else None

    @classmethod
    def open(cls, url: str, *, upgrade: bool = True, keep_runs: int = KEEP_RUNS) -> StateStore:
        """Connect to `url`, upgrading the schema to the latest revision unless told not to.

        Raises `StateError` naming the URL (without its password) when that fails.
        """
        try:
            engine = _engine(url)
            store = cls(engine, keep_runs)
            if upgrade and store.revision() != HEAD_REVISION:
                store.upgrade()
            else:
                with engine.connect():
                    pass
        except (sa.exc.SQLAlchemyError, OSError) as exc:
            raise StateError(f"state database {_shown(url)}: {_first_line(exc)}") from None
        except ImportError as exc:  # the URL names a driver this install lacks
            raise StateError(
                f"state database {_shown(url)}: its driver is not installed ({exc}); install "
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
            raise StateError(f"state database {_shown(url)}: {_first_line(exc)}") from None
        if revision is None:
            store.close()
            return cls._empty()
        if revision != HEAD_REVISION:
            store.close()
            raise StateError(
                f"state database {_shown(url)} is at schema revision {revision}; this version "
                f"reads {HEAD_REVISION}. A dry run changes nothing: run `python -m sync db "
                "upgrade` first"
            )
        return store

    @classmethod
    def _empty(cls) -> StateStore:
        """A state with nothing in it, in this process's memory only."""
        engine = sa.create_engine(
            "sqlite://", poolclass=sa.pool.StaticPool, connect_args={"check_same_thread": False}
        )
        metadata.create_all(engine)
        return cls(engine)

    def revision(self) -> str | None:
        """The schema revision the database is at (None: not created yet).

        Read directly so that a process finding its schema current never
        loads Alembic, a fifth of a second of every `run --once`.
        """
        with self.engine.connect() as conn:
            if not sa.inspect(conn).has_table("alembic_version"):
                return None
            value = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
        return None if value is None else str(value)

    def upgrade(self, revision: str = "head", *, replay: bool = False) -> None:
        """Run the migrations up to `revision` (the latest by default).

        A database with none of the store's tables gets the latest schema in
        one step, as the migrations would leave it, without loading Alembic
        (a tenth of a second of CPU, 2% of a 100,000-ticket backfill).
        `replay` runs every migration even then (a test compares the two).
        """
        # Replicas starting together must not migrate at once: the first takes a lock,
        # the others wait for it and then find nothing left to do.
        with _migration_lock(self.engine), self.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY}
                )
            if revision == "head" and not replay and _holds_no_state(connection):
                metadata.create_all(connection)
                _alembic_version.create(connection)
                connection.execute(_alembic_version.insert().values(version_num=HEAD_REVISION))
                return
            from alembic import command
            from alembic.config import Config as AlembicConfig

            config = AlembicConfig()
            config.set_main_option("script_location", str(MIGRATIONS))
            config.attributes["connection"] = connection
            command.upgrade(config, revision)

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
            for chunk in _chunks(wanted, _IN_CHUNK):
                for source_id, uid, content_hash, cursor, pushed_at in _by_ids(
                    conn, _STORED_TASKS, connector, chunk
                ):
                    found[source_id] = StoredTask(
                        uid, content_hash, cursor, _aware(_read_time(conn, pushed_at))
                    )
        return found

    def forget_tasks(self, connector: str) -> int:
        """Forget the pushed-content hashes, so the next pass pushes every ticket it reads."""
        with self.engine.begin() as conn:
            return int(
                conn.execute(sa.delete(tasks).where(tasks.c.connector == connector)).rowcount
            )

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
            _upsert_columns(conn, pushes_in_flight, columns, keys=("connector", "source_id"))

    def in_flight(self, connector: str, source_ids: Iterable[str]) -> set[str]:
        """Those of `source_ids` whose push went out and whose answer was never recorded."""
        wanted = list(dict.fromkeys(source_ids))
        found: set[str] = set()
        if not wanted:
            return found
        with self.engine.connect() as conn:
            for chunk in _chunks(wanted, _IN_CHUNK):
                found.update(row[0] for row in _by_ids(conn, _IN_FLIGHT, connector, chunk))
        return found

    def task_count(self, connector: str) -> int:
        with self.engine.connect() as conn:
            count = conn.execute(
                sa.select(sa.func.count()).select_from(tasks).where(tasks.c.connector == connector)
            ).scalar_one()
        return int(count)

    # The checkpoint

    def commit_batch(
        self,
        connector: str,
        *,
        acked: Sequence[AckedTask] = (),
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
                }
                _upsert_columns(conn, tasks, columns, keys=("connector", "source_id"))
            if resolved or _has_rows(conn, failed_items, connector):
                cleared = [*resolved, *(item.source_id for item in acked)]
                for chunk in _chunks(cleared, _IN_CHUNK):
                    _by_ids(conn, _CLEAR_FAILED, connector, chunk)
            if _has_rows(conn, pushes_in_flight, connector):
                answered = [*(i.source_id for i in acked), *(i.source_id for i in failed)]
                for chunk in _chunks(answered, _IN_CHUNK):
                    _by_ids(conn, _CLEAR_IN_FLIGHT, connector, chunk)
            if failed:
                _record_failures(conn, connector, failed, now)
            if watermark is not None:
                _save_watermark(conn, connector, watermark)
            if fingerprint is not None:
                row = {
                    "connector": connector,
                    "settings_fingerprint": fingerprint,
                    "full_pass_at": now,
                    "source_snapshot": snapshot,
                }
                _upsert(conn, connectors, [row], keys=("connector",))
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
        """Take the connector's lease for `ttl` seconds if it is free, expired or ours.

        Returns False when another live process holds it.
        """
        now = utcnow()
        expires = now + dt.timedelta(seconds=ttl)
        with self.engine.begin() as conn:
            taken = conn.execute(
                sa.update(leases)
                .where(
                    leases.c.connector == connector,
                    sa.or_(leases.c.expires_at < now, leases.c.owner == owner),
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

    def release_lease(self, connector: str, owner: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                sa.delete(leases).where(leases.c.connector == connector, leases.c.owner == owner)
            )

    def lease(self, connector: str) -> Lease | None:
        """Who holds the connector's lease, if anyone does and it has not expired."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(leases).where(leases.c.connector == connector)).first()
        if row is None:
            return None
        expires = _aware(row.expires_at)
        assert expires is not None
        if expires < utcnow():
            return None
        acquired = _aware(row.acquired_at)
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
            for chunk in _chunks(wanted, _IN_CHUNK):
                found.update(_by_ids(conn, _FAILED, connector, chunk))
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
            return int(conn.execute(query).rowcount)

    # Runs

    def start_run(self, connector: str, name: str, watermark: Cursor | None) -> str:
        """Record a pass of `connector` starting; its caller holds the connector's lease.

        So any run of the connector still marked running belongs to a process
        that died: it is marked abandoned. The connector's runs beyond
        `keep_runs`, oldest first, are deleted.
        """
        run_id = str(uuid.uuid4())
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
                    started_at=utcnow(),
                    outcome="running",
                    pulled=0,
                    pushed=0,
                    unchanged=0,
                    failed=0,
                    requests=0,
                    watermark_before=None if watermark is None else encode(watermark),
                )
            )
            _prune_runs(conn, connector, self.keep_runs)
        return run_id

    def finish_run(
        self,
        run_id: str,
        *,
        outcome: str,
        counts: dict[str, int],
        watermark: Cursor | None,
        error: str | None = None,
    ) -> None:
        """Record how the run ended; of `counts`, those the runs table has a column for."""
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(runs)
                .where(runs.c.id == run_id)
                .values(
                    ended_at=utcnow(),
                    outcome=outcome,
                    watermark_after=None if watermark is None else encode(watermark),
                    error=None if error is None else error_text(error),
                    **{name: value for name, value in counts.items() if name in runs.c},
                )
            )

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
            records = [
                RunRecord(**{**row, "started_at": _aware(row["started_at"])})
                for row in conn.execute(query).mappings()
            ]
            running = {record.connector for record in records if record.outcome == "running"}
            live = {_live_run(conn, name) for name in running}
        return [
            replace(record, outcome=ABANDONED, error=record.error or _ABANDONED_ERROR)
            if record.outcome == "running" and record.id not in live
            else record
            for record in records
        ]


_LOCK_KEY = 0x46534D47  # "FSMG": fragment-sync migrations


def _shown(url: str) -> str:
    """`url` as it may be shown: without its password."""
    return sa.engine.make_url(url).render_as_string(hide_password=True)


def _holds_no_state(conn: Connection) -> bool:
    """Whether the database has none of the store's tables (other tables don't count)."""
    present = set(sa.inspect(conn).get_table_names())
    return present.isdisjoint({*metadata.tables, _alembic_version.name})


# Alembic's own table, as its first migration creates it on every database.
_alembic_version = sa.Table(
    "alembic_version",
    sa.MetaData(),
    sa.Column("version_num", sa.String(32), nullable=False),
    sa.PrimaryKeyConstraint("version_num", name="alembic_version_pkc"),
)


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    """A lock for the databases whose DDL transactions can't take an advisory lock."""
    database = engine.url.database
    if engine.dialect.name == "sqlite" and database and database != ":memory:":
        lock = Path(f"{database}.migrate-lock")
        create_private_file(lock)  # beside the database, private like every file of it
        with lock.open("a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
    elif engine.dialect.name in ("mysql", "mariadb"):
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT GET_LOCK('fragment_sync_migrate', 300)"))
            try:
                yield
            finally:
                conn.execute(sa.text("SELECT RELEASE_LOCK('fragment_sync_migrate')"))
    else:
        yield


class _TableStatistics:
    """Keeps PostgreSQL's statistics of one table in step with a bulk load.

    The planner picks the hash lookups' plan from them, and autovacuum
    refreshes them only after a lag (or never, where it is off). A tasks
    table that had outgrown them (a first backfill) was scanned whole by every
    lookup: ~20 ms instead of ~2 ms per 500 ids. So the table is analysed
    once the rows written since the last look reach its size then (at least
    `MIN_ROWS`): a handful of times while it grows, rarely after.
    """

    MIN_ROWS = 1000

    def __init__(self, table: sa.Table) -> None:
        self.table = table
        self._lock = threading.Lock()
        self._written = 0
        self._known_rows: int | None = None

    def wrote(self, engine: Engine, rows: int) -> None:
        """Count `rows` written; analyse the table when they add up to its last known size.

        Never raises: the statistics only speed lookups up, and the rows were
        committed already.
        """
        try:
            with self._lock:
                if self._known_rows is None:
                    self._known_rows = self._estimate(engine)
                self._written += rows
                if self._written < max(self.MIN_ROWS, self._known_rows):
                    return
                self._written = 0
            with engine.connect() as conn:
                quoted = conn.dialect.identifier_preparer.format_table(self.table)
                conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                    f"ANALYZE {quoted}"
                )
            estimate = self._estimate(engine)
        except sa.exc.SQLAlchemyError as exc:
            log.warning("state_statistics_not_updated", table=self.table.name, error=str(exc))
            return
        with self._lock:
            self._known_rows = estimate

    def _estimate(self, engine: Engine) -> int:
        """The planner's row count of the table (0 when it was never analysed)."""
        with engine.connect() as conn:
            rows = conn.exec_driver_sql(
                "SELECT reltuples FROM pg_class WHERE oid = to_regclass(%(name)s)",
                {"name": self.table.name},
            ).scalar()
        return max(int(rows or 0), 0)


def _engine(url: str) -> Engine:
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return sa.create_engine(url, pool_pre_ping=True, future=True)
    database = parsed.database
    if database and database != ":memory:" and not database.startswith("file:"):
        create_private_file(Path(database))
    engine = sa.create_engine(url, connect_args={"timeout": 30})

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        # WAL lets `status` read while a run writes; NORMAL is durable at each checkpoint in WAL.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    return engine


def _upsert(
    conn: Connection, table: sa.Table, rows: list[dict[str, Any]], keys: Sequence[str]
) -> None:
    """Insert `rows`, replacing the given non-key columns of rows whose keys exist."""
    _upsert_columns(conn, table, {name: [row[name] for row in rows] for name in rows[0]}, keys)


def _upsert_columns(
    conn: Connection, table: sa.Table, columns: dict[str, list[Any]], keys: Sequence[str]
) -> None:
    """`_upsert` of rows given column by column: each name to its values, one per row.

    A batch's rows are built this way, not as one dict per row: the dicts
    were a third of a backfill checkpoint's CPU. The statement is compiled
    once per table and column set (see `_Compiled`) and the values go
    straight to the driver.
    """
    plan = _upsert_plan(conn.dialect, table, tuple(columns), tuple(keys))
    if plan is None:
        rows = [
            dict(zip(columns, values, strict=True))
            for values in zip(*columns.values(), strict=True)
        ]
        _upsert_row_by_row(conn, table, rows, keys)
    elif plan.by_column:
        conn.exec_driver_sql(plan.statement.sql, plan.columns(_one_per_key(columns, keys)))
    else:
        conn.exec_driver_sql(plan.statement.sql, plan.rows(columns))


def _one_per_key(columns: dict[str, list[Any]], keys: Sequence[str]) -> dict[str, list[Any]]:
    """The last row of each key, as upserting them one by one would leave it.

    One statement can't update a row twice (PostgreSQL refuses it).
    """
    key_values = list(zip(*(columns[key] for key in keys), strict=True))
    last = {key: index for index, key in enumerate(key_values)}
    if len(last) == len(key_values):
        return columns
    kept = sorted(last.values())
    return {name: [values[index] for index in kept] for name, values in columns.items()}


@dataclass(frozen=True)
class _Compiled:
    """A statement compiled once for one dialect, for the driver's own execute.

    SQLAlchemy's per-row parameter handling (and its re-expansion of every
    `IN` list) was a fifth of a backfill's CPU; these statements skip it.
    """

    sql: str
    names: tuple[str, ...]
    """Bind names in the order a positional driver takes them."""
    positional: bool

    @classmethod
    def of(cls, statement: Any, dialect: sa.Dialect, names: Sequence[str]) -> _Compiled:
        compiled = statement.compile(dialect=dialect)
        order = tuple(compiled.positiontup or ()) if compiled.positional else tuple(names)
        return cls(compiled.string, order, compiled.positional)

    def parameters(self, values: Sequence[Any]) -> tuple[Any, ...] | dict[str, Any]:
        """`values`, given in `names` order, as the driver takes them."""
        return tuple(values) if self.positional else dict(zip(self.names, values, strict=True))


@dataclass(frozen=True)
class _UpsertPlan:
    """A compiled upsert and the dialect's bind processor of each of its columns."""

    statement: _Compiled
    processors: tuple[Any, ...]
    """None where the value goes as is."""
    by_column: bool = False
    """The statement takes one array per column (all rows at once), not one row at a time."""

    def rows(self, columns: dict[str, list[Any]]) -> list[Any]:
        """Parameters for `executemany`, one set per row."""
        ordered = self.columns(columns).values()
        return [self.statement.parameters(row) for row in zip(*ordered, strict=True)]

    def columns(self, columns: dict[str, list[Any]]) -> dict[str, list[Any]]:
        """Each column's values, in `statement.names` order, through its bind processor."""
        return {
            name: columns[name] if process is None else _processed(columns[name], process)
            for name, process in zip(self.statement.names, self.processors, strict=True)
        }


def _processed(values: list[Any], process: Any) -> list[Any]:
    """`values` through a bind processor; rows of a batch share one timestamp object."""
    first = values[0]
    if all(value is first for value in values):
        return [None if first is None else process(first)] * len(values)
    return [None if value is None else process(value) for value in values]


_PLANS: dict[tuple[Any, ...], _UpsertPlan | None] = {}


def _upsert_plan(
    dialect: sa.Dialect, table: sa.Table, columns: tuple[str, ...], keys: tuple[str, ...]
) -> _UpsertPlan | None:
    cache_key = (dialect, table.name, columns, keys)
    if cache_key in _PLANS:
        return _PLANS[cache_key]
    given = [table.c[name] for name in columns if name not in keys]
    values: dict[str, Any] = {name: sa.bindparam(name) for name in columns}
    statement: Any
    if dialect.name == "postgresql":
        plan = _UpsertPlan(
            _Compiled(_unnest_upsert(dialect, table, columns, keys), columns, positional=False),
            _processors(dialect, table, columns),
            by_column=True,
        )
        _PLANS[cache_key] = plan
        return plan
    if dialect.name == "sqlite":
        from sqlalchemy.dialects import sqlite

        insert = sqlite.insert(table).values(values)
        updates = {c.name: insert.excluded[c.name] for c in given}
        statement = insert.on_conflict_do_update(index_elements=list(keys), set_=updates)
    elif dialect.name in ("mysql", "mariadb"):
        from sqlalchemy.dialects import mysql

        my = mysql.insert(table).values(values)
        statement = my.on_duplicate_key_update(**{c.name: my.inserted[c.name] for c in given})
    else:
        _PLANS[cache_key] = None
        return None
    compiled = _Compiled.of(statement, dialect, columns)
    plan = _UpsertPlan(compiled, _processors(dialect, table, compiled.names))
    _PLANS[cache_key] = plan
    return plan


def _processors(dialect: sa.Dialect, table: sa.Table, names: Sequence[str]) -> tuple[Any, ...]:
    return tuple(table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names)


def _unnest_upsert(
    dialect: sa.Dialect, table: sa.Table, columns: Sequence[str], keys: Sequence[str]
) -> str:
    """PostgreSQL: one upsert for a whole batch, which arrives as one array per column.

    `executemany` sends one INSERT per row, and PostgreSQL answers each in
    turn: that made a backfill's checkpoints cost several times its mapping.
    The arrays go in binary (`%b`): psycopg quotes text arrays element by
    element in Python, which cost more CPU than the rest of the checkpoint.
    """
    quote = dialect.identifier_preparer.quote
    names = ", ".join(quote(name) for name in columns)
    arrays = ", ".join(f"%({name})b::{_array_of(table.c[name], dialect)}[]" for name in columns)
    updates = ", ".join(
        f"{quote(name)} = excluded.{quote(name)}" for name in columns if name not in keys
    )
    conflict = f"ON CONFLICT ({', '.join(quote(key) for key in keys)})"
    action = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
    # Only the schema's own table and column names go into the text; the rows are bound.
    return (
        f"INSERT INTO {dialect.identifier_preparer.format_table(table)} ({names}) "  # noqa: S608
        f"SELECT * FROM unnest({arrays}) {conflict} {action}"
    )


def _array_of(column: sa.Column[Any], dialect: sa.Dialect) -> str:
    """The element type of `column`'s array: its own, but text unbounded.

    Cast to `varchar(n)[]`, a longer value would be cut to n characters
    without a word; as `varchar[]` it reaches the column, which refuses it.
    """
    kind = column.type
    if isinstance(kind, sa.String) and kind.length is not None:
        kind = sa.String()
    return kind.compile(dialect=dialect)


# Statements keyed by the connector and a list of source ids, compiled once per id count
# (once in all on PostgreSQL, which takes the ids as an array).
_STORED_TASKS = "stored_tasks"
_CLEAR_FAILED = "clear_failed"
_CLEAR_IN_FLIGHT = "clear_in_flight"
_IN_FLIGHT = "in_flight"
_FAILED = "failed"


def _by_ids_statement(kind: str, among: Callable[[sa.Column[Any]], Any]) -> Any:
    """Statement `kind`, its source ids matched by `among(column)`."""
    connector: sa.BindParameter[str] = sa.bindparam("connector")
    if kind == _STORED_TASKS:
        return sa.select(
            tasks.c.source_id,
            tasks.c.uid,
            tasks.c.content_hash,
            tasks.c.source_cursor,
            tasks.c.pushed_at,
        ).where(tasks.c.connector == connector, among(tasks.c.source_id))
    if kind == _IN_FLIGHT:
        return sa.select(pushes_in_flight.c.source_id).where(
            pushes_in_flight.c.connector == connector, among(pushes_in_flight.c.source_id)
        )
    if kind == _FAILED:
        return sa.select(failed_items.c.source_id, failed_items.c.error).where(
            failed_items.c.connector == connector, among(failed_items.c.source_id)
        )
    table = failed_items if kind == _CLEAR_FAILED else pushes_in_flight
    return sa.delete(table).where(table.c.connector == connector, among(table.c.source_id))


_BY_IDS: dict[tuple[Any, ...], _Compiled] = {}


def _by_ids(conn: Connection, kind: str, connector: str, ids: Sequence[str]) -> list[Any]:
    """Run statement `kind` for `connector` and `ids`; the rows (none for a delete).

    PostgreSQL takes the ids as one array (`= ANY`), so one statement serves
    every count; elsewhere each count of ids has its own `IN (...)`.
    """
    as_array = conn.dialect.name == "postgresql"
    key = (conn.dialect, kind, None if as_array else len(ids))
    if key not in _BY_IDS:
        if as_array:
            array = sa.bindparam("ids", type_=sa.ARRAY(ID))
            names = ["connector", "ids"]
            statement = _by_ids_statement(kind, lambda column: column == sa.any_(array))
        else:
            names = ["connector", *(f"id_{index}" for index in range(len(ids)))]
            binds: list[sa.BindParameter[Any]] = [sa.bindparam(name) for name in names[1:]]
            statement = _by_ids_statement(kind, lambda column: column.in_(binds))
        compiled = _Compiled.of(statement, conn.dialect, names)
        # The binds appear in the text in the order they were made: values go in as given.
        assert compiled.names == tuple(names), (compiled.names, names)
        _BY_IDS[key] = compiled
    compiled = _BY_IDS[key]
    values = [connector, list(ids)] if as_array else [connector, *ids]
    result = conn.exec_driver_sql(compiled.sql, compiled.parameters(values))
    return list(result.fetchall()) if result.returns_rows else []


def _has_rows(conn: Connection, table: sa.Table, connector: str) -> bool:
    """Whether `table` holds any row of `connector` (so a batch's ids are worth clearing)."""
    return conn.execute(_HAS_ROWS[table.name], {"connector": connector}).first() is not None


# Built once: building a statement costs more than running it from the compiled cache.
_HAS_ROWS = {
    table.name: sa.select(table.c.source_id)
    .where(table.c.connector == sa.bindparam("connector"))
    .limit(1)
    for table in (failed_items, pushes_in_flight)
}


_TIME_READERS: dict[Any, Any] = {}


def _read_time(conn: Connection, value: Any) -> dt.datetime | None:
    """A time column read by raw SQL, as SQLAlchemy would have returned it."""
    if value is None or isinstance(value, dt.datetime):
        return value
    dialect = conn.dialect
    if dialect not in _TIME_READERS:
        time_type = tasks.c.pushed_at.type.dialect_impl(dialect)
        _TIME_READERS[dialect] = time_type.result_processor(dialect, None)
    process = _TIME_READERS[dialect]
    moment: dt.datetime | None = process(value) if process else value
    return moment


def _upsert_row_by_row(
    conn: Connection, table: sa.Table, rows: list[dict[str, Any]], keys: Sequence[str]
) -> None:
    key_columns = [table.c[k] for k in keys]
    for row in rows:
        match = sa.and_(*(column == row[column.name] for column in key_columns))
        if conn.execute(sa.update(table).where(match).values(**row)).rowcount == 0:
            conn.execute(sa.insert(table).values(**row))


def _record_failures(
    conn: Connection, connector: str, failed: Sequence[FailedItem], now: dt.datetime
) -> None:
    ids = [item.source_id for item in failed]
    existing: dict[str, tuple[int, dt.datetime]] = {}
    for chunk in _chunks(ids, _IN_CHUNK):
        for row in conn.execute(
            sa.select(
                failed_items.c.source_id, failed_items.c.attempts, failed_items.c.first_seen
            ).where(failed_items.c.connector == connector, failed_items.c.source_id.in_(chunk))
        ):
            existing[row.source_id] = (row.attempts, row.first_seen)
    rows = []
    for item in {item.source_id: item for item in failed}.values():
        attempts, first_seen = existing.get(item.source_id, (0, now))
        failing = now - (_aware(first_seen) or now)
        retry_at = now + retry_wait(failing) if item.retryable else None
        rows.append(
            {
                "connector": connector,
                "source_id": item.source_id,
                "uid": item.uid,
                "stage": item.stage,
                "field": None if item.field is None else _kept_text(item.field),
                "error": error_text(item.error),
                "cursor_value": item.cursor,
                "deleted": item.deleted,
                "record": _kept_record(item.record),
                "attempts": attempts + 1,
                "first_seen": first_seen,
                "last_seen": now,
                "retry_at": retry_at,
            }
        )
    _upsert(conn, failed_items, rows, keys=("connector", "source_id"))


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


def _live_run(conn: Connection, connector: str) -> str | None:
    """The id of the run a live process has going on `connector`, if any.

    That is its newest run, while the connector's lease is unexpired: a pass
    renews it until it ends, and a dead one's lapses within `lease_ttl`.
    """
    expires = conn.execute(
        sa.select(leases.c.expires_at).where(leases.c.connector == connector)
    ).scalar()
    expires_at = _aware(expires)
    if expires_at is None or expires_at < utcnow():
        return None
    newest = conn.execute(
        sa.select(runs.c.id)
        .where(runs.c.connector == connector)
        .order_by(runs.c.started_at.desc())
        .limit(1)
    ).scalar()
    return None if newest is None else str(newest)


def _prune_runs(conn: Connection, connector: str, keep: int) -> None:
    """Delete the connector's runs older than its `keep` newest: two reads of at most `keep`."""
    # The cut-off is read first: MySQL refuses a DELETE whose subquery reads its own table.
    cutoff = conn.execute(
        sa.select(runs.c.started_at)
        .where(runs.c.connector == connector)
        .order_by(runs.c.started_at.desc())
        .offset(keep - 1)
        .limit(1)
    ).scalar()
    if cutoff is not None:
        conn.execute(
            sa.delete(runs).where(runs.c.connector == connector, runs.c.started_at < cutoff)
        )


def _save_watermark(conn: Connection, connector: str, cursor: Cursor) -> None:
    _upsert(
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
        first_seen=_aware(row["first_seen"]),
        last_seen=_aware(row["last_seen"]),
        retry_at=_aware(row["retry_at"]),
    )


def _aware(moment: dt.datetime | None) -> dt.datetime | None:
    # SQLite hands timestamps back naive; they were written in UTC.
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    return moment


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
