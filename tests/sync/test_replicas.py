"""Several processes, one state database: a connector runs in exactly one at a time.

Three daemons share the machine's PostgreSQL (or MariaDB) and sync two connectors on a
one-second schedule into one emulator. Over many scheduled turns no
connector's passes overlap; killing the lease holder with SIGKILL hands the
connector to another replica within the lease's TTL; Fragment ends with every
ticket once. Three daemons on PostgreSQL or MariaDB divide six connectors:
each runs about once per interval, whichever replica claims it, never as a
busy skip; a daemon stopped with SIGTERM hands its claims back at once.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from fragment_emulator import Emulator
from sync.state import StateStore, utcnow
from sync.state.claims import Claims
from synckit import TOKEN, write_tickets

LEASE_TTL = 3


def config_text(
    base_url: str,
    state_url: str,
    files: dict[str, Path],
    interval: str = "1s",
    lease_ttl: int = LEASE_TTL,
    jitter: str = "0s",
) -> str:
    connectors = "".join(
        f"""
[connectors.{name}]
kind = "jsonl"
path = "{path}"
schedule = {{ interval = "{interval}", jitter = "{jitter}" }}
[connectors.{name}.mapping]
title = "{{subject}}"
source_id_field = "ticket_id"
"""
        for name, path in files.items()
    )
    return f"""
[fragment]
url = "{base_url}"
token = "{TOKEN}"
batch_size = 10
requests_per_minute = 100000

[state]
url = "{state_url}"

[locking]
lease_ttl = "{lease_ttl}s"

[daemon]
http_port = 0
shutdown_timeout = "10s"
{connectors}"""


def start_daemon(config: Path, log: Path) -> subprocess.Popen[bytes]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SYNC_")}
    return subprocess.Popen(
        [sys.executable, "-m", "sync", "run", "--config", str(config)],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
    )


def runs_overlap(state_url: str) -> list[str]:
    """Pairs of passes of one connector whose lifetimes overlap (a killed one ends at death)."""
    engine = sa.create_engine(state_url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT connector, started_at, ended_at FROM runs ORDER BY connector, started_at"
            )
        ).all()
    engine.dispose()
    problems = []
    previous: dict[str, tuple[dt.datetime, dt.datetime | None]] = {}
    for connector, started, ended in rows:
        before = previous.get(connector)
        if before is not None and before[1] is not None and started < before[1]:
            problems.append(f"{connector}: {before} overlaps {started}..{ended}")
        previous[connector] = (started, ended)
    return problems


def count_passes(state_url: str) -> int:
    """Passes finished, idle ones included: the connectors' summary rows count them all (the
    run history keeps only passes that did something, and a sample of idle ones)."""
    engine = sa.create_engine(state_url)
    with engine.connect() as conn:
        count = conn.execute(sa.text("SELECT sum(passes) FROM connector_stats")).scalar_one()
    engine.dispose()
    return int(count or 0)


@pytest.mark.postgres
@pytest.mark.parametrize("server", ["postgres", "mariadb"])
def test_three_daemons_share_a_state_and_never_run_a_connector_twice_at_once(
    tmp_path: Path, server: str, request: pytest.FixtureRequest
) -> None:
    state_url = request.getfixturevalue(f"{server}_url")
    files = {
        name: write_tickets(
            tmp_path / f"{name}.jsonl",
            [
                {"id": i, "subject": f"{name} {i}", "updated_at": f"2026-11-02T09:{i % 60:02d}:00Z"}
                for i in range(120)
            ],
        )
        for name in ("alpha", "beta")
    }
    with Emulator(tokens=[TOKEN]) as emulator:
        emulator.faults.latency = 0.05  # passes last long enough to collide if they could
        config = tmp_path / "sync.toml"
        config.write_text(config_text(emulator.base_url, state_url, files))
        logs = [tmp_path / f"daemon{i}.log" for i in range(3)]
        daemons = [start_daemon(config, log) for log in logs]
        try:
            deadline = time.monotonic() + 60
            while emulator.store.count() < 240 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert emulator.store.count() == 240

            # Kill whoever holds alpha's lease right now, mid-pass or between passes.
            store = StateStore.open(state_url)
            holder = None
            while holder is None and time.monotonic() < deadline:
                holder = store.lease("alpha")
                time.sleep(0.05)
            assert holder is not None
            pid = int(holder.owner.split(":")[1])
            victim = next(d for d in daemons if d.pid == pid)
            victim.send_signal(signal.SIGKILL)
            victim.wait(timeout=10)
            killed_at = time.monotonic()

            # New tickets for alpha: a surviving replica must take over and sync them.
            tickets = [
                {"id": i, "subject": f"alpha {i} v2", "updated_at": "2026-11-03T00:00:00Z"}
                for i in range(120, 150)
            ]
            with files["alpha"].open("a") as handle:
                handle.writelines(json.dumps(ticket) + "\n" for ticket in tickets)
            while emulator.store.count() < 270 and time.monotonic() < deadline:
                time.sleep(0.2)
            taken_over_after = time.monotonic() - killed_at
            assert emulator.store.count() == 270
            assert taken_over_after < LEASE_TTL + 5
            new_holder = store.lease("alpha")
            assert new_holder is None or int(new_holder.owner.split(":")[1]) != pid

            # Let the survivors take many scheduled turns, so that overlapping passes,
            # if they could happen, would have had the chance to.
            store.close()
            while count_passes(state_url) < 8 and time.monotonic() < deadline + 30:
                time.sleep(0.2)
        finally:
            for daemon in daemons:
                if daemon.poll() is None:
                    daemon.send_signal(signal.SIGTERM)
            for daemon in daemons:
                try:
                    daemon.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    daemon.kill()

        survivors = [d for d in daemons if d.pid != pid]
        tails = [log.read_text()[-2000:] for log in logs]
        assert all(d.returncode == 0 for d in survivors), tails
        titles = [task["fields"]["title"] for task in emulator.store.all_tasks()]
        expected = {f"{name} {i}" for name in ("alpha", "beta") for i in range(120)}
        expected |= {f"alpha {i} v2" for i in range(120, 150)}
        assert sorted(titles) == sorted(expected)  # every ticket, each once
        assert runs_overlap(state_url) == []
        engine = sa.create_engine(state_url)
        with engine.connect() as conn:
            owners = conn.execute(sa.text("SELECT count(DISTINCT name) FROM runs")).scalar_one()
        engine.dispose()
        assert count_passes(state_url) >= 8  # many scheduled turns happened
        assert owners == 2


def test_run_once_on_a_connector_another_process_runs_exits_75(
    tmp_path: Path, emulator: Emulator
) -> None:
    files = {
        "alpha": write_tickets(
            tmp_path / "alpha.jsonl",
            [{"id": 1, "subject": "a", "updated_at": "2026-11-02T09:00:00Z"}],
        )
    }
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    config = tmp_path / "sync.toml"
    config.write_text(config_text(emulator.base_url, state_url, files))
    store = StateStore.open(state_url)
    assert store.acquire_lease("alpha", "elsewhere:1:x", ttl=60)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SYNC_")}
    result = subprocess.run(
        [sys.executable, "-m", "sync", "run", "--once", "--json", "--config", str(config)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 75, result.stderr
    assert '"outcome": "busy"' in result.stdout
    assert emulator.store.count() == 0
    store.release_lease("alpha", "elsewhere:1:x")
    again = subprocess.run(
        [sys.executable, "-m", "sync", "run", "--once", "--config", str(config)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert again.returncode == 0, again.stderr
    assert emulator.store.count() == 1
    store.close()


def finished_events(log: Path) -> list[dict[str, Any]]:
    """A daemon's `run_finished` events so far."""
    events = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == "run_finished":
            events.append(event)
    return events


def stop_all(daemons: list[subprocess.Popen[bytes]]) -> None:
    for daemon in daemons:
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
    for daemon in daemons:
        try:
            daemon.wait(timeout=20)
        except subprocess.TimeoutExpired:
            daemon.kill()


INTERVAL = 2.0
WINDOW = 10.0
"""Seconds the division is watched for: five intervals."""


@pytest.mark.postgres
@pytest.mark.parametrize("server", ["postgres", "mariadb"])
def test_three_daemons_divide_the_connectors_each_running_about_once_an_interval(
    tmp_path: Path, server: str, request: pytest.FixtureRequest
) -> None:
    """Every replica used to try every connector at every tick: 60% of the attempts were
    busy skips, a fifth of the passes duplicates, and three replicas three times the work."""
    state_url = request.getfixturevalue(f"{server}_url")
    names = [f"c{i}" for i in range(6)]
    files = {
        name: write_tickets(
            tmp_path / f"{name}.jsonl",
            [{"id": 1, "subject": f"{name} 1", "updated_at": "2026-11-02T09:00:00Z"}],
        )
        for name in names
    }
    with Emulator(tokens=[TOKEN]) as emulator:
        config = tmp_path / "sync.toml"
        text = config_text(
            emulator.base_url, state_url, files, f"{INTERVAL:g}s", lease_ttl=30, jitter="1s"
        )
        config.write_text(text)
        logs = [tmp_path / f"daemon{i}.log" for i in range(3)]
        daemons = [start_daemon(config, log) for log in logs]
        try:
            deadline = time.monotonic() + 60
            while emulator.store.count() < len(names) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert emulator.store.count() == len(names)
            before = [len(finished_events(log)) for log in logs]
            time.sleep(WINDOW)  # watch five intervals of the fleet at work
            during = [finished_events(log)[count:] for log, count in zip(logs, before, strict=True)]
        finally:
            stop_all(daemons)

    tails = [log.read_text()[-2000:] for log in logs]
    assert all(d.returncode == 0 for d in daemons), tails
    passes = [event for events in during for event in events]
    per_connector = {name: sum(e["name"] == name for e in passes) for name in names}
    # One a connector per interval, and one more where the window cuts a turn: never the
    # two or three more of replicas each running it.
    assert all(1 <= count <= WINDOW / INTERVAL + 1 for count in per_connector.values()), (
        per_connector
    )
    assert [e for e in passes if e["outcome"] != "ok"] == []  # no busy skip, no failure
    assert all(events for events in during), [len(events) for events in during]  # each a share
    assert runs_overlap(state_url) == []


@pytest.mark.postgres
def test_a_daemon_stopped_with_sigterm_hands_its_claims_back_at_once(
    tmp_path: Path, postgres_url: str
) -> None:
    """With a lease TTL of a minute, a claim left held would keep its connector from every
    other replica for that minute."""
    names = ["alpha", "beta", "gamma"]
    files = {
        name: write_tickets(
            tmp_path / f"{name}.jsonl",
            [{"id": 1, "subject": f"{name} 1", "updated_at": "2026-11-02T09:00:00Z"}],
        )
        for name in names
    }
    with Emulator(tokens=[TOKEN]) as emulator:
        config = tmp_path / "sync.toml"
        config.write_text(config_text(emulator.base_url, postgres_url, files, lease_ttl=60))
        log = tmp_path / "daemon.log"
        [daemon] = daemons = [start_daemon(config, log)]
        try:
            deadline = time.monotonic() + 60
            while len(finished_events(log)) < 2 * len(names) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert len(finished_events(log)) >= 2 * len(names), log.read_text()[-2000:]
        finally:
            stop_all(daemons)

    assert daemon.returncode == 0, log.read_text()[-2000:]
    store = StateStore.open(postgres_url)
    try:
        assert [store.lease(name) for name in names] == [None, None, None]
        replica = Claims(store, "next:1:x", ttl=60, connectors=names)
        replica.register({name: utcnow() + dt.timedelta(seconds=2) for name in names})
        claimed: list[str] = []
        while len(claimed) < len(names) and time.monotonic() < deadline:
            claimed += [claim.connector for claim in replica.take_due(limit=3)]
            time.sleep(0.1)
        assert sorted(claimed) == names  # due within their interval, not the lease's minute
    finally:
        store.close()
