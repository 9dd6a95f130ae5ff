"""The HubSpot connector against a fake of its CRM search, recycle bin, pipelines and owners,
plus HubSpot's own pitfalls: the 10,000-result cap, runs of one timestamp, the index's lag."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from connectors.base import BadRecord, Person, SourceTicket
from connectors.hubspot import (
    HubSpotConnector,
    HubSpotOptions,
    Window,
    next_window,
    read_stages,
)
from fakes import Reply, Request
from fakes.hubspot import (
    NOTE_LINKS,
    NOTES,
    PIPELINE,
    SEARCH,
    FakeHubSpot,
    iso,
    rate_limited,
)
from fakes.hubspot import TOKEN as TOKEN_PATH
from fakes.suite import T0, ConnectorSuite, VendorCase
from fragment_emulator import Emulator
from sync.config import build_config
from sync.run import RunOptions, run_once
from sync.state import StateStore
from synckit import TOKEN, pushed_items, tasks_by_ticket

ACCESS_TOKEN = "pat-na1-7c1f0e2a"
MS = dt.timedelta(milliseconds=1)


class HubSpotCase(VendorCase):
    kind = "hubspot"
    shows_deletions = True
    fake: FakeHubSpot

    def __init__(self, fake: FakeHubSpot) -> None:
        super().__init__(fake)
        self.extra: dict[str, Any] = {}

    def options(self) -> dict[str, Any]:
        return {
            "base_url": self.fake.base_url,
            "access_token": ACCESS_TOKEN,
            "page_size": self.page_size,
            "portal_id": 4711,
            **self.extra,
        }

    def put(self, number: int, updated: dt.datetime, version: int) -> None:
        subject = f"Printer {number} jammed v{version}"
        if number in self.fake.tickets:
            self.fake.touch(number, updated, subject=subject)
        else:
            self.fake.add(number, updated, subject=subject)

    def remove(self, number: int, at: dt.datetime) -> None:
        self.fake.archive(number, at)

    def put_malformed(self, number: int, updated: dt.datetime) -> str:
        ticket = self.fake.add(number, updated)
        self.fake.index[number][0]["properties"]["hs_lastmodifieddate"] = "yesterday-ish"
        assert ticket["id"] == str(number)
        return "properties.hs_lastmodifieddate"

    def rate_limit(self, wait: int) -> Reply:
        return rate_limited(5, interval_ms=wait * 1000)

    def title(self, number: int, version: int) -> str:
        return f"#{number} Printer {number} jammed v{version}"

    def is_page_request(self, request: Request) -> bool:
        return request.path == SEARCH


@pytest.fixture
def case() -> Iterator[HubSpotCase]:
    with FakeHubSpot(ACCESS_TOKEN, search_per_second=10_000) as fake:
        yield HubSpotCase(fake)


def connector(case: HubSpotCase, **options: Any) -> HubSpotConnector:
    settings = {**case.options(), "requests_per_minute": 100_000, **options}
    return HubSpotConnector("hubspot", HubSpotOptions.model_validate(settings))


def filters_of(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(f["propertyName"], f["operator"]) for g in body["filterGroups"] for f in g["filters"]]


class TestHubSpot(ConnectorSuite):
    def test_a_run_of_one_timestamp_longer_than_a_page_is_drained_by_id(
        self, case: HubSpotCase, emulator: Emulator, sqlite_url: str
    ) -> None:
        """A bulk update stamps 23 tickets with one millisecond; search lists ties in a new
        order each time, so only a query by id can page through them."""
        bulk = T0 + dt.timedelta(minutes=5)
        for n in range(1, 24):
            case.add(n, bulk)
        for n in range(30, 33):
            case.add(n, bulk + dt.timedelta(seconds=n))

        summary = self.sync(case, emulator, sqlite_url)

        assert summary.ok, summary.error
        self.assert_exact(case, emulator)
        assert pushed_items(emulator) == 26  # each once
        searches = case.fake.searches()
        by_id = [s for s in searches if s["sorts"][0]["propertyName"] == "hs_object_id"]
        assert by_id and all(
            filters_of(s)
            == [
                ("hs_lastmodifieddate", "GTE"),
                ("hs_lastmodifieddate", "LTE"),
                ("hs_object_id", "GT"),
            ]
            for s in by_id
        )
        assert {s["filterGroups"][0]["filters"][0]["value"] for s in by_id} == {
            str(int(bulk.timestamp() * 1000))
        }
        assert ("hs_lastmodifieddate", "GT") in [f for s in searches for f in filters_of(s)]
        assert not any("after" in s for s in searches)

    def test_tickets_edited_while_their_tied_run_is_drained_are_read_at_their_new_time(
        self, case: HubSpotCase, emulator: Emulator, sqlite_url: str
    ) -> None:
        bulk = T0 + dt.timedelta(minutes=5)
        for n in range(1, 13):
            case.add(n, bulk)
        later = bulk + dt.timedelta(minutes=1)

        def by_id(request: Request) -> bool:
            if request.path != SEARCH:
                return False
            return bool(json.loads(request.body)["sorts"][0]["propertyName"] == "hs_object_id")

        def edit_during_the_drain() -> None:
            case.update(case.page_size - 1, later)  # read already, on the first page
            case.update(11, later)  # not read yet: it leaves the run

        case.fake.when(by_id, edit_during_the_drain)
        first = self.sync(case, emulator, sqlite_url)

        assert first.ok, first.error
        assert case.versions[11] == 2  # the edits were made, mid-drain
        self.assert_exact(case, emulator)  # every ticket at its latest, 11 included
        assert pushed_items(emulator) <= 14  # 12, plus at most the two edits

    def test_more_tickets_than_one_query_may_list_are_read_by_sliding_the_window(
        self, case: HubSpotCase, emulator: Emulator, sqlite_url: str
    ) -> None:
        case.fake.result_cap = 12  # HubSpot's 10,000, made small: 40 tickets exceed it
        for n in range(1, 41):
            case.add(n, T0 + dt.timedelta(seconds=n))

        summary = self.sync(case, emulator, sqlite_url)

        assert summary.ok, summary.error
        self.assert_exact(case, emulator)
        assert pushed_items(emulator) == 40
        assert not any("after" in s for s in case.fake.searches())  # never an offset

    def test_statuses_come_from_the_pipeline_stages_and_keep_the_stage_label(
        self, case: HubSpotCase, emulator: Emulator, sqlite_url: str
    ) -> None:
        for n, stage in enumerate(("1", "2", "3", "4"), start=1):
            case.add(n, T0 + dt.timedelta(minutes=n))
            case.fake.touch(n, T0 + dt.timedelta(minutes=n), hs_pipeline_stage=stage)
        # A stage added after the pipelines were read: read again once, not guessed.
        case.fake.pipelines[0]["stages"].append(
            {
                "id": "9",
                "label": "Escalated",
                "displayOrder": 9,
                "metadata": {"ticketState": "OPEN"},
            }
        )
        case.add(5, T0 + dt.timedelta(minutes=5))
        case.fake.touch(5, T0 + dt.timedelta(minutes=5), hs_pipeline_stage="9")

        assert self.sync(case, emulator, sqlite_url).ok

        tasks = tasks_by_ticket(emulator)
        assert {n: tasks[str(n)]["status"] for n in range(1, 6)} == {
            1: "TODO",
            2: "STARTED",
            3: "STARTED",
            4: "DONE",
            5: "STARTED",
        }
        labels = {n: tasks[str(n)]["fields"]["source_status"] for n in range(1, 6)}
        assert labels == {
            1: "New",
            2: "Waiting on contact",
            3: "Waiting on us",
            4: "Closed",
            5: "Escalated",
        }
        first = tasks["1"]["fields"]
        assert first["url"] == "https://app.hubspot.com/contacts/4711/record/0-5/1"
        assert first["pipeline"] == "Support Pipeline"
        assert first["priority"] == "HIGH"

    def test_only_the_pipelines_asked_for_become_tasks_and_a_move_out_archives(
        self, case: HubSpotCase, emulator: Emulator, sqlite_url: str
    ) -> None:
        case.extra["pipelines"] = ["0"]
        for n in range(1, 5):
            case.add(n, T0 + dt.timedelta(minutes=n))
        case.fake.touch(2, T0 + dt.timedelta(minutes=2), hs_pipeline="7")
        assert self.sync(case, emulator, sqlite_url).ok
        assert set(tasks_by_ticket(emulator)) == {"1", "3", "4"}  # 2 never sent

        case.fake.touch(1, T0 + dt.timedelta(hours=1), hs_pipeline="7")
        summary = self.sync(case, emulator, sqlite_url)

        assert summary.ok, summary.error
        tasks = tasks_by_ticket(emulator)
        assert {k: t["archived"] for k, t in tasks.items()} == {"1": True, "3": False, "4": False}
        census = self.census(case, emulator, sqlite_url)
        assert (census.ok, census.at_source, census.gone) == (True, 2, 0)
        case.fake.touch(1, T0 + dt.timedelta(hours=2), hs_pipeline="0")  # moved back
        assert self.sync(case, emulator, sqlite_url).ok
        assert tasks_by_ticket(emulator)["1"]["archived"] is False

    def test_an_archived_ticket_restored_comes_back(
        self, case: HubSpotCase, emulator: Emulator, sqlite_url: str
    ) -> None:
        for n in range(1, 4):
            case.add(n, T0 + dt.timedelta(minutes=n))
        assert self.sync(case, emulator, sqlite_url).ok
        case.fake.archive(2, T0 + dt.timedelta(hours=1))
        assert self.sync(case, emulator, sqlite_url).ok
        assert tasks_by_ticket(emulator)["2"]["archived"] is True
        ticket = case.fake.archived.pop(2)  # restored: back in search, modified at restore
        case.fake.add(2, T0 + dt.timedelta(hours=2), subject=ticket["properties"]["subject"])

        summary = self.sync(case, emulator, sqlite_url)

        assert summary.ok, summary.error
        assert tasks_by_ticket(emulator)["2"]["archived"] is False

    @pytest.mark.parametrize(("lookback", "found"), [(None, True), ("0s", False)])
    def test_a_change_the_search_index_shows_late_is_read_within_the_lookback(
        self,
        case: HubSpotCase,
        emulator: Emulator,
        sqlite_url: str,
        lookback: str | None,
        found: bool,
    ) -> None:
        """Ticket 2 changes first but reaches the search index 30 s late; ticket 3, changed
        after it, shows at once. The pass in between reads 3 and moves the watermark past 2:
        only the lookback (a minute by default) brings 2 back."""
        # HubSpot's clock an hour behind this machine's: the watermark then stops at the pass's
        # start on HubSpot's clock, just past ticket 3, not at this machine's.
        now = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=1)
        case.fake.clock.stop_at(now)
        if lookback is not None:
            case.extra["lookback"] = lookback
        case.add(1, now - dt.timedelta(minutes=10))
        assert self.sync(case, emulator, sqlite_url).ok
        case.fake.index_lag = dt.timedelta(seconds=30)
        case.add(2, now)
        case.fake.clock.advance(dt.timedelta(seconds=5))
        case.fake.index_lag = dt.timedelta(0)
        case.add(3, case.fake.clock.now())
        case.fake.clock.advance(dt.timedelta(seconds=1))
        assert self.sync(case, emulator, sqlite_url).ok
        assert set(tasks_by_ticket(emulator)) == {"1", "3"}  # 2 is not in the index yet

        case.fake.clock.advance(dt.timedelta(seconds=40))
        summary = self.sync(case, emulator, sqlite_url)

        assert summary.ok, summary.error
        assert ("2" in tasks_by_ticket(emulator)) is found

    def test_oauth_tokens_come_from_the_refresh_token_grant(
        self, case: HubSpotCase, emulator: Emulator, sqlite_url: str
    ) -> None:
        case.fake.oauth = ("app-client", "app-secret", "refresh-abc")
        case.add(1, T0)
        options = case.options()
        del options["access_token"]
        case.extra = {
            "client_id": "app-client",
            "client_secret": "app-secret",
            "refresh_token": "refresh-abc",
        }
        case.options = lambda: {**options, **case.extra}  # type: ignore[method-assign]

        summary = self.sync(case, emulator, sqlite_url)

        assert summary.ok, summary.error
        [grant] = [r for r in case.fake.requests if r.path == TOKEN_PATH]
        assert (
            b"grant_type=refresh_token" in grant.body and b"client_secret=app-secret" in grant.body
        )
        searches = [r for r in case.fake.requests if r.path == SEARCH]
        assert {r.headers["authorization"] for r in searches} == {"Bearer hubspot-access-1"}


def test_the_fake_refuses_paging_past_the_result_cap_as_hubspot_does(case: HubSpotCase) -> None:
    case.add(1, T0)
    answer = httpx.post(
        f"{case.fake.base_url}{SEARCH}",
        json={"limit": 100, "after": "9950"},
        headers={"Authorization": f"Bearer {ACCESS_TOKEN}"},
    )
    assert answer.status_code == 400
    body = answer.json()
    assert (body["status"], body["category"]) == ("error", "VALIDATION_ERROR")
    assert body["correlationId"]


def test_the_default_pace_stays_under_search_five_a_second() -> None:
    """At the default 240 a minute, paced by the second, the connector never meets the
    fake's documented limit of 5 searches a second: no request is refused."""
    with FakeHubSpot(ACCESS_TOKEN, search_per_second=5) as fake:
        for n in range(1, 13):
            fake.add(n, T0 + dt.timedelta(seconds=n))
        options = {"base_url": fake.base_url, "access_token": ACCESS_TOKEN, "page_size": 1}
        source = HubSpotConnector("hubspot", HubSpotOptions.model_validate(options))
        tickets = [t for t in source.pull(None) if isinstance(t, SourceTicket)]
        stats = source.session.stats
        source.close()
    assert [t.source_id for t in tickets if not t.deleted] == [str(n) for n in range(1, 13)]
    assert stats.requests >= 13 and stats.rate_limited == 0


def test_a_rate_limit_is_waited_out_for_the_window_hubspot_names(case: HubSpotCase) -> None:
    case.add(1, T0)
    case.fake.fail_next(rate_limited(5, interval_ms=1000), times=2)
    source = connector(case, rate_limit_floor="10ms")
    tickets = [t for t in source.pull(None) if isinstance(t, SourceTicket)]
    stats = source.session.stats
    source.close()
    assert [t.source_id for t in tickets] == ["1"]
    assert stats.rate_limited == 2
    assert stats.waited_s >= 2.0  # a whole 1 s window each time, not the 10 ms floor


def test_owners_resolve_to_emails_from_the_owners_list_then_the_archived_ones(
    case: HubSpotCase,
) -> None:
    for n in range(1, 601):
        case.fake.add_owner(str(100 + n), f"agent{n}@acme.example", "Agent", str(n))
    case.fake.add_owner("9001", "left@acme.example", "Lee", "Left", archived=True)
    case.fake.add_owner("9002", None, "No", "Mail")
    source = connector(case)

    people = {p.user_id: p for p in source.people(["101", "650", "9001", "9002", "77", "x"])}
    source.close()

    assert people == {
        "101": Person("101", "agent1@acme.example", "Agent 1"),
        "650": Person("650", "agent550@acme.example", "Agent 550"),
        "9001": Person("9001", "left@acme.example", "Lee Left"),
        "9002": Person("9002", None, "No Mail", reason="the owner has no email"),
        "77": Person("77", None, reason="no such owner"),
        "x": Person("x", None, reason="not a HubSpot owner id (a number)"),
    }
    owner_pages = [r for r in case.fake.requests if r.path == "/crm/v3/owners"]
    assert [r.param("archived") for r in owner_pages] == ["false", "false", "true"]
    assert all(r.param("limit") == "500" for r in owner_pages)


def test_the_default_mapping_reads_the_owner_id_people_resolve(case: HubSpotCase) -> None:
    case.fake.add_owner("101", "ana@acme.example", "Ana", "Ops")
    case.fake.add(1, T0, hubspot_owner_id="101")
    source = connector(case, include_archived=False)
    [ticket] = [t for t in source.pull(None) if isinstance(t, SourceTicket)]
    assert ticket.record["properties"]["hubspot_owner_id"] == "101"
    assert list(source.people(["101"])) == [Person("101", "ana@acme.example", "Ana Ops")]
    source.close()
    assert json.loads(case.fake.requests[0].body)["properties"].count("hubspot_owner_id") == 1


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "set access_token"),
        (
            {"access_token": "t", "client_id": "c", "client_secret": "s", "refresh_token": "r"},
            "not both",
        ),
        ({"client_id": "c"}, "OAuth needs client_id, client_secret and refresh_token"),
        ({"access_token": "t", "page_size": 201}, "page_size"),
    ],
)
def test_credentials_and_limits_are_checked_at_load(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        HubSpotOptions.model_validate(options)


def ticket(number: int, at: dt.datetime) -> SourceTicket:
    return SourceTicket(str(number), at, {})


def test_next_window_moves_to_the_last_stamp_and_remembers_the_ids_read_there() -> None:
    page = [ticket(1, T0), ticket(2, T0 + MS), ticket(3, T0 + MS)]
    assert next_window(Window(T0), page, more=True) == Window(T0 + MS, seen=frozenset({"2", "3"}))
    assert next_window(Window(T0), page, more=False) is None


def test_next_window_drains_a_page_of_one_stamp_by_id_then_goes_past_it() -> None:
    tied = [ticket(7, T0), ticket(3, T0)]
    draining = next_window(Window(T0, seen=frozenset({"1"})), tied, more=True)
    assert draining == Window(T0, ties_after=0, seen=frozenset({"1", "3", "7"}))
    assert draining is not None
    by_id = [ticket(2, T0), ticket(4, T0), ticket(9, T0)]
    assert next_window(draining, by_id, more=True) == Window(T0, ties_after=9, seen=draining.seen)
    assert next_window(draining, by_id, more=False) == Window(T0, strict=True)


def test_a_window_admits_an_id_read_at_its_stamp_again_only_once_edited() -> None:
    window = Window(T0, seen=frozenset({"5"}))
    assert not window.admits(ticket(5, T0))
    assert window.admits(ticket(5, T0 + MS))  # edited mid-scan: a new version
    assert not window.admits(ticket(6, T0 - MS))
    assert not Window(T0, strict=True).admits(ticket(6, T0))


def test_stages_map_closed_to_done_the_first_open_to_todo_the_rest_to_started() -> None:
    stages = read_stages([PIPELINE])
    assert {k: (s.label, s.status) for k, s in stages.items()} == {
        "1": ("New", "TODO"),
        "2": ("Waiting on contact", "STARTED"),
        "3": ("Waiting on us", "STARTED"),
        "4": ("Closed", "DONE"),
    }


def test_search_times_are_hubspots_milliseconds(case: HubSpotCase) -> None:
    at = T0 + dt.timedelta(milliseconds=123)
    case.fake.add(1, at)
    source = connector(case, include_archived=False)
    [found] = [t for t in source.pull(at) if isinstance(t, SourceTicket)]
    source.close()
    assert (
        found.record["properties"]["hs_lastmodifieddate"] == iso(at) == "2026-11-02T09:00:00.123Z"
    )
    [body] = case.fake.searches()
    assert body["filterGroups"][0]["filters"][0]["value"] == str(int(at.timestamp() * 1000))


def search(window: Window, tickets: list[SourceTicket], limit: int, order: Any) -> Any:
    """One search as HubSpot answers `window`'s query: its page, and whether more follow.
    Ties on `hs_lastmodifieddate` come in whatever order `order` draws, anew each query."""
    since = window.since
    if window.ties_after is not None:
        matches = sorted(
            (t for t in tickets if t.cursor == since and int(t.source_id) > window.ties_after),
            key=lambda t: int(t.source_id),
        )
    else:
        matches = [
            t
            for t in tickets
            if since is None or t.cursor > since or (t.cursor == since and not window.strict)
        ]
        matches = order(matches)
        matches.sort(key=lambda t: t.cursor)  # stable: the drawn order stays among ties
    return matches[:limit], len(matches) > limit


@given(
    stamps=st.lists(st.integers(0, 4), min_size=0, max_size=40),
    limit=st.integers(1, 6),
    data=st.data(),
)
def test_the_windows_read_every_ticket_once_in_order_whatever_the_ties(
    stamps: list[int], limit: int, data: st.DataObject
) -> None:
    tickets = [ticket(n, T0 + s * MS) for n, s in enumerate(stamps, start=1)]

    def order(found: list[SourceTicket]) -> list[SourceTicket]:
        return list(data.draw(st.permutations(found)))

    window: Window | None = Window()
    read: list[SourceTicket] = []
    for _ in range(4 * len(tickets) + 10):  # each query makes progress: never a loop
        if window is None:
            break
        page, more = search(window, tickets, limit, order)
        read.extend(t for t in page if window.admits(t))
        window = next_window(window, page, more)
    assert window is None
    assert sorted(t.source_id for t in read) == sorted(t.source_id for t in tickets)
    assert [t.cursor for t in read] == sorted(t.cursor for t in read)


# Conversation


def sync_with_notes(case: HubSpotCase, emulator: Emulator, url: str, **conversation: Any) -> Any:
    options = {"kind": "hubspot", **case.options(), "requests_per_minute": 100_000}
    raw = {
        "fragment": {"url": emulator.base_url, "token": TOKEN, "requests_per_minute": 100_000},
        "state": {"url": url},
        "connectors": {"src": {**options, "conversation": {"enabled": True, **conversation}}},
    }
    config = build_config(raw, source="test")
    with StateStore.open(config.state.url) as store:
        [summary] = run_once(config, store, options=RunOptions())
    return summary


def test_notes_become_the_summary_two_requests_for_a_page_of_tickets(
    case: HubSpotCase, emulator: Emulator, sqlite_url: str
) -> None:
    case.fake.assoc_page = 2  # ticket 1's three notes come in two pages of its own
    for n in range(1, 6):
        case.add(n, T0 + dt.timedelta(minutes=n))
    case.fake.add_note(1, T0 + dt.timedelta(minutes=10), "First call")
    case.fake.add_note(1, T0 + dt.timedelta(minutes=12), "Second call", touch=False)
    case.fake.add_note(1, T0 + dt.timedelta(minutes=11), "Sent the part", owner_id="102")
    case.fake.add_note(4, T0 + dt.timedelta(minutes=13), "Waiting on the vendor")

    summary = sync_with_notes(case, emulator, sqlite_url, private=True)

    assert summary.ok, summary.error
    fields = {k: t["fields"] for k, t in tasks_by_ticket(emulator).items()}
    assert (fields["1"]["comment_count"], fields["1"]["last_comment"]) == (3, "<p>Second call</p>")
    assert fields["1"]["last_comment_author"] == "101"
    assert fields["4"]["comment_count"] == 1
    assert fields["2"]["comment_count"] == 0
    links = [r for r in case.fake.requests if r.path == NOTE_LINKS]
    assert [len(json.loads(r.body)["inputs"]) for r in links] == [5, 1]  # then 1's second page
    assert len([r for r in case.fake.requests if r.path == NOTES]) == 1


def test_notes_are_internal_so_they_count_only_with_private_on(
    case: HubSpotCase, emulator: Emulator, sqlite_url: str
) -> None:
    case.add(1, T0)
    case.fake.add_note(1, T0 + dt.timedelta(minutes=1), "Internal only")

    summary = sync_with_notes(case, emulator, sqlite_url)

    assert summary.ok, summary.error
    assert tasks_by_ticket(emulator)["1"]["fields"]["comment_count"] == 0


def test_a_note_without_a_timestamp_fails_its_ticket_naming_the_note(
    case: HubSpotCase, emulator: Emulator, sqlite_url: str
) -> None:
    case.add(1, T0)
    case.add(2, T0 + dt.timedelta(minutes=1))
    note = case.fake.add_note(1, T0 + dt.timedelta(minutes=5))
    case.fake.notes[int(note["id"])]["properties"]["hs_timestamp"] = None

    summary = sync_with_notes(case, emulator, sqlite_url, private=True)

    assert summary.ok, summary.error
    assert summary.failed == 1
    with StateStore.open(sqlite_url) as store:
        [failed] = store.failed_items("src")
    assert failed.field == "comments.0.properties.hs_timestamp"
    assert note["id"] in failed.error
    assert set(tasks_by_ticket(emulator)) == {"2"}


def test_an_archived_ticket_without_a_usable_archived_at_is_a_bad_record_naming_it(
    case: HubSpotCase,
) -> None:
    case.add(1, T0)
    case.add(2, T0 + dt.timedelta(minutes=1))
    case.fake.archive(2, T0 + dt.timedelta(hours=1))
    case.fake.archived[2]["archivedAt"] = "not a time"
    source = connector(case)
    items = list(source.pull(None))
    source.close()
    [bad] = [i for i in items if isinstance(i, BadRecord)]
    assert (bad.source_id, bad.field) == ("2", "archivedAt")
    assert [i.source_id for i in items if isinstance(i, SourceTicket)] == ["1"]


def test_owners_land_as_the_tasks_assignees_one_owners_page_for_every_ticket(
    case: HubSpotCase, emulator: Emulator, sqlite_url: str
) -> None:
    case.fake.add_owner("101", "ana@acme.example", "Ana", "Ops")
    case.fake.add_owner("102", None, "No", "Mail")
    for n in range(1, 7):
        case.fake.add(n, T0 + dt.timedelta(minutes=n), hubspot_owner_id="101" if n % 2 else "102")
    case.fake.add(7, T0 + dt.timedelta(minutes=7))  # unassigned

    summary = ConnectorSuite().sync(case, emulator, sqlite_url)

    assert summary.ok, summary.error
    landed = {
        k: (t.get("assignee") or {}).get("email") for k, t in tasks_by_ticket(emulator).items()
    }
    assert landed == {
        "1": "ana@acme.example",
        "2": None,
        "3": "ana@acme.example",
        "4": None,
        "5": "ana@acme.example",
        "6": None,
        "7": None,
    }
    owner_pages = [r for r in case.fake.requests if r.path == "/crm/v3/owners"]
    assert [r.param("archived") for r in owner_pages] == ["false"]  # both found on one page
