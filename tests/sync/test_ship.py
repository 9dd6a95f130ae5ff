"""Ship: shipments in flight, at most `max_in_flight`, handed back to settle in cut order."""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import pytest

from connectors.base import SourceTicket
from fragment_emulator import Emulator
from sync.batches import PushResult, Refusal
from sync.config import FragmentSettings
from sync.diff import Queued
from sync.errors import FragmentUnavailable
from sync.fragment import FragmentClient
from sync.mapping import TaskPayload
from sync.ship import Ship, Shipment
from sync.ship_policy import (
    FRAGMENT_RATE_LIMIT_FLOOR,
    RETRY_POLICY,
    ShipPolicy,
    classify_answer,
    isolate,
)
from sync_http.bounded import ResponseTooLarge
from sync_http.policy import Action, classify
from sync_http.ratelimit import Backoff, RequestBudget
from sync_http.session import RetrySettings
from synckit import TOKEN


class HeldSink:
    """Acknowledges each request once `release` is set; records what it was sent."""

    def __init__(self, failing: str | None = None) -> None:
        self.release = threading.Event()
        self.requests: list[list[str]] = []
        self.failing = failing

    def push(self, items: Sequence[Any], into: PushResult | None = None) -> PushResult:
        result = PushResult() if into is None else into
        self.release.wait(5)
        self.requests.append([item.source_id for item in items])
        result.requests += 1
        if self.failing in self.requests[-1]:
            raise FragmentUnavailable("Fragment: still failing after 3 attempts (test)")
        result.acked.extend(items)
        return result


def version(source_id: str, cursor: int = 1, title: str = "t") -> tuple[SourceTicket, TaskPayload]:
    ticket = SourceTicket(source_id, cursor, {"title": title})
    return ticket, TaskPayload.encode(source_id, cursor, {"uid": source_id, "title": title})


def shipment(
    *ids: str, cursor: int = 1, mark: str = ""
) -> Shipment[SourceTicket, TaskPayload, str]:
    return Shipment({i: version(i, cursor) for i in ids}, mark or ",".join(ids))


def make_ship(sink: HeldSink, batch_size: int = 10, max_in_flight: int = 2) -> Ship:  # type: ignore[type-arg]
    return Ship(sink, batch_size, max_in_flight, "helpdesk")


def test_no_more_than_max_in_flight_shipments_are_out_and_the_oldest_settles_first() -> None:
    sink = HeldSink()
    ship = make_ship(sink, max_in_flight=2)
    ship.send(shipment("1"))
    ship.send(shipment("2"))

    to_settle = [s.mark for s in ship.settle_before({"3"})]

    assert to_settle == ["1"]
    assert [s.mark for s in ship.outbox] == ["2"]
    sink.release.set()
    ship.close()


def test_a_shipment_carrying_a_ticket_still_out_waits_for_every_shipment_up_to_it() -> None:
    sink = HeldSink()
    ship = make_ship(sink, max_in_flight=4)
    for ids in (("1",), ("2",), ("3",)):
        ship.send(shipment(*ids))

    to_settle = [s.mark for s in ship.settle_before({"2", "9"})]

    assert to_settle == ["1", "2"]  # the two orders of "2" may not land in either order
    sink.release.set()
    ship.close()


def test_a_shipment_goes_in_requests_of_batch_size_and_counts_them_even_when_one_fails() -> None:
    sink = HeldSink(failing="5")
    sink.release.set()
    ship = make_ship(sink, batch_size=2)
    out = shipment("1", "2", "3", "4", "5")
    ship.send(out)

    [settled] = list(ship.drain())

    with pytest.raises(FragmentUnavailable):
        settled.wait()
    assert sink.requests == [["1", "2"], ["3", "4"], ["5"]]
    assert settled.sent.requests == 3
    assert [p.source_id for p in settled.sent.acked] == ["1", "2", "3", "4"]
    ship.close()


def test_an_empty_shipment_sends_nothing_but_still_settles_in_its_turn() -> None:
    sink = HeldSink()
    sink.release.set()
    ship = make_ship(sink)
    ship.send(shipment("1"))
    ship.send(shipment(mark="watermark only"))

    settled = list(ship.drain())

    assert [s.mark for s in settled] == ["1", "watermark only"]
    assert settled[1].answer is None and settled[1].wait().requests == 0
    ship.close()


def test_out_tells_the_newest_version_of_each_ticket_still_out() -> None:
    sink = HeldSink()
    ship = make_ship(sink, max_in_flight=3)
    ship.send(shipment("1", "2", cursor=1))
    ship.send(shipment("2", cursor=5))

    out = ship.out()

    assert out["1"].cursor == 1 and out["2"].cursor == 5
    assert isinstance(out["2"], Queued) and out["2"].content_hash == version("2", 5)[1].content_hash
    sink.release.set()
    ship.close()


# The policy: Fragment's retry table, the budget, and bisecting a refused request.
# Over real HTTP against the emulator, its fault switches standing in for a misbehaving Fragment.

KNOWN = "agent@support.example.com"
GHOST = "ghost@elsewhere.example"


def task(index: int, bad: bool = False) -> TaskPayload:
    uid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"ticket/{index}"))
    fields = {"ticket_id": index, "title": f"Ticket {index}"}
    body = {"uid": uid, "fields": fields, "assignee_email": GHOST if bad else KNOWN}
    return TaskPayload.encode(str(index), index, body)


def fragment_settings(server: Emulator, **overrides: Any) -> FragmentSettings:
    return FragmentSettings.model_validate(
        {"url": server.base_url, "token": TOKEN, "requests_per_minute": 100_000, **overrides}
    )


@pytest.fixture
def fragment() -> Iterator[Emulator]:
    with Emulator(db_path=":memory:", tokens=[TOKEN], users=[KNOWN]) as server:
        yield server


def batch_puts(server: Emulator, expected: int) -> int:
    """The PUTs the emulator logged, once it has logged `expected` (or after a second).

    It logs a request just after answering it: the last may be a moment behind.
    """
    deadline = time.monotonic() + 1.0
    while True:
        count = sum(1 for record in server.traffic.records() if record.method == "PUT")
        if count >= expected or time.monotonic() > deadline:
            return count
        time.sleep(0.01)


@pytest.mark.parametrize(
    ("answer", "action"),
    [
        (200, Action.ACCEPT),
        (400, Action.REJECT),
        (413, Action.REJECT),
        (422, Action.REJECT),
        (401, Action.FAIL_AUTH),
        (403, Action.FAIL_AUTH),
        (404, Action.FAIL),
        (409, Action.FAIL),
        (418, Action.FAIL),  # unlisted 4xx
        (429, Action.RATE_LIMITED),
        (408, Action.RETRY),
        (503, Action.RETRY),
        (599, Action.RETRY),  # unlisted 5xx
        (httpx.ReadTimeout("slow"), Action.RETRY),
        (httpx.ConnectError("refused"), Action.RETRY),
        (ResponseTooLarge(1_000_000), Action.FAIL),
    ],
)
def test_the_retry_table_says_what_to_do_with_each_answer_of_fragment(
    answer: int | Exception, action: Action
) -> None:
    outcome = httpx.Response(answer) if isinstance(answer, int) else answer

    assert classify_answer(outcome).action is action
    assert ShipPolicy.for_fragment(fragment_settings_for_table(), threading.Event()).classify(
        outcome
    ) == classify(outcome, RETRY_POLICY)


def fragment_settings_for_table() -> FragmentSettings:
    return FragmentSettings.model_validate({"url": "http://fragment.test/api/v1", "token": TOKEN})


def test_the_policy_paces_and_retries_as_the_fragment_settings_say() -> None:
    settings = FragmentSettings.model_validate(
        {
            "url": "http://fragment.test/api/v1",
            "token": TOKEN,
            "requests_per_minute": 120,
            "max_attempts": 3,
            "max_retry_wait": "40s",
        }
    )

    policy = ShipPolicy.for_fragment(settings, threading.Event())

    assert (policy.retry.max_attempts, policy.retry.max_wait) == (3, 40.0)
    assert policy.retry.rate_limit_floor == FRAGMENT_RATE_LIMIT_FLOOR
    assert policy.budget.ceiling[0] == 120  # never more than the minute allows


@pytest.mark.parametrize("bad", [{5}, {3, 40}, {1, 17, 33, 50}])
def test_bisection_finds_the_bad_items_of_a_batch_refused_whole_in_k_log_n_requests(
    fragment: Emulator, bad: set[int]
) -> None:
    fragment.faults.unnamed_rejections = True  # a 422 that names no item
    items = [task(i, bad=i in bad) for i in range(64)]

    with FragmentClient(fragment_settings(fragment)) as client:
        result = client.push(items)

    assert {r.payload.source_id for r in result.rejected} == {str(i) for i in bad}
    assert all("invalid batch" in r.message for r in result.rejected)
    assert {t["fields"]["ticket_id"] for t in fragment.store.all_tasks()} == set(range(64)) - bad
    assert len(result.acked) == 64 - len(bad)
    k, n = len(bad), len(items)
    assert result.requests == batch_puts(fragment, result.requests) == 1 + result.isolation_requests
    assert result.isolation_requests <= 2 * k * math.log2(n / k) + 2 * k


def test_a_refusal_naming_the_bad_items_sets_them_aside_and_resends_the_rest_once(
    fragment: Emulator,
) -> None:
    items = [task(i, bad=i in (2, 9)) for i in range(20)]

    with FragmentClient(fragment_settings(fragment)) as client:
        result = client.push(items)

    assert [(r.payload.source_id, r.field) for r in result.rejected] == [
        ("2", "assignee_email"),
        ("9", "assignee_email"),
    ]
    assert f"unknown user {GHOST}" in result.rejected[0].message
    assert (result.requests, result.isolation_requests) == (2, 1)
    assert len(fragment.store.all_tasks()) == 18


def test_a_failing_fragment_is_retried_as_the_policy_says_then_the_push_fails(
    fragment: Emulator,
) -> None:
    fragment.faults.error_rate = 1.0
    settings = fragment_settings(fragment, max_attempts=3)
    fast = ShipPolicy(
        budget=RequestBudget.per_minute(100_000),
        retry=RetrySettings(max_attempts=3, max_wait=1.0, backoff=Backoff(base=0.01)),
    )
    result = PushResult()

    with FragmentClient(settings, policy=fast) as client, pytest.raises(FragmentUnavailable):
        client.push([task(1), task(2)], into=result)

    assert result.requests == batch_puts(fragment, result.requests) == 3
    assert fragment.store.all_tasks() == []


def test_isolate_over_any_sender_counts_every_request_beyond_the_first_as_isolation() -> None:
    sent: list[list[str]] = []

    def refuses_odd_ids(request: list[TaskPayload], tally: PushResult) -> Refusal | None:
        sent.append([item.source_id for item in request])
        tally.requests += 1
        odd = any(int(item.source_id) % 2 for item in request)
        return Refusal({}, "invalid batch") if odd else None

    result = isolate(refuses_odd_ids, [task(i) for i in (0, 2, 4, 5)])

    assert [r.payload.source_id for r in result.rejected] == ["5"]
    assert [item.source_id for item in result.acked] == ["0", "2", "4"]
    assert sent == [["0", "2", "4", "5"], ["0", "2"], ["4", "5"], ["4"], ["5"]]
    assert (result.requests, result.isolation_requests) == (5, 4)
