"""Opening a state database: its engine, its files, its schema and the Alembic migrations.

A new database gets the latest schema in one step; an older one is upgraded
by the migrations beside this module, one replica at a time. What the store
reads and writes once open is `sync.state.store`'s.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sync.state.schema import metadata

MIGRATIONS = Path(__file__).parent / "migrations"
HEAD_REVISION = "0015"
"""The newest migration's revision; a test checks it against Alembic's own head."""

_LOCK_KEY = 0x46534D47  # "FSMG": fragment-sync migrations


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


@dataclass(frozen=True, slots=True)
class Pool:
    """The connection pool of a PostgreSQL or MySQL state (`state.pool_size`, `pool_timeout`).

    `size` connections stay open, as many again open while needed; a caller
    finding none free in `timeout` seconds gets SQLAlchemy's `TimeoutError`.
    """

    size: int = 5
    timeout: float = 30.0


PING_AFTER_IDLE = 10.0
"""Seconds a pooled connection may sit unused before it is pinged as it is handed out.

Pinging at every checkout (`pool_pre_ping`) cost an idle pass nine round trips. A
connection used a moment ago is alive; one idle longer may have been dropped by the
server, a proxy or a restart, and is replaced unseen when its ping fails.
"""


def create_engine(url: str, pool: Pool | None = None) -> Engine:
    """The engine of the state database at `url`; a SQLite file is created private first."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() != "sqlite":
        pool = pool or Pool()
        engine = sa.create_engine(
            url, pool_size=pool.size, max_overflow=pool.size, pool_timeout=pool.timeout
        )
        _ping_when_idle(engine)
        return engine
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


def _ping_when_idle(engine: Engine) -> None:
    """Ping a pooled connection as it is handed out if it sat idle over `PING_AFTER_IDLE`."""

    @sa.event.listens_for(engine, "checkin")
    def _idle_from(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info["idle_since"] = time.monotonic()

    @sa.event.listens_for(engine, "checkout")
    def _ping(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception:
            alive = False
        if not alive:
            # The pool drops this connection and hands out another (SQLAlchemy's
            # documented pessimistic disconnect handling).
            raise sa.exc.DisconnectionError("the pooled connection did not answer a ping")


def memory_engine() -> Engine:
    """An engine on an empty state with the latest schema, in this process's memory only."""
    engine = sa.create_engine(
        "sqlite://", poolclass=sa.pool.StaticPool, connect_args={"check_same_thread": False}
    )
    metadata.create_all(engine)
    return engine


def shown(url: str) -> str:
    """`url` as it may be shown: without its password."""
    return sa.engine.make_url(url).render_as_string(hide_password=True)


def revision(engine: Engine) -> str | None:
    """The schema revision the database is at (None: not created yet).

    Read directly so that a process finding its schema current never
    loads Alembic, a fifth of a second of every `run --once`.
    """
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table(_alembic_version.name):
            return None
        value = conn.execute(sa.select(_alembic_version.c.version_num)).scalar()
    return None if value is None else str(value)


def upgrade(engine: Engine, revision: str = "head", *, replay: bool = False) -> None:
    """Run the migrations up to `revision` (the latest by default).

    A database with none of the store's tables gets the latest schema in
    one step, as the migrations would leave it, without loading Alembic
    (a tenth of a second of CPU, 2% of a 100,000-ticket backfill).
    `replay` runs every migration even then (a test compares the two).
    """
    # Replicas starting together must not migrate at once: the first takes a lock,
    # the others wait for it and then find nothing left to do.
    with _migration_lock(engine), engine.begin() as connection:
        if connection.dialect.name == "sqlite":
            # pysqlite begins a transaction only before an INSERT, UPDATE or DELETE: each
            # CREATE TABLE committed at once, so a first run killed part-way through the
            # schema left tables no later run could get past ("table watermarks already
            # exists"). MariaDB commits each DDL statement whatever is done.
            connection.exec_driver_sql("BEGIN")
        if connection.dialect.name == "postgresql":
            connection.execute(sa.select(sa.func.pg_advisory_xact_lock(_LOCK_KEY)))
        if revision == "head" and not replay and _holds_no_state(connection):
            metadata.create_all(connection)
            _alembic_version.create(connection)
            connection.execute(_alembic_version.insert().values(version_num=HEAD_REVISION))
            return
        from alembic import command  # loaded only when there is a migration to run
        from alembic.config import Config as AlembicConfig

        config = AlembicConfig()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


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
            conn.execute(sa.select(sa.func.get_lock("fragment_sync_migrate", 300)))
            try:
                yield
            finally:
                conn.execute(sa.select(sa.func.release_lock("fragment_sync_migrate")))
    else:
        yield
