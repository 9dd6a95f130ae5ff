"""The run loop: one pass of one connector, source to checkpoint.

    failed items ─┐
                  ├─> map ─> diff against stored hashes ─> batch ─> Fragment ─> checkpoint
    connector  ───┘

A pass first retries the connector's failed items, then pulls from the
watermark (inclusive, minus the lookback). Every acknowledged batch is
checkpointed in one transaction with its hashes, its failed items and the
watermark of the last ticket fully dealt with, never past the time the pass
started on the source's clock or this machine's, whichever is earlier. When
the source fails, what it gave before is still pushed and checkpointed.
Whatever stops a pass (the source, Fragment, a stop request, a timeout) leaves
the watermark at the last checkpoint, so the next pass resumes there (a first
backfill too: its settings are recorded with its first checkpoint) and the
hash diff absorbs what it reads again. Fragment's idempotent upsert absorbs
what was pushed but not checkpointed.

Up to `fragment.max_in_flight` batches are out at once while the next one is
mapped; their checkpoints are committed in the order the batches were cut, so
the watermark still only ever covers acknowledged tickets. Within a pass an
older version of a ticket never replaces a newer one, whatever order an
unordered source gives them in.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import signal
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from connectors.base import BadRecord, Connector, Cursor, SourceTicket, cursor_before
from connectors.errors import SourceError, StopRequested
from connectors.registry import connector_class
from connectors.values import record_zone
from sync.batches import PushResult, batched
from sync.config import Config, ConnectorConfig, FragmentSettings
from sync.errors import FragmentError, MappingError, RunInterrupted
from sync.failures import RETRY_EVERY_PASS, RETRY_WAIT_CAP
from sync.mapping import Mapper, TaskPayload
from sync.state import (
    UNREACHABLE,
    FailedItem,
    LeaseLost,
    StateStore,
    StoredTask,
    error_text,
    record_json,
    storable_text,
    unreachable_message,
    utcnow,
)
from sync.state.schema import MAX_ID_LENGTH
from sync.watermark import (
    CLOCK_ALLOWANCE,
    Checkpoint,
    decode_text,
    encode,
    far_ahead,
    later,
    pass_ceiling,
    pull_bound,
)
from sync_http import clock
from sync_http.redaction import redact

if TYPE_CHECKING:
    from sync.fragment import FragmentClient

log = structlog.get_logger("sync.run")

LOOKUP_CHUNK = 500
"""Tickets whose stored hashes are fetched in one query."""
IDLE_CHECKPOINT = 5000
"""Checkpoint at least this often (in tickets) even when nothing needs pushing."""
FAILURES_LOGGED = 100
"""New failures a pass logs one by one as warnings; the rest go in one line at its end."""
SOURCE_CLOCK_NOTICE = dt.timedelta(seconds=2)
"""A source's clock behind this machine's by more than this is logged (`source_clock_behind`);
a `Date` header's truncation and the network make up to about a second of it."""
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
"""Each asks the passes to stop after their batch in flight and checkpoint. SIGHUP's
default would kill the process mid-batch (a closed terminal, a reload sent by habit)."""


@dataclass
class Counts:
    pulled: int = 0
    pushed: int = 0
    unchanged: int = 0
    failed: int = 0
    requests: int = 0
    skipped_deleted: int = 0
    """Deleted before they ever reached Fragment: nothing to archive."""


@dataclass
class RunSummary:
    """What one pass of one connector did; the `--json` output is made of these."""

    name: str
    ok: bool
    pulled: int
    pushed: int
    unchanged: int
    failed: int
    watermark: str | None
    duration_s: float
    run_id: str | None = None
    requests: int = 0
    isolation_requests: int = 0
    skipped_deleted: int = 0
    """Tickets deleted before they ever reached Fragment, so not pushed (nor unchanged)."""
    error: str | None = None
    outcome: str = "ok"
    """ok, failed, interrupted, busy (another process runs it), lease_lost."""

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class ProgressReporter(Protocol):
    """Told how far each pass has got (`sync.shell.progress.Progress` draws it)."""

    def update(self, name: str, consumed: int, expected: int | None) -> None: ...

    def finish(self, name: str) -> None: ...


class RunObserver(Protocol):
    """Told when each pass starts and ends (`sync.shell.metrics` records it)."""

    def started(self, name: str, run_id: str | None) -> None: ...

    def finished(self, summary: RunSummary, outcome: str) -> None: ...


RUN_OBSERVERS: list[RunObserver] = []
"""Process-wide, like the metrics registry they feed."""


class Fragment(Protocol):
    """What a pass needs of Fragment's client (`sync.fragment.FragmentClient`)."""

    @property
    def settings(self) -> FragmentSettings: ...

    def push(self, items: Sequence[TaskPayload], into: PushResult | None = None) -> PushResult: ...


class _FragmentOnDemand:
    """Fragment's client, made at the first push; `run_once` hands one to its passes.

    The one place the engine loads `sync.fragment`, and with it the HTTP stack (httpx,
    ~30 ms to import): a pass with nothing to push never loads it.
    """

    def __init__(self, settings: FragmentSettings, stop: threading.Event) -> None:
        self.settings = settings
        self._stop = stop
        self._client: FragmentClient | None = None
        self._lock = threading.Lock()

    def push(self, items: Sequence[TaskPayload], into: PushResult | None = None) -> PushResult:
        with self._lock:
            if self._client is None:
                from sync.fragment import FragmentClient

                self._client = FragmentClient(self.settings, stop=self._stop)
        return self._client.push(items, into)

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


@dataclass
class RunOptions:
    owner: str = field(default_factory=lambda: owner_id())
    """Who this process is, in the connectors' leases."""
    lease_ttl: float = 60.0
    wait_for_lease: float | None = None
    """Seconds to wait for a busy connector; None: skip it at once."""
    full: bool = False
    dry_run: bool = False
    retry_only: bool = False
    """Only retry the failed items; pull nothing new (`failures retry`)."""
    planned: Callable[[str, TaskPayload], None] | None = None
    progress: ProgressReporter | None = None
    stop: threading.Event = field(default_factory=threading.Event)


@dataclass
class _Shipment:
    """A batch cut from the stream: sent (or nothing to send), then settled in cut order."""

    batch: dict[str, tuple[SourceTicket, TaskPayload]]
    """By source id, as `ConnectorRun._pending` held it."""
    failures: list[FailedItem]
    resolved: list[str]
    watermark: Cursor | None
    """Where the watermark may go once this and every earlier shipment are settled."""
    fingerprint: str | None
    snapshot: str | None
    complete: bool = False
    """The pass's last shipment: the whole pass is through once it settles."""
    answer: Future[PushResult] | None = None
    sent: PushResult = field(default_factory=PushResult)
    """What the sender has got so far: its requests count even when the push fails."""
    errors: dict[str, str] = field(default_factory=dict)
    """The last error of each failed item in the batch, by source id."""


def _tried_before(item: FailedItem, moment: dt.datetime) -> bool:
    return item.last_seen is None or item.last_seen < moment


def _minutes(span: dt.timedelta) -> str:
    return f"{span.total_seconds() / 60:g} min"


def owner_id() -> str:
    """This process in a lease: host, pid and a nonce (a restarted pid is someone else)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class ConnectorRun:
    """One pass of one connector. Build it, call `execute()` once."""

    def __init__(
        self,
        connector: ConnectorConfig,
        store: StateStore,
        client: Fragment | None,
        batch_size: int,
        options: RunOptions,
    ) -> None:
        self.config = connector
        self.name = connector.name
        self.namespace = connector.uid_namespace
        self.store = store
        self.client = client
        self.batch_size = connector.settings.batch_size or batch_size
        self.max_in_flight = client.settings.max_in_flight if client is not None else 1
        self.options = options
        self.mapper = Mapper(
            connector.name,
            self.namespace,
            connector.settings.mapping,
            zone=record_zone(connector.options),
        )
        self.counts = Counts()
        self.isolation_requests = 0
        self.watermark: Cursor | None = None
        self._stored_watermark: Cursor | None = None
        """What the state holds: a watermark held back (see `CLOCK_ALLOWANCE`) differs."""
        # By source id: a ticket met twice before its batch goes out is pushed once, latest wins.
        self._pending: dict[str, tuple[SourceTicket, TaskPayload]] = {}
        # Those of them with no stored hash: only their pushes are marked in flight.
        self._unrecorded: set[str] = set()
        self._failures: list[FailedItem] = []
        self._resolved: list[str] = []
        self._had_failures = False  # the connector had failed items when the pass began
        # The last error of each failed item queued to push: failing the same way is not news.
        self._pending_errors: dict[str, str] = {}
        self._still_failing = 0
        self._new_failures = 0  # logged by `_log_failure`
        self._since_commit = 0
        self._deadline: float | None = None
        self._lease_keeper: _LeaseKeeper | None = None
        self._began = utcnow()
        # Whole seconds: MySQL kept no fraction before migration 0007, and a pushed_at
        # written in this pass's first second must still read as this pass's.
        self._pass_started = self._began.replace(microsecond=0)
        self._sender: ThreadPoolExecutor | None = None
        self._outbox: deque[_Shipment] = deque()
        self._held = False
        """A shipment failed to settle: no later checkpoint may move the watermark."""
        # Tickets settled since the last hash lookup, which could not see them yet.
        self._settled_recently: dict[str, Cursor] = {}
        self._reported: RunSummary | None = None
        """The pass's summary, once logged and told to the observers."""
        self._settings_recorded = False
        """A checkpoint of this pass recorded its settings (`_settings_reached`)."""
        self._stamped_offset: dt.timedelta | None = None
        """A lower bound of the source's clock offset, from its cursors (`_read_stamps`)."""
        self.log = log.bind(connector=self.name)

    def execute(self) -> RunSummary:
        """Run the pass; never raises for a failure of this connector, it reports it.

        A state database out of reach fails the pass as a source out of reach
        does: one line, one failed pass counted, and the next pass tries again.
        """
        started = time.monotonic()
        try:
            return self._execute_leased(started)
        except UNREACHABLE as exc:
            if self._reported is not None:
                # Reported already; only its run row or its lease could not be written
                # (the lease expires on its own, and the next pass takes it).
                return self._reported
            return self._summary(started, None, "failed", unreachable_message(exc))

    def _execute_leased(self, started: float) -> RunSummary:
        if self.options.dry_run:
            return self._execute(started)
        if not self._take_lease():
            holder = self.store.lease(self.namespace)
            who = (
                f"{holder.owner} until {holder.expires_at:%H:%M:%S}Z"
                if holder
                else "another process"
            )
            message = f"connector {self.name!r} is being run by {who}"
            self.log.info("connector_busy", holder=who)
            return self._summary(started, None, "busy", message)
        keeper = _LeaseKeeper(
            self.store, self.namespace, self.options.owner, self.options.lease_ttl
        )
        keeper.start()
        self._lease_keeper = keeper
        try:
            return self._execute(started)
        finally:
            keeper.stop()
            if not keeper.lost:
                self.store.release_lease(self.namespace, self.options.owner)

    def _take_lease(self) -> bool:
        options = self.options
        deadline = time.monotonic() + (options.wait_for_lease or 0)
        while True:
            if self.store.acquire_lease(self.namespace, options.owner, options.lease_ttl):
                return True
            if options.wait_for_lease is None or time.monotonic() >= deadline:
                return False
            if options.stop.wait(min(1.0, options.lease_ttl / 10)):
                return False

    def _execute(self, started: float) -> RunSummary:
        self._deadline = started + self.config.settings.pass_timeout.total_seconds()
        self.watermark = self._stored_watermark = self.store.watermark(self.namespace)
        run_id = None
        if not self.options.dry_run:
            run_id = self.store.start_run(self.namespace, self.name, self.watermark)
        self.log = self.log.bind(run_id=run_id)
        if far_ahead(self.watermark, self._pass_started):
            assert self.watermark is not None
            # Stored before watermarks were held back: every change since a bad future
            # cursor fell behind it. Read everything again; the checkpoint stores a sane one.
            self.log.warning(
                "watermark_ahead_of_clock",
                watermark=encode(self.watermark),
                detail=f"more than {CLOCK_ALLOWANCE} ahead of this machine's clock; "
                "reading every ticket again",
            )
            self.watermark = None
        for observer in RUN_OBSERVERS:
            observer.started(self.name, run_id)
        error: str | None = None
        outcome = "ok"
        source: Connector | None = None
        if self.client is not None and not self.options.dry_run:
            self._sender = ThreadPoolExecutor(
                max_workers=self.max_in_flight, thread_name_prefix=f"push-{self.name}"
            )
        try:
            try:
                source = connector_class(self.config.kind)(
                    self.name, self.config.options, self.options.stop
                )
                self._had_failures = self.store.has_failed(self.namespace)
                if self.options.retry_only:
                    self._retry_failed(hurry=True)
                elif self._reads_everything():
                    # The pull tries the failed items it meets (their latest version):
                    # trying them first as well sent and counted each twice. Then those
                    # it did not meet, at once: the settings may be fixed for them too,
                    # and a source failing part-way must not hold them back.
                    try:
                        self._pull(source, full=True)
                    except SourceError:
                        self._retry_unmet()
                        raise
                    self._retry_unmet()
                else:
                    self._retry_failed(hurry=False)
                    self._pull(source, full=False)
                self._settle_all()
                self._report_failures()
            except BaseException:
                self._abandon()
                raise
        except LeaseLost as exc:
            outcome, error = "lease_lost", str(exc)
        except StopRequested as exc:
            outcome, error = "interrupted", str(exc)
        except (SourceError, FragmentError) as exc:
            outcome, error = "failed", str(exc)
        except UNREACHABLE as exc:
            outcome, error = "failed", unreachable_message(exc)
        except Exception as exc:  # a bug: report it, keep the other connectors going
            self.log.exception("run_crashed")
            # Not a failure kind, so its message was not redacted as it was made.
            outcome, error = "failed", redact(f"internal error: {type(exc).__name__}: {exc}")
        finally:
            if self._sender is not None:
                self._sender.shutdown(wait=True)
            if source is not None:
                source.close()
            if self.options.progress:
                self.options.progress.finish(self.name)
        summary = self._summary(started, run_id, outcome, error)
        if run_id is not None:
            self.store.finish_run(
                run_id,
                outcome=outcome,
                counts=asdict(self.counts),
                watermark=self.watermark,
                error=error,
            )
        return summary

    def _summary(
        self, started: float, run_id: str | None, outcome: str, error: str | None
    ) -> RunSummary:
        summary = RunSummary(
            name=self.name,
            ok=outcome == "ok",
            watermark=None if self.watermark is None else encode(self.watermark),
            duration_s=round(time.monotonic() - started, 3),
            run_id=run_id,
            isolation_requests=self.isolation_requests,
            error=error,
            outcome=outcome,
            **asdict(self.counts),
        )
        event = self.log.info if summary.ok or outcome == "busy" else self.log.error
        event("run_finished", **summary.as_json())
        self._reported = summary
        for observer in RUN_OBSERVERS:
            observer.finished(summary, outcome)
        return summary

    # The two phases

    def _reads_everything(self) -> bool:
        """Whether this pass reads every ticket again, and says why when it is news.

        It does with no watermark, with `--full`, and when the settings changed
        since the last complete pass: a changed mapping alters tasks behind the
        watermark too.
        """
        if self.options.full or self.watermark is None:
            return True
        if self.store.settings_fingerprint(self.namespace) != self.config.fingerprint():
            self.log.info("settings_changed", detail="reading every ticket again")
            return True
        return False

    def _retry_unmet(self) -> None:
        """After a pull meant to read everything: the failed items it did not meet."""
        self._settle_all()  # what the pull pushed is recorded: not tried again
        self._retry_failed(hurry=True, untried_since=self._began)

    def _retry_failed(self, *, hurry: bool, untried_since: dt.datetime | None = None) -> None:
        """Map and push the failed items again: the mapping or the data may be fixed now.

        A page at a time, checkpointed like a pull: a broken mapping can leave
        every ticket of a backfill failed, and its fix must not need them all
        in memory at once. Only the items due (`sync.failures`) unless
        `hurry`; `untried_since`: only the items not tried since then.
        """
        if not self._had_failures:
            return
        if hurry:
            waiting = 0
            pages = self.store.failed_item_pages(self.namespace, LOOKUP_CHUNK)
        else:
            # Due before the pass began: those tried again in it are due after that.
            waiting = self.store.waiting_count(self.namespace, self._began)
            pages = self.store.due_failed_item_pages(self.namespace, LOOKUP_CHUNK, self._began)
        retried = 0
        for page in pages:
            due = [
                item
                for item in page
                if item.retryable and (untried_since is None or _tried_before(item, untried_since))
            ]
            errors = {item.source_id: item.error for item in due}
            stored = self.store.stored_tasks(self.namespace, errors.keys())
            tickets = [ticket for item in due if (ticket := self._again(item, stored))]
            sent = self._sent_unrecorded(tickets, stored)
            for ticket in tickets:
                self._check_stop()
                source_id = ticket.source_id
                self._consider(ticket, stored.get(source_id), source_id in sent, errors[source_id])
                self._since_commit += 1
                if len(self._pending) >= self.batch_size or self._since_commit >= IDLE_CHECKPOINT:
                    self._flush(watermark=None)
            retried += len(tickets)
        self._flush(watermark=None)
        self._settle_all()
        if retried:
            self.log.info("failed_items_retried", count=retried)
        if waiting:
            self.log.info(
                "failed_items_waiting",
                count=waiting,
                detail=f"failing for over {_minutes(RETRY_EVERY_PASS)}: each is tried again "
                f"after as long as it has been failing, at most {_minutes(RETRY_WAIT_CAP)} "
                "(sooner once the settings change; `python -m sync failures retry` now)",
            )

    def _report_failures(self) -> None:
        # One line a pass, not one per item: a broken mapping fails them all again each pass.
        if self._still_failing:
            self.log.warning(
                "failed_items_still_failing",
                count=self._still_failing,
                detail="the same error as when last tried; `python -m sync failures` lists them",
            )
        if self._new_failures > FAILURES_LOGGED:
            self.log.warning(
                "more_tickets_failed",
                count=self._new_failures - FAILURES_LOGGED,
                detail=f"a pass logs its first {FAILURES_LOGGED} failures one by one (the rest "
                "at debug level); `python -m sync failures list` lists them all",
            )

    def _log_failure(self, event: str, **fields: Any) -> None:
        """Log a new failure: a warning for the pass's first `FAILURES_LOGGED`, then debug.

        A mapping typo fails every ticket of a backfill: a warning each was a
        million lines for a million tickets, at about 70 µs apiece.
        """
        self._new_failures += 1
        if self._new_failures <= FAILURES_LOGGED:
            self.log.warning(event, **fields)
        else:
            self.log.debug(event, **fields)

    def _again(self, item: FailedItem, stored: dict[str, StoredTask]) -> SourceTicket | None:
        """The ticket a failed item recorded, to try again; None if there is none to try."""
        assert item.record is not None and item.cursor is not None
        cursor = decode_text(item.cursor)
        known = stored.get(item.source_id)
        if known is not None and _newer(decode_text(known.cursor), cursor):
            self._resolved.append(item.source_id)  # a later version already went through
            return None
        try:
            record = json.loads(item.record)
        except (ValueError, RecursionError) as exc:  # stored by hand, or nested too deep
            self.log.warning("failed_item_unreadable", source_id=item.source_id, error=str(exc))
            return None
        return SourceTicket(item.source_id, cursor, record, item.deleted)

    def _pull(self, source: Connector, *, full: bool) -> None:
        """Read what changed since the watermark (`full`: every ticket), and push it."""
        fingerprint = self.config.fingerprint()
        previous = self.store.source_snapshot(self.namespace)
        snapshot = source.snapshot(previous)  # before reading: a change during the pass counts
        if (
            not full
            and snapshot is not None
            and previous is not None
            and source.same_content(snapshot, previous)
        ):
            if snapshot != previous and not self.options.dry_run:
                self.store.refresh_snapshot(self.namespace, previous, snapshot)
            self.log.info("source_unchanged", detail="same content as the last complete pass")
            return
        since = None if full else pull_bound(self.watermark, self._lookback(source))
        checkpoint = Checkpoint(ordered=source.ordered)
        # Mid-pass checkpoints of a pass that reads everything record its settings once
        # they reach the watermark (see `_checkpoint`): a first backfill cut short resumes.
        settings = fingerprint if full else None
        expected = source.estimate(since)
        self.log.info("pull_started", since=None if since is None else encode(since))
        consumed = 0
        try:
            for chunk in batched(source.pull(since), LOOKUP_CHUNK, flush_on=SourceError):
                chunk = _with_usable_ids(chunk)
                tickets = [item for item in chunk if isinstance(item, SourceTicket)]
                if source.cursors_from_source_clock:
                    self._read_stamps(tickets)
                self._settled_recently.clear()  # the lookup below sees what they recorded
                stored = self.store.stored_tasks(self.namespace, (t.source_id for t in tickets))
                sent = self._sent_unrecorded(tickets, stored)
                failed = self._failed_errors(tickets)
                for item in chunk:
                    self._check_stop()
                    cursor = item.cursor
                    if isinstance(item, BadRecord):
                        self._bad_record(item)
                    else:
                        self.counts.pulled += 1
                        source_id = item.source_id
                        self._consider(
                            item, stored.get(source_id), source_id in sent, failed.get(source_id)
                        )
                    if cursor is not None:
                        self._observe(checkpoint, cursor)
                    consumed += 1
                    self._since_commit += 1
                    if (
                        len(self._pending) >= self.batch_size
                        or self._since_commit >= IDLE_CHECKPOINT
                    ):
                        self._flush(self._safe(checkpoint, source), settings)
                if self.options.progress:
                    self.options.progress.update(self.name, consumed, expected)
        except SourceError:
            # Keep what was read before the source failed: it goes out and is checkpointed
            # as the pass fails (`_abandon`), so a source failing part-way still progresses.
            self._flush(self._safe(checkpoint, source), settings)
            raise
        self._report_source_clock(source)
        checkpoint.ceiling = self._ceiling(source)
        if far_ahead(ahead := checkpoint.ahead(), self._pass_started):
            assert ahead is not None
            self.log.warning(
                "cursor_ahead_of_clock",
                cursor=encode(ahead),
                detail=f"a ticket's cursor is more than {CLOCK_ALLOWANCE} ahead of this "
                "machine's clock; the watermark stops at the time this pass started, so "
                "that later changes are still read. Fix the value at the source (or the "
                "connector's timezone)",
            )
        self._flush(
            watermark=checkpoint.complete(),
            fingerprint=fingerprint,
            snapshot=snapshot,
            complete=True,
        )

    def _lookback(self, source: Connector) -> dt.timedelta:
        """The configured `lookback`, else what the source's filter needs (`default_lookback`)."""
        configured = self.config.settings.lookback
        return source.default_lookback if configured is None else configured

    def _ceiling(self, source: Connector) -> dt.datetime:
        """Where this pass's checkpoints stop: its start, on the earlier of the two clocks."""
        return pass_ceiling(self._pass_started, self._source_offset(source))

    def _source_offset(self, source: Connector) -> dt.timedelta | None:
        """At most how far the source's clock is ahead of this machine's; None if unknown.

        What the source tells of its clock (`Connector.clock_offset`), else
        what the cursors it stamped show (`_read_stamps`).
        """
        told = source.clock_offset()
        return told if told is not None else self._stamped_offset

    def _read_stamps(self, tickets: list[SourceTicket]) -> None:
        """Raise `_stamped_offset` to what `tickets`' cursors show of the source's clock.

        Each cursor is a time the source's clock had passed when it answered,
        before now: the newest, minus this machine's time now, is at most the
        offset. For a source that tells no time (Redmine served by thin sends
        no `Date`). A cursor far ahead is a bad value, not the clock.
        """
        now = clock.now()
        stamps = (t.cursor for t in tickets if isinstance(t.cursor, dt.datetime))
        newest = max((c for c in stamps if not far_ahead(c, now)), default=None)
        if newest is None:
            return
        offset = newest - now
        if self._stamped_offset is None or offset > self._stamped_offset:
            self._stamped_offset = offset

    def _safe(self, checkpoint: Checkpoint, source: Connector) -> Cursor | None:
        """Where a checkpoint may move the watermark now (`Checkpoint.safe`)."""
        # The source's clock is known once it has answered: before each checkpoint, not at start.
        checkpoint.ceiling = self._ceiling(source)
        return checkpoint.safe()

    def _report_source_clock(self, source: Connector) -> None:
        offset = source.clock_offset()  # the cursors' bound says more of the data than the clock
        if offset is not None and offset < -SOURCE_CLOCK_NOTICE:
            self.log.info(
                "source_clock_behind",
                seconds=round(-offset.total_seconds(), 1),
                detail="the source's clock is behind this machine's by at least this; "
                "checkpoints stop at the time the pass started on the source's clock",
            )

    # One ticket

    def _consider(
        self,
        ticket: SourceTicket,
        stored: StoredTask | None,
        sent_unrecorded: bool,
        last_error: str | None,
    ) -> None:
        """Map `ticket` and queue it if its content differs from what was last pushed.

        `sent_unrecorded`: a push of it went out whose answer was never recorded.
        `last_error`: it is a failed item, with this error: cleared if it turns out
        unchanged, and not news if it fails the same way again.
        """
        if self._superseded(ticket, stored):
            self.counts.unchanged += 1  # this pass already met a later version
            return
        try:
            if ticket.deleted and stored is None and not sent_unrecorded:
                self.counts.skipped_deleted += 1  # deleted before it ever reached Fragment
                return
            payload = self.mapper.map(ticket)
        except MappingError as exc:
            if not ticket.deleted:
                failure = self._failed(ticket, "mapping", exc.field, str(exc), last_error)
                self._failures.append(failure)
                return
            payload = self.mapper.tombstone(ticket)  # archive it even if it won't map
        if stored is not None and stored.content_hash == payload.content_hash:
            self.counts.unchanged += 1
            if last_error is not None:
                self._resolved.append(ticket.source_id)
            return
        self._pending[ticket.source_id] = (ticket, payload)
        if last_error is not None:
            self._pending_errors[ticket.source_id] = last_error
        if stored is None:
            self._unrecorded.add(ticket.source_id)

    def _superseded(self, ticket: SourceTicket, stored: StoredTask | None) -> bool:
        """Whether this pass already queued, sent or recorded a later version of `ticket`."""
        source_id, cursor = ticket.source_id, ticket.cursor
        queued = self._pending.get(source_id)
        if queued is not None and _newer(queued[0].cursor, cursor):
            return True
        for shipment in self._outbox:
            sent = shipment.batch.get(source_id)
            if sent is not None and _newer(sent[0].cursor, cursor):
                return True
        settled = self._settled_recently.get(source_id)
        if settled is not None and _newer(settled, cursor):
            return True
        return (
            stored is not None
            and stored.pushed_at is not None
            and stored.pushed_at >= self._pass_started
            and _newer(decode_text(stored.cursor), cursor)
        )

    def _failed_errors(self, tickets: list[SourceTicket]) -> dict[str, str]:
        """The error of each of `tickets` that is a failed item, by source id."""
        if not self._had_failures:
            return {}
        return self.store.failed_errors(self.namespace, (t.source_id for t in tickets))

    def _sent_unrecorded(
        self, tickets: list[SourceTicket], stored: dict[str, StoredTask]
    ) -> set[str]:
        """The deleted tickets with no stored hash whose push went out unrecorded.

        Fragment may hold their tasks, so their tombstones must still be pushed.
        """
        if self.options.dry_run:
            return set()
        unknown = [t.source_id for t in tickets if t.deleted and t.source_id not in stored]
        return self.store.in_flight(self.namespace, unknown) if unknown else set()

    def _bad_record(self, item: BadRecord) -> None:
        key = item.source_id or item.locator
        message = error_text(
            f"connector {self.name!r}, {item.locator}, field {item.field!r}: {item.message}"
        )
        self._log_failure("bad_record", source_id=item.source_id, field=item.field, error=message)
        self.counts.failed += 1
        self._failures.append(
            FailedItem(
                source_id=key,
                uid=self.mapper.uid(item.source_id) if item.source_id else None,
                stage="source",
                field=item.field,
                error=message,
                cursor=None if item.cursor is None else encode(item.cursor),
                record=None if item.record is None else record_json(item.record),
            )
        )

    def _failed(
        self,
        ticket: SourceTicket,
        stage: str,
        field: str | None,
        message: str,
        last_error: str | None = None,
    ) -> FailedItem:
        """Log and count a ticket that won't reach Fragment this pass; the item to keep.

        `last_error`: the error of the failed item being retried. Failing with it
        again is counted, and logged once per pass (`failed_items_still_failing`).
        """
        message = error_text(message)  # as the state keeps it, so that it compares equal
        if message == last_error:
            self._still_failing += 1
            self.log.debug("ticket_still_failing", source_id=ticket.source_id, stage=stage)
        else:
            self._log_failure(
                "ticket_failed", source_id=ticket.source_id, stage=stage, field=field, error=message
            )
        self.counts.failed += 1
        return FailedItem(
            source_id=ticket.source_id,
            uid=self.mapper.uid(ticket.source_id),
            stage=stage,
            field=field,
            error=message,
            cursor=encode(ticket.cursor),
            deleted=ticket.deleted,
            record=record_json(ticket.record),
        )

    def _observe(self, checkpoint: Checkpoint, cursor: Cursor) -> None:
        was_out_of_order = checkpoint.out_of_order
        try:
            if checkpoint.highest is None:
                # Every later cursor must be of the first one's kind (`observe` checks):
                # comparing the first with the watermark covers them all.
                later(self.watermark, cursor)
            checkpoint.observe(cursor)
        except TypeError as exc:
            raise SourceError(
                self.name, f"{exc}; run `python -m sync reset {self.name}` after changing cursors"
            ) from None
        if checkpoint.out_of_order and not was_out_of_order:
            self.log.warning(
                "source_out_of_order",
                detail="the connector promised ascending cursors but broke it; "
                "this pass will checkpoint only at its end",
            )

    # The checkpoint

    def _flush(
        self,
        watermark: Cursor | None,
        fingerprint: str | None = None,
        snapshot: str | None = None,
        complete: bool = False,
    ) -> None:
        """Cut a shipment of what is pending and send it; settle the oldest when too many are out.

        `watermark` is where the checkpoint of this shipment may move the
        watermark; `fingerprint`, the settings the pass runs with, when it
        reads everything (or is `complete`); `snapshot`, the source's content
        token, once the whole pass is through (`complete`).
        """
        batch, self._pending = self._pending, {}
        unrecorded = [source_id for source_id in batch if source_id in self._unrecorded]
        self._unrecorded.difference_update(unrecorded)
        failures, self._failures = self._failures, []
        resolved, self._resolved = self._resolved, []
        errors, self._pending_errors = self._pending_errors, {}
        self._since_commit = 0
        if self.options.dry_run:
            for _ticket, payload in batch.values():
                if self.options.planned:
                    self.options.planned(self.name, payload)
            self.counts.pushed += len(batch)
            return
        shipment = _Shipment(
            batch=batch,
            failures=failures,
            resolved=resolved,
            watermark=watermark,
            fingerprint=fingerprint,
            snapshot=snapshot,
            complete=complete,
            errors=errors,
        )
        while len(self._outbox) >= self.max_in_flight or self._still_out(batch):
            self._settle(self._outbox.popleft())
        if batch:
            assert self._sender is not None
            self._check_stop()  # a stop request sends nothing new
            # Written ahead: if the answer is lost, a later deletion of a ticket that has no
            # stored hash still knows to archive its task (one with a hash is archived anyway).
            self.store.mark_in_flight(self.namespace, unrecorded)
            payloads = [payload for _ticket, payload in batch.values()]
            shipment.answer = self._sender.submit(self._push, payloads, shipment.sent)
        self._outbox.append(shipment)

    def _still_out(self, batch: dict[str, tuple[SourceTicket, TaskPayload]]) -> bool:
        """Whether a shipment still out carries an earlier version of a ticket in `batch`.

        Two requests in flight may be applied in either order: the newer
        version leaves only once the older one has landed.
        """
        return any(not shipment.batch.keys().isdisjoint(batch) for shipment in self._outbox)

    def _settle(self, shipment: _Shipment) -> None:
        """Wait for `shipment`'s answer and checkpoint it; every earlier one is settled.

        Once one shipment fails to settle, later ones still record what
        Fragment acknowledged but never move the watermark: it would pass
        the failed shipment's tickets.
        """
        try:
            self._checkpoint(shipment, move_watermark=not self._held)
        except BaseException:
            self._held = True
            raise

    def _checkpoint(self, shipment: _Shipment, move_watermark: bool) -> None:
        result = shipment.sent
        try:
            if shipment.answer is not None:
                shipment.answer.result()
        finally:  # a batch whose retries ran out sent requests too
            self.counts.requests += result.requests
            self.isolation_requests += result.isolation_requests
        failures = shipment.failures + [
            self._failed(
                shipment.batch[r.payload.source_id][0],
                "rejected",
                r.field,
                f"connector {self.name!r}, ticket {r.payload.source_id!r}: "
                f"Fragment rejected it: {r.message}",
                shipment.errors.get(r.payload.source_id),
            )
            for r in result.rejected
        ]
        self.counts.pushed += len(result.acked)
        new_watermark = later(self.watermark, shipment.watermark) if move_watermark else None
        fingerprint = self._settings_reached(shipment, move_watermark, new_watermark)
        self.store.commit_batch(
            self.namespace,
            acked=result.acked,
            failed=failures,
            resolved=shipment.resolved,
            watermark=new_watermark if new_watermark != self._stored_watermark else None,
            fingerprint=fingerprint,
            snapshot=shipment.snapshot,
            lease=None
            if self._lease_keeper is None
            else (self.options.owner, self.options.lease_ttl),
        )
        self._settings_recorded |= fingerprint is not None
        if move_watermark:
            self.watermark = new_watermark
            if new_watermark is not None:
                self._stored_watermark = new_watermark
        for source_id, (ticket, _payload) in shipment.batch.items():
            self._settled_recently[source_id] = ticket.cursor

    def _settings_reached(
        self, shipment: _Shipment, move_watermark: bool, new_watermark: Cursor | None
    ) -> str | None:
        """The settings fingerprint to record with `shipment`'s checkpoint, if any.

        A complete pass records it. So does the first checkpoint of a pass
        reading everything whose position is at or past the watermark: every
        ticket up to the watermark has then gone through with these settings,
        so the next pass may resume from it instead of starting over (a first
        backfill longer than `timeout`, or cut short by a crash or the source).
        Recording it clears the source's content token too (`snapshot` is
        None until the pass is complete): the token vouches for a complete pass.
        """
        if shipment.fingerprint is None or not move_watermark:
            return None
        if shipment.complete:
            return shipment.fingerprint
        if self._settings_recorded or new_watermark is None:
            return None
        return shipment.fingerprint if new_watermark == shipment.watermark else None

    def _settle_all(self) -> None:
        while self._outbox:
            self._settle(self._outbox.popleft())

    def _abandon(self) -> None:
        """The pass is failing: wait for every batch still out and keep what landed.

        Shipments settle in order, moving the watermark, until one fails (see
        `_settle`): nothing behind a failed batch is skipped.
        """
        while self._outbox:
            try:
                self._settle(self._outbox.popleft())
            except Exception as exc:  # the pass already fails; keep the first error
                self.log.warning("batch_not_checkpointed", error=str(exc))

    def _push(self, payloads: list[TaskPayload], result: PushResult) -> PushResult:
        """Send `payloads` in batches (on a sender thread) into `result`; the counts are the
        caller's."""
        assert self.client is not None
        for batch in batched(payloads, self.batch_size):
            self.client.push(batch, into=result)
        return result

    def _check_stop(self) -> None:
        if self._lease_keeper is not None and self._lease_keeper.lost:
            raise LeaseLost(f"connector {self.name!r}: the lease passed to another process")
        if self.options.stop.is_set():
            raise RunInterrupted("stop requested; the pass ends at its last checkpoint")
        if self._deadline is not None and time.monotonic() > self._deadline:
            settings = self.config.settings
            default = ", the default" if settings.timeout is None else ""
            raise RunInterrupted(
                f"timed out after {settings.pass_timeout} (connectors.{self.name}.timeout"
                f"{default}); the pass stopped at its last checkpoint and the next resumes "
                "there. Raise the timeout for a longer backfill; a source whose pages never "
                "end needs its paging fixed"
            )


class _LeaseKeeper:
    """Renews a pass's lease every third of its TTL, in the background.

    A pass can spend longer than the TTL between checkpoints (a rate limit, a
    slow source); renewing apart from them keeps a live holder's lease. If a
    renewal finds the lease gone, `lost` turns true and the pass stops at its
    next ticket.
    """

    def __init__(self, store: StateStore, connector: str, owner: str, ttl: float) -> None:
        self.store, self.connector, self.owner, self.ttl = store, connector, owner, ttl
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name=f"lease-{connector}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _renew(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                if not self.store.renew_lease(self.connector, self.owner, self.ttl):
                    self.lost = True
                    log.error("lease_lost", connector=self.connector, owner=self.owner)
                    return
            except Exception as exc:  # the database is down: the next checkpoint will tell
                log.warning("lease_renewal_failed", connector=self.connector, error=str(exc))


def run_once(
    config: Config,
    store: StateStore,
    names: Iterable[str] | None = None,
    options: RunOptions | None = None,
) -> list[RunSummary]:
    """One pass over each named (else each enabled) connector, one after the other.

    A connector that fails does not stop the others.
    """
    options = options or RunOptions()
    selected = (
        list(names) if names else [n for n, c in config.connectors.items() if c.settings.enabled]
    )
    summaries = []
    client = None if options.dry_run else _FragmentOnDemand(config.fragment, options.stop)
    try:
        for name in selected:
            if options.stop.is_set():
                break
            run = ConnectorRun(
                config.connectors[name], store, client, config.fragment.batch_size, options
            )
            summaries.append(run.execute())
    finally:
        if client is not None:
            client.close()
    return summaries


def _newer(a: Cursor, b: Cursor) -> bool:
    """Whether `a` is strictly newer than `b`; a cursor of the other kind never is."""
    try:
        return cursor_before(b, a)
    except TypeError:  # CursorKindMismatch: one saved before the connector's cursor_kind changed
        return False


def _with_usable_ids(chunk: list[SourceTicket | BadRecord]) -> list[SourceTicket | BadRecord]:
    """`chunk`, each item whose id the state can't keep made a bad record.

    Such an id is empty or blank (every such ticket would land on one task),
    holds text UTF-8 can't carry (a lone surrogate: it makes no uid, and no
    database takes it), a NUL character (PostgreSQL refuses it), or is longer
    than the state's id columns (PostgreSQL would cut it short, so that it
    never matched again). Refused on every backend alike, whichever connector
    made the ticket (the built-in readers refuse blank ids themselves). The
    ticket is recorded as failed under the id's shown spelling, its cursor
    kept so that the watermark may pass it, and the rest of the pass goes on.
    """
    ids = [item.source_id for item in chunk if item.source_id is not None]
    joined = "".join(ids)
    if (
        joined.isascii()
        and "\x00" not in joined
        and max(map(len, ids), default=0) <= MAX_ID_LENGTH
        and all(map(str.strip, ids))
    ):
        return chunk  # the common case, told in a few passes over the ids, in C
    return [_with_usable_id(item) for item in chunk]


def _with_usable_id(item: SourceTicket | BadRecord) -> SourceTicket | BadRecord:
    source_id = item.source_id
    if source_id is None:
        return item
    shown = storable_text(source_id)
    if not source_id.strip():
        problem = "is empty: each ticket needs an id of its own (is the id field the ticket's id?)"
        shown = repr(source_id)
    elif len(source_id) > MAX_ID_LENGTH:
        problem = (
            f"is {len(source_id):,} characters long; the state keeps ids of up to "
            f"{MAX_ID_LENGTH} (is id_field the ticket's id?)"
        )
        # Cut short for the failed-items key, and told apart by a digest of the whole id.
        digest = hashlib.blake2b(shown.encode("utf-8"), digest_size=6).hexdigest()
        shown = f"{shown[:64]}… (blake2b {digest})"
    elif "\x00" in source_id:
        problem = "holds a NUL character, which the state database can't keep; fix the id"
    elif shown != source_id:
        problem = "holds text UTF-8 can't carry (a lone surrogate); fix the id at the source"
    else:
        return item
    if isinstance(item, BadRecord):
        return replace(item, source_id=None, locator=f"ticket {shown} ({item.locator})")
    return BadRecord(None, f"ticket {shown}", "id", problem, item.record, item.cursor)
