"""The failed-item retry policy: every pass for 5 minutes, then as long as failing, at most 1 h."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync.failures import (
    FAILED_ITEM_POLICY,
    RETRY_EVERY_PASS,
    RETRY_WAIT_CAP,
    RetryRule,
    Wait,
    retry_at,
    retry_wait,
    rule_for,
)
from sync.state import FailedItem, StateStore

T0 = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)
MINUTE = dt.timedelta(minutes=1)


def test_an_item_failing_for_under_five_minutes_is_due_on_the_next_pass() -> None:
    assert retry_wait(dt.timedelta(0)) == dt.timedelta(0)
    assert retry_wait(RETRY_EVERY_PASS - dt.timedelta(microseconds=1)) == dt.timedelta(0)
    assert rule_for(MINUTE).wait is Wait.NONE


def test_an_item_failing_for_longer_waits_as_long_as_it_has_been_failing() -> None:
    assert retry_wait(RETRY_EVERY_PASS) == RETRY_EVERY_PASS
    assert retry_wait(40 * MINUTE) == 40 * MINUTE
    assert retry_at(T0, T0 + 40 * MINUTE) == T0 + 80 * MINUTE


def test_the_wait_stops_growing_at_an_hour() -> None:
    assert retry_wait(dt.timedelta(days=3)) == RETRY_WAIT_CAP == dt.timedelta(hours=1)


def test_an_item_first_seen_after_now_by_a_clock_gone_back_is_due_on_the_next_pass() -> None:
    assert retry_at(T0 + MINUTE, T0) == T0


@given(st.timedeltas(min_value=dt.timedelta(days=-1), max_value=dt.timedelta(days=400)))
def test_the_wait_is_never_negative_nor_longer_than_the_cap_nor_than_the_failing(
    failing: dt.timedelta,
) -> None:
    wait = retry_wait(failing)
    assert dt.timedelta(0) <= wait <= RETRY_WAIT_CAP
    assert wait <= max(failing, dt.timedelta(0))


@given(st.timedeltas(min_value=dt.timedelta(0)), st.timedeltas(min_value=dt.timedelta(0)))
def test_an_item_failing_longer_never_waits_less(a: dt.timedelta, b: dt.timedelta) -> None:
    shorter, longer = sorted((a, b))
    assert retry_wait(shorter) <= retry_wait(longer)


def test_every_rule_of_the_table_says_what_it_does() -> None:
    assert min(FAILED_ITEM_POLICY) == dt.timedelta(0)  # every item has a rule
    assert all(rule.meaning for rule in FAILED_ITEM_POLICY.values())


def test_a_policy_with_no_rule_for_an_item_says_so() -> None:
    with pytest.raises(ValueError, match="no rule"):
        rule_for(MINUTE, {RETRY_EVERY_PASS: RetryRule(Wait.NONE, "every pass")})


def test_the_store_records_the_retry_time_its_policy_gives(state_url: str) -> None:
    """The store keeps no timing of its own: given a policy that always waits as long as
    the item has been failing, with no cap and no grace, that is what `retry_at` says."""
    doubling = {dt.timedelta(0): RetryRule(Wait.AS_LONG_AS_FAILING, "doubling", cap=None)}
    item = FailedItem("1", None, "mapping", None, "boom", "7", record='{"id": 1}')
    with StateStore.open(state_url, retry_policy=doubling) as store:
        store.commit_batch("helpdesk", failed=[item])
        [first] = store.failed_items("helpdesk")
        assert first.retry_at == first.last_seen  # failing for no time: waits none
        store.commit_batch("helpdesk", failed=[item])
        [again] = store.failed_items("helpdesk")
    assert again.first_seen is not None and again.last_seen is not None
    assert again.retry_at == again.last_seen + (again.last_seen - again.first_seen)
