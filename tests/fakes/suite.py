"""The standard suite every HTTP connector runs against its vendor fake.

A connector's test module subclasses `ConnectorSuite` and gives a `case`
fixture (a `VendorCase`: the fake, the options, and how to add, change and
delete tickets in it). It inherits every scenario the issue asks of a
connector: backfill then incremental runs, a timestamp shared across a page
boundary, a ticket updated mid-run, a rate limit mid-run, a deletion, a
malformed record, a persistent error. After each, the emulator must hold
exactly the source's tickets, once each, with their latest content.
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import pytest

from fakes import HTML_ERROR, FakeApi, Reply, Request
from fragment_emulator import Emulator
from sync.census import CensusSummary, census_once
from sync.config import Config, build_config
from sync.run import RunOptions, RunSummary, run_once
from sync.state import StateStore
from sync_http import clock
from synckit import TOKEN, pushed_items, tasks_by_ticket

T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)
SECOND = dt.timedelta(seconds=1)


class VendorCase(ABC):
    """One vendor's fake and how to drive it; `live` tracks what Fragment should hold."""

    kind: str
    page_size: int = 5
    shows_deletions: bool = False
    """Whether the vendor's incremental feed reports deletions (else a deleted ticket vanishes)."""

    def __init__(self, fake: FakeApi) -> None:
        self.fake = fake
        self.versions: dict[int, int] = {}
        self.deleted: set[int] = set()

    @abstractmethod
    def options(self) -> dict[str, Any]:
        """The connector's options (credentials, scope) for this fake."""

    @abstractmethod
    def put(self, number: int, updated: dt.datetime, version: int) -> None:
        """Create or change ticket `number` in the fake, its subject naming `version`."""

    @abstractmethod
    def remove(self, number: int, at: dt.datetime) -> None:
        """Delete ticket `number` the way the vendor does."""

    @abstractmethod
    def put_malformed(self, number: int, updated: dt.datetime) -> str:
        """Add a ticket the connector can't read; returns the field at fault."""

    @abstractmethod
    def rate_limit(self, wait: int) -> Reply:
        """The vendor's documented rate-limit answer, asking for `wait` seconds."""

    @abstractmethod
    def title(self, number: int, version: int) -> str:
        """The task title the default mapping gives ticket `number` at `version`."""

    @abstractmethod
    def is_page_request(self, request: Request) -> bool:
        """Whether `request` asks the fake for a page of tickets."""

    def ticket_key(self, number: int) -> str:
        """Ticket `number`'s `ticket_id` field in Fragment (its source id, by default)."""
        return str(number)

    # Shared driving

    def add(self, number: int, updated: dt.datetime) -> None:
        self.versions[number] = 1
        self.put(number, updated, 1)

    def update(self, number: int, updated: dt.datetime) -> None:
        self.versions[number] += 1
        self.put(number, updated, self.versions[number])

    def delete(self, number: int, at: dt.datetime) -> None:
        self.deleted.add(number)
        self.remove(number, at)

    def live(self) -> dict[str, str]:
        """Source id → the title Fragment should show on a task that is not archived.

        A deleted ticket's task is archived where the vendor reports deletions;
        elsewhere it stays as it was (the feed can't tell a deletion happened).
        """
        return {
            str(n): self.title(n, v)
            for n, v in self.versions.items()
            if n not in self.deleted or not self.shows_deletions
        }


class TwoScopesCase(VendorCase):
    """Tickets spread over two scopes of one connector, each read by queries of its own:
    odd numbers in the first scope, even in the second."""

    @abstractmethod
    def in_second_scope(self, request: Request) -> bool:
        """Whether `request` asks for a page of the second scope's tickets."""

    @abstractmethod
    def move(self, number: int, updated: dt.datetime) -> str:
        """Move ticket `number` to the other scope at `updated`; its source id afterwards."""


def nth_page_request(case: VendorCase, n: int) -> Callable[[Request], bool]:
    """A predicate true for the `n`th page request the fake receives (1-based)."""
    pages = [0]

    def matches(request: Request) -> bool:
        if case.is_page_request(request):
            pages[0] += 1
        return pages[0] == n

    return matches


class ConnectorSuite:
    """Scenarios every HTTP connector passes. Subclasses provide the `case` fixture."""

    def config(self, case: VendorCase, emulator: Emulator, state_url: str) -> Config:
        options = {
            "max_attempts": 4,
            "max_retry_wait": "10s",
            "rate_limit_floor": "100ms",
            "requests_per_minute": 100_000,
            **case.options(),
        }
        raw = {
            "fragment": {"url": emulator.base_url, "token": TOKEN, "requests_per_minute": 100_000},
            "state": {"url": state_url},
            "connectors": {"source": {"kind": case.kind, **options}},
        }
        return build_config(raw, source="test")

    def sync(self, case: VendorCase, emulator: Emulator, state_url: str) -> RunSummary:
        store = StateStore.open(state_url)
        try:
            [summary] = run_once(
                self.config(case, emulator, state_url), store, options=RunOptions()
            )
        finally:
            store.close()
        return summary

    def census(self, case: VendorCase, emulator: Emulator, state_url: str) -> CensusSummary:
        config = self.config(case, emulator, state_url)
        with StateStore.open(state_url) as store:
            [summary] = census_once(config, store, ["source"])
        return summary

    def assert_exact(self, case: VendorCase, emulator: Emulator) -> None:
        landed = tasks_by_ticket(emulator)
        expected = case.live()
        archived = {k for k, t in landed.items() if t["archived"]}
        present = {k: t["fields"]["title"] for k, t in landed.items() if k not in archived}
        assert present == expected
        if case.shows_deletions:
            assert archived == {case.ticket_key(n) for n in case.deleted}

    def test_backfill_then_incremental_runs_push_only_changes(
        self, case: VendorCase, emulator: Emulator, sqlite_url: str
    ) -> None:
        for n in range(1, 23):
            case.add(n, T0 + dt.timedelta(minutes=n))
        first = self.sync(case, emulator, sqlite_url)
        assert first.ok, first.error
        assert first.pushed == 22
        self.assert_exact(case, emulator)

        for n in (3, 9, 17):
            case.update(n, T0 + dt.timedelta(hours=2, minutes=n))
        for n in (40, 41):
            case.add(n, T0 + dt.timedelta(hours=3, minutes=n))
        second = self.sync(case, emulator, sqlite_url)
        assert second.ok, second.error
        assert second.pushed == 5
        self.assert_exact(case, emulator)

        third = self.sync(case, emulator, sqlite_url)
        assert (third.ok, third.pushed) == (True, 0)

    def test_tickets_sharing_a_timestamp_across_a_page_boundary_land_once(
        self, case: VendorCase, emulator: Emulator, sqlite_url: str
    ) -> None:
        tie = T0 + dt.timedelta(minutes=30)
        count = case.page_size * 2 + 3
        for n in range(1, count + 1):
            case.add(n, tie)
        for n in range(100, 104):
            case.add(n, tie + dt.timedelta(seconds=n))
        summary = self.sync(case, emulator, sqlite_url)
        assert summary.ok, summary.error
        self.assert_exact(case, emulator)
        assert pushed_items(emulator) == count + 4  # none pushed twice

        case.add(200, tie + dt.timedelta(seconds=103))  # a late sibling of the last second
        again = self.sync(case, emulator, sqlite_url)
        assert (again.ok, again.pushed) == (True, 1)
        self.assert_exact(case, emulator)

    def test_a_ticket_updated_while_the_sync_runs_is_not_lost(
        self, case: VendorCase, emulator: Emulator, sqlite_url: str
    ) -> None:
        for n in range(1, case.page_size * 3 + 1):
            case.add(n, T0 + dt.timedelta(minutes=n))
        second_page = nth_page_request(case, 2)

        late = T0 + dt.timedelta(days=1)

        def edit_mid_scan() -> None:
            case.update(1, late)  # already read
            case.update(case.page_size * 2 + 2, late)  # not read yet

        case.fake.when(second_page, edit_mid_scan)
        first = self.sync(case, emulator, sqlite_url)
        assert first.ok, first.error
        assert set(tasks_by_ticket(emulator)) == set(case.live())  # nothing skipped
        second = self.sync(case, emulator, sqlite_url)
        assert second.ok, second.error
        self.assert_exact(case, emulator)

    def test_a_change_made_during_a_pass_stays_after_the_watermark_when_this_host_runs_ahead(
        self,
        case: VendorCase,
        emulator: Emulator,
        sqlite_url: str,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """This machine's clock runs 5 s ahead of the source's, which stamps the changes.

        A ticket changed while the pass runs is stamped before the pass's start
        by this machine's clock: the watermark must stop at the pass's start on
        the source's clock (its `Date` header says it), or a change the pass
        skipped is behind the watermark for good.
        """
        # One time for both clocks, moved by hand: the source's, and this machine's 5 s ahead.
        start = dt.datetime.now(dt.UTC).replace(microsecond=0)
        case.fake.clock.stop_at(start)
        monkeypatch.setattr(clock, "now", lambda: case.fake.clock.now() + 5 * SECOND)
        for n in range(1, case.page_size * 2 + 1):
            case.add(n, start - dt.timedelta(minutes=30) + dt.timedelta(seconds=n))

        def change_during_the_pass() -> None:
            case.fake.clock.advance(2 * SECOND)
            case.update(1, case.fake.clock.now())  # read on the first page

        case.fake.when(nth_page_request(case, 2), change_during_the_pass)
        summary = self.sync(case, emulator, sqlite_url)
        assert summary.ok, summary.error
        store = StateStore.open(sqlite_url)
        watermark = store.watermark("source")
        store.close()
        assert isinstance(watermark, dt.datetime) and watermark <= start, (watermark, start)
        case.fake.clock.advance(120 * SECOND)  # Zendesk withholds the last minute
        again = self.sync(case, emulator, sqlite_url)
        assert again.ok, again.error
        self.assert_exact(case, emulator)

    def test_a_rate_limit_mid_run_is_waited_out_and_loses_nothing(
        self, case: VendorCase, emulator: Emulator, sqlite_url: str
    ) -> None:
        for n in range(1, case.page_size * 3 + 1):
            case.add(n, T0 + dt.timedelta(minutes=n))
        second_page = nth_page_request(case, 2)

        case.fake.fail_next(case.rate_limit(1), when=second_page)
        summary = self.sync(case, emulator, sqlite_url)
        assert summary.ok, summary.error
        self.assert_exact(case, emulator)
        page_requests = [r for r in case.fake.requests if case.is_page_request(r)]
        limited = page_requests[1]
        after = page_requests[2]
        assert after.at - limited.at >= 1.0  # the wait the server asked for

    def test_a_deleted_ticket_is_archived_or_left_alone_as_the_vendor_allows(
        self, case: VendorCase, emulator: Emulator, sqlite_url: str
    ) -> None:
        for n in range(1, 6):
            case.add(n, T0 + dt.timedelta(minutes=n))
        assert self.sync(case, emulator, sqlite_url).ok
        case.delete(3, T0 + dt.timedelta(hours=1))
        summary = self.sync(case, emulator, sqlite_url)
        assert summary.ok, summary.error
        self.assert_exact(case, emulator)
        if not case.shows_deletions:
            assert tasks_by_ticket(emulator)["3"]["archived"] is False

    def test_a_census_archives_the_tasks_of_deleted_tickets_or_says_it_takes_none(
        self, case: VendorCase, emulator: Emulator, sqlite_url: str
    ) -> None:
        for n in range(1, 26):  # five pages
            case.add(n, T0 + dt.timedelta(minutes=n))
        assert self.sync(case, emulator, sqlite_url).ok
        case.delete(3, T0 + dt.timedelta(hours=1))
        case.delete(17, T0 + dt.timedelta(hours=1))

        summary = self.census(case, emulator, sqlite_url)

        landed = tasks_by_ticket(emulator)
        archived = {n: landed[case.ticket_key(n)]["archived"] for n in range(1, 26)}
        if summary.outcome == "unsupported":
            assert summary.error is not None and "takes no census" in summary.error
            assert not any(archived.values())  # no pass has run since: nothing changed
            return
        assert summary.ok, summary.error
        assert (summary.at_source, summary.tracked, summary.gone) == (23, 25, 2)
        assert archived == {n: n in (3, 17) for n in range(1, 26)}
        # The tickets are back in step with the source: a pass finds nothing to push.
        again = self.sync(case, emulator, sqlite_url)
        assert (again.ok, again.pushed) == (True, 0)

    def test_a_malformed_record_is_recorded_and_the_rest_goes_on(
        self, case: VendorCase, emulator: Emulator, sqlite_url: str
    ) -> None:
        for n in range(1, 8):
            case.add(n, T0 + dt.timedelta(minutes=n))
        field = case.put_malformed(50, T0 + dt.timedelta(minutes=4, seconds=30))
        summary = self.sync(case, emulator, sqlite_url)
        assert summary.ok, summary.error
        assert summary.failed == 1
        self.assert_exact(case, emulator)
        store = StateStore.open(sqlite_url)
        [failed] = store.failed_items("source")
        store.close()
        assert failed.field == field
        assert "source" in failed.error and field in failed.error

    def test_refused_credentials_fail_the_run_with_a_clear_message(
        self, case: VendorCase, emulator: Emulator, sqlite_url: str
    ) -> None:
        case.add(1, T0)
        case.fake.fail_next(Reply(401, {"error": "Couldn't authenticate you"}), times=10)
        summary = self.sync(case, emulator, sqlite_url)
        assert not summary.ok
        assert "credentials" in (summary.error or "")
        assert "401" in (summary.error or "")

    def test_an_html_error_page_fails_the_run_with_a_clear_message(
        self, case: VendorCase, emulator: Emulator, sqlite_url: str
    ) -> None:
        case.add(1, T0)
        case.fake.fail_next(Reply(200, raw=HTML_ERROR.raw, content_type="text/html"), times=10)
        summary = self.sync(case, emulator, sqlite_url)
        assert not summary.ok
        assert "not JSON" in (summary.error or "")
        assert "Traceback" not in (summary.error or "")


class ScopesSuite(ConnectorSuite):
    """What a connector reading several scopes in one pass must do, besides the suite's
    scenarios (which a `TwoScopesCase` runs over two scopes)."""

    def test_a_failure_in_one_scope_keeps_the_watermark_before_its_unread_tickets(
        self, case: TwoScopesCase, emulator: Emulator, sqlite_url: str
    ) -> None:
        """The second scope fails after its first page (2, 4, .. 10): the first scope's
        11, 13, .. must wait, or the watermark passes the second scope's 12, 14, .."""
        for n in range(1, 25):
            case.add(n, T0 + dt.timedelta(minutes=n))
        pages = [0]

        def second_page_of_the_second_scope(request: Request) -> bool:
            pages[0] += case.in_second_scope(request)
            return pages[0] >= 2

        case.fake.fail_next(
            Reply(404, {"message": "Not Found"}), when=second_page_of_the_second_scope
        )
        failed = self.sync(case, emulator, sqlite_url)
        assert not failed.ok
        store = StateStore.open(sqlite_url)
        watermark = store.watermark("source")
        store.close()
        first_unread = T0 + dt.timedelta(minutes=2 * case.page_size + 2)
        assert watermark is not None and watermark < first_unread, watermark
        read = {str(n) for n in range(1, 2 * case.page_size + 1)}
        assert set(tasks_by_ticket(emulator)) == read

        case.fake.faults.clear()
        again = self.sync(case, emulator, sqlite_url)
        assert again.ok, again.error
        self.assert_exact(case, emulator)

    def test_a_ticket_moved_to_the_other_scope_keeps_its_task_if_it_keeps_its_id(
        self, case: TwoScopesCase, emulator: Emulator, sqlite_url: str
    ) -> None:
        """A move that keeps the source's id (Redmine) keeps the task and its uid; one that
        makes a new ticket (GitHub's transfer) makes a new task and leaves the old one."""
        for n in range(1, 5):
            case.add(n, T0 + dt.timedelta(minutes=n))
        assert self.sync(case, emulator, sqlite_url).ok
        before = tasks_by_ticket(emulator)
        moved_to = case.move(1, T0 + dt.timedelta(hours=1))
        summary = self.sync(case, emulator, sqlite_url)
        assert (summary.ok, summary.pushed) == (True, 1), summary.error
        after = tasks_by_ticket(emulator)
        if moved_to == "1":
            assert set(after) == set(before)
            assert after["1"]["uid"] == before["1"]["uid"]
        else:
            assert set(after) == {*before, moved_to}
            assert after["1"] == before["1"]
        assert not any(task["archived"] for task in after.values())
