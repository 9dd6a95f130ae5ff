"""Pull: what a pass reads, in chunks: a connector's pages and the failed items due again.

Owns the chunks a pass diffs at a time (`LOOKUP_CHUNK`), the ids the state
can't keep (made bad records), the failed items due for another try and the
tickets they recorded, and what the source's cursors tell of its clock. It
does not map, diff, push or checkpoint.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from connectors.base import BadRecord, Connector, Cursor, SourceTicket
from connectors.errors import SourceError
from sync.batches import batched
from sync.failures import RETRY_EVERY_PASS, RETRY_WAIT_CAP
from sync.state import (
    FailedItem,
    StateStore,
    StoredTask,
    storable_text,
    ticket_parts,
)
from sync.state.schema import MAX_ID_LENGTH
from sync.watermark import (
    CLOCK_ALLOWANCE,
    Checkpoint,
    decode_text,
    encode,
    far_ahead,
    later,
    newer,
    pass_ceiling,
    pull_bound,
)
from sync_http import clock

LOOKUP_CHUNK = 500
"""Tickets whose stored hashes are fetched in one query."""
SOURCE_CLOCK_NOTICE = dt.timedelta(seconds=2)
"""A source's clock behind this machine's by more than this is logged (`source_clock_behind`);
a `Date` header's truncation and the network make up to about a second of it."""

Item = SourceTicket | BadRecord


@dataclass(frozen=True)
class RetryPage:
    """A page of failed items to try again: the tickets they recorded, and their stored tasks."""

    tickets: list[SourceTicket]
    stored: dict[str, StoredTask]
    errors: dict[str, str]
    """The last error of each, by source id."""
    resolved: list[str]
    """Items a later version resolved: it went through already, so they are not tried."""


class FailedItemPull:
    """The failed items a pass tries again, a page at a time; `report` says how it went.

    Every item if `hurry`, else those due before the pass `began` (those tried
    again in it are due after that); `untried_since`: only those not tried
    since then. `waiting`: how many are not due, when the pass read it at its
    start (`StateStore.pass_start`).
    """

    def __init__(
        self,
        store: StateStore,
        namespace: str,
        log: Any,
        *,
        hurry: bool,
        began: dt.datetime,
        untried_since: dt.datetime | None = None,
        waiting: int | None = None,
    ) -> None:
        self.store, self.namespace, self.log = store, namespace, log
        self.hurry, self.began, self.untried_since = hurry, began, untried_since
        self.retried = 0
        self.waiting = waiting

    def pages(self) -> Iterator[RetryPage]:
        store, namespace = self.store, self.namespace
        if self.hurry:
            pages = store.failed_item_pages(namespace, LOOKUP_CHUNK)
        else:
            if self.waiting is None:
                self.waiting = store.waiting_count(namespace, self.began)
            pages = store.due_failed_item_pages(namespace, LOOKUP_CHUNK, self.began)
        for page in pages:
            items = [item for item in page if item.retryable and self._untried(item)]
            stored = store.stored_tasks(namespace, [item.source_id for item in items])
            page_ = self._page(items, stored)
            self.retried += len(page_.tickets)
            yield page_

    def report(self) -> None:
        if self.retried:
            self.log.info("failed_items_retried", count=self.retried)
        if self.waiting:
            self.log.info(
                "failed_items_waiting",
                count=self.waiting,
                detail=f"failing for over {_minutes(RETRY_EVERY_PASS)}: each is tried again "
                f"after as long as it has been failing, at most {_minutes(RETRY_WAIT_CAP)} "
                "(sooner once the settings change; `python -m sync failures retry` now)",
            )

    def _untried(self, item: FailedItem) -> bool:
        since = self.untried_since
        return since is None or item.last_seen is None or item.last_seen < since

    def _page(self, items: list[FailedItem], stored: dict[str, StoredTask]) -> RetryPage:
        page = RetryPage([], stored, {}, [])
        for item in items:
            assert item.record is not None and item.cursor is not None
            cursor = decode_text(item.cursor)
            known = stored.get(item.source_id)
            if known is not None and newer(decode_text(known.cursor), cursor):
                page.resolved.append(item.source_id)
                continue
            try:
                record, comments = ticket_parts(json.loads(item.record))
            except (ValueError, RecursionError, KeyError, TypeError) as exc:
                # Stored by hand, or nested too deep.
                self.log.warning("failed_item_unreadable", source_id=item.source_id, error=str(exc))
                continue
            page.tickets.append(
                SourceTicket(item.source_id, cursor, record, item.deleted, comments)
            )
            page.errors[item.source_id] = item.error
        return page


def failed_errors(
    store: StateStore, namespace: str, tickets: list[SourceTicket], any_failed: bool
) -> dict[str, str]:
    """The last error of each of `tickets` that is a failed item, by source id.

    `any_failed`: the connector had failed items when the pass began (else none
    can be, and the query is skipped).
    """
    if not any_failed:
        return {}
    return store.failed_errors(namespace, (t.source_id for t in tickets))


def _minutes(span: dt.timedelta) -> str:
    return f"{span.total_seconds() / 60:g} min"


class SourcePull:
    """One pull from a connector: its chunks, and how far its checkpoints may move the watermark.

    Tracks the cursors as the chunks are consumed (`observe`, in stream order)
    and what the source tells of its clock: checkpoints stop at the time the
    pass started, on the earlier of the two clocks.
    """

    def __init__(
        self,
        source: Connector,
        name: str,
        watermark: Cursor | None,
        pass_started: dt.datetime,
        log: Any,
    ) -> None:
        self.source, self.name, self.watermark, self.log = source, name, watermark, log
        self.pass_started = pass_started
        self.checkpoint = Checkpoint(ordered=source.ordered)
        self.token: str | None = None
        """The source's content token (`unchanged`)."""
        self.stamped_offset: dt.timedelta | None = None
        """A lower bound of the source's clock offset, from its cursors (`_read_stamps`)."""

    def unchanged(
        self,
        store: StateStore,
        namespace: str,
        previous: str | None,
        *,
        full: bool,
        dry_run: bool,
    ) -> bool:
        """Whether the source vouches for the content of the last complete pass: nothing to read.

        `previous`: the token kept with that pass, as the pass read it at its
        start. Takes the source's content token (`token`) first, before
        reading: a change during the pass counts. Never true for a `full` pass.
        """
        source = self.source
        snapshot = self.token = source.snapshot(previous)
        if (
            full
            or snapshot is None
            or previous is None
            or not source.same_content(snapshot, previous)
        ):
            return False
        if snapshot != previous and not dry_run:
            store.refresh_snapshot(namespace, previous, snapshot)
        self.log.info("source_unchanged", detail="same content as the last complete pass")
        return True

    def since(self, lookback: dt.timedelta | None) -> Cursor | None:
        """Where to read from: the watermark (inclusive) minus the lookback.

        `lookback`: the configured one; None: what the source's filter needs
        (`Connector.default_lookback`).
        """
        if lookback is None:
            lookback = self.source.default_lookback
        return pull_bound(self.watermark, lookback)

    def chunks(self, since: Cursor | None) -> Iterator[list[Item]]:
        """The source's tickets from `since`, in chunks of `LOOKUP_CHUNK`, ids made usable.

        When the source fails part-way, what it gave before comes out first,
        then the `SourceError`.
        """
        for chunk in batched(self.source.pull(since), LOOKUP_CHUNK, flush_on=SourceError):
            chunk = with_usable_ids(chunk)
            if self.source.cursors_from_source_clock:
                self._read_stamps(chunk)
            yield chunk

    def observe(self, cursor: Cursor) -> None:
        """Note an item's cursor once it is dealt with; raises `SourceError` on a kind change."""
        checkpoint = self.checkpoint
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

    def safe(self) -> Cursor | None:
        """Where a checkpoint may move the watermark now (`Checkpoint.safe`)."""
        # The source's clock is known once it has answered: before each checkpoint, not at start.
        self.checkpoint.ceiling = self._ceiling()
        return self.checkpoint.safe()

    def complete(self) -> Cursor | None:
        """Where the watermark goes once the whole pull is through; logs a clock amiss."""
        offset = self.source.clock_offset()  # the cursors' bound says more than the clock
        if offset is not None and offset < -SOURCE_CLOCK_NOTICE:
            self.log.info(
                "source_clock_behind",
                seconds=round(-offset.total_seconds(), 1),
                detail="the source's clock is behind this machine's by at least this; "
                "checkpoints stop at the time the pass started on the source's clock",
            )
        self.checkpoint.ceiling = self._ceiling()
        if far_ahead(ahead := self.checkpoint.ahead(), self.pass_started):
            assert ahead is not None
            self.log.warning(
                "cursor_ahead_of_clock",
                cursor=encode(ahead),
                detail=f"a ticket's cursor is more than {CLOCK_ALLOWANCE} ahead of this "
                "machine's clock; the watermark stops at the time this pass started, so "
                "that later changes are still read. Fix the value at the source (or the "
                "connector's timezone)",
            )
        return self.checkpoint.complete()

    def _ceiling(self) -> dt.datetime:
        """Where this pass's checkpoints stop: its start, on the earlier of the two clocks.

        What the source tells of its clock (`Connector.clock_offset`), else
        what the cursors it stamped show (`_read_stamps`).
        """
        told = self.source.clock_offset()
        return pass_ceiling(self.pass_started, told if told is not None else self.stamped_offset)

    def _read_stamps(self, chunk: list[Item]) -> None:
        """Raise `stamped_offset` to what `chunk`'s cursors show of the source's clock.

        Each cursor is a time the source's clock had passed when it answered,
        before now: the newest, minus this machine's time now, is at most the
        offset. For a source that tells no time (Redmine served by thin sends
        no `Date`). A cursor far ahead is a bad value, not the clock.
        """
        now = clock.now()
        stamps = (
            t.cursor
            for t in chunk
            if isinstance(t, SourceTicket) and isinstance(t.cursor, dt.datetime)
        )
        newest = max((c for c in stamps if not far_ahead(c, now)), default=None)
        if newest is None:
            return
        offset = newest - now
        if self.stamped_offset is None or offset > self.stamped_offset:
            self.stamped_offset = offset


def with_usable_ids(chunk: list[Item]) -> list[Item]:
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


def _with_usable_id(item: Item) -> Item:
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
