"""Judging and printing a bench run: the targets of issue 17, the count checks, table and JSON.

Owns the thresholds (a target is a figure that should be fast or small
enough: PASS or MISS) and the checks (counts that must be exact whatever the
machine: OK or WRONG), and both renderings of the results. Measures nothing.
Issue 17 replaced issue 6's targets (30x the naive client, CPU within 3x the
floor, a whole `run --once` with nothing to do within 5% of the backfill):
the floor and the start-up are still shown, as information.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any, Literal

from bench.figures import REFERENCE_SAMPLES, MemoryPoint
from bench.runner import DAEMON_INTERVAL, SyncRun
from bench.suite import Results, SourceFigures

Unit = Literal["x", "%", "", "/s", "B"]


@dataclass(frozen=True)
class Target:
    """A figure and the threshold issue 17 sets for it."""

    section: str
    name: str
    label: str
    value: float
    threshold: float
    comparison: Literal[">=", "<="]
    unit: Unit
    judged: bool = True
    """False for a figure shown beside a target set on another source (sql beside jsonl)."""

    @property
    def passed(self) -> bool:
        if self.comparison == ">=":
            return self.value >= self.threshold
        return self.value <= self.threshold

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label,
            "value": self.value,
            "threshold": self.threshold,
            "comparison": self.comparison,
            "unit": self.unit,
            "judged": self.judged,
            "pass": self.passed,
        }


@dataclass(frozen=True)
class Check:
    """A count that must come out exactly as expected (not a time)."""

    section: str
    name: str
    label: str
    expected: int
    actual: int

    @property
    def passed(self) -> bool:
        return self.expected == self.actual

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label,
            "expected": self.expected,
            "actual": self.actual,
            "pass": self.passed,
        }


# --- Judging -----------------------------------------------------------------------


BACKFILL_TPS = 10_000
"""Tickets a second: 20x what one token's limit allows (60 requests of 500 a minute)."""
VS_NAIVE = 10
UNDER_LIMIT = 0.99
IDLE_SHARE = 0.01
RSS_GROWTH = 1.2
STATE_BYTES = 250
JUDGED_SOURCE = "jsonl"
"""The issue sets the per-source targets on the jsonl bench; other sources are shown beside."""


def targets(results: Results) -> list[Target]:
    """Every target of issue 17, with the value this run measured.

    The per-source ones are judged on jsonl; another source's values come
    with them, unjudged, for comparison.
    """
    found: list[Target] = []
    for kind, figures in results.sources.items():
        found += [
            replace(target, judged=kind == JUDGED_SOURCE)
            for target in _source_targets(kind, figures, results.naive.tickets_per_s)
        ]
    found += _run_targets(results)
    return found


def _source_targets(kind: str, figures: SourceFigures, naive: float) -> list[Target]:
    filled, unchanged, idle = figures.backfill, figures.nothing_changed, figures.daemon_idle
    found = [
        Target(
            f"backfill:{kind}",
            f"backfill_tps.{kind}",
            "tickets per second",
            filled.tickets_per_s,
            BACKFILL_TPS,
            ">=",
            "/s",
        ),
        Target(
            f"backfill:{kind}",
            f"backfill_vs_naive.{kind}",
            "speed vs the naive client",
            filled.tickets_per_s / naive,
            VS_NAIVE,
            ">=",
            "x",
        ),
        Target(
            f"nothing:{kind}",
            f"nothing_changed_requests.{kind}",
            "requests (emulator)",
            unchanged.traffic.api_requests,
            0,
            "<=",
            "",
        ),
        Target(
            f"daemon:{kind}",
            f"daemon_idle_share.{kind}",
            "an idle pass vs the backfill's wall time",
            idle.share,
            IDLE_SHARE,
            "<=",
            "%",
        ),
    ]
    if figures.state_size is not None:
        found.append(
            Target(
                f"state:{kind}",
                f"state_bytes_per_ticket.{kind}",
                "bytes per tracked ticket",
                figures.state_size.per_ticket,
                STATE_BYTES,
                "<=",
                "B",
            )
        )
    return found


def _run_targets(results: Results) -> list[Target]:
    """The targets of the figures measured once a run: under the limit, memory."""
    limited = results.under_limit
    found = [
        Target(
            "limit",
            "under_limit_fraction",
            "sustained vs rate x batch",
            limited.fraction,
            UNDER_LIMIT,
            ">=",
            "%",
            # A run shorter than the server's minute (--quick) can't show the rate it sustains.
            judged=limited.sustained.span_batches == limited.rate,
        ),
        Target(
            "limit",
            "under_limit_429s",
            "429 answers (emulator)",
            limited.run.traffic.with_status(429),
            0,
            "<=",
            "",
        ),
    ]
    small, large = _memory_pair(results)
    found.append(
        Target(
            "memory",
            "peak_rss_growth",
            f"peak RSS at {large.n:,} vs at {small.n:,}",
            large.peak_rss_mib / small.peak_rss_mib,
            RSS_GROWTH,
            "<=",
            "x",
        )
    )
    # Not one of the issue's: the same memory rule, on the failure path.
    fixed = results.failures.fixed.measured
    found.append(
        Target(
            "failures",
            "failed_retry_rss",
            "peak RSS of the fix's pass vs the backfill's",
            fixed.peak_rss_mib / large.peak_rss_mib,
            RSS_GROWTH,
            "<=",
            "x",
        )
    )
    return found


def _memory_pair(results: Results) -> tuple[MemoryPoint, MemoryPoint]:
    """The small and the N-ticket points of figure 7."""
    by_size = {point.n: point for point in results.memory}
    return by_size[results.parameters.memory_small], by_size[results.parameters.n]


def checks(results: Results) -> list[Check]:
    """Every exact count the run should show: what was pushed, in how many requests."""
    found: list[Check] = []
    for kind, figures in results.sources.items():
        found += list(_source_checks(kind, figures))
    naive = results.naive
    found += [
        Check("naive", "naive_all_ok", "answers 200", naive.tickets, naive.statuses.get("200", 0)),
        Check(
            "naive",
            "naive_requests",
            "requests (emulator)",
            naive.tickets,
            naive.traffic.api_requests,
        ),
    ]
    limited = results.under_limit
    found.append(Check("limit", "under_limit_failed", "failed", 0, limited.run.count("failed")))
    failures = results.failures
    live = failures.corpus.live
    found += [
        Check(
            "failures",
            "broken_failed",
            "failed (all but the deleted)",
            live,
            failures.broken.count("failed"),
        ),
        Check(
            "failures",
            "fixed_pushed",
            "pushed by the fix's pass",
            live,
            failures.fixed.count("pushed"),
        ),
        Check(
            "failures", "fixed_failed", "failed after the fix", 0, failures.fixed.count("failed")
        ),
    ]
    return found


def _source_checks(kind: str, figures: SourceFigures) -> Iterator[Check]:
    filled = figures.backfill
    run = filled.run
    yield Check(
        f"backfill:{kind}",
        f"backfill_pushed.{kind}",
        "pushed (all but the deleted)",
        filled.corpus.live,
        run.count("pushed"),
    )
    yield Check(
        f"backfill:{kind}",
        f"backfill_seen.{kind}",
        "pushed + unchanged + skipped deleted",
        filled.corpus.n,
        run.count("pushed") + run.count("unchanged") + run.count("skipped_deleted"),
    )
    yield Check(f"backfill:{kind}", f"backfill_failed.{kind}", "failed", 0, run.count("failed"))
    yield Check(
        f"floor:{kind}",
        f"floor_read.{kind}",
        "tickets read",
        filled.corpus.n,
        figures.floor.tickets_read,
    )
    yield Check(
        f"nothing:{kind}",
        f"nothing_changed_client_requests.{kind}",
        "requests (client)",
        0,
        figures.nothing_changed.count("requests"),
    )
    yield Check(
        f"nothing:{kind}",
        f"full_reread_requests.{kind}",
        "full re-read: requests (emulator)",
        0,
        figures.full_reread.traffic.api_requests,
    )
    idle = figures.daemon_idle
    yield Check(
        f"daemon:{kind}",
        f"daemon_idle_ok.{kind}",
        "passes that ended ok",
        len(idle.passes),
        sum(bool(p["ok"]) for p in idle.passes),
    )
    yield Check(
        f"daemon:{kind}",
        f"daemon_idle_client_requests.{kind}",
        "requests (client)",
        0,
        idle.total("requests"),
    )
    yield Check(
        f"daemon:{kind}",
        f"daemon_idle_requests.{kind}",
        "requests (emulator, first pass too)",
        0,
        idle.traffic.api_requests,
    )
    if figures.state_size is not None:
        yield Check(
            f"state:{kind}",
            f"state_tracked.{kind}",
            "tracked tickets (all but the deleted)",
            filled.corpus.live,
            figures.state_size.tracked,
        )
    changed = figures.one_percent
    yield Check(
        f"percent:{kind}",
        f"one_percent_pushed.{kind}",
        "pushed",
        changed.changed,
        changed.run.count("pushed"),
    )
    yield Check(
        f"percent:{kind}",
        f"one_percent_client_requests.{kind}",
        "requests (client)",
        changed.expected_requests,
        changed.run.count("requests"),
    )
    yield Check(
        f"percent:{kind}",
        f"one_percent_requests.{kind}",
        "requests (emulator)",
        changed.expected_requests,
        changed.run.traffic.api_requests,
    )


# --- JSON --------------------------------------------------------------------------


def as_json(results: Results) -> dict[str, Any]:
    """The whole run as one JSON document: machine, parameters, figures, targets, checks."""
    judged, counted = targets(results), checks(results)
    return {
        "machine": results.machine,
        "parameters": results.parameters.as_json(),
        "figures": {
            "sources": {
                kind: {
                    "backfill": figures.backfill.as_json(),
                    "state_size": None
                    if figures.state_size is None
                    else figures.state_size.as_json(),
                    "floor": figures.floor.as_json(),
                    "nothing_changed": figures.nothing_changed.as_json(),
                    "daemon_idle": figures.daemon_idle.as_json(),
                    "full_reread": figures.full_reread.as_json(),
                    "one_percent": figures.one_percent.as_json(),
                }
                for kind, figures in results.sources.items()
            },
            "startup": {"wall_s": results.startup.wall_s, "cpu_s": results.startup.cpu_s},
            "naive": results.naive.as_json(),
            "under_limit": results.under_limit.as_json(),
            "memory": [point.as_json() for point in results.memory],
            "failures": results.failures.as_json(),
        },
        "targets": [target.as_json() for target in judged],
        "checks": [check.as_json() for check in counted],
        "all_targets_pass": all(target.passed for target in judged if target.judged),
        "all_checks_pass": all(check.passed for check in counted),
    }


# --- The table ----------------------------------------------------------------------

Row = tuple[str, str, str, str]
"""Label, value, target, verdict."""


def table(results: Results) -> str:
    """The run as a plain-text table, one section per figure and source."""
    judged, counted = targets(results), checks(results)
    params, host = results.parameters, results.machine
    lines = [
        f"fragment-sync bench: N={params.n:,}, batch {params.batch}, seed {params.seed}, "
        f"state in {'SQLite' if params.state_server is None else 'PostgreSQL'}"
        + (" (quick)" if params.quick else ""),
        f"machine: {host['cpu_count']} CPUs ({host['cpu_model'] or 'unknown model'}), "
        f"Python {host['python']}, {host['platform']}",
        "",
        f"{'':<48}{'value':>22}  {'target':<12}{'':<6}",
    ]
    for section, title, rows in _sections(results):
        rows += [_target_row(t) for t in judged if t.section == section]
        rows += [_check_row(c) for c in counted if c.section == section]
        lines.append(title)
        lines += [
            f"   {label:<45}{value:>22}  {goal:<12}{verdict}"
            for label, value, goal, verdict in rows
        ]
    counted_targets = [t for t in judged if t.judged]
    passed = sum(t.passed for t in counted_targets)
    wrong = [c.name for c in counted if not c.passed]
    lines += [
        "",
        f"targets: {passed} of {len(counted_targets)} PASS"
        + (
            f" ({JUDGED_SOURCE}'s and the run's; other sources' lower-case, not counted); "
            if len(counted_targets) < len(judged)
            else "; "
        )
        + ("every count check OK" if not wrong else f"count checks WRONG: {', '.join(wrong)}"),
    ]
    return "\n".join(lines)


def markdown(results: Results, command: str, commit: str | None, when: dt.datetime) -> str:
    """The run as the Markdown the docs include: where and how it ran, the verdicts, the table.

    `python -m bench --record FILE` writes it; `docs/performance.md` includes
    `bench/results/latest.md`, so the figures a user reads are the ones a run printed.
    """
    host = results.machine
    judged, counted = targets(results), checks(results)
    lines = [
        f"Measured {when:%Y-%m-%d %H:%M} UTC with `{command}`"
        + (f", at commit `{commit[:12]}`" if commit else "")
        + f", on {host['cpu_count']} CPUs ({host['cpu_model'] or 'unknown model'}), "
        f"Python {host['python']}.",
        "",
        "| figure | measured | target | verdict |",
        "| --- | --- | --- | --- |",
    ]
    for section, title, _figures in _sections(results):
        rows = [_target_row(target) for target in judged if target.section == section]
        rows += [_check_row(check) for check in counted if check.section == section]
        if rows:
            lines.append(f"| **{title}** | | | |")
            lines += [f"| {' | '.join(row)} |" for row in rows]
    lines += ["", "The whole report:", "", "```text", table(results), "```", ""]
    return "\n".join(lines)


Section = tuple[str, str, list[Row]]
"""Key (which targets and checks join it), title, the figure's own rows."""


def _sections(results: Results) -> Iterator[Section]:
    """The sections of the table in the issue's order, each figure per source."""
    sources = results.sources.items()
    yield from (_backfill_section(kind, figures) for kind, figures in sources)
    yield from (_floor_section(kind, figures) for kind, figures in sources)
    yield _naive_section(results)
    yield from (_nothing_changed_section(kind, figures, results) for kind, figures in sources)
    yield from (_daemon_section(kind, figures) for kind, figures in sources)
    yield from (_one_percent_section(kind, figures) for kind, figures in sources)
    yield _under_limit_section(results)
    yield _memory_section(results)
    yield _failures_section(results)
    yield from (_state_section(kind, figures) for kind, figures in sources)


def _backfill_section(kind: str, figures: SourceFigures) -> Section:
    filled = figures.backfill
    run = filled.run
    return (
        f"backfill:{kind}",
        f"1. Backfill, {kind}: {filled.corpus.n:,} tickets, rate limit off",
        [
            _row("wall time", _seconds(run.measured.wall_s)),
            _row("CPU per ticket (sync process)", _micros(filled.cpu_per_ticket_s)),
            _row("peak RSS (sync process)", _mib(run.measured.peak_rss_mib)),
            _row("emulator CPU during the run", _seconds(run.emulator_cpu_s)),
            # The emulator answers on its own core: the backfill can't outrun it, however
            # little the sync costs.
            _row(
                "the emulator's bound (tickets / its CPU)",
                f"{filled.corpus.n / max(run.emulator_cpu_s, 1e-9):,.0f} tickets/s",
            ),
            _row("requests (client / emulator)", _requests(run)),
            _row(
                "tickets per request",
                f"{run.count('pushed') / max(1, run.count('requests')):,.1f}",
            ),
        ],
    )


def _floor_section(kind: str, figures: SourceFigures) -> Section:
    return (
        f"floor:{kind}",
        f"2. Floor, {kind}: read and JSON-encode each ticket once (best of {REFERENCE_SAMPLES})",
        [
            _row("wall time", _seconds(figures.floor.measured.wall_s)),
            _row("CPU per ticket", _micros(figures.floor.cpu_per_ticket_s)),
            _row(
                "the backfill's CPU per ticket vs the floor",
                _with_unit(figures.backfill.cpu_per_ticket_s / figures.floor.cpu_per_ticket_s, "x"),
            ),
        ],
    )


def _naive_section(results: Results) -> Section:
    naive = results.naive
    return (
        "naive",
        f"3. Naive client: one PUT /tasks/{{uid}} per ticket, {naive.tickets:,} tickets "
        f"(best of {REFERENCE_SAMPLES})",
        [
            _row("tickets per second", f"{naive.tickets_per_s:,.0f}"),
            _row("emulator CPU per request", _micros(naive.emulator_cpu_s / naive.tickets)),
        ],
    )


def _nothing_changed_section(kind: str, figures: SourceFigures, results: Results) -> Section:
    unchanged, reread = figures.nothing_changed, figures.full_reread
    return (
        f"nothing:{kind}",
        f"4. Nothing changed, {kind}: the same pass again, python -m sync run --once",
        [
            _row("wall time", _seconds(unchanged.measured.wall_s)),
            _row(
                "the process vs the backfill's wall time",
                _with_unit(unchanged.measured.wall_s / figures.backfill.run.measured.wall_s, "%"),
            ),
            _row("the pass alone (its duration_s)", _seconds(unchanged.summary["duration_s"])),
            _row("tickets read again", f"{unchanged.count('pulled'):,}"),
            _row("requests (client / emulator)", _requests(unchanged)),
            _row("start-up alone (python -m sync --help)", _seconds(results.startup.wall_s)),
            _row("full re-read (--full): wall time", _seconds(reread.measured.wall_s)),
            _row("full re-read: requests (client / emulator)", _requests(reread)),
        ],
    )


def _daemon_section(kind: str, figures: SourceFigures) -> Section:
    idle = figures.daemon_idle
    return (
        f"daemon:{kind}",
        f"4b. A daemon's idle passes, {kind}: python -m sync run every {DAEMON_INTERVAL}, "
        f"passes 2-{len(idle.passes) + 1}",
        [
            _row("a pass (median duration_s)", _millis(idle.pass_s)),
            _row("CPU per interval (pass and idling)", _millis(idle.cpu_per_pass_s)),
            _row("tickets read per pass", f"{idle.total('pulled') / len(idle.passes):,.0f}"),
        ],
    )


def _state_section(kind: str, figures: SourceFigures) -> Section:
    size = figures.state_size
    if size is None:
        return (f"state:{kind}", f"9. State size, {kind}: on PostgreSQL, not measured", [])
    rows = [_row("bytes in use", f"{size.bytes:,}")]
    if size.by_name and size.tracked:
        # The tables and indexes worth a row; the rest (a page or two each) summed.
        large = {name: n for name, n in size.by_name.items() if n >= size.bytes / 50}
        rest = size.by_name.keys() - large.keys()
        rows += [
            _row(f"  {name}, per ticket", _with_unit(n / size.tracked, "B"))
            for name, n in large.items()
        ]
        if rest:
            others = sum(size.by_name[name] for name in rest)
            rows.append(
                _row(
                    f"  {len(rest)} other tables and indexes, per ticket",
                    _with_unit(others / size.tracked, "B"),
                )
            )
    return (
        f"state:{kind}",
        f"9. State size, {kind}: the SQLite file after the backfill (WAL folded in)",
        rows,
    )


def _one_percent_section(kind: str, figures: SourceFigures) -> Section:
    changed = figures.one_percent
    return (
        f"percent:{kind}",
        f"5. 1% changed, {kind}: {changed.changed:,} tickets edited, batch {changed.batch}",
        [_row("wall time", _seconds(changed.run.measured.wall_s))],
    )


def _under_limit_section(results: Results) -> Section:
    limited = results.under_limit
    run = limited.run
    return (
        "limit",
        f"6. Under the limit: emulator {limited.rate}/60 s, client {limited.rate}/min, "
        f"batch {limited.batch}",
        [
            _row("ceiling: rate x batch", f"{limited.ceiling_per_min:,} tasks/min"),
            _row(
                f"sustained: {limited.sustained.spans:,} spans of {limited.rate:,} batches"
                if limited.sustained.span_batches == limited.rate
                else "sustained: the whole run (under a minute's)",
                f"{limited.sustained_per_min:,.0f} tasks/min",
            ),
            _row("plain (pushed / wall time)", f"{limited.plain_per_min:,.0f} tasks/min"),
            _row(
                "pushed in wall time",
                f"{run.count('pushed'):,} in {_seconds(run.measured.wall_s)}",
            ),
            _row("requests (client / emulator)", _requests(run)),
        ],
    )


def _memory_section(results: Results) -> Section:
    return (
        "memory",
        "7. Memory: peak RSS of a jsonl backfill",
        [
            _row(f"{point.n:,} tickets", f"{_mib(point.peak_rss_mib)} ({_seconds(point.wall_s)})")
            for point in results.memory
        ],
    )


def _failures_section(results: Results) -> Section:
    failures = results.failures
    broken, fixed = failures.broken, failures.fixed
    return (
        "failures",
        f"8. Failed items, jsonl: {failures.corpus.n:,} tickets on a broken mapping, then its fix",
        [
            _row("broken pass: wall time", _seconds(broken.measured.wall_s)),
            _row("broken pass: peak RSS", _mib(broken.measured.peak_rss_mib)),
            _row("the fix's pass: wall time", _seconds(fixed.measured.wall_s)),
            _row("the fix's pass: peak RSS", _mib(fixed.measured.peak_rss_mib)),
            _row("the fix's pass: requests (client / emulator)", _requests(fixed)),
        ],
    )


def _row(label: str, value: str) -> Row:
    return (label, value, "", "")


def _target_row(target: Target) -> Row:
    sign = "≥" if target.comparison == ">=" else "≤"
    verdict = "PASS" if target.passed else "MISS"
    return (
        target.label,
        _with_unit(target.value, target.unit),
        f"{sign} {_with_unit(target.threshold, target.unit)}",
        verdict if target.judged else verdict.lower(),
    )


def _check_row(check: Check) -> Row:
    return (
        check.label,
        f"{check.actual:,}",
        f"= {check.expected:,}",
        "OK" if check.passed else "WRONG",
    )


def _with_unit(value: float, unit: Unit) -> str:
    if unit == "%":
        return f"{value * 100:.2f}%"
    if unit == "/s":
        return f"{value:,.0f}/s"
    if unit == "B":
        return f"{value:,.1f} B"
    if unit == "x":
        return f"{value:,.2f}x"
    return f"{value:,.0f}"


def _seconds(value: float) -> str:
    return f"{value:,.2f} s"


def _micros(seconds: float) -> str:
    return f"{seconds * 1e6:,.1f} µs"


def _millis(seconds: float) -> str:
    return f"{seconds * 1e3:,.1f} ms"


def _mib(value: float) -> str:
    return f"{value:,.1f} MiB"


def _requests(run: SyncRun) -> str:
    """The run's requests as the client counted them / as the emulator answered them."""
    return f"{run.count('requests'):,} / {run.traffic.api_requests:,}"
