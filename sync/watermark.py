"""Watermark arithmetic: where a pull starts and how far a checkpoint may move.

Pure functions and one small tracker over plain values; no SQL, no HTTP.

The rule this module keeps: the watermark never passes a ticket that was
neither acknowledged by Fragment nor recorded as failed, nor the time its pass
started. A change made after that has a later cursor, which the next pass must
still read: one ticket dated 9999-12-31 by a source's bad value would
otherwise put every later change behind the bound. Cursors are stamped by the
source's clock, so that time is taken on the earlier of the two clocks
(`pass_ceiling`): with this machine's clock ahead, a change made during the
pass could otherwise be stamped before the ceiling and passed. Pulls are inclusive
(`cursor >= bound`) and start a lookback before the watermark, so tickets
sharing the watermark's timestamp, or committed late with an older one, are
read again; the content-hash diff then drops the ones already pushed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from connectors.base import Cursor, cursor_before
from connectors.values import parse_datetime

CLOCK_ALLOWANCE = dt.timedelta(hours=1)
"""How far ahead of this machine's clock a date-time cursor is taken for a bad
value (or a source clock or time zone set wrong), not for skew."""


def pass_ceiling(started: dt.datetime, source_offset: dt.timedelta | None) -> dt.datetime:
    """Where a pass's date-time checkpoints stop: its start, on the earlier of two clocks.

    `started` is this machine's time when the pass began; `source_offset`,
    how far the source's clock is ahead of it (`Connector.clock_offset`, never
    more than the truth; None when unknown). The result, floored to the
    second, is at most the pass's start on either clock: every change made
    during the pass is stamped after it, whichever clock runs ahead. A source
    clock ahead is not trusted to move the ceiling later: its `Date` may come
    from a proxy rather than from what stamps the cursors.
    """
    if source_offset is not None and source_offset < dt.timedelta(0):
        started += source_offset
    return started.replace(microsecond=0)


def held_back(cursor: Cursor | None, ceiling: dt.datetime) -> Cursor | None:
    """`cursor`, or `ceiling` when it is a date-time beyond it.

    Holding a watermark back is always safe: the next pass reads the tickets
    past it again, and the hash diff finds them unchanged.
    """
    if isinstance(cursor, dt.datetime) and cursor > ceiling:
        return ceiling
    return cursor


def far_ahead(cursor: Cursor | None, now: dt.datetime) -> bool:
    """Whether `cursor` is a date-time more than `CLOCK_ALLOWANCE` after `now`."""
    return isinstance(cursor, dt.datetime) and cursor > now + CLOCK_ALLOWANCE


def pull_bound(watermark: Cursor | None, lookback: dt.timedelta) -> Cursor | None:
    """The inclusive lower bound for the next pull: the watermark minus the lookback.

    Integer cursors are versions, not times: no lookback applies to them.
    """
    if watermark is None or isinstance(watermark, int):
        return watermark
    try:
        return watermark - lookback
    except OverflowError:
        return dt.datetime.min.replace(tzinfo=dt.UTC)


def later(current: Cursor | None, candidate: Cursor | None) -> Cursor | None:
    """The later of two cursors; the watermark only ever moves forward.

    Raises `TypeError` when one is a datetime and the other an integer.
    """
    if current is None:
        return candidate
    if candidate is None:
        return current
    if isinstance(current, dt.datetime) != isinstance(candidate, dt.datetime):
        raise TypeError(
            f"cursor kinds differ: stored {cursor_kind(current)}, source gives "
            f"{cursor_kind(candidate)}"
        )
    return candidate if candidate > current else current  # type: ignore[operator]


def cursor_kind(cursor: Cursor) -> str:
    return "datetime" if isinstance(cursor, dt.datetime) else "int"


def encode(cursor: Cursor) -> str:
    """`cursor` as stored text: fixed-width ISO 8601 in UTC, or the integer."""
    if isinstance(cursor, dt.datetime):
        if cursor.tzinfo is not dt.UTC:  # sources give UTC almost always: skip the copy
            cursor = cursor.astimezone(dt.UTC)
        # What isoformat(timespec="microseconds") writes, at two thirds of its cost:
        # every acknowledged ticket's cursor is stored.
        c = cursor
        return _UTC_TEXT % (c.year, c.month, c.day, c.hour, c.minute, c.second, c.microsecond)
    return str(cursor)


_UTC_TEXT = "%04d-%02d-%02dT%02d:%02d:%02d.%06d+00:00"


def decode(kind: str, text: str) -> Cursor:
    """The cursor `encode` stored; raises `ValueError` for an unknown kind."""
    if kind == "datetime":
        try:  # the shape `encode` writes, a tenth of the general parse's cost (scrapes read all)
            moment = dt.datetime.fromisoformat(text)
        except ValueError:
            return parse_datetime(text)
        return moment if moment.tzinfo is dt.UTC else parse_datetime(text)
    if kind == "int":
        return int(text)
    raise ValueError(f"unknown cursor kind {kind!r}")


def newer(cursor: Cursor, other: Cursor) -> bool:
    """Whether `cursor` is strictly newer than `other`; a cursor of the other kind never is."""
    try:
        return cursor_before(other, cursor)
    except TypeError:  # CursorKindMismatch: one saved before the connector's cursor_kind changed
        return False


def decode_text(text: str) -> Cursor:
    """A cursor `encode` wrote, its kind told by its shape (digits: an integer)."""
    return int(text) if text.lstrip("-").isdigit() else parse_datetime(text)


@dataclass
class Checkpoint:
    """Tracks how far a pass may checkpoint while its tickets stream by.

    For an ordered source, once every ticket up to and including the one last
    seen is pushed, failed or unchanged, the watermark may move to that
    ticket's cursor (the next pull re-reads that cursor inclusively). For an
    unordered source, or an ordered one caught out of order, it may move only
    when the pass is complete.
    """

    ordered: bool
    ceiling: dt.datetime | None = None
    """Where date-time checkpoints stop (None: no limit): the pass's start (`pass_ceiling`),
    which the run sets again as it learns more of the source's clock."""
    last: Cursor | None = None
    highest: Cursor | None = None
    out_of_order: bool = False

    def observe(self, cursor: Cursor) -> None:
        """Note a ticket's cursor as it is consumed, in stream order."""
        if self.ordered and self.last is not None and later(self.last, cursor) != cursor:
            self.out_of_order = True
        self.last = cursor
        self.highest = later(self.highest, cursor)

    def safe(self) -> Cursor | None:
        """Where a checkpoint may put the watermark now (None: not yet)."""
        if not self.ordered or self.out_of_order:
            return None
        return self._held_back(self.last)

    def complete(self) -> Cursor | None:
        """Where the watermark goes once the whole pass is through."""
        return self._held_back(self.highest)

    def ahead(self) -> Cursor | None:
        """The highest cursor seen, if it is beyond the ceiling (a checkpoint stops short)."""
        return self.highest if self._held_back(self.highest) != self.highest else None

    def _held_back(self, cursor: Cursor | None) -> Cursor | None:
        return cursor if self.ceiling is None else held_back(cursor, self.ceiling)
