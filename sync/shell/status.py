"""What `python -m sync status` shows: per connector its watermark, last run, failed items,
and with comment sync on, its comments posted, pending and failed.

The daemon's status page and `/metrics` show the same rows, read through a
`CountCache` so that many viewers share one count of the tasks.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from typing import Any

from sync.config import Config
from sync.state import StateStore
from sync.state.comments import CommentLedger
from sync.watermark import encode

COUNTS_TTL_S = 5.0
"""How long the daemon's page and metrics reuse a count of tasks and failed items."""

Counts = Callable[[str], tuple[int, int]]
"""A connector's (tasks, failed items), by its uid namespace."""


class CountCache:
    """The tasks and failed items of each connector, counted at most once per `ttl_s`.

    Counting a connector's tasks reads all its rows: forty clients viewing
    the page, one count each per view of a million tasks, slowed the passes
    sharing the database from 0.05 s to 3-8 s. Through this they share one
    count every few seconds. Viewers arriving while a count
    runs wait for it rather than start their own. Callable as `Counts`.
    """

    def __init__(self, store: StateStore, ttl_s: float = COUNTS_TTL_S) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self._counted: dict[str, tuple[float, tuple[int, int]]] = {}
        self._lock = threading.Lock()

    def __call__(self, namespace: str) -> tuple[int, int]:
        with self._lock:
            now = time.monotonic()
            hit = self._counted.get(namespace)
            if hit is not None and now - hit[0] < self.ttl_s:
                return hit[1]
            counts = counted(self.store)(namespace)
            self._counted[namespace] = (time.monotonic(), counts)
            return counts


def counted(store: StateStore) -> Counts:
    """`Counts` that count afresh on every call (one-off readers: `status`)."""
    return lambda namespace: (store.task_count(namespace), store.failed_count(namespace))


def collect(
    config: Config, store: StateStore, counts: Counts | None = None
) -> list[dict[str, Any]]:
    """One row per configured connector, JSON-ready; tasks and failed items from `counts`
    (counted afresh by default)."""
    count = counts or counted(store)
    rows = []
    now = dt.datetime.now(dt.UTC)
    for name, connector in config.connectors.items():
        namespace = connector.uid_namespace
        tasks, failed = count(namespace)
        comments = None
        if connector.settings.conversation.sync:
            counted_comments = CommentLedger(store).counts(namespace)
            comments = {
                "pending": counted_comments.pending,
                "posted": counted_comments.posted,
                "failed": counted_comments.failed,
            }
        watermark = store.watermark(namespace)
        runs = store.recent_runs(namespace, limit=1)
        last = runs[0] if runs else None
        lag = (now - watermark).total_seconds() if isinstance(watermark, dt.datetime) else None
        rows.append(
            {
                "name": name,
                "kind": connector.kind,
                "enabled": connector.settings.enabled,
                "uid_namespace": namespace,
                "watermark": None if watermark is None else encode(watermark),
                "lag_s": None if lag is None else round(lag),
                "tasks": tasks,
                "failed_items": failed,
                "comments": comments,
                "last_run": None
                if last is None
                else {
                    "id": last.id,
                    "started_at": last.started_at.isoformat(),
                    "outcome": last.outcome,
                    "pulled": last.pulled,
                    "pushed": last.pushed,
                    "unchanged": last.unchanged,
                    "failed": last.failed,
                    "error": last.error,
                },
            }
        )
    return rows


def render_table(rows: list[dict[str, Any]]) -> str:
    """The rows as a plain text table for a terminal."""
    with_comments = any(row.get("comments") for row in rows)
    header: tuple[str, ...] = ("CONNECTOR", "KIND", "WATERMARK", "TASKS", "FAILED")
    header += ("COMMENTS", "LAST RUN") if with_comments else ("LAST RUN",)
    lines = [header]
    for row in rows:
        last = row["last_run"]
        summary = "never"
        if last is not None:
            summary = (
                f"{last['outcome']} at {last['started_at'][:19]}Z: pulled {last['pulled']}, "
                f"pushed {last['pushed']}, failed {last['failed']}"
            )
        line: tuple[str, ...] = (
            row["name"],
            row["kind"],
            row["watermark"] or "-",
            str(row["tasks"]),
            str(row["failed_items"]),
        )
        if with_comments:
            comments = row.get("comments")
            line += (
                "-"
                if comments is None
                else f"{comments['posted']} posted, {comments['pending']} pending, "
                f"{comments['failed']} failed",
            )
        lines.append((*line, summary))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False))
        + "  "
        + line[-1]
        for line in lines
    )
