"""Running one child process to completion and measuring it: wall time, CPU, peak RSS.

Owns the measurement every figure shares, so that the sync, the floor and the
naive client are measured the same way: through `bench/launch.py`, which
`os.wait4`s the command and reports that process's own resource usage (see
there why a launcher is needed for an honest peak RSS). Knows nothing of what
the command does.
"""

from __future__ import annotations

import compileall
import contextlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

PYTHON = sys.executable
"""The interpreter every child runs on: the one running the bench (its venv)."""
_LAUNCHER = Path(__file__).resolve().with_name("launch.py")


class BenchError(Exception):
    """A step of the bench failed; the message names the step and where its output is."""


_PROJECT = Path(__file__).resolve().parent.parent
_PACKAGES = ("sync", "connectors", "bench")


def compile_project() -> None:
    """Write the project's bytecode beside its sources, as installing the package would.

    Where `PYTHONDONTWRITEBYTECODE` is set (as on this machine) every child
    would otherwise compile the project from source at each start: 25-30 ms
    that a deployed install (the Docker image's wheel) never pays. Reading
    bytecode is still allowed there; only writing it is not, and
    `compileall` writes regardless. `__pycache__` is ignored by git.
    """
    compile_tree(_PROJECT)


def compile_tree(root: Path) -> None:
    """`compile_project` for the checkout at `root` (one under comparison, say)."""
    for package in _PACKAGES:
        if (root / package).is_dir() and not compileall.compile_dir(root / package, quiet=1):
            raise BenchError(f"compiling {root / package} failed")


@dataclass(frozen=True)
class Measured:
    """What one child process cost and printed."""

    wall_s: float
    cpu_s: float
    """User plus system CPU seconds of the child itself."""
    peak_rss_kib: int
    stdout: str

    @property
    def peak_rss_mib(self) -> float:
        return self.peak_rss_kib / 1024


def measure(argv: Sequence[str], cwd: Path, logs: Path) -> Measured:
    """Run `argv` in `cwd` until it exits; its wall time, CPU and peak RSS.

    Its stdout and stderr go to `logs` with `.out` and `.err` appended. Raises
    `BenchError` (pointing at the stderr file) when it exits non-zero. If the
    harness is interrupted meanwhile, the command and its launcher are killed.
    """
    out_path, err_path = Path(f"{logs}.out"), Path(f"{logs}.err")
    usage_path = Path(f"{logs}.usage.json")
    usage_path.unlink(missing_ok=True)
    with out_path.open("wb") as out, err_path.open("wb") as err:
        # A session of its own: one killpg stops the launcher and the command together.
        launcher = subprocess.Popen(
            [PYTHON, str(_LAUNCHER), str(usage_path), *argv],
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
        try:
            launcher.wait()
        except BaseException:  # Ctrl-C or SIGTERM while waiting
            with contextlib.suppress(ProcessLookupError):
                os.killpg(launcher.pid, signal.SIGKILL)
            launcher.wait()
            raise
    if launcher.returncode != 0:
        raise BenchError(
            f"{' '.join(argv[1:4])} ... exited with {launcher.returncode}; see {err_path}:\n"
            + _tail(err_path)
        )
    usage = json.loads(usage_path.read_text(encoding="utf-8"))
    return Measured(
        wall_s=usage["wall_s"],
        cpu_s=usage["cpu_s"],
        peak_rss_kib=usage["peak_rss_kib"],
        stdout=out_path.read_text(encoding="utf-8"),
    )


def cpu_seconds(pid: int) -> float:
    """CPU seconds process `pid` (all its threads) has used so far; NaN when unreadable.

    Linux `/proc`: what `wait4` would report at its exit, read while it runs.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return math.nan
    # Fields after the command name: state is field 3, utime 14, stime 15.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _tail(path: Path, lines: int = 20) -> str:
    return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
