"""Redmine's journals as the task's comment fields, over the fake: one show request per issue
read, private notes left out, a journal that can't be read failing its issue only."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fakes.redmine import FakeRedmine, stamp
from fakes.suite import T0
from fragment_emulator import Emulator
from sync.config import Config, build_config
from sync.run import RunOptions, RunSummary, run_once
from sync.state import StateStore
from synckit import TOKEN, tasks_by_ticket

API_KEY = "redmine-key-5b0c11"


def _config(fake: FakeRedmine, emulator: Emulator, state_url: str, **settings: Any) -> Config:
    options = {
        "kind": "redmine",
        "base_url": fake.base_url,
        "api_key": API_KEY,
        "max_attempts": 2,
        "max_retry_wait": "1s",
        "requests_per_minute": 100_000,
        **settings,
    }
    raw = {
        "fragment": {"url": emulator.base_url, "token": TOKEN, "requests_per_minute": 100_000},
        "state": {"url": state_url},
        "connectors": {"tracker": options},
    }
    return build_config(raw, source="test")


def _sync(config: Config, **options: Any) -> RunSummary:
    store = StateStore.open(config.state.url)
    try:
        [summary] = run_once(config, store, options=RunOptions(**options))
    finally:
        store.close()
    return summary


def _shows(fake: FakeRedmine) -> list[str]:
    return [r.path for r in fake.requests if r.path.startswith("/issues/")]


def _at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


ON = {"conversation": {"enabled": True}}


def test_journal_notes_become_the_comment_fields_with_one_request_per_issue_read(
    emulator: Emulator, sqlite_url: str
) -> None:
    with FakeRedmine(API_KEY) as fake:
        for number in (1, 2, 3):
            fake.add(number, _at(number))
        fake.note(1, "Rebooted the   printer.", user=(7, "Bob Field"), updated=_at(10))
        fake.note(1, "", updated=_at(11), details=[{"property": "attr", "name": "status_id"}])
        fake.note(1, "Customer is a VIP", private=True, updated=_at(12))
        config = _config(fake, emulator, sqlite_url, **ON)

        first = _sync(config)

        assert first.ok and first.pushed == 3
        assert sorted(_shows(fake)) == ["/issues/1.json", "/issues/2.json", "/issues/3.json"]
        assert {r.param("include") for r in fake.requests if r.path != "/issues.json"} == {
            "journals"
        }
        landed = tasks_by_ticket(emulator)
        assert {k: landed[k]["fields"]["comment_count"] for k in landed} == {"1": 1, "2": 0, "3": 0}
        fields = landed["1"]["fields"]
        assert fields["last_comment"] == "Rebooted the printer."
        assert fields["last_comment_author"] == "Bob Field"
        assert fields["last_comment_at"] == stamp(_at(10))

        shown = len(_shows(fake))
        fake.note(2, "Toner ordered.", user=(9, "Carol Desk"), updated=_at(20))
        second = _sync(config)

        assert second.ok and second.pushed == 1
        # The issue the note changed, and those the lookback reads again: never all of them.
        assert "/issues/2.json" in _shows(fake)[shown:]
        assert len(_shows(fake)[shown:]) == second.pulled < 3
        fields = tasks_by_ticket(emulator)["2"]["fields"]
        assert (fields["comment_count"], fields["last_comment_author"]) == (1, "Carol Desk")


def test_private_notes_count_when_the_conversation_says_so(
    emulator: Emulator, sqlite_url: str
) -> None:
    with FakeRedmine(API_KEY) as fake:
        fake.add(1, _at(1))
        fake.note(1, "Public reply", updated=_at(2))
        fake.note(1, "Internal: refund approved", private=True, updated=_at(3))
        config = _config(
            fake, emulator, sqlite_url, conversation={"private": True, "enabled": True}
        )

        assert _sync(config).ok

        fields = tasks_by_ticket(emulator)["1"]["fields"]
        assert (fields["comment_count"], fields["last_comment"]) == (2, "Internal: refund approved")


def test_journals_cost_requests_so_they_are_read_only_when_enabled(
    emulator: Emulator, sqlite_url: str
) -> None:
    from sync.census import census_once

    with FakeRedmine(API_KEY) as fake:
        fake.add(1, _at(1))
        fake.note(1, "Hello", updated=_at(2))
        config = _config(fake, emulator, sqlite_url)
        assert not config.connectors["tracker"].reads_comments

        assert _sync(config).ok
        assert "comment_count" not in tasks_by_ticket(emulator)["1"]["fields"]

        with StateStore.open(sqlite_url) as store:
            [census] = census_once(_config(fake, emulator, sqlite_url, **ON), store, ["tracker"])

        assert census.ok
        assert _shows(fake) == []  # neither the pass nor a census, even with it on


def test_a_journal_that_cant_be_read_fails_its_issue_and_the_pass_goes_on(
    emulator: Emulator, sqlite_url: str
) -> None:
    with FakeRedmine(API_KEY) as fake:
        fake.add(1, _at(1))
        fake.add(2, _at(2))
        fake.note(2, "Broken", updated=_at(3))
        fake.journals[2][0]["created_on"] = None

        summary = _sync(_config(fake, emulator, sqlite_url, **ON))

    assert summary.ok and (summary.pushed, summary.failed) == (1, 1)
    with StateStore.open(sqlite_url) as store:
        [item] = store.failed_items("tracker")
    assert (item.source_id, item.field) == ("2", "journals.0.created_on")
    assert "connector 'tracker'" in item.error and "ticket 2" in item.error
    assert set(tasks_by_ticket(emulator)) == {"1"}


def test_an_issue_deleted_between_the_listing_and_its_journals_is_left_out(
    emulator: Emulator, sqlite_url: str
) -> None:
    with FakeRedmine(API_KEY) as fake:
        for number in (1, 2, 3):
            fake.add(number, _at(number))
        # Deleted once the listing has named it: its journals answer 404.
        fake.when(lambda request: request.path == "/issues/2.json", lambda: fake.delete(2))

        summary = _sync(_config(fake, emulator, sqlite_url, **ON))

    assert summary.ok, summary.error
    assert (summary.pushed, summary.failed) == (2, 0)
    assert set(tasks_by_ticket(emulator)) == {"1", "3"}
