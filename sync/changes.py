"""Fragment's side of a two-way sync: the tasks that changed there, in the order they did.

A write-back pass reads Fragment's changes through `TaskChanges`, one small
interface, so that a webhook feed or another listing can replace the poll.
`FragmentPoll` is today's: `GET /tasks?order_by=updated_at&updated_at_after=T`
(fragment-api.md §12, seen only in a third party's client), paged by cursor,
on the request budget's spare turns so that pushes go first.

The mark keeps the source side's rules (`sync.watermark`). Fragment stamps
`updated_at` with its own clock, so the mark is in Fragment's time and never
moves past the poll's start on Fragment's clock (its first answer's `Date`):
a task a client dated in the future can't hide every later change. A poll starts `lookback` before
the mark (`updated_at_after` is exclusive), so tasks sharing the mark's time
and changes committed late are read again; what was last written back for
each task (its hash, in the state) drops the ones already applied. Reads
Fragment only; applying a change to its ticket is another stage's job.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from connectors.values import parse_datetime
from sync.fragment import TaskListPage
from sync.watermark import held_back
from sync_http import clock

DEFAULT_LOOKBACK = dt.timedelta(minutes=1)
"""How far before the mark a poll starts: Fragment's commits that land after
a later-stamped one has been listed (no document says how late they may be)."""


@dataclass(frozen=True, slots=True)
class ChangedTask:
    """A task as Fragment lists it; `updated_at` is None when it has none readable."""

    uid: str
    updated_at: dt.datetime | None
    task: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ChangePage:
    """Changed tasks, and the mark a checkpoint may take once each is applied or failed."""

    tasks: list[ChangedTask]
    mark: dt.datetime | None


class TaskLister(Protocol):
    """What the poll needs of Fragment's client (`sync.fragment.FragmentClient.task_page`)."""

    def task_page(self, params: dict[str, str]) -> TaskListPage: ...


class TaskChanges(Protocol):
    """Where a write-back pass finds the tasks changed in Fragment since its mark."""

    def pages(self, mark: dt.datetime | None) -> Iterator[ChangePage]:
        """The tasks changed since `mark` (None: every task), oldest first, page by page."""
        ...

    def now(self) -> dt.datetime:
        """Fragment's time now, floored to the second: where a first poll's mark starts."""
        ...


def poll_after(mark: dt.datetime | None, lookback: dt.timedelta) -> dt.datetime | None:
    """The `updated_at_after` a poll from `mark` asks for: `lookback` earlier.

    At least a microsecond earlier whatever `lookback` says: the listing is
    exclusive, and tasks sharing the mark's time may not all have been read.
    """
    if mark is None:
        return None
    return mark - max(lookback, dt.timedelta(microseconds=1))


def page_mark(
    before: dt.datetime | None, tasks: Sequence[ChangedTask], ceiling: dt.datetime
) -> dt.datetime | None:
    """The mark after `tasks`: their latest `updated_at`, never past `ceiling` nor back."""
    times = [task.updated_at for task in tasks if task.updated_at is not None]
    if not times:
        return before
    latest = held_back(max(times), ceiling)
    assert isinstance(latest, dt.datetime)
    return latest if before is None else max(before, latest)


class FragmentPoll:
    """`TaskChanges` over Fragment's task listing, ordered by `updated_at`."""

    def __init__(
        self,
        client: TaskLister,
        *,
        lookback: dt.timedelta = DEFAULT_LOOKBACK,
        page_size: int = 100,
    ) -> None:
        self.client = client
        self.lookback = lookback
        self.page_size = page_size

    def now(self) -> dt.datetime:
        """The `Date` of a one-task listing (this machine's clock if it has none)."""
        page = self.client.task_page({"order_by": "updated_at", "limit": "1"})
        return (page.date or clock.now()).replace(microsecond=0)

    def pages(self, mark: dt.datetime | None) -> Iterator[ChangePage]:
        params: dict[str, str] = {"order_by": "updated_at", "limit": str(self.page_size)}
        after = poll_after(mark, self.lookback)
        if after is not None:
            params["updated_at_after"] = after.isoformat().replace("+00:00", "Z")
        ceiling: dt.datetime | None = None
        while True:
            page = self.client.task_page(params)
            if ceiling is None:
                # The poll's start on Fragment's clock: its first answer's Date, else ours.
                ceiling = (page.date or clock.now()).replace(microsecond=0)
            tasks = [changed_task(item) for item in page.items]
            mark = page_mark(mark, tasks, ceiling)
            yield ChangePage(tasks, mark)
            if page.next_cursor is None:
                return
            params["cursor"] = page.next_cursor


def changed_task(item: dict[str, Any]) -> ChangedTask:
    """One listed task; an unreadable `updated_at` leaves the mark where it is."""
    try:
        updated_at = parse_datetime(item.get("updated_at"))
    except ValueError:
        updated_at = None
    return ChangedTask(str(item.get("uid")), updated_at, item)
