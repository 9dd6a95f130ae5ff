"""`python -m bench.scrape`: how long `/metrics` and the status page take for a large fleet.

Fills a state with N configured jsonl connectors as their passes leave it
(a watermark, a summary row, a run each; every tenth shown running with its
lease expired) and the daemon's metrics as if each had run a pass in this
process, starts the daemon's web server on it and scrapes it over
HTTP on loopback, as Prometheus would. Prints, for each page, the statements
one request ran and its median and slowest time of `--repeat`. The target is
a scrape within 1 s at 10,000 connectors (issue 22). A measurement, not a
test: nothing here asserts on a time.

    python -m bench.scrape --connectors 10000
    python -m bench.scrape --connectors 10000 \
        --state-server postgresql+psycopg://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from bench.state import state_database
from sync.config import Config, build_config
from sync.run import RunSummary
from sync.shell.metrics import Metrics
from sync.shell.web import WebServer
from sync.state import StateStore
from sync.state.schema import connector_stats, leases, runs, watermarks

TOKEN = "bench-scrape-token-0123456789"  # noqa: S105 (the bench's own server's)


def fleet_config(directory: Path, state_url: str, connectors: int) -> Config:
    """`connectors` jsonl connectors on `state_url` (their files need not exist: none runs)."""
    raw: dict[str, Any] = {
        "fragment": {"url": "http://127.0.0.1:9", "token": TOKEN},
        "state": {"url": state_url},
        "connectors": {
            f"c{number:05}": {"kind": "jsonl", "path": str(directory / f"c{number}.jsonl")}
            for number in range(connectors)
        },
    }
    return build_config(raw, source="bench")


def fill(store: StateStore, config: Config) -> None:
    """Each connector's state as its passes leave it; every tenth running, its lease expired."""
    now = dt.datetime.now(dt.UTC)
    names = [connector.uid_namespace for connector in config.connectors.values()]
    last = {"pulled": 0, "pushed": 0, "unchanged": 0, "failed": 0}
    running = set(names[::10])
    with store.engine.begin() as conn:
        conn.execute(
            sa.insert(watermarks),
            [
                {
                    "connector": name,
                    "cursor_kind": "datetime",
                    "cursor_value": "2026-12-01T00:00:00.000000+00:00",
                    "updated_at": now,
                }
                for name in names
            ],
        )
        conn.execute(
            sa.insert(connector_stats),
            [
                {
                    "connector": name,
                    "name": name,
                    "run_id": f"run-{name}",
                    "started_at": now,
                    "ended_at": None if name in running else now,
                    "outcome": "running" if name in running else "ok",
                    "error": None,
                    **last,
                    "last_ok_at": now,
                    "passes": 100,
                    "pulled_total": 1000,
                    "pushed_total": 1000,
                    "failed_total": 0,
                    "tasks": 1000,
                    "failed_items": 0,
                    "recorded_at": now,
                }
                for name in names
            ],
        )
        conn.execute(
            sa.insert(runs),
            [
                {
                    "id": f"run-{name}",
                    "connector": name,
                    "name": name,
                    "started_at": now,
                    "ended_at": None if name in running else now,
                    "outcome": "running" if name in running else "ok",
                    **last,
                    "requests": 0,
                }
                for name in names
            ],
        )
        conn.execute(
            sa.insert(leases),
            [
                {
                    "connector": name,
                    "owner": "gone:1:bench",
                    "acquired_at": now,
                    "expires_at": now - dt.timedelta(minutes=1),
                }
                for name in running
            ],
        )


def idle_pass(name: str) -> RunSummary:
    """What an idle pass of `name` reports."""
    return RunSummary(
        name=name, ok=True, pulled=0, pushed=0, unchanged=0, failed=0, watermark=None,
        duration_s=0.004,
    )  # fmt: skip


def measure(url: str, store: StateStore, path: str, repeat: int) -> tuple[int, list[float]]:
    """The statements one GET of `path` ran, and the seconds each of `repeat` GETs took."""
    sent: list[str] = []

    def executed(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(statement)

    times = []
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=url, headers=headers, timeout=120) as client:
        client.get(path).raise_for_status()  # the first: connections opened, template loaded
        sa.event.listen(store.engine, "before_cursor_execute", executed)
        try:
            client.get(path).raise_for_status()
        finally:
            sa.event.remove(store.engine, "before_cursor_execute", executed)
        for _ in range(repeat):
            began = time.perf_counter()
            client.get(path).raise_for_status()
            times.append(time.perf_counter() - began)
    return len(sent), times


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scrape", description=__doc__)
    parser.add_argument("--connectors", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--state-server", help="a PostgreSQL server URL (default: a SQLite file)", default=None
    )
    arguments = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fragment-bench-scrape-") as directory:
        workdir = Path(directory)
        with state_database(arguments.state_server, workdir, "bench_scrape") as state_url:
            config = fleet_config(workdir, state_url, arguments.connectors)
            with StateStore.open(state_url) as store:
                fill(store, config)
                metrics = Metrics(config, store)
                for name in config.connectors:  # each has run here: its histogram is filled
                    metrics.finished(idle_pass(name), "ok")
                web = WebServer(config, store, metrics, scheduler_running=lambda: True)
                with web:
                    backend = store.engine.dialect.name
                    for path in ("/metrics", "/"):
                        statements, times = measure(web.url, store, path, arguments.repeat)
                        print(
                            f"{backend}, {arguments.connectors} connectors, GET {path}: "
                            f"{statements} statements, median {statistics.median(times):.3f} s, "
                            f"slowest {max(times):.3f} s of {len(times)}"
                        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
