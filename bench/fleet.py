"""The fleet figure of issue 22: replicas sharing idle connectors on one PostgreSQL state.

    python -m bench.fleet [--connectors 300] [--replicas 3] [--interval 10] [--warmup 30]
        [--measure 60] [--lease-ttl 60] [--state-url URL] [--kill] [--find-max] [--json]

Optional, and not part of `python -m bench`, as `bench.census`. Writes N jsonl
connectors of `TICKETS` tickets each into one `sync.toml` (one `interval`, the
emulator as Fragment), starts R daemons on it (`python -m sync run`, each with
its own `/metrics` port through `SYNC_DAEMON__HTTP_PORT`, JSON logs to a file),
waits out the warm-up (every ticket in the emulator, every connector passed at
least once) and measures a window. Everything is read from outside the daemons,
so the figure keeps its meaning whatever they do inside: passes, busy attempts
and each replica's share from the `run_finished` and `connector_busy` lines of
their logs (not the `runs` table, which idle passes may stop writing); CPU from
`/proc/<pid>/stat`; commits from PostgreSQL's `pg_stat_database` for the
throwaway database; `/metrics` scraped after the window; tickets from the
emulator. `--kill` adds a ticket to every connector and kills -9 one replica
in the middle of the window, then reports how long every connector took to
pass again. Targets are OK or MISS (a benchmark, not a test); the exit code is
1 only when a count is wrong (a ticket lost, no pass seen, a replica that
never tried a connector), 2 when a step failed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import itertools
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx
import sqlalchemy as sa

from bench.emulator import TOKEN, EmulatorProcess
from bench.process import PYTHON, BenchError, compile_project, cpu_seconds, free_port
from bench.runner import _toml_document
from bench.state import state_database

TICKETS: Final = 3
"""Tickets in each connector's file: pushed during the warm-up, unchanged after."""
DEFAULT_SERVER: Final = os.environ.get(
    "SYNC_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
"""The PostgreSQL server (and a database to connect to) on which the throwaway one is made."""
SCRAPES: Final = 3
"""`/metrics` requests to each replica after the window; the worst is the figure."""
SCRAPE_TIMEOUT_S: Final = 120.0
SAMPLE_S: Final = 1.0
"""How often the window's loop reads the logs and samples RSS."""
SETTLE_S: Final = 300.0
"""How long past the warm-up (or a kill's deadline) the fleet may take to sync every ticket."""
SHUTDOWN_S: Final = 10
"""`daemon.shutdown_timeout` of the replicas; the bench kills one still running 5 s later."""

# The targets of issue 22.
PASSES_PER_INTERVAL: Final = (0.9, 1.1)
BUSY_SHARE: Final = 0.10
SHARE_BAND: Final = (0.6, 1.4)
"""A replica's share of the passes, times the replicas: 20-47% with three."""
MAX_GAP_INTERVALS: Final = 1.5
CPU_PER_PASS_MS: Final = 3.0
METRICS_S: Final = 1.0
RSS_GROWTH: Final = 0.10
SOAK_S: Final = 1800.0
"""A window at least this long judges RSS growth (the issue's soak); a shorter one shows it."""


@dataclass(frozen=True)
class FleetSetup:
    """What one fleet run is asked to be."""

    connectors: int
    replicas: int
    interval: float
    """Seconds: every connector's schedule."""
    warmup: float
    measure: float
    lease_ttl: float
    stagger: float = 0.0
    """Seconds between two replicas' starts (the issue saw together and 3 s apart differ)."""
    kill: bool = False


@dataclass(frozen=True)
class LogEvent:
    """A `run_finished` or `connector_busy` line of one replica's log."""

    at: float
    """Epoch seconds of the line's timestamp."""
    event: str
    connector: str
    outcome: str | None
    pushed: int = 0


class ReplicaLog:
    """One replica's JSON log, read as it grows: its pass events and its stray lines."""

    WATCHED: Final = frozenset({"run_finished", "connector_busy"})

    def __init__(self, path: Path) -> None:
        self.path = path
        self.events: list[LogEvent] = []
        self.strays: list[str] = []
        """Lines that are not one JSON object, or that carry a traceback."""
        self.errors: Counter[str] = Counter()
        """Error-level lines, by event."""
        self._offset = 0
        self._pending = b""

    def read(self) -> None:
        """Take in what was written since the last call (a half-written line waits)."""
        with self.path.open("rb") as log:
            log.seek(self._offset)
            chunk = log.read()
        self._offset += len(chunk)
        *lines, self._pending = (self._pending + chunk).split(b"\n")
        for line in lines:
            self._take(line.decode("utf-8", errors="replace"))

    def _take(self, line: str) -> None:
        if not line.strip():
            return
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        if not isinstance(entry, dict) or "Traceback" in line:
            self.strays.append(line[:500])
            return
        if entry.get("level") == "error":
            self.errors[str(entry.get("event"))] += 1
        if entry.get("event") in self.WATCHED:
            self.events.append(
                LogEvent(
                    at=dt.datetime.fromisoformat(entry["timestamp"]).timestamp(),
                    event=entry["event"],
                    connector=str(entry.get("connector") or entry.get("name")),
                    outcome=entry.get("outcome"),
                    pushed=int(entry.get("pushed") or 0),
                )
            )


@dataclass
class Replica:
    """One `python -m sync run` daemon of the fleet, its log and what was sampled of it."""

    index: int
    port: int
    process: subprocess.Popen[bytes]
    log: ReplicaLog
    stdout: Path
    cpu_start: float = math.nan
    cpu_end: float = math.nan
    rss_kib: list[int] = field(default_factory=list)
    killed_at: float | None = None

    @property
    def name(self) -> str:
        return f"r{self.index}"

    def alive(self) -> bool:
        return self.killed_at is None and self.process.poll() is None

    def sample_rss(self) -> None:
        if self.alive():
            rss = rss_kib(self.process.pid)
            if rss is not None:
                self.rss_kib.append(rss)


def rss_kib(pid: int) -> int | None:
    """Process `pid`'s resident set now, in KiB (Linux `/proc`); None when unreadable."""
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return None


# --- Setting the fleet up ------------------------------------------------------------


def connector_names(count: int) -> list[str]:
    return [f"c{index:05d}" for index in range(count)]


def write_sources(directory: Path, names: Sequence[str], added: int = 0) -> dict[str, Path]:
    """Each connector's file: `TICKETS` tickets (plus `added` later ones), replaced whole.

    Their `updated_at` are in the past, the added ones after the first ones,
    so a pass after the addition reads exactly the added tickets.
    """
    directory.mkdir(parents=True, exist_ok=True)
    base = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=2)
    paths = {}
    for name in names:
        rows = [
            {
                "id": number,
                "subject": f"{name} ticket {number}",
                "updated_at": (base + dt.timedelta(minutes=number)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
            for number in range(1, TICKETS + added + 1)
        ]
        path = directory / f"{name}.jsonl"
        partial = path.with_suffix(".partial")
        partial.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
        os.replace(partial, path)  # a pass reading it sees the old file or the new, whole
        paths[name] = path
    return paths


def write_config(
    path: Path, sources: dict[str, Path], fragment_url: str, state_url: str, setup: FleetSetup
) -> None:
    """One `sync.toml` for every replica; each gets its HTTP port from the environment."""
    sections: dict[str, dict[str, Any]] = {
        "fragment": {"url": fragment_url, "token": TOKEN, "requests_per_minute": 1_000_000},
        "state": {"url": state_url},
        "locking": {"lease_ttl": f"{setup.lease_ttl:g}s"},
        "logging": {"level": "info", "format": "json"},
        "daemon": {"shutdown_timeout": f"{SHUTDOWN_S}s"},
    }
    for name, source in sources.items():
        sections[f"connectors.{name}"] = {
            "kind": "jsonl",
            "path": str(source),
            "mapping": {"title": "{subject}"},
            "schedule": {"interval": f"{setup.interval:g}s"},
        }
    path.write_text(_toml_document(sections), encoding="utf-8")


def _environment(port: int) -> dict[str, str]:
    """The bench's environment without its `SYNC_*` variables, and this replica's port."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SYNC_")}
    environment["SYNC_DAEMON__HTTP_PORT"] = str(port)
    return environment


def upgrade_schema(config: Path, directory: Path) -> None:
    """Create the state's tables once, before the replicas race to."""
    done = subprocess.run(
        [PYTHON, "-m", "sync", "db", "upgrade", "--config", str(config)],
        cwd=directory, env=_environment(0), capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise BenchError(f"sync db upgrade exited with {done.returncode}:\n{done.stderr[-2000:]}")


def start_replica(index: int, config: Path, directory: Path) -> Replica:
    port = free_port()
    log, stdout = directory / f"replica{index}.log", directory / f"replica{index}.out"
    with log.open("wb") as err, stdout.open("wb") as out:
        # A session of its own: one killpg stops it whatever it started.
        process = subprocess.Popen(
            [PYTHON, "-m", "sync", "run", "--config", str(config)],
            cwd=directory, env=_environment(port), stdin=subprocess.DEVNULL,
            stdout=out, stderr=err, start_new_session=True,
        )  # fmt: skip
    return Replica(index, port, process, ReplicaLog(log), stdout)


def stop_replica(replica: Replica) -> None:
    """SIGTERM, as an operator stops it; SIGKILL if it is not gone after its shutdown time."""
    if replica.process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(replica.process.pid, signal.SIGTERM)
        try:
            replica.process.wait(timeout=SHUTDOWN_S + 5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(replica.process.pid, signal.SIGKILL)
            replica.process.wait()


@contextlib.contextmanager
def running(setup: FleetSetup, config: Path, directory: Path) -> Iterator[list[Replica]]:
    """The fleet's replicas, started `stagger` apart, stopped whatever happens."""
    replicas: list[Replica] = []
    try:
        for index in range(setup.replicas):
            if index and setup.stagger:
                time.sleep(setup.stagger)
            replicas.append(start_replica(index, config, directory))
        yield replicas
    finally:
        for replica in replicas:
            stop_replica(replica)


# --- Reading what the fleet did ------------------------------------------------------------


def tasks_in_fragment(emulator: EmulatorProcess) -> list[str]:
    """The uid of every task the emulator holds."""
    answer = httpx.get(
        emulator.base_url + "/_emulator/tasks",
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=120.0,
    ).raise_for_status()
    return [str(task["uid"]) for task in answer.json()["items"]]


class Commits:
    """`pg_stat_database`'s commit and rollback counts of one database, read from outside it."""

    def __init__(self, server: str, database: str) -> None:
        # Connected to the server's own database: the reads don't count in `database`.
        self._engine = sa.create_engine(server, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
        self._database = database

    def read(self) -> tuple[int, int]:
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.text(
                    "SELECT xact_commit, xact_rollback FROM pg_stat_database WHERE datname = :db"
                ),
                {"db": self._database},
            ).one()
        return int(row[0]), int(row[1])

    def close(self) -> None:
        self._engine.dispose()


def scrape_metrics(replicas: Sequence[Replica]) -> tuple[dict[str, float], int]:
    """The slowest of `SCRAPES` `/metrics` answers of each live replica, in seconds.

    And how many scrapes failed: an answer that is not 200, or none within
    `SCRAPE_TIMEOUT_S`, is one, and counts as that timeout in its replica's time.
    """
    worst, failed = {}, 0
    with httpx.Client(timeout=SCRAPE_TIMEOUT_S) as client:
        for replica in replicas:
            if not replica.alive():
                continue
            times = []
            for _ in range(SCRAPES):
                started = time.monotonic()
                try:
                    ok = client.get(f"http://127.0.0.1:{replica.port}/metrics").status_code == 200
                except httpx.HTTPError:
                    ok = False
                times.append(time.monotonic() - started if ok else SCRAPE_TIMEOUT_S)
                failed += not ok
            worst[replica.name] = round(max(times), 3)
    return worst, failed


def read_logs(replicas: Sequence[Replica]) -> None:
    for replica in replicas:
        replica.log.read()


def ok_passes(replicas: Sequence[Replica]) -> Iterator[tuple[str, LogEvent]]:
    """Every ok pass the replicas logged, with the replica's name."""
    for replica in replicas:
        for event in replica.log.events:
            if event.event == "run_finished" and event.outcome == "ok":
                yield replica.name, event


def every_connector_passed(replicas: Sequence[Replica], names: Sequence[str], since: float) -> bool:
    passed = {event.connector for _, event in ok_passes(replicas) if event.at >= since}
    return passed.issuperset(names)


# --- One run ---------------------------------------------------------------------------


def say(message: str) -> None:
    print(f"[fleet {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def measure_fleet(setup: FleetSetup, server: str, directory: Path) -> dict[str, Any]:
    """Set the fleet up in `directory`, measure its window, stop it; the figure as a dict.

    Raises `BenchError` when a step fails (a replica exits, the warm-up never
    syncs every ticket).
    """
    compile_project()
    names = connector_names(setup.connectors)
    sources = write_sources(directory / "sources", names)
    config = directory / "sync.toml"
    with (
        EmulatorProcess(directory / "emulator.log") as emulator,
        state_database(server, directory, "fragment_bench_fleet") as state_url,
    ):
        write_config(config, sources, emulator.api_url, state_url, setup)
        upgrade_schema(config, directory)
        commits = Commits(server, sa.engine.make_url(state_url).database or "")
        try:
            say(
                f"{setup.connectors} connectors, {setup.replicas} replicas, "
                f"interval {setup.interval:g} s: warming up"
            )
            with running(setup, config, directory) as replicas:
                figure = _observe(setup, directory, names, emulator, commits, replicas)
            read_logs(replicas)  # the lines written while stopping
            figure["strays"] = {r.name: len(r.log.strays) + _stdout_lines(r) for r in replicas}
            figure["stray_examples"] = [line for r in replicas for line in r.log.strays][:5]
        finally:
            commits.close()
    return figure


def _stdout_lines(replica: Replica) -> int:
    """Lines the replica wrote on stdout: a daemon writes none, its logs go to stderr."""
    return len(replica.stdout.read_text(encoding="utf-8", errors="replace").splitlines())


def _observe(
    setup: FleetSetup,
    directory: Path,
    names: list[str],
    emulator: EmulatorProcess,
    commits: Commits,
    replicas: list[Replica],
) -> dict[str, Any]:
    """The warm-up, the window (and the kill), the scrapes: everything but the stray lines."""
    expected = setup.connectors * TICKETS
    _warm_up(setup, names, emulator, replicas, expected)
    say(f"measuring {setup.measure:g} s")
    started = time.time()
    commits_start = commits.read()
    for replica in replicas:
        replica.cpu_start = cpu_seconds(replica.process.pid)
        replica.sample_rss()
    kill_at = started + setup.measure / 2 if setup.kill else None
    ends = started + setup.measure
    while (now := time.time()) < ends:
        time.sleep(min(SAMPLE_S, max(0.0, ends - now)))
        _check_alive(replicas)
        read_logs(replicas)
        for replica in replicas:
            replica.sample_rss()
        if kill_at is not None and time.time() >= kill_at and replicas[-1].killed_at is None:
            expected += setup.connectors
            _kill(replicas[-1], directory, names)
    ended = time.time()
    commits_end = commits.read()
    for replica in replicas:
        if replica.alive():
            replica.cpu_end = cpu_seconds(replica.process.pid)
            replica.sample_rss()
    read_logs(replicas)
    recovered = None
    if setup.kill:
        assert replicas[-1].killed_at is not None
        recovered = _recovery(setup, names, replicas, replicas[-1].killed_at)
    say("scraping /metrics")
    metrics, metrics_failed = scrape_metrics(replicas)
    uids = tasks_in_fragment(emulator)
    read_logs(replicas)
    figure = window_figures(setup, names, replicas, started, ended)
    passes = figure["passes"]["ok"]
    cpu = sum(r.cpu_end - r.cpu_start for r in replicas)
    figure.update(
        cpu_s=round(cpu, 3),
        cpu_ms_per_pass=round(cpu * 1000 / passes, 2) if passes else None,
        commits_per_pass=round((commits_end[0] - commits_start[0]) / passes, 2) if passes else None,
        rollbacks_per_pass=round((commits_end[1] - commits_start[1]) / passes, 2)
        if passes
        else None,
        metrics_s=metrics,
        metrics_failed=metrics_failed,
        rss_mib={r.name: _rss_figure(r.rss_kib) for r in replicas},
        tickets={"expected": expected, "in_fragment": len(uids), "distinct": len(set(uids))},
        kill=recovered,
    )
    return figure


def _warm_up(
    setup: FleetSetup,
    names: list[str],
    emulator: EmulatorProcess,
    replicas: list[Replica],
    expected: int,
) -> None:
    """Wait the warm-up out, and then until every ticket is in Fragment and each connector passed.

    The passes counted are those ending once the last ticket arrived: a
    connector that only failed before has not passed yet.
    """
    began = time.monotonic()
    time.sleep(setup.warmup)
    synced_at: float | None = None
    while time.monotonic() - began < setup.warmup + SETTLE_S:
        _check_alive(replicas)
        read_logs(replicas)
        if synced_at is None and len(tasks_in_fragment(emulator)) >= expected:
            synced_at = time.time()
        if synced_at is not None and every_connector_passed(replicas, names, synced_at):
            return
        time.sleep(SAMPLE_S)
    raise BenchError(
        f"the warm-up did not end within {setup.warmup + SETTLE_S:.0f} s: "
        f"{len(tasks_in_fragment(emulator))} of {expected} tickets in Fragment; "
        f"see {replicas[0].log.path.parent}"
    )


def _check_alive(replicas: Sequence[Replica]) -> None:
    for replica in replicas:
        if replica.killed_at is None and replica.process.poll() is not None:
            raise BenchError(
                f"replica {replica.name} exited with {replica.process.returncode}; "
                f"see {replica.log.path}"
            )


def _kill(victim: Replica, directory: Path, names: list[str]) -> None:
    """A ticket more in every connector, then kill -9 the victim: passes were in flight."""
    write_sources(directory / "sources", names, added=1)
    victim.cpu_end = cpu_seconds(victim.process.pid)
    victim.sample_rss()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(victim.process.pid, signal.SIGKILL)
    victim.killed_at = time.time()
    victim.process.wait()
    say(f"killed {victim.name} (kill -9)")


def _recovery(
    setup: FleetSetup, names: list[str], replicas: list[Replica], killed_at: float
) -> dict[str, Any]:
    """Seconds from the kill until each connector pushed its added ticket, and the worst.

    Waits past the window for connectors not yet passed, up to twice their
    expected bound plus `SETTLE_S`; the unit is lease TTL plus one interval.
    """
    bound = setup.lease_ttl + setup.interval
    deadline = killed_at + 2 * bound + SETTLE_S
    survivors = replicas[:-1]
    while True:
        read_logs(survivors)
        first: dict[str, float] = {}
        for _, event in ok_passes(survivors):
            if event.at >= killed_at and event.pushed > 0:
                first[event.connector] = min(first.get(event.connector, math.inf), event.at)
        if len(first) == len(names) or time.time() > deadline:
            break
        time.sleep(SAMPLE_S)
    delays = sorted(at - killed_at for at in first.values())
    last_on_victim = _last_passed_on(replicas, killed_at, replicas[-1].name)
    return {
        "connectors_passed_again": len(first),
        "connectors": len(names),
        "last_passed_on_victim": last_on_victim,
        "bound_s": bound,
        "max_s": round(delays[-1], 1) if delays else None,
        "median_s": round(statistics.median(delays), 1) if delays else None,
        "max_bounds": round(delays[-1] / bound, 2) if len(first) == len(names) else None,
    }


def _last_passed_on(replicas: Sequence[Replica], before: float, name: str) -> int:
    """Connectors whose last ok pass before `before` ran on replica `name`."""
    last: dict[str, tuple[float, str]] = {}
    for replica, event in ok_passes(replicas):
        if event.at < before and event.at > last.get(event.connector, (-math.inf, ""))[0]:
            last[event.connector] = (event.at, replica)
    return sum(1 for _, replica in last.values() if replica == name)


def _rss_figure(samples: list[int]) -> dict[str, float] | None:
    if not samples:
        return None
    return {
        "start": round(samples[0] / 1024, 1),
        "end": round(samples[-1] / 1024, 1),
        "max": round(max(samples) / 1024, 1),
        "growth": round(samples[-1] / samples[0] - 1, 3),
    }


def window_figures(
    setup: FleetSetup, names: list[str], replicas: Sequence[Replica], started: float, ended: float
) -> dict[str, Any]:
    """Passes, busy attempts, shares and gaps of the window [`started`, `ended`] from the logs."""
    window = ended - started
    intervals = window / setup.interval
    in_window = [
        (replica.name, event)
        for replica in replicas
        for event in replica.log.events
        if started <= event.at <= ended
    ]
    outcomes = Counter(e.outcome for _, e in in_window if e.event == "run_finished")
    busy = sum(1 for _, e in in_window if e.event == "connector_busy")
    times: dict[str, list[float]] = {name: [] for name in names}
    by_replica = Counter({replica.name: 0 for replica in replicas})
    attempts = Counter({replica.name: 0 for replica in replicas})
    for replica, event in in_window:
        attempts[replica] += event.event == "run_finished"
        if event.event == "run_finished" and event.outcome == "ok":
            times.setdefault(event.connector, []).append(event.at)
            by_replica[replica] += 1
    ok = sum(by_replica.values())
    rates = [len(at) / intervals for at in times.values()]
    gaps = [
        max(b - a for a, b in itertools.pairwise(bounds))
        for bounds in ([started, *sorted(at), ended] for at in times.values())
    ]
    done = sum(n for outcome, n in outcomes.items() if outcome != "busy")
    return {
        "window_s": round(window, 1),
        "passes": {"ok": ok, **{str(k): v for k, v in outcomes.items() if k != "ok"}},
        "busy_attempts": busy,
        "busy_share": round(busy / done, 3) if done else None,
        "passes_per_interval": {
            "mean": round(statistics.fmean(rates), 3),
            "min": round(min(rates), 3),
            "max": round(max(rates), 3),
            "stdev": round(statistics.pstdev(rates), 3),
        },
        "replica_share": {r: round(n / ok, 3) if ok else 0.0 for r, n in by_replica.items()},
        "replica_attempts": dict(attempts),
        "max_gap_intervals": round(max(gaps) / setup.interval, 2),
        "connectors_over_gap": sum(1 for gap in gaps if gap > MAX_GAP_INTERVALS * setup.interval),
        "errors": dict(sum((r.log.errors for r in replicas), Counter())),
    }


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
    rss = [r["growth"] for r in figure["rss_mib"].values() if r is not None]
    found = [
        Target(
            "passes_per_interval", "ok passes / connector / interval (mean)", rate["mean"],
            *PASSES_PER_INTERVAL, "",
            note=f"min {rate['min']:.2f}, max {rate['max']:.2f}, sd {rate['stdev']:.2f}",
        ),
        Target("busy_share", "busy attempts / passes", figure["busy_share"], None, BUSY_SHARE,
               "%", note=f"{figure['busy_attempts']:,} busy"),
        *(
            Target(f"replica_share.{name}", f"replica {name}'s share of ok passes", share,
                   low_share, high_share, "%", judged=quiet)
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
            Target("kill_recovery", "after kill -9: every connector passed again",
                   kill["max_bounds"], None, 1.0, " x (TTL + interval)",
                   note=f"worst {kill['max_s']} s, median {kill['median_s']} s, "
                        f"{kill['connectors_passed_again']} of {kill['connectors']}")
        )  # fmt: skip
    return found


def checks(setup: FleetSetup, figure: dict[str, Any]) -> dict[str, bool]:
    """Counts that must hold whatever the machine: every ticket once, every replica at work."""
    tickets = figure["tickets"]
    return {
        "every_ticket_in_fragment_once": tickets["in_fragment"] == tickets["expected"]
        and tickets["distinct"] == tickets["expected"],
        "passes_observed": figure["passes"]["ok"] > 0,
        # Each one tried its connectors (a busy attempt is one): none hung or idled out.
        "every_replica_attempted": len(figure["replica_attempts"]) == setup.replicas
        and all(n > 0 for n in figure["replica_attempts"].values()),
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
        lines.append(f"error lines: {figure['errors']}")
    for example in figure["stray_examples"]:
        lines.append(f"stray line: {example[:200]}")
    tickets = figure["tickets"]
    lines.append(
        f"tickets in Fragment: {tickets['in_fragment']:,} ({tickets['distinct']:,} distinct) "
        f"of {tickets['expected']:,}"
    )
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
