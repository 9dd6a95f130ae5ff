"""What a pass is asked to do and what it reports; who is told of each pass.

`RunOptions` in, `RunSummary` out (the `--json` output is made of these) with
its outcome (`outcome_of`), `RUN_OBSERVERS` told as each pass starts and ends.
The shell (CLI, daemon, metrics, progress) reads these; the pass is `sync.run`.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from sync.errors import FixConfiguration, RetryLater, StopConnector, StopRequested
from sync.mapping import TaskPayload
from sync.state import STATE_FAILURES, LeaseLost, state_failure_message
from sync_http.redaction import redact

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
"""Each asks the passes to stop after their batch in flight and checkpoint. SIGHUP's
default would kill the process mid-batch (a closed terminal, a reload sent by habit)."""


@dataclass
class RunSummary:
    """What one pass of one connector did; the `--json` output is made of these."""

    name: str
    ok: bool
    pulled: int
    pushed: int
    unchanged: int
    failed: int
    watermark: str | None
    duration_s: float
    run_id: str | None = None
    requests: int = 0
    isolation_requests: int = 0
    skipped_deleted: int = 0
    """Tickets deleted before they ever reached Fragment, so not pushed (nor unchanged)."""
    comments_posted: int = 0
    comments_failed: int = 0
    """Comments posted to their tasks, and refused by Fragment (comment sync)."""
    error: str | None = None
    outcome: str = "ok"
    """ok, failed, interrupted, busy (another process runs it), lease_lost."""

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class ProgressReporter(Protocol):
    """Told how far each pass has got (`sync.shell.progress.Progress` draws it)."""

    def update(self, name: str, consumed: int, expected: int | None) -> None: ...

    def finish(self, name: str) -> None: ...


class RunObserver(Protocol):
    """Told when each pass starts and ends (`sync.shell.metrics` records it)."""

    def started(self, name: str, run_id: str | None) -> None: ...

    def finished(self, summary: RunSummary, outcome: str) -> None: ...


RUN_OBSERVERS: list[RunObserver] = []
"""Process-wide, like the metrics registry they feed."""

WRITE_BACK_OBSERVERS: list[Callable[[Any], None]] = []
"""Told each write-back pass's summary (`sync.write_back.WriteBackSummary`) as it ends."""


@dataclass
class RunOptions:
    owner: str = field(default_factory=lambda: owner_id())
    """Who this process is, in the connectors' leases."""
    lease_ttl: float = 60.0
    wait_for_lease: float | None = None
    """Seconds to wait for a busy connector; None: skip it at once."""
    lease_held: bool = False
    """The lease is held already (the daemon's claim): the pass keeps it renewed, and
    neither takes nor releases it."""
    full: bool = False
    dry_run: bool = False
    retry_only: bool = False
    """Only retry the failed items; pull nothing new (`failures retry`)."""
    planned: Callable[[str, TaskPayload], None] | None = None
    progress: ProgressReporter | None = None
    stop: threading.Event = field(default_factory=threading.Event)


def owner_id() -> str:
    """This process in a lease: host, pid and a nonce (a restarted pid is someone else)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def outcome_of(exc: Exception, log: Any) -> tuple[str, str]:
    """The outcome of a pass `exc` stopped, and its message; a bug is logged with its trace.

    A stop request ends it `interrupted`, a lost lease `lease_lost`; the failure
    kinds (`RetryLater`, `FixConfiguration`, `StopConnector`) and a failure of
    the state database end it `failed`, their checkpoint intact either way.
    Anything else is a bug, `SkipTicket` too: the pass records a ticket it
    can't carry and goes on, so one reaching here escaped its stage. Call it
    where `exc` was caught: the trace logged is the one being handled.
    """
    if isinstance(exc, LeaseLost):
        return "lease_lost", str(exc)
    if isinstance(exc, StopRequested):
        return "interrupted", str(exc)
    if isinstance(exc, RetryLater | FixConfiguration | StopConnector):
        return "failed", str(exc)
    if isinstance(exc, STATE_FAILURES):
        return "failed", state_failure_message(exc)
    log.exception("run_crashed")  # a bug: report it, keep the other connectors going
    # Not a failure kind, so its message was not redacted as it was made.
    return "failed", redact(f"internal error: {type(exc).__name__}: {exc}")
