"""The Fragment emulator as a separate process on loopback, and its traffic counts.

Owns starting `python -m fragment_emulator` on a free port, waiting until it
answers, reading its admin routes (`/_emulator/stats`, `/_emulator/reset`)
and stopping it whatever happens. The request counts the bench reports come
from here, the server's side, not from the client's own summary.
"""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

import httpx

from bench.process import PYTHON, BenchError, cpu_seconds, free_port

TOKEN: Final = "bench-token-not-a-secret"  # noqa: S105 (a loopback emulator's only token)
API_PREFIX: Final = "/api/v1"
START_TIMEOUT_S: Final = 30.0


@dataclass(frozen=True)
class Traffic:
    """Requests the emulator answered, by "METHOD ROUTE STATUS", plus the recent ones."""

    counts: Counter[str]
    recent: list[dict[str, Any]] = field(default_factory=list)
    """The last requests (10,000 at most), oldest first: `t`, `route`, `status`, `items`, ..."""

    @property
    def api_requests(self) -> int:
        """Requests to Fragment's API (`/api/v1/...`), whatever their answer."""
        return sum(n for key, n in self.counts.items() if _route(key).startswith(API_PREFIX))

    def with_status(self, status: int) -> int:
        """API requests answered `status`."""
        return sum(
            n
            for key, n in self.counts.items()
            if _route(key).startswith(API_PREFIX) and key.endswith(f" {status}")
        )

    def since(self, earlier: Traffic) -> Traffic:
        """The requests answered after `earlier` was taken (counts only)."""
        return Traffic(self.counts - earlier.counts)


def _route(key: str) -> str:
    return key.split(" ")[1]


class EmulatorProcess:
    """`python -m fragment_emulator` in a child process. Use as a context manager."""

    def __init__(self, logs: Path, rate_limit: str | None = None) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.api_url = self.base_url + API_PREFIX
        self._logs = logs
        argv = [PYTHON, "-m", "fragment_emulator", "--port", str(self.port), "--token", TOKEN]
        if rate_limit is not None:
            argv += ["--rate-limit", rate_limit]
        self._argv = argv
        self._child: subprocess.Popen[bytes] | None = None
        # The admin routes take the emulator's token, like its API.
        self._admin = httpx.Client(
            base_url=self.base_url, timeout=60.0, headers={"Authorization": f"Bearer {TOKEN}"}
        )

    def __enter__(self) -> Self:
        with self._logs.open("wb") as log:
            self._child = subprocess.Popen(
                self._argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            self._wait_until_answering()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()

    def traffic(self) -> Traffic:
        """Everything answered since the start or the last reset."""
        stats = self._admin.get("/_emulator/stats").raise_for_status().json()
        return Traffic(Counter(stats["counts"]), stats["requests"])

    def cpu_s(self) -> float:
        """CPU seconds the emulator process has used so far (Linux `/proc`; NaN elsewhere)."""
        assert self._child is not None
        return cpu_seconds(self._child.pid)

    def reset(self) -> None:
        """Forget every task, the traffic and the rate-limit history."""
        self._admin.post("/_emulator/reset").raise_for_status()

    def stop(self) -> None:
        """Stop the emulator (SIGTERM, then SIGKILL after 5 s); safe to call twice."""
        self._admin.close()
        child, self._child = self._child, None
        if child is None:
            return
        child.terminate()
        try:
            child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()

    def _wait_until_answering(self) -> None:
        """Poll the stats route until it answers; raises `BenchError` if the child dies or hangs."""
        assert self._child is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._child.poll() is not None:
                raise BenchError(f"the emulator exited at start; see {self._logs}")
            try:
                self._admin.get("/_emulator/stats", timeout=1.0)
                return
            except httpx.TransportError:
                time.sleep(0.05)
        raise BenchError(f"the emulator did not answer within {START_TIMEOUT_S:.0f} s")
