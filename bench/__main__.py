"""`python -m bench`: run every figure and print the table of targets (or `--json`).

Owns the workdir's lifetime and the exit code: 0 when every count check is
OK (targets may MISS: this is a benchmark), 1 when a count is wrong, 2 when a
step failed, 130 when interrupted. Progress goes to stderr, the report to stdout.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench.parameters import Parameters, parse_parameters
from bench.process import BenchError
from bench.report import as_json, markdown, table
from bench.suite import Results, run_suite, say


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
    if parameters.record is not None:
        _record(parameters.record, results, argv)
    return 0 if document["all_checks_pass"] else 1


def _record(path: Path, results: Results, argv: Sequence[str] | None) -> None:
    """Write the report as Markdown to `path`, naming the command and the commit measured."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    command = " ".join(["python -m bench", *arguments])
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(markdown(results, command, commit or None, dt.datetime.now(dt.UTC)))
    say(f"report recorded in {path}")


def _leave(parameters: Parameters, workdir: Path) -> None:
    """Remove a temporary workdir unless asked to keep it; a chosen one always stays."""
    if parameters.workdir is None and not parameters.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        say(f"workdir kept: {workdir}")


if __name__ == "__main__":
    sys.exit(main())
