"""The census figure of issue 19: a census of N ids (default 1,000,000), on its own.

    python -m bench.census [--n 1000000] [--gone 1000] [--workdir DIR] [--json]

Optional, and not part of `python -m bench`: it needs no emulator. The source is a
SQLite table of N - gone ids read by the `sql` connector; the state tracks N tasks,
written straight into it (a backfill of a million tickets is figure 1's). The census
runs as a dry run in a child process of its own, so its peak RSS is the census's:
it lists the ids, spills them, merges them with the state's and counts the gone
ones, sending nothing (archiving them is a pass's pushes, measured by the other
figures). Prints the time, the child's peak RSS and the source queries (SELECTs the
connector sent), and checks the count found gone.
"""

from __future__ import annotations

import argparse
import json
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

BATCH = 50_000


def build(workdir: Path, n: int, gone: int) -> tuple[Path, Path]:
    """The source database (ids `gone + 1`..`n`) and the state tracking ids 1..`n`."""
    from sync.state import StateStore

    source, state = workdir / "source.db", workdir / "state.db"
    for path in (source, state):
        path.unlink(missing_ok=True)
    with sqlite3.connect(source) as db:
        db.execute("CREATE TABLE tickets (id INTEGER PRIMARY KEY, updated_at TEXT NOT NULL)")
        for start in range(gone + 1, n + 1, BATCH):
            rows = [(i, "2026-11-01 10:00:00") for i in range(start, min(start + BATCH, n + 1))]
            db.executemany("INSERT INTO tickets VALUES (?, ?)", rows)
    StateStore.open(f"sqlite:///{state}").close()  # the schema
    with sqlite3.connect(state) as db:
        for start in range(1, n + 1, BATCH):
            db.executemany(
                "INSERT INTO tasks (connector, source_id, uid, content_hash, source_cursor, "
                "pushed_at, archived) VALUES ('bench', ?, ?, ?, 'i:1', '2026-11-01 10:00:00', 0)",
                [
                    (str(i), f"{i:032x}"[:36], f"{i:032x}")
                    for i in range(start, min(start + BATCH, n + 1))
                ],
            )
    return source, state


def child(source: Path, state: Path) -> dict[str, Any]:
    """Run the census (a dry run) and count the source's queries; in the child process."""
    import sqlalchemy as sa

    from sync.census import ConnectorCensus
    from sync.config import build_config
    from sync.run import RunOptions
    from sync.state import StateStore

    queries = 0

    def count(conn: Any, *_args: Any) -> None:
        nonlocal queries
        if str(conn.engine.url).endswith(source.name):
            queries += 1

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", count)
    raw = {
        "fragment": {"url": "http://127.0.0.1:9/api/v1", "token": "unused"},
        "state": {"url": f"sqlite:///{state}"},
        "connectors": {
            "bench": {"kind": "sql", "url": f"sqlite:///{source}", "table": "tickets",
                      "census_max_share": 1},
        },
    }  # fmt: skip
    config = build_config(raw, source="bench")
    with StateStore.open(config.state.url) as store:
        started = time.monotonic()
        summary = ConnectorCensus(
            config.connectors["bench"], store, None, 100, RunOptions(dry_run=True)
        ).execute()
        seconds = time.monotonic() - started
    return {"seconds": seconds, "source_queries": queries, **summary.as_json()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.census", description=__doc__)
    parser.add_argument("--n", type=int, default=1_000_000, help="ids tracked (default 1e6)")
    parser.add_argument("--gone", type=int, default=1000, help="of them, gone from the source")
    parser.add_argument("--workdir", type=Path, help="where the databases go (default: a temp)")
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    parser.add_argument("--child", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(*args.child)))
        return 0
    with tempfile.TemporaryDirectory(prefix="fragment-bench-census-") as temporary:
        workdir = args.workdir or Path(temporary)
        workdir.mkdir(parents=True, exist_ok=True)
        source, state = build(workdir, args.n, args.gone)
        done = subprocess.run(
            [sys.executable, "-m", "bench.census", "--child", str(source), str(state)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            print(done.stderr[-3000:], file=sys.stderr)
            return 2
        figure = json.loads(done.stdout.strip().splitlines()[-1])
    # Linux reports ru_maxrss in KiB: the largest child's, and the census ran in the only one.
    figure["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    figure["n"] = args.n
    figure["check_ok"] = figure["gone"] == args.gone and figure["tracked"] == args.n
    if args.json:
        print(json.dumps(figure, indent=2))
    else:
        print(
            f"census of {args.n:,} ids: {figure['seconds']:.1f} s, peak RSS "
            f"{figure['peak_rss_mb']:.0f} MB, {figure['source_queries']} source queries, "
            f"{figure['gone']:,} gone ({'OK' if figure['check_ok'] else 'WRONG COUNT'})"
        )
    return 0 if figure["check_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
