"""The benchmark's parameters: the command line, and the `--quick` smoke preset.

Owns the options of `python -m bench` and their defaults; measuring and
reporting live elsewhere.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

SourceKind = Literal["jsonl", "sql"]

FULL_RUN: dict[str, Any] = {
    "n": 100_000,
    "naive_sample": 1_000,
    "rate": 600,
    "rate_batch": 100,
    # Past one minute: figure 6 reads spans of a minute's requests, which the server's
    # window, not the client's start-up burst, decides.
    "rate_minutes": 1.5,
    "memory_small": 10_000,
}
"""The defaults: the figures issues 6 and 17 ask for."""
QUICK_RUN: dict[str, Any] = {
    "n": 2_000,
    "naive_sample": 50,
    "rate": 1_200,
    "rate_batch": 20,
    # Shorter than the server's minute: figure 6 is only the rate over the run here.
    "rate_minutes": 0.2,
    "memory_small": 500,
}
"""`--quick`: every figure at a size CI can afford (the whole run well under a minute)."""
MILLION = 1_000_000


@dataclass(frozen=True)
class Parameters:
    """Everything that decides what one bench run measures."""

    n: int
    batch: int
    seed: int
    sources: tuple[SourceKind, ...]
    naive_sample: int
    rate: int
    """Requests a minute the emulator allows (and the client is configured for) in figure 6."""
    rate_batch: int
    rate_minutes: float
    memory_small: int
    """The smaller backfill of figure 7; the larger one is the N-ticket backfill."""
    million: bool
    profile: bool
    """Also run a jsonl backfill under py-spy and print where its CPU went."""
    quick: bool
    json_output: bool
    workdir: Path | None
    keep: bool
    state_server: str | None = None
    """A PostgreSQL server URL: the per-source figures keep the sync's state there."""
    record: Path | None = None
    """Also write the report as Markdown here: the table docs/performance.md includes."""

    @property
    def rate_tickets(self) -> int:
        """Tickets that keep a client at `rate` requests a minute busy for `rate_minutes`."""
        return round(self.rate * self.rate_minutes) * self.rate_batch

    def as_json(self) -> dict[str, Any]:
        """The parameters as the JSON report shows them."""
        return {
            "n": self.n,
            "batch": self.batch,
            "seed": self.seed,
            "sources": list(self.sources),
            "naive_sample": self.naive_sample,
            "rate_per_minute": self.rate,
            "rate_batch": self.rate_batch,
            "rate_minutes": self.rate_minutes,
            "rate_tickets": self.rate_tickets,
            "memory_small": self.memory_small,
            "million": self.million,
            "profile": self.profile,
            "quick": self.quick,
            "state": "sqlite" if self.state_server is None else "postgresql",
        }


def build_parser() -> argparse.ArgumentParser:
    """The command line of `python -m bench`."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark fragment-sync against its Fragment emulator (issues 6 and 17).",
    )
    parser.add_argument("--n", type=int, help="tickets in the backfill (default 100000)")
    parser.add_argument("--batch", type=int, default=500, help="tasks per request (default 500)")
    parser.add_argument("--seed", type=int, default=6, help="seed of the synthetic tickets")
    parser.add_argument(
        "--source",
        choices=("jsonl", "sql", "both"),
        default="both",
        help="the source of the per-source figures (1, 2, 4, 4b, 5, 9; default both)",
    )
    parser.add_argument(
        "--naive-sample", type=int, help="tickets the naive client PUTs one by one (default 1000)"
    )
    parser.add_argument(
        "--rate", type=int, help="figure 6: requests a minute the emulator allows (default 600)"
    )
    parser.add_argument("--rate-batch", type=int, help="figure 6: tasks per request (default 100)")
    parser.add_argument(
        "--rate-minutes", type=float, help="figure 6: minutes of work at that rate (default 1.5)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: every figure, small, in under a minute"
    )
    parser.add_argument(
        "--million", action="store_true", help="figure 7 adds a 1,000,000-ticket backfill"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also profile a jsonl backfill with py-spy (pip install py-spy); "
        "with --keep or --workdir its stacks stay",
    )
    parser.add_argument(
        "--workdir", type=Path, help="keep generated sources and runs here (default: a temp dir)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary workdir")
    parser.add_argument(
        "--state-server",
        metavar="URL",
        help="keep the sync's state of the per-source figures in a fresh database on this "
        "PostgreSQL server (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/postgres) "
        "instead of SQLite",
    )
    parser.add_argument(
        "--record",
        type=Path,
        metavar="FILE",
        help="also write the report as Markdown to FILE; docs/performance.md includes "
        "bench/results/latest.md, which `python -m bench --record bench/results/latest.md` "
        "writes",
    )
    return parser


def parse_parameters(argv: Sequence[str] | None = None) -> Parameters:
    """The parameters from `argv`; exits with a usage message when they make no sense."""
    parser = build_parser()
    args = parser.parse_args(argv)
    preset = QUICK_RUN if args.quick else FULL_RUN

    def chosen(name: str) -> Any:
        value = getattr(args, name)
        return preset[name] if value is None else value

    parameters = Parameters(
        n=chosen("n"),
        batch=args.batch,
        seed=args.seed,
        sources=("jsonl", "sql") if args.source == "both" else (args.source,),
        naive_sample=chosen("naive_sample"),
        rate=chosen("rate"),
        rate_batch=chosen("rate_batch"),
        rate_minutes=chosen("rate_minutes"),
        memory_small=min(preset["memory_small"], chosen("n")),
        million=args.million,
        profile=args.profile,
        quick=args.quick,
        json_output=args.json,
        workdir=args.workdir,
        keep=args.keep,
        state_server=args.state_server,
        record=args.record,
    )
    problem = _problem(parameters)
    if problem:
        parser.error(problem)
    return parameters


def _problem(parameters: Parameters) -> str | None:
    """What is wrong with `parameters`, if anything."""
    if parameters.n < 100:
        return "--n must be at least 100 (figure 5 changes 1% of the tickets)"
    if not 1 <= parameters.batch <= 1000 or not 1 <= parameters.rate_batch <= 1000:
        return "batch sizes must be between 1 and 1000 (Fragment's limit)"
    if parameters.naive_sample < 1 or parameters.rate < 1 or parameters.rate_minutes <= 0:
        return "--naive-sample, --rate and --rate-minutes must be positive"
    return None
