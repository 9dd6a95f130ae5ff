"""`python -m bench`: run every figure and print the table of targets (or `--json`).

Owns the workdir's lifetime and the exit code: 0 when every count check is
OK (targets may MISS: this is a benchmark), 1 when a count is wrong, 2 when a
step failed, 130 when interrupted. Progress goes to stderr, the report to stdout.
"""

from __future__ import annotations

import json
import shutil
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench.parameters import Parameters, parse_parameters
from bench.process import BenchError
from bench.report import as_json, table
from bench.suite import run_suite, say


def main(argv: Sequence[str] | None = None) -> int:
    """Run the bench; returns the exit code."""
    parameters = parse_parameters(argv)
    # SIGTERM unwinds like Ctrl-C, so the emulator and any sync process are stopped too.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    workdir = parameters.workdir or Path(tempfile.mkdtemp(prefix="fragment-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        results = run_suite(parameters, workdir.resolve())
    except BenchError as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench interrupted", file=sys.stderr)
        return 130
    finally:
        _leave(parameters, workdir)
    document = as_json(results)
    print(json.dumps(document, indent=2) if parameters.json_output else table(results))
    return 0 if document["all_checks_pass"] else 1


def _leave(parameters: Parameters, workdir: Path) -> None:
    """Remove a temporary workdir unless asked to keep it; a chosen one always stays."""
    if parameters.workdir is None and not parameters.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        say(f"workdir kept: {workdir}")


if __name__ == "__main__":
    sys.exit(main())
