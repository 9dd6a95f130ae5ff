"""The figures of issue 6, one function each, and the values they hold.

Each function sets up what its figure needs (a scenario, a reset or a fresh
emulator), measures, and returns plain values; the targets and the table are
`bench.report`'s. Figures that build on each other (a backfill, then nothing
changed, then 1% changed) share one scenario, in that order.
"""

from __future__ import annotations

import itertools
import json
import math
import shutil
import statistics
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench.emulator import EmulatorProcess, Traffic
from bench.process import PYTHON, BenchError, Measured, measure
from bench.runner import Scenario, SyncRun, prepare_scenario, run_sync
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
    sustained_per_s: float
    """Least-squares slope of acknowledged tasks against arrival time."""

    @property
    def ceiling_per_min(self) -> int:
        return self.rate * self.batch

    @property
    def sustained_per_min(self) -> float:
        return self.sustained_per_s * 60

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
    return UnderLimit(rate, batch, run, sustained_rate(recent))


def sustained_rate(requests: list[dict[str, Any]]) -> float:
    """Tasks a second: the slope of cumulative acknowledged tasks against arrival time.

    Only answered batch writes (200) count. A fitted slope is insensitive to
    the first burst and to the process start-up, unlike tasks / wall time.
    Raises `BenchError` with fewer than two such requests.
    """
    acked = [r for r in requests if r["status"] == 200 and r["route"].endswith("/tasks/batch")]
    if len(acked) < 2:
        raise BenchError(f"figure 6 needs at least two acknowledged batches, got {len(acked)}")
    start = acked[0]["t"]
    times = [r["t"] - start for r in acked]
    tasks = list(itertools.accumulate(r["items"] for r in acked))
    return statistics.linear_regression(times, tasks).slope


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
