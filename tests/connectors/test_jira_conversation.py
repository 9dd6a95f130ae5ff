"""Jira's comments as the task's comment fields, over the fake: from the search's `comment`
field at no extra request, the rest read only for an issue whose list the search cut."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest

from connectors.jira import adf_text
from fakes.jira import SEARCH, FakeJira
from fakes.suite import T0
from fragment_emulator import Emulator
from sync.config import Config, build_config
from sync.run import RunOptions, RunSummary, run_once
from sync.state import StateStore
from synckit import TOKEN, tasks_by_ticket

EMAIL = "ops-bot@example.com"
API_TOKEN = "jira-token-4f2a9c"


@pytest.fixture
def fake() -> Iterator[FakeJira]:
    with FakeJira(EMAIL, API_TOKEN) as server:
        yield server


def _config(fake: FakeJira, emulator: Emulator, state_url: str, **settings: Any) -> Config:
    options = {
        "kind": "jira",
        "base_url": fake.base_url,
        "email": EMAIL,
        "api_token": API_TOKEN,
        "jql": "project = OPS",
        "requests_per_minute": 100_000,
        **settings,
    }
    raw = {
        "fragment": {"url": emulator.base_url, "token": TOKEN, "requests_per_minute": 100_000},
        "state": {"url": state_url},
        "connectors": {"ops": options},
    }
    return build_config(raw, source="test")


def _sync(config: Config) -> RunSummary:
    store = StateStore.open(config.state.url)
    try:
        [summary] = run_once(config, store, options=RunOptions())
    finally:
        store.close()
    return summary


def _at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def _comment_requests(fake: FakeJira) -> list[Any]:
    return [r for r in fake.requests if r.path.endswith("/comment")]


def test_comments_come_with_the_search_and_internal_ones_stay_out(
    fake: FakeJira, emulator: Emulator, sqlite_url: str
) -> None:
    fake.add(1, _at(0))
    fake.add(2, _at(1))
    fake.comment(1, "First reply\nsecond line", _at(2), author="Bob Field", public=True)
    fake.comment(1, "Internal: escalate", _at(3), public=False)
    fake.comment(1, "Admins only", _at(4), visibility={"type": "role", "value": "Administrators"})
    config = _config(fake, emulator, sqlite_url)
    assert config.connectors["ops"].reads_comments  # on by default: it costs no request

    summary = _sync(config)

    assert summary.ok and summary.pushed == 2
    searches = [r for r in fake.requests if r.path == SEARCH]
    assert all("comment" in (r.param("fields") or "").split(",") for r in searches)
    assert _comment_requests(fake) == []
    landed = tasks_by_ticket(emulator)
    fields = landed["1"]["fields"]
    assert fields["comment_count"] == 1
    assert (fields["last_comment"], fields["last_comment_author"]) == (
        "First reply second line",
        "Bob Field",
    )
    assert fields["last_comment_at"] == "2026-11-02T09:02:00Z"
    assert landed["2"]["fields"]["comment_count"] == 0


def test_only_an_issue_whose_comments_the_search_cut_costs_a_request(
    fake: FakeJira, emulator: Emulator, sqlite_url: str
) -> None:
    fake.comments_in_search = 2
    fake.add(1, _at(0))
    fake.add(2, _at(0))
    for n in range(5):
        fake.comment(1, f"Reply {n}", _at(1 + n))
    fake.comment(2, "Only one", _at(1))

    assert _sync(_config(fake, emulator, sqlite_url)).ok

    [extra] = _comment_requests(fake)
    assert extra.path == "/rest/api/3/issue/1/comment"
    assert (extra.param("startAt"), extra.param("orderBy")) == ("2", "created")
    fields = tasks_by_ticket(emulator)["1"]["fields"]
    assert (fields["comment_count"], fields["last_comment"]) == (5, "Reply 4")


def test_with_the_conversation_off_the_search_asks_for_no_comments(
    fake: FakeJira, emulator: Emulator, sqlite_url: str
) -> None:
    fake.add(1, _at(0))
    fake.comment(1, "Hello", _at(1))
    config = _config(fake, emulator, sqlite_url, conversation={"enabled": False})

    assert _sync(config).ok

    searches = [r for r in fake.requests if r.path == SEARCH]
    assert not any("comment" in (r.param("fields") or "").split(",") for r in searches)
    assert "comment_count" not in tasks_by_ticket(emulator)["1"]["fields"]


def test_a_comment_that_cant_be_read_fails_its_issue_and_the_pass_goes_on(
    fake: FakeJira, emulator: Emulator, sqlite_url: str
) -> None:
    fake.add(1, _at(0))
    fake.add(2, _at(1))
    fake.comment(2, "Broken", _at(2))["created"] = "sometime"

    summary = _sync(_config(fake, emulator, sqlite_url))

    assert summary.ok and (summary.pushed, summary.failed) == (1, 1)
    with StateStore.open(sqlite_url) as store:
        [item] = store.failed_items("ops")
    assert (item.source_id, item.field) == ("2", "fields.comment.comments.0.created")
    assert "connector 'ops'" in item.error and "ticket 2" in item.error


def test_adf_text_reads_paragraphs_breaks_mentions_and_lists() -> None:
    document = {
        "type": "doc",
        "version": 1,
        "content": [
            {
                "type": "paragraph",
                "content": [
                    {"type": "mention", "attrs": {"id": "abc", "text": "@Ana"}},
                    {"type": "text", "text": " can you look?"},
                    {"type": "hardBreak"},
                    {"type": "text", "text": "Thanks", "marks": [{"type": "strong"}]},
                ],
            },
            {
                "type": "bulletList",
                "content": [
                    {
                        "type": "listItem",
                        "content": [
                            {"type": "paragraph", "content": [{"type": "text", "text": "one"}]}
                        ],
                    },
                    {
                        "type": "listItem",
                        "content": [
                            {"type": "paragraph", "content": [{"type": "text", "text": "two"}]}
                        ],
                    },
                ],
            },
            {"type": "paragraph", "content": [{"type": "emoji", "attrs": {"shortName": ":fire:"}}]},
        ],
    }

    assert adf_text(document).split() == [
        "@Ana", "can", "you", "look?", "Thanks", "one", "two", ":fire:",
    ]  # fmt: skip
    assert adf_text(document).splitlines()[:2] == ["@Ana can you look?", "Thanks"]


def test_an_issue_whose_comment_field_is_hidden_is_synced_without_the_summary(
    fake: FakeJira, emulator: Emulator, sqlite_url: str
) -> None:
    fake.add(1, _at(0))
    fake.hidden_fields = {"comment"}  # a field configuration hides it from this project

    summary = _sync(_config(fake, emulator, sqlite_url))

    assert summary.ok and (summary.pushed, summary.failed) == (1, 0)
    assert "comment_count" not in tasks_by_ticket(emulator)["1"]["fields"]
