"""`python -m sync_demo`: write the demo's tickets to a file.

    python -m sync_demo --out tickets.jsonl [--count N] [--seed S] [--format jsonl|csv]

The generated file is not checked in: the same arguments write the same bytes on every machine.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from sync_demo.files import write_csv, write_jsonl
from sync_demo.generator import DEMO_COUNT, DEMO_SEED, generate_tickets


def main(argv: Sequence[str] | None = None) -> int:
    """Write demo tickets to the file `--out` names; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m sync_demo", description="Write realistic demo support tickets."
    )
    parser.add_argument("--out", type=Path, required=True, help="file to write")
    parser.add_argument("--count", type=int, default=DEMO_COUNT, help="number of tickets")
    parser.add_argument("--seed", type=int, default=DEMO_SEED, help="random seed")
    parser.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    args = parser.parse_args(argv)
    if args.count < 0:
        parser.error("--count must be at least 0")
    write = write_csv if args.format == "csv" else write_jsonl
    written = write(args.out, generate_tickets(args.count, args.seed))
    print(f"wrote {written} tickets to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
