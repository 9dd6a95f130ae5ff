"""The Intercom connector against a fake of Intercom's REST API, plus Intercom's own pitfalls."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest

from fakes import Reply, Request
from fakes.intercom import FakeIntercom, rate_limited
from fakes.suite import (
    T0,
    ConnectorSuite,
    ScopesSuite,
    TwoScopesCase,
    VendorCase,
    nth_page_request,
)
from fragment_emulator import Emulator
from synckit import tasks_by_ticket

TOKEN_VALUE = "dG9rOmIyYzM0ZDU2XzEyMzQ6MToz"
SEARCHES = ("/conversations/search", "/tickets/search")


class IntercomCase(VendorCase):
    """Conversations only, both objects read (the tickets query finds none)."""

    kind = "intercom"
    fake: FakeIntercom

    def options(self) -> dict[str, Any]:
        return {
            "base_url": self.fake.base_url,
            "access_token": TOKEN_VALUE,
            "page_size": self.page_size,
        }

    def subject(self, number: int, version: int) -> str:
        return f"Printer {number} jammed v{version}"

    def put(self, number: int, updated: dt.datetime, version: int) -> None:
        subject = self.subject(number, version)
        if number in self.fake.conversations:
            self.fake.touch(number, updated, title=subject)
        elif number in self.fake.tickets:
            attributes = {"_default_title_": subject, "_default_description_": None}
            self.fake.touch(number, updated, ticket_attributes=attributes)
        else:
            self.fake.add_conversation(number, updated, title=subject)

    def remove(self, number: int, at: dt.datetime) -> None:
        self.fake.delete(number)

    def put_malformed(self, number: int, updated: dt.datetime) -> str:
        conversation = self.fake.add_conversation(number, updated, title="Broken")
        conversation["updated_at"] = "yesterday-ish"  # the search still finds it by its index
        return "updated_at"

    def rate_limit(self, wait: int) -> Reply:
        return rate_limited(self.fake.clock(), wait)

    def title(self, number: int, version: int) -> str:
        return self.subject(number, version)

    def is_page_request(self, request: Request) -> bool:
        return request.method == "POST" and request.path in SEARCHES


@pytest.fixture
def case() -> Iterator[IntercomCase]:
    with FakeIntercom(TOKEN_VALUE) as fake:
        yield IntercomCase(fake)


class TestIntercom(ConnectorSuite):
    pass


class TwoObjectsCase(IntercomCase, TwoScopesCase):
    """Odd numbers are conversations, even ones tickets."""

    def in_second_scope(self, request: Request) -> bool:
        return request.method == "POST" and request.path == "/tickets/search"

    def put(self, number: int, updated: dt.datetime, version: int) -> None:
        if number % 2 == 0 and version == 1:
            title = {"_default_title_": self.subject(number, 1), "_default_description_": None}
            self.fake.add_ticket(number, updated, ticket_attributes=title)
        else:
            super().put(number, updated, version)

    def move(self, number: int, updated: dt.datetime) -> str:
        """A conversation turned into a ticket: Intercom keeps its id."""
        self.fake.convert(number, updated)
        self.versions[number] += 1
        self.put(number, updated, self.versions[number])
        return str(number)


@pytest.fixture
def two_objects() -> Iterator[TwoObjectsCase]:
    with FakeIntercom(TOKEN_VALUE) as fake:
        yield TwoObjectsCase(fake)


class TestIntercomConversationsAndTickets(ScopesSuite):
    """Every scenario of the suite again, over conversations and tickets read in one pass."""

    @pytest.fixture
    def case(self, two_objects: TwoObjectsCase) -> TwoObjectsCase:
        return two_objects


def search_bodies(fake: FakeIntercom, path: str) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in fake.searches(path)]


def test_a_rate_limit_reset_on_intercoms_clock_an_hour_ahead_is_read_against_its_date_header(
    case: IntercomCase, emulator: Emulator, sqlite_url: str
) -> None:
    """`X-RateLimit-Reset` is a Unix time on Intercom's clock. Read against this machine's
    clock, one running an hour behind Intercom's would wait an hour (more than
    `max_retry_wait`: the run fails); read against the answer's `Date`, it waits 1-2 s."""
    case.fake.clock.offset = dt.timedelta(hours=1)
    for n in range(1, 4 * case.page_size):
        case.add(n, T0 + dt.timedelta(minutes=n))
    case.fake.fail_next(case.rate_limit(1), when=nth_page_request(case, 2))
    summary = ConnectorSuite().sync(case, emulator, sqlite_url)
    assert summary.ok, summary.error
    pages = [r for r in case.fake.requests if case.is_page_request(r)]
    assert 1.0 <= pages[2].at - pages[1].at < 5.0
    assert set(tasks_by_ticket(emulator)) == {str(n) for n in range(1, 4 * case.page_size)}
