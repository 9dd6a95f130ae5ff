"""The daemon's metrics after real passes into the emulator, read back as a scrape."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from fragment_emulator import Emulator
from sync.config import Config
from sync.metrics import Metrics
from sync.run import RunOptions, RunSummary, run_once
from sync.state import StateStore
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
