"""The figures of issues 6 and 17, one function each, and the values they hold.

Each function sets up what its figure needs (a scenario, a reset or a fresh
emulator), measures, and returns plain values; the targets and the table are
`bench.report`'s. Figures that build on each other (a backfill, then nothing
changed, then 1% changed) share one scenario, in that order.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import time
from collections.abc import Generator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench.emulator import EmulatorProcess, Traffic
from bench.process import PYTHON, BenchError, Measured, cpu_seconds, measure
from bench.runner import DAEMON_INTERVAL, Scenario, SyncRun, prepare_scenario, run_sync
from bench.sources import Corpus, Source, apply_edits, as_source, one_percent_edits

UNLIMITED_RATE = 1_000_000
"""`requests_per_minute` when the emulator enforces no limit: the client's budget never waits."""
_SCRIPTS = Path(__file__).resolve().parent


# --- 1. Backfill -----------------------------------------------------------------


@dataclass(frozen=True)
class Backfill:
    """Figure 1: every ticket of a fresh source into an empty Fragment, no rate limit."""

    corpus: Corpus
    run: SyncRun

    @property
    def tickets_per_s(self) -> float:
        return self.corpus.n / self.run.measured.wall_s

    @property
    def cpu_per_ticket_s(self) -> float:
        return self.run.measured.cpu_s / self.corpus.n

    def as_json(self) -> dict[str, Any]:
        return {
            "n": self.corpus.n,
            "expected_pushed": self.corpus.live,
            "tickets_per_s": self.tickets_per_s,
            "cpu_per_ticket_us": self.cpu_per_ticket_s * 1e6,
            **self.run.as_json(),
        }


def backfill(scenario: Scenario, emulator: EmulatorProcess, corpus: Corpus) -> Backfill:
    """Figure 1 on a freshly prepared `scenario`, against an emptied emulator."""
    emulator.reset()
    run = run_sync(scenario, emulator, "backfill")
    return Backfill(corpus, run)


# --- 2. The floor ----------------------------------------------------------------


@dataclass(frozen=True)
class Floor:
    """Figure 2: only reading the source and JSON-encoding each ticket once."""

    n: int
    measured: Measured

    @property
    def cpu_per_ticket_s(self) -> float:
        return self.measured.cpu_s / self.n

    @property
    def tickets_read(self) -> int:
        return int(self.measured.stdout)

    def as_json(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "tickets_read": self.tickets_read,
            "wall_s": self.measured.wall_s,
            "cpu_s": self.measured.cpu_s,
            "cpu_per_ticket_us": self.cpu_per_ticket_s * 1e6,
        }


REFERENCE_SAMPLES = 3
"""Runs of each reference (the floor, the naive client); the best one is reported.

Measured once, a reference is at the mercy of one slow second on a shared
machine: the naive client's speed has been seen to halve from one run to
the next. Its best run is what it can do, and erring that way only makes
the sync's ratios against it harder to meet.
"""


def floor(source: Source, n: int, directory: Path, samples: int = REFERENCE_SAMPLES) -> Floor:
    """Figure 2 over `source` (its `n` tickets), measured like the sync process.

    The run with the least CPU of `samples`.
    """
    argv = [PYTHON, str(_SCRIPTS / "floor.py"), source.kind, str(source.path)]
    runs = [measure(argv, cwd=directory, logs=directory / "floor") for _ in range(samples)]
    return Floor(n, min(runs, key=lambda run: run.cpu_s))


# --- 3. The naive client -----------------------------------------------------------


@dataclass(frozen=True)
class Naive:
    """Figure 3: one `PUT /tasks/{uid}` per ticket over one keep-alive connection."""

    tickets: int
    seconds: float
    statuses: dict[str, int]
    """HTTP status → count, as the naive client saw them."""
    traffic: Traffic
    emulator_cpu_s: float
    """CPU seconds the emulator spent answering (the naive client's reading is not in it)."""

    @property
    def tickets_per_s(self) -> float:
        return self.tickets / self.seconds

    def as_json(self) -> dict[str, Any]:
        return {
            "tickets": self.tickets,
            "seconds": self.seconds,
            "tickets_per_s": self.tickets_per_s,
            "statuses": self.statuses,
            "emulator_requests": self.traffic.api_requests,
            "emulator_cpu_s": self.emulator_cpu_s,
        }


def naive_client(
    scenario: Scenario, emulator: EmulatorProcess, sample: int, samples: int = REFERENCE_SAMPLES
) -> Naive:
    """Figure 3 on the first `sample` tickets of the scenario's source, into an emptied emulator.

    The fastest of `samples` runs.
    """
    return max(
        (_naive_run(scenario, emulator, sample) for _ in range(samples)),
        key=lambda run: run.tickets_per_s,
    )


def _naive_run(scenario: Scenario, emulator: EmulatorProcess, sample: int) -> Naive:
    emulator.reset()
    argv = [PYTHON, str(_SCRIPTS / "naive.py"), str(scenario.config), str(sample)]
    cpu_before = emulator.cpu_s()
    measured = measure(argv, cwd=scenario.directory, logs=scenario.directory / "naive")
    emulator_cpu = emulator.cpu_s() - cpu_before
    result = json.loads(measured.stdout)
    return Naive(
        result["tickets"], result["seconds"], result["statuses"], emulator.traffic(), emulator_cpu
    )


# --- 4. Nothing changed, and 5. 1% changed ------------------------------------------


def startup(directory: Path) -> Measured:
    """What any `python -m sync` costs before doing anything: the interpreter and imports.

    Figure 4's context: a run with nothing to do can't be cheaper than this.
    """
    return measure([PYTHON, "-m", "sync", "--help"], cwd=directory, logs=directory / "startup")


def nothing_changed(scenario: Scenario, emulator: EmulatorProcess) -> SyncRun:
    """Figure 4: the same pass again right after the backfill; it should send nothing."""
    return run_sync(scenario, emulator, "nothing-changed")


def full_reread(scenario: Scenario, emulator: EmulatorProcess) -> SyncRun:
    """Figure 4's informational row: `--full` reads and diffs everything, and sends nothing."""
    return run_sync(scenario, emulator, "full-reread", full=True)


@dataclass(frozen=True)
class OnePercent:
    """Figure 5: n // 100 tickets edited in the source after it was synced."""

    changed: int
    batch: int
    run: SyncRun

    @property
    def expected_requests(self) -> int:
        return math.ceil(self.changed / self.batch)

    def as_json(self) -> dict[str, Any]:
        return {
            "changed": self.changed,
            "expected_requests": self.expected_requests,
            **self.run.as_json(),
        }


def one_percent(
    scenario: Scenario, emulator: EmulatorProcess, corpus: Corpus, batch: int
) -> OnePercent:
    """Figure 5: edit 1% of the scenario's source (a copy of `corpus`), then run it again."""
    edits = one_percent_edits(corpus)
    apply_edits(scenario.source, corpus, edits)
    return OnePercent(len(edits), batch, run_sync(scenario, emulator, "one-percent"))


# --- 6. Under the documented limit ---------------------------------------------------


@dataclass(frozen=True)
class UnderLimit:
    """Figure 6: the emulator enforcing `rate` a minute, the client configured to match."""

    rate: int
    batch: int
    run: SyncRun
    sustained: Sustained

    @property
    def ceiling_per_min(self) -> int:
        return self.rate * self.batch

    @property
    def sustained_per_min(self) -> float:
        return self.sustained.tasks_per_s * 60

    @property
    def plain_per_min(self) -> float:
        return self.run.count("pushed") / (self.run.measured.wall_s / 60)

    @property
    def fraction(self) -> float:
        return self.sustained_per_min / self.ceiling_per_min

    def as_json(self) -> dict[str, Any]:
        return {
            "rate_per_minute": self.rate,
            "batch": self.batch,
            "ceiling_tasks_per_min": self.ceiling_per_min,
            "sustained_tasks_per_min": self.sustained_per_min,
            "sustained_span_batches": self.sustained.span_batches,
            "sustained_spans": self.sustained.spans,
            "plain_tasks_per_min": self.plain_per_min,
            "fraction": self.fraction,
            **self.run.as_json(),
        }


def under_limit(corpus: Corpus, rate: int, batch: int, directory: Path) -> UnderLimit:
    """Figure 6 over `corpus`, with an emulator of its own that allows `rate` requests a minute."""
    directory.mkdir(parents=True, exist_ok=True)
    with EmulatorProcess(directory / "emulator.log", rate_limit=f"{rate}/60") as emulator:
        source = as_source("jsonl", corpus.jsonl)
        scenario = prepare_scenario(directory / "run", source, emulator.api_url, batch, rate)
        run = run_sync(scenario, emulator, "under-limit")
        recent = emulator.traffic().recent
    return UnderLimit(rate, batch, run, sustained_rate(recent, rate))


@dataclass(frozen=True)
class Sustained:
    """Acknowledged tasks a second, over spans of `span_batches` consecutive batches."""

    tasks_per_s: float
    span_batches: int
    """The server's count a minute; fewer in a run too short to hold that many and one more."""
    spans: int


def sustained_rate(requests: list[dict[str, Any]], per_minute: int) -> Sustained:
    """What the client sustains against the server's own rule, from the server's log.

    A server keeping a sliding minute of `per_minute` requests refuses a
    request that arrives less than 60 s after the one `per_minute` before it.
    So each span from an acknowledged batch to the one `per_minute` later
    takes at least a minute, and carries at most `per_minute` batches' tasks:
    their tasks over their seconds, summed over every such span of the run,
    is at most rate x batch a minute and reaches it only at the limit. A
    start-up burst or a pause weighs only in the spans it falls in; a run
    too short for one span (`--quick`) gives the rate over the whole run.
    Raises `BenchError` with fewer than two acknowledged batches.
    """
    acked = [r for r in requests if r["status"] == 200 and r["route"].endswith("/tasks/batch")]
    if len(acked) < 2:
        raise BenchError(f"figure 6 needs at least two acknowledged batches, got {len(acked)}")
    times = [r["t"] for r in acked]
    # Tasks acknowledged before batch i: batches i to j-1 carry before[j] - before[i].
    before = [0, *itertools.accumulate(r["items"] for r in acked)]
    span = min(per_minute, len(acked) - 1)
    starts = range(len(acked) - span)
    tasks = sum(before[i + span] - before[i] for i in starts)
    seconds = sum(times[i + span] - times[i] for i in starts)
    return Sustained(tasks / seconds, span, len(starts))


# --- 4b. A daemon's idle passes ------------------------------------------------------

IDLE_PASSES = 5
"""Passes of the daemon measured, after its first (which may still be settling the source)."""
DAEMON_DEADLINE_S = 120.0
"""Only stops a hung daemon: its passes take well under a second each."""


@dataclass(frozen=True)
class DaemonIdle:
    """Figure 4b: `python -m sync run` on a 1 s interval over a source that no longer changes."""

    passes: list[dict[str, Any]]
    """The `run_finished` lines of the measured passes (the second on)."""
    cpu_s: float
    """The daemon's CPU from the end of its first pass to the end of its last measured one."""
    traffic: Traffic
    """The requests the emulator answered while the daemon ran, its first pass included."""
    backfill_wall_s: float

    @property
    def pass_s(self) -> float:
        """The median `duration_s` of the measured passes."""
        return statistics.median(float(p["duration_s"]) for p in self.passes)

    @property
    def share(self) -> float:
        """A pass against the backfill it follows."""
        return self.pass_s / self.backfill_wall_s

    @property
    def cpu_per_pass_s(self) -> float:
        """CPU per interval: the pass and the daemon's idling until the next."""
        return self.cpu_s / len(self.passes)

    def total(self, key: str) -> int:
        """`pulled`, `pushed`, `requests`, … summed over the measured passes."""
        return sum(int(p[key]) for p in self.passes)

    def as_json(self) -> dict[str, Any]:
        return {
            "interval": DAEMON_INTERVAL,
            "passes": len(self.passes),
            "pass_s": [p["duration_s"] for p in self.passes],
            "median_pass_s": self.pass_s,
            "share_of_backfill": self.share,
            "cpu_s": self.cpu_s,
            "cpu_per_pass_s": self.cpu_per_pass_s,
            **{key: self.total(key) for key in ("pulled", "pushed", "failed", "requests")},
            "all_ok": all(p["ok"] for p in self.passes),
            "emulator_requests": self.traffic.api_requests,
        }


def daemon_idle(scenario: Scenario, emulator: EmulatorProcess, backfill: Backfill) -> DaemonIdle:
    """Figure 4b: the scenario's daemon for `IDLE_PASSES` passes after its first, then SIGTERM.

    Its passes are read from its JSON log as they end; its CPU from `/proc`
    at the end of the first and of the last measured pass, so its start-up
    is not in it. Raises `BenchError` if it exits or hangs before then.
    """
    argv = [PYTHON, "-m", "sync", "run", "--config", str(scenario.daemon_config)]
    log = scenario.directory / "daemon.err"
    before = emulator.traffic()
    with log.open("wb") as err:
        # A session of its own, so an interrupted harness can stop it with one killpg.
        daemon = subprocess.Popen(
            argv,
            cwd=scenario.directory,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )
    finished = _passes(daemon, log)
    try:
        next(finished)  # the first pass
        cpu_before = cpu_seconds(daemon.pid)
        passes = [next(finished) for _ in range(IDLE_PASSES)]
        cpu = cpu_seconds(daemon.pid) - cpu_before
    finally:
        finished.close()
        _stop(daemon)
    traffic = emulator.traffic().since(before)
    return DaemonIdle(passes, cpu, traffic, backfill.run.measured.wall_s)


def _passes(daemon: subprocess.Popen[bytes], log: Path) -> Generator[dict[str, Any], None, None]:
    """The daemon's `run_finished` lines as it writes them; `BenchError` if it stops first."""
    deadline = time.monotonic() + DAEMON_DEADLINE_S
    with log.open("rb") as lines:
        pending = b""
        while time.monotonic() < deadline:
            chunk = lines.readline()
            if not chunk.endswith(b"\n"):  # nothing new yet, or half a line
                pending += chunk
                if daemon.poll() is not None:
                    raise BenchError(f"the daemon exited with {daemon.returncode}; see {log}")
                time.sleep(0.02)
                continue
            line, pending = pending + chunk, b""
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if isinstance(entry, dict) and entry.get("event") == "run_finished":
                    yield entry
    raise BenchError(f"the daemon's passes took over {DAEMON_DEADLINE_S:.0f} s; see {log}")


def _stop(daemon: subprocess.Popen[bytes]) -> None:
    """SIGTERM, as an operator stops it; SIGKILL if it is not gone within its shutdown time."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(daemon.pid, signal.SIGTERM)
    try:
        daemon.wait(timeout=35)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(daemon.pid, signal.SIGKILL)
        daemon.wait()


# --- 9. State size ----------------------------------------------------------------------


@dataclass(frozen=True)
class StateSize:
    """Figure 9: what the SQLite state holds on disk for the tickets it tracks."""

    tracked: int
    """Rows of `tasks`: the tickets pushed and remembered (one connector per scenario)."""
    bytes: int
    """Pages in use (the free list left out) after the WAL was folded in."""
    by_name: dict[str, int]
    """Bytes per table and index, from SQLite's `dbstat` (empty where it is not compiled in)."""

    @property
    def per_ticket(self) -> float:
        return self.bytes / max(1, self.tracked)

    def as_json(self) -> dict[str, Any]:
        return {
            "tracked": self.tracked,
            "bytes": self.bytes,
            "bytes_per_ticket": self.per_ticket,
            "by_name": self.by_name,
        }


def state_size(state_url: str) -> StateSize | None:
    """Figure 9 for a state at `state_url` no process has open; None unless it is SQLite.

    The whole file counts (run history, leases, watermarks: a few pages), as
    the user stores it; no VACUUM.
    """
    prefix = "sqlite:///"
    if not state_url.startswith(prefix):
        return None
    with contextlib.closing(sqlite3.connect(state_url.removeprefix(prefix))) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        used = _pragma(db, "page_count") - _pragma(db, "freelist_count")
        tracked = int(db.execute("SELECT count(*) FROM tasks").fetchone()[0])
        try:
            by_name = {
                str(name): int(size)
                for name, size in db.execute(
                    "SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC"
                )
            }
        except sqlite3.OperationalError:  # dbstat not compiled in
            by_name = {}
        return StateSize(tracked, used * _pragma(db, "page_size"), by_name)


def _pragma(db: sqlite3.Connection, name: str) -> int:
    return int(db.execute(f"PRAGMA {name}").fetchone()[0])


# --- 7. Memory ------------------------------------------------------------------------


@dataclass(frozen=True)
class MemoryPoint:
    """Figure 7: the peak RSS of a jsonl backfill of `n` tickets."""

    n: int
    peak_rss_mib: float
    wall_s: float

    def as_json(self) -> dict[str, Any]:
        return {"n": self.n, "peak_rss_mib": self.peak_rss_mib, "wall_s": self.wall_s}


def memory_point(
    corpus: Corpus, emulator: EmulatorProcess, batch: int, directory: Path
) -> MemoryPoint:
    """Figure 7 at `corpus.n`: a backfill with fresh state into an emptied emulator."""
    source = as_source("jsonl", corpus.jsonl)
    scenario = prepare_scenario(directory, source, emulator.api_url, batch, UNLIMITED_RATE)
    return memory_of(backfill(scenario, emulator, corpus))


def memory_of(run: Backfill) -> MemoryPoint:
    """The figure-7 point an existing backfill already measured."""
    measured = run.run.measured
    return MemoryPoint(run.corpus.n, measured.peak_rss_mib, measured.wall_s)


# --- 8. Failed items --------------------------------------------------------------------

BROKEN_TITLE = "{no_such_field}"
"""The title template of figure 8's broken mapping: no ticket has that field."""


@dataclass(frozen=True)
class BrokenThenFixed:
    """Figure 8: a jsonl backfill whose every ticket fails to map, then the pass after the fix.

    The fix's pass retries every failed item (and re-reads the source, its
    settings having changed): the failure path's memory, like the backfill's,
    must not grow with the number of tickets.
    """

    corpus: Corpus
    broken: SyncRun
    fixed: SyncRun

    def as_json(self) -> dict[str, Any]:
        return {"broken": self.broken.as_json(), "fixed": self.fixed.as_json()}


def broken_then_fixed(
    corpus: Corpus, emulator: EmulatorProcess, batch: int, directory: Path
) -> BrokenThenFixed:
    """Figure 8 over `corpus`; the state outlives the two scenarios' directories."""
    source = as_source("jsonl", corpus.jsonl)
    broken_source = replace(source, mapping={**source.mapping, "title": BROKEN_TITLE})
    state = directory / "state"  # beside the scenarios' directories, which preparing empties
    shutil.rmtree(state, ignore_errors=True)
    state.mkdir(parents=True)
    state_url = f"sqlite:///{state / 'state.db'}"
    emulator.reset()
    runs = []
    for label, chosen in (("broken", broken_source), ("fixed", source)):
        scenario = prepare_scenario(
            directory / label, chosen, emulator.api_url, batch, UNLIMITED_RATE, state_url
        )
        runs.append(run_sync(scenario, emulator, label))
    broken, fixed = runs
    return BrokenThenFixed(corpus, broken, fixed)
