"""The demo's data: realistic support tickets from a fixed seed, byte-identical on every machine.

Used by the built-in demo (`sync.shell.demo`), the tests and the bench; `python -m sync_demo`
writes them to a file. Stand-alone: it imports nothing of the product (`sync`, `connectors`).

- `generator`: drawing the tickets (`generate_tickets`), with same-second `updated_at` ties;
- `vocabulary`: the tables they are drawn from;
- `files`: writing them as JSON Lines or CSV;
- `mapping`: `DEMO_MAPPING`, how they become Fragment tasks.
"""

from sync_demo.files import CSV_COLUMNS, write_csv, write_jsonl
from sync_demo.generator import BULK_SIZE, DEMO_COUNT, DEMO_SEED, REFERENCE, generate_tickets
from sync_demo.mapping import DEMO_MAPPING

__all__ = [
    "BULK_SIZE",
    "CSV_COLUMNS",
    "DEMO_COUNT",
    "DEMO_MAPPING",
    "DEMO_SEED",
    "REFERENCE",
    "generate_tickets",
    "write_csv",
    "write_jsonl",
]
