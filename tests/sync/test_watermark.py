"""The watermark arithmetic: bounds, forward-only moves, and the checkpoint tracker."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync.watermark import (
    CLOCK_ALLOWANCE,
    Checkpoint,
    decode,
    decode_text,
    encode,
    far_ahead,
    later,
    pass_ceiling,
    pull_bound,
)

T0 = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)


def test_pull_bound_subtracts_lookback_from_a_datetime_watermark() -> None:
    assert pull_bound(T0, dt.timedelta(minutes=5)) == T0 - dt.timedelta(minutes=5)


def test_pull_bound_ignores_lookback_for_integer_versions_and_starts_from_nothing() -> None:
    assert pull_bound(41, dt.timedelta(hours=1)) == 41
    assert pull_bound(None, dt.timedelta(hours=1)) is None


def test_watermark_never_moves_backwards() -> None:
    assert later(T0, T0 - dt.timedelta(seconds=1)) == T0
    assert later(T0, T0 + dt.timedelta(seconds=1)) == T0 + dt.timedelta(seconds=1)
    assert later(None, 5) == 5
    assert later(7, None) == 7


def test_mixing_cursor_kinds_is_refused() -> None:
    with pytest.raises(TypeError, match="cursor kinds differ"):
        later(T0, 5)


@given(st.datetimes(timezones=st.just(dt.UTC)))
def test_datetime_cursors_survive_storage_exactly(moment: dt.datetime) -> None:
    assert decode("datetime", encode(moment)) == moment
    assert decode_text(encode(moment)) == moment


@given(
    st.datetimes(  # kept clear of years 1 and 9999, where a UTC offset overflows
        min_value=dt.datetime(1000, 1, 1),
        max_value=dt.datetime(9000, 1, 1),
        timezones=st.timezones(),
    )
)
def test_datetime_cursors_are_stored_as_fixed_width_utc_iso_text(moment: dt.datetime) -> None:
    """Stored cursors compare as text, so their width and form never vary."""
    utc = moment.astimezone(dt.UTC)
    assert encode(moment) == utc.isoformat(timespec="microseconds")
    assert len(encode(moment)) == len("2026-11-30T00:00:00.000000+00:00")


@given(st.integers(min_value=-(2**62), max_value=2**62))
def test_integer_cursors_survive_storage_exactly(version: int) -> None:
    assert decode("int", encode(version)) == version
    assert decode_text(encode(version)) == version


@given(st.lists(st.integers(min_value=0, max_value=50), min_size=1))
def test_ordered_checkpoint_never_passes_an_unseen_ticket(cursors: list[int]) -> None:
    """Whatever the stream, a checkpoint is at most the cursor of what was consumed."""
    checkpoint = Checkpoint(ordered=True)
    for index, cursor in enumerate(sorted(cursors)):
        checkpoint.observe(cursor)
        safe = checkpoint.safe()
        assert safe is not None
        # Every ticket not yet consumed has a cursor >= safe: an inclusive re-pull finds it.
        assert all(rest >= safe for rest in sorted(cursors)[index + 1 :])
    assert checkpoint.complete() == max(cursors)


def test_out_of_order_stream_stops_intermediate_checkpoints_until_the_end() -> None:
    checkpoint = Checkpoint(ordered=True)
    for cursor in (1, 5, 3):
        checkpoint.observe(cursor)
    assert checkpoint.out_of_order
    assert checkpoint.safe() is None
    assert checkpoint.complete() == 5


def test_unordered_source_checkpoints_only_at_the_end() -> None:
    checkpoint = Checkpoint(ordered=False)
    checkpoint.observe(4)
    checkpoint.observe(2)
    assert checkpoint.safe() is None
    assert checkpoint.complete() == 4


NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)
CEILING = NOW  # a pass's checkpoints stop at the time it started


@given(
    st.lists(
        st.datetimes(
            min_value=dt.datetime(2026, 11, 30, 11), max_value=dt.datetime(9999, 12, 31)
        ).map(lambda moment: moment.replace(tzinfo=dt.UTC)),
        min_size=1,
    )
)
def test_a_checkpoint_never_passes_the_clock_ceiling_nor_a_ticket_it_has_not_seen(
    cursors: list[dt.datetime],
) -> None:
    checkpoint = Checkpoint(ordered=True, ceiling=CEILING)
    for index, cursor in enumerate(sorted(cursors)):
        checkpoint.observe(cursor)
        safe = checkpoint.safe()
        assert safe is not None and safe <= CEILING
        assert all(rest >= safe for rest in sorted(cursors)[index + 1 :])
    assert checkpoint.complete() == min(max(cursors), CEILING)
    assert checkpoint.ahead() == (max(cursors) if max(cursors) > CEILING else None)


def test_one_far_future_cursor_holds_the_watermark_at_the_ceiling() -> None:
    checkpoint = Checkpoint(ordered=False, ceiling=CEILING)
    checkpoint.observe(NOW - dt.timedelta(minutes=5))
    checkpoint.observe(dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC))
    assert checkpoint.complete() == CEILING
    ahead = checkpoint.ahead()
    assert ahead == dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC)
    assert far_ahead(ahead, NOW) and not far_ahead(NOW + CLOCK_ALLOWANCE, NOW)


def test_integer_versions_have_no_clock_ceiling() -> None:
    checkpoint = Checkpoint(ordered=True, ceiling=CEILING)
    checkpoint.observe(10**15)
    assert (checkpoint.safe(), checkpoint.complete(), checkpoint.ahead()) == (10**15, 10**15, None)


@given(
    st.datetimes(
        min_value=dt.datetime(2000, 1, 1),
        max_value=dt.datetime(2100, 1, 1),
        timezones=st.just(dt.UTC),
    ),
    st.one_of(
        st.none(), st.timedeltas(min_value=-dt.timedelta(hours=2), max_value=dt.timedelta(hours=2))
    ),
)
def test_the_pass_ceiling_is_never_later_than_the_pass_start_on_either_clock(
    started: dt.datetime, offset: dt.timedelta | None
) -> None:
    """A change made during the pass is stamped after the ceiling, whichever clock runs ahead.

    `offset` is the source's clock minus this machine's (None: unknown).
    """
    ceiling = pass_ceiling(started, offset)
    on_the_source = started + (offset or dt.timedelta(0))
    assert ceiling <= started
    assert ceiling <= on_the_source
    assert ceiling.microsecond == 0
    assert ceiling > min(started, on_the_source) - dt.timedelta(seconds=1)  # no further back


def test_a_source_clock_ahead_does_not_move_the_ceiling_past_this_machines() -> None:
    assert pass_ceiling(T0, dt.timedelta(seconds=30)) == T0
    assert pass_ceiling(T0, dt.timedelta(seconds=-3.5)) == T0 - dt.timedelta(seconds=4)
    assert pass_ceiling(T0 + dt.timedelta(microseconds=900), None) == T0
