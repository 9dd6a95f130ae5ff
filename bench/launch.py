"""Run one command and write its own resource usage as JSON, for `bench.process.measure`.

Why a launcher: Linux carries a process's peak RSS across `exec`, so a
child started straight from the harness would report the harness's own peak
(hundreds of MiB after generating 100,000 tickets) whenever that is larger
than its own. A child of this small launcher starts from a few MiB instead.
Run as a script, importing only the standard library:

    python bench/launch.py USAGE.json COMMAND [ARG ...]

Writes `{"wall_s", "cpu_s", "peak_rss_kib", "exit_code"}` to USAGE.json and
exits with the command's exit code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    usage_path, command = Path(argv[0]), argv[1:]
    started = time.perf_counter()
    child = subprocess.Popen(command)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    # Reaped by wait4: tell Popen, so it never waits on the pid again.
    child.returncode = os.waitstatus_to_exitcode(status)
    usage_path.write_text(
        json.dumps(
            {
                "wall_s": wall,
                "cpu_s": usage.ru_utime + usage.ru_stime,
                "peak_rss_kib": usage.ru_maxrss,  # KiB on Linux
                "exit_code": child.returncode,
            }
        ),
        encoding="utf-8",
    )
    return child.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
