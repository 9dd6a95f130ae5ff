"""The fleet figure of issue 22: replicas sharing idle connectors on one PostgreSQL state.

    python -m bench.fleet [--connectors 300] [--replicas 3] [--interval 10] [--warmup 30]
        [--measure 60] [--lease-ttl 60] [--state-url URL] [--kill] [--find-max] [--json]

Optional, and not part of `python -m bench`, as `bench.census`. Writes N jsonl
connectors of a few tickets each into one `sync.toml` (one `interval`, the
emulator as Fragment), starts R daemons on it (`python -m sync run`, each with
its own `/metrics` port through `SYNC_DAEMON__HTTP_PORT`, JSON logs to a file),
waits out the warm-up (every ticket in the emulator, every connector passed at
least once) and measures a window. Everything is read from outside the daemons,
so the figure keeps its meaning whatever they do inside: passes, busy attempts
and each replica's share from the `run_finished` and `connector_busy` lines of
their logs (not the `runs` table, which idle passes may stop writing); CPU from
`/proc/<pid>/stat`; commits from PostgreSQL's `pg_stat_database` for the
throwaway database; `/metrics` scraped after the window; tickets from the
emulator. `--kill` kills -9 one replica in the middle of the window and adds
a ticket to every connector, then reports how long every connector took to
push it from a surviving replica. `--find-max` steps the connector count up
until a target misses. Measuring is `bench.fleet_run`'s; this module judges
and prints. Targets are OK or MISS (a benchmark, not a test); the exit code is
1 only when a count is wrong (a ticket lost, no pass seen), 2 when a step
failed.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

from bench.fleet_run import (
    DEFAULT_SERVER,
    MAX_GAP_INTERVALS,
    SCRAPES,
    FleetSetup,
    measure_fleet,
    say,
)
from bench.process import BenchError

# The targets of issue 22.
PASSES_PER_INTERVAL: Final = (0.9, 1.1)
BUSY_SHARE: Final = 0.10
SHARE_BAND: Final = (0.6, 1.4)
"""A replica's share of the passes, times the replicas: 20-47% with three."""
CPU_PER_PASS_MS: Final = 3.0
METRICS_S: Final = 1.0
RSS_GROWTH: Final = 0.10
SOAK_S: Final = 1800.0
"""A window at least this long judges RSS growth (the issue's soak); a shorter one shows it."""


# --- Judging and printing ------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A figure and the band issue 22 sets for it: OK inside, MISS outside."""

    name: str
    label: str
    value: float | None
    low: float | None
    high: float | None
    unit: str
    judged: bool = True
    """False where the run's shape makes the target meaningless (a kill, a short soak)."""
    note: str = ""

    @property
    def passed(self) -> bool:
        if self.value is None:
            return False
        return (self.low is None or self.value >= self.low) and (
            self.high is None or self.value <= self.high
        )

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "pass": self.passed}


def targets(setup: FleetSetup, figure: dict[str, Any]) -> list[Target]:
    """Issue 22's targets, with this run's values."""
    low_share, high_share = (bound / setup.replicas for bound in SHARE_BAND)
    rate = figure["passes_per_interval"]
    quiet = not setup.kill
    busy, done = figure["busy_attempts"], sum(figure["passes"].values())
    of_attempts = busy / (busy + done) if busy + done else 0.0
    rss = [r["growth"] for r in figure["rss_mib"].values() if r is not None]
    found = [
        Target(
            "passes_per_interval", "ok passes / connector / interval (mean)", rate["mean"],
            *PASSES_PER_INTERVAL, "",
            note=f"min {rate['min']:.2f}, max {rate['max']:.2f}, sd {rate['stdev']:.2f}",
        ),
        Target("busy_share", "busy attempts / passes", figure["busy_share"], None, BUSY_SHARE,
               "%", note=f"{busy:,} busy: {of_attempts:.0%} of attempts"),
        *(
            Target(f"replica_share.{name}", f"replica {name}'s share of ok passes", share,
                   low_share, high_share, "%", judged=quiet,
                   note=f"{figure['replica_attempts'][name]:,} attempts")
            for name, share in figure["replica_share"].items()
        ),
        Target("max_gap", "largest gap between two passes", figure["max_gap_intervals"], None,
               MAX_GAP_INTERVALS, " intervals", judged=quiet,
               note=f"{figure['connectors_over_gap']:,} connectors over"),
        Target("cpu_per_pass", "CPU per idle pass (all replicas)", figure["cpu_ms_per_pass"],
               None, CPU_PER_PASS_MS, " ms", judged=quiet,
               note=f"{figure['commits_per_pass']} commits, "
                    f"{figure['rollbacks_per_pass']} rollbacks per pass"),
        Target("metrics_s", f"/metrics, slowest of {SCRAPES} per replica",
               max(figure["metrics_s"].values(), default=None), None, METRICS_S, " s",
               note=f"{figure['metrics_failed']} failed" if figure["metrics_failed"] else ""),
        Target("tracebacks", "tracebacks and non-JSON lines in the logs",
               sum(figure["strays"].values()), None, 0, ""),
        Target("rss_growth", "RSS growth over the window (largest)", max(rss, default=None),
               None, RSS_GROWTH, "%", judged=figure["window_s"] >= SOAK_S,
               note=f"judged from a {SOAK_S / 60:.0f}-minute window"),
    ]  # fmt: skip
    kill = figure["kill"]
    if kill is not None:
        found.append(
            Target("kill_recovery", "after kill -9, all passed again, in TTL+interval",
                   kill["max_bounds"], None, 1.0, "",
                   note=f"worst {kill['max_s']} s, median {kill['median_s']} s, "
                        f"{kill['connectors_passed_again']} of {kill['connectors']}")
        )  # fmt: skip
    return found


def checks(setup: FleetSetup, figure: dict[str, Any]) -> dict[str, bool]:
    """Counts that must hold whatever the machine: every ticket in Fragment, passes seen.

    How the replicas divide the passes is a target (their shares), not a check.
    """
    tickets = figure["tickets"]
    return {
        "every_ticket_in_fragment": tickets["in_fragment"] == tickets["expected"],
        "passes_observed": figure["passes"]["ok"] > 0,
    }


def _shown(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "%":
        return f"{value:.1%}"
    return f"{value:,.2f}{unit}" if isinstance(value, float) else f"{value:,}{unit}"


def render(setup: FleetSetup, figure: dict[str, Any]) -> str:
    """The figure as a table against the targets, then the information and the checks."""
    passes = figure["passes"]
    lines = [
        f"fleet: {setup.connectors:,} idle jsonl connectors, {setup.replicas} replicas, "
        f"interval {setup.interval:g} s, lease {setup.lease_ttl:g} s, "
        f"{figure['window_s']:g} s measured after a {setup.warmup:g} s warm-up"
        + (" (a replica killed -9 in the middle)" if setup.kill else ""),
        "passes: "
        + ", ".join(f"{n:,} {outcome}" for outcome, n in passes.items())
        + f"; {figure['busy_attempts']:,} connector_busy lines",
        "",
    ]
    for target in targets(setup, figure):
        band = (
            f"{_shown(target.low, target.unit)} to {_shown(target.high, target.unit)}"
            if target.low is not None and target.high is not None
            else f"<= {_shown(target.high, target.unit)}"
        )
        verdict = ("OK" if target.passed else "MISS") if target.judged else "(shown)"
        lines.append(
            f"{target.label:<46} {_shown(target.value, target.unit):>16}  {band:<24} "
            f"{verdict:<7} {target.note}".rstrip()
        )
    lines.append("")
    for name, rss in figure["rss_mib"].items():
        if rss is not None:
            lines.append(
                f"RSS {name}: {rss['start']:.0f} MiB at the start, {rss['end']:.0f} at the end, "
                f"{rss['max']:.0f} at most"
            )
    if figure["errors"]:
        lines.append(f"error lines, by event, over the whole run: {figure['errors']}")
    for example in figure["stray_examples"]:
        lines.append(f"stray line: {example[:200]}")
    tickets = figure["tickets"]
    lines.append(f"tickets in Fragment: {tickets['in_fragment']:,} of {tickets['expected']:,}")
    for name, ok in checks(setup, figure).items():
        lines.append(f"check {name.replace('_', ' ')}: {'OK' if ok else 'WRONG'}")
    return "\n".join(lines)


def report(setup: FleetSetup, figure: dict[str, Any]) -> dict[str, Any]:
    """The JSON document of one run: its setup, figures, targets and checks."""
    found = checks(setup, figure)
    return {
        "setup": asdict(setup),
        **figure,
        "targets": [target.as_json() for target in targets(setup, figure)],
        "all_targets_pass": all(t.passed for t in targets(setup, figure) if t.judged),
        "checks": found,
        "all_checks_pass": all(found.values()),
    }


# --- The command -------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.fleet",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--connectors", type=int, default=300, help="idle connectors (300)")
    parser.add_argument("--replicas", type=int, default=3, help="daemons on one state (3)")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds, every connector's")
    parser.add_argument("--warmup", type=float, default=30.0, help="seconds before the window")
    parser.add_argument("--measure", type=float, default=60.0, help="seconds measured (60)")
    parser.add_argument("--lease-ttl", type=float, default=60.0, help="locking.lease_ttl (60)")
    parser.add_argument("--stagger", type=float, default=0.0, help="seconds between starts")
    parser.add_argument(
        "--state-url", default=DEFAULT_SERVER,
        help="PostgreSQL server URL; a throwaway database is made on it and dropped",
    )  # fmt: skip
    parser.add_argument("--kill", action="store_true", help="kill -9 a replica mid-window")
    parser.add_argument(
        "--find-max", action="store_true",
        help="from --connectors, step up by --step while every target holds",
    )  # fmt: skip
    parser.add_argument("--step", type=float, default=2.0, help="--find-max's factor (2)")
    parser.add_argument("--max-connectors", type=int, default=10_000, help="--find-max's cap")
    parser.add_argument("--workdir", type=Path, help="kept: configs, sources and logs")
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    args = parser.parse_args(argv)
    if args.kill and args.replicas < 2:
        parser.error("--kill needs a replica to survive: --replicas 2 or more")
    if args.connectors < 1 or args.replicas < 1 or args.interval < 1:
        parser.error("--connectors and --replicas at least 1, --interval at least 1 s")
    # SIGTERM unwinds like Ctrl-C, so the emulator and the replicas are stopped too.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    counts = [args.connectors]
    while args.find_max and counts[-1] * args.step <= args.max_connectors and args.step > 1:
        counts.append(math.ceil(counts[-1] * args.step))
    documents = []
    try:
        for count in counts:
            setup = FleetSetup(
                count, args.replicas, args.interval, args.warmup, args.measure,
                args.lease_ttl, args.stagger, args.kill,
            )  # fmt: skip
            figure = _one_run(setup, args.state_url, args.workdir)
            documents.append(report(setup, figure))
            if not args.json:
                print(render(setup, figure) + "\n", flush=True)
            if not documents[-1]["all_targets_pass"]:
                break
    except BenchError as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench interrupted", file=sys.stderr)
        return 130
    held = [d["setup"]["connectors"] for d in documents if d["all_targets_pass"]]
    if args.json:
        document = (
            {"runs": documents, "largest_holding": max(held, default=None)}
            if args.find_max
            else documents[0]
        )
        print(json.dumps(document, indent=2))
    elif args.find_max:
        print(f"largest connector count holding every target: {max(held, default='none')}")
    return 0 if all(d["all_checks_pass"] for d in documents) else 1


def _one_run(setup: FleetSetup, server: str, workdir: Path | None) -> dict[str, Any]:
    if workdir is not None:
        directory = workdir / f"fleet-{setup.connectors}"
        directory.mkdir(parents=True, exist_ok=True)
        say(f"workdir kept: {directory}")
        return measure_fleet(setup, server, directory)
    with tempfile.TemporaryDirectory(prefix="fragment-bench-fleet-") as temporary:
        return measure_fleet(setup, server, Path(temporary))


if __name__ == "__main__":
    sys.exit(main())
