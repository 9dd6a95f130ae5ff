"""Prometheus metrics of the daemon: what the passes did, what the HTTP servers answered.

`Metrics` owns a registry of its own (never the process-wide default, so each
test can make a fresh one) and is both a `sync.run.RunObserver` and a
`sync_http.session.HttpObserver`: `install()` registers it with both.
Counters come from the observer calls; the watermark lag, the failed items,
the task counts and the last ok pass (by any replica) are read from the state
store at scrape time, so they are fresh even when no pass has run here for an
hour. They come from the rows the passes keep up to date
(`sync.shell.status.collect`): a scrape runs the same few queries for ten
connectors or ten thousand. It also keeps
which passes are in flight, for `/readyz` to tell a stuck one. Serving the
registry over HTTP is `sync.shell.web`'s job.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import sqlalchemy as sa
import structlog
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from sync import census
from sync import run as run_loop
from sync.census import CensusSummary
from sync.config import Config
from sync.run import RunSummary
from sync.shell.status import collect
from sync.state import StateError, StateStore
from sync_http import session

log = structlog.get_logger("sync.shell.metrics")

PREFIX = "fragment_sync"
OUTCOMES = ("ok", "failed", "interrupted", "busy", "lease_lost")
"""Outcomes whose series exist from the start (at 0), so `increase()` sees the first one."""
DURATION_BUCKETS = (0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600)
"""Seconds: a quiet incremental pass takes well under a second, a backfill up to an hour."""
NOT_RUN = frozenset({"busy"})
"""Outcomes of passes that never started (another process held the lease): counted, no more."""


@dataclass(frozen=True)
class PassInFlight:
    """A pass that has started and not finished yet."""

    name: str
    run_id: str | None
    started: float
    """`time.monotonic()` when it started."""

    def running_s(self, now: float | None = None) -> float:
        """Seconds since it started."""
        return (time.monotonic() if now is None else now) - self.started


class Metrics:
    """The daemon's metrics, fed by the run loop and the HTTP sessions once installed.

    `config` names the connectors (their series exist from the start, at 0)
    and, with `store`, lets each scrape read the state: watermark lag, failed
    items, task counts, and `fragment_sync_state_up`.
    """

    def __init__(self, config: Config, store: StateStore) -> None:
        # No `_created` series: at 10,000 connectors they were 90,000 of a scrape's 230,000
        # lines, and Prometheus ignores them unless a feature flag asks for them.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        by_connector = ["connector"]
        self.pulled = Counter(
            f"{PREFIX}_tickets_pulled",
            "Tickets read from the source.",
            by_connector,
            registry=registry,
        )
        self.pushed = Counter(
            f"{PREFIX}_tasks_pushed",
            "Tasks Fragment acknowledged.",
            by_connector,
            registry=registry,
        )
        self.unchanged = Counter(
            f"{PREFIX}_tickets_unchanged",
            "Tickets read whose task was already up to date in Fragment.",
            by_connector,
            registry=registry,
        )
        self.failed = Counter(
            f"{PREFIX}_tickets_failed",
            "Tickets set aside as failed items (bad record, mapping, rejected by Fragment).",
            by_connector,
            registry=registry,
        )
        self.runs = Counter(
            f"{PREFIX}_runs",
            "Passes finished, by outcome.",
            ["connector", "outcome"],
            registry=registry,
        )
        self.duration = Histogram(
            f"{PREFIX}_run_duration_seconds",
            "How long each pass took.",
            by_connector,
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.last_success = Gauge(
            f"{PREFIX}_last_success_timestamp_seconds",
            "When the connector's last pass that ended ok finished (unix time).",
            by_connector,
            registry=registry,
        )
        self.running = Gauge(
            f"{PREFIX}_runs_in_progress",
            "Passes of the connector running now (0 or 1).",
            by_connector,
            registry=registry,
        )
        self.requests = Counter(
            f"{PREFIX}_http_requests",
            "HTTP answers, by server ('fragment' or the connector) and status code "
            "(or exception name when there was no answer).",
            ["server", "answer"],
            registry=registry,
        )
        self.retries = Counter(
            f"{PREFIX}_http_retries",
            "Requests sent again, by server and reason (rate_limited, retry).",
            ["server", "reason"],
            registry=registry,
        )
        self.wait_seconds = Counter(
            f"{PREFIX}_http_wait_seconds",
            "Seconds spent waiting before sending again (rate limits and backoff).",
            ["server", "reason"],
            registry=registry,
        )
        self.censuses = Counter(
            f"{PREFIX}_censuses",
            "Censuses finished, by outcome (refused: over census_max_share, nothing archived).",
            ["connector", "outcome"],
            registry=registry,
        )
        self.census_archived = Counter(
            f"{PREFIX}_census_archived_tasks",
            "Tasks a census archived: their tickets were gone from the source's scope.",
            by_connector,
            registry=registry,
        )
        self.census_refused = Gauge(
            f"{PREFIX}_census_refused",
            "1 while the connector's last census was refused: it found more than "
            "census_max_share of its tasks gone and archived nothing (alert on it).",
            by_connector,
            registry=registry,
        )
        self.comments_posted = Counter(
            f"{PREFIX}_comments_posted",
            "Source comments posted to their Fragment tasks (comment sync).",
            by_connector,
            registry=registry,
        )
        self.comments_failed = Counter(
            f"{PREFIX}_comments_failed",
            "Comments Fragment refused (the task gone, 422); each is tried again later.",
            by_connector,
            registry=registry,
        )
        registry.register(StateCollector(config, store))
        for name in config.connectors:
            for family in (self.pulled, self.pushed, self.unchanged, self.failed, self.running):
                family.labels(name)
            for outcome in OUTCOMES:
                self.runs.labels(name, outcome)
            if config.connectors[name].settings.conversation.sync:
                self.comments_posted.labels(name)
                self.comments_failed.labels(name)
            if config.connectors[name].settings.census is not None:
                self.census_archived.labels(name)
                self.census_refused.labels(name).set(0)
        self._in_flight: dict[str, PassInFlight] = {}
        self._lock = threading.Lock()

    # Registration

    def install(self) -> None:
        """Start observing every pass and every HTTP answer in this process (idempotent)."""
        if self not in run_loop.RUN_OBSERVERS:
            run_loop.RUN_OBSERVERS.append(self)
        if self not in session.OBSERVERS:
            session.OBSERVERS.append(self)
        if self.census_finished not in census.CENSUS_OBSERVERS:
            census.CENSUS_OBSERVERS.append(self.census_finished)

    def uninstall(self) -> None:
        """Stop observing (idempotent)."""
        if self in run_loop.RUN_OBSERVERS:
            run_loop.RUN_OBSERVERS.remove(self)
        if self in session.OBSERVERS:
            session.OBSERVERS.remove(self)
        if self.census_finished in census.CENSUS_OBSERVERS:
            census.CENSUS_OBSERVERS.remove(self.census_finished)

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format, as `/metrics` serves it."""
        return generate_latest(self.registry)

    # RunObserver

    def started(self, name: str, run_id: str | None) -> None:
        with self._lock:
            self._in_flight[name] = PassInFlight(name, run_id, time.monotonic())
        self.running.labels(name).set(1)

    def finished(self, summary: RunSummary, outcome: str) -> None:
        name = summary.name
        self.runs.labels(name, outcome).inc()
        if outcome in NOT_RUN:
            return  # never started here; a pass of ours may be in flight under that name
        with self._lock:
            self._in_flight.pop(name, None)
        self.running.labels(name).set(0)
        self.pulled.labels(name).inc(summary.pulled)
        self.pushed.labels(name).inc(summary.pushed)
        self.unchanged.labels(name).inc(summary.unchanged)
        self.failed.labels(name).inc(summary.failed)
        if summary.comments_posted or summary.comments_failed:
            self.comments_posted.labels(name).inc(summary.comments_posted)
            self.comments_failed.labels(name).inc(summary.comments_failed)
        self.duration.labels(name).observe(summary.duration_s)
        if outcome == "ok":
            self.last_success.labels(name).set(time.time())

    def census_finished(self, summary: CensusSummary) -> None:
        """A census ended: counted; the alert gauge follows a refusal or a census that ran."""
        name = summary.name
        self.censuses.labels(name, summary.outcome).inc()
        self.census_archived.labels(name).inc(summary.archived)
        if summary.outcome == "refused":
            self.census_refused.labels(name).set(1)
        elif summary.outcome == "ok" and not summary.dry_run:
            self.census_refused.labels(name).set(0)

    def passes_in_flight(self) -> list[PassInFlight]:
        """The passes started and not finished, oldest first."""
        with self._lock:
            return sorted(self._in_flight.values(), key=lambda p: p.started)

    # HttpObserver

    def answered(self, server: str, answer: str) -> None:
        self.requests.labels(server, answer).inc()

    def waited(self, server: str, reason: str, seconds: float) -> None:
        self.retries.labels(server, reason).inc()
        self.wait_seconds.labels(server, reason).inc(max(0.0, seconds))


class StateCollector(Collector):
    """Reads the state store at each scrape: lag, failed items, tasks, and whether it answers."""

    def __init__(self, config: Config, store: StateStore) -> None:
        self.config = config
        self.store = store

    def describe(self) -> Iterable[GaugeMetricFamily]:
        # Names only: registering must not touch the database.
        return list(self._families())

    def collect(self) -> Iterator[GaugeMetricFamily]:
        lag, failed, tasks, up, pending, last_ok = self._families()
        try:
            rows = collect(self.config, self.store)
        except (sa.exc.SQLAlchemyError, StateError, OSError) as exc:
            log.warning("state_scrape_failed", error=f"{type(exc).__name__}: {exc}")
            up.add_metric([], 0)
            yield up
            return
        for row in rows:
            if row["lag_s"] is not None:
                lag.add_metric([row["name"]], row["lag_s"])
            failed.add_metric([row["name"]], row["failed_items"])
            tasks.add_metric([row["name"]], row["tasks"])
            if row["comments"] is not None:
                pending.add_metric([row["name"]], row["comments"]["pending"])
            if row["last_ok_at"] is not None:
                moment = dt.datetime.fromisoformat(row["last_ok_at"])
                last_ok.add_metric([row["name"]], moment.timestamp())
        up.add_metric([], 1)
        yield from (lag, failed, tasks, up, pending, last_ok)

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, ...]:
        return (
            GaugeMetricFamily(
                f"{PREFIX}_watermark_lag_seconds",
                "Now minus the connector's watermark (timestamp cursors only), at scrape time.",
                labels=["connector"],
            ),
            GaugeMetricFamily(
                f"{PREFIX}_failed_items",
                "Failed items the state holds for the connector, retried on every pass.",
                labels=["connector"],
            ),
            GaugeMetricFamily(
                f"{PREFIX}_tasks",
                "Tasks the state records as pushed for the connector.",
                labels=["connector"],
            ),
            GaugeMetricFamily(
                f"{PREFIX}_state_up",
                "1 when the state database answered this scrape, else 0.",
            ),
            GaugeMetricFamily(
                f"{PREFIX}_comments_pending",
                "Comments waiting to be posted (comment sync on), at scrape time.",
                labels=["connector"],
            ),
            GaugeMetricFamily(
                f"{PREFIX}_last_ok_pass_timestamp_seconds",
                "When the connector's last pass that ended ok finished, in any process sharing "
                "the state (unix time), at scrape time.",
                labels=["connector"],
            ),
        )
