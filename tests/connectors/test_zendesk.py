"""The Zendesk connector against a fake of the Incremental Ticket Export, plus its own pitfalls."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from typing import Any

import pytest

from connectors.base import Person, SourceTicket
from connectors.errors import SourceError
from connectors.records import get_path
from connectors.zendesk import ZendeskConnector, ZendeskOptions
from fakes import Reply, Request
from fakes.suite import T0, ConnectorSuite, VendorCase
from fakes.zendesk import EDGE_RATE_LIMITED, PATH, RATE_LIMITED_BODY, SHOW_MANY, FakeZendesk
from fragment_emulator import Emulator
from synckit import free_port, pushed_items, tasks_by_ticket

EMAIL = "ops-admin@acme.example"
API_TOKEN = "zendesk-token-9d2e41"


class ZendeskCase(VendorCase):
    kind = "zendesk"
    shows_deletions = True
    fake: FakeZendesk

    def __init__(self, fake: FakeZendesk) -> None:
        super().__init__(fake)
        self.extra: dict[str, Any] = {}

    def options(self) -> dict[str, Any]:
        return {
            "subdomain": "acme",
            "base_url": self.fake.base_url,
            "email": EMAIL,
            "api_token": API_TOKEN,
            "page_size": self.page_size,
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
        ticket["generated_timestamp"] = "soon"
        return "generated_timestamp"

    def rate_limit(self, wait: int) -> Reply:
        return Reply(429, RATE_LIMITED_BODY, headers={"Retry-After": str(wait)})

    def title(self, number: int, version: int) -> str:
        return f"#{number} Printer {number} jammed v{version}"

    def is_page_request(self, request: Request) -> bool:
        return request.path == PATH


@pytest.fixture
def case() -> Iterator[ZendeskCase]:
    with FakeZendesk(EMAIL, API_TOKEN) as fake:
        yield ZendeskCase(fake)


def connector(case: ZendeskCase, **options: Any) -> ZendeskConnector:
    settings = {**case.options(), "requests_per_minute": 100_000, **options}
    return ZendeskConnector("zendesk", ZendeskOptions.model_validate(settings))


class TestZendesk(ConnectorSuite):
    def test_only_the_groups_and_brands_asked_for_become_tasks_and_a_move_out_archives(
        self, case: ZendeskCase, emulator: Emulator, sqlite_url: str
    ) -> None:
        """The export can't filter: the connector keeps group 701 of brand 360001 itself."""
        case.extra = {"group_ids": [701], "brand_ids": [360001]}
        for n in range(1, 5):
            case.add(n, T0 + dt.timedelta(minutes=n))
        case.fake.add(5, T0 + dt.timedelta(minutes=5), group_id=702)
        case.fake.add(6, T0 + dt.timedelta(minutes=6), group_id=None)
        case.fake.add(7, T0 + dt.timedelta(minutes=7), brand_id=360002)
        first = self.sync(case, emulator, sqlite_url)
        assert first.ok, first.error
        assert set(tasks_by_ticket(emulator)) == {"1", "2", "3", "4"}
        assert pushed_items(emulator) == 4  # nothing sent for the others

        case.fake.touch(2, T0 + dt.timedelta(hours=1), group_id=702)  # to another group
        case.fake.touch(3, T0 + dt.timedelta(hours=1), brand_id=360002)  # to another brand
        moved = self.sync(case, emulator, sqlite_url)
        assert moved.ok, moved.error
        tasks = tasks_by_ticket(emulator)
        assert sorted(k for k, t in tasks.items() if t["archived"]) == ["2", "3"]

        case.fake.touch(2, T0 + dt.timedelta(hours=2), group_id=701)  # back again
        back = self.sync(case, emulator, sqlite_url)
        assert back.ok, back.error
        assert tasks_by_ticket(emulator)["2"]["archived"] is False
        assert set(tasks_by_ticket(emulator)) == {"1", "2", "3", "4"}

    def test_a_ticket_changed_by_the_system_is_synced_though_its_updated_at_is_older(
        self, case: ZendeskCase, emulator: Emulator, sqlite_url: str
    ) -> None:
        for n in range(1, 6):
            case.add(n, T0 + dt.timedelta(minutes=n))
        assert self.sync(case, emulator, sqlite_url).ok
        # An automation closes ticket 2 an hour later: generated_timestamp moves, updated_at not.
        case.fake.stamp([2], T0 + dt.timedelta(hours=1), status="closed")

        summary = self.sync(case, emulator, sqlite_url)

        assert (summary.ok, summary.pushed) == (True, 1)
        task = tasks_by_ticket(emulator)["2"]
        assert task["status"] == "DONE"
        assert case.fake.tickets[2]["updated_at"] == "2026-11-02T09:02:00Z"  # before start_time
        _, second_pass = _first_requests(case)
        assert int(second_pass.param("start_time") or 0) == int(
            (T0 + dt.timedelta(minutes=5)).timestamp()
        )

    def test_a_bulk_update_stamping_pages_of_tickets_with_one_second_lands_each_once(
        self, case: ZendeskCase, emulator: Emulator, sqlite_url: str
    ) -> None:
        for n in range(1, 24):
            case.add(n, T0 + dt.timedelta(minutes=n))
        assert self.sync(case, emulator, sqlite_url).ok
        case.fake.stamp(range(1, 24), T0 + dt.timedelta(hours=1), priority="urgent")

        summary = self.sync(case, emulator, sqlite_url)

        assert summary.ok, summary.error
        assert summary.pushed == 23
        assert pushed_items(emulator) == 46
        assert {t["fields"]["priority"] for t in tasks_by_ticket(emulator).values()} == {"urgent"}

    def test_a_deleted_ticket_archives_its_task_and_keeps_its_content(
        self, case: ZendeskCase, emulator: Emulator, sqlite_url: str
    ) -> None:
        for n in range(1, 4):
            case.add(n, T0 + dt.timedelta(minutes=n))
        assert self.sync(case, emulator, sqlite_url).ok
        case.delete(2, T0 + dt.timedelta(hours=1))

        summary = self.sync(case, emulator, sqlite_url)

        assert summary.ok, summary.error
        tasks = tasks_by_ticket(emulator)
        assert [k for k, t in tasks.items() if t["archived"]] == ["2"]
        assert tasks["2"]["fields"]["title"] == "#2 Printer 2 jammed v1"

    def test_an_edge_protection_429_with_an_html_body_is_waited_out(
        self, case: ZendeskCase, emulator: Emulator, sqlite_url: str
    ) -> None:
        for n in range(1, 12):
            case.add(n, T0 + dt.timedelta(minutes=n))
        case.fake.fail_next(EDGE_RATE_LIMITED, times=2)

        summary = self.sync(case, emulator, sqlite_url)

        assert summary.ok, summary.error
        self.assert_exact(case, emulator)
        assert len(case.fake.gets(PATH)) == 5  # three pages, the first asked three times

    def test_the_default_mapping_links_to_the_agent_view_and_maps_statuses(
        self, case: ZendeskCase, emulator: Emulator, sqlite_url: str
    ) -> None:
        statuses = {1: "new", 2: "open", 3: "pending", 4: "hold", 5: "solved", 6: "closed"}
        for n, status in statuses.items():
            case.add(n, T0 + dt.timedelta(minutes=n))
            case.fake.tickets[n].update(status=status, via={"channel": "email"}, due_at=None)
        case.fake.tickets[1]["due_at"] = "2026-11-09T17:00:00Z"

        assert self.sync(case, emulator, sqlite_url).ok

        tasks = tasks_by_ticket(emulator)
        assert {n: tasks[str(n)]["status"] for n in statuses} == {
            1: "TODO",
            2: "TODO",
            3: "STARTED",
            4: "STARTED",
            5: "DONE",
            6: "DONE",
        }
        first = tasks["1"]
        assert first["fields"]["url"] == "https://acme.zendesk.com/agent/tickets/1"
        assert first["due_at"].startswith("2026-11-09T17:00:00")
        assert first["fields"]["channel"] == "email"
        assert first["fields"]["tags"] == ["printer"]
        assert "assignee_email" not in first or first["assignee_email"] is None


def _first_requests(case: ZendeskCase) -> list[Request]:
    """The first request of each pass: the ones carrying start_time."""
    return [r for r in case.fake.gets(PATH) if r.param("start_time") is not None]


def test_the_export_starts_at_start_time_floored_to_seconds_and_follows_after_url(
    case: ZendeskCase,
) -> None:
    for n in range(1, 8):
        case.add(n, T0 + dt.timedelta(seconds=n))
    source = connector(case)

    tickets = list(source.pull(T0 + dt.timedelta(seconds=1, milliseconds=700)))
    source.close()

    assert [t.source_id for t in tickets] == ["2", "3", "4", "5", "6", "7"]
    first, second = case.fake.gets(PATH)
    assert first.param("start_time") == str(int(T0.timestamp()) + 1)  # 09:00:01.7 → :01
    assert first.param("per_page") == "5"
    assert first.param("cursor") is None
    assert second.param("start_time") is None  # later pages only follow after_url
    assert second.param("cursor") is not None
    assert first.headers["authorization"].startswith("Basic ")


def test_the_cursor_is_the_generated_timestamp_and_deletions_are_tombstones(
    case: ZendeskCase,
) -> None:
    case.add(1, T0)
    case.fake.stamp([1], T0 + dt.timedelta(hours=2))
    case.add(2, T0 + dt.timedelta(minutes=1))
    case.fake.delete(2, T0 + dt.timedelta(hours=3))
    source = connector(case)

    tickets = list(source.pull(None))
    source.close()

    assert all(isinstance(t, SourceTicket) for t in tickets)
    assert [(t.source_id, t.cursor, t.deleted) for t in tickets if isinstance(t, SourceTicket)] == [
        ("1", T0 + dt.timedelta(hours=2), False),
        ("2", T0 + dt.timedelta(hours=3), True),
    ]
    assert case.fake.gets(PATH)[0].param("start_time") == "0"


def test_a_start_time_younger_than_zendesk_allows_is_moved_back_not_refused(
    case: ZendeskCase,
) -> None:
    recent = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=90)
    case.add(1, recent - dt.timedelta(minutes=2))  # after the moved-back start_time
    case.add(2, recent + dt.timedelta(seconds=1))
    source = connector(case)

    tickets = list(source.pull(recent))
    source.close()

    assert [t.source_id for t in tickets] == ["2"]  # the older one is dropped, not re-sent
    [request] = case.fake.gets(PATH)
    assert int(request.param("start_time") or 0) <= time.time() - 300


def test_the_incremental_export_budget_of_ten_requests_a_minute_is_the_default() -> None:
    options = ZendeskOptions(subdomain="acme", email=EMAIL, api_token=API_TOKEN)
    assert options.requests_per_minute == 10
    assert options.base_url == "https://acme.zendesk.com"
    assert options.page_size == 1000
    budget = ZendeskConnector("zendesk", options).session.budget
    assert budget.limit == 1 and budget.window >= 6.0  # one request every six seconds


def test_a_subdomain_or_a_base_url_is_required() -> None:
    with pytest.raises(ValueError, match="subdomain"):
        ZendeskOptions.model_validate({"email": EMAIL, "api_token": API_TOKEN})
    full_host = ZendeskOptions(subdomain="acme.zendesk.com", email=EMAIL, api_token=API_TOKEN)
    assert full_host.base_url == "https://acme.zendesk.com"
    with pytest.raises(ValueError, match=r"acme for https://acme\.zendesk\.com"):
        ZendeskOptions(subdomain="acme support", email=EMAIL, api_token=API_TOKEN)


def test_the_source_status_field_keeps_zendesk_words_beside_the_mapped_status(
    case: ZendeskCase, emulator: Emulator, sqlite_url: str
) -> None:
    case.fake.add(1, T0, status="pending")
    case.fake.add(2, T0 + dt.timedelta(minutes=1), status="solved")
    assert ConnectorSuite().sync(case, emulator, sqlite_url).ok
    tasks = tasks_by_ticket(emulator)
    shown = {
        k: (t["fields"]["source_status"], t["status"], t["external_status"])
        for k, t in tasks.items()
    }
    assert shown == {"1": ("pending", "STARTED", "STARTED"), "2": ("solved", "DONE", "DONE")}


# People: assignee ids to emails


def test_people_cost_one_show_many_request_per_100_ids_not_one_per_ticket(
    case: ZendeskCase,
) -> None:
    for n in range(1, 151):
        case.fake.add_user(1000 + n, f"Agent {n}", f"agent{n}@acme.example")
    source = connector(case)
    asked = [str(1000 + n) for n in range(1, 151)] * 3  # every agent on three tickets

    people = {p.user_id: p for p in source.people(asked)}
    source.close()

    assert len(people) == 150
    assert people["1001"] == Person("1001", "agent1@acme.example", "Agent 1")
    assert people["1150"].email == "agent150@acme.example"
    requests = case.fake.gets(SHOW_MANY)
    assert [len((r.param("ids") or "").split(",")) for r in requests] == [100, 50]


def test_users_the_export_sideloaded_resolve_without_a_request(case: ZendeskCase) -> None:
    case.fake.add_user(601, "Ana Ops", "ana@acme.example")
    case.fake.add_user(602, "Ben Desk", "ben@acme.example")
    case.fake.add(1, T0, assignee_id=601)
    case.fake.add(2, T0 + dt.timedelta(minutes=1), assignee_id=602)
    case.fake.add_user(603, "Cy Late", "cy@acme.example")  # on no ticket: not sideloaded
    source = connector(case)

    tickets = [t for t in source.pull(None) if isinstance(t, SourceTicket)]
    ids = [str(get_path(t.record, source.default_mapping["assignee"])) for t in tickets]
    people = {p.user_id: p.email for p in source.people([*ids, "603"])}
    source.close()

    assert ids == ["601", "602"]
    assert people == {
        "601": "ana@acme.example",
        "602": "ben@acme.example",
        "603": "cy@acme.example",
    }
    assert all(r.param("include") == "users" for r in case.fake.gets(PATH))
    [asked] = case.fake.gets(SHOW_MANY)  # only the one the export didn't sideload
    assert asked.param("ids") == "603"


def test_deleted_unknown_and_email_less_users_resolve_without_email_saying_why(
    case: ZendeskCase,
) -> None:
    case.fake.add_user(701, "Gone Agent", "gone@acme.example", active=False)
    case.fake.add_user(702, "Phone Only", None, role="end-user")
    case.fake.add_user(703, "Paused Agent", "paused@acme.example", suspended=True)
    source = connector(case)

    people = {p.user_id: p for p in source.people(["701", "702", "703", "799", "ana"])}
    source.close()

    assert people == {
        "701": Person("701", None, "Gone Agent", reason="deleted in Zendesk"),
        "702": Person("702", None, "Phone Only", reason="the Zendesk user has no email"),
        "703": Person("703", "paused@acme.example", "Paused Agent"),
        "799": Person("799", None, reason="no such user"),
        "ana": Person("ana", None, reason="not a Zendesk user id (a number)"),
    }
    [asked] = case.fake.gets(SHOW_MANY)
    assert asked.param("ids") == "701,702,703,799"


def test_a_rate_limited_show_many_is_waited_out_and_asked_again(case: ZendeskCase) -> None:
    case.fake.add_user(601, "Ana Ops", "ana@acme.example")
    case.fake.fail_next(case.rate_limit(1), when=lambda r: r.path == SHOW_MANY)
    source = connector(case)

    people = list(source.people(["601"]))
    source.close()

    assert people == [Person("601", "ana@acme.example", "Ana Ops")]
    assert len(case.fake.gets(SHOW_MANY)) == 2


def test_people_from_an_unreachable_zendesk_raise_a_source_error() -> None:
    options = {
        "base_url": f"http://127.0.0.1:{free_port()}",
        "email": EMAIL,
        "api_token": API_TOKEN,
        "max_attempts": 1,
    }
    source = ZendeskConnector("zendesk", ZendeskOptions.model_validate(options))
    with pytest.raises(SourceError, match="connector 'zendesk'"):
        list(source.people(["601"]))
    source.close()
