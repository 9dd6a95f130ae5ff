"""`python -m fragment_emulator`: run the Fragment emulator from the command line.

Parses flags into an emulator configuration and calls `serve`; no behaviour
of its own. Example: `python -m fragment_emulator --port 8400 --token T --rate-limit 60/60`.
"""

from __future__ import annotations

import argparse
import errno
import sys
from collections.abc import Sequence
from pathlib import Path

from fragment_emulator.faults import Faults
from fragment_emulator.server import DEFAULT_TOKEN, serve


def _users_from(path: Path) -> list[str]:
    """Emails in `path`, one a line; blank lines and `#` comments skipped."""
    lines = (
        line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines()
    )
    return [line for line in lines if line]


def build_parser(prog: str = "python -m fragment_emulator") -> argparse.ArgumentParser:
    """The command line of the emulator, named `prog` in its usage and errors."""
    parser = argparse.ArgumentParser(prog=prog, description="Serve a local Fragment API emulator.")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=8400, help="port to bind (default 8400; 0 = any free port)"
    )
    parser.add_argument(
        "--db", default=":memory:", help="SQLite file to keep tasks in (default: in memory)"
    )
    parser.add_argument(
        "--token",
        action="append",
        dest="tokens",
        metavar="TOKEN",
        help=f"accepted bearer token, also for /_emulator/*; repeatable (default {DEFAULT_TOKEN})",
    )
    parser.add_argument(
        "--users-file", type=Path, help="only these emails (one a line) may be assignees"
    )
    parser.add_argument(
        "--max-batch-items", type=int, default=1000, help="largest batch accepted (default 1000)"
    )
    parser.add_argument(
        "--rate-limit", metavar="COUNT/SECONDS", help="per-token sliding window, e.g. 60/60"
    )
    parser.add_argument(
        "--error-rate", type=float, default=0.0, help="share of requests answered 5xx"
    )
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    parser.add_argument(
        "--timeout-rate", type=float, default=0.0, help="share of requests held --hang-seconds"
    )
    parser.add_argument(
        "--hang-seconds",
        type=float,
        default=30.0,
        help="how long a timeout fault holds (default 30)",
    )
    parser.add_argument(
        "--drop-rate", type=float, default=0.0, help="share of connections closed unanswered"
    )
    parser.add_argument(
        "--lost-response-rate",
        type=float,
        default=0.0,
        help="share of requests applied but left unanswered",
    )
    parser.add_argument("--seed", type=int, help="seed for the fault dice (reproducible runs)")
    parser.add_argument("--verbose", action="store_true", help="log one line per request to stderr")
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "python -m fragment_emulator") -> int:
    """Run the emulator until interrupted; returns the exit code (2: bad flags, port taken)."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    try:
        faults = Faults(
            rate_limit=args.rate_limit,
            error_rate=args.error_rate,
            latency=args.latency,
            timeout_rate=args.timeout_rate,
            hang_seconds=args.hang_seconds,
            drop_rate=args.drop_rate,
            lost_response_rate=args.lost_response_rate,
            seed=args.seed,
        )
        users = _users_from(args.users_file) if args.users_file else None
    except (ValueError, OSError) as exc:
        parser.error(str(exc))
    try:
        serve(
            host=args.host,
            port=args.port,
            db=args.db,
            tokens=args.tokens or [DEFAULT_TOKEN],
            users=users,
            faults=faults,
            max_batch_items=args.max_batch_items if args.max_batch_items > 0 else None,
            verbose=args.verbose,
        )
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        print(
            f"{parser.prog}: {args.host}:{args.port} is in use, by another emulator perhaps: "
            "stop it, or pass --port",
            file=sys.stderr,
        )
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
