"""The Freshdesk connector against a fake of its List All Tickets API, plus its own pitfalls."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from connectors.base import Person, SourceTicket
from connectors.errors import SourceError
from connectors.freshdesk import FreshdeskConnector, FreshdeskOptions
from connectors.records import get_path
from fakes import Reply, Request
from fakes.freshdesk import AGENTS, PATH, FakeFreshdesk
from fakes.suite import T0, ConnectorSuite, VendorCase
from fragment_emulator import Emulator
from synckit import free_port, pushed_items, tasks_by_ticket

API_KEY = "freshdesk-key-3f8a20"


class FreshdeskCase(VendorCase):
    kind = "freshdesk"
    shows_deletions = True
    fake: FakeFreshdesk
    max_pages = 300

    def __init__(self, fake: FakeFreshdesk) -> None:
        super().__init__(fake)
        self.extra: dict[str, Any] = {}

    def options(self) -> dict[str, Any]:
        return {
            "domain": "acme",
            "base_url": self.fake.base_url,
            "api_key": API_KEY,
            "page_size": self.page_size,
            "max_pages": self.max_pages,
            **self.extra,
        }

    def put(self, number: int, updated: dt.datetime, version: int) -> None:
        subject = f"Printer {number} jammed v{version}"
        if number in self.fake.tickets:
            self.fake.touch(number, updated, subject=subject)
        else:
            self.fake.add(number, updated, subject=subject)

    def remove(self, number: int, at: dt.datetime) -> None:
        self.fake.delete(number, at)

    def put_malformed(self, number: int, updated: dt.datetime) -> str:
        ticket = self.fake.add(number, updated)
        ticket["updated_at"] = "yesterday-ish"
        return "updated_at"

    def rate_limit(self, wait: int) -> Reply:
        return Reply(
            429,
            {"message": "You have exceeded the limit of requests per minute"},
            headers={
                "Retry-After": str(wait),
                "X-Ratelimit-Total": "200",
                "X-Ratelimit-Remaining": "0",
                "X-Ratelimit-Used-CurrentRequest": "1",
            },
        )

    def title(self, number: int, version: int) -> str:
        return f"#{number} Printer {number} jammed v{version}"

    def is_page_request(self, request: Request) -> bool:
        return request.path == PATH


@pytest.fixture
def case() -> Iterator[FreshdeskCase]:
    with FakeFreshdesk(API_KEY) as fake:
        yield FreshdeskCase(fake)


def connector(case: FreshdeskCase, **options: Any) -> FreshdeskConnector:
    settings = {**case.options(), "requests_per_minute": 100_000, **options}
    return FreshdeskConnector("freshdesk", FreshdeskOptions.model_validate(settings))


def pages_asked(case: FreshdeskCase) -> list[int]:
    return [int(r.param("page", "1") or 1) for r in case.fake.gets(PATH)]


class TestFreshdesk(ConnectorSuite):
    def test_the_window_moves_forward_at_the_page_cap(
        self, case: FreshdeskCase, emulator: Emulator, sqlite_url: str
    ) -> None:
        case.fake.page_cap = case.max_pages = 3  # 3 pages of 5: 15 tickets a query
        for n in range(1, 41):  # groups of 10 sharing a second make the queries page deep
            case.add(n, T0 + dt.timedelta(minutes=(n - 1) // 10))

        summary = self.sync(case, emulator, sqlite_url)

        assert summary.ok, summary.error
        self.assert_exact(case, emulator)
        assert pushed_items(emulator) == 40  # each once
        assert max(pages_asked(case)) == 3  # it went as deep as allowed, never deeper
        assert len({r.param("updated_since") for r in case.fake.gets(PATH)}) == 5

    def test_a_page_cap_full_of_one_updated_at_fails_with_a_clear_error_not_a_loop(
        self, case: FreshdeskCase, emulator: Emulator, sqlite_url: str
    ) -> None:
        case.fake.page_cap = case.max_pages = 3
        for n in range(1, 21):  # a bulk update: 20 tickets in one second
            case.add(n, T0)

        summary = self.sync(case, emulator, sqlite_url)

        assert not summary.ok
        assert "cursor stopped advancing" in (summary.error or "")
        assert "connector 'source'" in (summary.error or "")
        assert max(pages_asked(case)) <= 3
        assert len(case.fake.gets(PATH)) < 20

    def test_deleted_and_spam_tickets_archive_their_tasks(
        self, case: FreshdeskCase, emulator: Emulator, sqlite_url: str
    ) -> None:
        for n in range(1, 6):
            case.add(n, T0 + dt.timedelta(minutes=n))
        assert self.sync(case, emulator, sqlite_url).ok
        case.fake.delete(2, T0 + dt.timedelta(hours=1))
        case.fake.mark_spam(4, T0 + dt.timedelta(hours=1, minutes=1))

        summary = self.sync(case, emulator, sqlite_url)

        assert summary.ok, summary.error
        tasks = tasks_by_ticket(emulator)
        assert sorted(k for k, t in tasks.items() if t["archived"]) == ["2", "4"]
        filters = {r.param("filter") for r in case.fake.gets(PATH)}
        assert filters == {None, "deleted", "spam"}

    def test_only_the_groups_asked_for_become_tasks_and_a_move_out_archives(
        self, case: FreshdeskCase, emulator: Emulator, sqlite_url: str
    ) -> None:
        """List All Tickets can't filter by group: the connector keeps group 7001 itself."""
        case.extra = {"group_ids": [7001]}
        for n in range(1, 4):
            case.add(n, T0 + dt.timedelta(minutes=n))
        case.fake.add(4, T0 + dt.timedelta(minutes=4), group_id=7002)
        assert self.sync(case, emulator, sqlite_url).ok
        assert set(tasks_by_ticket(emulator)) == {"1", "2", "3"}

        case.fake.touch(2, T0 + dt.timedelta(hours=1), group_id=7002)
        moved = self.sync(case, emulator, sqlite_url)
        assert moved.ok, moved.error
        tasks = tasks_by_ticket(emulator)
        assert [k for k, t in tasks.items() if t["archived"]] == ["2"]
        assert set(tasks) == {"1", "2", "3"}

        case.fake.touch(2, T0 + dt.timedelta(hours=2), group_id=7001)
        assert self.sync(case, emulator, sqlite_url).ok
        assert tasks_by_ticket(emulator)["2"]["archived"] is False

    def test_a_restored_ticket_comes_back_from_the_archive(
        self, case: FreshdeskCase, emulator: Emulator, sqlite_url: str
    ) -> None:
        case.add(1, T0)
        case.fake.delete(1, T0 + dt.timedelta(minutes=1))
        case.add(2, T0 + dt.timedelta(minutes=2))
        assert self.sync(case, emulator, sqlite_url).ok
        case.fake.touch(1, T0 + dt.timedelta(hours=1), deleted=False)  # out of the trash

        assert self.sync(case, emulator, sqlite_url).ok

        assert tasks_by_ticket(emulator)["1"]["archived"] is False

    def test_the_default_mapping_links_to_the_agent_view_and_maps_statuses(
        self, case: FreshdeskCase, emulator: Emulator, sqlite_url: str
    ) -> None:
        statuses = {1: 2, 2: 3, 3: 4, 4: 5, 5: 6}  # 6: a custom status
        for n, status in statuses.items():
            case.add(n, T0 + dt.timedelta(minutes=n))
            case.fake.tickets[n]["status"] = status

        assert self.sync(case, emulator, sqlite_url).ok

        tasks = tasks_by_ticket(emulator)
        assert {n: tasks[str(n)]["status"] for n in statuses} == {
            1: "TODO",
            2: "STARTED",
            3: "DONE",
            4: "DONE",
            5: "TODO",
        }
        first = tasks["1"]
        assert first["fields"]["url"] == "https://acme.freshdesk.com/a/tickets/1"
        assert first["due_at"].startswith("2026-11-05T09:01:00")
        assert first["fields"]["fr_due_by"] == "2026-11-03T09:01:00Z"
        assert first["fields"]["priority"] == 1


def test_updated_since_is_always_sent_so_old_tickets_are_not_lost(case: FreshdeskCase) -> None:
    case.add(1, T0 - dt.timedelta(days=400))  # outside Freshdesk's 30-day default window
    case.add(2, T0)
    source = connector(case, include_deleted=False, include_spam=False)

    tickets = list(source.pull(None))
    source.close()

    assert [t.source_id for t in tickets] == ["1", "2"]
    [request] = case.fake.gets(PATH)
    assert request.param("updated_since") == "1970-01-01T00:00:00Z"
    assert request.param("order_by") == "updated_at"
    assert request.param("order_type") == "asc"
    assert request.param("per_page") == "5"
    credentials = base64.b64encode(f"{API_KEY}:X".encode()).decode()
    assert request.headers["authorization"] == f"Basic {credentials}"


def test_a_start_date_with_an_offset_starts_at_that_instant(
    case: FreshdeskCase, emulator: Emulator, sqlite_url: str
) -> None:
    case.extra = {"start_date": "2026-11-02T09:00:00+05:00"}  # 04:00 UTC
    case.fake.add(1, dt.datetime(2026, 11, 2, 3, 59, 59, tzinfo=dt.UTC))  # before it
    for n, hour in ((2, 4), (3, 6), (4, 10)):  # at it, inside the five hours, after them
        case.add(n, dt.datetime(2026, 11, 2, hour, tzinfo=dt.UTC))

    summary = TestFreshdesk().sync(case, emulator, sqlite_url)

    assert summary.ok, summary.error
    assert sorted(tasks_by_ticket(emulator)) == ["2", "3", "4"]
    assert case.fake.gets(PATH)[0].param("updated_since") == "2026-11-02T04:00:00Z"


def test_updated_since_is_the_bound_floored_to_seconds(case: FreshdeskCase) -> None:
    case.add(1, T0)
    case.add(2, T0 + dt.timedelta(seconds=1))
    source = connector(case, include_deleted=False, include_spam=False)

    tickets = list(source.pull(T0 + dt.timedelta(milliseconds=400)))
    source.close()

    assert [t.source_id for t in tickets] == ["2"]  # the bound is ours to keep, not the server's
    [request] = case.fake.gets(PATH)
    assert request.param("updated_since") == "2026-11-02T09:00:00Z"


def test_the_three_lists_come_out_merged_in_updated_at_order(case: FreshdeskCase) -> None:
    for n in range(1, 9):
        case.add(n, T0 + dt.timedelta(minutes=n))
    for n in (2, 5):
        case.fake.delete(n, T0 + dt.timedelta(hours=n))
    case.fake.mark_spam(3, T0 + dt.timedelta(hours=4))
    source = connector(case)

    tickets = [t for t in source.pull(T0) if isinstance(t, SourceTicket)]
    source.close()

    assert [(t.source_id, t.deleted) for t in tickets] == [
        ("1", False),
        ("4", False),
        ("6", False),
        ("7", False),
        ("8", False),
        ("2", True),
        ("3", True),
        ("5", True),
    ]
    assert [t.cursor for t in tickets] == sorted(t.cursor for t in tickets)


def test_the_account_budget_is_waited_out_from_retry_after(case: FreshdeskCase) -> None:
    case.fake.requests_per_window, case.fake.window = 4, 1.0
    for n in range(1, 21):
        case.add(n, T0 + dt.timedelta(minutes=n))
    source = connector(case, rate_limit_floor="5s")

    tickets = list(source.pull(None))
    stats = source.session.stats
    source.close()

    assert [t.source_id for t in tickets if not t.deleted] == [str(n) for n in range(1, 21)]
    assert stats.rate_limited >= 1
    assert stats.waited_s < 5  # Retry-After was honoured, not the no-hint floor


def test_the_fake_refuses_a_page_past_its_cap_as_freshdesk_does(case: FreshdeskCase) -> None:
    answer = httpx.get(
        f"{case.fake.base_url}{PATH}",
        params={"page": 301, "updated_since": "2026-01-01T00:00:00Z"},
        auth=(API_KEY, "X"),
    )
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["message"] == (
        "You cannot access tickets beyond the 300th page"
    )
    assert answer.headers["X-Ratelimit-Remaining"].isdigit()


def test_defaults_follow_freshdesk_limits() -> None:
    options = FreshdeskOptions(domain="acme", api_key=API_KEY)
    assert options.base_url == "https://acme.freshdesk.com"
    assert (options.max_pages, options.page_size) == (300, 100)
    assert (options.include_deleted, options.include_spam) == (True, True)
    assert options.requests_per_minute == 20
    with pytest.raises(ValueError, match="domain"):
        FreshdeskOptions.model_validate({"api_key": API_KEY})
    with pytest.raises(ValueError, match="max_pages"):
        FreshdeskOptions(domain="acme", api_key=API_KEY, max_pages=301)


def test_the_source_status_field_names_freshdesk_status_codes_beside_the_mapped_status(
    case: FreshdeskCase, emulator: Emulator, sqlite_url: str
) -> None:
    """Freshdesk sends a code: the built-in ones get their names, a custom status (its
    name lives in the ticket fields, not the ticket) keeps its code as text."""
    case.fake.add(1, T0, status=3)
    case.fake.add(2, T0 + dt.timedelta(minutes=1), status=5)
    case.fake.add(3, T0 + dt.timedelta(minutes=2), status=7)
    assert ConnectorSuite().sync(case, emulator, sqlite_url).ok
    tasks = tasks_by_ticket(emulator)
    shown = {
        k: (t["fields"]["source_status"], t["status"], t["external_status"])
        for k, t in tasks.items()
    }
    assert shown == {
        "1": ("Pending", "STARTED", "STARTED"),
        "2": ("Closed", "DONE", "DONE"),
        "3": ("7", "TODO", "TODO"),  # not in status_map: status_default
    }


# People: responder ids (agents) to emails


def test_agents_are_read_from_the_agents_list_100_a_page_until_every_id_is_found(
    case: FreshdeskCase,
) -> None:
    for n in range(1, 251):
        case.fake.add_agent(6000 + n, f"Agent {n}", f"agent{n}@acme.example")
    source = connector(case)

    first_page = {p.user_id: p for p in source.people(["6001", "6002", "6001"] * 50)}
    pages_for_two = len(case.fake.gets(AGENTS))
    case.fake.requests.clear()
    spread = {p.user_id: p.email for p in source.people(["6003", "6250", "6120"])}
    source.close()

    assert first_page == {
        "6001": Person("6001", "agent1@acme.example", "Agent 1"),
        "6002": Person("6002", "agent2@acme.example", "Agent 2"),
    }
    assert pages_for_two == 1  # 150 tickets' responders, one request
    assert spread == {
        "6003": "agent3@acme.example",
        "6250": "agent250@acme.example",
        "6120": "agent120@acme.example",
    }
    assert [r.param("page") for r in case.fake.gets(AGENTS)] == [None, "2", "3"]
    assert all(r.param("per_page") == "100" for r in case.fake.gets(AGENTS))


def test_a_responder_who_is_no_longer_an_agent_resolves_without_email_saying_why(
    case: FreshdeskCase,
) -> None:
    case.fake.add_agent(6001, "Ana Ops", "ana@acme.example")
    case.fake.add_agent(6002, "Ben Gone", "ben@acme.example")
    case.fake.remove_agent(6002)
    source = connector(case)

    people = {p.user_id: p for p in source.people(["6001", "6002", "7001", "ops-team"])}
    source.close()

    reason = "no such agent (deleted agents become contacts)"
    assert people == {
        "6001": Person("6001", "ana@acme.example", "Ana Ops"),
        "6002": Person("6002", None, reason=reason),
        "7001": Person("7001", None, reason=reason),  # a group's id is no agent's
        "ops-team": Person("ops-team", None, reason="not a Freshdesk agent id (a number)"),
    }


def test_the_default_mapping_names_the_responder_whom_people_resolve(
    case: FreshdeskCase,
) -> None:
    case.fake.add_agent(6001, "Ana Ops", "ana@acme.example")
    case.fake.add(1, T0, responder_id=6001)
    case.fake.add(2, T0 + dt.timedelta(minutes=1), responder_id=None)
    source = connector(case, include_deleted=False, include_spam=False)

    tickets = [t for t in source.pull(None) if isinstance(t, SourceTicket)]
    ids = [get_path(t.record, source.default_mapping["assignee"]) for t in tickets]
    people = list(source.people([str(i) for i in ids if i is not None]))
    source.close()

    assert ids == [6001, None]
    assert people == [Person("6001", "ana@acme.example", "Ana Ops")]


def test_the_account_rate_limit_while_reading_agents_is_waited_out() -> None:
    with FakeFreshdesk(API_KEY, requests_per_window=1, window=1.0) as fake:
        for n in range(1, 151):
            fake.add_agent(6000 + n, f"Agent {n}", f"agent{n}@acme.example")
        case = FreshdeskCase(fake)
        source = connector(case)

        people = {p.user_id: p.email for p in source.people(["6001", "6150"])}
        source.close()

    assert people == {"6001": "agent1@acme.example", "6150": "agent150@acme.example"}
    pages = [r.param("page") for r in fake.gets(AGENTS)]
    assert pages.count("2") >= 2  # page 2 was refused with a 429, then asked again


def test_people_from_an_unreachable_freshdesk_raise_a_source_error() -> None:
    options = {
        "base_url": f"http://127.0.0.1:{free_port()}",
        "api_key": API_KEY,
        "max_attempts": 1,
    }
    source = FreshdeskConnector("freshdesk", FreshdeskOptions.model_validate(options))
    with pytest.raises(SourceError, match="connector 'freshdesk'"):
        list(source.people(["6001"]))
    source.close()
