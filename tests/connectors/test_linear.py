"""The Linear connector against a fake of Linear's GraphQL API, plus Linear's own pitfalls."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from connectors.base import Person, SourceTicket
from connectors.linear import LinearConnector, LinearOptions
from fakes import Reply, Request
from fakes.linear import (
    HTML_429,
    MAX_COMPLEXITY,
    FakeLinear,
    issue_id,
    rate_limited,
    stamp,
)
from fakes.suite import T0, ConnectorSuite, VendorCase
from fragment_emulator import Emulator
from sync.config import Config, build_config
from sync.errors import ConfigError
from sync.run import RunSummary
from sync.state import StateStore
from synckit import TOKEN, tasks_by_ticket

API_KEY = "lin_api_FAKE0123456789abcdefghijklmnopqrstuv"
OAUTH_TOKEN = "lin_oauth_FAKE0123456789abcdef"
MINUTE = dt.timedelta(minutes=1)


class LinearCase(VendorCase):
    """Ticket `n` is issue ENG-n, whose id (the task's key) is `issue_id(n)`; deleting it
    trashes it, as Linear's `issueDelete` does."""

    kind = "linear"
    fake: FakeLinear
    shows_deletions = True

    def __init__(self, fake: FakeLinear) -> None:
        super().__init__(fake)
        self.extra: dict[str, Any] = {}

    def options(self) -> dict[str, Any]:
        options = {
            "base_url": self.fake.base_url,
            "api_key": API_KEY,
            "page_size": self.page_size,
            **self.extra,
        }
        return {k: v for k, v in options.items() if v is not None}

    def ticket_key(self, number: int) -> str:
        return issue_id(number)

    def live(self) -> dict[str, str]:
        return {issue_id(int(n)): title for n, title in super().live().items()}

    def put(self, number: int, updated: dt.datetime, version: int) -> None:
        title = f"Printer {number} jammed v{version}"
        if issue_id(number) in self.fake.issues:
            self.fake.touch(number, updated, title=title)
        else:
            self.fake.add(number, updated, title=title)

    def remove(self, number: int, at: dt.datetime) -> None:
        self.fake.archive(number, at, trash=True)

    def put_malformed(self, number: int, updated: dt.datetime) -> str:
        issue = self.fake.add(number, updated)
        issue["updatedAt"] = "yesterday-ish"
        return "updatedAt"

    def rate_limit(self, wait: int) -> Reply:
        return rate_limited(wait)

    def title(self, number: int, version: int) -> str:
        return f"ENG-{number} Printer {number} jammed v{version}"

    def is_page_request(self, request: Request) -> bool:
        return request.path == "/graphql" and b"query Issues" in request.body

    def connector(self, **options: Any) -> LinearConnector:
        return LinearConnector("linear", LinearOptions.model_validate(self.options() | options))


@pytest.fixture
def case() -> Iterator[LinearCase]:
    with FakeLinear(API_KEY, OAUTH_TOKEN) as fake:
        yield LinearCase(fake)


class TestLinear(ConnectorSuite):
    def test_a_census_archives_the_tasks_of_deleted_tickets_or_says_it_takes_none(
        self, case: VendorCase, emulator: Emulator, sqlite_url: str
    ) -> None:
        """The suite's version, but Linear also shows a trashed issue in its feed: the census
        archives its task with nothing but its id, and the next pass, reading the trashed
        issue itself, updates the archived task's fields once (`trashed`); then nothing."""
        for n in range(1, 26):
            case.add(n, T0 + dt.timedelta(minutes=n))
        assert self.sync(case, emulator, sqlite_url).ok
        case.delete(3, T0 + dt.timedelta(hours=1))
        case.delete(17, T0 + dt.timedelta(hours=1))

        summary = self.census(case, emulator, sqlite_url)

        assert summary.ok, summary.error
        assert (summary.at_source, summary.tracked, summary.gone) == (23, 25, 2)
        landed = tasks_by_ticket(emulator)
        archived = {n: landed[case.ticket_key(n)]["archived"] for n in range(1, 26)}
        assert archived == {n: n in (3, 17) for n in range(1, 26)}
        again = self.sync(case, emulator, sqlite_url)
        assert (again.ok, again.pushed) == (True, 2)
        self.assert_exact(case, emulator)
        assert tasks_by_ticket(emulator)[case.ticket_key(3)]["fields"]["trashed"] is True
        third = self.sync(case, emulator, sqlite_url)
        assert (third.ok, third.pushed) == (True, 0)


class _WithComments(ConnectorSuite):
    """The suite's sync with `[connectors.source.conversation] enabled = true`."""

    def config(self, case: VendorCase, emulator: Emulator, state_url: str) -> Config:
        raw = {
            "fragment": {"url": emulator.base_url, "token": TOKEN, "requests_per_minute": 100_000},
            "state": {"url": state_url},
            "connectors": {
                "source": {
                    "kind": case.kind,
                    "max_attempts": 4,
                    "max_retry_wait": "10s",
                    "rate_limit_floor": "100ms",
                    "requests_per_minute": 100_000,
                    **case.options(),
                    "conversation": {"enabled": True},
                }
            },
        }
        return build_config(raw, source="test")


def sync(
    case: LinearCase, emulator: Emulator, state_url: str, *, comments: bool = False
) -> RunSummary:
    suite = _WithComments() if comments else ConnectorSuite()
    return suite.sync(case, emulator, state_url)


def pull(connector: LinearConnector, since: dt.datetime | None) -> list[SourceTicket]:
    try:
        tickets = list(connector.pull(since))
    finally:
        connector.close()
    assert all(isinstance(t, SourceTicket) for t in tickets)
    return tickets  # type: ignore[return-value]


def issue_queries(fake: FakeLinear) -> list[dict[str, Any]]:
    return [q for q in fake.queries if "query Issues" in q["query"]]


def test_the_newest_first_list_is_read_backward_so_tickets_come_oldest_change_first(
    case: LinearCase,
) -> None:
    for n in range(1, 8):
        case.fake.add(n, T0 + dt.timedelta(minutes=n))
    case.fake.archive(2, T0 + dt.timedelta(minutes=20))  # archived: still read, as a tombstone
    tickets = pull(case.connector(), T0 + dt.timedelta(minutes=1))
    numbers = [int(t.record["identifier"].removeprefix("ENG-")) for t in tickets]
    assert numbers == [1, 3, 4, 5, 6, 7, 2]
    assert [t.deleted for t in tickets] == [False] * 6 + [True]
    first, second = issue_queries(case.fake)[:2]
    assert "orderBy: updatedAt" in first["query"] and "includeArchived: true" in first["query"]
    assert first["variables"] == {
        "filter": {"updatedAt": {"gte": "2026-11-02T09:01:00.000Z"}},
        "last": 5,
    }
    # The next page is the query again from the last change read, not Linear's cursor.
    assert second["variables"]["filter"] == {"updatedAt": {"gte": stamp(T0 + 6 * MINUTE)}}
    assert "before" not in second["variables"]
    request = case.fake.requests[0]
    assert request.headers["authorization"] == API_KEY  # a personal key goes without "Bearer"


def test_more_issues_in_one_millisecond_than_a_page_holds_are_read_through_before_cursors(
    case: LinearCase,
) -> None:
    tie = T0 + dt.timedelta(milliseconds=123)
    for n in range(1, 13):
        case.fake.add(n, tie)
    case.fake.add(13, tie + dt.timedelta(milliseconds=1))
    tickets = pull(case.connector(), None)
    assert sorted(t.record["identifier"] for t in tickets) == sorted(
        f"ENG-{n}" for n in range(1, 14)
    )
    assert len(tickets) == 13  # none twice
    assert any("before" in q["variables"] for q in issue_queries(case.fake))


def test_an_issue_moved_to_another_team_keeps_its_task(
    case: LinearCase, emulator: Emulator, sqlite_url: str
) -> None:
    case.fake.add_team("OPS", "Operations")
    case.add(1, T0)
    case.add(2, T0 + MINUTE)
    assert sync(case, emulator, sqlite_url).ok
    before = tasks_by_ticket(emulator)[issue_id(1)]

    identifier = case.fake.move(1, "OPS", T0 + dt.timedelta(hours=1))
    summary = sync(case, emulator, sqlite_url)

    assert (summary.ok, summary.pushed) == (True, 1), summary.error
    tasks = tasks_by_ticket(emulator)
    assert set(tasks) == {issue_id(1), issue_id(2)}
    after = tasks[issue_id(1)]
    assert after["uid"] == before["uid"]
    assert identifier == "OPS-1"
    assert after["fields"]["title"] == "OPS-1 Printer 1 jammed v1"
    assert after["fields"]["team"] == "OPS"


def test_an_archived_issue_archives_its_task_and_restoring_it_brings_the_task_back(
    case: LinearCase, emulator: Emulator, sqlite_url: str
) -> None:
    for n in (1, 2, 3):
        case.add(n, T0 + n * MINUTE)
    assert sync(case, emulator, sqlite_url).ok
    case.fake.archive(2, T0 + dt.timedelta(hours=1))  # the team's auto-archive of closed issues
    assert sync(case, emulator, sqlite_url).ok
    assert tasks_by_ticket(emulator)[issue_id(2)]["archived"] is True

    case.fake.unarchive(2, T0 + dt.timedelta(hours=2))
    summary = sync(case, emulator, sqlite_url)
    assert summary.ok, summary.error
    assert tasks_by_ticket(emulator)[issue_id(2)]["archived"] is False


def test_an_archive_that_leaves_updated_at_alone_is_found_by_the_census(
    case: LinearCase, emulator: Emulator, sqlite_url: str
) -> None:
    for n in range(1, 26):
        case.add(n, T0 + n * MINUTE)
    assert sync(case, emulator, sqlite_url).ok
    case.fake.archive(4, T0 + dt.timedelta(hours=1), trash=True, moves_updated_at=False)
    case.fake.purge(6)  # deleted for good: the feed can't show it
    assert sync(case, emulator, sqlite_url).pushed == 0

    summary = ConnectorSuite().census(case, emulator, sqlite_url)

    assert summary.ok, summary.error
    assert (summary.at_source, summary.tracked, summary.gone) == (23, 25, 2)
    archived = {k for k, t in tasks_by_ticket(emulator).items() if t["archived"]}
    assert archived == {issue_id(4), issue_id(6)}
    census = [q for q in case.fake.queries if "query Census" in q["query"]]
    assert census and all("includeArchived" not in q["query"] for q in census)
    assert census[0]["variables"]["first"] == 250


def test_teams_narrow_the_query_and_an_unknown_key_fails_before_anything_is_archived(
    case: LinearCase, emulator: Emulator, sqlite_url: str
) -> None:
    case.fake.add_team("OPS", "Operations")
    case.fake.add(1, T0, team="ENG")
    case.fake.add(2, T0 + MINUTE, team="OPS")
    tickets = pull(case.connector(teams=["OPS"]), None)
    assert [t.record["identifier"] for t in tickets] == ["OPS-2"]
    [query] = issue_queries(case.fake)
    assert query["variables"]["filter"] == {"team": {"key": {"in": ["OPS"]}}}

    case.extra = {"teams": ["OPS"]}
    assert sync(case, emulator, sqlite_url).ok
    case.extra = {"teams": ["Ops"]}  # keys are case-sensitive: no team has this one
    census = ConnectorSuite().census(case, emulator, sqlite_url)
    assert not census.ok
    assert "Ops" in (census.error or "") and "teams" in (census.error or "")
    assert not any(t["archived"] for t in tasks_by_ticket(emulator).values())
    failed = sync(case, emulator, sqlite_url)
    assert not failed.ok and "no team with the key Ops" in (failed.error or "")


def test_a_ratelimited_400_waits_for_the_spent_buckets_reset_not_the_floor(
    case: LinearCase, emulator: Emulator, sqlite_url: str
) -> None:
    """The complexity bucket is spent, requests are left: its reset (2 s, epoch ms) is the
    wait, though the floor is 100 ms and the requests bucket resets sooner."""
    for n in range(1, 4):
        case.add(n, T0 + n * MINUTE)
    served = [False]

    def complexity_spent(request: Request) -> Reply | None:
        if served[0] or not case.is_page_request(request):
            return None
        served[0] = True
        now_ms = time.time() * 1000
        spent = rate_limited(0)
        spent.headers.update(
            {
                "X-RateLimit-Requests-Remaining": "1200",
                "X-RateLimit-Requests-Reset": str(int(now_ms + 300)),
                "X-RateLimit-Complexity-Remaining": "0",
                "X-RateLimit-Complexity-Reset": str(int(now_ms + 2000)),
            }
        )
        return spent

    case.fake.faults.append(complexity_spent)
    summary = sync(case, emulator, sqlite_url)
    assert summary.ok, summary.error
    pages = [r for r in case.fake.requests if case.is_page_request(r)]
    assert pages[1].at - pages[0].at >= 1.9  # the spent bucket's reset, not 0.1 s
    assert set(tasks_by_ticket(emulator)) == {issue_id(n) for n in (1, 2, 3)}


def test_a_plain_429_from_the_edge_is_waited_out_too(
    case: LinearCase, emulator: Emulator, sqlite_url: str
) -> None:
    case.add(1, T0)
    case.fake.fail_next(HTML_429, when=case.is_page_request)
    summary = sync(case, emulator, sqlite_url)
    assert summary.ok, summary.error
    assert set(tasks_by_ticket(emulator)) == {issue_id(1)}


def test_a_key_refused_with_a_400_fails_as_refused_credentials_not_a_bad_query(
    case: LinearCase, emulator: Emulator, sqlite_url: str
) -> None:
    case.add(1, T0)
    case.extra = {"api_key": "lin_api_REVOKED"}
    summary = sync(case, emulator, sqlite_url)
    assert not summary.ok
    error = summary.error or ""
    assert "Linear refused the credentials" in error and "AUTHENTICATION_ERROR" in error
    assert "lin_api_REVOKED" not in error
    assert len(case.fake.refused) == 1  # not retried: nothing will work until it is fixed


def test_an_oauth_token_is_sent_as_bearer(case: LinearCase) -> None:
    case.fake.add(1, T0)
    connector = case.connector(api_key=None, oauth_token=OAUTH_TOKEN)
    assert len(pull(connector, None)) == 1
    assert case.fake.requests[0].headers["authorization"] == f"Bearer {OAUTH_TOKEN}"


def test_a_graphql_error_in_a_200_fails_the_pass_naming_it(
    case: LinearCase, emulator: Emulator, sqlite_url: str
) -> None:
    case.add(1, T0)
    error = {
        "message": "Entity not found: Team",
        "path": ["issues"],
        "extensions": {"type": "invalid input", "code": "INPUT_ERROR", "statusCode": 400},
    }
    case.fake.fail_next(Reply(200, {"errors": [error], "data": None}), times=10)
    summary = sync(case, emulator, sqlite_url)
    assert not summary.ok
    assert "INPUT_ERROR: Entity not found: Team (at issues)" in (summary.error or "")


def test_the_query_stays_within_linears_complexity_ceiling_at_the_largest_page(
    case: LinearCase,
) -> None:
    case.fake.add(1, T0, labels=["bug"])
    assert len(pull(case.connector(page_size=250), None)) == 1
    [cost] = case.fake.complexities
    assert 5_000 < cost <= MAX_COMPLEXITY


def test_assignees_come_with_the_page_and_others_by_one_users_query(case: LinearCase) -> None:
    ana = case.fake.add_user("Ana Ops", "ana@example.com")
    bo = case.fake.add_user("Bo Dev", "bo@example.com", active=False)
    case.fake.add(1, T0, assignee=ana)
    connector = case.connector()
    try:
        assert len(list(connector.pull(None))) == 1
        asked = len(case.fake.requests)
        people = {p.user_id: p for p in connector.people([ana, bo, "no-such-user"])}
    finally:
        connector.close()
    assert people[ana] == Person(ana, "ana@example.com", "Ana Ops")
    assert people[bo] == Person(bo, "bo@example.com", "Bo Dev")  # deactivated: still known
    assert people["no-such-user"].email is None
    users = [json.loads(r.body) for r in case.fake.requests[asked:]]
    assert len(users) == 1 and users[0]["variables"]["ids"] == [bo, "no-such-user"]


def test_the_default_mapping_makes_a_readable_task(
    case: LinearCase, emulator: Emulator, sqlite_url: str
) -> None:
    ana = case.fake.add_user("Ana Ops", "ana@example.com")
    case.fake.add(
        7,
        T0,
        title="Printer on floor 3 jams",
        state="In Review",
        priority=2,
        estimate=3,
        labels=["bug", "printer"],
        assignee=ana,
        dueDate="2026-12-01",
    )
    case.fake.add(8, T0 + MINUTE, state="Canceled")
    case.fake.add(9, T0 + 2 * MINUTE, state="Triage")
    assert sync(case, emulator, sqlite_url).ok
    tasks = tasks_by_ticket(emulator)
    task = tasks[issue_id(7)]
    assert task["fields"]["title"] == "ENG-7 Printer on floor 3 jams"
    assert task["fields"]["url"] == "https://linear.app/acme/issue/eng-7"
    assert task["fields"]["identifier"] == "ENG-7"
    assert task["fields"]["team"] == "ENG"
    assert task["fields"]["priority"] == "High"
    assert task["fields"]["labels"] == ["bug", "printer"]
    assert task["fields"]["source_status"] == "In Review"
    assert task["status"] == "STARTED"
    assert (task.get("assignee") or {}).get("email") == "ana@example.com"
    assert tasks[issue_id(8)]["status"] == "DONE"
    assert tasks[issue_id(9)]["status"] == "TODO"


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"api_key": None}, ""),
        ({"oauth_token": "t"}, ""),
        ({"page_size": 251}, "page_size"),
        ({"teams": ["ENG", "ENG"]}, "teams"),
        ({"teams": ["ENG-1"]}, "teams"),
    ],
)
def test_bad_options_fail_at_config_load_naming_the_key(
    options: dict[str, Any], key: str, emulator: Emulator
) -> None:
    connector = {"kind": "linear", "api_key": "lin_api_x", **options}
    raw = {
        "fragment": {"url": emulator.base_url, "token": TOKEN},
        "connectors": {"issues": {k: v for k, v in connector.items() if v is not None}},
    }
    with pytest.raises(ConfigError) as caught:
        build_config(raw, source="test")
    assert caught.value.key == "connectors.issues" + (f".{key}" if key else "")


def test_a_failed_pass_resumes_after_the_last_checkpoint(
    case: LinearCase, emulator: Emulator, sqlite_url: str
) -> None:
    """Read oldest first, a pass that fails midway keeps what it pushed: the watermark
    stands at the last page acknowledged, and the next pass starts there."""
    for n in range(1, 16):
        case.add(n, T0 + n * MINUTE)
    pages = [0]

    def from_the_third_page(request: Request) -> bool:
        pages[0] += case.is_page_request(request)
        return pages[0] >= 3

    case.fake.fail_next(
        Reply(500, {"errors": [{"message": "boom"}]}), times=20, when=from_the_third_page
    )
    failed = sync(case, emulator, sqlite_url)
    assert not failed.ok
    with StateStore.open(sqlite_url) as store:
        watermark = store.watermark("source")
    assert watermark is not None and watermark >= T0 + 5 * MINUTE
    case.fake.faults.clear()
    read_before = len(issue_queries(case.fake))
    again = sync(case, emulator, sqlite_url)
    assert again.ok, again.error
    resumed = issue_queries(case.fake)[read_before]
    lookback = dt.timedelta(seconds=2)
    assert resumed["variables"]["filter"]["updatedAt"]["gte"] == stamp(watermark - lookback)
    assert set(tasks_by_ticket(emulator)) == {issue_id(n) for n in range(1, 16)}


def test_comments_of_a_batch_of_issues_come_in_one_listing_and_become_the_summary(
    case: LinearCase, emulator: Emulator, sqlite_url: str
) -> None:
    ana = case.fake.add_user("Ana Ops", "ana@example.com")
    for n in range(1, 8):
        case.fake.add(n, T0 + n * MINUTE)
    case.fake.comment(2, "Printer restarted.", T0 + dt.timedelta(hours=1), user=ana)
    case.fake.comment(2, "Still jams.", T0 + dt.timedelta(hours=2), user=None)  # a bot's
    case.fake.comment(5, "Ordered a part.", T0 + dt.timedelta(hours=3), user=ana)
    summary = sync(case, emulator, sqlite_url, comments=True)
    assert summary.ok, summary.error
    fields = {k: t["fields"] for k, t in tasks_by_ticket(emulator).items()}
    assert fields[issue_id(2)]["comment_count"] == 2
    assert fields[issue_id(2)]["last_comment"] == "Still jams."
    assert fields[issue_id(5)]["last_comment_author"] == "Ana Ops"
    assert fields[issue_id(1)]["comment_count"] == 0
    listings = [q for q in case.fake.queries if "query Comments" in q["query"]]
    assert len(listings) == 1  # seven issues, one batch, one page
    assert sorted(listings[0]["variables"]["ids"]) == sorted(issue_id(n) for n in range(1, 8))

    case.fake.comment(1, "New one.", T0 + dt.timedelta(hours=4), user=ana)
    again = sync(case, emulator, sqlite_url, comments=True)
    assert (again.ok, again.pushed) == (True, 1)
    assert tasks_by_ticket(emulator)[issue_id(1)]["fields"]["last_comment"] == "New one."


def test_a_comment_without_a_time_fails_its_issue_naming_the_comment(
    case: LinearCase, emulator: Emulator, sqlite_url: str
) -> None:
    case.fake.add(1, T0)
    case.fake.add(2, T0 + MINUTE)
    bad = case.fake.comment(2, "garbled", T0 + dt.timedelta(hours=1))
    bad["createdAt"] = None
    summary = sync(case, emulator, sqlite_url, comments=True)
    assert summary.ok, summary.error
    assert summary.failed == 1
    with StateStore.open(sqlite_url) as store:
        [failed] = store.failed_items("source")
    assert failed.field == "comments.0.createdAt"
    assert set(tasks_by_ticket(emulator)) == {issue_id(1)}
