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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

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
    """The claim rows of one state database, for one replica (`owner`) running `connectors`
    (their `uid_namespace`s)."""

    def __init__(
        self, store: StateStore, owner: str, ttl: float, connectors: Iterable[str]
    ) -> None:
        self.store, self.engine, self.owner, self.ttl = store, store.engine, owner, ttl
        self.connectors = frozenset(connectors)
        self.foreign: set[str] = set()
        """Rows met due that are not of `connectors`: of connectors taken out of the
        configuration, or run by replicas of another one."""

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

    def take_due(self, limit: int) -> list[Claim]:
        """Claim up to `limit` of the replica's connectors whose pass is due and row free.

        Earliest due first. Returns the claims taken, each held for the
        lease's TTL. The read names no connector while every row it meets is
        one of the replica's (the usual fleet: every replica runs the same
        configuration): binding 10,000 names cost 50 ms of CPU a turn, every
        second. Other rows it meets stay as they are and are kept out of the
        later reads by name, or the reads name the replica's connectors once
        those are fewer.
        """
        if limit < 1 or not self.connectors:
            return []
        now = utcnow()
        with self.engine.begin() as conn:
            locking = conn.dialect.name in SKIP_LOCKED_DIALECTS
            read, names = self._due_read(locking)
            due = conn.execute(read, {"names": names, "now": now, "limit": limit}).all()
            ours = [row for row in due if row.connector in self.connectors]
            self.foreign.update({row.connector for row in due} - self.connectors)
            taken = self._take(conn, [row.connector for row in ours], now) if ours else set()
        return [Claim(r.connector, aware(r.due_at) or now) for r in ours if r.connector in taken]

    def _due_read(self, locking: bool) -> tuple[sa.Select[Any], list[str]]:
        """The read of the due rows, and the names it binds: none, those it skips, or ours."""
        read: _Read
        if not self.foreign:
            read, names = _DUE, []
        elif len(self.foreign) < len(self.connectors):
            read, names = _DUE_NOT_FOREIGN, sorted(self.foreign)
        else:
            read, names = _DUE_OURS, sorted(self.connectors)
        return (read.locked if locking else read.plain), names

    def _take(self, conn: Connection, connectors: list[str], now: dt.datetime) -> set[str]:
        """Take the leases of the rows read, those still free, in one statement; which it took.

        Where the read locked them (PostgreSQL, MariaDB) all are; SQLite reads
        without locking, and RETURNING says which were still free. MariaDB has
        no UPDATE … RETURNING, and needs none.
        """
        until = now + dt.timedelta(seconds=self.ttl)
        values = {"names": connectors, "holder": self.owner, "now": now, "until": until}
        if conn.dialect.update_returning:
            return set(conn.execute(_TAKE_RETURNING, values).scalars())
        conn.execute(_TAKE, values)
        return set(connectors)

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


@dataclass(frozen=True, slots=True)
class _Read:
    """A read of the due rows, as SQLite runs it and as the locking databases do."""

    plain: sa.Select[Any]
    locked: sa.Select[Any]

    @classmethod
    def of(cls, read: sa.Select[Any]) -> _Read:
        return cls(read, read.with_for_update(skip_locked=True))


_ANY_DUE = (
    sa.select(leases.c.connector, leases.c.due_at)
    .where(leases.c.due_at <= sa.bindparam("now"), leases.c.expires_at <= sa.bindparam("now"))
    .order_by(leases.c.due_at)
    .limit(sa.bindparam("limit"))
)
_DUE = _Read.of(_ANY_DUE)
_DUE_NOT_FOREIGN = _Read.of(
    _ANY_DUE.where(leases.c.connector.not_in(sa.bindparam("names", expanding=True)))
)
_DUE_OURS = _Read.of(_ANY_DUE.where(leases.c.connector.in_(sa.bindparam("names", expanding=True))))
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
    .where(
        leases.c.connector.in_(sa.bindparam("names", expanding=True)),
        leases.c.expires_at <= sa.bindparam("now"),
    )
    .values(
        owner=sa.bindparam("holder"),
        acquired_at=sa.bindparam("now"),
        expires_at=sa.bindparam("until"),
    )
)
_TAKE_RETURNING = _TAKE.returning(leases.c.connector)
