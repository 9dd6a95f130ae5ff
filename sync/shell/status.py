"""What `python -m sync status` shows: per connector its watermark, last run, last census,
failed items, and with comment sync on, its comments posted, pending and failed.

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
from sync.state import CensusRecord, StateStore
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
        census = store.census_record(namespace)
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
                "census_every": None
                if connector.settings.census is None
                else str(connector.settings.census),
                "last_census": None if census is None else census_row(census),
            }
        )
    return rows


def census_row(census: CensusRecord) -> dict[str, Any]:
    """A connector's last census, JSON-ready: when it began, how it ended, what it found gone
    and archived (None: a census recorded before the state kept counts), whether forced."""
    return {
        "began_at": census.began_at.isoformat(),
        "outcome": census.outcome,
        "gone": census.gone,
        "archived": census.archived,
        "forced": census.forced,
    }


def census_found(census: dict[str, Any]) -> str:
    """What a census (a `census_row`) found and did: `archived 2 of 2 gone`, `3 gone,
    archived nothing` (refused); "" when its counts were not recorded."""
    if census["gone"] is None:
        return ""
    if census["outcome"] == "refused":
        return f"{census['gone']} gone, archived nothing"
    return f"archived {census['archived']} of {census['gone']} gone"


def census_text(census: dict[str, Any] | None, scheduled: bool) -> str:
    """`ok at 2026-12-07T09:00:00Z: archived 2 of 2 gone (forced)`; `never`; `-` when no
    census is scheduled nor was ever taken."""
    if census is None:
        return "never" if scheduled else "-"
    found = census_found(census)
    text = f"{census['outcome']} at {census['began_at'][:19]}Z" + (f": {found}" if found else "")
    return text + (" (forced)" if census["forced"] else "")


def render_table(rows: list[dict[str, Any]]) -> str:
    """The rows as a plain text table for a terminal."""
    with_comments = any(row.get("comments") for row in rows)
    header: tuple[str, ...] = ("CONNECTOR", "KIND", "WATERMARK", "TASKS", "FAILED", "LAST CENSUS")
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
            census_text(row["last_census"], row["census_every"] is not None),
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
