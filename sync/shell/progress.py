"""Progress of a long pass: a bar on a terminal, a log line now and then elsewhere."""

from __future__ import annotations

import sys
import time
from typing import TextIO

import structlog

log = structlog.get_logger("sync.shell.progress")


class Progress:
    """The run loop's `ProgressReporter`: updated per chunk of tickets, finished per pass."""

    def __init__(self, stream: TextIO | None = None, every: float = 10.0) -> None:
        self.stream = stream or sys.stderr
        self.on_terminal = self.stream.isatty()
        self.every = every
        self._started: dict[str, float] = {}
        self._last_report = 0.0
        self._drawn = False

    def update(self, name: str, consumed: int, expected: int | None) -> None:
        now = time.monotonic()
        started = self._started.setdefault(name, now)
        rate = consumed / (now - started) if now > started else 0.0
        if self.on_terminal:
            self._draw(name, consumed, expected, rate)
        elif now - self._last_report >= self.every:
            self._last_report = now
            log.info(
                "progress",
                connector=name,
                consumed=consumed,
                expected=expected,
                per_second=round(rate, 1),
            )

    def _draw(self, name: str, consumed: int, expected: int | None, rate: float) -> None:
        if expected:
            share = min(1.0, consumed / expected)
            filled = int(share * 30)
            bar = f"[{'#' * filled}{'.' * (30 - filled)}] {share:4.0%} {consumed}/{expected}"
        else:
            bar = f"{consumed} tickets"
        self.stream.write(f"\r{name}: {bar} {rate:,.0f}/s ")
        self.stream.flush()
        self._drawn = True

    def finish(self, name: str) -> None:
        """End the bar's line so the next output starts clean."""
        self._started.pop(name, None)
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
