"""The comment sync figure of issue 19: its share of Fragment's limit while a backfill runs.

    python -m bench.comments [--rate 60] [--seconds 120] [--quick] [--json]

Optional, and not part of `python -m bench`, as `bench.census`. One process does
what a daemon does with two connectors and one Fragment client (one request
budget, as Fragment's limit is per token): `history` backfills the comments of
its tickets (`conversation.sync` and `backfill`), while `tasks` changes a
ticket every `TICK` seconds per 60 a minute of the rate and pushes each in a
request of its own, half the rate in all. The emulator refuses what goes over
`rate` a minute (429). Prints tasks and comments a minute over the window, the
requests' shares, the 429s (none is the target), and how many task requests
waited longer than they would have without comment sync (the request budget's
`delayed_by_spare`; none is the target).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

TICK = 2.0
"""Seconds between two passes of `tasks`, each with `rate / 60` changed tickets."""


def stamp(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def tickets(count: int, start: int, updated: str, comments: int = 0) -> list[dict[str, Any]]:
    """`count` tickets from id `start`, each with `comments` comments made long ago."""
    return [
        {
            "id": number,
            "subject": f"Ticket {number}",
            "status": "open",
            "updated_at": updated,
            "comments": [
                {
                    "id": f"{number}-{n}",
                    "created_at": "2020-01-01T10:00:00Z",
                    "body": f"reply {n}",
                    "author": "Ada",
                }
                for n in range(comments)
            ],
        }
        for number in range(start, start + count)
    ]


def write(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def measure(rate: int, seconds: float, workdir: Path) -> dict[str, Any]:
    """Run the two connectors for `seconds` against an emulator limited to `rate` a minute."""
    from fragment_emulator import DEFAULT_TOKEN, Emulator, Faults
    from sync.config import build_config
    from sync.fragment import FragmentClient
    from sync.run import COMMENT_SHARE, ConnectorRun, RunOptions
    from sync.state import StateStore

    changes = max(1, rate // 60)
    backlog = int(rate * seconds / 60) + 50  # more comments than the window can post
    history, tasks = workdir / "history.jsonl", workdir / "tasks.jsonl"
    write(history, tickets(backlog // 3 + 1, 1, "2020-01-02T00:00:00Z", comments=3))
    write(tasks, tickets(changes * 3, 100_000, "2020-01-02T00:00:00Z"))
    mapping = {"title": "{subject}"}
    with Emulator(faults=Faults(rate_limit=(rate, 60.0))) as emulator:
        raw = {
            "fragment": {
                "url": emulator.base_url, "token": DEFAULT_TOKEN, "requests_per_minute": rate
            },
            "state": {"url": f"sqlite:///{workdir / 'state.db'}"},
            "connectors": {
                "history": {
                    "kind": "jsonl", "path": str(history), "mapping": mapping,
                    "comments_field": "comments", "conversation": {"sync": True, "backfill": True},
                    "schedule": {"interval": f"{int(seconds / COMMENT_SHARE) + 1}s"},
                },
                "tasks": {"kind": "jsonl", "path": str(tasks), "mapping": mapping,
                          "batch_size": 1},
            },
        }  # fmt: skip
        config = build_config(raw, source="bench")
        stop = threading.Event()
        store = StateStore.open(config.state.url)
        client = FragmentClient(config.fragment, stop=stop)
        options = RunOptions(stop=stop)

        def run(name: str) -> Any:
            connector = config.connectors[name]
            return ConnectorRun(connector, store, client, 100, options).execute()

        run("tasks")  # its first backfill, before the window
        before = emulator.traffic.stats()["counts"]
        began = time.monotonic()
        window_start = time.time()
        pushed = 0
        backfill = threading.Thread(target=run, args=("history",))
        backfill.start()
        passes = 0
        ticked = began
        while time.monotonic() - began < seconds:
            now = stamp(dt.datetime.now(dt.UTC))
            rows = tickets(changes * 3, 100_000, "2020-01-02T00:00:00Z")
            for index in range(changes):
                row = rows[(passes * changes + index) % len(rows)]
                row["updated_at"], row["subject"] = now, f"changed {passes}"
            write(tasks, rows)
            pushed += run("tasks").pushed
            passes += 1
            ticked += TICK
            time.sleep(max(0.0, ticked - time.monotonic()))
        window_s = time.time() - window_start
        after = emulator.traffic.stats()["counts"]
        stop.set()
        backfill.join()
        budget = client.session.budget
        client.close()
        store.close()
    counts = {key: after[key] - before.get(key, 0) for key in after}
    minutes = window_s / 60
    requests = sum(counts.values())
    posted = counts.get("POST /api/v1/tasks/{uid}/comments 200", 0)
    comment_requests = sum(n for key, n in counts.items() if "/comments " in key)
    too_many = sum(n for key, n in counts.items() if key.endswith(" 429"))
    return {
        "rate": rate,
        "window_s": round(window_s, 1),
        "tasks_per_min": round(pushed / minutes, 1),
        "task_changes_per_min": round(passes * changes / minutes, 1),
        "comments_per_min": round(posted / minutes, 1),
        "requests_per_min": round(requests / minutes, 1),
        "comment_share": round(comment_requests / max(1, requests), 3),
        "too_many_requests": too_many,
        "task_requests_delayed_by_comments": budget.delayed_by_spare,
        "check_ok": budget.delayed_by_spare == 0 and too_many == 0 and posted > 0,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.comments", description=__doc__)
    parser.add_argument("--rate", type=int, default=60, help="Fragment's limit a minute (60)")
    parser.add_argument("--seconds", type=float, default=120.0, help="the window measured")
    parser.add_argument(
        "--quick", action="store_true", help="600 a minute for 15 s: the same shape, quicker"
    )
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    args = parser.parse_args(argv)
    from sync.shell.logs import configure

    configure("warning")  # the passes' info lines would drown the figure
    rate, seconds = (600, 15.0) if args.quick else (args.rate, args.seconds)
    with tempfile.TemporaryDirectory(prefix="fragment-bench-comments-") as temporary:
        figure = measure(rate, seconds, Path(temporary))
    if args.json:
        print(json.dumps(figure, indent=2))
    else:
        print(
            f"comment backfill under {rate} requests a minute, {figure['window_s']:.0f} s: "
            f"{figure['tasks_per_min']:.1f} tasks/min (of {figure['task_changes_per_min']:.1f} "
            f"changed), {figure['comments_per_min']:.1f} comments/min, "
            f"{figure['requests_per_min']:.1f} requests/min ({figure['comment_share']:.0%} "
            f"comments), {figure['too_many_requests']} answered 429, "
            f"{figure['task_requests_delayed_by_comments']} task requests delayed by comments "
            f"({'OK' if figure['check_ok'] else 'CHECK FAILED'})"
        )
    return 0 if figure["check_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
