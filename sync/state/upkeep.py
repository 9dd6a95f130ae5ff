"""PostgreSQL upkeep: the planner's statistics of the tasks table kept in step with a backfill.

Only for PostgreSQL, and only an optimisation: nothing here changes what the
state holds, and a failure is logged, never raised.
"""

from __future__ import annotations

import threading

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Engine

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
