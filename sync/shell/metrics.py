"""Prometheus metrics of the daemon: what the passes did, what the HTTP servers answered.

`Metrics` is both a `sync.run.RunObserver` and a `sync_http.session.HttpObserver`:
`install()` registers it with both. Its series labelled by connector are
`sync.shell.series` families (plain numbers, written as Prometheus text: at
10,000 connectors `prometheus_client` took over a second formatting them); the
HTTP series are in a registry of its own (never the process-wide default, so
each test can make a fresh one). Counters come from the observer calls; the
watermark lag, the failed items, the task counts and the last ok pass (by any
replica) are read from the state store at scrape time, so they are fresh even
when no pass has run here for an hour. They come from the rows the passes keep
up to date (each connector's summary row and watermark): a scrape runs the
same few queries for ten connectors or ten thousand; each series is
formatted as its value changes, not at the scrape. It also keeps which passes are in flight,
for `/readyz` to tell a stuck one. Serving the metrics over HTTP is
`sync.shell.web`'s job.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa
import structlog
from prometheus_client import CollectorRegistry, Counter, disable_created_metrics, generate_latest

from sync import census
from sync import run as run_loop
from sync.census import CensusSummary
from sync.config import Config
from sync.run import RunSummary
from sync.shell.series import Families, Family
from sync.state import StateError, StateStore
from sync.state.comments import CommentLedger
from sync.summary import WRITE_BACK_OBSERVERS

if TYPE_CHECKING:  # the module loads the HTTP stack, which a quiet daemon never needs
    from sync.write_back import WriteBackSummary
from sync_http import session

log = structlog.get_logger("sync.shell.metrics")

PREFIX = "fragment_sync"
OUTCOMES = ("ok", "failed", "interrupted", "busy", "lease_lost")
"""Outcomes whose series exist from the start (at 0), so `increase()` sees the first one."""
DURATION_BUCKETS = (0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600)
"""Seconds: a quiet incremental pass takes well under a second, a backfill up to an hour."""
NOT_RUN = frozenset({"busy"})
"""Outcomes of passes that never started (another process held the lease): counted, no more."""


WRITE_BACK_OUTCOMES = ("written", "refused", "conflict")
"""What became of a Fragment change write-back met (`fragment_sync_write_backs_total`)."""


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
        """The series that are not labelled by connector (HTTP); `families` holds the rest."""
        registry = self.registry
        self.families = families = Families()
        by_connector = ["connector"]
        self.pulled = families.add(
            f"{PREFIX}_tickets_pulled", "counter", "Tickets read from the source.", by_connector
        )
        self.pushed = families.add(
            f"{PREFIX}_tasks_pushed", "counter", "Tasks Fragment acknowledged.", by_connector
        )
        self.unchanged = families.add(
            f"{PREFIX}_tickets_unchanged",
            "counter",
            "Tickets read whose task was already up to date in Fragment.",
            by_connector,
        )
        self.failed = families.add(
            f"{PREFIX}_tickets_failed",
            "counter",
            "Tickets set aside as failed items (bad record, mapping, rejected by Fragment).",
            by_connector,
        )
        self.runs = families.add(
            f"{PREFIX}_runs", "counter", "Passes finished, by outcome.", ["connector", "outcome"]
        )
        self.duration = families.add(
            f"{PREFIX}_run_duration_seconds",
            "histogram",
            "How long each pass took.",
            by_connector,
            buckets=DURATION_BUCKETS,
        )
        self.last_success = families.add(
            f"{PREFIX}_last_success_timestamp_seconds",
            "gauge",
            "When the connector's last pass that ended ok finished (unix time).",
            by_connector,
        )
        self.running = families.add(
            f"{PREFIX}_runs_in_progress",
            "gauge",
            "Passes of the connector running now (0 or 1).",
            by_connector,
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
        self.censuses = families.add(
            f"{PREFIX}_censuses",
            "counter",
            "Censuses finished, by outcome (refused: over census_max_share, nothing archived).",
            ["connector", "outcome"],
        )
        self.census_archived = families.add(
            f"{PREFIX}_census_archived_tasks",
            "counter",
            "Tasks a census archived: their tickets were gone from the source's scope.",
            by_connector,
        )
        self.census_refused = families.add(
            f"{PREFIX}_census_refused",
            "gauge",
            "1 while the connector's last census was refused: it found more than "
            "census_max_share of its tasks gone and archived nothing (alert on it).",
            by_connector,
        )
        self.comments_posted = families.add(
            f"{PREFIX}_comments_posted",
            "counter",
            "Source comments posted to their Fragment tasks (comment sync).",
            by_connector,
        )
        self.comments_failed = families.add(
            f"{PREFIX}_comments_failed",
            "counter",
            "Comments Fragment refused (the task gone, 422); each is tried again later.",
            by_connector,
        )
        self.write_backs = families.add(
            f"{PREFIX}_write_backs",
            "counter",
            "Fragment changes met by write-back (two-way sync), by outcome: written to the "
            "ticket, refused by the source (tried again later), or lost to a conflict.",
            ["connector", "outcome"],
        )
        self.state = StateSeries(config, store)
        for name in config.connectors:
            for family in (self.pulled, self.pushed, self.unchanged, self.failed, self.running):
                family.touch(name)
            for outcome in OUTCOMES:
                self.runs.touch(name, outcome)
            if config.connectors[name].settings.conversation.sync:
                self.comments_posted.touch(name)
                self.comments_failed.touch(name)
            if config.connectors[name].settings.census is not None:
                self.census_archived.touch(name)
                self.census_refused.touch(name)
            if config.connectors[name].settings.write_back.enabled:
                for outcome in WRITE_BACK_OUTCOMES:
                    self.write_backs.touch(name, outcome)
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
        if self.write_back_finished not in WRITE_BACK_OBSERVERS:
            WRITE_BACK_OBSERVERS.append(self.write_back_finished)

    def uninstall(self) -> None:
        """Stop observing (idempotent)."""
        if self in run_loop.RUN_OBSERVERS:
            run_loop.RUN_OBSERVERS.remove(self)
        if self in session.OBSERVERS:
            session.OBSERVERS.remove(self)
        if self.census_finished in census.CENSUS_OBSERVERS:
            census.CENSUS_OBSERVERS.remove(self.census_finished)
        if self.write_back_finished in WRITE_BACK_OBSERVERS:
            WRITE_BACK_OBSERVERS.remove(self.write_back_finished)

    def exposition(self) -> bytes:
        """Every series in Prometheus' text format, as `/metrics` serves it."""
        out = [generate_latest(self.registry).decode()]
        self.families.write(out)
        self.state.write(out)
        return "".join(out).encode()

    # RunObserver

    def started(self, name: str, run_id: str | None) -> None:
        with self._lock:
            self._in_flight[name] = PassInFlight(name, run_id, time.monotonic())
        self.running.set(name, value=1)

    def finished(self, summary: RunSummary, outcome: str) -> None:
        name = summary.name
        self.runs.inc(name, outcome)
        if outcome in NOT_RUN:
            return  # never started here; a pass of ours may be in flight under that name
        with self._lock:
            self._in_flight.pop(name, None)
        self.running.set(name, value=0)
        self.pulled.inc(name, amount=summary.pulled)
        self.pushed.inc(name, amount=summary.pushed)
        self.unchanged.inc(name, amount=summary.unchanged)
        self.failed.inc(name, amount=summary.failed)
        if summary.comments_posted or summary.comments_failed:
            self.comments_posted.inc(name, amount=summary.comments_posted)
            self.comments_failed.inc(name, amount=summary.comments_failed)
        self.duration.observe(name, value=summary.duration_s)
        if outcome == "ok":
            self.last_success.set(name, value=time.time())

    def census_finished(self, summary: CensusSummary) -> None:
        """A census ended: counted; the alert gauge follows a refusal or a census that ran."""
        name = summary.name
        self.censuses.inc(name, summary.outcome)
        self.census_archived.inc(name, amount=summary.archived)
        if summary.outcome == "refused":
            self.census_refused.set(name, value=1)
        elif summary.outcome == "ok" and not summary.dry_run:
            self.census_refused.set(name, value=0)

    def write_back_finished(self, summary: WriteBackSummary) -> None:
        """A write-back pass ended (`sync.write_back.WriteBackSummary`): its outcomes counted."""
        counts = {"written": summary.written, "refused": summary.refused}
        counts["conflict"] = summary.conflicts
        for outcome, amount in counts.items():
            if amount:
                self.write_backs.inc(summary.connector, outcome, amount=amount)

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


class StateSeries:
    """Read from the state store at each scrape: lag, failed items, tasks, comments pending,
    the last ok pass, and whether the state answers (`fragment_sync_state_up`)."""

    def __init__(self, config: Config, store: StateStore) -> None:
        self.store = store
        # Kept from one scrape to the next: `Family.set` formats a series again only
        # when its value changed.
        self.families = Families()
        self.lag, self.failed, self.tasks, self.pending, self.last_ok = (
            self.families.add(name, "gauge", documentation, ["connector"])
            for name, documentation in _STATE_GAUGES
        )
        self.up = Family(
            f"{PREFIX}_state_up",
            "gauge",
            "1 when the state database answered this scrape, else 0.",
            labels=(),
        )
        self.namespaces = {name: c.uid_namespace for name, c in config.connectors.items()}
        self.with_comments = [
            name for name, c in config.connectors.items() if c.settings.conversation.sync
        ]

    def write(self, out: list[str]) -> None:
        """Append the families read now to `out`; only `state_up 0` when the state fails."""
        try:
            counts = self.store.connector_counts()
            watermarks = self.store.watermarks_each()
            comments = CommentLedger(self.store).counts_each() if self.with_comments else {}
        except (sa.exc.SQLAlchemyError, StateError, OSError) as exc:
            log.warning("state_scrape_failed", error=f"{type(exc).__name__}: {exc}")
            self.up.set(value=0)
            self.up.write(out)
            return
        now = time.time()
        for name, namespace in self.namespaces.items():
            last = counts.get(namespace)
            watermark = watermarks.get(namespace)
            if isinstance(watermark, dt.datetime):
                self.lag.set(name, value=round(now - watermark.timestamp()))
            else:
                self.lag.discard(name)
            self.failed.set(name, value=0 if last is None else last.failed_items)
            self.tasks.set(name, value=0 if last is None else last.tasks)
            if last is not None and last.last_ok_at is not None:
                self.last_ok.set(name, value=last.last_ok_at.timestamp())
        for name in self.with_comments:
            counted = comments.get(self.namespaces[name])
            self.pending.set(name, value=0 if counted is None else counted.pending)
        self.up.set(value=1)
        self.families.write(out)
        self.up.write(out)


_STATE_GAUGES = (
    (
        f"{PREFIX}_watermark_lag_seconds",
        "Now minus the connector's watermark (timestamp cursors only), at scrape time.",
    ),
    (
        f"{PREFIX}_failed_items",
        "Failed items the state holds for the connector, retried on every pass.",
    ),
    (f"{PREFIX}_tasks", "Tasks the state records as pushed for the connector."),
    (
        f"{PREFIX}_comments_pending",
        "Comments waiting to be posted (comment sync on), at scrape time.",
    ),
    (
        f"{PREFIX}_last_ok_pass_timestamp_seconds",
        "When the connector's last pass that ended ok finished, in any process sharing "
        "the state (unix time), at scrape time.",
    ),
)
"""The gauges by connector read from the state, in the order `StateSeries.write` fills them."""
