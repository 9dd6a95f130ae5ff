"""The daemon: each connector on its own schedule, until SIGTERM or SIGINT.

APScheduler (3.x) runs one job per connector, on its interval or cron line,
with jitter. A job never overlaps itself (`max_instances=1`) and missed runs
are coalesced into one. A stop request lets each running pass finish its
batch in flight and checkpoint, then the process exits 0. Sits on top of the
engine; nothing imports it but the CLI.
"""

from __future__ import annotations

import datetime as dt
import signal
import threading
from collections.abc import Sequence
from typing import Any

import structlog
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from sync.config import Config, ScheduleSettings
from sync.fragment import FragmentClient
from sync.run import ConnectorRun, RunOptions
from sync.state import StateStore

log = structlog.get_logger("sync.scheduler")
DEFAULT_INTERVAL = dt.timedelta(minutes=5)


def trigger_for(schedule: ScheduleSettings) -> Any:
    """The APScheduler trigger for a connector's schedule (interval by default)."""
    jitter = int(schedule.jitter.total_seconds()) or None
    if schedule.cron is not None:
        return CronTrigger.from_crontab(schedule.cron, timezone=dt.UTC)
    interval = schedule.interval or DEFAULT_INTERVAL
    return IntervalTrigger(seconds=interval.total_seconds(), jitter=jitter, timezone=dt.UTC)


def run_daemon(
    config: Config, store: StateStore, names: Sequence[str] | None, stop: threading.Event
) -> int:
    """Run the scheduled connectors until a stop signal; returns the exit code (0)."""
    selected = (
        list(names) if names else [n for n, c in config.connectors.items() if c.settings.enabled]
    )
    # One client for every connector: Fragment's request budget is per token, not per connector.
    client = FragmentClient(config.fragment, stop=stop)
    options = RunOptions(stop=stop)
    scheduler = BackgroundScheduler(timezone=dt.UTC)
    for name in selected:
        connector = config.connectors[name]

        def job(connector_name: str = name) -> None:
            ConnectorRun(
                config.connectors[connector_name],
                store,
                client,
                config.fragment.batch_size,
                options,
            ).execute()

        interval = connector.settings.schedule.interval or DEFAULT_INTERVAL
        scheduler.add_job(
            job,
            trigger_for(connector.settings.schedule),
            id=name,
            name=f"sync {name}",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(1, int(interval.total_seconds())),
            next_run_time=dt.datetime.now(dt.UTC),
        )

    def request_stop(signum: int, _frame: Any) -> None:
        log.warning("stop_requested", signal=signal.Signals(signum).name)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, request_stop)
    scheduler.start()
    log.info("daemon_started", connectors=selected)
    try:
        while not stop.wait(1.0):
            pass
    finally:
        log.info("daemon_stopping", detail="waiting for passes in flight to checkpoint")
        scheduler.shutdown(wait=True)
        client.close()
        store.close()
    log.info("daemon_stopped")
    return 0
