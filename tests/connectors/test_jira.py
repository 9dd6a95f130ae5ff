"""The Jira Cloud connector against a fake of the enhanced JQL search, plus Jira's own traps.

The fake's API user lives in Los Angeles (UTC-8 in November), so every
timestamp it returns carries `-0800` and every date string it reads is
local: a connector that got time zones wrong would fail the standard suite.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import httpx
import pytest

from connectors.base import Person, SourceTicket
from connectors.errors import SourceError
from connectors.jira import JiraConnector, JiraOptions
from connectors.records import get_path
from fakes import Reply, Request
from fakes.jira import SEARCH, USER_BULK, FakeJira
from fakes.suite import T0, ConnectorSuite, VendorCase
from fragment_emulator import Emulator
from sync.config import build_config
from sync.errors import ConfigError
from sync.mapping import Mapper, task_uid
from sync_http.ratelimit import backoff_delay
from synckit import TOKEN, free_port, tasks_by_ticket

EMAIL = "ops-bot@example.com"
API_TOKEN = "jira-token-4f2a9c"
ORDER = "ORDER BY updated ASC, id ASC"


class JiraCase(VendorCase):
    kind = "jira"
    fake: FakeJira
    jql = "project = OPS"

    def __init__(self, fake: FakeJira) -> None:
        super().__init__(fake)
        self.extra: dict[str, Any] = {}

    def options(self) -> dict[str, Any]:
        return {
            "base_url": self.fake.base_url,
            "email": EMAIL,
            "api_token": API_TOKEN,
            "jql": self.jql,
            "page_size": self.page_size,
            **self.extra,
        }

    def put(self, number: int, updated: dt.datetime, version: int) -> None:
        summary = f"Printer {number} jammed v{version}"
        if str(number) in self.fake.issues:
            self.fake.touch(number, updated, summary=summary)
        else:
            self.fake.add(number, updated, summary=summary)

    def remove(self, number: int, at: dt.datetime) -> None:
        del self.fake.issues[str(number)]  # search simply stops finding it

    def put_malformed(self, number: int, updated: dt.datetime) -> str:
        self.fake.add(number, updated).broken_updated = "last Tuesday"
        return "fields.updated"

    def rate_limit(self, wait: int) -> Reply:
        return self.fake.rate_limited(wait)

    def title(self, number: int, version: int) -> str:
        return f"OPS-{number} Printer {number} jammed v{version}"

    def is_page_request(self, request: Request) -> bool:
        return request.path == SEARCH


@pytest.fixture(scope="module")
def server() -> Iterator[FakeJira]:
    fake = FakeJira(EMAIL, API_TOKEN)
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def case(server: FakeJira) -> JiraCase:
    server.reset(profile_tz="America/Los_Angeles")
    return JiraCase(server)


class TestJira(ConnectorSuite):
    pass


def connector(case: JiraCase, **overrides: Any) -> JiraConnector:
    options = {"rate_limit_floor": "100ms", "max_retry_wait": "10s", **case.options()}
    return JiraConnector("jira", JiraOptions.model_validate({**options, **overrides}))


def pull(case: JiraCase, since: dt.datetime | None, **overrides: Any) -> list[SourceTicket]:
    with closing(connector(case, **overrides)) as source:
        items = list(source.pull(since))
    assert all(isinstance(item, SourceTicket) for item in items)
    return [item for item in items if isinstance(item, SourceTicket)]


def test_the_jql_sent_is_the_scope_and_an_epoch_bound_floored_to_the_minute(
    case: JiraCase,
) -> None:
    case.add(1, T0 + dt.timedelta(minutes=5, seconds=10))
    case.add(2, T0 + dt.timedelta(minutes=5, seconds=40))
    since = T0 + dt.timedelta(minutes=5, seconds=37, milliseconds=500)

    tickets = pull(case, since)

    assert [t.source_id for t in tickets] == ["2"]  # 1 is re-read by the floor, then dropped
    [request] = case.fake.gets(SEARCH)
    minute = int((T0 + dt.timedelta(minutes=5)).timestamp()) * 1000
    assert request.param("jql") == f"(project = OPS) AND updated >= {minute} {ORDER}"
    assert "updated" in (request.param("fields") or "").split(",")
    assert request.param("maxResults") == "5"


def test_an_epoch_bound_finds_what_a_utc_date_string_would_miss(case: JiraCase) -> None:
    case.add(1, T0 + dt.timedelta(minutes=10))  # 09:10 UTC, 01:10 in Los Angeles

    [ticket] = pull(case, T0)

    assert ticket.source_id == "1"
    assert ticket.record["fields"]["updated"] == "2026-11-02T01:10:00.000-0800"
    assert ticket.cursor == T0 + dt.timedelta(minutes=10)  # read as aware UTC
    # A connector writing its UTC watermark as a JQL date string: Jira reads it in the
    # user's zone, 09:00 in Los Angeles = 17:00 UTC, and the issue is silently skipped.
    naive_jql = f'project = OPS AND updated >= "{T0:%Y-%m-%d %H:%M}" {ORDER}'
    answer = httpx.get(
        case.fake.base_url + SEARCH,
        params={"jql": naive_jql, "fields": "updated"},
        auth=(EMAIL, API_TOKEN),
    )
    assert answer.status_code == 200
    assert answer.json()["issues"] == []


def test_an_issue_moved_to_another_project_updates_the_same_task(
    case: JiraCase, emulator: Emulator, sqlite_url: str
) -> None:
    case.jql = "project in (OPS, INFRA)"
    case.add(7, T0)
    suite = TestJira()
    assert suite.sync(case, emulator, sqlite_url).ok
    before = tasks_by_ticket(emulator)["7"]
    assert before["fields"]["issue_key"] == "OPS-7"

    case.fake.move(7, "INFRA", 3, T0 + dt.timedelta(hours=1))
    summary = suite.sync(case, emulator, sqlite_url)

    assert summary.ok, summary.error
    assert summary.pushed == 1
    [(source_id, task)] = tasks_by_ticket(emulator).items()  # one task, not two
    assert source_id == "7"
    assert task["uid"] == before["uid"] == task_uid("source", "7")
    assert task["fields"]["title"] == "INFRA-3 Printer 7 jammed v1"
    assert task["fields"]["issue_key"] == "INFRA-3"
    assert task["fields"]["project"] == "INFRA"
    assert task["fields"]["url"] == f"{case.fake.base_url}/browse/INFRA-3"


def test_the_default_mapping_uses_the_status_category_and_tolerates_a_hidden_email(
    case: JiraCase,
) -> None:
    case.fake.add(
        1,
        T0,
        summary="Renamed status",
        status="In Progress",
        assignee={"displayName": "Private Person"},  # no emailAddress: privacy settings
        duedate="2026-11-20",
        labels=["printer", "floor-2"],
        priority="High",
    )
    case.fake.add(2, T0, summary="Finished", status="Done", assignee={"emailAddress": "a@x.io"})
    config = build_config(
        {
            "fragment": {"url": "http://127.0.0.1:9", "token": TOKEN},
            "connectors": {"ops": {"kind": "jira", **case.options()}},
        },
        source="test",
    )
    mapper = Mapper("ops", "ops", config.connectors["ops"].settings.mapping)

    started, done = (mapper.map(t).task() for t in pull(case, None))

    assert (started["status"], done["status"]) == ("STARTED", "DONE")
    assert started["assignee_email"] is None
    assert done["assignee_email"] == "a@x.io"
    assert started["due_at"] == "2026-11-20T17:00:00Z"  # a date alone: 17:00 in its zone
    assert started["external_updated_at"] == "2026-11-02T09:00:00Z"
    assert started["fields"] == {
        "title": "OPS-1 Renamed status",
        "url": f"{case.fake.base_url}/browse/OPS-1",
        "ticket_id": "1",
        "issue_key": "OPS-1",
        "project": "OPS",
        "issue_type": "Task",
        "priority": "High",
        "labels": ["printer", "floor-2"],
        "reporter": "Ana Ops",
        "source_status": "In Progress",
    }


def test_a_jql_with_its_own_order_by_is_refused_at_config_load() -> None:
    def load(jql: str) -> None:
        build_config(
            {
                "fragment": {"url": "http://127.0.0.1:9", "token": TOKEN},
                "connectors": {
                    "ops": {
                        "kind": "jira",
                        "site": "acme",
                        "email": EMAIL,
                        "api_token": API_TOKEN,
                        "jql": jql,
                    }
                },
            },
            source="test",
        )

    with pytest.raises(ConfigError) as raised:
        load("project = OPS order by created DESC")
    assert raised.value.key == "connectors.ops.jql"
    assert "ORDER BY" in str(raised.value)
    load('project = OPS AND summary ~ "sort order by size"')  # quoted text is fine


def test_a_site_name_becomes_the_api_and_the_link_address() -> None:
    options = JiraOptions.model_validate(
        {"site": "acme", "email": EMAIL, "api_token": API_TOKEN, "jql": "project = OPS"}
    )
    assert options.base_url == "https://acme.atlassian.net"
    gateway = "https://api.atlassian.com/ex/jira/2a4f"  # a scoped token's API address
    scoped = options.model_copy(update={"base_url": gateway})
    source = JiraConnector("jira", scoped)
    assert source.enrich({"key": "OPS-1"})["web_url"] == "https://acme.atlassian.net/browse/OPS-1"
    with pytest.raises(ValueError, match="site"):
        JiraOptions.model_validate({"email": EMAIL, "api_token": API_TOKEN, "jql": "x = 1"})


def test_a_short_page_mid_stream_does_not_end_the_pull(case: JiraCase) -> None:
    case.fake.page_cap = 3  # Jira may send fewer than maxResults and more after
    for n in range(1, 13):
        case.add(n, T0 + dt.timedelta(minutes=n))

    tickets = pull(case, None)

    assert [t.source_id for t in tickets] == [str(n) for n in range(1, 13)]
    requests = case.fake.gets(SEARCH)
    assert len(requests) == 4
    assert requests[0].param("maxResults") == "5"


def test_the_removed_search_endpoint_fails_loudly(case: JiraCase) -> None:
    class OldSearch(JiraConnector):
        path = "/rest/api/3/search"

    case.add(1, T0)
    source = OldSearch("jira", connector(case).options)
    with closing(source), pytest.raises(SourceError) as raised:
        list(source.pull(None))
    message = str(raised.value)
    assert "410" in message
    assert "/rest/api/3/search/jql" in message
    assert len(case.fake.requests) == 1  # not retried


def test_a_503_with_retry_after_is_waited_out(case: JiraCase) -> None:
    case.add(1, T0)
    case.fake.fail_next(Reply(503, {"errorMessages": ["busy"]}, headers={"Retry-After": "1"}))

    [ticket] = pull(case, None)

    assert ticket.source_id == "1"
    first, second = case.fake.gets(SEARCH)
    assert second.at - first.at >= 1.0


def test_a_wrong_api_token_fails_with_a_clear_message(case: JiraCase) -> None:
    case.add(1, T0)
    with pytest.raises(SourceError) as raised:
        pull(case, None, api_token="revoked")
    assert "credentials" in str(raised.value)
    assert "401" in str(raised.value)


@pytest.mark.parametrize(
    ("lookback", "found_late"),
    [
        ("0s", False),  # what the connector had before it set a default
        (None, True),  # unset: the connector's default, which the engine applies
    ],
)
def test_an_issue_search_indexes_late_is_found_with_the_default_lookback(
    lookback: str | None, found_late: bool, case: JiraCase, emulator: Emulator, sqlite_url: str
) -> None:
    case.extra = {} if lookback is None else {"lookback": lookback}
    case.fake.index_lag = dt.timedelta(minutes=5)  # a bulk edit: indexed minutes later
    case.add(1, T0 + dt.timedelta(seconds=40))
    case.fake.index_lag = dt.timedelta(seconds=30)
    case.add(2, T0 + dt.timedelta(minutes=1, seconds=50))
    suite = TestJira()

    case.fake.now = T0 + dt.timedelta(minutes=4)  # 2 is searchable, 1 not yet
    first = suite.sync(case, emulator, sqlite_url)
    assert first.ok, first.error
    assert sorted(tasks_by_ticket(emulator)) == ["2"]

    case.fake.now = T0 + dt.timedelta(minutes=10)  # 1 is indexed now, below the watermark
    second = suite.sync(case, emulator, sqlite_url)
    assert second.ok, second.error
    assert ("1" in tasks_by_ticket(emulator)) is found_late
    assert JiraConnector.default_lookback >= dt.timedelta(minutes=5)


def test_a_503_without_retry_after_backs_off_as_atlassian_advises(case: JiraCase) -> None:
    case.add(1, T0)
    case.fake.fail_next(case.fake.unavailable(), times=2)  # a resource limit, no hint

    [ticket] = pull(case, None)

    assert ticket.source_id == "1"
    first, second, third = case.fake.gets(SEARCH)
    assert second.at - first.at >= 2 * 0.7  # 2 s, times a random 0.7 to 1.3
    assert third.at - second.at >= 4 * 0.7  # doubling


def test_jira_retries_a_503_for_minutes_not_seconds_before_giving_up() -> None:
    backoff = JiraConnector.backoff
    attempts = JiraOptions.model_fields["max_attempts"].default
    rng = random.Random(7)
    shortest = 0.0
    for retry in range(1, attempts):  # the waits between the default 8 attempts
        ceiling = min(2.0 * 2 ** (retry - 1), 30.0)  # 2, 4, 8, 16 s, then 30 s at most
        waits = [backoff_delay(retry, backoff, 300.0, rng) for _ in range(200)]
        assert all(0.7 * ceiling <= wait <= 1.3 * ceiling for wait in waits)
        shortest += 0.7 * ceiling
    assert shortest >= 80  # a 503 spell shorter than about a minute and a half is outlasted


def test_a_census_asks_for_ids_only_and_archives_an_issue_moved_out_of_the_jql(
    case: JiraCase, emulator: Emulator, sqlite_url: str
) -> None:
    suite = TestJira()
    for n in range(1, 31):
        case.add(n, T0 + dt.timedelta(minutes=n))
    assert suite.sync(case, emulator, sqlite_url).ok
    case.fake.move(12, "FIN", 1, T0 + dt.timedelta(hours=1))  # out of `project = OPS`
    before = len(case.fake.gets(SEARCH))

    summary = suite.census(case, emulator, sqlite_url)

    assert summary.ok, summary.error
    assert (summary.at_source, summary.gone, summary.archived) == (29, 1, 1)
    landed = tasks_by_ticket(emulator)
    assert {key for key, task in landed.items() if task["archived"]} == {"12"}
    [request] = case.fake.gets(SEARCH)[before:]  # 29 ids: one page of up to 5,000
    assert request.param("fields") == "id"
    assert request.param("maxResults") == "5000"
    assert request.param("jql") == "(project = OPS) ORDER BY id ASC"


def test_the_source_status_field_keeps_the_workflow_status_name_beside_its_category(
    case: JiraCase, emulator: Emulator, sqlite_url: str
) -> None:
    case.fake.add(1, T0, status="In Review")
    case.fake.add(2, T0 + dt.timedelta(minutes=1), status="Done")
    assert TestJira().sync(case, emulator, sqlite_url).ok
    tasks = tasks_by_ticket(emulator)
    shown = {
        k: (t["fields"]["source_status"], t["status"], t["external_status"])
        for k, t in tasks.items()
    }
    assert shown == {"1": ("In Review", "STARTED", "STARTED"), "2": ("Done", "DONE", "DONE")}


# People: account ids to emails, where the users' privacy lets them through

HIDDEN = "email hidden by the user's profile visibility settings"


def test_accounts_are_read_50_a_request_and_paged_when_jira_answers_fewer(
    case: JiraCase,
) -> None:
    for n in range(1, 121):
        case.fake.add_user(f"acct-{n:03d}", f"Agent {n}", f"agent{n}@acme.example")
    case.fake.user_page_cap = 30  # Jira may answer fewer than asked
    asked = [f"acct-{n:03d}" for n in range(1, 121)] * 2

    with closing(connector(case)) as source:
        people = {p.user_id: p for p in source.people(asked)}

    assert len(people) == 120
    assert people["acct-007"] == Person("acct-007", "agent7@acme.example", "Agent 7")
    requests = case.fake.gets(USER_BULK)
    batches = [(len(r.query["accountId"]), r.param("startAt")) for r in requests]
    assert batches == [
        (50, "0"), (50, "30"),  # the first 50 ids, in two pages of 30 and 20
        (50, "0"), (50, "30"),
        (20, "0"),
    ]  # fmt: skip


def test_a_hidden_email_and_an_unknown_account_resolve_without_email_saying_why(
    case: JiraCase,
) -> None:
    case.fake.add_user("acct-ana", "Ana Ops", "ana@acme.example")
    case.fake.add_user("acct-ben", "Ben Private", "ben@acme.example", hidden=True)
    case.fake.add_user("acct-bot", "Automation", "bot@acme.example", account_type="app")

    with closing(connector(case)) as source:
        people = {p.user_id: p for p in source.people(["acct-ana", "acct-ben", "acct-bot", "x"])}

    assert people == {
        "acct-ana": Person("acct-ana", "ana@acme.example", "Ana Ops"),
        "acct-ben": Person("acct-ben", None, "Ben Private", reason=HIDDEN),
        "acct-bot": Person("acct-bot", "bot@acme.example", "Automation"),
        "x": Person("x", None, reason="no such user"),
    }


def test_the_issue_carries_visible_emails_and_only_hidden_ones_cost_a_lookup(
    case: JiraCase,
) -> None:
    case.fake.add_user("acct-ana", "Ana Ops", "ana@acme.example")
    case.fake.add_user("acct-ben", "Ben Private", "ben@acme.example", hidden=True)
    case.fake.add(1, T0, assignee="acct-ana")
    case.fake.add(2, T0 + dt.timedelta(minutes=1), assignee="acct-ben")
    mapping = JiraConnector.default_mapping

    with closing(connector(case)) as source:
        tickets = [t for t in source.pull(None) if isinstance(t, SourceTicket)]
        ids = [str(get_path(t.record, mapping["assignee"])) for t in tickets]
        people = {p.user_id: p for p in source.people(ids)}

    assert ids == ["acct-ana", "acct-ben"]
    assert get_path(tickets[0].record, mapping["assignee_email"]) == "ana@acme.example"
    assert "emailAddress" not in tickets[1].record["fields"]["assignee"]  # hidden: absent
    assert people == {
        "acct-ana": Person("acct-ana", "ana@acme.example", "Ana Ops"),
        "acct-ben": Person("acct-ben", None, "Ben Private", reason=HIDDEN),
    }
    [lookup] = case.fake.gets(USER_BULK)  # Ana's came with her issue
    assert lookup.query["accountId"] == ["acct-ben"]


def test_a_rate_limited_user_bulk_is_waited_out_and_asked_again(case: JiraCase) -> None:
    case.fake.add_user("acct-ana", "Ana Ops", "ana@acme.example")
    case.fake.fail_next(case.fake.rate_limited(1), when=lambda r: r.path == USER_BULK)

    with closing(connector(case)) as source:
        people = list(source.people(["acct-ana"]))

    assert people == [Person("acct-ana", "ana@acme.example", "Ana Ops")]
    assert len(case.fake.gets(USER_BULK)) == 2


def test_people_from_an_unreachable_jira_raise_a_source_error() -> None:
    options = {
        "base_url": f"http://127.0.0.1:{free_port()}",
        "email": EMAIL,
        "api_token": API_TOKEN,
        "jql": "project = OPS",
        "max_attempts": 1,
    }
    source = JiraConnector("jira", JiraOptions.model_validate(options))
    with pytest.raises(SourceError, match="connector 'jira'"):
        list(source.people(["acct-ana"]))
    source.close()
