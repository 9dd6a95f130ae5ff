"""Redmine write-back: `RedmineConnector.write`, asked of the real Redmine 5 and of the fake.

Each test runs twice, against the real server (alice, a Developer of a fresh
project, writes with her own key, so Redmine's workflow applies) and against
`fakes.redmine`, which must answer alike. The real server taught the fake its
quirk: a `status_id` the workflow forbids is dropped with a 204, so the
connector reads the allowed statuses first and refuses the write itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from connectors.base import TicketWrite
from connectors.errors import FixConfiguration, WriteConflict, WriteRefused
from connectors.redmine import RedmineConnector, RedmineOptions
from fakes.redmine import FakeRedmine
from fragment_emulator import Emulator
from redmine_real import RealRedmine, redmine_settings
from sync.config import build_config
from sync.mapping import task_uid
from sync.run import RunSummary, run_once
from sync.state import StateStore
from sync.state.write_back import WriteBackLedger
from synckit import TOKEN

pytestmark = pytest.mark.xdist_group("redmine_real")  # thin serves one request at a time

ADMIN_KEY = "a" * 40
ALICE_KEY = "b" * 40


class Workbench:
    """Issues to write back to, on the real server or on the fake, behind one interface.

    `admin` sets things up; `connector` writes with alice's key (not an admin's)."""

    def __init__(self, base_url: str, admin_key: str, alice_key: str, project: str) -> None:
        self.admin = httpx.Client(
            base_url=base_url, headers={"X-Redmine-API-Key": admin_key}, timeout=30
        )
        self.project = project
        self.connector = RedmineConnector(
            "helpdesk", RedmineOptions.model_validate({"base_url": base_url, "api_key": alice_key})
        )
        self.users: dict[str, int] = {}
        self.alice_key = alice_key
        self.fake: FakeRedmine | None = None
        self.puts = 0
        """PUTs the connector sent (counted by the fake, or from the journals on the real one)."""

    def create(self) -> int:
        if self.fake is not None:
            number = len(self.fake.issues) + 1
            self.fake.add(number, tracker={"id": 2, "name": "Feature"})
            return number
        trackers = self.admin.get("/trackers.json").json()["trackers"]
        feature = next(t["id"] for t in trackers if t["name"] == "Feature")
        issue = {"project_id": self.project, "subject": "Write back", "tracker_id": feature}
        created = self.admin.post("/issues.json", json={"issue": issue})
        assert created.status_code == 201, created.text
        number: int = created.json()["issue"]["id"]
        return number

    def set_status(self, number: int, name: str) -> None:
        statuses = self.admin.get("/issue_statuses.json").json()["issue_statuses"]
        status_id = next(s["id"] for s in statuses if s["name"] == name)
        answer = self.admin.put(f"/issues/{number}.json", json={"issue": {"status_id": status_id}})
        assert answer.status_code == 204, answer.text

    def delete(self, number: int) -> None:
        if self.fake is not None:
            self.fake.delete(number)
        else:
            assert self.admin.delete(f"/issues/{number}.json").status_code in (200, 204)

    def issue(self, number: int) -> dict[str, Any]:
        shown: dict[str, Any] = self.admin.get(
            f"/issues/{number}.json", params={"include": "journals"}
        ).json()["issue"]
        return shown

    def close(self) -> None:
        self.connector.close()
        self.admin.close()


def _real_workbench(request: pytest.FixtureRequest) -> Workbench:
    return _real_workbench_for(request.getfixturevalue("real_redmine"))


def _real_workbench_for(real: RealRedmine) -> Workbench:
    """A fresh project on the real server, alice and bob Developers in it."""
    alice_key = redmine_settings().get("REDMINE_USER_API_KEY")
    if not alice_key:
        pytest.fail("the real Redmine's env has no REDMINE_USER_API_KEY (alice's key)")
    project = real.new_project("writes")
    bench = Workbench(real.url, real.api_key, alice_key, project)
    roles = bench.admin.get("/roles.json").json()["roles"]
    developer = next(role["id"] for role in roles if role["name"] == "Developer")
    everyone = bench.admin.get("/users.json", params={"limit": 100}).json()["users"]
    bench.users = {u["login"]: u["id"] for u in everyone if u["login"] in ("alice", "bob")}
    for user_id in bench.users.values():
        member = {"membership": {"user_id": user_id, "role_ids": [developer]}}
        answer = bench.admin.post(f"/projects/{project}/memberships.json", json=member)
        assert answer.status_code == 201, answer.text
    return bench


@pytest.fixture(params=["real", "fake"])
def bench(request: pytest.FixtureRequest) -> Iterator[Workbench]:
    if request.param == "real":
        workbench = _real_workbench(request)
        yield workbench
        workbench.close()
        return
    with FakeRedmine(ALICE_KEY, admin_keys=(ADMIN_KEY,)) as fake:
        fake.add_user(3, "alice", "alice@example.com")
        fake.add_user(4, "bob", "bob@example.com")
        workbench = Workbench(fake.base_url, ADMIN_KEY, ALICE_KEY, "operations")
        workbench.fake = fake
        workbench.users = {"alice": 3, "bob": 4}
        yield workbench
        workbench.close()


def journals(bench: Workbench, number: int) -> int:
    return len(bench.issue(number).get("journals") or [])


def test_a_status_written_back_lands_and_writing_it_again_changes_nothing(
    bench: Workbench,
) -> None:
    number = bench.create()

    bench.connector.write(TicketWrite(str(number), status="Resolved"))
    after_first = journals(bench, number)
    bench.connector.write(TicketWrite(str(number), status="resolved"))  # a repeat, any case

    assert bench.issue(number)["status"]["name"] == "Resolved"
    assert after_first == 1
    assert journals(bench, number) == after_first  # the repeat sent no change


def test_a_transition_the_workflow_forbids_is_refused_naming_where_the_issue_may_go(
    bench: Workbench,
) -> None:
    number = bench.create()
    bench.set_status(number, "In Progress")  # a Developer may not move it back to New

    with pytest.raises(WriteRefused) as refused:
        bench.connector.write(TicketWrite(str(number), status="New"))

    message = str(refused.value)
    assert not isinstance(refused.value, WriteConflict)
    assert f"ticket '{number}'" in message and "field 'status'" in message
    assert "'New'" in message and "from 'In Progress'" in message
    assert "'Resolved', 'Feedback', 'Closed'" in message
    assert refused.value.target == "New"
    assert bench.issue(number)["status"]["name"] == "In Progress"


def test_an_issue_the_source_closed_stays_closed_as_a_conflict(bench: Workbench) -> None:
    number = bench.create()
    bench.set_status(number, "Closed")

    with pytest.raises(WriteConflict) as conflict:
        bench.connector.write(TicketWrite(str(number), status="In Progress"))

    assert "closed status" in str(conflict.value)
    assert bench.issue(number)["status"]["name"] == "Closed"


def test_an_assignee_written_back_lands_an_unknown_one_is_refused_in_redmines_words(
    bench: Workbench,
) -> None:
    number = bench.create()
    bob = str(bench.users["bob"])

    bench.connector.write(TicketWrite(str(number), assign=True, assignee_id=bob))
    assert bench.issue(number)["assigned_to"]["id"] == int(bob)

    with pytest.raises(WriteRefused) as refused:
        bench.connector.write(TicketWrite(str(number), assign=True, assignee_id="999999"))
    assert "Assignee is invalid" in str(refused.value)
    assert "field 'assignee'" in str(refused.value)

    bench.connector.write(TicketWrite(str(number), assign=True, assignee_id=None))
    assert "assigned_to" not in bench.issue(number)


def test_a_deleted_issue_is_refused_as_gone_and_an_unknown_status_names_the_key(
    bench: Workbench,
) -> None:
    number = bench.create()

    with pytest.raises(FixConfiguration) as unknown:
        bench.connector.write(TicketWrite(str(number), status="Done-ish"))
    bench.delete(number)
    with pytest.raises(WriteRefused) as gone:
        bench.connector.write(TicketWrite(str(number), status="Resolved"))

    assert unknown.value.key == "connectors.helpdesk.write_back.status"
    assert "'Done-ish'" in str(unknown.value) and "resolved" in str(unknown.value)
    assert "gone" in str(gone.value)


def test_on_the_real_redmine_an_operators_done_resolves_the_issue_once_and_settles(
    real_redmine: RealRedmine, emulator: Emulator, sqlite_url: str
) -> None:
    """The issue's own acceptance test: PATCH a task to DONE in Fragment; after one pass
    (write-back, then the forward sync) the Redmine issue is Resolved; the next forward
    pass pushes nothing; a transition Redmine's workflow forbids is a failed item with
    what Redmine allows."""
    bench = _real_workbench_for(real_redmine)
    try:
        done, stuck = bench.create(), bench.create()
        config = build_config(
            {
                "fragment": {"url": emulator.base_url, "token": TOKEN},
                "state": {"url": sqlite_url},
                "connectors": {
                    "redmine": {
                        "kind": "redmine",
                        "base_url": real_redmine.url,
                        "api_key": bench.alice_key,
                        "project": bench.project,
                        "write_back": {"status": {"DONE": "Resolved", "TODO": "New"}},
                    }
                },
            },
            source="test",
        )
        with StateStore.open(sqlite_url) as store:

            def one_pass() -> RunSummary:
                [summary] = run_once(config, store)  # write-back, then the forward pass
                assert summary.outcome == "ok", summary.error
                return summary

            assert one_pass().pushed == 2
            bench.set_status(stuck, "In Progress")  # a Developer can't take it back to New
            one_pass()
            operator = httpx.Client(
                base_url=emulator.base_url, headers={"Authorization": f"Bearer {TOKEN}"}
            )
            with operator:
                for number, status in ((done, "DONE"), (stuck, "TODO")):
                    uid = task_uid("redmine", str(number))
                    answer = operator.patch(f"/tasks/{uid}", json={"status": status})
                    assert answer.status_code == 200, answer.text

            forward = one_pass()
            journals_after = journals(bench, done)
            settled = one_pass()

            assert bench.issue(done)["status"]["name"] == "Resolved"
            assert forward.pushed == 1  # the resolved issue, as Redmine now shows it
            assert settled.pushed == 0
            assert journals(bench, done) == journals_after  # nothing written twice
            assert bench.issue(stuck)["status"]["name"] == "In Progress"
            [refused] = WriteBackLedger(store).rows("redmine")
            assert refused.source_id == str(stuck) and refused.field == "status"
            assert refused.error is not None and "from 'In Progress'" in refused.error
            assert "'Resolved', 'Feedback', 'Closed'" in refused.error
    finally:
        bench.close()
