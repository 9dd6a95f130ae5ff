"""The connector contract's cursor comparison, shared by the connectors and the engine."""

from __future__ import annotations

import datetime as dt

import pytest

from connectors.base import Cursor, CursorKindMismatch, cursor_before

NOON = dt.datetime(2026, 11, 2, 12, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("cursor", "other", "before"),
    [
        (NOON, NOON + dt.timedelta(microseconds=1), True),
        (NOON + dt.timedelta(seconds=1), NOON, False),
        (NOON, NOON, False),
        (41, 42, True),
        (42, 41, False),
        (42, 42, False),
        (-1, 0, True),
    ],
)
def test_a_cursor_is_before_another_only_when_strictly_earlier(
    cursor: Cursor, other: Cursor, before: bool
) -> None:
    assert cursor_before(cursor, other) is before


def test_datetimes_compare_as_instants_whatever_their_zone() -> None:
    paris = dt.timezone(dt.timedelta(hours=1))
    same_instant = NOON.astimezone(paris)

    assert not cursor_before(same_instant, NOON)
    assert not cursor_before(NOON, same_instant)
    assert cursor_before(same_instant, NOON + dt.timedelta(seconds=1))


@pytest.mark.parametrize(("cursor", "other"), [(NOON, 42), (42, NOON)])
def test_a_datetime_and_an_integer_cannot_be_ordered(cursor: Cursor, other: Cursor) -> None:
    with pytest.raises(CursorKindMismatch, match="of different kinds") as raised:
        cursor_before(cursor, other)

    # A TypeError, as comparing the two in Python would raise.
    assert isinstance(raised.value, TypeError)
