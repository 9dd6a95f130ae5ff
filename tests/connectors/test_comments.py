"""Each vendor connector reading its tickets' conversation, against the vendor's fake.

Comments are read only when the engine asks (`read_comments`), at the cost
each connector's page documents: the tests count the requests on the fake.
A ticket whose comments are gone (404) keeps `comments` None and the pass goes
on; a comment that can't be read makes its ticket a `BadRecord` naming the field.
"""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import pytest

from connectors import github, servicenow
from connectors.base import BadRecord, SourceComment, SourceTicket
from connectors.comments import CommentShape, read_comments
from connectors.errors import SourceError
from connectors.freshdesk import FreshdeskConnector, FreshdeskOptions
from connectors.github import GitHubConnector, GitHubOptions
from connectors.http import RestConnector
from connectors.servicenow import ServiceNowConnector, ServiceNowOptions
from connectors.zendesk import ZendeskConnector, ZendeskOptions
from fakes import Reply
from fakes.freshdesk import FakeFreshdesk
from fakes.github import FakeGitHub, primary_rate_limit
from fakes.servicenow import FakeServiceNow, sys_id_of
from fakes.suite import T0
from fakes.zendesk import RATE_LIMITED_BODY, FakeZendesk

MINUTE = dt.timedelta(minutes=1)


def pull_all(connector: RestConnector, since: dt.datetime | None = None) -> list[Any]:
    try:
        return list(connector.pull(since))
    finally:
        connector.close()


def tickets_of(items: list[Any]) -> dict[str, SourceTicket]:
    return {t.source_id: t for t in items if isinstance(t, SourceTicket)}


# The shared reading of comment records


def test_comments_are_sorted_oldest_first_keeping_the_sources_order_among_equals() -> None:
    ticket = SourceTicket("7", T0, {"id": 7})
    raw = [
        {"id": 3, "created_at": "2026-11-02T10:00:00Z", "body": "third"},
        {"id": 1, "created_at": "2026-11-02T09:00:00Z", "body": "first"},
        {"id": 2, "created_at": "2026-11-02T09:00:00Z", "body": "second"},
    ]
    comments = read_comments(ticket, raw, CommentShape())
    assert isinstance(comments, list)
    assert [c.body for c in comments] == ["first", "second", "third"]
    assert comments[0].created_at == dt.datetime(2026, 11, 2, 9, tzinfo=dt.UTC)


def test_a_comment_without_a_creation_time_makes_the_ticket_a_bad_record_naming_the_field() -> None:
    ticket = SourceTicket("7", T0, {"id": 7})
    raw = [{"id": 1, "created_at": "2026-11-02T09:00:00Z"}, {"id": 2, "body": "when?"}]
    bad = read_comments(ticket, raw, CommentShape())
    assert isinstance(bad, BadRecord)
    assert (bad.source_id, bad.field, bad.cursor) == ("7", "comments.1.created_at", T0)
    assert "comment 2" in bad.message


# GitHub: one listing per issue with comments, none for an issue without

GITHUB_TOKEN = "github_pat_11AAFAKE0123456789"


@pytest.fixture(autouse=True)
def _no_remembered_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(github, "_REMEMBERED_PAGES", {})
    monkeypatch.setattr(github, "_REMEMBERED_COMMENTS", OrderedDict())


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    with FakeGitHub(GITHUB_TOKEN) as fake:
        yield fake


def github_connector(
    fake: FakeGitHub, read_comments: bool = True, **options: Any
) -> GitHubConnector:
    settings = {
        "base_url": fake.base_url,
        "repository": fake.repository,
        "token": GITHUB_TOKEN,
        **options,
    }
    connector = GitHubConnector("github", GitHubOptions.model_validate(settings))
    connector.read_comments = read_comments
    return connector


def test_github_comments_are_read_only_when_the_engine_asks(gh: FakeGitHub) -> None:
    gh.add(1, T0)
    gh.comment(1, T0 + MINUTE, "Printer restarted.")

    plain = tickets_of(pull_all(github_connector(gh, read_comments=False)))
    assert plain["1"].comments is None
    assert gh.comment_gets() == []

    read = tickets_of(pull_all(github_connector(gh)))
    assert read["1"].comments == [
        SourceComment(
            comment_id=str(gh.comments[1][0]["id"]),
            created_at=T0 + MINUTE,
            body="Printer restarted.",
            author="bo-dev",
            author_id="8",
            public=True,
        )
    ]


def test_github_issues_without_comments_cost_no_request_and_long_ones_page_by_100(
    gh: FakeGitHub,
) -> None:
    for n in range(1, 6):
        gh.add(n, T0 + n * MINUTE)
    for k in range(150):
        gh.comment(2, T0 + 10 * MINUTE + k * dt.timedelta(seconds=1), f"note {k}")
    gh.comment(4, T0 + 20 * MINUTE, "one")

    tickets = tickets_of(pull_all(github_connector(gh)))

    assert {k: len(t.comments or []) for k, t in tickets.items()} == {
        "1": 0,
        "2": 150,
        "3": 0,
        "4": 1,
        "5": 0,
    }
    assert [c.body for c in tickets["2"].comments or []][:2] == ["note 0", "note 1"]
    asked = gh.comment_gets()
    assert len(asked) == 3  # issue 2's two pages and issue 4's one; 1, 3 and 5 say 0 comments
    assert {r.param("per_page") for r in asked} == {"100"}
    assert {r.path for r in asked} == {
        f"/repos/{gh.repository}/issues/1002/comments",
        f"/repos/{gh.repository}/issues/1004/comments",
    }


def test_github_an_issue_read_again_without_a_new_comment_costs_no_quota_for_its_comments(
    gh: FakeGitHub,
) -> None:
    gh.add(1, T0)
    gh.comment(1, T0 + MINUTE, "first")
    pull_all(github_connector(gh))
    spent = gh.quota_used

    gh.touch(1, T0 + 2 * MINUTE, labels=[{"id": 2, "name": "printer"}])  # no new comment
    again = tickets_of(pull_all(github_connector(gh)))

    assert [c.body for c in again["1"].comments or []] == ["first"]  # the 304 replayed
    assert gh.quota_used == spent + 1  # the changed issue list; its comments answered 304
    assert "if-none-match" in gh.comment_gets()[-1].headers

    gh.comment(1, T0 + 3 * MINUTE, "second")
    changed = tickets_of(pull_all(github_connector(gh)))
    assert [c.body for c in changed["1"].comments or []] == ["first", "second"]


def test_github_comment_listings_remembered_are_bounded(
    gh: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(github, "REMEMBERED_COMMENT_LISTINGS", 2)
    for n in range(1, 5):
        gh.add(n, T0 + n * MINUTE)
        gh.comment(n, T0 + n * MINUTE, f"on {n}")
    pull_all(github_connector(gh))
    assert [key[1] for key in github._REMEMBERED_COMMENTS] == [
        f"/repos/{gh.repository}/issues/1003/comments",
        f"/repos/{gh.repository}/issues/1004/comments",
    ]


def test_github_an_issue_deleted_before_its_comments_are_read_keeps_none_and_the_pass_goes_on(
    gh: FakeGitHub,
) -> None:
    for n in (1, 2, 3):
        gh.add(n, T0 + n * MINUTE)
        gh.comment(n, T0 + n * MINUTE, f"comment on {n}")

    def deleted_meanwhile(request: Any) -> bool:
        return request.path.endswith("/issues/1002/comments")

    gh.when(deleted_meanwhile, lambda: gh.issues.pop(2))

    tickets = tickets_of(pull_all(github_connector(gh)))

    assert tickets["2"].comments is None
    assert [c.body for c in tickets["1"].comments or []] == ["comment on 1"]
    assert [c.body for c in tickets["3"].comments or []] == ["comment on 3"]


def test_github_a_rate_limit_on_a_comment_listing_waits_for_the_reset_then_reads_it(
    gh: FakeGitHub,
) -> None:
    gh.add(1, T0)
    gh.comment(1, T0 + MINUTE, "after the wait")
    refusals = [0]

    def quota_spent(request: Any) -> Reply | None:
        # Built as the request arrives: the reset is then a second or more away whatever
        # the time the pass took to get here.
        if not request.path.endswith("/comments") or refusals[0]:
            return None
        refusals[0] += 1
        return primary_rate_limit(0)

    gh.faults.append(quota_spent)

    tickets = tickets_of(pull_all(github_connector(gh, rate_limit_floor="1s")))

    assert [c.body for c in tickets["1"].comments or []] == ["after the wait"]
    refused, answered = gh.comment_gets()
    assert answered.at - refused.at >= 0.9  # waited for x-ratelimit-reset, not at once


def test_github_a_comment_without_a_time_fails_its_issue_only(gh: FakeGitHub) -> None:
    gh.add(1, T0)
    gh.add(2, T0 + MINUTE)
    gh.comment(1, T0, "fine")
    gh.comment(2, T0 + MINUTE, "broken")["created_at"] = None

    items = pull_all(github_connector(gh))

    [bad] = [i for i in items if isinstance(i, BadRecord)]
    assert (bad.source_id, bad.field) == ("2", "comments.0.created_at")
    assert [c.body for c in tickets_of(items)["1"].comments or []] == ["fine"]


def test_github_pull_requests_comments_are_read_when_pull_requests_are_synced(
    gh: FakeGitHub,
) -> None:
    gh.add(1, T0, pull_request=True)
    gh.comment(1, T0 + MINUTE, "LGTM")
    tickets = tickets_of(pull_all(github_connector(gh, include_pull_requests=True)))
    assert [c.body for c in tickets["1"].comments or []] == ["LGTM"]


def test_github_comments_of_each_repository_are_read_there(gh: FakeGitHub) -> None:
    gh.add_repository("octo-org/infra")
    gh.add(1, T0, number=1)
    gh.add(2, T0 + MINUTE, number=1, repository="octo-org/infra")
    gh.comment(1, T0, "helpdesk's")
    gh.comment(2, T0 + MINUTE, "infra's")
    connector = github_connector(
        gh, repository=None, repositories=[gh.repository, "octo-org/infra"]
    )
    tickets = tickets_of(pull_all(connector))
    assert [c.body for c in tickets["1"].comments or []] == ["helpdesk's"]
    assert [c.body for c in tickets["2"].comments or []] == ["infra's"]


# Freshdesk: one listing per ticket read, on a budget of its own

FRESHDESK_KEY = "freshdesk-key-3f8a20"


@pytest.fixture
def fd() -> Iterator[FakeFreshdesk]:
    with FakeFreshdesk(FRESHDESK_KEY) as fake:
        yield fake


def freshdesk_connector(
    fake: FakeFreshdesk, read_comments: bool = True, **options: Any
) -> FreshdeskConnector:
    settings = {
        "domain": "acme",
        "base_url": fake.base_url,
        "api_key": FRESHDESK_KEY,
        "requests_per_minute": 100_000,
        "comment_requests_per_minute": 100_000,
        **options,
    }
    connector = FreshdeskConnector("freshdesk", FreshdeskOptions.model_validate(settings))
    connector.read_comments = read_comments
    return connector


def test_freshdesk_conversations_are_read_only_when_asked_with_private_notes_marked(
    fd: FakeFreshdesk,
) -> None:
    fd.add(1, T0, description="The printer is jammed.")
    fd.converse(1, T0 + MINUTE, "Restarted it.", user_id=6001)
    fd.converse(1, T0 + 2 * MINUTE, "Toner low, order more.", private=True, user_id=6002)
    fd.converse(1, T0 + 3 * MINUTE, "Thanks, works now.", incoming=True, user_id=5001)

    plain = tickets_of(pull_all(freshdesk_connector(fd, read_comments=False)))
    assert plain["1"].comments is None
    assert fd.conversation_gets() == []

    comments = tickets_of(pull_all(freshdesk_connector(fd)))["1"].comments or []
    shown = [(c.body, c.author_id, c.public, c.created_at) for c in comments]
    assert shown == [  # the description is not a conversation
        ("Restarted it.", "6001", True, T0 + MINUTE),
        ("Toner low, order more.", "6002", False, T0 + 2 * MINUTE),
        ("Thanks, works now.", "5001", True, T0 + 3 * MINUTE),
    ]
    assert comments[0].comment_id == str(fd.conversations[1][0]["id"])


def test_freshdesk_each_ticket_costs_a_request_per_100_conversations_and_tombstones_none(
    fd: FakeFreshdesk,
) -> None:
    for n in range(1, 5):
        fd.add(n, T0 + n * MINUTE)
    for k in range(150):
        fd.converse(2, T0 + 10 * MINUTE + k * dt.timedelta(seconds=1), f"reply {k}")
    fd.delete(4, T0 + 20 * MINUTE)

    tickets = tickets_of(pull_all(freshdesk_connector(fd)))

    assert {k: None if t.comments is None else len(t.comments) for k, t in tickets.items()} == {
        "1": 0,
        "2": 150,
        "3": 0,
        "4": None,  # deleted: its task is archived, its conversation not read
    }
    asked = fd.conversation_gets()
    assert sorted(r.path.split("/")[4] for r in asked) == ["1", "2", "2", "3"]
    assert {r.param("per_page") for r in asked} == {"100"}


def test_freshdesk_a_ticket_gone_before_its_conversations_are_read_keeps_none(
    fd: FakeFreshdesk,
) -> None:
    for n in (1, 2, 3):
        fd.add(n, T0 + n * MINUTE)
        fd.converse(n, T0 + n * MINUTE, f"reply on {n}")
    fd.when(lambda r: r.path == "/api/v2/tickets/2/conversations", lambda: fd.tickets.pop(2))

    tickets = tickets_of(pull_all(freshdesk_connector(fd)))

    assert tickets["2"].comments is None
    assert [c.body for c in tickets["3"].comments or []] == ["reply on 3"]


def test_freshdesk_a_429_on_conversations_waits_its_retry_after(fd: FakeFreshdesk) -> None:
    fd.add(1, T0)
    fd.converse(1, T0 + MINUTE, "after the wait")
    fd.fail_next(
        Reply(
            429,
            {"message": "You have exceeded the limit of requests per minute"},
            headers={"Retry-After": "1", "X-Ratelimit-Remaining": "0"},
        ),
        when=lambda r: r.path.endswith("/conversations"),
    )

    tickets = tickets_of(pull_all(freshdesk_connector(fd)))

    assert [c.body for c in tickets["1"].comments or []] == ["after the wait"]
    refused, answered = fd.conversation_gets()
    assert answered.at - refused.at >= 0.9


def test_freshdesk_the_comment_budget_stays_out_of_the_settings_fingerprint() -> None:
    base = {"domain": "acme", "api_key": FRESHDESK_KEY}
    paced = FreshdeskOptions.model_validate({**base, "comment_requests_per_minute": 10})
    assert paced.model_dump(mode="json") == FreshdeskOptions.model_validate(base).model_dump(
        mode="json"
    )


# Zendesk: one listing per ticket read, authors side-loaded, on a budget of its own

ZENDESK_EMAIL, ZENDESK_TOKEN = "admin@acme.example", "zd-token-5e1f"


@pytest.fixture
def zd() -> Iterator[FakeZendesk]:
    with FakeZendesk(ZENDESK_EMAIL, ZENDESK_TOKEN) as fake:
        yield fake


def zendesk_connector(
    fake: FakeZendesk, read_comments: bool = True, **options: Any
) -> ZendeskConnector:
    settings = {
        "subdomain": "acme",
        "base_url": fake.base_url,
        "email": ZENDESK_EMAIL,
        "api_token": ZENDESK_TOKEN,
        "requests_per_minute": 100_000,
        "comment_requests_per_minute": 100_000,
        **options,
    }
    connector = ZendeskConnector("zendesk", ZendeskOptions.model_validate(settings))
    connector.read_comments = read_comments
    return connector


def test_zendesk_comments_are_read_only_when_asked_with_internal_notes_private(
    zd: FakeZendesk,
) -> None:
    zd.add(1, T0, description="The printer is jammed.")
    zd.comment(1, T0 + MINUTE, "Restarted it.", author_id=601)
    zd.comment(1, T0 + 2 * MINUTE, "Toner low, order more.", public=False, author_id=602)

    plain = tickets_of(pull_all(zendesk_connector(zd, read_comments=False)))
    assert plain["1"].comments is None
    assert zd.comment_gets() == []

    comments = tickets_of(pull_all(zendesk_connector(zd)))["1"].comments or []
    shown = [(c.body, c.author, c.author_id, c.public, c.created_at) for c in comments]
    assert shown == [  # the description is Zendesk's first comment
        ("The printer is jammed.", "Rita Requester", "501", True, T0 - dt.timedelta(hours=1)),
        ("Restarted it.", "Aaron Agent", "601", True, T0 + MINUTE),
        ("Toner low, order more.", "Nina Notes", "602", False, T0 + 2 * MINUTE),
    ]
    [asked] = zd.comment_gets()
    assert (asked.param("page[size]"), asked.param("include")) == ("100", "users")


def test_zendesk_each_ticket_costs_a_request_per_100_comments_and_has_more_ends_it(
    zd: FakeZendesk,
) -> None:
    for n in range(1, 4):
        zd.add(n, T0 + n * MINUTE)
    for k in range(149):  # with the description, 150: two pages, the second's next link unused
        zd.comment(2, T0 + 10 * MINUTE + k * dt.timedelta(seconds=1), f"reply {k}")
    zd.delete(3, T0 + 20 * MINUTE)

    tickets = tickets_of(pull_all(zendesk_connector(zd)))

    assert {k: None if t.comments is None else len(t.comments) for k, t in tickets.items()} == {
        "1": 1,
        "2": 150,
        "3": None,  # deleted: its task is archived, its comments not read
    }
    assert sorted(r.path.split("/")[4] for r in zd.comment_gets()) == ["1", "2", "2"]


def test_zendesk_a_ticket_deleted_before_its_comments_are_read_keeps_none(
    zd: FakeZendesk,
) -> None:
    for n in (1, 2, 3):
        zd.add(n, T0 + n * MINUTE)
    zd.when(
        lambda r: r.path == "/api/v2/tickets/2/comments.json",
        lambda: zd.tickets[2].update(status="deleted"),
    )

    tickets = tickets_of(pull_all(zendesk_connector(zd)))

    assert tickets["2"].comments is None
    assert [len(tickets[k].comments or []) for k in ("1", "3")] == [1, 1]


def test_zendesk_a_429_on_comments_waits_its_retry_after(zd: FakeZendesk) -> None:
    zd.add(1, T0)
    zd.fail_next(
        Reply(429, RATE_LIMITED_BODY, headers={"Retry-After": "1"}),
        when=lambda r: r.path.endswith("/comments.json"),
    )

    tickets = tickets_of(pull_all(zendesk_connector(zd)))

    assert len(tickets["1"].comments or []) == 1
    refused, answered = zd.comment_gets()
    assert answered.at - refused.at >= 0.9


# ServiceNow: one sys_journal_field query per 100 tickets, whatever their comments

SNOW_USER, SNOW_PASSWORD = "fragment.sync", "snow-pass-81d2"


@pytest.fixture
def snow() -> Iterator[FakeServiceNow]:
    with FakeServiceNow(SNOW_USER, SNOW_PASSWORD, "snow-oauth-5e77c0") as fake:
        yield fake


def servicenow_connector(
    fake: FakeServiceNow, read_comments: bool = True, **options: Any
) -> ServiceNowConnector:
    settings = {
        "base_url": fake.base_url,
        "username": SNOW_USER,
        "password": SNOW_PASSWORD,
        **options,
    }
    connector = ServiceNowConnector("servicenow", ServiceNowOptions.model_validate(settings))
    connector.read_comments = read_comments
    return connector


def test_servicenow_comments_are_public_and_work_notes_private_read_only_when_asked(
    snow: FakeServiceNow,
) -> None:
    snow.add(1, T0)
    snow.journal(1, T0 + MINUTE, "Restarted the printer.", by="beth.anglin")
    snow.journal(1, T0 + 2 * MINUTE, "Vendor ticket 4411 opened.", element="work_notes", by="itil")

    plain = tickets_of(pull_all(servicenow_connector(snow, read_comments=False)))
    assert plain[sys_id_of(1)].comments is None
    assert snow.journal_gets() == []

    comments = tickets_of(pull_all(servicenow_connector(snow)))[sys_id_of(1)].comments or []
    shown = [(c.body, c.author, c.author_id, c.public, c.created_at) for c in comments]
    assert shown == [
        ("Restarted the printer.", "beth.anglin", None, True, T0 + MINUTE),
        ("Vendor ticket 4411 opened.", "itil", None, False, T0 + 2 * MINUTE),
    ]


def test_servicenow_reads_the_journal_of_100_tickets_per_request_not_one_per_ticket(
    snow: FakeServiceNow,
) -> None:
    for n in range(1, 251):
        snow.add(n, T0 + n * dt.timedelta(seconds=1))
    for n in (3, 150, 250):
        snow.journal(n, T0 + 10 * MINUTE, f"on {n}", touch=False)
        snow.journal(n, T0 + 11 * MINUTE, f"note on {n}", element="work_notes", touch=False)

    tickets = tickets_of(pull_all(servicenow_connector(snow, page_size=500)))

    assert len(tickets) == 250
    with_comments = {k: len(t.comments or []) for k, t in tickets.items() if t.comments}
    assert with_comments == {sys_id_of(n): 2 for n in (3, 150, 250)}
    assert all(t.comments == [] for k, t in tickets.items() if k not in with_comments)
    asked = snow.journal_gets()
    assert len(asked) == 3  # 250 tickets: 100 + 100 + 50 sys_ids, one query each
    query = asked[0].param("sysparm_query") or ""
    assert query.startswith("element_idIN")
    assert "^elementINcomments,work_notes^ORDERBYsys_created_on" in query


def test_servicenow_journal_entries_past_a_page_are_read_on_the_next(
    snow: FakeServiceNow, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(servicenow, "JOURNAL_PAGE", 3)
    snow.add(1, T0)
    snow.add(2, T0 + MINUTE)
    for k in range(4):
        snow.journal(1, T0 + k * MINUTE, f"one {k}", touch=False)
        snow.journal(2, T0 + k * MINUTE, f"two {k}", touch=False)

    tickets = tickets_of(pull_all(servicenow_connector(snow)))

    assert [c.body for c in tickets[sys_id_of(1)].comments or []] == [f"one {k}" for k in range(4)]
    assert [c.body for c in tickets[sys_id_of(2)].comments or []] == [f"two {k}" for k in range(4)]
    offsets = [r.param("sysparm_offset") for r in snow.journal_gets()]
    assert offsets == ["0", "3", "6"]  # 8 entries, 3 a page; X-Total-Count ends it


def test_servicenow_a_429_on_the_journal_waits_its_retry_after(snow: FakeServiceNow) -> None:
    snow.add(1, T0)
    snow.journal(1, T0 + MINUTE, "after the wait")
    snow.fail_next(snow.rate_limited(1), when=lambda r: r.path.endswith("sys_journal_field"))

    tickets = tickets_of(pull_all(servicenow_connector(snow)))

    assert [c.body for c in tickets[sys_id_of(1)].comments or []] == ["after the wait"]
    refused, answered = snow.journal_gets()
    assert answered.at - refused.at >= 0.9


def test_servicenow_an_entry_without_a_time_fails_its_ticket_only(snow: FakeServiceNow) -> None:
    snow.add(1, T0)
    snow.add(2, T0 + MINUTE)
    snow.journal(1, T0, "fine", touch=False)
    snow.journal(2, T0, "broken", touch=False)["sys_created_on"] = ""

    items = pull_all(servicenow_connector(snow))

    [bad] = [i for i in items if isinstance(i, BadRecord)]
    assert (bad.source_id, bad.field) == (sys_id_of(2), "comments.0.sys_created_on")
    assert [c.body for c in tickets_of(items)[sys_id_of(1)].comments or []] == ["fine"]


def test_servicenow_a_journal_the_user_may_not_read_fails_the_pass_naming_the_table(
    snow: FakeServiceNow,
) -> None:
    snow.add(1, T0)
    snow.fail_next(
        Reply(
            403,
            {
                "error": {
                    "message": "User Not Authorized",
                    "detail": "ACL Exception Read Failed due to security constraints",
                },
                "status": "failure",
            },
        ),
        when=lambda r: r.path.endswith("sys_journal_field"),
    )

    with pytest.raises(SourceError) as failed:
        pull_all(servicenow_connector(snow))

    assert "/api/now/table/sys_journal_field answered 403" in str(failed.value)
    assert "ACL Exception Read Failed" in str(failed.value)


def test_zendesk_a_comment_page_linking_to_another_origin_is_not_followed(
    zd: FakeZendesk,
) -> None:
    zd.add(1, T0)
    for k in range(3):
        zd.comment(1, T0 + k * MINUTE, f"reply {k}")
    with FakeZendesk(ZENDESK_EMAIL, ZENDESK_TOKEN) as elsewhere:

        def lure(request: Any) -> Reply | None:
            if not request.path.endswith("/comments.json"):
                return None
            return Reply(
                200,
                {
                    "comments": [],
                    "meta": {"has_more": True, "after_cursor": "x", "before_cursor": None},
                    "links": {"next": f"{elsewhere.base_url}/api/v2/tickets/1/comments.json"},
                },
            )

        zd.faults.append(lure)
        with pytest.raises(SourceError) as failed:
            pull_all(zendesk_connector(zd))

        assert "not on" in str(failed.value) and "credentials go there only" in str(failed.value)
        assert elsewhere.requests == []  # nothing, credentials least of all, was sent there
