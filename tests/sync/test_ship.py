"""Ship: shipments in flight, at most `max_in_flight`, handed back to settle in cut order."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import pytest

from connectors.base import SourceTicket
from sync.batches import PushResult
from sync.diff import Queued
from sync.errors import FragmentUnavailable
from sync.mapping import TaskPayload
from sync.ship import Ship, Shipment


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
