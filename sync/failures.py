"""When a failed item is tried again: a policy table, from how long it has failed to a wait.

A ticket that did not reach Fragment (its mapping failed, Fragment rejected
it) is kept as a failed item and tried again on later passes. Items Fragment
keeps refusing would otherwise cost requests and state writes every
interval, forever; so after a few minutes an item waits as long as it has
been failing, at most an hour, and a fix made at the source or in Fragment
still reaches it within the hour. The table sits beside Fragment's retry table
(`RETRY_POLICY` in `sync.ship_policy`), which says what to do with an answer; this one
says when an item is due. The state store keeps the `retry_at` this computes
and knows no timing of its own.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from dataclasses import dataclass


class Wait(enum.Enum):
    """How long a failed item waits for its next try."""

    NONE = "none"  # due on the next pass
    AS_LONG_AS_FAILING = "as_long_as_failing"  # as long as it has been failing, at most `cap`


@dataclass(frozen=True)
class RetryRule:
    wait: Wait
    meaning: str
    cap: dt.timedelta | None = None
    """The longest wait of `Wait.AS_LONG_AS_FAILING` (None: no limit)."""


FailedItemPolicy = Mapping[dt.timedelta, RetryRule]
"""From how long an item has been failing (at least; the longest such key applies) to its rule."""

RETRY_EVERY_PASS = dt.timedelta(minutes=5)
"""A failed item is due on every pass while it has been failing for less than this;"""
RETRY_WAIT_CAP = dt.timedelta(hours=1)
"""after that, once it has waited as long as it has been failing, up to this long."""

FAILED_ITEM_POLICY: FailedItemPolicy = {
    dt.timedelta(0): RetryRule(Wait.NONE, "tried again on every pass"),
    RETRY_EVERY_PASS: RetryRule(
        Wait.AS_LONG_AS_FAILING,
        "tried again after as long as it has been failing, at most an hour",
        cap=RETRY_WAIT_CAP,
    ),
}
"""Every pass for 5 minutes, then as long as it has been failing, at most 1 h."""


def rule_for(failing: dt.timedelta, policy: FailedItemPolicy = FAILED_ITEM_POLICY) -> RetryRule:
    """The rule of `policy` for an item failing for `failing`: the longest key not above it.

    Raises `ValueError` when no key is that short (a policy should start at 0).
    """
    reached = [since for since in policy if since <= failing]
    if not reached:
        raise ValueError(f"the failed-item policy has no rule for items failing for {failing}")
    return policy[max(reached)]


def retry_wait(
    failing: dt.timedelta, policy: FailedItemPolicy = FAILED_ITEM_POLICY
) -> dt.timedelta:
    """How long a failed item waits for its next try, having failed for `failing`.

    A negative `failing` (this machine's clock went back since) counts as none.
    """
    rule = rule_for(max(failing, dt.timedelta(0)), policy)
    if rule.wait is Wait.NONE:
        return dt.timedelta(0)
    return failing if rule.cap is None else min(failing, rule.cap)


def retry_at(
    first_seen: dt.datetime, now: dt.datetime, policy: FailedItemPolicy = FAILED_ITEM_POLICY
) -> dt.datetime:
    """When an item failing since `first_seen`, and failing again `now`, is due again."""
    return now + retry_wait(now - first_seen, policy)
