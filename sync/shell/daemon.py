"""The daemon: each connector on its own schedule, until SIGTERM, SIGINT or SIGHUP.

APScheduler (3.x) runs one job per connector, on its interval or cron line,
with jitter. A job never overlaps itself in this process (`max_instances=1`),
missed runs are coalesced into one, and across processes sharing the state
database the connector's lease lets exactly one of them run it: a replica
that finds it busy skips that turn. A stop request lets each pass finish its
batch in flight and checkpoint; the process exits 0 once they have, or once
`daemon.shutdown_timeout` is up (their state is at the last checkpoint
either way). A connector with `census` set takes its census in its own job,
after a pass, once the interval since the last one (kept in the state, so a
restart keeps the rhythm) is up: the two never overlap, and the census holds
the lease as a pass does. Sits on top of the engine; nothing imports it but the CLI.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

import structlog
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger

from sync.census import ConnectorCensus, census_due
from sync.config import Config, ScheduleSettings
from sync.cron import cron_trigger
from sync.fragment import FragmentClient
from sync.run import STOP_SIGNALS, ConnectorRun, RunOptions
from sync.shell.web import WebServer, start_daemon_web
from sync.state import UNREACHABLE, StateStore, utcnow

log = structlog.get_logger("sync.shell.daemon")
DEFAULT_INTERVAL = dt.timedelta(minutes=5)


def trigger_for(schedule: ScheduleSettings) -> BaseTrigger:
    """The APScheduler trigger for a connector's schedule (interval by default).

    Each fire is delayed by up to `jitter`, so connectors on one schedule spread out.
    """
    jitter = schedule.jitter.total_seconds()
    if schedule.cron is not None:
        return cron_trigger(schedule.cron, jitter)
    interval = schedule.interval or DEFAULT_INTERVAL
    return IntervalTrigger(seconds=interval.total_seconds(), jitter=jitter or None, timezone=dt.UTC)


class Daemon:
    """The scheduled connectors of one process, and the passes it has in flight."""

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
        # One client for every connector: Fragment's request budget is per token.
        self.client = FragmentClient(config.fragment, stop=stop)
        self.options = RunOptions(stop=stop, lease_ttl=config.locking.lease_ttl.total_seconds())
        # A thread per connector: one that hangs can't hold a turn another one needs.
        workers = ThreadPoolExecutor(max_workers=max(1, len(self.names)))
        self.scheduler = BackgroundScheduler(timezone=dt.UTC, executors={"default": workers})
        self.in_flight: dict[str, float] = {}
        self._lock = threading.Lock()

    def schedule(self) -> None:
        for name in self.names:
            schedule = self.config.connectors[name].settings.schedule
            interval = schedule.interval or DEFAULT_INTERVAL
            self.scheduler.add_job(
                self.run_connector,
                trigger_for(schedule),
                args=[name],
                id=name,
                name=f"sync {name}",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=max(1, int(interval.total_seconds())),
                next_run_time=dt.datetime.now(dt.UTC),
            )

    def run_connector(self, name: str) -> None:
        if self.stop.is_set():
            return
        with self._lock:
            self.in_flight[name] = time.monotonic()
        try:
            ConnectorRun(
                self.config.connectors[name],
                self.store,
                self.client,
                self.config.fragment.batch_size,
                self.options,
            ).execute()
            self.take_census_if_due(name)
        finally:
            with self._lock:
                self.in_flight.pop(name, None)

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

    def running(self) -> bool:
        return bool(self.scheduler.running) and not self.stop.is_set()

    def wait_for_passes(self, timeout: float) -> bool:
        """Wait until no pass is in flight; False if some still are after `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self.in_flight:
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
    log.info("daemon_started", connectors=daemon.names, owner=daemon.options.owner)
    while not stop.wait(1.0):
        pass
    bound = config.daemon.shutdown_timeout.total_seconds()
    log.info("daemon_stopping", detail="passes in flight finish their batch", bound_s=bound)
    daemon.scheduler.shutdown(wait=False)
    finished = daemon.wait_for_passes(bound)
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
