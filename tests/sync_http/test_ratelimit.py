"""The request budget on a simulated clock: the rate it keeps, the limit it never breaks.

A server counting a sliding minute refuses the request that comes sooner than a
minute after the one `rate` requests before it; the budget must never send that
one, and must not fall much behind it either. The clock is simulated (waiting
advances it), so these tests take no time and measure none.
"""

from __future__ import annotations

import itertools
import random
import threading

import pytest

from sync_http.ratelimit import MINUTE_MARGIN, RequestBudget

WAKE_UP = 1e-6
"""A real wait ends a little after its timeout."""


class SimulatedTime(threading.Event):
    """A clock that waiting moves forward: the budget's `stop` event and clock at once."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0

    def wait(self, timeout: float | None = None) -> bool:
        self.now += (timeout or 0.0) + WAKE_UP
        return False


def send_times(rate: float, count: int, service: list[float]) -> list[float]:
    """When a sender taking `service[i]` seconds over request i sends `count` requests."""
    time = SimulatedTime()
    budget = RequestBudget.per_minute(rate, stop=time, clock=lambda: time.now)
    sent = []
    for taken in itertools.islice(itertools.cycle(service), count):
        assert budget.acquire()
        sent.append(time.now)
        time.now += taken
    return sent


def minute_spans(sent: list[float], rate: int) -> list[float]:
    """Seconds between each request and the one `rate` requests later."""
    return [later - earlier for earlier, later in zip(sent, sent[rate:], strict=False)]


@pytest.mark.parametrize("rate", [15, 25, 60, 600])
def test_no_sliding_minute_holds_more_than_the_rate(rate: int) -> None:
    sent = send_times(rate, rate * 5, service=[0.0])
    assert min(minute_spans(sent, rate)) >= 60.0


def test_a_sender_with_hiccups_keeps_within_the_margin_of_the_rate() -> None:
    """Late requests are caught up: each minute's worth takes the minute and the margin only.

    A request takes 10-30 ms, and now and then one stalls 0.2 s more: the
    stalls must not be carried forward into every window after them.
    """
    dice = random.Random(17)
    service = [
        dice.uniform(0.01, 0.03) + (0.2 if dice.random() < 0.03 else 0.0) for _ in range(997)
    ]
    spans = minute_spans(send_times(600, 6_000, service), 600)
    assert min(spans) >= 60.0
    assert sum(spans) / len(spans) <= 60.0 + 1.2 * MINUTE_MARGIN


def test_a_fresh_budget_lets_a_tenth_of_the_minute_go_at_once() -> None:
    """A small pass (two batches, say) is not slowed down by the pacing."""
    sent = send_times(600, 61, service=[0.0])
    assert sent[:60] == [0.0] * 60
    assert sent[60] > 0.0


# Spare turns (comment sync): never taken from a request that may not wait


def test_a_spare_turn_leaves_the_reserve_so_the_next_request_goes_at_once() -> None:
    time = SimulatedTime()
    budget = RequestBudget.per_minute(60, stop=time, clock=lambda: time.now)
    time.now = 100.0  # a full bucket: 6 turns at once
    taken = 0
    start = time.now
    while time.now == start:  # spare turns go only while they need no wait
        assert budget.acquire_spare()
        taken += time.now == start
    assert taken == budget.limit - budget.spare_reserve[0]

    time.now = 200.0
    for _ in range(budget.limit - budget.spare_reserve[0]):
        assert budget.acquire_spare()
    before = time.now
    for _ in range(budget.spare_reserve[0]):
        assert budget.acquire()
    assert time.now == before  # the reserve was there: no wait for the ordinary requests
    assert budget.waited == 0.0
    assert budget.delayed_by_spare == 0


def test_a_request_kept_waiting_by_spare_turns_is_counted() -> None:
    """A burst larger than the reserve right after spare turns waits for them: the count
    the bench reads to show comment sync delayed no task push says so."""
    time = SimulatedTime()
    budget = RequestBudget.per_minute(60, stop=time, clock=lambda: time.now)
    time.now = 100.0
    for _ in range(budget.limit - budget.spare_reserve[0]):
        assert budget.acquire_spare()
    for _ in range(budget.spare_reserve[0] + 1):
        assert budget.acquire()

    assert budget.delayed_by_spare == 1
    assert budget.waited > 0


def test_spare_turns_stay_under_the_ceiling_with_the_reserve_free() -> None:
    time = SimulatedTime()
    budget = RequestBudget.per_minute(60, stop=time, clock=lambda: time.now)
    sent = []
    for _ in range(300):
        assert budget.acquire_spare()
        sent.append(time.now)
    most = budget.ceiling[0] - budget.spare_reserve[1]
    assert min(minute_spans(sent, most)) >= 60.0
    before = time.now
    for _ in range(budget.spare_reserve[0]):
        assert budget.acquire()
    assert time.now == before


def test_a_spare_turn_waits_while_an_ordinary_request_waits() -> None:
    """Two threads on a real clock: the waiting `acquire` goes first, whatever the timing."""
    budget = RequestBudget(1, 0.2)
    order: list[str] = []
    assert budget.acquire()  # the next turn is 0.2 s away
    ordinary = threading.Thread(target=lambda: (budget.acquire(), order.append("task")))
    ordinary.start()
    while budget._waiting == 0:  # the thread queues for its turn
        threading.Event().wait(0.001)
    assert budget.acquire_spare()
    order.append("comment")
    ordinary.join()
    assert order == ["task", "comment"]
