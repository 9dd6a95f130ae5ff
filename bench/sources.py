"""The synthetic ticket sources: a JSON Lines file and a SQLite table, from a fixed seed.

Owns generating the tickets (`sync_demo`), caching them by (count, seed),
the SQLite table and its mapping, and the "1% changed" edit of either
source. Each `Source` says how a `[connectors.NAME]` section reads it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import random
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from bench.parameters import SourceKind
from sync_demo import DEMO_MAPPING, generate_tickets, write_jsonl

SQL_COLUMNS: Final = (
    "id",
    "subject",
    "description",
    "requester_name",
    "requester_email",
    "requester_country",
    "priority",
    "status",
    "assignee",
    "support_group",
    "tags",
    "channel",
    "created_at",
    "updated_at",
    "due_at",
    "deleted",
)
SQL_MAPPING: Final[dict[str, Any]] = {
    **DEMO_MAPPING,
    "fields": {
        "country": "requester_country",
        "requesterEmail": "requester_email",
        "priority": "priority",
        "Support Group": "support_group",
        "channel": "channel",
        "tags": "tags",
    },
}
"""`DEMO_MAPPING` over the flattened table: the same tasks, except `tags` arrives as JSON text."""
_ISO_Z: Final = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True)
class Corpus:
    """The generated tickets of one (count, seed), as a JSON Lines file in the cache."""

    n: int
    seed: int
    jsonl: Path
    live: int
    """Tickets not deleted: what a backfill pushes (a deleted ticket was never synced)."""

    @property
    def deleted(self) -> int:
        return self.n - self.live


@dataclass(frozen=True)
class Source:
    """A ticket source as a connector reads it: its options and mapping for the config."""

    kind: SourceKind
    path: Path
    options: dict[str, Any]
    mapping: dict[str, Any]


def ensure_corpus(cache: Path, n: int, seed: int) -> Corpus:
    """The corpus of `n` tickets from `seed`, generated into `cache` unless already there."""
    jsonl = cache / f"tickets-{n}-{seed}.jsonl"
    # Written last, so its presence says the file beside it is complete.
    counts = jsonl.with_suffix(".counts.json")
    if not counts.exists():
        cache.mkdir(parents=True, exist_ok=True)
        deleted = 0

        def counted() -> Iterator[dict[str, Any]]:
            nonlocal deleted
            for ticket in generate_tickets(n, seed):
                deleted += ticket["deleted"]
                yield ticket

        write_jsonl(jsonl, counted())
        counts.write_text(json.dumps({"n": n, "live": n - deleted}), encoding="utf-8")
    return Corpus(n, seed, jsonl, json.loads(counts.read_text(encoding="utf-8"))["live"])


def source_copy(kind: SourceKind, corpus: Corpus, directory: Path) -> Source:
    """A private copy of `corpus` as a `kind` source in `directory`, free to edit."""
    cached = corpus.jsonl if kind == "jsonl" else _ensure_sqlite(corpus)
    directory.mkdir(parents=True, exist_ok=True)
    copy = directory / cached.name
    shutil.copyfile(cached, copy)
    return as_source(kind, copy)


def as_source(kind: SourceKind, path: Path) -> Source:
    """The source reading the tickets file or SQLite database at `path`."""
    if kind == "jsonl":
        return Source(kind, path, {"path": str(path), "deleted_field": "deleted"}, DEMO_MAPPING)
    options = {
        "url": f"sqlite:///{path}",
        "table": "tickets",
        "id_column": "id",
        "cursor_column": "updated_at",
        "deleted_column": "deleted",
    }
    return Source(kind, path, options, SQL_MAPPING)


def _ensure_sqlite(corpus: Corpus) -> Path:
    """The corpus as a SQLite table `tickets`, indexed on (updated_at, id), built once."""
    path = corpus.jsonl.with_suffix(".sqlite")
    if path.exists():
        return path
    partial = path.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    with contextlib.closing(sqlite3.connect(partial)) as db, db:
        columns = ", ".join(SQL_COLUMNS)
        db.execute(
            "CREATE TABLE tickets (id INTEGER PRIMARY KEY, "
            + ", ".join(f"{name} TEXT" for name in SQL_COLUMNS[1:-1])
            + ", deleted INTEGER NOT NULL)"
        )
        db.execute("CREATE INDEX tickets_cursor ON tickets (updated_at, id)")
        placeholders = ", ".join("?" for _ in SQL_COLUMNS)
        db.executemany(
            f"INSERT INTO tickets ({columns}) VALUES ({placeholders})",  # noqa: S608 (our names)
            (_row(ticket) for ticket in _read_jsonl(corpus.jsonl)),
        )
    os.replace(partial, path)
    return path


def _row(ticket: dict[str, Any]) -> tuple[Any, ...]:
    """A ticket flattened into `SQL_COLUMNS` order."""
    requester = ticket["requester"]
    return (
        ticket["id"],
        ticket["subject"],
        ticket["description"],
        requester["name"],
        requester["email"],
        requester["country"],
        ticket["priority"],
        ticket["status"],
        ticket["assignee"],
        ticket["group"],
        json.dumps(ticket["tags"]),
        ticket["channel"],
        ticket["created_at"],
        ticket["updated_at"],
        ticket["due_at"],
        int(ticket["deleted"]),
    )


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            yield json.loads(line)


# --- 1% changed ---------------------------------------------------------------


@dataclass(frozen=True)
class Edit:
    """A new subject and a later `updated_at` for one ticket."""

    subject: str
    updated_at: str


def one_percent_edits(corpus: Corpus) -> dict[int, Edit]:
    """Exactly n // 100 live tickets, chosen by the corpus seed, each changed and moved last.

    Each gets a distinct `updated_at` later than every ticket's, so a watermark
    sync reads them all again, and its subject gains " (edited)".
    """
    tickets = list(_read_jsonl(corpus.jsonl))
    live = sorted(ticket["id"] for ticket in tickets if not ticket["deleted"])
    chosen = sorted(random.Random(corpus.seed).sample(live, corpus.n // 100))
    newest = max(ticket["updated_at"] for ticket in tickets)  # ISO "...Z" sorts as time
    start = dt.datetime.strptime(newest, _ISO_Z) + dt.timedelta(minutes=1)
    subjects = {ticket["id"]: ticket["subject"] for ticket in tickets}
    return {
        ticket_id: Edit(
            f"{subjects[ticket_id]} (edited)",
            (start + dt.timedelta(seconds=index)).strftime(_ISO_Z),
        )
        for index, ticket_id in enumerate(chosen)
    }


def apply_edits(source: Source, corpus: Corpus, edits: dict[int, Edit]) -> None:
    """Rewrite `source` (a copy of `corpus`) with `edits` applied."""
    if source.kind == "sql":
        with contextlib.closing(sqlite3.connect(source.path)) as db, db:
            db.executemany(
                "UPDATE tickets SET subject = ?, updated_at = ? WHERE id = ?",
                [(edit.subject, edit.updated_at, ticket_id) for ticket_id, edit in edits.items()],
            )
        return
    kept, changed = [], []
    for ticket in _read_jsonl(corpus.jsonl):
        edit = edits.get(ticket["id"])
        if edit is None:
            kept.append(ticket)
        else:
            changed.append({**ticket, "subject": edit.subject, "updated_at": edit.updated_at})
    # Still ascending by updated_at, as an export of the changed source would be.
    changed.sort(key=lambda ticket: ticket["updated_at"])
    write_jsonl(source.path, [*kept, *changed])
