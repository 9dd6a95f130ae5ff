"""What the state keeps of the passes: one summary row per connector, and the run history.

Every pass updates its connector's `connector_stats` row in place (one
statement; the first pass inserts it): its last pass, when a pass last
ended ok, totals, and the connector's counts of tasks and failed items,
counted again only when the pass (or a command) changed them. Metrics and
the status pages read these rows, a constant number of queries for any
number of connectors.

The `runs` history gets a row for each pass that did something (read from
its source, tried failed items, failed), written as it begins ("running")
and completed as it ends; an idle pass (the source vouched that nothing
changed, no failed item due) gets one only once per `HistoryPolicy.idle_every`
per connector. `sync.state.upkeep.RunPruning` prunes the history by age and
count. It owns none of the passes' other tables and decides nothing of what a
pass does: it records it.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass, fields
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sync.state.schema import connector_stats, failed_items, runs, tasks

KEEP_RUNS = 1000
"""Runs kept per connector by default (`state.keep_runs`)."""
KEEP_RUNS_FOR = dt.timedelta(days=30)
"""How long runs are kept by default (`state.keep_runs_for`)."""
IDLE_RUNS_EVERY = dt.timedelta(hours=1)
"""An idle pass is written to the history at most this often per connector by default
(`state.idle_runs_every`)."""


@dataclass(frozen=True)
class HistoryPolicy:
    """How much run history the state keeps (`[state]` of the config)."""

    keep: int = KEEP_RUNS
    """Runs kept per connector, the newest."""
    keep_for: dt.timedelta = KEEP_RUNS_FOR
    """Runs older than this are deleted."""
    idle_every: dt.timedelta = IDLE_RUNS_EVERY
    """An idle pass is written to `runs` when the connector's last one written is older."""


@dataclass(frozen=True)
class PassRecord:
    """How one pass ended, as its connector's summary row and the history keep it."""

    connector: str
    name: str
    run_id: str
    started_at: dt.datetime
    ended_at: dt.datetime
    outcome: str
    error: str | None
    counts: dict[str, int]
    """Of the pass's counts, those the runs table has a column for are kept."""
    watermark_before: str | None
    watermark_after: str | None
    running: bool
    """Its `runs` row was written as it began (`start_run`); else it was idle so far."""
    changed: bool
    """It committed something: the connector's tasks and failed items are counted again."""
    last_recorded: dt.datetime | None
    """When a pass of the connector was last written to `runs`, as the pass began (its
    summary row's `recorded_at`; None: never)."""


@dataclass(frozen=True)
class ConnectorStats:
    """A connector's summary row (`connector_stats`)."""

    connector: str
    name: str
    run_id: str
    started_at: dt.datetime
    ended_at: dt.datetime | None
    outcome: str
    error: str | None
    pulled: int
    pushed: int
    unchanged: int
    failed: int
    last_ok_at: dt.datetime | None
    passes: int
    pulled_total: int
    pushed_total: int
    failed_total: int
    tasks: int
    failed_items: int
    recorded_at: dt.datetime | None


_COUNTED = ("pulled", "pushed", "unchanged", "failed", "requests")
"""The pass counts the runs table has a column for."""


def count_of(table: sa.Table, connector: Any) -> Any:
    """A scalar subquery: how many rows of `connector` `table` holds (a range of its key)."""
    return (
        sa.select(sa.func.count())
        .select_from(table)
        .where(table.c.connector == connector)
        .scalar_subquery()
    )


def recount(conn: Connection, connector: str) -> None:
    """Count the connector's tasks and failed items again into its summary row, if it has one.

    Within `conn`'s transaction: whatever just changed them (a reset, a
    command dropping failed items) is counted with it.
    """
    conn.execute(
        sa.update(connector_stats)
        .where(connector_stats.c.connector == connector)
        .values(tasks=count_of(tasks, connector), failed_items=count_of(failed_items, connector))
    )


def record_pass(conn: Connection, record: PassRecord, policy: HistoryPolicy) -> bool:
    """Keep how the pass ended, in `conn`'s transaction: its summary row, and its run if kept.

    One statement for an idle pass that ended ok between samples; one more
    when its run is written, and one more for the connector's first pass.
    Returns whether it wrote a run that `start_run` had not.
    """
    counts = {name: record.counts.get(name, 0) for name in _COUNTED}
    recorded_at = _recorded_at(record, policy)
    if record.running:
        conn.execute(
            sa.update(runs)
            .where(runs.c.id == record.run_id)
            .values(
                ended_at=record.ended_at,
                outcome=record.outcome,
                watermark_after=record.watermark_after,
                error=record.error,
                **counts,
            )
        )
    elif recorded_at is not None:
        conn.execute(
            sa.insert(runs).values(
                id=record.run_id,
                connector=record.connector,
                name=record.name,
                started_at=record.started_at,
                ended_at=record.ended_at,
                outcome=record.outcome,
                watermark_before=record.watermark_before,
                watermark_after=record.watermark_after,
                error=record.error,
                **counts,
            )
        )
    ok = record.outcome == "ok"
    last = {
        "name": record.name,
        "run_id": record.run_id,
        "started_at": record.started_at,
        "ended_at": record.ended_at,
        "outcome": record.outcome,
        "error": record.error,
        **{name: counts[name] for name in _LAST_COUNTS},
    }
    # A pass that lost its lease leaves "last pass" to the process that took it over.
    keeps_last = record.outcome != "lease_lost"
    statement = _stats_update(keeps_last, ok, recorded_at is not None, record.changed)
    values = {f"v_{name}": value for name, value in last.items()}
    values |= {"v_connector": record.connector, "v_recorded_at": recorded_at}
    updated = conn.execute(statement, values).rowcount
    if not updated:
        conn.execute(
            sa.insert(connector_stats).values(
                connector=record.connector,
                **last,
                last_ok_at=record.ended_at if ok else None,
                passes=1,
                pulled_total=counts["pulled"],
                pushed_total=counts["pushed"],
                failed_total=counts["failed"],
                tasks=count_of(tasks, record.connector),
                failed_items=count_of(failed_items, record.connector),
                recorded_at=recorded_at,
            )
        )
    return not record.running and recorded_at is not None


def _recorded_at(record: PassRecord, policy: HistoryPolicy) -> Any:
    """When the pass's run is written to `runs` (None: it is not).

    Always for a pass that did something or did not end ok; for an idle one,
    when the connector's last run written is `policy.idle_every` old or older
    (read with the rest at the pass's start: it costs no query of its own).
    """
    last = record.last_recorded
    if record.running or record.outcome != "ok" or last is None:
        return record.started_at
    return record.started_at if record.started_at - last >= policy.idle_every else None


_LAST_COUNTS = ("pulled", "pushed", "unchanged", "failed")
"""The pass counts its connector's summary row keeps as its last pass's."""
_LAST = ("name", "run_id", "started_at", "ended_at", "outcome", "error", *_LAST_COUNTS)
_TOTALS = ("pulled", "pushed", "failed")
"""The pass counts its connector's summary row adds up."""


@functools.cache
def _stats_update(keeps_last: bool, ok: bool, recorded: bool, changed: bool) -> sa.Update:
    """The UPDATE of a summary row for a pass of this kind, its values bound as `v_<column>`.

    Built once per kind: built for every pass, it cost more CPU than an idle
    pass's other statements together.
    """
    stats = connector_stats.c

    def bound(column: str) -> Any:
        return sa.bindparam(f"v_{column}", type_=stats[column].type)

    connector = bound("connector")
    values: dict[str, Any] = {
        "passes": stats.passes + 1,
        **{f"{name}_total": stats[f"{name}_total"] + bound(name) for name in _TOTALS},
    }
    if keeps_last:
        values |= {name: bound(name) for name in _LAST}
    if ok:
        values["last_ok_at"] = bound("ended_at")
    if recorded:
        values["recorded_at"] = bound("recorded_at")
    if changed:
        values["tasks"] = count_of(tasks, connector)
        values["failed_items"] = count_of(failed_items, connector)
    return sa.update(connector_stats).where(stats.connector == connector).values(values)


def mark_running(
    conn: Connection, connector: str, name: str, run_id: str, started: dt.datetime
) -> None:
    """Show the connector's summary row as running the pass `run_id` (made for its first)."""
    running = {
        "name": name,
        "run_id": run_id,
        "started_at": started,
        "ended_at": None,
        "outcome": "running",
    }
    updated = conn.execute(
        sa.update(connector_stats).where(connector_stats.c.connector == connector).values(**running)
    ).rowcount
    if not updated:
        conn.execute(
            sa.insert(connector_stats).values(
                connector=connector,
                **running,
                **dict.fromkeys(("pulled", "pushed", "unchanged", "failed", "passes"), 0),
                **dict.fromkeys(("pulled_total", "pushed_total", "failed_total"), 0),
                tasks=count_of(tasks, connector),
                failed_items=count_of(failed_items, connector),
            )
        )


def all_stats(conn: Connection) -> dict[str, ConnectorStats]:
    """Every connector's summary row, by connector (one query, whatever their number)."""
    found = {}
    for row in conn.execute(_ALL_STATS).all():
        values = list(row)
        for index in _TIMES:  # SQLite and MariaDB hand them back naive
            values[index] = _aware(values[index])
        found[row[0]] = ConnectorStats(*values)
    return found


_ALL_STATS = sa.select(*(connector_stats.c[field.name] for field in fields(ConnectorStats)))
"""The columns in `ConnectorStats`' order: a row makes one without naming each column (read
by name, every row rebuilt the result's keys: 8% of a scrape at 10,000 connectors)."""
_TIMES = [i for i, field in enumerate(fields(ConnectorStats)) if field.name.endswith("_at")]


class ConnectorCounts(NamedTuple):
    """What a metrics scrape reads of a connector's summary row."""

    tasks: int
    failed_items: int
    last_ok_at: dt.datetime | None


def all_counts(conn: Connection) -> dict[str, ConnectorCounts]:
    """Every connector's counts, by connector: the columns a scrape needs, and no more."""
    return {
        row[0]: ConnectorCounts(row[1], row[2], _aware(row[3]))
        for row in conn.execute(_ALL_COUNTS).all()
    }


_ALL_COUNTS = sa.select(
    connector_stats.c.connector,
    connector_stats.c.tasks,
    connector_stats.c.failed_items,
    connector_stats.c.last_ok_at,
)


def _aware(moment: Any) -> Any:
    # SQLite hands timestamps back naive; they were written in UTC.
    if isinstance(moment, dt.datetime) and moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    return moment
