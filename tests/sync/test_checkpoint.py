"""Checkpoint: settled shipments recorded in the order they were cut, in one transaction each."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from connectors.base import SourceTicket
from sync.batches import PushResult, Rejected
from sync.checkpoint import Checkpointer, FailureLog, Mark, PassCounts
from sync.errors import FragmentUnavailable
from sync.mapping import TaskPayload, task_uid
from sync.ship import Ship, Shipment
from sync.state import StateStore

NAMESPACE = "helpdesk"


class Sink:
    """Acknowledges every item but those it rejects; fails a request carrying `failing`."""

    def __init__(self, failing: str | None = None, rejecting: str | None = None) -> None:
        self.failing, self.rejecting = failing, rejecting

    def push(self, items: Sequence[Any], into: PushResult | None = None) -> PushResult:
        result = PushResult() if into is None else into
        result.requests += 1
        if any(item.source_id == self.failing for item in items):
            raise FragmentUnavailable("Fragment: still failing after 3 attempts (test)")
        for item in items:
            if item.source_id == self.rejecting:
                result.rejected.append(Rejected(item, "due_at: not a date", "due_at"))
            else:
                result.acked.append(item)
        return result


@pytest.fixture
def store(sqlite_url: str) -> Iterator[StateStore]:
    store = StateStore.open(sqlite_url)
    yield store
    store.close()


def checkpointer(store: StateStore, watermark: int | None = None) -> Checkpointer:
    log = structlog.get_logger("test").bind(connector=NAMESPACE)
    failures = FailureLog(NAMESPACE, lambda i: task_uid(NAMESPACE, i), PassCounts(), log)
    return Checkpointer(
        store, NAMESPACE, failures, watermark=watermark, stored_watermark=watermark, lease=None
    )


def shipment(cursor: int, *ids: str, **mark: Any) -> Shipment[SourceTicket, TaskPayload, Mark]:
    batch = {
        i: (
            SourceTicket(i, cursor, {"title": i}),
            TaskPayload.encode(i, cursor, {"uid": task_uid(NAMESPACE, i), "title": i}),
        )
        for i in ids
    }
    return Shipment(batch, Mark(watermark=cursor, **mark))


def ship_all(sink: Sink, *shipments: Shipment[SourceTicket, TaskPayload, Mark]) -> Ship:  # type: ignore[type-arg]
    ship: Ship[SourceTicket, TaskPayload, Mark] = Ship(sink, 10, len(shipments), NAMESPACE)
    for out in shipments:
        ship.send(out)
    return ship


def test_a_shipment_that_failed_to_settle_holds_the_watermark_for_every_later_one(
    store: StateStore,
) -> None:
    checkpoints = checkpointer(store)
    ship = ship_all(Sink(failing="2"), shipment(1, "1"), shipment(2, "2"), shipment(3, "3"))
    first, failed, later = ship.drain()

    checkpoints.settle(first)
    with pytest.raises(FragmentUnavailable):
        checkpoints.settle(failed)
    checkpoints.settle(later)
    ship.close()

    assert store.watermark(NAMESPACE) == 1 and checkpoints.watermark == 1
    assert set(store.stored_tasks(NAMESPACE, ["1", "2", "3"])) == {"1", "3"}  # what landed
    assert checkpoints.counts.pushed == 2 and checkpoints.counts.requests == 3


def test_the_watermark_never_moves_back(store: StateStore) -> None:
    checkpoints = checkpointer(store)
    ship = ship_all(Sink(), shipment(5, "1"), shipment(3, "2"))

    for settled in ship.drain():
        checkpoints.settle(settled)
    ship.close()

    assert store.watermark(NAMESPACE) == 5


def test_an_item_fragment_rejected_is_kept_as_failed_with_its_message(store: StateStore) -> None:
    checkpoints = checkpointer(store)
    ship = ship_all(Sink(rejecting="2"), shipment(1, "1", "2"))

    [settled] = ship.drain()
    checkpoints.settle(settled)
    ship.close()

    errors = store.failed_errors(NAMESPACE, ["1", "2"])
    assert list(errors) == ["2"]
    assert "Fragment rejected it: due_at: not a date" in errors["2"]
    assert checkpoints.counts.failed == 1 and checkpoints.counts.pushed == 1


def test_a_pass_reading_everything_records_its_settings_once_it_reaches_the_watermark(
    store: StateStore,
) -> None:
    """Behind the stored watermark the settings are not yet vouched for; at it they are."""
    checkpoints = checkpointer(store, watermark=5)
    ship = ship_all(Sink(), shipment(3, "1", fingerprint="f1"))
    for settled in ship.drain():
        checkpoints.settle(settled)
    assert store.settings_fingerprint(NAMESPACE) is None

    ship = ship_all(Sink(), shipment(6, "2", fingerprint="f1"))
    for settled in ship.drain():
        checkpoints.settle(settled)
    ship.close()

    assert store.settings_fingerprint(NAMESPACE) == "f1"
    assert store.watermark(NAMESPACE) == 6


def test_a_failed_item_failing_the_same_way_again_is_counted_but_not_news() -> None:
    counts = PassCounts()
    failures = FailureLog(NAMESPACE, lambda i: i, counts, structlog.get_logger("test"))
    ticket = SourceTicket("7", 1, {"title": ""})

    with capture_logs() as logs:
        first = failures.ticket(ticket, "mapping", "title", "is empty")
        failures.ticket(ticket, "mapping", "title", "is empty", last_error=first.error)
        failures.report()

    assert counts.failed == 2
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == [
        "ticket_failed",
        "failed_items_still_failing",
    ]
