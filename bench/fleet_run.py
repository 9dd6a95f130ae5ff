"""Running a fleet for `bench.fleet` and reading what it did, from outside the replicas.

Owns the fleet's files (one `sync.toml`, a jsonl file per connector), the
replicas' processes and logs, the emulator and the throwaway PostgreSQL
database, and the window's figures as one dict. Reads only what a replica
shows from outside: its JSON log lines, `/proc`, PostgreSQL's statistics of
the database, `/metrics` and the tickets that reach the emulator. Judges
nothing: the targets are `bench.fleet`'s.
"""

from __future__ import annotations

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
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx
import sqlalchemy as sa

from bench.emulator import TOKEN, EmulatorProcess
from bench.process import PYTHON, BenchError, compile_project, cpu_seconds, free_port
from bench.runner import toml_document
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
TASKS_POLL_S: Final = 5.0
"""How often the warm-up lists the emulator's tasks (every one of them: not every second)."""
SETTLE_S: Final = 300.0
"""How long past the warm-up (or a kill's deadline) the fleet may take to sync every ticket."""
SHUTDOWN_S: Final = 10
"""`daemon.shutdown_timeout` of the replicas; the bench kills one still running 5 s later."""

MAX_GAP_INTERVALS: Final = 1.5
"""Connectors that went longer than this many intervals without a pass are counted."""


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

    Each ticket's `updated_at` is fixed, in the past, the added ones after the
    first ones: a pass after the addition reads exactly the added tickets.
    """
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name in names:
        rows = [
            {
                "id": number,
                "subject": f"{name} ticket {number}",
                "updated_at": f"2020-01-01T{number // 60:02d}:{number % 60:02d}:00Z",
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
    path.write_text(toml_document(sections), encoding="utf-8")


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


def tasks_in_fragment(emulator: EmulatorProcess) -> int:
    """How many tasks the emulator holds (one per ticket pushed: a task's uid is the ticket's)."""
    answer = httpx.get(
        emulator.base_url + "/_emulator/tasks",
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=120.0,
    ).raise_for_status()
    count: int = answer.json()["total_count"]
    return count


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
    in_fragment = tasks_in_fragment(emulator)
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
        tickets={"expected": expected, "in_fragment": in_fragment},
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
    listed = -math.inf
    while time.monotonic() - began < setup.warmup + SETTLE_S:
        _check_alive(replicas)
        read_logs(replicas)
        if synced_at is None and time.monotonic() - listed >= TASKS_POLL_S:
            listed = time.monotonic()
            if tasks_in_fragment(emulator) >= expected:
                synced_at = time.time()
        if synced_at is not None and every_connector_passed(replicas, names, synced_at):
            return
        time.sleep(SAMPLE_S)
    raise BenchError(
        f"the warm-up did not end within {setup.warmup + SETTLE_S:.0f} s: "
        f"{tasks_in_fragment(emulator)} of {expected} tickets in Fragment; "
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
    """Kill -9 the victim, then add a ticket to every connector.

    Added after the kill, none can have reached Fragment through the victim:
    each connector's pushes it from a survivor, and that pass is the one
    `_recovery` waits for.
    """
    victim.cpu_end = cpu_seconds(victim.process.pid)
    victim.sample_rss()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(victim.process.pid, signal.SIGKILL)
    victim.killed_at = time.time()
    victim.process.wait()
    write_sources(directory / "sources", names, added=1)
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
    # A busy attempt is counted from its `connector_busy` line, not as a pass.
    outcomes.pop("busy", None)
    done = sum(outcomes.values())
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
