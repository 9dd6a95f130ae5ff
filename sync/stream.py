"""The task stream: tickets become tasks in Fragment, through the stages in order.

    tickets ─> diff (stored hashes, what is out) ─> batch ─> ship ─> checkpoint

A pass (`sync.run`) feeds it chunks of tickets with their stored hashes, and
says where each shipment's checkpoint may move the watermark; the stream
acts on the diff's verdicts, cuts the batch into shipments, keeps up to
`max_in_flight` of them out and checkpoints them in the order they were cut.
It reads no source and takes no lease.

A second stream, Fragment's changes back to a source, is assembled from the
same parts around its own items and sink: a pull of changed tasks (paged like
`sync.pull`, with its own cursor through `sync.watermark`), a map from task to
source update whose items satisfy `sync.diff.Version` and `sync.diff.Hashed`
(so `diff` decides against hashes stored under that stream's namespace), a
`Ship` over a sink whose `push` is `sync.ship.isolate` over one request to
the source (with the source's retry table in place of `sync.ship_policy`'s),
and a `Checkpointer` with its own `FailureLog`, which need only
`sync.checkpoint.Item`s and `sync.batches.Payload`s. A third, comments, is
the same again with comments as items.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence

from connectors.base import BadRecord, Cursor, SourceTicket
from sync.checkpoint import Checkpointer, FailureLog, Mark
from sync.diff import Decision, Queued, Verdict, diff
from sync.errors import SkipTicket
from sync.mapping import NOBODY, Mapper, People, TaskPayload
from sync.pull import SourcePull
from sync.ship import Ship, Shipment
from sync.state import StateStore, StoredTask

IDLE_CHECKPOINT = 5000
"""Checkpoint at least this often (in tickets) even when nothing needs pushing."""

TaskDecision = Decision[SourceTicket, TaskPayload]


class TaskStream:
    """One connector's tickets on their way to Fragment, for one pass.

    `ship` None: a dry run, which sends nothing and records nothing, and
    tells `planned` of each task it would push.
    """

    def __init__(
        self,
        store: StateStore,
        namespace: str,
        mapper: Mapper,
        ship: Ship[SourceTicket, TaskPayload, Mark] | None,
        checkpoints: Checkpointer,
        *,
        batch_size: int,
        pass_started: dt.datetime,
        check_stop: Callable[[], None],
        planned: Callable[[TaskPayload], None] | None = None,
    ) -> None:
        self.store, self.namespace, self.mapper = store, namespace, mapper
        self.ship, self.checkpoints = ship, checkpoints
        self.failures: FailureLog = checkpoints.failures
        self.counts = checkpoints.counts
        self.batch_size, self.pass_started = batch_size, pass_started
        self.check_stop, self.planned = check_stop, planned
        # The batch being cut, by source id: a ticket met twice before it goes out is pushed
        # once, latest wins; those with no stored hash (only their pushes are marked in
        # flight); what its checkpoint records beside it.
        self._batch: dict[str, tuple[SourceTicket, TaskPayload]] = {}
        self._versions: dict[str, Queued] = {}
        self._unrecorded: set[str] = set()
        self._mark = Mark()
        self._since_commit = 0

    # Diff

    def decide(
        self, tickets: list[SourceTicket], stored: dict[str, StoredTask], people: People = NOBODY
    ) -> list[TaskDecision]:
        """What becomes of each of `tickets`, against `stored` and what this pass queued or sent.

        `people`: the emails of their assignees, by source user id (`sync.people`).
        """
        queued = {} if self.ship is None else self.ship.out()
        queued.update(self._versions)
        return diff(
            tickets,
            stored,
            self._map if not people else lambda ticket: self._map(ticket, people),
            queued=queued,
            pass_started=self.pass_started,
            sent_unrecorded=self._sent_unrecorded(tickets, stored),
        )

    def take(
        self, decision: TaskDecision, stored: dict[str, StoredTask], last_error: str | None
    ) -> None:
        """Act on `decision`: queue its payload, count it, or record its failure.

        `last_error`: it is a failed item, with this error: cleared if it turns out
        unchanged, and not news if it fails the same way again.
        """
        ticket, verdict = decision.ticket, decision.verdict
        if verdict is Verdict.PUSH:
            assert decision.payload is not None
            self._batch[ticket.source_id] = (ticket, decision.payload)
            self._versions[ticket.source_id] = Queued(ticket.cursor, decision.payload.content_hash)
            if last_error is not None:
                self._mark.errors[ticket.source_id] = last_error
            if ticket.source_id not in stored:
                self._unrecorded.add(ticket.source_id)
        elif verdict is Verdict.UNCHANGED or verdict is Verdict.SUPERSEDED:
            self.counts.unchanged += 1
            if verdict is Verdict.UNCHANGED and last_error is not None:
                self._mark.resolved.append(ticket.source_id)
        elif verdict is Verdict.NEVER_SENT:
            self.counts.skipped_deleted += 1
        else:
            assert decision.error is not None
            error = decision.error
            failure = self.failures.ticket(ticket, "mapping", error.field, str(error), last_error)
            self._mark.failures.append(failure)

    def feed(
        self,
        items: Sequence[SourceTicket | BadRecord],
        stored: dict[str, StoredTask],
        errors: dict[str, str],
        pull: SourcePull | None = None,
        settings: str | None = None,
        people: People = NOBODY,
    ) -> None:
        """Diff `items` and act on each in order, cutting shipments as the batch fills.

        `errors`: the last error of those that are failed items. `pull`: the
        source's pull they come from (None: failed items tried again), which
        tells where each shipment may move the watermark. `people`: the
        emails of their assignees, by source user id (`sync.people`).
        """
        tickets = [item for item in items if isinstance(item, SourceTicket)]
        decisions = iter(self.decide(tickets, stored, people))
        watermark = _nowhere if pull is None else pull.safe
        for item in items:
            self.check_stop()
            if isinstance(item, BadRecord):
                self.bad_record(item)
            else:
                if pull is not None:
                    self.counts.pulled += 1
                self.take(next(decisions), stored, errors.get(item.source_id))
            if pull is not None and item.cursor is not None:
                pull.observe(item.cursor)
            # One more item dealt with: cut a shipment once the batch is full, or it's been long.
            self._since_commit += 1
            if len(self._batch) >= self.batch_size or self._since_commit >= IDLE_CHECKPOINT:
                self.flush(watermark(), settings)

    def bad_record(self, item: BadRecord) -> None:
        """A record the source could not make a ticket of: recorded as failed."""
        self._mark.failures.append(self.failures.bad_record(item))

    def resolve(self, source_ids: Iterable[str]) -> None:
        """Failed items that need no retry (a later version went through)."""
        self._mark.resolved.extend(source_ids)

    def _map(self, ticket: SourceTicket, people: People = NOBODY) -> TaskPayload:
        if ticket.deleted and not ticket.record:
            return self.mapper.tombstone(ticket)  # a census's: nothing but the id is known
        try:
            return self.mapper.map(ticket, people)
        except SkipTicket:
            if not ticket.deleted:
                raise
            return self.mapper.tombstone(ticket)  # archive it even if it won't map

    def _sent_unrecorded(
        self, tickets: list[SourceTicket], stored: dict[str, StoredTask]
    ) -> set[str]:
        """The deleted tickets with no stored hash whose push went out unrecorded.

        Fragment may hold their tasks, so their tombstones must still be pushed.
        """
        if self.ship is None:
            return set()
        unknown = [t.source_id for t in tickets if t.deleted and t.source_id not in stored]
        return self.store.in_flight(self.namespace, unknown) if unknown else set()

    # Ship and checkpoint

    def flush(
        self,
        watermark: Cursor | None,
        fingerprint: str | None = None,
        snapshot: str | None = None,
        complete: bool = False,
    ) -> None:
        """Cut a shipment of the batch and send it; settle the oldest when too many are out.

        `watermark` is where the checkpoint of this shipment may move the
        watermark; `fingerprint`, the settings the pass runs with, when it
        reads everything (or is `complete`); `snapshot`, the source's content
        token, once the whole pass is through (`complete`).
        """
        batch, self._batch = self._batch, {}
        versions, self._versions = self._versions, {}
        mark, self._mark = self._mark, Mark()
        mark.watermark, mark.fingerprint, mark.snapshot = watermark, fingerprint, snapshot
        mark.complete = complete
        unrecorded = [source_id for source_id in batch if source_id in self._unrecorded]
        self._unrecorded.difference_update(unrecorded)
        self._since_commit = 0
        if self.ship is None:
            for _ticket, payload in batch.values():
                if self.planned:
                    self.planned(payload)
            self.counts.pushed += len(batch)
            return
        for earlier in self.ship.settle_before(batch):
            self.checkpoints.settle(earlier)
        if batch:
            self.check_stop()  # a stop request sends nothing new
            # Written ahead: if the answer is lost, a later deletion of a ticket that has no
            # stored hash still knows to archive its task (one with a hash is archived anyway).
            self.store.mark_in_flight(self.namespace, unrecorded)
        self.ship.send(Shipment(batch, mark, versions=versions))

    def settle_all(self) -> None:
        """Wait for every shipment still out, checkpointing each in order."""
        if self.ship is not None:
            for shipment in self.ship.drain():
                self.checkpoints.settle(shipment)

    def abandon(self) -> None:
        """The pass is failing: wait for every shipment still out and keep what landed.

        Shipments settle in order, moving the watermark, until one fails (see
        `Checkpointer.settle`): nothing behind a failed batch is skipped.
        """
        if self.ship is None:
            return
        for shipment in self.ship.drain():
            try:
                self.checkpoints.settle(shipment)
            except Exception as exc:  # the pass already fails; keep the first error
                self.failures.log.warning("batch_not_checkpointed", error=str(exc))

    def close(self) -> None:
        """Stop the sender threads, once every shipment is settled or abandoned."""
        if self.ship is not None:
            self.ship.close()


def _nowhere() -> None:
    """Where a shipment of failed items tried again may move the watermark: nowhere."""
