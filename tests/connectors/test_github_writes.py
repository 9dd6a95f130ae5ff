"""GitHub write-back: `GitHubConnector.write` against `fakes.github`, and one run end to end.

The fake answers "Update an issue" as GitHub documents it (see its docstring):
the connector finds the issue's repository and number from its id, reads it,
and sends only what differs.
"""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from connectors import github
from connectors.base import TicketWrite
from connectors.errors import FixConfiguration, WriteConflict, WriteRefused
from connectors.github import GitHubConnector, GitHubOptions
from fakes.github import FakeGitHub
from fragment_emulator import Emulator
from sync.config import build_config
from sync.mapping import task_uid
from sync.run import RunSummary, run_once
from sync.state import StateStore
from sync.state.write_back import WriteBackLedger
from synckit import TOKEN, tasks_by_ticket

GITHUB_TOKEN = "github_pat_11AAFAKE0123456789"
T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def _a_fresh_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with a process that has read no issue and remembers no place."""
    monkeypatch.setattr(github, "_REMEMBERED_PAGES", {})
    monkeypatch.setattr(github, "_ISSUE_PLACES", OrderedDict())


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    with FakeGitHub(GITHUB_TOKEN) as server:
        server.assignable = {"ana-ops", "bo-dev"}
        for issue_id in (1, 2, 3):
            server.add(issue_id, T0 + dt.timedelta(minutes=issue_id))
        yield server


@pytest.fixture
def connector(fake: FakeGitHub) -> Iterator[GitHubConnector]:
    options = {"base_url": fake.base_url, "repository": fake.repository, "token": GITHUB_TOKEN}
    source = GitHubConnector("issues", GitHubOptions.model_validate(options))
    yield source
    source.close()


def patches(fake: FakeGitHub) -> list[Any]:
    return [body for _, body in fake.writes]


def test_done_closes_the_issue_as_completed_and_writing_it_again_sends_nothing(
    fake: FakeGitHub, connector: GitHubConnector
) -> None:
    connector.write(TicketWrite("2", status="closed"))
    connector.write(TicketWrite("2", status="Closed"))  # a repeat, any case

    assert (fake.issues[2]["state"], fake.issues[2]["state_reason"]) == ("closed", "completed")
    assert patches(fake) == [{"state": "closed", "state_reason": "completed"}]
    # Found by id through one GraphQL search, then remembered: no second search.
    assert len(fake.graphql_queries) == 1


def test_not_planned_closes_with_that_reason_and_open_on_an_open_issue_sends_nothing(
    fake: FakeGitHub, connector: GitHubConnector
) -> None:
    connector.write(TicketWrite("1", status="open"))
    connector.write(TicketWrite("3", status="closed (not_planned)"))

    assert fake.issues[1]["state"] == "open"
    assert fake.issues[3]["state_reason"] == "not_planned"
    assert [issue_id for issue_id, _ in fake.writes] == [3]


def test_an_issue_the_source_closed_stays_closed_as_a_conflict(
    fake: FakeGitHub, connector: GitHubConnector
) -> None:
    fake.touch(1, T0 + dt.timedelta(hours=1), state="closed", state_reason="not_planned")

    with pytest.raises(WriteConflict) as conflict:
        connector.write(TicketWrite("1", status="open"))
    connector.write(TicketWrite("1", status="closed"))  # closed already: nothing to do

    assert "'closed (not_planned)' on GitHub" in str(conflict.value)
    assert "the source closed it" in str(conflict.value)
    assert (fake.issues[1]["state"], fake.issues[1]["state_reason"]) == ("closed", "not_planned")
    assert fake.writes == []


def test_an_assignee_replaces_the_assignees_none_clears_them_a_repeat_sends_nothing(
    fake: FakeGitHub, connector: GitHubConnector
) -> None:
    fake.touch(2, T0, assignees=[{"login": "ana-ops"}, {"login": "bo-dev"}])

    connector.write(TicketWrite("2", assign=True, assignee_id="Bo-Dev"))
    connector.write(TicketWrite("2", assign=True, assignee_id="bo-dev"))
    assert [u["login"] for u in fake.issues[2]["assignees"]] == ["Bo-Dev"]

    connector.write(TicketWrite("2", assign=True, assignee_id=None))
    assert fake.issues[2]["assignees"] == [] and fake.issues[2]["assignee"] is None
    assert patches(fake) == [{"assignees": ["Bo-Dev"]}, {"assignees": []}]


def test_a_login_github_wont_assign_is_refused_in_githubs_words(
    fake: FakeGitHub, connector: GitHubConnector
) -> None:
    with pytest.raises(WriteRefused) as refused:
        connector.write(TicketWrite("3", assign=True, assignee_id="stranger"))

    message = str(refused.value)
    assert "ticket '3'" in message and "field 'assignee'" in message
    assert "'stranger'" in message
    assert "GitHub answered 422: Validation Failed" in message
    assert "field='assignees' code='invalid'" in message
    assert fake.issues[3]["assignees"] == []


def test_a_token_without_write_access_is_refused_naming_githubs_message(
    fake: FakeGitHub, connector: GitHubConnector
) -> None:
    fake.read_only = True

    with pytest.raises(WriteRefused) as refused:
        connector.write(TicketWrite("2", status="closed"))

    assert not isinstance(refused.value, WriteConflict)
    assert "403: Resource not accessible by personal access token" in str(refused.value)
    assert fake.issues[2]["state"] == "open"


def test_a_deleted_issue_and_disabled_issues_are_refused_as_gone(
    fake: FakeGitHub, connector: GitHubConnector
) -> None:
    connector.write(TicketWrite("3", status="open"))  # learns where issues 1 to 3 live
    fake.delete(3)
    with pytest.raises(WriteRefused) as deleted:
        connector.write(TicketWrite("3", status="closed"))
    fake.issues_disabled.add(fake.repository)
    with pytest.raises(WriteRefused) as disabled:
        connector.write(TicketWrite("1", status="closed"))
    with pytest.raises(WriteRefused) as unknown:
        connector.write(TicketWrite("77", status="closed"))  # in no configured repository

    assert "gone: GitHub answered 410: This issue was deleted" in str(deleted.value)
    assert "410: Issues are disabled for this repo" in str(disabled.value)
    assert "the issue is gone" in str(unknown.value)


def test_an_issue_transferred_since_it_was_read_is_refused_not_written_in_its_new_home(
    fake: FakeGitHub, connector: GitHubConnector
) -> None:
    fake.add_repository("octo-org/infra")
    connector.write(TicketWrite("2", status="open"))  # learns where issue 2 lives
    fake.transfer(2, "octo-org/infra", new_id=902, updated=T0 + dt.timedelta(hours=1))

    with pytest.raises(WriteRefused) as refused:
        connector.write(TicketWrite("2", status="closed"))

    assert "the issue was transferred" in str(refused.value)
    assert "github.com/octo-org/infra/issues/1" in str(refused.value)
    assert fake.issues[902]["state"] == "open"
    assert fake.writes == []


def test_places_remembered_are_bounded_the_oldest_forgotten_first(
    monkeypatch: pytest.MonkeyPatch, fake: FakeGitHub, connector: GitHubConnector
) -> None:
    monkeypatch.setattr(github, "REMEMBERED_PLACES", 2)

    list(connector.pull(None))  # issues 1, 2, 3, oldest change first

    assert list(github._ISSUE_PLACES) == [(fake.base_url, "2"), (fake.base_url, "3")]


def test_an_issue_of_a_second_repository_is_written_there(fake: FakeGitHub) -> None:
    fake.add_repository("octo-org/infra")
    fake.add(40, T0, number=7, repository="octo-org/infra")
    options = {
        "base_url": fake.base_url,
        "repositories": [fake.repository, "octo-org/infra"],
        "token": GITHUB_TOKEN,
    }
    source = GitHubConnector("issues", GitHubOptions.model_validate(options))
    try:
        source.write(TicketWrite("40", status="closed"))
    finally:
        source.close()

    assert fake.issues[40]["state"] == "closed"
    [patch] = [r for r in fake.requests if r.method == "PATCH"]
    assert patch.path == "/repos/octo-org/infra/issues/7"


def test_an_issue_a_pass_read_is_written_without_a_search(
    fake: FakeGitHub, connector: GitHubConnector
) -> None:
    list(connector.pull(None))

    connector.write(TicketWrite("1", status="closed"))

    assert fake.graphql_queries == []
    assert fake.issues[1]["state"] == "closed"


def test_a_status_github_doesnt_have_names_the_key(connector: GitHubConnector) -> None:
    with pytest.raises(FixConfiguration) as unknown:
        connector.write(TicketWrite("1", status="Resolved"))

    assert unknown.value.key == "connectors.issues.write_back.status"
    assert "'Resolved'" in str(unknown.value) and "closed (not_planned)" in str(unknown.value)


# The engine: run --once writes back, then pushes what it wrote


def test_an_operators_done_closes_the_issue_once_and_the_next_run_sends_nothing(
    fake: FakeGitHub, emulator: Emulator, sqlite_url: str
) -> None:
    fake.touch(3, T0 + dt.timedelta(minutes=3), state="closed", state_reason="completed")
    config = build_config(
        {
            "fragment": {"url": emulator.base_url, "token": TOKEN, "requests_per_minute": 10**5},
            "state": {"url": sqlite_url},
            "connectors": {
                "issues": {
                    "kind": "github",
                    "base_url": fake.base_url,
                    "repository": fake.repository,
                    "token": GITHUB_TOKEN,
                    "write_back": {"status": {"DONE": "closed", "TODO": "open"}},
                }
            },
        },
        source="test",
    )
    with StateStore.open(sqlite_url) as store:

        def one_run() -> RunSummary:
            [summary] = run_once(config, store)
            assert summary.outcome == "ok", summary.error
            return summary

        assert one_run().pushed == 3
        with httpx.Client(
            base_url=emulator.base_url, headers={"Authorization": f"Bearer {TOKEN}"}
        ) as operator:
            for issue_id, status in (("2", "DONE"), ("3", "TODO")):  # 3: GitHub closed it
                answer = operator.patch(
                    f"/tasks/{task_uid('issues', issue_id)}", json={"status": status}
                )
                assert answer.status_code == 200, answer.text

        first = one_run()
        second = one_run()

        assert (fake.issues[2]["state"], fake.issues[2]["state_reason"]) == ("closed", "completed")
        assert [issue_id for issue_id, _ in fake.writes] == [2]
        assert first.pushed == 1  # the closed issue, as GitHub now shows it
        assert tasks_by_ticket(emulator)["2"]["status"] == "DONE"
        assert second.pushed == 0 and len(fake.writes) == 1
        assert fake.issues[3]["state"] == "closed"
        [conflict] = WriteBackLedger(store).rows("issues")
        assert conflict.source_id == "3" and conflict.conflict is not None
        assert "the source closed it" in conflict.conflict


def test_an_operators_reassignment_sets_the_issues_assignee_by_login_and_settles(
    fake: FakeGitHub, emulator: Emulator, sqlite_url: str
) -> None:
    """The people cache holds logins: the email Fragment shows becomes the login written."""
    fake.add_user("ana-ops", "Ana Ops", "ana@example.com")
    fake.add_user("bo-dev", "Bo Dev", "bo@example.com")
    fake.touch(1, T0 + dt.timedelta(minutes=1), assignees=[{"login": "ana-ops"}])
    fake.issues[1]["assignee"] = {"login": "ana-ops"}
    fake.touch(3, T0 + dt.timedelta(minutes=3), assignees=[{"login": "bo-dev"}])
    fake.issues[3]["assignee"] = {"login": "bo-dev"}
    config = build_config(
        {
            "fragment": {"url": emulator.base_url, "token": TOKEN, "requests_per_minute": 10**5},
            "state": {"url": sqlite_url},
            "connectors": {
                "issues": {
                    "kind": "github",
                    "base_url": fake.base_url,
                    "repository": fake.repository,
                    "token": GITHUB_TOKEN,
                    "write_back": {"status": {"DONE": "closed"}, "assignee": True},
                }
            },
        },
        source="test",
    )
    with StateStore.open(sqlite_url) as store:

        def one_run() -> RunSummary:
            [summary] = run_once(config, store)
            assert summary.outcome == "ok", summary.error
            return summary

        one_run()
        with httpx.Client(
            base_url=emulator.base_url, headers={"Authorization": f"Bearer {TOKEN}"}
        ) as operator:
            uid = task_uid("issues", "1")
            answer = operator.patch(f"/tasks/{uid}", json={"assignee_email": "bo@example.com"})
            assert answer.status_code == 200, answer.text

        first = one_run()
        second = one_run()

        assert [u["login"] for u in fake.issues[1]["assignees"]] == ["bo-dev"]
        assert patches(fake) == [{"assignees": ["bo-dev"]}]
        assert first.pushed == 1 and second.pushed == 0
        assert tasks_by_ticket(emulator)["1"]["assignee"]["email"] == "bo@example.com"
        assert WriteBackLedger(store).rows("issues") == []
