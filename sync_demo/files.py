"""Writing demo tickets as JSON Lines or CSV, the two file formats the file connectors read.

Both writers are deterministic (compact JSON with sorted keys, `\\n` line ends), so the same
tickets always make the same bytes.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

CSV_COLUMNS: Final = (
    "id",
    "subject",
    "requester_email",
    "requester_country",
    "priority",
    "status",
    "assignee",
    "group",
    "created_at",
    "updated_at",
    "due_at",
    "deleted",
)

_JSON: Final = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def write_jsonl(path: Path, tickets: Iterable[dict[str, Any]]) -> int:
    """Write `tickets` to `path` as JSON Lines (compact, sorted keys); returns how many."""
    written = 0
    with path.open("w", encoding="utf-8", newline="\n") as out:
        for ticket in tickets:
            out.write(_JSON.encode(ticket) + "\n")
            written += 1
    return written


def write_csv(path: Path, tickets: Iterable[dict[str, Any]]) -> int:
    """Write `tickets` to `path` as CSV with `CSV_COLUMNS`; returns how many.

    The requester is flattened to `requester_email` and `requester_country`;
    null is an empty field and `deleted` is "true" or "false".
    """
    written = 0
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for ticket in tickets:
            requester = ticket["requester"]
            writer.writerow(
                (
                    ticket["id"],
                    ticket["subject"],
                    requester["email"],
                    requester["country"],
                    ticket["priority"],
                    ticket["status"],
                    ticket["assignee"] or "",
                    ticket["group"],
                    ticket["created_at"],
                    ticket["updated_at"],
                    ticket["due_at"] or "",
                    "true" if ticket["deleted"] else "false",
                )
            )
            written += 1
    return written
