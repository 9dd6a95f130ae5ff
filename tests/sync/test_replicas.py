"""Several processes, one state database: a connector runs in exactly one at a time.

Three daemons share the machine's PostgreSQL and sync two connectors on a
one-second schedule into one emulator. Over many scheduled turns no
connector's passes overlap; killing the lease holder with SIGKILL hands the
connector to another replica within the lease's TTL; Fragment ends with every
ticket once.
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

import sqlalchemy as sa

from fragment_emulator import Emulator
from sync.state import StateStore
from synckit import TOKEN, write_tickets

LEASE_TTL = 3


def config_text(base_url: str, state_url: str, files: dict[str, Path]) -> str:
    connectors = "".join(
        f"""
[connectors.{name}]
kind = "jsonl"
path = "{path}"
schedule = {{ interval = "1s" }}
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
lease_ttl = "{LEASE_TTL}s"

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


def test_three_daemons_share_postgres_and_never_run_a_connector_twice_at_once(
    tmp_path: Path, postgres_url: str
) -> None:
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
        config.write_text(config_text(emulator.base_url, postgres_url, files))
        logs = [tmp_path / f"daemon{i}.log" for i in range(3)]
        daemons = [start_daemon(config, log) for log in logs]
        try:
            deadline = time.monotonic() + 60
            while emulator.store.count() < 240 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert emulator.store.count() == 240

            # Kill whoever holds alpha's lease right now, mid-pass or between passes.
            store = StateStore.open(postgres_url)
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
            while count_passes(postgres_url) < 8 and time.monotonic() < deadline + 30:
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
        assert runs_overlap(postgres_url) == []
        engine = sa.create_engine(postgres_url)
        with engine.connect() as conn:
            owners = conn.execute(sa.text("SELECT count(DISTINCT name) FROM runs")).scalar_one()
        engine.dispose()
        assert count_passes(postgres_url) >= 8  # many scheduled turns happened
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
