"""The daemon: the connectors' passes as they fall due, until SIGTERM, SIGINT or SIGHUP.

Replicas sharing one state database divide the work through it. Each
connector's row there says when its next pass is due and who holds it
(`sync.state.claims`). A replica's one scheduler loop, an APScheduler job
ticking every second at a random moment of it (so replicas share), claims as
many due connectors as it has free workers (`daemon.workers`), earliest due
first. Each worker runs its claimed pass, keeping the claim (the connector's
lease) renewed, then the census if one is due (`census`, its rhythm kept in
the state), and releases the claim with the connector's next due time: its
`interval` from when this one was due (or started, when it started late),
moved by up to half of `jitter` either way, or its `cron` line's next fire,
up to `jitter` later. So no
connector runs in two replicas at once or twice in one interval, and the one
due longest goes first. A replica that dies leaves its claims to expire
(`locking.lease_ttl`); one asked to stop claims nothing more, hands back the
claims it has not started, and lets each pass finish its batch in flight and
checkpoint. The process exits 0 once they have, or once
`daemon.shutdown_timeout` is up (their state is at the last checkpoint
either way). Sits on top of the engine; nothing imports it but the CLI.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import sqlalchemy as sa
import structlog
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from sync.census import ConnectorCensus, census_due
from sync.config import Config, ScheduleSettings
from sync.cron import cron_trigger
from sync.errors import first_line
from sync.fragment import FragmentClient
from sync.run import RUN_OBSERVERS, STOP_SIGNALS, ConnectorRun, RunOptions, RunSummary
from sync.shell.web import WebServer, start_daemon_web
from sync.state import UNREACHABLE, StateStore, utcnow
from sync.state.claims import Claim, Claims

log = structlog.get_logger("sync.shell.daemon")
DEFAULT_INTERVAL = dt.timedelta(minutes=5)
TICK = 1.0
"""Seconds between the scheduler loop's turns, each at a random moment within its second
(a worker coming free takes a turn at once when connectors are waiting)."""
LATE_SHARE = 0.1
"""A pass that started later than this share of its interval (and two turns) after it was
due sets its next due time from its start, not from when it was due (`next_due`)."""


def next_due(
    schedule: ScheduleSettings,
    due: dt.datetime,
    now: dt.datetime,
    started: dt.datetime | None = None,
) -> dt.datetime:
    """When the pass after the one due at `due` is due, as of `now` (it has just ended).

    An interval counts from `due`, so passes keep their rhythm through the
    short waits for a worker, moved up to half of `jitter` either way: the
    moves add up to nothing on average, and connectors due at once (started
    together) drift apart. A pass that `started` later than `LATE_SHARE` of
    its interval after `due` counts from its start instead: a replica that fell
    behind (10,000 connectors due at once as it started) ran the connectors it
    reached last a second time within the interval as it caught up (1.28
    passes an interval). One that ran past its next turn is due at once. A
    cron line's next fire after `now`, up to `jitter` later.
    """
    jitter = schedule.spread.total_seconds()
    if schedule.cron is not None:
        after = now.replace(microsecond=0) + dt.timedelta(seconds=1)
        fire = cron_trigger(schedule.cron, jitter).get_next_fire_time(None, after)
        assert fire is not None  # a line the configuration accepted always fires again
        return fire
    interval = schedule.interval or DEFAULT_INTERVAL
    late = max(interval * LATE_SHARE, dt.timedelta(seconds=2 * TICK))
    anchor = due if started is None or started - due <= late else started
    moved = dt.timedelta(seconds=random.uniform(-jitter / 2, jitter / 2))
    return max(anchor + interval + moved, now)


def latest_due(schedule: ScheduleSettings, now: dt.datetime) -> dt.datetime:
    """The latest a pass of `schedule` can be due, as of `now`: a due time kept from a
    longer schedule is brought forward to it."""
    if schedule.cron is None:
        return now + (schedule.interval or DEFAULT_INTERVAL) + schedule.spread / 2
    return next_due(schedule, now, now) + schedule.spread


class Daemon:
    """One replica: its scheduler loop, its workers, and the claims they hold."""

    def __init__(
        self, config: Config, store: StateStore, names: Sequence[str] | None, stop: threading.Event
    ) -> None:
        self.config = config
        self.store = store
        self.stop = stop
        self.names = (
            list(names)
            if names
            else [n for n, c in config.connectors.items() if c.settings.enabled]
        )
        self.by_namespace = {config.connectors[n].uid_namespace: n for n in self.names}
        # One client for every connector: Fragment's request budget is per token.
        self.client = FragmentClient(config.fragment, stop=stop)
        ttl = config.locking.lease_ttl.total_seconds()
        self.options = RunOptions(stop=stop, lease_ttl=ttl, lease_held=True)
        self.claims = Claims(store, self.options.owner, ttl, self.by_namespace)
        self.workers = config.workers
        self.pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="pass")
        self.scheduler = BackgroundScheduler(timezone=dt.UTC)
        self.held: set[str] = set()
        """The connectors (uid namespaces) whose claims this replica holds."""
        self.in_flight: dict[str, float] = {}
        """The connectors whose pass is running, since when (monotonic)."""
        self._lock = threading.Lock()
        self._claiming = threading.Lock()
        self._backlog = False  # the last turn found more due than workers free
        self._claims_failing = False

    def schedule(self) -> None:
        """Give every connector its row, and start the scheduler loop's job at once."""
        now = utcnow()
        horizons = {
            namespace: latest_due(self.config.connectors[name].settings.schedule, now)
            for namespace, name in self.by_namespace.items()
        }
        self.claims.register(horizons)
        self.scheduler.add_job(
            self.tick,
            # Each turn at a random moment of its second: replicas that kept one phase
            # had the earliest of them claim nearly every connector as it fell due.
            IntervalTrigger(seconds=TICK, jitter=TICK, timezone=dt.UTC),
            id="claims",
            name="claim the connectors due",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,  # a late turn still runs (and says nothing)
            next_run_time=dt.datetime.now(dt.UTC),
        )

    # The scheduler loop

    def tick(self) -> None:
        """One turn: claim as many due connectors as workers are free, and start them.

        A turn already under way (a worker's) makes this one needless: it returns.
        """
        if not self._claiming.acquire(blocking=False):
            return
        try:
            if self.stop.is_set():
                return
            free = self._free()
            try:
                claims = self.claims.take_due(free)
            except sa.exc.SQLAlchemyError as exc:
                self._claiming_failed(exc)
                return
            if self._claims_failing:
                self._claims_failing = False
                log.info("claims_resumed")
            self._backlog = free > 0 and len(claims) == free
            with self._lock:
                self.held.update(claim.connector for claim in claims)
            for claim in claims:
                try:
                    self.pool.submit(self.work, claim)
                except RuntimeError:  # the pool shut down while this turn claimed: a stop
                    self._release(claim, None)  # handed back, due as it was
        finally:
            self._claiming.release()

    def quiesce(self, timeout: float) -> None:
        """Wait, up to `timeout`, for a turn claiming now to start what it claimed; later
        turns claim nothing (the stop is set). The pool can then shut down."""
        if self._claiming.acquire(timeout=timeout):
            self._claiming.release()

    def _claiming_failed(self, exc: Exception) -> None:
        """Say once that claiming fails, however many turns it goes on failing."""
        if not self._claims_failing:
            self._claims_failing = True
            log.error(
                "claims_failed",
                error=f"the state database is unreachable: {first_line(exc)}",
                detail="no pass starts until it answers; trying again every second",
            )

    # The workers

    def work(self, claim: Claim) -> None:
        """Run a claimed connector's turn, then release the claim with its next due time.

        Raises nothing: whatever escapes the pass is logged in one line and counted.
        """
        name = self.by_namespace[claim.connector]
        due: dt.datetime | None = None  # handed back as it was: due still
        try:
            if not self.stop.is_set():
                due = self.run_claimed(name, claim)
        except Exception as exc:
            self._pass_crashed(name, exc)
            due = next_due(self.config.connectors[name].settings.schedule, claim.due_at, utcnow())
        finally:
            self._release(claim, due)
        if self._backlog and self._free() >= max(1, self.workers // 2):
            # Connectors are waiting: claim them now, half a pool at a time. A worker's
            # future keeps what it raises unseen, so a bug in the turn is logged here.
            try:
                self.tick()
            except Exception:
                log.exception("claiming_crashed")

    def _free(self) -> int:
        with self._lock:
            return self.workers - len(self.held)

    def run_claimed(self, name: str, claim: Claim) -> dt.datetime | None:
        """The connector's pass and census, if due; returns when the next pass is due
        (None: at once, a stop request cut this one short)."""
        with self._lock:
            self.in_flight[name] = time.monotonic()
        started = utcnow()
        try:
            ConnectorRun(
                self.config.connectors[name],
                self.store,
                self.client,
                self.config.fragment.batch_size,
                self.options,
            ).execute()
            if self.stop.is_set():
                return None  # stopped part-way: another replica resumes it at once
            self.take_census_if_due(name)
        finally:
            with self._lock:
                self.in_flight.pop(name, None)
        schedule = self.config.connectors[name].settings.schedule
        return next_due(schedule, claim.due_at, utcnow(), started)

    def take_census_if_due(self, name: str) -> None:
        """The connector's census, when its `census` interval is up since the last one."""
        connector = self.config.connectors[name]
        interval = connector.settings.census
        if interval is None or self.stop.is_set():
            return
        try:
            last = self.store.last_census(connector.uid_namespace)
        except UNREACHABLE:
            return  # the pass has said so already
        if census_due(interval, last, utcnow()):
            batch_size = self.config.fragment.batch_size
            ConnectorCensus(connector, self.store, self.client, batch_size, self.options).execute()

    def _release(self, claim: Claim, due: dt.datetime | None) -> None:
        try:
            self.claims.release(claim.connector, due)
        except sa.exc.SQLAlchemyError as exc:
            log.warning(
                "claim_not_released",
                connector=self.by_namespace[claim.connector],
                error=first_line(exc),
                detail="it expires within locking.lease_ttl, and another pass takes it then",
            )
        finally:
            with self._lock:
                self.held.discard(claim.connector)

    def _pass_crashed(self, name: str, exc: Exception) -> None:
        """One line for what escaped a pass, counted as a failed pass."""
        if isinstance(exc, sa.exc.SQLAlchemyError):
            error = f"the state database failed: {first_line(exc)}"
            log.error("pass_crashed", connector=name, error=error)
        else:  # a bug: its trace in the same line
            error = f"internal error: {type(exc).__name__}: {first_line(exc)}"
            log.exception("pass_crashed", connector=name, error=error)
        summary = RunSummary(
            name=name, ok=False, pulled=0, pushed=0, unchanged=0, failed=0,
            watermark=None, duration_s=0.0, error=error, outcome="failed",
        )  # fmt: skip
        for observer in RUN_OBSERVERS:
            observer.finished(summary, "failed")

    # Stopping

    def running(self) -> bool:
        return bool(self.scheduler.running) and not self.stop.is_set()

    def wait_for_passes(self, timeout: float) -> bool:
        """Wait until this replica holds no claim; False if it still does after `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self.held:
                    return True
            time.sleep(0.1)
        return False


def run_daemon(
    config: Config, store: StateStore, names: Sequence[str] | None, stop: threading.Event
) -> int:
    """Run the scheduled connectors until a stop signal; returns the exit code (0)."""
    daemon = Daemon(config, store, names, stop)

    def request_stop(signum: int, _frame: Any) -> None:
        log.warning("stop_requested", signal=signal.Signals(signum).name)
        stop.set()

    for sig in STOP_SIGNALS:
        signal.signal(sig, request_stop)
    # The endpoint first: a port in use fails the start, and /readyz says 503 until
    # the scheduler runs; the metrics see the first passes too.
    web = _start_web(config, store, daemon)
    daemon.schedule()
    daemon.scheduler.start()
    log.info(
        "daemon_started", connectors=daemon.names, owner=daemon.options.owner,
        workers=daemon.workers,
    )  # fmt: skip
    while not stop.wait(1.0):
        pass
    bound = config.daemon.shutdown_timeout.total_seconds()
    log.info("daemon_stopping", detail="passes in flight finish their batch", bound_s=bound)
    daemon.scheduler.shutdown(wait=False)
    daemon.quiesce(bound)
    finished = daemon.wait_for_passes(bound)
    # Turns queued and not started run now and see the stop: they hand their claims back.
    daemon.pool.shutdown(wait=False)
    if web is not None:
        web.stop()
    daemon.client.close()
    if not finished:
        log.warning(
            "daemon_stopped_with_passes_in_flight",
            connectors=sorted(daemon.in_flight),
            detail="their state is at their last checkpoint; the next pass resumes there",
        )
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)  # worker threads still waiting on the network would hold the exit
    store.close()
    log.info("daemon_stopped")
    return 0


def _start_web(config: Config, store: StateStore, daemon: Daemon) -> WebServer | None:
    """The /healthz, /readyz, /metrics and status page endpoint, unless turned off."""
    if config.daemon.http_port == 0:
        return None
    return start_daemon_web(config, store, daemon)
