"""Upkeep of the state: the run history pruned, PostgreSQL's statistics kept in step.

`RunPruning` keeps the `runs` history within its configured count and age,
from the passes that write runs, on a rhythm. `TableStatistics` keeps the
planner's statistics of the tasks table in step with a backfill: only for
PostgreSQL, and only an optimisation (a failure is logged, never raised).
"""

from __future__ import annotations

import datetime as dt
import threading
import time

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Connection, Engine

from sync.state.schema import runs

log = structlog.get_logger("sync.state")


class TableStatistics:
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
                # ANALYZE has no SQLAlchemy construct; only the schema's own table name goes in.
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
            rows = conn.execute(_RELTUPLES, {"name": self.table.name}).scalar()
        return max(int(rows or 0), 0)


_pg_class = sa.table("pg_class", sa.column("reltuples"), sa.column("oid"))
_RELTUPLES = sa.select(_pg_class.c.reltuples).where(
    _pg_class.c.oid == sa.func.to_regclass(sa.bindparam("name", type_=sa.String))
)


class RunPruning:
    """Keeps the `runs` history within `state.keep_runs` per connector and `state.keep_runs_for`.

    On a rhythm, from the passes that write runs, never per scrape or per idle
    pass: a connector's oldest runs beyond `keep` are deleted each time a
    tenth of `keep` more of its runs were written by this process (so it holds
    at most 110% of `keep`), two reads of the index on (connector,
    started_at); runs older than `keep_for`, every connector's, once per
    `AGE_EVERY` per process, a range of the index on started_at.
    """

    AGE_EVERY = 600.0
    """Seconds between two prunings by age in one process."""

    def __init__(self, keep: int, keep_for: dt.timedelta) -> None:
        self.keep, self.keep_for = keep, keep_for
        self._lock = threading.Lock()
        self._written: dict[str, int] = {}
        self._aged_at: float | None = None

    def wrote(self, conn: Connection, connector: str, now: dt.datetime) -> None:
        """A run of `connector` was written in `conn`'s transaction: prune if it is time."""
        with self._lock:
            written = self._written.get(connector, 0) + 1
            by_count = written >= max(1, self.keep // 10)
            self._written[connector] = 0 if by_count else written
            moment = time.monotonic()
            by_age = self._aged_at is None or moment - self._aged_at >= self.AGE_EVERY
            if by_age:
                self._aged_at = moment
        if by_count:
            _prune_by_count(conn, connector, self.keep)
        if by_age:
            conn.execute(sa.delete(runs).where(runs.c.started_at < now - self.keep_for))


def _prune_by_count(conn: Connection, connector: str, keep: int) -> None:
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
