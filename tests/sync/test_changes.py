"""Fragment's changes, polled in `updated_at` order: ties, clocks and the mark.

The poll reads a real emulator over HTTP; an operator's change is a PATCH, as
an operator's click in Fragment is. The mark arithmetic is also tried alone.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from fragment_emulator import Emulator
from sync.changes import ChangedTask, FragmentPoll, page_mark, poll_after
from sync.config import FragmentSettings
from sync.errors import RunInterrupted
from sync.fragment import FragmentClient
from synckit import TOKEN

T = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)


def uid(number: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"ticket/{number}"))


@pytest.fixture
def client(emulator: Emulator) -> Iterator[FragmentClient]:
    settings = FragmentSettings.model_validate(
        {"url": emulator.base_url, "token": TOKEN, "requests_per_minute": 100_000}
    )
    with FragmentClient(settings) as fragment:
        yield fragment


@pytest.fixture
def operator(emulator: Emulator) -> Iterator[httpx.Client]:
    """Someone working the queue: writes straight to Fragment's API."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=emulator.base_url, headers=headers, timeout=5) as http:
        yield http


def put(operator: httpx.Client, *items: dict[str, Any]) -> None:
    answer = operator.put("/tasks/batch", json={"items": list(items)})
    assert answer.status_code == 200, answer.text


def task(number: int, **keys: Any) -> dict[str, Any]:
    return {"uid": uid(number), "fields": {"title": f"Ticket {number}"}, **keys}


def poll(changes: FragmentPoll, mark: dt.datetime | None) -> tuple[list[str], dt.datetime | None]:
    """Every uid a poll from `mark` lists, and the mark its last page allows."""
    uids: list[str] = []
    for page in changes.pages(mark):
        uids.extend(changed.uid for changed in page.tasks)
        mark = page.mark
    return uids, mark


def test_a_poll_lists_every_task_sharing_a_time_across_pages_oldest_first(
    client: FragmentClient, operator: httpx.Client
) -> None:
    put(operator, *(task(n, updated_at="2026-11-02T09:00:00Z") for n in range(7)))
    put(operator, task(7, updated_at="2026-11-02T08:00:00Z"))

    uids, mark = poll(FragmentPoll(client, page_size=3), None)

    assert uids == [uid(7)] + [uid(n) for n in range(7)]
    assert mark == T


def test_an_operators_change_is_found_by_the_next_poll_with_only_the_tasks_at_the_mark_again(
    client: FragmentClient, operator: httpx.Client
) -> None:
    put(operator, *(task(n, updated_at="2026-11-02T08:00:00Z") for n in range(5)))
    put(operator, task(5, updated_at="2026-11-02T08:30:00Z"))  # alone at the mark
    changes = FragmentPoll(client, lookback=dt.timedelta(0), page_size=2)
    _, mark = poll(changes, None)

    operator.patch(f"/tasks/{uid(3)}", json={"status": "DONE"})
    uids, later = poll(changes, mark)

    # The listing is exclusive: the task at the mark is read again (the hash of what was
    # last written back drops it); the tasks before it are not.
    assert uids == [uid(5), uid(3)]
    assert later is not None and mark is not None and later > mark


def test_the_mark_is_in_fragments_time_whatever_this_machines_clock_says(
    emulator: Emulator, client: FragmentClient, operator: httpx.Client
) -> None:
    emulator.faults.clock_offset = -2 * 3600  # Fragment two hours behind this machine
    put(operator, task(1))
    changes = FragmentPoll(client, lookback=dt.timedelta(seconds=1))
    _, mark = poll(changes, None)
    assert mark is not None and mark < dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)

    operator.patch(f"/tasks/{uid(1)}", json={"status": "STARTED"})
    uids, _ = poll(changes, mark)

    assert uids == [uid(1)]


def test_a_task_dated_in_the_future_does_not_carry_the_mark_past_fragments_now(
    client: FragmentClient, operator: httpx.Client
) -> None:
    put(operator, task(1, updated_at="2999-01-01T00:00:00Z"), task(2))
    changes = FragmentPoll(client, lookback=dt.timedelta(seconds=1))
    _, mark = poll(changes, None)
    assert mark is not None and mark <= dt.datetime.now(dt.UTC)

    operator.patch(f"/tasks/{uid(2)}", json={"status": "DONE"})
    uids, _ = poll(changes, mark)

    assert uid(2) in uids  # found, though listed before the task from the future


def test_a_poll_starts_its_lookback_before_the_mark_and_never_at_it() -> None:
    assert poll_after(None, dt.timedelta(minutes=1)) is None
    assert poll_after(T, dt.timedelta(minutes=1)) == T - dt.timedelta(minutes=1)
    # The listing is exclusive: a zero lookback still reads the tasks sharing the mark's time.
    assert poll_after(T, dt.timedelta(0)) == T - dt.timedelta(microseconds=1)


def test_a_page_moves_the_mark_to_its_latest_time_held_at_the_ceiling_and_never_back() -> None:
    def changed(moment: dt.datetime | None) -> ChangedTask:
        return ChangedTask(uid(0), moment, {})

    later = T + dt.timedelta(hours=1)
    assert page_mark(None, [changed(T), changed(later)], ceiling=later) == later
    assert page_mark(None, [changed(later)], ceiling=T) == T
    assert page_mark(later, [changed(T)], ceiling=later) == later
    assert page_mark(T, [changed(None)], ceiling=later) == T
    assert page_mark(None, [], ceiling=later) is None


def test_polls_take_at_most_their_share_of_the_request_budget(
    emulator: Emulator, operator: httpx.Client
) -> None:
    put(operator, task(1))
    settings = FragmentSettings.model_validate(
        {"url": emulator.base_url, "token": TOKEN, "requests_per_minute": 60,
         "write_back_share": 1 / 60}
    )  # fmt: skip
    stop = threading.Event()
    with FragmentClient(settings, stop=stop) as fragment:
        fragment.task_page({"order_by": "updated_at"})  # the minute's one poll
        threading.Timer(0.3, stop.set).start()
        with pytest.raises(RunInterrupted):
            fragment.task_page({"order_by": "updated_at"})  # waits for the next minute

    polls = [r for r in emulator.requests if r["method"] == "GET" and r["path"].endswith("/tasks")]
    assert len(polls) == 1
