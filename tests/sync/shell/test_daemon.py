"""The daemon's schedules through the real APScheduler, and its passes while the state is down.

Real passes run in a `python -m sync run` subprocess, from a JSONL file into
the emulator. A cron line fires at most once a minute, so the cron trigger's
fire times and jitter are read from the job the daemon schedules, not waited
for; its first pass (at start, as with an interval) is a real one.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from fragment_emulator import Emulator
from sync.config import Config, ScheduleSettings, build_config
from sync.cron import cron_trigger
from sync.errors import ConfigError
from sync.run import RUN_OBSERVERS, RunSummary, run_once
from sync.shell.cli import main
from sync.shell.daemon import Daemon, next_due
from sync.state import Pool, StateStore
from synckit import TOKEN, DaemonProcess, tasks_by_ticket, write_tickets

WEEK = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
TICKETS = [
    {"id": i, "subject": f"Printer {i} jammed", "updated_at": f"2026-11-02T09:{i:02d}:00Z"}
    for i in range(12)
]


def daemon_config(
    directory: Path, emulator: Emulator, schedule: str, state_url: str = "", port: int = 0
) -> Path:
    """A daemon config: the JSONL file `tickets.jsonl` into `emulator` on `schedule`."""
    tickets = directory / "tickets.jsonl"
    if not tickets.exists():
        write_tickets(tickets, TICKETS)
    path = directory / "sync.toml"
    path.write_text(f"""
[fragment]
url = "{emulator.base_url}"
token = "{TOKEN}"
requests_per_minute = 100000
max_retry_wait = "1s"

[state]
url = "{state_url or f"sqlite:///{directory / 'state.db'}"}"

[locking]
lease_ttl = "3s"

[daemon]
http_port = {port}
shutdown_timeout = "10s"

[connectors.helpdesk]
kind = "jsonl"
path = "{tickets}"
schedule = {schedule}

[connectors.helpdesk.mapping]
title = "{{subject}}"
""")
    return path


def finished(daemon: DaemonProcess, outcome: str | None = None) -> list[dict[str, Any]]:
    """The daemon's `run_finished` events (of one outcome, if given)."""
    return [
        event
        for event in daemon.lines()
        if event.get("event") == "run_finished"
        and (outcome is None or event.get("outcome") == outcome)
    ]


# Real passes on a schedule


def test_a_daemon_on_a_cron_schedule_starts_and_runs_its_passes(
    tmp_path: Path, emulator: Emulator
) -> None:
    """The cron form the README documents used to kill the daemon at start: TypeError, exit 1."""
    config = daemon_config(tmp_path, emulator, '{ cron = "*/10 * * * *", jitter = "30s" }')

    with DaemonProcess(config, tmp_path / "daemon.log") as daemon:
        daemon.wait_for(lambda: emulator.store.count() == 12, what="the first pass's 12 tasks")
        daemon.wait_for(lambda: bool(finished(daemon, "ok")), what="an ok pass")
        code = daemon.stop()

    assert code == 0, daemon.text()
    assert sorted(int(k) for k in tasks_by_ticket(emulator)) == list(range(12))
    assert "Traceback" not in daemon.text()


def test_an_interval_daemon_picks_up_a_new_ticket_on_a_later_pass(
    tmp_path: Path, emulator: Emulator
) -> None:
    config = daemon_config(tmp_path, emulator, '{ interval = "1s", jitter = "1s" }')

    with DaemonProcess(config, tmp_path / "daemon.log") as daemon:
        daemon.wait_for(lambda: emulator.store.count() == 12, what="the first pass's 12 tasks")
        daemon.wait_for(lambda: bool(finished(daemon, "ok")), what="the first pass's end")
        first_passes = len(finished(daemon))
        with (tmp_path / "tickets.jsonl").open("a") as handle:
            ticket = {"id": 99, "subject": "Late one", "updated_at": "2026-11-02T10:00:00Z"}
            handle.write(json.dumps(ticket) + "\n")
        daemon.wait_for(lambda: "99" in tasks_by_ticket(emulator), what="ticket 99 in Fragment")
        code = daemon.stop()

    assert code == 0, daemon.text()
    assert tasks_by_ticket(emulator)["99"]["fields"]["title"] == "Late one"
    assert len(finished(daemon, "ok")) > first_passes >= 1  # later scheduled passes did it


# The triggers, as the daemon schedules them


def test_a_cron_connector_is_due_on_its_line_each_time_within_its_jitter() -> None:
    schedule = ScheduleSettings(cron="*/10 * * * *", jitter=dt.timedelta(seconds=30))
    slot = dt.datetime(2026, 11, 2, 9, 10, tzinfo=dt.UTC)
    now = dt.datetime(2026, 11, 2, 9, 3, 12, tzinfo=dt.UTC)
    offsets = []
    for _ in range(200):
        due = next_due(schedule, now, now)
        assert slot <= due <= slot + dt.timedelta(seconds=30), (due, slot)
        offsets.append((due - slot).total_seconds())
        now = due + dt.timedelta(seconds=2)  # the pass took two seconds
        slot += dt.timedelta(minutes=10)

    assert max(offsets) > 1  # the jitter spreads the passes (all 0: no jitter applied)


def test_an_interval_connector_is_due_its_interval_after_its_last_due_give_or_take_its_jitter() -> (
    None
):
    schedule = ScheduleSettings(interval=dt.timedelta(minutes=5), jitter=dt.timedelta(seconds=20))
    due = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)
    ended = due + dt.timedelta(seconds=40)  # it waited for a worker, then ran

    gaps = [(next_due(schedule, due, ended) - due).total_seconds() for _ in range(400)]

    assert all(290 <= gap <= 310 for gap in gaps), gaps
    assert min(gaps) < 299 and max(gaps) > 301  # moved both ways
    assert 298 < sum(gaps) / len(gaps) < 302  # one pass an interval, on average


def test_a_pass_that_started_late_counts_its_interval_from_its_start() -> None:
    """A replica behind (every connector due at once as it started) ran the ones it reached
    last twice in an interval as it caught up: 1.28 passes an interval at 10,000."""
    schedule = ScheduleSettings(interval=dt.timedelta(minutes=1), jitter=dt.timedelta(0))
    due = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)

    late = due + dt.timedelta(seconds=50)
    on_time = due + dt.timedelta(seconds=5)  # within a tenth of the interval: a short wait

    assert next_due(schedule, due, late + dt.timedelta(seconds=1), late) == late + schedule.interval
    assert next_due(schedule, due, on_time, on_time) == due + schedule.interval


def test_a_pass_that_ran_past_its_next_turn_is_due_again_at_once() -> None:
    schedule = ScheduleSettings(interval=dt.timedelta(minutes=5), jitter=dt.timedelta(0))
    due = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)
    ended = due + dt.timedelta(minutes=7)

    assert next_due(schedule, due, ended) == ended


def test_connectors_on_one_interval_spread_out_by_default() -> None:
    """With `jitter` unset, a twentieth of the interval (at most 15s); a cron line none."""
    assert ScheduleSettings(interval=dt.timedelta(minutes=1)).spread == dt.timedelta(seconds=3)
    assert ScheduleSettings(interval=dt.timedelta(hours=1)).spread == dt.timedelta(seconds=15)
    assert ScheduleSettings(cron="0 9 * * *").spread == dt.timedelta(0)
    schedule = ScheduleSettings(interval=dt.timedelta(minutes=1))
    due = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)
    dues = {next_due(schedule, due, due) for _ in range(50)}
    assert len(dues) > 1
    assert all(abs((d - due).total_seconds() - 60) <= 1.5 for d in dues)


@pytest.mark.parametrize(
    ("line", "weekdays"),
    [
        ("0 9 * * 1-5", ["Mon", "Tue", "Wed", "Thu", "Fri"]),
        ("0 9 * * 0", ["Sun"]),
        ("0 9 * * 7", ["Sun"]),
        ("0 9 * * 5-7", ["Fri", "Sat", "Sun"]),
        ("0 9 * * 0,6", ["Sat", "Sun"]),
        ("0 9 * * */2", ["Sun", "Tue", "Thu", "Sat"]),
        ("0 9 * * 1-5/2", ["Mon", "Wed", "Fri"]),
        ("0 9 * * sat,sun", ["Sat", "Sun"]),
        ("0 9 * * mon-fri", ["Mon", "Tue", "Wed", "Thu", "Fri"]),
    ],
)
def test_cron_weekdays_count_from_sunday_as_crontab_does(line: str, weekdays: list[str]) -> None:
    """APScheduler 3's `from_crontab` counts weekdays from Monday: `1-5` ran Tuesday to Saturday."""
    trigger = cron_trigger(line)
    start = dt.datetime(2026, 11, 1, 0, 0, tzinfo=dt.UTC)  # a Sunday, before 09:00
    fire: dt.datetime | None = None
    seen = []
    for _ in range(8):
        fire = trigger.get_next_fire_time(fire, fire or start)
        assert fire is not None and (fire.hour, fire.minute) == (9, 0)
        if fire >= start + dt.timedelta(days=7):
            break
        seen.append(fire.strftime("%a"))

    assert sorted(seen, key=WEEK.index) == sorted(weekdays, key=WEEK.index)


def test_a_cron_line_restricting_both_days_runs_on_either_as_crontab_does() -> None:
    """Crontab runs `0 9 13 * 5` on the 13th and on every Friday, not on Friday the 13th only."""
    trigger = cron_trigger("0 9 13 * 5")
    fire = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)  # a Tuesday; the 13th is a Sunday
    days = []
    for _ in range(5):
        next_fire = trigger.get_next_fire_time(fire, fire)
        assert next_fire is not None
        days.append(next_fire.day)
        fire = next_fire

    assert days == [4, 11, 13, 18, 25]


@pytest.mark.parametrize(
    "line",
    ["61 * * * *", "*/10 25 * * *", "* * 32 * *", "* * * 13 *", "* * * * funday", "a b c d e"],
)
def test_a_cron_line_apscheduler_refuses_is_a_configuration_error_naming_the_key(
    tmp_path: Path, emulator: Emulator, line: str
) -> None:
    raw = {
        "fragment": {"url": emulator.base_url, "token": TOKEN},
        "connectors": {
            "helpdesk": {"kind": "jsonl", "path": "t.jsonl", "schedule": {"cron": line}}
        },
    }
    with pytest.raises(ConfigError) as refused:
        build_config(raw, source="test")
    assert refused.value.key == "connectors.helpdesk.schedule.cron"

    config = daemon_config(tmp_path, emulator, f'{{ cron = "{line}" }}')
    assert main(["run", "--config", str(config)]) == 2


# The daemon while its state database is unreachable


@pytest.fixture
def postgres_switch(postgres_url: str) -> Iterator[PostgresSwitch]:
    switch = PostgresSwitch(postgres_url)
    yield switch
    switch.allow()
    switch.admin.dispose()


class PostgresSwitch:
    """Takes a PostgreSQL database out of reach as an outage does, and back.

    Out of reach: its open connections are terminated and new ones are refused
    ("database ... is not currently accepting connections").
    """

    def __init__(self, url: str) -> None:
        parsed = sa.engine.make_url(url)
        self.name = parsed.database
        self.admin = sa.create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")

    def refuse(self) -> None:
        with self.admin.connect() as conn:
            conn.execute(sa.text(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS false'))
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"
                ),
                {"name": self.name},
            )

    def allow(self) -> None:
        with self.admin.connect() as conn:
            conn.execute(sa.text(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS true'))


def scrape_runs(port: int, outcome: str) -> float:
    """`fragment_sync_runs_total{connector="helpdesk", outcome=...}` from the daemon's /metrics."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "fragment_sync_runs_total" and sample.labels == {
                "connector": "helpdesk",
                "outcome": outcome,
            }:
                return sample.value
    raise AssertionError(f"no runs_total for outcome {outcome}:\n{text}")


@pytest.mark.postgres
def test_while_the_state_database_is_unreachable_the_daemon_says_so_once_and_resumes_after(
    tmp_path: Path, emulator: Emulator, postgres_url: str, postgres_switch: PostgresSwitch
) -> None:
    """Claiming fails every second while the state is out of reach: one JSON line says so,
    not one a second and no traceback (APScheduler's "Job ... raised an exception" was one);
    passes start again once it answers."""
    config = daemon_config(tmp_path, emulator, '{ interval = "1s" }', postgres_url)

    with DaemonProcess(config, tmp_path / "daemon.log") as daemon:
        daemon.wait_for(lambda: bool(finished(daemon, "ok")), what="a first ok pass")
        postgres_switch.refuse()
        daemon.wait_for(lambda: bool(events(daemon, "claims_failed")), what="claims_failed")
        time.sleep(3)  # three more turns of the scheduler loop, failing too
        postgres_switch.allow()
        ok_before = len(finished(daemon, "ok"))
        daemon.wait_for(lambda: len(finished(daemon, "ok")) > ok_before, what="a pass after")
        code = daemon.stop()

    assert code == 0, daemon.text()
    assert "Traceback" not in daemon.text()
    assert not [e for e in daemon.lines() if "exception" in e or "raw" in e]
    [failing] = events(daemon, "claims_failed")
    assert failing["level"] == "error"
    assert failing["error"].startswith("the state database is unreachable: ")
    assert len(events(daemon, "claims_resumed")) == 1
    assert len(tasks_by_ticket(emulator)) == 12


def events(daemon: DaemonProcess, name: str) -> list[dict[str, Any]]:
    return [event for event in daemon.lines() if event.get("event") == name]


def helpdesk_config(
    tmp_path: Path, emulator: Emulator, state: dict[str, Any], **fragment: Any
) -> Config:
    """One jsonl connector, `helpdesk`, syncing `TICKETS` into `emulator` on `state`."""
    return build_config(
        {
            "fragment": {"url": emulator.base_url, "token": TOKEN, **fragment},
            "state": state,
            "connectors": {
                "helpdesk": {
                    "kind": "jsonl",
                    "path": str(write_tickets(tmp_path / "tickets.jsonl", TICKETS)),
                    "mapping": {"title": "{subject}"},
                }
            },
        },
        source="test",
    )


@pytest.mark.postgres
@pytest.mark.parametrize("server", ["postgres", "mariadb"])
def test_a_worker_whose_pool_runs_dry_fails_its_pass_in_one_line_and_counts_it(
    tmp_path: Path, emulator: Emulator, server: str, request: pytest.FixtureRequest
) -> None:
    """32 pool timeouts escaped the workers as tracebacks, uncounted, their runs left
    "running" and their leases held until expiry."""
    state_url = request.getfixturevalue(f"{server}_url")
    config = helpdesk_config(
        tmp_path, emulator, {"url": state_url, "pool_size": 1, "pool_timeout": "1s"}
    )
    store = StateStore.open(state_url, pool=Pool(config.pool_size, 1.0))
    daemon = Daemon(config, store, None, threading.Event())
    daemon.schedule()
    [claim] = daemon.claims.take_due(limit=1)
    outcomes: list[str] = []
    observer = Outcomes(outcomes)
    RUN_OBSERVERS.append(observer)
    try:
        # Every connection of the pool (its size, as many again) is busy elsewhere.
        with store.engine.connect(), store.engine.connect(), capture_logs() as logs:
            daemon.work(claim)
    finally:
        RUN_OBSERVERS.remove(observer)
        daemon.client.close()
        daemon.pool.shutdown()

    assert outcomes == ["failed"]  # counted once
    assert not [e for e in logs if "exc_info" in e or e["event"] == "run_crashed"]
    [line] = [e for e in logs if e["log_level"] == "error"]
    assert line["event"] == "run_finished" and line["connector"] == "helpdesk"
    assert line["error"].startswith("the state database's connection pool had no free connection")
    # The claim could not be released either: it expires, and the next turn takes it.
    [left] = [e for e in logs if e["event"] == "claim_not_released"]
    assert left["log_level"] == "warning"
    assert daemon.held == set()
    holder = store.lease("helpdesk")
    assert holder is not None and holder.owner == daemon.options.owner
    store.close()


class Outcomes:
    """A run observer keeping each pass's outcome."""

    def __init__(self, outcomes: list[str]) -> None:
        self.outcomes = outcomes

    def started(self, name: str, run_id: str | None) -> None:
        pass

    def finished(self, summary: RunSummary, outcome: str) -> None:
        self.outcomes.append(outcome)


@pytest.mark.postgres
def test_a_pass_whose_state_database_goes_away_mid_pass_is_a_failed_pass(
    tmp_path: Path, emulator: Emulator, postgres_url: str, postgres_switch: PostgresSwitch
) -> None:
    """The checkpoint after the batch can't be written: the pass fails, it doesn't crash."""
    config = helpdesk_config(tmp_path, emulator, {"url": postgres_url}, max_retry_wait="1s")

    class OutageOnStart:
        def started(self, name: str, run_id: str | None) -> None:
            postgres_switch.refuse()

        def finished(self, summary: RunSummary, outcome: str) -> None:
            outcomes.append(outcome)

    outcomes: list[str] = []
    observer = OutageOnStart()
    store = StateStore.open(postgres_url)
    RUN_OBSERVERS.append(observer)
    try:
        with capture_logs() as logs:
            [summary] = run_once(config, store)
    finally:
        RUN_OBSERVERS.remove(observer)
        store.close()

    assert summary.outcome == "failed"
    assert summary.error is not None
    assert summary.error.startswith("the state database is unreachable: ")
    assert outcomes == ["failed"]  # counted once
    assert not [e for e in logs if e["event"] == "run_crashed" or "exc_info" in e]
    [line] = [e for e in logs if e["log_level"] == "error"]
    assert line["event"] == "run_finished" and line["connector"] == "helpdesk"


def test_a_turn_that_claims_as_the_daemon_stops_hands_its_claims_back(
    tmp_path: Path, emulator: Emulator, sqlite_url: str
) -> None:
    """At a stop, a turn that had claimed connectors found the pool shut down: a
    RuntimeError traceback in the log, and the claims held until they expired."""
    config = helpdesk_config(tmp_path, emulator, {"url": sqlite_url})
    store = StateStore.open(sqlite_url)
    daemon = Daemon(config, store, None, threading.Event())
    daemon.schedule()
    daemon.pool.shutdown()  # the stop's, between this turn's check and its claim
    try:
        with capture_logs() as logs:
            daemon.tick()
    finally:
        daemon.client.close()

    assert not [e for e in logs if e["log_level"] == "error"]
    assert daemon.held == set()
    assert store.lease("helpdesk") is None  # handed back, not held until it expires
    [again] = daemon.claims.take_due(limit=1)  # and due still
    assert again.connector == "helpdesk"
    store.close()
