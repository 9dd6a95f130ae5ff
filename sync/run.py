"""The pass orchestrator: one pass of one connector, source to checkpoint.

    failed items ─┐
                  ├─> people ─> map ─> diff (stored hashes) ─> batch ─> Fragment ─> checkpoint
    connector  ───┘
    sync.pull       sync.people mapping sync.diff                   sync.ship      sync.checkpoint

A pass first retries the connector's failed items, then pulls from the
watermark (inclusive, minus the lookback). Each chunk's assignees are resolved
to emails (`sync.people`, with `mapping.assignee` only) before it is mapped.
Every acknowledged batch is checkpointed in one transaction with its hashes,
its failed items and the watermark of the last ticket fully dealt with, never past the time the pass
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
unordered source gives them in. `sync.stream` assembles diff, ship and
checkpoint; `sync.lease` keeps one process on a connector at a time.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterable
from dataclasses import asdict

import structlog

from connectors.base import Connector, Cursor, SourceTicket
from connectors.errors import SourceError, StopRequested
from connectors.registry import connector_class
from connectors.values import record_zone
from sync.checkpoint import FAILURES_LOGGED, Checkpointer, FailureLog, Mark, PassCounts, sane
from sync.comments import CommentClient, CommentIntake, CommentPoster
from sync.config import Config, ConnectorConfig
from sync.lease import LeaseKeeper, check_turn, holder_text, leased
from sync.mapping import CommentSummary, Mapper, TaskPayload
from sync.people import PeopleResolver
from sync.pull import FailedItemPull, SourcePull, failed_errors, with_usable_ids
from sync.ship import Fragment, FragmentOnDemand, Ship
from sync.state import (
    STATE_FAILURES,
    LeaseLost,
    PassRecord,
    PassStart,
    StateStore,
    state_failure_message,
    utcnow,
)
from sync.state.comments import CommentLedger
from sync.stream import TaskStream
from sync.summary import (
    RUN_OBSERVERS,
    STOP_SIGNALS,
    ProgressReporter,
    RunObserver,
    RunOptions,
    RunSummary,
    outcome_of,
    owner_id,
)
from sync.watermark import encode

__all__ = ["FAILURES_LOGGED", "RUN_OBSERVERS", "STOP_SIGNALS", "ConnectorRun", "ProgressReporter"]
__all__ += ["RunObserver", "RunOptions", "RunSummary", "owner_id", "run_once", "with_usable_ids"]

log = structlog.get_logger("sync.run")

COMMENT_SHARE = 0.5
"""The share of a connector's interval its pass may spend posting comments, from its start."""
DEFAULT_COMMENT_TURN = dt.timedelta(minutes=5)
"""The interval `COMMENT_SHARE` is of for a connector on a cron line."""


class ConnectorRun:
    """One pass of one connector: pull → map → diff → ship → checkpoint. Call `execute()` once."""

    def __init__(
        self,
        connector: ConnectorConfig,
        store: StateStore,
        client: Fragment | None,
        batch_size: int,
        options: RunOptions,
    ) -> None:
        self.config, self.name, self.namespace = connector, connector.name, connector.uid_namespace
        self.store, self.client, self.options = store, client, options
        self.batch_size = connector.settings.batch_size or batch_size
        zone = record_zone(connector.options)
        conversation = connector.settings.conversation
        self.mapper = Mapper(
            connector.name, self.namespace, connector.settings.mapping, zone=zone,
            comments=CommentSummary(conversation.excerpt, conversation.private)
            if connector.reads_comments else None,
        )  # fmt: skip
        self.counts = PassCounts()
        self.log = log.bind(connector=self.name)
        self.people = PeopleResolver(
            connector, store, self.mapper, self.log, dry_run=options.dry_run
        )
        self._fingerprint = ""
        """The settings' fingerprint this pass runs with (`PeopleResolver.fingerprint`)."""
        self.checkpoints: Checkpointer | None = None
        self._lease_keeper: LeaseKeeper | None = None
        self._deadline: float | None = None
        self._began = utcnow()
        # Whole seconds: MySQL kept no fraction before migration 0007, and a pushed_at
        # written in this pass's first second must still read as this pass's.
        self._pass_started = self._began.replace(microsecond=0)
        self._had_failures = False  # the connector had failed items when the pass began
        self._start: PassStart | None = None
        """What the pass read of its connector's state as it began (one query)."""
        self._run_id: str | None = None
        self._running = False
        """Its `runs` row is written: it does more than an idle pass (`_begin_work`)."""
        self._reported: RunSummary | None = None
        """The pass's summary, once logged and told to the observers."""
        self._intake: CommentIntake | None = None
        """Comment sync's, when it is on: keeps the comments of the tickets read."""
        self.comments = CommentLedger(store)
        self._comment_backfill = False
        """This pass reads every ticket for the comments made before comment sync began."""

    @property
    def watermark(self) -> Cursor | None:
        return None if self.checkpoints is None else self.checkpoints.watermark

    def execute(self) -> RunSummary:
        """Run the pass; never raises for a failure of this connector, it reports it.

        A state database that fails (out of reach, its pool exhausted, a
        statement refused) fails the pass as a source out of reach does: one
        line, one failed pass counted, and the next pass tries again.
        """
        started = time.monotonic()
        try:
            return self._execute_leased(started)
        except STATE_FAILURES as exc:
            if self._reported is not None:
                # Reported already; only its lease could not be released (it expires on
                # its own, and the next pass takes it).
                return self._reported
            return self._summary(started, self._run_id, "failed", state_failure_message(exc))

    def _execute_leased(self, started: float) -> RunSummary:
        if self.options.dry_run:
            return self._execute(started)
        o = self.options
        lease = leased(
            self.store, self.namespace, o.owner, o.lease_ttl,
            wait=o.wait_for_lease, stop=o.stop, held=o.lease_held,
        )  # fmt: skip
        with lease as self._lease_keeper:
            if self._lease_keeper is None:
                who = holder_text(self.store, self.namespace)
                self.log.info("connector_busy", holder=who)
                message = f"connector {self.name!r} is being run by {who}"
                return self._summary(started, None, "busy", message)
            self._write_back()
            return self._execute(started)

    def _write_back(self) -> None:
        """Two-way sync's pass (`sync.write_back`), when configured: before the forward one,
        which then reads the tickets it changed and pushes them. Its failure is logged in
        one line and never stops the forward pass; a stop request does."""
        if not self.config.settings.write_back.enabled or self.client is None:
            return
        # Here, not at the top: it loads the HTTP stack, which a pass with nothing to push
        # never needs (tests/sync/shell/test_startup.py).
        from sync.write_back import ConnectorWriteBack

        options = self.options
        source = connector_class(self.config.kind)(self.name, self.config.options, options.stop)
        try:
            ConnectorWriteBack(self.config, self.store, self.client, source).execute()
        except (StopRequested, LeaseLost):
            raise  # a stop request (a `RunInterrupted` too) or another process's turn
        except Exception as exc:
            _, error = outcome_of(exc, self.log)
            self.log.warning("write_back_failed", error=error)
        finally:
            source.close()

    def _execute(self, started: float) -> RunSummary:
        self._started = started
        self._deadline = started + self.config.settings.pass_timeout.total_seconds()
        # All an idle pass reads, in one query; its run is written only once it does more.
        start = self._start = self.store.pass_start(
            self.namespace, self._began, with_people=self.people.active
        )
        stored = watermark = start.watermark
        run_id = self._run_id = None if self.options.dry_run else str(uuid.uuid4())
        self.log = self.log.bind(run_id=run_id)
        self.people.log = self.log
        # Taken before anything is read: an email that changes during the pass makes the
        # next one read every ticket again.
        self._fingerprint = self.people.fingerprint_with(
            self.config.fingerprint(), start.people_changed_at
        )
        watermark = sane(watermark, self._pass_started, self.log)
        for observer in RUN_OBSERVERS:
            observer.started(self.name, run_id)
        stream = self._stream(watermark, stored)
        error: str | None = None
        outcome = "ok"
        source: Connector | None = None
        try:
            try:
                source = connector_class(self.config.kind)(
                    self.name, self.config.options, self.options.stop
                )
                source.read_comments = self.config.reads_comments
                self._had_failures = start.failed
                self._intake = self._comment_intake(source)
                self._phases(stream, source)
                stream.settle_all()
                stream.failures.report()
                self._post_comments()
            except BaseException:
                stream.abandon()
                raise
        except Exception as exc:
            outcome, error = outcome_of(exc, self.log)
        finally:
            stream.close()
            if source is not None:
                source.close()
            if self.options.progress:
                self.options.progress.finish(self.name)
        if run_id is not None:
            try:
                self._record(run_id, outcome, error, stored)
            except STATE_FAILURES as exc:
                ended = "" if error is None else f" (the pass had ended {outcome}: {error})"
                outcome, error = "failed", state_failure_message(exc) + ended
        return self._summary(started, run_id, outcome, error)

    def _begin_work(self) -> None:
        """Write the pass's run as running, once: it reads its source or tries failed items.

        An idle pass never gets here: its run is written (or not) as it ends.
        """
        if self._running or self._run_id is None or self._start is None:
            return
        self.store.start_run(self.namespace, self.name, self._start.watermark, self._run_id)
        self._running = True

    def _record(self, run_id: str, outcome: str, error: str | None, stored: Cursor | None) -> None:
        """Keep how the pass ended: its connector's summary row, and its run if kept."""
        assert self._start is not None
        self.store.finish_pass(
            PassRecord(
                connector=self.namespace,
                name=self.name,
                run_id=run_id,
                started_at=self._began,
                ended_at=utcnow(),
                outcome=outcome,
                error=error,
                counts=asdict(self.counts),
                watermark_before=None if stored is None else encode(stored),
                watermark_after=None if self.watermark is None else encode(self.watermark),
                running=self._running,
                changed=self.checkpoints is not None and self.checkpoints.commits > 0,
                last_recorded=self._start.last_recorded,
            )
        )

    def _stream(self, watermark: Cursor | None, stored: Cursor | None) -> TaskStream:
        """The stages this pass's tickets go through, from the diff to the checkpoint."""
        failures = FailureLog(self.name, self.mapper.uid, self.counts, self.log)
        o = self.options
        self.checkpoints = Checkpointer(
            self.store, self.namespace, failures, watermark=watermark, stored_watermark=stored,
            lease=None if self._lease_keeper is None else (o.owner, o.lease_ttl),
        )  # fmt: skip
        ship = None
        if self.client is not None and not o.dry_run:
            in_flight = self.client.settings.max_in_flight
            ship = Ship[SourceTicket, TaskPayload, Mark](
                self.client, self.batch_size, in_flight, self.name
            )
        planned = o.planned
        return TaskStream(
            self.store, self.namespace, self.mapper, ship, self.checkpoints,
            batch_size=self.batch_size, pass_started=self._pass_started,
            check_stop=self._check_stop,
            planned=None if planned is None else lambda payload: planned(self.name, payload),
        )  # fmt: skip

    def _phases(self, stream: TaskStream, source: Connector) -> None:
        """Retry the failed items and pull what changed, in the order the docstring says."""
        assert self.checkpoints is not None
        full = self.options.full or self._comment_backfill
        assert self._start is not None
        if self.options.retry_only:
            self._retry_failed(stream, source, hurry=True)
        elif self.checkpoints.reads_everything(self._fingerprint, full, self._start.fingerprint):
            # The pull tries the failed items it meets (their latest version): trying them
            # first as well sent and counted each twice. Then those it did not meet, at once:
            # the settings may be fixed for them too, and a source failing part-way must not
            # hold them back.
            try:
                self._pull(stream, source, full=True)
            except SourceError:
                self._retry_unmet(stream, source)
                raise
            self._retry_unmet(stream, source)
        else:
            self._retry_failed(stream, source, hurry=False)
            self._pull(stream, source, full=False)

    def _summary(
        self, started: float, run_id: str | None, outcome: str, error: str | None
    ) -> RunSummary:
        summary = RunSummary(
            name=self.name,
            ok=outcome == "ok",
            watermark=None if self.watermark is None else encode(self.watermark),
            duration_s=round(time.monotonic() - started, 3),
            run_id=run_id,
            isolation_requests=0
            if self.checkpoints is None
            else self.checkpoints.isolation_requests,
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

    def _retry_unmet(self, stream: TaskStream, source: Connector) -> None:
        """After a pull meant to read everything: the failed items it did not meet."""
        stream.settle_all()  # what the pull pushed is recorded: not tried again
        self._retry_failed(stream, source, hurry=True, untried_since=self._began)

    def _retry_failed(
        self,
        stream: TaskStream,
        source: Connector,
        *,
        hurry: bool,
        untried_since: dt.datetime | None = None,
    ) -> None:
        """Map and push the failed items again: the mapping or the data may be fixed now.

        A page at a time, checkpointed like a pull: a broken mapping can leave
        every ticket of a backfill failed, and its fix must not need them all
        in memory at once. Only the items due (`sync.failures`) unless
        `hurry`; `untried_since`: only the items not tried since then.
        """
        if not self._had_failures:
            return
        assert self._start is not None
        failed = FailedItemPull(
            self.store, self.namespace, self.log,
            hurry=hurry, began=self._began, untried_since=untried_since,
            waiting=None if hurry else self._start.waiting,
        )  # fmt: skip
        if not hurry and not self._start.due:
            failed.report()  # those waiting: nothing to read, nothing to checkpoint
            return
        self._begin_work()
        for page in failed.pages():
            stream.resolve(page.resolved)
            people = self.people.lookup(source, page.tickets)
            stream.feed(page.tickets, page.stored, page.errors, people=people)
        stream.flush(watermark=None)
        stream.settle_all()
        failed.report()

    def _pull(self, stream: TaskStream, source: Connector, *, full: bool) -> None:
        """Read what changed since the watermark (`full`: every ticket), and push it."""
        fingerprint = self._fingerprint
        pull = SourcePull(source, self.name, self.watermark, self._pass_started, self.log)
        assert self._start is not None
        previous, dry_run = self._start.snapshot, self.options.dry_run
        if pull.unchanged(self.store, self.namespace, previous, full=full, dry_run=dry_run):
            return
        self._begin_work()
        since = None if full else pull.since(self.config.settings.lookback)
        # Mid-pass checkpoints of a pass that reads everything record its settings once
        # they reach the watermark (see `Checkpointer`): a first backfill cut short resumes.
        settings = fingerprint if full else None
        expected = source.estimate(since)
        self.log.info("pull_started", since=None if since is None else encode(since))
        consumed = 0
        try:
            for chunk in pull.chunks(since):
                tickets = [item for item in chunk if isinstance(item, SourceTicket)]
                people = self.people.lookup(source, tickets)
                if self._intake is not None:
                    self._intake.take(tickets)  # before the checkpoint passes them
                stored = self.store.stored_tasks(self.namespace, (t.source_id for t in tickets))
                errors = failed_errors(self.store, self.namespace, tickets, self._had_failures)
                stream.feed(chunk, stored, errors, pull, settings, people)
                consumed += len(chunk)
                if self.options.progress:
                    self.options.progress.update(self.name, consumed, expected)
        except SourceError:
            # Keep what was read before the source failed: it goes out and is checkpointed as
            # the pass fails (`TaskStream.abandon`): a source failing part-way still progresses.
            stream.flush(pull.safe(), settings)
            raise
        stream.flush(pull.complete(), fingerprint, pull.token, complete=True)
        if self._comment_backfill:
            stream.settle_all()
            self.comments.backfilled(self.namespace, self._began)

    # Comment sync (sync.comments)

    def _comment_intake(self, source: Connector) -> CommentIntake | None:
        """The intake of this pass's comments, when comment sync is on (not in a dry run)."""
        conversation = self.config.settings.conversation
        if not conversation.sync or self.options.dry_run:
            return None  # a connector that can't read comments has failed at config load
        source.read_comments = True
        start = self.comments.start(self.namespace, self._began)
        self._comment_backfill = conversation.backfill and start.backfilled_at is None
        if self._comment_backfill:
            self.log.info("comment_backfill", detail="reading every ticket for older comments")
        return CommentIntake(self.comments, self.namespace, start, backfill=conversation.backfill)

    def _post_comments(self) -> None:
        """Post the pending comments, with what task pushes leave, for a share of the turn.

        At most `COMMENT_SHARE` of the connector's interval from the pass's
        start (cron: of 5 minutes), so the next pass starts on time; what is
        left goes out in later passes.
        """
        client: object = self.client  # Fragment's client posts comments; a test's may not
        if self._intake is None or not isinstance(client, CommentClient):
            return
        self._begin_work()
        interval = self.config.settings.schedule.interval or DEFAULT_COMMENT_TURN
        until = self._started + COMMENT_SHARE * interval.total_seconds()
        o = self.options
        poster = CommentPoster(
            self.comments, client, self.namespace, self.name, self.log,
            check_stop=self._check_stop, until=until,
            lease=None if self._lease_keeper is None else (o.owner, o.lease_ttl),
        )  # fmt: skip
        try:
            poster.post_due()
        finally:
            self.counts.comments_posted += poster.count.posted
            self.counts.comments_failed += poster.count.failed
            self.counts.requests += poster.count.requests

    def _check_stop(self) -> None:
        settings = self.config.settings
        default = ", the default" if settings.timeout is None else ""
        check_turn(
            self.name,
            self._lease_keeper,
            self.options.stop,
            self._deadline,
            stopped="stop requested; the pass ends at its last checkpoint",
            timed_out=(
                f"timed out after {settings.pass_timeout} (connectors.{self.name}.timeout"
                f"{default}); the pass stopped at its last checkpoint and the next resumes "
                "there. Raise the timeout for a longer backfill; a source whose pages never "
                "end needs its paging fixed"
            ),
        )


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
    client = None if options.dry_run else FragmentOnDemand(config.fragment, options.stop)
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
