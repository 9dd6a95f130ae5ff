"""An idle pass is cheap: what it costs the state database, counted, and what it keeps.

A pass where nothing changed (the source vouches for its content) and no
failed item is due reads its state in one query and updates its connector's
summary row in one statement; the lease's statements are the scheduler's and
are not counted here. Counted with SQLAlchemy's engine events: statements,
not time.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from structlog.testing import capture_logs

from fragment_emulator import Emulator
from sync.config import Config
from sync.run import RunOptions, RunSummary, run_once
from sync.state import HistoryPolicy, StateStore
from sync_demo import generate_tickets
from synckit import make_config, write_tickets


@dataclass
class Traffic:
    """What a state store sent its database: statements (lease ones apart), commits of the
    transactions that ran any of them."""

    statements: list[str] = field(default_factory=list)
    lease_statements: int = 0
    commits: int = 0
    _since_commit: int = 0


@contextmanager
def counted(store: StateStore) -> Iterator[Traffic]:
    traffic = Traffic()

    def executed(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if " leases" in statement:
            traffic.lease_statements += 1
        else:
            traffic.statements.append(" ".join(statement.split()))
            traffic._since_commit += 1

    def committed(_conn: Any) -> None:
        traffic.commits += traffic._since_commit > 0
        traffic._since_commit = 0

    def rolled_back(_conn: Any) -> None:
        traffic._since_commit = 0

    events = {"before_cursor_execute": executed, "commit": committed, "rollback": rolled_back}
    for name, listener in events.items():
        sa.event.listen(store.engine, name, listener)
    try:
        yield traffic
    finally:
        for name, listener in events.items():
            sa.event.remove(store.engine, name, listener)


def settled(path: Path) -> Path:
    """`path` once its last change is old enough for the jsonl connector's content token to
    carry the file's identity (3 s): a token taken earlier is refreshed by the next pass, a
    write of its own, and the pass counted would not be idle but for that."""
    time.sleep(max(0.0, 3.2 - (time.time() - path.stat().st_ctime)))
    return path


def one_pass(config: Config, store: StateStore) -> RunSummary:
    [summary] = run_once(config, store, options=RunOptions())
    assert summary.ok, summary.error
    return summary


def run_rows(store: StateStore) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM runs")).scalar_one())


def test_an_idle_pass_reads_its_state_once_and_writes_one_summary_row(
    emulator: Emulator, tmp_path: Path, state_url: str
) -> None:
    """It took 8 statements, 2 commits and 4 rollbacks beside its lease's, and a runs row."""
    tickets = settled(write_tickets(tmp_path / "tickets.jsonl", generate_tickets(30)))
    config = make_config(emulator, tickets, state_url)
    with StateStore.open(state_url) as store:
        one_pass(config, store)  # the backfill
        with counted(store) as traffic:
            idle = one_pass(config, store)

        assert (idle.pulled, idle.pushed) == (0, 0)
        assert len(traffic.statements) == 2, traffic.statements
        read, write = traffic.statements
        assert read.startswith("SELECT") and "FROM watermarks" in read
        assert write.startswith("UPDATE connector_stats")
        assert traffic.commits == 1  # the summary row's
        assert traffic.lease_statements > 0  # counted apart, not missed


def test_a_pass_with_a_failed_item_waiting_but_not_due_is_idle_too(
    emulator: Emulator, tmp_path: Path, state_url: str
) -> None:
    tickets = list(generate_tickets(10))
    tickets[3]["updated_at"] = "not a time"  # a bad record: a failed item, not retryable
    path = settled(write_tickets(tmp_path / "tickets.jsonl", tickets))
    config = make_config(emulator, path, state_url)
    with StateStore.open(state_url) as store:
        assert one_pass(config, store).failed == 1
        with counted(store) as traffic:
            one_pass(config, store)
        assert len(traffic.statements) == 2, "\n".join(s[:90] for s in traffic.statements)
        assert store.failed_count(config.connectors["helpdesk"].uid_namespace) == 1


def test_idle_passes_keep_one_run_per_sample_and_every_pass_in_the_summary_row(
    emulator: Emulator, tmp_path: Path, sqlite_url: str
) -> None:
    """The runs table grew a row a pass: 77k rows in 30 minutes for 1,000 idle connectors."""
    tickets = write_tickets(tmp_path / "tickets.jsonl", generate_tickets(30))
    config = make_config(emulator, tickets, sqlite_url)
    namespace = config.connectors["helpdesk"].uid_namespace
    with StateStore.open(sqlite_url) as store:
        backfill = one_pass(config, store)
        for _ in range(3):
            one_pass(config, store)
        assert run_rows(store) == 1  # the backfill's: idle passes within the hour add none
        stats = store.connector_stats()[namespace]
        assert stats.passes == 4
        assert (stats.pulled_total, stats.pushed_total) == (backfill.pulled, backfill.pushed)
        assert stats.tasks == store.task_count(namespace) == backfill.pushed
        assert stats.outcome == "ok" and stats.last_ok_at is not None

    sampling = HistoryPolicy(idle_every=dt.timedelta(microseconds=1))
    with StateStore.open(sqlite_url, history=sampling) as store:
        last = one_pass(config, store)
        assert run_rows(store) == 2  # its sample is due
        [recorded] = store.recent_runs(namespace, limit=1)
        assert (recorded.id, recorded.outcome, recorded.pulled) == (last.run_id, "ok", 0)
        assert store.connector_stats()[namespace].run_id == last.run_id


def test_a_pass_that_reads_its_source_is_written_running_and_then_finished(
    emulator: Emulator, tmp_path: Path, sqlite_url: str
) -> None:
    path = tmp_path / "tickets.jsonl"
    tickets = list(generate_tickets(20))
    config = make_config(emulator, write_tickets(path, tickets[:10]), sqlite_url)
    with StateStore.open(sqlite_url) as store:
        one_pass(config, store)
        one_pass(config, store)  # idle
        write_tickets(path, tickets)
        changed = one_pass(config, store)
        runs = store.recent_runs(limit=10)
        assert runs[0].id == changed.run_id
        assert len(runs) == 2
        assert (runs[0].outcome, runs[0].pulled) == ("ok", changed.pulled)
        stats = store.connector_stats()[config.connectors["helpdesk"].uid_namespace]
        assert stats.tasks == store.task_count("helpdesk")
        assert stats.passes == 3


def test_a_state_database_without_a_free_connection_fails_the_pass_in_one_line(
    emulator: Emulator, tmp_path: Path, sqlite_url: str
) -> None:
    """A pool timeout escaped the pass as a traceback, uncounted, leaving it "running"."""
    tickets = write_tickets(tmp_path / "tickets.jsonl", generate_tickets(5))
    config = make_config(emulator, tickets, sqlite_url)
    StateStore.open(sqlite_url).close()  # the schema
    engine = sa.create_engine(sqlite_url, pool_size=1, max_overflow=0, pool_timeout=0.05)
    store = StateStore(engine)
    held = engine.connect()  # every connection of the pool in use
    try:
        with capture_logs() as logs:
            [summary] = run_once(config, store, options=RunOptions(dry_run=False))
    finally:
        held.close()
        store.close()

    assert (summary.ok, summary.outcome) == (False, "failed")
    assert summary.error is not None and "connection pool" in summary.error
    [line] = [entry for entry in logs if entry["log_level"] == "error"]
    assert line["event"] == "run_finished" and line["error"] == summary.error
    assert "exc_info" not in line
