"""Claims: replicas sharing one state divide the connectors' passes between them.

A connector's row in `leases` holds its lease and when its next daemon pass
is due. A replica claims the rows that are due and free (never held, released
or expired), earliest first, by taking their lease: on PostgreSQL and MariaDB
with `SELECT … FOR UPDATE SKIP LOCKED`, so replicas claiming at once take
different rows and never wait on each other; on SQLite (one process) a plain
read, each row still taken only while free. Renewing is the lease's own
(`StateStore.renew_lease`); releasing sets the next due time in the same
UPDATE. A row is inserted once per connector (`register`), never per pass.
When a pass is due and how it runs is the daemon's (`sync.shell.daemon`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sync.batches import batched
from sync.state.bulk import IN_CHUNK
from sync.state.schema import leases
from sync.state.store import StateStore, aware, utcnow

SKIP_LOCKED_DIALECTS = ("postgresql", "mysql", "mariadb")
"""Where rows are locked as they are claimed (MariaDB from 10.6, MySQL from 8.0)."""


@dataclass(frozen=True, slots=True)
class Claim:
    """A connector (by `uid_namespace`) this replica holds, and when its pass was due."""

    connector: str
    due_at: dt.datetime


class Claims:
    """The claim rows of one state database, for one replica (`owner`)."""

    def __init__(self, store: StateStore, owner: str, ttl: float) -> None:
        self.store, self.engine, self.owner, self.ttl = store, store.engine, owner, ttl

    def register(self, horizons: Mapping[str, dt.datetime]) -> None:
        """Give each connector of `horizons` a row, due now, if it has none yet.

        A kept due time later than the connector's horizon (the latest its
        schedule allows now: it was shortened) is brought forward to it, and
        a row with none (a lease from before schema 0014, or `run --once`'s)
        is due now. Replicas starting together may race to insert a row: the
        loser's insert is refused, and the row is there either way.
        """
        now = utcnow()
        by_horizon: dict[dt.datetime, list[str]] = {}
        for name, horizon in horizons.items():
            by_horizon.setdefault(horizon, []).append(name)
        for horizon, names in by_horizon.items():
            for chunk in batched(names, IN_CHUNK):
                with self.engine.begin() as conn:
                    conn.execute(_DUE_NOW, {"names": chunk, "now": now})
                    conn.execute(_DUE_BY, {"names": chunk, "horizon": horizon})
                    known = set(conn.execute(_KNOWN, {"names": chunk}).scalars())
                self._insert([n for n in chunk if n not in known], now)

    def _insert(self, connectors: list[str], now: dt.datetime) -> None:
        """Insert free rows due now, at once; one by one if another replica raced us."""
        rows = [
            {"connector": name, "owner": "", "acquired_at": now, "expires_at": now, "due_at": now}
            for name in connectors
        ]
        try:
            if rows:
                with self.engine.begin() as conn:
                    conn.execute(sa.insert(leases), rows)
        except sa.exc.IntegrityError:
            for row in rows:
                try:
                    with self.engine.begin() as conn:
                        conn.execute(sa.insert(leases), [row])
                except sa.exc.IntegrityError:
                    pass  # another replica made it first

    def take_due(self, connectors: Sequence[str], limit: int) -> list[Claim]:
        """Claim up to `limit` of `connectors` whose pass is due and whose row is free.

        Earliest due first. Returns the claims taken, each held for the
        lease's TTL.
        """
        if limit < 1 or not connectors:
            return []
        now = utcnow()
        values = {"names": list(connectors), "now": now, "limit": limit}
        with self.engine.begin() as conn:
            locking = conn.dialect.name in SKIP_LOCKED_DIALECTS
            due = conn.execute(_DUE_LOCKED if locking else _DUE, values).all()
            return [
                Claim(row.connector, aware(row.due_at) or now)
                for row in due
                if self._take(conn, row.connector, now)
            ]

    def _take(self, conn: Connection, connector: str, now: dt.datetime) -> bool:
        """Take the row's lease if it is still free (SQLite reads without locking it)."""
        until = now + dt.timedelta(seconds=self.ttl)
        values = {"which": connector, "holder": self.owner, "now": now, "until": until}
        return bool(conn.execute(_TAKE, values).rowcount)

    def release(self, connector: str, due_at: dt.datetime | None) -> None:
        """Give the claim up, its next pass due at `due_at` (None: leave the time it had).

        Only while this replica still holds it: a claim it lost is another's now.
        """
        self.store.release_lease(connector, self.owner, due_at=due_at)


# Built once: the scheduler loop runs them every tick. Bind names differ from the
# columns': an UPDATE keeps those for its SET clause.
_KNOWN = sa.select(leases.c.connector).where(
    leases.c.connector.in_(sa.bindparam("names", expanding=True))
)
_DUE = (
    sa.select(leases.c.connector, leases.c.due_at)
    .where(
        leases.c.connector.in_(sa.bindparam("names", expanding=True)),
        leases.c.due_at <= sa.bindparam("now"),
        leases.c.expires_at <= sa.bindparam("now"),
    )
    .order_by(leases.c.due_at)
    .limit(sa.bindparam("limit"))
)
_DUE_LOCKED = _DUE.with_for_update(skip_locked=True)
_DUE_NOW = (
    sa.update(leases)
    .where(leases.c.connector.in_(sa.bindparam("names", expanding=True)), leases.c.due_at.is_(None))
    .values(due_at=sa.bindparam("now"))
)
_DUE_BY = (
    sa.update(leases)
    .where(
        leases.c.connector.in_(sa.bindparam("names", expanding=True)),
        leases.c.due_at > sa.bindparam("horizon"),
    )
    .values(due_at=sa.bindparam("horizon"))
)
_TAKE = (
    sa.update(leases)
    .where(leases.c.connector == sa.bindparam("which"), leases.c.expires_at <= sa.bindparam("now"))
    .values(
        owner=sa.bindparam("holder"),
        acquired_at=sa.bindparam("now"),
        expires_at=sa.bindparam("until"),
    )
)
