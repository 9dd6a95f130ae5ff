"""What `python -m sync status` shows: per connector its watermark, last run, failed items."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sync.config import Config
from sync.state import StateStore
from sync.watermark import encode


def collect(config: Config, store: StateStore) -> list[dict[str, Any]]:
    """One row per configured connector, JSON-ready."""
    rows = []
    now = dt.datetime.now(dt.UTC)
    for name, connector in config.connectors.items():
        namespace = connector.uid_namespace
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
                "tasks": store.task_count(namespace),
                "failed_items": store.failed_count(namespace),
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
    header = ("CONNECTOR", "KIND", "WATERMARK", "TASKS", "FAILED", "LAST RUN")
    lines = [header]
    for row in rows:
        last = row["last_run"]
        summary = "never"
        if last is not None:
            summary = (
                f"{last['outcome']} at {last['started_at'][:19]}Z: pulled {last['pulled']}, "
                f"pushed {last['pushed']}, failed {last['failed']}"
            )
        lines.append(
            (
                row["name"],
                row["kind"],
                row["watermark"] or "-",
                str(row["tasks"]),
                str(row["failed_items"]),
                summary,
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False))
        + "  "
        + line[-1]
        for line in lines
    )
