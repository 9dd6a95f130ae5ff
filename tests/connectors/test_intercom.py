"""The Intercom connector against a fake of Intercom's REST API, plus Intercom's own pitfalls."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest

from connectors.base import Person, SourceTicket
from connectors.intercom import IntercomConnector, IntercomOptions
from fakes import Reply, Request
from fakes.intercom import FakeIntercom, rate_limited, ticket_state, unix
from fakes.suite import (
    T0,
    ConnectorSuite,
    ScopesSuite,
    TwoScopesCase,
    VendorCase,
    nth_page_request,
)
from fragment_emulator import Emulator
from sync.config import build_config
from sync.run import RunOptions, RunSummary, run_once
from sync.state import StateStore
from synckit import TOKEN, tasks_by_ticket

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


def connector(case: IntercomCase, **options: Any) -> IntercomConnector:
    settings = {**case.options(), "requests_per_minute": 100_000, **options}
    return IntercomConnector("intercom", IntercomOptions.model_validate(settings))


def sync(case: IntercomCase, emulator: Emulator, state_url: str, **settings: Any) -> RunSummary:
    """One pass with the suite's options plus `settings` (`conversation`, `objects`)."""
    options = {
        "kind": "intercom",
        "max_attempts": 4,
        "max_retry_wait": "10s",
        "requests_per_minute": 100_000,
        **case.options(),
        **settings,
    }
    raw = {
        "fragment": {"url": emulator.base_url, "token": TOKEN, "requests_per_minute": 100_000},
        "state": {"url": state_url},
        "connectors": {"source": options},
    }
    with StateStore.open(state_url) as store:
        [summary] = run_once(build_config(raw, source="test"), store, options=RunOptions())
    return summary


def search_bodies(fake: FakeIntercom, path: str) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in fake.searches(path)]


class TestIntercomReadingGreaterAsGreaterOrEqual(ConnectorSuite):
    """The suite again against a fake whose `>` is "greater (or equal)", the operator
    table's own words: asking `> W - 1` reads the watermark's second either way."""

    @pytest.fixture
    def case(self) -> Iterator[IntercomCase]:
        with FakeIntercom(TOKEN_VALUE, inclusive_comparisons=True) as fake:
            yield IntercomCase(fake)


def test_each_search_is_sorted_ascending_on_updated_at_from_the_second_before_the_watermark(
    case: IntercomCase,
) -> None:
    for n in range(1, 8):
        case.add(n, T0 + dt.timedelta(seconds=n))
    source = connector(case, objects=["conversations"])

    tickets = list(source.pull(T0 + dt.timedelta(seconds=2, milliseconds=700)))
    source.close()

    assert [t.source_id for t in tickets] == ["3", "4", "5", "6", "7"]
    first, *_ = search_bodies(case.fake, "/conversations/search")
    assert first == {
        "query": {"field": "updated_at", "operator": ">", "value": unix(T0) + 1},
        "sort": {"field": "updated_at", "order": "ascending"},
        "pagination": {"per_page": case.page_size},
    }
    assert case.fake.searches("/tickets/search") == []  # not in `objects`
    assert set(case.fake.versions) == {"2.14"}
    [search, *_] = case.fake.searches("/conversations/search")
    assert search.headers["authorization"] == f"Bearer {TOKEN_VALUE}"


def test_an_edit_between_two_pages_of_the_stateless_cursor_skips_nothing(
    case: IntercomCase,
) -> None:
    """The fake's `starting_after` is an offset, as a stateless cursor may be: following
    it after conversation 1 moved to the end would skip conversation 6. Re-anchoring
    every page on the last `updated_at` read does not."""
    for n in range(1, 12):
        case.add(n, T0 + dt.timedelta(minutes=n))
    source = connector(case, objects=["conversations"])

    case.fake.when(nth_page_request(case, 2), lambda: case.update(1, T0 + dt.timedelta(hours=1)))
    read = [t.source_id for t in source.pull(None) if isinstance(t, SourceTicket)]
    source.close()

    assert sorted(set(read), key=int) == [str(n) for n in range(1, 12)]


def test_statuses_map_to_fragments_and_intercoms_own_word_is_kept(
    two_objects: TwoObjectsCase, emulator: Emulator, sqlite_url: str
) -> None:
    case = two_objects
    for n, state in ((1, "open"), (3, "snoozed"), (5, "closed")):
        case.add(n, T0 + dt.timedelta(minutes=n))
        case.fake.conversations[n]["state"] = state
    categories = ("submitted", "in_progress", "waiting_on_customer", "resolved")
    for n, category in zip((2, 4, 6, 8), categories, strict=True):
        case.add(n, T0 + dt.timedelta(minutes=n))
        case.fake.tickets[n]["ticket_state"] = ticket_state(category)

    assert sync(case, emulator, sqlite_url, workspace_id="ws42").ok

    tasks = tasks_by_ticket(emulator)
    shown = {
        k: (t["fields"]["source_status"], t["status"], t["external_status"])
        for k, t in tasks.items()
    }
    assert shown == {
        "1": ("open", "TODO", "TODO"),
        "3": ("snoozed", "STARTED", "STARTED"),
        "5": ("closed", "DONE", "DONE"),
        "2": ("submitted", "TODO", "TODO"),
        "4": ("in_progress", "STARTED", "STARTED"),
        "6": ("waiting_on_customer", "STARTED", "STARTED"),
        "8": ("resolved", "DONE", "DONE"),
    }
    assert tasks["1"]["fields"]["object"] == "conversation"
    assert tasks["2"]["fields"]["object"] == "ticket"
    assert tasks["2"]["fields"]["ticket_number"] == "1002"
    assert tasks["2"]["fields"]["url"] == (
        "https://app.intercom.com/a/inbox/ws42/inbox/conversation/2"
    )
    assert case.fake.gets("/me") == []  # the workspace is configured


def test_a_ticket_state_given_as_a_plain_word_and_an_assignee_as_0_read_as_before_2_14(
    two_objects: TwoObjectsCase,
) -> None:
    """API 2.11 and older give `ticket_state` as a word, and 2.16 an unassigned ticket's
    `admin_assignee_id` as the number 0: a pinned older or newer version still maps."""
    case = two_objects
    case.add(2, T0)
    case.fake.tickets[2].update(ticket_state="waiting_on_customer", admin_assignee_id=0)
    source = connector(case, objects=["tickets"], workspace_id="ws42")
    [ticket] = list(source.pull(None))
    source.close()
    assert isinstance(ticket, SourceTicket)
    assert (ticket.record["state_name"], ticket.record["assignee_id"]) == (
        "waiting_on_customer",
        None,
    )


def test_the_inbox_link_takes_the_workspace_from_me_once_a_pass(
    case: IntercomCase, emulator: Emulator, sqlite_url: str
) -> None:
    for n in range(1, 8):
        case.add(n, T0 + dt.timedelta(minutes=n))
    assert sync(case, emulator, sqlite_url).ok
    url = tasks_by_ticket(emulator)["7"]["fields"]["url"]
    assert url == "https://app.intercom.com/a/inbox/ecahpwf5/inbox/conversation/7"
    assert len(case.fake.gets("/me")) == 1


def test_a_conversation_that_says_it_is_a_ticket_is_left_to_the_tickets_query(
    two_objects: TwoObjectsCase, emulator: Emulator, sqlite_url: str
) -> None:
    """API 2.16 marks a ticket's conversation with `ticket`: read from both searches, it
    would be one id with two records, pushed over each other every pass."""
    case = two_objects
    case.add(1, T0)
    case.add(2, T0 + dt.timedelta(minutes=1))  # a ticket
    twin = case.fake.add_conversation(2, T0 + dt.timedelta(minutes=1), title="Its conversation")
    twin["ticket"] = {"type": "ticket", "id": "2", "ticket_id": "1002"}
    case.fake.tickets[2]["ticket_state"] = ticket_state("in_progress")

    first = sync(case, emulator, sqlite_url)
    again = sync(case, emulator, sqlite_url)

    assert (first.ok, first.pushed, again.pushed) == (True, 2, 0)
    task = tasks_by_ticket(emulator)["2"]
    assert (task["fields"]["title"], task["fields"]["object"]) == ("Printer 2 jammed v1", "ticket")
    # Read alone, conversations keep it: nothing else would bring it.
    only = connector(case, objects=["conversations"])
    assert [t.source_id for t in only.pull(None)] == ["1", "2"]
    only.close()


def test_admin_assignees_resolve_to_emails_from_one_admins_request(
    two_objects: TwoObjectsCase, emulator: Emulator, sqlite_url: str
) -> None:
    case = two_objects
    case.fake.add_admin(991267, "Ada Ops", "ada@acme.example")
    case.fake.add_admin(991268, "Bo Desk", None)
    for n in range(1, 7):
        case.add(n, T0 + dt.timedelta(minutes=n))
    case.fake.conversations[1]["admin_assignee_id"] = 991267
    case.fake.conversations[3]["admin_assignee_id"] = 991268
    case.fake.tickets[2]["admin_assignee_id"] = "991267"  # a string on tickets in 2.14
    case.fake.tickets[4]["admin_assignee_id"] = "0"  # unassigned
    case.fake.tickets[6]["admin_assignee_id"] = "5550001"  # no longer a teammate

    assert sync(case, emulator, sqlite_url).ok

    tasks = tasks_by_ticket(emulator)
    emails = {k: (t.get("assignee") or {}).get("email") for k, t in tasks.items()}
    unassigned = dict.fromkeys(("3", "4", "5", "6"))
    assert emails == {"1": "ada@acme.example", "2": "ada@acme.example", **unassigned}
    assert len(case.fake.gets("/admins")) == 1
    source = connector(case)
    people = {p.user_id: p for p in source.people(["991267", "991268", "5550001"])}
    source.close()
    assert people["991267"] == Person("991267", "ada@acme.example", "Ada Ops")
    assert people["991268"].email is None and people["991268"].reason
    assert people["5550001"].email is None and "not an admin" in (people["5550001"].reason or "")


def test_parts_become_comments_notes_private_and_a_deleted_one_keeps_none(
    two_objects: TwoObjectsCase, emulator: Emulator, sqlite_url: str
) -> None:
    case = two_objects
    case.add(1, T0)
    case.add(2, T0 + dt.timedelta(minutes=1))
    case.add(3, T0 + dt.timedelta(minutes=2))
    case.fake.add_part(1, T0 + dt.timedelta(minutes=5), body="<p>Rebooted it</p>")
    case.fake.add_part(1, T0 + dt.timedelta(minutes=6), part_type="assignment", body=None)
    case.fake.add_part(1, T0 + dt.timedelta(minutes=7), part_type="note", body="VIP customer")
    case.fake.add_part(2, T0 + dt.timedelta(minutes=8), body="Fixed in 4.2")
    case.fake.when(
        lambda r: r.path == "/conversations/3", lambda: case.fake.delete(3)
    )  # deleted between the search and its show

    summary = sync(case, emulator, sqlite_url, conversation={"enabled": True})

    assert summary.ok, summary.error
    tasks = tasks_by_ticket(emulator)
    first = tasks["1"]["fields"]
    # The opening message, then the reply; the assignment has no body, the note is private.
    assert first["comment_count"] == 2
    assert "Rebooted it" in first["last_comment"]
    assert first["last_comment_author"] == "Ada"
    assert tasks["2"]["fields"]["comment_count"] == 1
    assert "comment_count" not in tasks["3"]["fields"]
    assert {r.path for r in case.fake.requests if r.method == "GET" and "/" in r.path[1:]} >= {
        "/conversations/1",
        "/tickets/2",
    }


def test_a_census_is_not_fooled_by_a_deletion_between_its_pages(
    case: IntercomCase, emulator: Emulator, sqlite_url: str
) -> None:
    """The census pages on `created_at`, re-anchored: conversation 2, deleted after the
    first page was read, shifts no offset, so 6, first on the next page, is not skipped
    (and archived though live), as following the offset-like `starting_after` would."""
    for n in range(1, 16):
        case.add(n, T0 + dt.timedelta(minutes=n))
    assert sync(case, emulator, sqlite_url).ok
    census_pages = [0]

    def second_census_page(request: Request) -> bool:
        census_pages[0] += b'"created_at"' in request.body
        return census_pages[0] == 2

    case.fake.when(second_census_page, lambda: case.delete(2, T0 + dt.timedelta(hours=1)))

    summary = ConnectorSuite().census(case, emulator, sqlite_url)

    assert summary.ok, summary.error
    archived = {k for k, t in tasks_by_ticket(emulator).items() if t["archived"]}
    assert (summary.at_source, summary.tracked, archived) == (15, 15, set())
    assert ConnectorSuite().census(case, emulator, sqlite_url).gone == 1  # 2, the next time


def test_options_name_the_region_and_refuse_an_unknown_object() -> None:
    eu = IntercomOptions.model_validate({"access_token": "t", "region": "eu"})
    assert eu.base_url == "https://api.eu.intercom.io"
    assert eu.objects == ["conversations", "tickets"]
    assert IntercomOptions.model_validate({"access_token": "t"}).base_url == (
        "https://api.intercom.io"
    )
    with pytest.raises(ValueError, match="objects"):
        IntercomOptions.model_validate({"access_token": "t", "objects": ["contacts"]})
    with pytest.raises(ValueError, match="page_size"):
        IntercomOptions.model_validate({"access_token": "t", "page_size": 151})


def test_a_token_the_workspace_refuses_fails_the_run_naming_intercoms_answer(
    case: IntercomCase, emulator: Emulator, sqlite_url: str
) -> None:
    case.add(1, T0)
    case.fake.token = "another"
    summary = sync(case, emulator, sqlite_url)
    assert not summary.ok
    assert "401" in (summary.error or "") and "Access Token Invalid" in (summary.error or "")
    assert TOKEN_VALUE not in (summary.error or "")


def test_a_token_that_may_not_read_admins_fails_the_pass_saying_so(
    case: IntercomCase, emulator: Emulator, sqlite_url: str
) -> None:
    case.add(1, T0)
    case.fake.conversations[1]["admin_assignee_id"] = 991267
    forbidden = Reply(
        403,
        {
            "type": "error.list",
            "request_id": "b7a3a1c2",
            "errors": [{"code": "action_forbidden", "message": "Read admins is required"}],
        },
    )
    case.fake.fail_next(forbidden, times=10, when=lambda r: r.path == "/admins")
    summary = sync(case, emulator, sqlite_url)
    assert not summary.ok
    assert "403" in (summary.error or "") and "Read admins" in (summary.error or "")
