"""What `python -m sync status` shows: per connector its watermark, last run, last census,
failed items, and with comment sync on, its comments posted, pending and failed.

The daemon's status page and `/metrics` show the same rows. They are read
from what the passes keep up to date (`sync.state.history`: each
connector's summary row, with its counts of tasks and failed items) and a
few whole-table reads: a constant number of queries, whatever the number of
connectors, and none of them counts a connector's tasks.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sync.config import Config
from sync.state import CensusRecord, StateStore
from sync.state.comments import CommentLedger
from sync.state.write_back import WriteBackCounts, WriteBackLedger
from sync.watermark import encode


def collect(config: Config, store: StateStore) -> list[dict[str, Any]]:
    """One row per configured connector, JSON-ready, in five queries at most."""
    stats = store.connector_stats()
    watermarks = store.watermarks_each()
    censuses = store.census_records_each()
    comment_counts = (
        CommentLedger(store).counts_each()
        if any(c.settings.conversation.sync for c in config.connectors.values())
        else {}
    )
    write_back_counts = (
        WriteBackLedger(store).counts_each()
        if any(c.settings.write_back.enabled for c in config.connectors.values())
        else {}
    )
    rows = []
    now = dt.datetime.now(dt.UTC)
    for name, connector in config.connectors.items():
        namespace = connector.uid_namespace
        last = stats.get(namespace)
        comments = None
        if connector.settings.conversation.sync:
            counted = comment_counts.get(namespace)
            comments = {
                "pending": 0 if counted is None else counted.pending,
                "posted": 0 if counted is None else counted.posted,
                "failed": 0 if counted is None else counted.failed,
            }
        watermark = watermarks.get(namespace)
        census = censuses.get(namespace)
        lag = (now - watermark).total_seconds() if isinstance(watermark, dt.datetime) else None
        rows.append(
            {
                "name": name,
                "kind": connector.kind,
                "enabled": connector.settings.enabled,
                "uid_namespace": namespace,
                "watermark": None if watermark is None else encode(watermark),
                "lag_s": None if lag is None else round(lag),
                "tasks": 0 if last is None else last.tasks,
                "failed_items": 0 if last is None else last.failed_items,
                "comments": comments,
                "write_back": None
                if not connector.settings.write_back.enabled
                else vars(write_back_counts.get(namespace, WriteBackCounts())),
                "last_run": None
                if last is None
                else {
                    "id": last.run_id,
                    "started_at": last.started_at.isoformat(),
                    "ended_at": None if last.ended_at is None else last.ended_at.isoformat(),
                    "outcome": last.outcome,
                    "pulled": last.pulled,
                    "pushed": last.pushed,
                    "unchanged": last.unchanged,
                    "failed": last.failed,
                    "error": last.error,
                },
                "last_ok_at": None
                if last is None or last.last_ok_at is None
                else last.last_ok_at.isoformat(),
                "passes": 0 if last is None else last.passes,
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
    with_write_back = any(row.get("write_back") for row in rows)
    header: tuple[str, ...] = ("CONNECTOR", "KIND", "WATERMARK", "TASKS", "FAILED", "LAST CENSUS")
    header += ("COMMENTS",) if with_comments else ()
    header += ("WRITE-BACK",) if with_write_back else ()
    header += ("LAST RUN",)
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
        if with_write_back:
            written = row.get("write_back")
            line += (
                "-"
                if written is None
                else f"{written['refused']} refused, {written['conflicts']} conflicts",
            )
        lines.append((*line, summary))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False))
        + "  "
        + line[-1]
        for line in lines
    )
