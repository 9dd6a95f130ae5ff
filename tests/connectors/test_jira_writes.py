"""Jira write-back: `JiraConnector.write` against the fake's workflow, and through `run_once`.

The fake's workflow (`fakes.jira.DEFAULT_WORKFLOW`) is small on purpose: To Do
may go to In Progress or Done, In Review only to Done or back to In Progress,
Done only to To Do (a reopen) or Won't Do. Each write the fake receives is
kept, so a test can count what the connector sent.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import closing

import httpx
import pytest

from connectors.base import TicketWrite
from connectors.errors import FixConfiguration, WriteConflict, WriteRefused
from connectors.jira import JiraConnector, JiraOptions
from fakes.jira import FakeJira
from fragment_emulator import Emulator
from sync.config import build_config
from sync.mapping import task_uid
from sync.run import RunSummary, run_once
from sync.state import StateStore
from sync.state.write_back import WriteBackLedger
from synckit import TOKEN, tasks_by_ticket

EMAIL = "ops-bot@example.com"
API_TOKEN = "jira-token-4f2a9c"
T0 = dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def server() -> Iterator[FakeJira]:
    fake = FakeJira(EMAIL, API_TOKEN)
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def fake(server: FakeJira) -> FakeJira:
    server.reset()
    server.add_user("acct-bob", "Bob Builder", "bob@example.com")
    server.add_user("acct-eve", "Eve External", "eve@example.com")
    server.unassignable.add("acct-eve")
    return server


@pytest.fixture
def jira(fake: FakeJira) -> Iterator[JiraConnector]:
    options = {
        "base_url": fake.base_url,
        "email": EMAIL,
        "api_token": API_TOKEN,
        "jql": "project = OPS",
        "rate_limit_floor": "100ms",
        "max_retry_wait": "10s",
    }
    with closing(JiraConnector("jira", JiraOptions.model_validate(options))) as source:
        yield source


def status(fake: FakeJira, number: int) -> str:
    value: str = fake.issues[str(number)].fields["status"]
    return value


def test_a_status_is_reached_by_its_transition_and_writing_it_again_sends_nothing(
    fake: FakeJira, jira: JiraConnector
) -> None:
    fake.add(1, T0)

    jira.write(TicketWrite("1", status="In Progress"))
    jira.write(TicketWrite("1", status="in progress"))  # a repeat, any case

    assert status(fake, 1) == "In Progress"
    assert fake.writes == [("POST", "1", {"transition": {"id": "11"}})]
    assert fake.issues["1"].updated > T0  # a transition is an edit: the next pull reads it


def test_a_status_no_transition_reaches_is_refused_naming_where_the_issue_may_go(
    fake: FakeJira, jira: JiraConnector
) -> None:
    fake.add(2, T0, status="In Review")

    with pytest.raises(WriteRefused) as refused:
        jira.write(TicketWrite("2", status="To Do"))

    message = str(refused.value)
    assert not isinstance(refused.value, WriteConflict)
    assert "ticket '2'" in message and "field 'status'" in message and "'To Do'" in message
    assert (
        "from 'In Review'" in message and "(the issue may go to: 'Done', 'In Progress')" in message
    )
    assert refused.value.target == "To Do"
    assert fake.writes == [] and status(fake, 2) == "In Review"


def test_an_account_offered_no_transition_at_all_is_told_of_the_permission(
    fake: FakeJira, jira: JiraConnector
) -> None:
    fake.add(8, T0)
    fake.workflow["To Do"] = []  # what Jira lists for an account without Transition issues

    with pytest.raises(WriteRefused) as refused:
        jira.write(TicketWrite("8", status="Done"))

    assert "may go to: no status; does the account have the Transition issues" in str(refused.value)
    assert fake.writes == []


def test_a_transition_whose_screen_requires_a_field_is_refused_in_jiras_words(
    fake: FakeJira, jira: JiraConnector
) -> None:
    fake.add(3, T0)
    fake.require_on_transition("51", "resolution", "Resolution is required.")

    with pytest.raises(WriteRefused) as refused:
        jira.write(TicketWrite("3", status="Done"))

    assert "Jira answered 400: resolution: Resolution is required." in str(refused.value)
    assert "field 'status'" in str(refused.value)
    assert [method for method, _, _ in fake.writes] == ["POST"]
    assert status(fake, 3) == "To Do"


def test_a_done_issue_stays_closed_as_a_conflict_but_may_move_to_another_done_status(
    fake: FakeJira, jira: JiraConnector
) -> None:
    fake.add(4, T0, status="Done")

    with pytest.raises(WriteConflict) as reopen:  # a Reopen transition exists: not taken
        jira.write(TicketWrite("4", status="To Do"))
    with pytest.raises(WriteConflict) as unreachable:  # no transition, and not done either
        jira.write(TicketWrite("4", status="In Progress"))
    assert fake.writes == [] and status(fake, 4) == "Done"

    jira.write(TicketWrite("4", status="Won't Do"))

    assert "'Done' in Jira, a status of the done category" in str(reopen.value)
    assert unreachable.value.target == "In Progress"
    assert status(fake, 4) == "Won't Do"
    assert fake.writes == [("POST", "4", {"transition": {"id": "81"}})]


def test_a_deleted_issue_is_refused_as_gone_and_an_unknown_status_names_the_key(
    fake: FakeJira, jira: JiraConnector
) -> None:
    fake.add(5, T0)

    with pytest.raises(FixConfiguration) as unknown:
        jira.write(TicketWrite("5", status="Done-ish"))
    fake.delete(5)
    with pytest.raises(WriteRefused) as gone:
        jira.write(TicketWrite("5", status="Done"))

    assert unknown.value.key == "connectors.jira.write_back.status"
    assert "'Done-ish'" in str(unknown.value) and "won't do" in str(unknown.value)
    assert "gone" in str(gone.value) and "404" in str(gone.value)
    assert fake.writes == []


def test_an_assignee_lands_an_unassignable_one_is_refused_in_jiras_words_and_none_unassigns(
    fake: FakeJira, jira: JiraConnector
) -> None:
    fake.add(6, T0)

    jira.write(TicketWrite("6", assign=True, assignee_id="acct-bob"))
    jira.write(TicketWrite("6", assign=True, assignee_id="acct-bob"))  # already: nothing sent
    assert fake.issues["6"].fields["assignee"] == "acct-bob"
    with pytest.raises(WriteRefused) as refused:
        jira.write(TicketWrite("6", assign=True, assignee_id="acct-eve"))
    jira.write(TicketWrite("6", assign=True, assignee_id=None))

    assert "field 'assignee'" in str(refused.value)
    assert "User 'acct-eve' cannot be assigned issues." in str(refused.value)
    assert fake.issues["6"].fields["assignee"] is None
    assert [body for _, _, body in fake.writes] == [
        {"accountId": "acct-bob"},
        {"accountId": "acct-eve"},
        {"accountId": None},
    ]


def test_a_rate_limited_transition_is_waited_out_and_made_once(
    fake: FakeJira, jira: JiraConnector
) -> None:
    fake.add(7, T0)
    fake.fail_next(fake.rate_limited(1), when=lambda r: r.method == "POST")

    jira.write(TicketWrite("7", status="Done"))

    assert status(fake, 7) == "Done"
    posts = [r for r in fake.requests if r.method == "POST"]
    assert len(posts) == 2  # the 429, then the transition
    assert len(fake.writes) == 1


# Through the engine: write-back, then the forward pass


def test_an_operators_done_transitions_the_issue_once_and_the_next_run_sends_nothing(
    fake: FakeJira, emulator: Emulator, sqlite_url: str
) -> None:
    """PATCH two tasks in Fragment: one run makes the transition Jira allows (and pushes
    the issue as Jira now shows it), refuses the one its workflow doesn't, names what it
    allows; the next run writes nothing and pushes nothing."""
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)
    fake.add(1, now)
    fake.add(2, now, status="In Review")
    config = build_config(
        {
            "fragment": {"url": emulator.base_url, "token": TOKEN, "requests_per_minute": 10**5},
            "state": {"url": sqlite_url},
            "connectors": {
                "jira": {
                    "kind": "jira",
                    "base_url": fake.base_url,
                    "email": EMAIL,
                    "api_token": API_TOKEN,
                    "jql": "project = OPS",
                    "write_back": {"status": {"DONE": "Done", "TODO": "To Do"}},
                }
            },
        },
        source="test",
    )
    with StateStore.open(sqlite_url) as store:

        def one_run() -> RunSummary:
            [summary] = run_once(config, store)  # write-back, then the forward pass
            assert summary.outcome == "ok", summary.error
            return summary

        assert one_run().pushed == 2
        for number, wanted in ((1, "DONE"), (2, "TODO")):
            answer = httpx.patch(
                f"{emulator.base_url}/tasks/{task_uid('jira', str(number))}",
                json={"status": wanted},
                headers={"Authorization": f"Bearer {TOKEN}"},
            )
            assert answer.status_code == 200, answer.text

        first = one_run()
        writes = list(fake.writes)
        settled = one_run()

        assert status(fake, 1) == "Done" and status(fake, 2) == "In Review"
        assert writes == [("POST", "1", {"transition": {"id": "51"}})]
        assert first.pushed == 1  # issue 1 as Jira now shows it
        task = tasks_by_ticket(emulator)["1"]
        assert task["status"] == "DONE" and task["fields"]["source_status"] == "Done"
        assert settled.pushed == 0 and fake.writes == writes  # nothing written twice
        [refused] = WriteBackLedger(store).rows("jira")
        assert refused.source_id == "2" and refused.field == "status"
        assert refused.error is not None and "from 'In Review'" in refused.error
        assert "'Done', 'In Progress'" in refused.error
