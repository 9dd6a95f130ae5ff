"""The floor (figure 2): read every ticket from the source and JSON-encode it once, nothing else.

No sync can cost less per ticket than this. Run as a script, so that it
imports nothing but the standard library and is measured like the sync
process (interpreter start-up included in both):

    python bench/floor.py jsonl TICKETS.jsonl
    python bench/floor.py sql TICKETS.sqlite

Prints the number of tickets it read.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import sys
from pathlib import Path


def read_jsonl(path: Path) -> int:
    """`json.loads` each line of `path`, then `json.dumps` the object once; returns the count."""
    count = 0
    with path.open("rb") as lines:
        for line in lines:
            json.dumps(json.loads(line))
            count += 1
    return count


def read_sql(path: Path) -> int:
    """Select every row of `tickets` in `path`, `json.dumps` each as a dict; returns the count."""
    count = 0
    with contextlib.closing(sqlite3.connect(path)) as db:
        rows = db.execute("SELECT * FROM tickets")
        names = [column[0] for column in rows.description]
        for row in rows:
            json.dumps(dict(zip(names, row, strict=True)))
            count += 1
    return count


def main(argv: list[str]) -> int:
    kind, path = argv
    read = read_jsonl if kind == "jsonl" else read_sql
    print(read(Path(path)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
