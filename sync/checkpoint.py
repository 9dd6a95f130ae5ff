"""Checkpoint: what a pass records of each settled shipment, in the order they were cut.

Each shipment's checkpoint is one transaction: the hashes of what Fragment
acknowledged, the failed items (those it refused included) and the
watermark the shipment reached, never past the pass's ceiling (the caller
gives the watermark, `sync.watermark.Checkpoint.safe`). Once a shipment
fails to settle, later ones still record what landed but never move the
watermark: it would pass the failed shipment's tickets. The failed items are
made, counted and logged here too (`FailureLog`), whichever stage met them.

It knows the items it records by two small protocols, not by the task stream's
types: an `Item` (a source id, a cursor, whether it is a deletion, the record
it came from; a `SourceTicket` is one) and a `sync.batches.Payload` (what was
sent of it: a uid, a content hash; a `TaskPayload` is one). Another stream
(Fragment's changes back to a source) checkpoints its own items the same way.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from connectors.base import BadRecord, Cursor
from sync.batches import Payload, Rejected
from sync.diff import Version
from sync.ship import Shipment
from sync.state import FailedItem, StateStore, error_text, record_json, ticket_json
from sync.watermark import CLOCK_ALLOWANCE, encode, far_ahead, later

FAILURES_LOGGED = 100
"""New failures a pass logs one by one as warnings; the rest go in one line at its end."""


@dataclass
class PassCounts:
    pulled: int = 0
    pushed: int = 0
    unchanged: int = 0
    failed: int = 0
    requests: int = 0
    skipped_deleted: int = 0
    """Deleted before they ever reached Fragment: nothing to archive."""
    comments_posted: int = 0
    comments_failed: int = 0
    """Comments posted to their tasks, and refused by Fragment, this pass (`sync.comments`)."""


@dataclass
class Mark:
    """What a shipment's checkpoint records beside what Fragment acknowledged."""

    failures: list[FailedItem] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)
    """Failed items that went through, or turned out unchanged."""
    errors: dict[str, str] = field(default_factory=dict)
    """The last error of each failed item in the batch, by source id."""
    watermark: Cursor | None = None
    """Where the watermark may go once this and every earlier shipment are settled."""
    fingerprint: str | None = None
    snapshot: str | None = None
    complete: bool = False
    """The pass's last shipment: the whole pass is through once it settles."""


def sane(watermark: Cursor | None, now: dt.datetime, log: Any) -> Cursor | None:
    """The stored `watermark` to resume from; None, logged, if it is far ahead of `now`.

    One stored before watermarks were held back: every change since a bad future
    cursor fell behind it. The pass reads everything again; its checkpoint stores
    a sane one.
    """
    if not far_ahead(watermark, now):
        return watermark
    assert watermark is not None
    log.warning(
        "watermark_ahead_of_clock",
        watermark=encode(watermark),
        detail=f"more than {CLOCK_ALLOWANCE} ahead of this machine's clock; "
        "reading every ticket again",
    )
    return None


class Item(Version, Protocol):
    """An item a stream carries, as a failed item records it (`SourceTicket` is one)."""

    @property
    def record(self) -> Mapping[str, Any]: ...


ItemShipment = Shipment[Item, Payload, Mark]
"""A shipment of any stream's items: `Item`s, sent as `Payload`s, checkpointed with a `Mark`."""


class FailureLog:
    """The failed items a pass records: made, counted and logged (`report` at its end)."""

    def __init__(self, name: str, uid: Callable[[str], str], counts: PassCounts, log: Any) -> None:
        self.name, self.uid, self.counts, self.log = name, uid, counts, log
        self.still_failing = 0
        self.new_failures = 0

    def ticket(
        self,
        ticket: Item,
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
            self.still_failing += 1
            self.log.debug("ticket_still_failing", source_id=ticket.source_id, stage=stage)
        else:
            self._new(
                "ticket_failed", source_id=ticket.source_id, stage=stage, field=field, error=message
            )
        self.counts.failed += 1
        return FailedItem(
            source_id=ticket.source_id,
            uid=self.uid(ticket.source_id),
            stage=stage,
            field=field,
            error=message,
            cursor=encode(ticket.cursor),
            deleted=ticket.deleted,
            record=ticket_json(ticket.record, getattr(ticket, "comments", None)),
        )

    def rejected(self, ticket: Item, rejected: Rejected, last_error: str | None) -> FailedItem:
        """A ticket Fragment refused."""
        message = (
            f"connector {self.name!r}, ticket {rejected.payload.source_id!r}: "
            f"Fragment rejected it: {rejected.message}"
        )
        return self.ticket(ticket, "rejected", rejected.field, message, last_error)

    def bad_record(self, item: BadRecord) -> FailedItem:
        """A record the source gave that is no ticket."""
        message = error_text(
            f"connector {self.name!r}, {item.locator}, field {item.field!r}: {item.message}"
        )
        self._new("bad_record", source_id=item.source_id, field=item.field, error=message)
        self.counts.failed += 1
        return FailedItem(
            source_id=item.source_id or item.locator,
            uid=self.uid(item.source_id) if item.source_id else None,
            stage="source",
            field=item.field,
            error=message,
            cursor=None if item.cursor is None else encode(item.cursor),
            record=None if item.record is None else record_json(item.record),
        )

    def report(self) -> None:
        """One line a pass, not one per item: a broken mapping fails them all again each pass."""
        if self.still_failing:
            self.log.warning(
                "failed_items_still_failing",
                count=self.still_failing,
                detail="the same error as when last tried; `python -m sync failures` lists them",
            )
        if self.new_failures > FAILURES_LOGGED:
            self.log.warning(
                "more_tickets_failed",
                count=self.new_failures - FAILURES_LOGGED,
                detail=f"a pass logs its first {FAILURES_LOGGED} failures one by one (the rest "
                "at debug level); `python -m sync failures list` lists them all",
            )

    def _new(self, event: str, **fields: Any) -> None:
        """Log a new failure: a warning for the pass's first `FAILURES_LOGGED`, then debug.

        A mapping typo fails every ticket of a backfill: a warning each was a
        million lines for a million tickets, at about 70 µs apiece.
        """
        self.new_failures += 1
        if self.new_failures <= FAILURES_LOGGED:
            self.log.warning(event, **fields)
        else:
            self.log.debug(event, **fields)


class Checkpointer:
    """Commits settled shipments, in the order they were cut, for one connector's pass."""

    def __init__(
        self,
        store: StateStore,
        namespace: str,
        failures: FailureLog,
        *,
        watermark: Cursor | None,
        stored_watermark: Cursor | None,
        lease: tuple[str, float] | None,
    ) -> None:
        self.store, self.namespace, self.failures, self.lease = store, namespace, failures, lease
        self.counts = failures.counts
        self.watermark = watermark
        self.isolation_requests = 0
        self.commits = 0
        """Checkpoints committed: the state's tasks or failed items may have changed."""
        self._stored_watermark = stored_watermark
        """What the state holds: a watermark held back (see `CLOCK_ALLOWANCE`) differs."""
        self._held = False
        """A shipment failed to settle: no later checkpoint may move the watermark."""
        self._settings_recorded = False
        """A checkpoint of this pass recorded its settings (`_settings_reached`)."""

    def reads_everything(self, fingerprint: str, full: bool, stored: str | None) -> bool:
        """Whether this pass reads every ticket again, and says why when it is news.

        It does with no watermark, when `full`, and when the settings (their
        `fingerprint`) differ from those of the last complete pass (`stored`,
        as the pass read it at its start): a changed mapping alters tasks
        behind the watermark too.
        """
        if full or self.watermark is None:
            return True
        if stored != fingerprint:
            self.failures.log.info("settings_changed", detail="reading every ticket again")
            return True
        return False

    def settle(self, shipment: ItemShipment) -> None:
        """Wait for `shipment`'s answer and checkpoint it; every earlier one is settled."""
        try:
            self._commit(shipment, move_watermark=not self._held)
        except BaseException:
            self._held = True
            raise

    def _commit(self, shipment: ItemShipment, move_watermark: bool) -> None:
        mark, result = shipment.mark, shipment.sent
        try:
            shipment.wait()
        finally:  # a batch whose retries ran out sent requests too
            self.counts.requests += result.requests
            self.isolation_requests += result.isolation_requests
        failures = mark.failures + [
            self.failures.rejected(
                shipment.batch[r.payload.source_id][0], r, mark.errors.get(r.payload.source_id)
            )
            for r in result.rejected
        ]
        self.counts.pushed += len(result.acked)
        new_watermark = later(self.watermark, mark.watermark) if move_watermark else None
        fingerprint = self._settings_reached(mark, move_watermark, new_watermark)
        self.store.commit_batch(
            self.namespace,
            acked=result.acked,
            failed=failures,
            resolved=mark.resolved,
            watermark=new_watermark if new_watermark != self._stored_watermark else None,
            fingerprint=fingerprint,
            snapshot=mark.snapshot,
            lease=self.lease,
        )
        self.commits += 1
        self._settings_recorded |= fingerprint is not None
        if move_watermark:
            self.watermark = new_watermark
            if new_watermark is not None:
                self._stored_watermark = new_watermark

    def _settings_reached(
        self, mark: Mark, move_watermark: bool, new_watermark: Cursor | None
    ) -> str | None:
        """The settings fingerprint to record with `mark`'s checkpoint, if any.

        A complete pass records it. So does the first checkpoint of a pass
        reading everything whose position is at or past the watermark: every
        ticket up to the watermark has then gone through with these settings,
        so the next pass may resume from it instead of starting over (a first
        backfill longer than `timeout`, or cut short by a crash or the source).
        Recording it clears the source's content token too (`snapshot` is
        None until the pass is complete): the token vouches for a complete pass.
        """
        if mark.fingerprint is None or not move_watermark:
            return None
        if mark.complete:
            return mark.fingerprint
        if self._settings_recorded or new_watermark is None:
            return None
        return mark.fingerprint if new_watermark == mark.watermark else None
