"""`python -m bench.compare A B ...`: backfill CPU of several checkouts, interleaved.

On a noisy machine the same code's CPU per ticket moves by 30% within an
hour, so two `python -m bench` runs made at different times can't tell a
10% change. This runs a jsonl backfill of each checkout in turn, round after
round against one emulator, with the floor measured in every round, and
prints each one's median: the checkouts meet the same noise.

    git worktree add /tmp/before <commit>
    python -m bench.compare /tmp/before . --rounds 4

Each checkout's `sync/` and `connectors/` run the backfill (`PYTHONPATH`);
the emulator, the floor and the harness are this checkout's.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.emulator import EmulatorProcess
from bench.figures import UNLIMITED_RATE, floor
from bench.process import BenchError, compile_project, compile_tree
from bench.runner import prepare_scenario, run_sync
from bench.sources import ensure_corpus, source_copy
from bench.suite import say


@dataclass
class Checkout:
    """One tree under comparison and its backfills' CPU per ticket, in µs."""

    path: Path
    cpu_us: list[float] = field(default_factory=list)
    wall_s: list[float] = field(default_factory=list)


def compare(paths: Sequence[Path], rounds: int, n: int, batch: int, workdir: Path) -> str:
    """Run the rounds; the report as text."""
    compile_project()
    checkouts = [Checkout(path.resolve()) for path in paths]
    for checkout in checkouts:
        compile_tree(checkout.path)
    corpus = ensure_corpus(workdir / "cache", n, seed=6)
    source = source_copy("jsonl", corpus, workdir / "source")
    floors: list[float] = []
    with EmulatorProcess(workdir / "emulator.log") as emulator:
        for number in range(1, rounds + 1):
            for checkout in checkouts:
                scenario = prepare_scenario(
                    workdir / "run", source, emulator.api_url, batch, UNLIMITED_RATE
                )
                emulator.reset()
                with _importing_from(checkout.path):
                    run = run_sync(scenario, emulator, "run")
                checkout.cpu_us.append(run.measured.cpu_s / n * 1e6)
                checkout.wall_s.append(run.measured.wall_s)
                say(f"round {number}: {checkout.path}: {checkout.cpu_us[-1]:.1f} µs/ticket")
            floors.append(floor(source, n, workdir / "run").cpu_per_ticket_s * 1e6)
    median_floor = statistics.median(floors)
    lines = [f"{n:,} jsonl tickets, batch {batch}, {rounds} rounds; floor {median_floor:.1f} µs"]
    for checkout in checkouts:
        cpu = statistics.median(checkout.cpu_us)
        lines.append(
            f"{checkout.path}: median {cpu:.1f} µs/ticket ({cpu / median_floor:.2f}x the floor), "
            f"wall {statistics.median(checkout.wall_s):.2f} s; rounds "
            + ", ".join(f"{value:.1f}" for value in checkout.cpu_us)
        )
    return "\n".join(lines)


@contextlib.contextmanager
def _importing_from(path: Path) -> Iterator[None]:
    """Within it, the sync processes started import the project from `path`."""
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(path)
    try:
        yield
    finally:
        if before is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = before


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__)
    parser.add_argument("checkouts", nargs="+", type=Path, help="trees holding sync/")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    options = parser.parse_args(argv)
    for path in options.checkouts:
        if not (path / "sync" / "__main__.py").is_file():
            parser.error(f"{path} holds no sync/ package")
    with tempfile.TemporaryDirectory(prefix="fragment-compare-") as workdir:
        try:
            report = compare(
                options.checkouts, options.rounds, options.n, options.batch, Path(workdir)
            )
        except BenchError as exc:
            print(f"compare failed: {exc}", file=sys.stderr)
            return 2
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
