"""The daemon's metrics after real passes into the emulator, read back as a scrape."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from fragment_emulator import Emulator
from sync.config import Config, build_config
from sync.run import RunOptions, RunSummary, run_once
from sync.shell.metrics import Metrics
from sync.shell.web import Readiness, render_status
from sync.state import StateStore
from sync.state.schema import connector_stats, leases, runs, watermarks
from sync_http import session
from synckit import TOKEN, make_config, write_tickets

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(metrics: Metrics) -> Samples:
    """Every sample of one scrape, by name and labels."""
    text = metrics.exposition().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def tickets_updated(hours_ago: float, count: int) -> list[dict[str, Any]]:
    """`count` tickets, the last one updated `hours_ago` hours ago."""
    last = dt.datetime.now(dt.UTC) - dt.timedelta(hours=hours_ago)
    return [
        {
            "id": number,
            "subject": f"Ticket {number}",
            "priority": "normal",
            "status": "open",
            "requester": {"country": "FR"},
            "updated_at": (last - dt.timedelta(minutes=count - number)).isoformat(),
        }
        for number in range(1, count + 1)
    ]


@pytest.fixture
def state(sqlite_url: str) -> Iterator[StateStore]:
    store = StateStore.open(sqlite_url)
    yield store
    store.close()


def observed_run(config: Config, store: StateStore, **options: Any) -> tuple[Metrics, RunSummary]:
    metrics = Metrics(config, store)
    metrics.install()
    try:
        [summary] = run_once(config, store, options=RunOptions(**options))
    finally:
        metrics.uninstall()
    return metrics, summary


def test_a_pass_shows_in_counters_and_the_lag_is_read_fresh_at_scrape(
    emulator: Emulator, tmp_path: Path, sqlite_url: str, state: StateStore
) -> None:
    path = write_tickets(tmp_path / "tickets.jsonl", tickets_updated(hours_ago=1, count=12))
    config = make_config(emulator, path, sqlite_url)
    before = time.time()

    metrics, summary = observed_run(config, state)

    assert summary.ok and summary.pushed == 12
    samples = scrape(metrics)
    name = "fragment_sync"
    assert value(samples, f"{name}_tasks_pushed_total", connector="helpdesk") == 12
    assert value(samples, f"{name}_tickets_pulled_total", connector="helpdesk") == 12
    assert value(samples, f"{name}_tickets_failed_total", connector="helpdesk") == 0
    assert value(samples, f"{name}_runs_total", connector="helpdesk", outcome="ok") == 1
    assert value(samples, f"{name}_runs_total", connector="helpdesk", outcome="failed") == 0
    assert value(samples, f"{name}_run_duration_seconds_count", connector="helpdesk") == 1
    last_success = value(samples, f"{name}_last_success_timestamp_seconds", connector="helpdesk")
    assert last_success is not None and before <= last_success <= time.time()
    assert value(samples, f"{name}_runs_in_progress", connector="helpdesk") == 0
    # Every answer Fragment gave is counted once, under its status code.
    answered_200 = sum(1 for r in emulator.requests if r["status"] == 200)
    assert answered_200 >= 1
    assert value(samples, f"{name}_http_requests_total", server="fragment", answer="200") == (
        answered_200
    )
    # Read from the state at scrape time: the newest ticket is an hour old.
    lag = value(samples, f"{name}_watermark_lag_seconds", connector="helpdesk")
    assert lag is not None and 3600 - 5 <= lag <= 3600 + 60
    assert value(samples, f"{name}_tasks", connector="helpdesk") == 12
    assert value(samples, f"{name}_failed_items", connector="helpdesk") == 0
    assert value(samples, f"{name}_state_up") == 1

    # No pass since, yet the next scrape's lag has grown with the clock.
    time.sleep(1.1)
    later = value(scrape(metrics), f"{name}_watermark_lag_seconds", connector="helpdesk")
    assert later is not None and later > lag


def test_rate_limits_count_as_retries_with_their_wait(
    tmp_path: Path, sqlite_url: str, state: StateStore
) -> None:
    path = write_tickets(tmp_path / "tickets.jsonl", tickets_updated(hours_ago=1, count=4))
    with Emulator(tokens=[TOKEN]) as emulator:
        emulator.faults.rate_limit = (1, 1.0)  # one request a second: the second batch waits
        config = make_config(emulator, path, sqlite_url, fragment={"batch_size": 2})

        metrics, summary = observed_run(config, state)

        refused = sum(1 for r in emulator.requests if r["status"] == 429)
    assert summary.ok and summary.pushed == 4
    assert refused >= 1
    samples = scrape(metrics)
    retries = value(
        samples, "fragment_sync_http_retries_total", server="fragment", reason="rate_limited"
    )
    assert retries == refused
    assert value(samples, "fragment_sync_http_requests_total", server="fragment", answer="429") == (
        refused
    )
    waited = value(
        samples, "fragment_sync_http_wait_seconds_total", server="fragment", reason="rate_limited"
    )
    assert waited is not None and waited >= refused * 1.0  # never less than Retry-After asked


def test_a_state_database_that_fails_reads_as_state_up_0_and_the_scrape_still_answers(
    emulator: Emulator, tmp_path: Path
) -> None:
    path = write_tickets(tmp_path / "tickets.jsonl", tickets_updated(hours_ago=1, count=1))
    config = make_config(emulator, path, "sqlite://")
    # A database without the state's tables: every query fails.
    broken = StateStore(sa.create_engine(f"sqlite:///{tmp_path / 'empty.db'}"))
    try:
        samples = scrape(Metrics(config, broken))
    finally:
        broken.close()

    assert value(samples, "fragment_sync_state_up") == 0
    assert value(samples, "fragment_sync_watermark_lag_seconds", connector="helpdesk") is None
    # The counters are still served, at 0.
    assert value(samples, "fragment_sync_tasks_pushed_total", connector="helpdesk") == 0


def test_passes_in_flight_are_known_until_they_finish(
    emulator: Emulator, tmp_path: Path, sqlite_url: str, state: StateStore
) -> None:
    path = write_tickets(tmp_path / "tickets.jsonl", tickets_updated(hours_ago=1, count=3))
    config = make_config(emulator, path, sqlite_url)
    metrics = Metrics(config, state)
    emulator.faults.latency = 0.5  # Fragment answers slowly: the pass stays in flight a while
    seen: list[tuple[list[str], float | None]] = []

    class Watcher:
        """Looks at the metrics while the pass is between its first and last request."""

        def answered(self, server: str, answer: str) -> None:
            flights = metrics.passes_in_flight()
            running = value(scrape(metrics), "fragment_sync_runs_in_progress", connector="helpdesk")
            seen.append(([f.name for f in flights], running))

        def waited(self, server: str, reason: str, seconds: float) -> None:
            pass

    metrics.install()
    session.OBSERVERS.append(Watcher())
    try:
        [summary] = run_once(config, state)
    finally:
        session.OBSERVERS.pop()
        metrics.uninstall()

    assert summary.ok
    assert seen and all(entry == (["helpdesk"], 1) for entry in seen)
    assert metrics.passes_in_flight() == []
    assert value(scrape(metrics), "fragment_sync_runs_in_progress", connector="helpdesk") == 0


def test_uninstalled_metrics_see_nothing(
    emulator: Emulator, tmp_path: Path, sqlite_url: str, state: StateStore
) -> None:
    path = write_tickets(tmp_path / "tickets.jsonl", tickets_updated(hours_ago=1, count=2))
    config = make_config(emulator, path, sqlite_url)
    metrics = Metrics(config, state)
    metrics.install()
    metrics.install()  # twice is once
    metrics.uninstall()

    [summary] = run_once(config, state)

    assert summary.pushed == 2
    samples = scrape(metrics)
    assert value(samples, "fragment_sync_tasks_pushed_total", connector="helpdesk") == 0
    assert value(samples, "fragment_sync_runs_total", connector="helpdesk", outcome="ok") == 0


def fleet(tmp_path: Path, state_url: str, connectors: int) -> Config:
    """A config of `connectors` jsonl connectors, each with a watermark, a last pass and a
    run in the state, every tenth still running (its lease expired)."""
    raw: dict[str, Any] = {
        "fragment": {"url": "http://127.0.0.1:9", "token": TOKEN},
        "state": {"url": state_url},
        "connectors": {
            f"c{number:05}": {"kind": "jsonl", "path": str(tmp_path / f"c{number}.jsonl")}
            for number in range(connectors)
        },
    }
    config = build_config(raw, source="test")
    now = dt.datetime.now(dt.UTC)
    names = [connector.uid_namespace for connector in config.connectors.values()]
    last = {"pulled": 0, "pushed": 0, "unchanged": 0, "failed": 0}
    with StateStore.open(state_url) as store, store.engine.begin() as conn:
        conn.execute(
            sa.insert(watermarks),
            [{"connector": n, "cursor_kind": "datetime", "updated_at": now,
              "cursor_value": "2026-12-01T00:00:00.000000+00:00"} for n in names],
        )  # fmt: skip
        conn.execute(
            sa.insert(connector_stats),
            [{"connector": n, "name": n, "run_id": f"run-{n}", "started_at": now,
              "ended_at": None if i % 10 == 0 else now, "outcome": "running" if i % 10 == 0
              else "ok", "error": None, **last, "last_ok_at": now, "passes": 3,
              "pulled_total": 9, "pushed_total": 9, "failed_total": 0, "tasks": 9,
              "failed_items": 0, "recorded_at": now} for i, n in enumerate(names)],
        )  # fmt: skip
        conn.execute(
            sa.insert(runs),
            [{"id": f"run-{n}", "connector": n, "name": n, "started_at": now,
              "ended_at": None if i % 10 == 0 else now,
              "outcome": "running" if i % 10 == 0 else "ok", **last, "requests": 0}
             for i, n in enumerate(names)],
        )  # fmt: skip
        conn.execute(
            sa.insert(leases),
            [{"connector": n, "owner": "gone:1:x", "acquired_at": now,
              "expires_at": now - dt.timedelta(minutes=1)} for n in names[::10]],
        )  # fmt: skip
    return config


def statements_of(store: StateStore, action: Callable[[], object]) -> list[str]:
    """The SQL statements `action` sent through `store`'s engine."""
    sent: list[str] = []

    def executed(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(statement)

    sa.event.listen(store.engine, "before_cursor_execute", executed)
    try:
        action()
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", executed)
    return sent


def test_a_scrape_runs_as_many_queries_for_a_thousand_connectors_as_for_ten(
    tmp_path: Path, state_url: str
) -> None:
    """A scrape ran 4 queries per connector: 42 s at 1,000 connectors."""
    counts = {}
    for connectors in (10, 1000):
        config = fleet(tmp_path, state_url, connectors)
        with StateStore.open(state_url) as store:
            metrics = Metrics(config, store)
            samples: Samples = {}
            sent = statements_of(store, lambda: samples.update(scrape(metrics)))  # noqa: B023
            counts[connectors] = len(sent)
            assert value(samples, "fragment_sync_tasks", connector="c00007") == 9
            assert value(samples, "fragment_sync_state_up") == 1
            tasks = [key for key in samples if key[0] == "fragment_sync_tasks"]
            assert len(tasks) == connectors
            with store.engine.begin() as conn:
                for table in (runs, watermarks, connector_stats, leases):
                    conn.execute(sa.delete(table))
    assert counts[10] == counts[1000], counts
    assert counts[10] <= 5


def test_the_status_page_runs_as_many_queries_for_a_thousand_connectors_as_for_ten(
    tmp_path: Path, state_url: str
) -> None:
    counts = {}
    for connectors in (10, 1000):
        config = fleet(tmp_path, state_url, connectors)
        readiness = Readiness(reasons=[], passes=[])
        with StateStore.open(state_url) as store:
            pages: list[str] = []
            now = dt.datetime.now(dt.UTC)
            sent = statements_of(
                store,
                lambda: pages.append(render_status(config, store, readiness, now)),  # noqa: B023
            )
            counts[connectors] = len(sent)
            assert pages[0].count("abandoned") >= connectors // 10  # their leases expired
            assert "could not be read" not in pages[0]
            with store.engine.begin() as conn:
                for table in (runs, watermarks, connector_stats, leases):
                    conn.execute(sa.delete(table))
    assert counts[10] == counts[1000], counts
