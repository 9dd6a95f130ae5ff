"""One bench run: every figure in order, in one workdir, against emulators it starts and stops.

Owns the order of the figures (each source's backfill and its state's size,
nothing changed, the daemon's idle passes, full re-read, 1% changed and
floor; then the naive client, memory and the rate-limited run), the workdir
layout, and the progress lines on stderr.
Measuring is `bench.figures`'; judging and printing is `bench.report`'s.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.emulator import EmulatorProcess
from bench.figures import (
    UNLIMITED_RATE,
    Backfill,
    BrokenThenFixed,
    DaemonIdle,
    Floor,
    MemoryPoint,
    Naive,
    OnePercent,
    StateSize,
    UnderLimit,
    backfill,
    broken_then_fixed,
    daemon_idle,
    floor,
    full_reread,
    memory_of,
    memory_point,
    naive_client,
    nothing_changed,
    one_percent,
    startup,
    state_size,
    under_limit,
)
from bench.parameters import MILLION, Parameters, SourceKind
from bench.process import Measured, compile_project
from bench.profile import profile_backfill
from bench.runner import SyncRun, prepare_scenario
from bench.sources import Corpus, as_source, ensure_corpus, source_copy
from bench.state import state_database

_STARTED = time.monotonic()


def say(message: str) -> None:
    """A progress line on stderr, with the seconds since the bench started."""
    print(f"[bench {time.monotonic() - _STARTED:7.1f}s] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class SourceFigures:
    """Figures 1, 9, 4, 4b and 5 for one source, measured on one scenario in this order; and 2."""

    backfill: Backfill
    state_size: StateSize | None
    """None when the state is on PostgreSQL."""
    nothing_changed: SyncRun
    daemon_idle: DaemonIdle
    full_reread: SyncRun
    one_percent: OnePercent
    floor: Floor


@dataclass(frozen=True)
class Results:
    """Everything one bench run measured."""

    parameters: Parameters
    machine: dict[str, Any]
    sources: dict[SourceKind, SourceFigures]
    startup: Measured
    naive: Naive
    memory: list[MemoryPoint]
    under_limit: UnderLimit
    failures: BrokenThenFixed


def run_suite(parameters: Parameters, workdir: Path) -> Results:
    """Measure every figure; generated sources are cached in `workdir/cache`.

    Raises `BenchError` when a step fails. Every emulator started is stopped
    on the way out, whatever happens.
    """
    cache, runs = workdir / "cache", workdir / "runs"
    compile_project()
    corpus = _corpus(cache, parameters.n, parameters.seed)
    with EmulatorProcess(workdir / "emulator.log") as emulator:
        sources = {
            kind: _source_figures(kind, corpus, emulator, parameters, runs / kind)
            for kind in parameters.sources
        }
        say("start-up of python -m sync alone")
        started = startup(workdir)
        say(f"naive client: {parameters.naive_sample:,} tickets, one PUT each")
        naive_scenario = prepare_scenario(
            runs / "naive",
            as_source("jsonl", corpus.jsonl),
            emulator.api_url,
            parameters.batch,
            UNLIMITED_RATE,
        )
        naive = naive_client(naive_scenario, emulator, parameters.naive_sample)
        known = (
            {} if "jsonl" not in sources else {parameters.n: memory_of(sources["jsonl"].backfill)}
        )
        memory = _memory(parameters, cache, emulator, known, runs)
        say(f"failed items: {corpus.n:,} tickets on a broken mapping, then the fix")
        failures = broken_then_fixed(corpus, emulator, parameters.batch, runs / "failures")
        if parameters.profile:
            _profile(corpus, emulator, parameters.batch, runs / "profile")
    rate_corpus = _corpus(cache, parameters.rate_tickets, parameters.seed)
    say(
        f"under the limit: {parameters.rate}/min, batch {parameters.rate_batch}, "
        f"{rate_corpus.n:,} tickets (about {parameters.rate_minutes:g} min)"
    )
    limited = under_limit(rate_corpus, parameters.rate, parameters.rate_batch, runs / "rate")
    return Results(parameters, machine(), sources, started, naive, memory, limited, failures)


def _corpus(cache: Path, n: int, seed: int) -> Corpus:
    say(f"tickets: {n:,} from seed {seed} (cached in {cache})")
    return ensure_corpus(cache, n, seed)


def _source_figures(
    kind: SourceKind,
    corpus: Corpus,
    emulator: EmulatorProcess,
    parameters: Parameters,
    directory: Path,
) -> SourceFigures:
    """Figures 1, 9, 4, 4b, 5 and 2 for `kind`, on a private copy of `corpus`."""
    batch = parameters.batch
    with state_database(parameters.state_server, directory, f"fragment_bench_{kind}") as state:
        scenario = prepare_scenario(
            directory,
            source_copy(kind, corpus, directory.with_name(f"{kind}-source")),
            emulator.api_url,
            batch,
            UNLIMITED_RATE,
            state_url=state,
        )
        say(f"{kind}: backfill of {corpus.n:,} tickets")
        filled = backfill(scenario, emulator, corpus)
        size = state_size(scenario.state_url)
        say(f"{kind}: nothing changed")
        unchanged = nothing_changed(scenario, emulator)
        say(f"{kind}: a daemon's idle passes")
        idle = daemon_idle(scenario, emulator, filled)
        say(f"{kind}: full re-read, nothing changed")
        reread = full_reread(scenario, emulator)
        say(f"{kind}: 1% changed")
        changed = one_percent(scenario, emulator, corpus, batch)
    say(f"{kind}: floor")
    lowest = floor(scenario.source, corpus.n, directory)
    return SourceFigures(filled, size, unchanged, idle, reread, changed, lowest)


def _profile(corpus: Corpus, emulator: EmulatorProcess, batch: int, directory: Path) -> None:
    say(f"profile: jsonl backfill of {corpus.n:,} tickets under py-spy --gil")
    for stage, share in profile_backfill(corpus, emulator, batch, UNLIMITED_RATE, directory):
        say(f"  {share:6.1%}  {stage}")
    say(f"profile: stacks in {directory / 'backfill.stacks'}")


def _memory(
    parameters: Parameters,
    cache: Path,
    emulator: EmulatorProcess,
    known: dict[int, MemoryPoint],
    runs: Path,
) -> list[MemoryPoint]:
    """Figure 7: peak RSS at each size, reusing a backfill already measured at that size."""
    sizes = [parameters.memory_small, parameters.n] + ([MILLION] if parameters.million else [])
    points = []
    for size in dict.fromkeys(sizes):
        if size not in known:
            corpus = _corpus(cache, size, parameters.seed)
            say(f"memory: backfill of {size:,} tickets")
            known[size] = memory_point(corpus, emulator, parameters.batch, runs / f"memory-{size}")
        points.append(known[size])
    return points


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None
