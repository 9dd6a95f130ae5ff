"""ServiceNow write-back: `ServiceNowConnector.write` against `fakes.servicenow`, and one run
end to end.

The fake answers the Table API's one-record GET and PATCH as ServiceNow documents
them (see its docstring), with the ACL and the resolution data policy many
instances have.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from connectors.base import TicketWrite
from connectors.errors import FixConfiguration, WriteConflict, WriteRefused
from connectors.servicenow import ServiceNowConnector, ServiceNowOptions
from fakes.servicenow import FakeServiceNow, sys_id_of
from fragment_emulator import Emulator
from sync.config import build_config
from sync.mapping import task_uid
from sync.run import RunSummary, run_once
from sync.state import StateStore
from sync.state.write_back import WriteBackLedger
from synckit import TOKEN, tasks_by_ticket

USERNAME, PASSWORD, OAUTH_TOKEN = "fragment.sync", "snow-pass-81d2", "snow-oauth-5e77c0"
T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)
RESOLUTION = {"close_code": "Solved (Permanently)", "close_notes": "Resolved in Fragment"}


@pytest.fixture(scope="module")
def server() -> Iterator[FakeServiceNow]:
    with FakeServiceNow(USERNAME, PASSWORD, OAUTH_TOKEN) as fake:
        yield fake


@pytest.fixture
def fake(server: FakeServiceNow) -> FakeServiceNow:
    server.reset()
    for number in (1, 2, 3):
        server.add(number, T0 + dt.timedelta(minutes=number))
    return server


def connector_for(fake: FakeServiceNow, **options: Any) -> ServiceNowConnector:
    keys = {"base_url": fake.base_url, "username": USERNAME, "password": PASSWORD, **options}
    return ServiceNowConnector("desk", ServiceNowOptions.model_validate(keys))


@pytest.fixture
def connector(fake: FakeServiceNow) -> Iterator[ServiceNowConnector]:
    source = connector_for(fake, fields_with_state={"Resolved": RESOLUTION})
    yield source
    source.close()


def record(fake: FakeServiceNow, number: int) -> dict[str, str]:
    return fake.tables["incident"][sys_id_of(number)]


def test_a_status_lands_with_its_configured_fields_and_a_repeat_sends_nothing(
    fake: FakeServiceNow, connector: ServiceNowConnector
) -> None:
    connector.write(TicketWrite(sys_id_of(2), status="Resolved"))
    connector.write(TicketWrite(sys_id_of(2), status="resolved"))  # a repeat, any case
    connector.write(TicketWrite(sys_id_of(1), status="2"))  # a value, sent as it is

    assert record(fake, 2)["state"] == "6"
    assert record(fake, 2)["close_code"] == "Solved (Permanently)"
    assert record(fake, 1)["state"] == "2"
    assert [body for _, body in fake.writes] == [
        {**RESOLUTION, "state": "6"},
        {"state": "2"},
    ]


def test_resolving_without_the_fields_a_data_policy_wants_is_refused_in_its_words(
    fake: FakeServiceNow,
) -> None:
    source = connector_for(fake)  # no fields_with_state
    try:
        with pytest.raises(WriteRefused) as refused:
            source.write(TicketWrite(sys_id_of(3), status="Resolved"))
    finally:
        source.close()

    message = str(refused.value)
    assert not isinstance(refused.value, WriteConflict)
    assert f"ticket '{sys_id_of(3)}'" in message and "field 'status'" in message
    assert "'Resolved'" in message
    assert "ServiceNow answered 403: Operation Failed - Data Policy Exception" in message
    assert "Resolution code, Resolution notes" in message
    assert record(fake, 3)["state"] == "1"


def test_a_record_the_source_closed_or_canceled_stays_so_as_a_conflict(
    fake: FakeServiceNow, connector: ServiceNowConnector
) -> None:
    fake.touch(1, T0, state="7")
    fake.touch(2, T0, state="8")

    with pytest.raises(WriteConflict) as conflict:
        connector.write(TicketWrite(sys_id_of(1), status="In Progress"))
    connector.write(TicketWrite(sys_id_of(2), status="Closed"))  # closed already: left alone
    with pytest.raises(WriteConflict):
        connector.write(TicketWrite(sys_id_of(2), status="Resolved"))

    assert "state is 7 in ServiceNow, a closed state" in str(conflict.value)
    assert (record(fake, 1)["state"], record(fake, 2)["state"]) == ("7", "8")
    assert fake.writes == []


def test_an_assignee_lands_none_empties_it_and_a_repeat_sends_nothing(
    fake: FakeServiceNow, connector: ServiceNowConnector
) -> None:
    beth = fake.add_user("beth.anglin", "Beth Anglin", "beth@example.com")

    connector.write(TicketWrite(sys_id_of(1), assign=True, assignee_id=beth))
    connector.write(TicketWrite(sys_id_of(1), assign=True, assignee_id=beth))
    assert record(fake, 1)["assigned_to"] == beth

    connector.write(TicketWrite(sys_id_of(1), assign=True, assignee_id=None))
    assert record(fake, 1)["assigned_to"] == ""
    assert [body for _, body in fake.writes] == [{"assigned_to": beth}, {"assigned_to": ""}]


def test_an_acl_refusal_and_a_deleted_record_are_refused_in_servicenows_words(
    fake: FakeServiceNow, connector: ServiceNowConnector
) -> None:
    fake.write_denied = True
    with pytest.raises(WriteRefused) as denied:
        connector.write(TicketWrite(sys_id_of(1), status="In Progress"))
    fake.delete(2)
    with pytest.raises(WriteRefused) as gone:
        connector.write(TicketWrite(sys_id_of(2), status="In Progress"))

    assert "403: Operation Failed - ACL Exception Update Failed" in str(denied.value)
    assert "the record is gone: ServiceNow answered 404: No Record found" in str(gone.value)


def test_a_business_rule_that_keeps_the_old_state_is_a_refusal(
    fake: FakeServiceNow, connector: ServiceNowConnector
) -> None:
    def state_model(current: dict[str, str]) -> None:  # New may only go to In Progress
        if current["state"] not in ("1", "2"):
            current["state"] = "1"

    fake.business_rules.append(state_model)

    with pytest.raises(WriteRefused) as refused:
        connector.write(TicketWrite(sys_id_of(3), status="On Hold"))

    assert "answered 200 but kept {'state': '1'}" in str(refused.value)
    assert "business rule" in str(refused.value)


def test_a_state_the_table_doesnt_have_names_the_key_and_state_values_adds_them(
    fake: FakeServiceNow, connector: ServiceNowConnector
) -> None:
    with pytest.raises(FixConfiguration) as unknown:
        connector.write(TicketWrite(sys_id_of(1), status="Closed Complete"))
    custom = connector_for(fake, state_values={"Closed Complete": 3}, closed_states=[4])
    try:
        custom.write(TicketWrite(sys_id_of(1), status="closed complete"))
    finally:
        custom.close()

    assert unknown.value.key == "connectors.desk.write_back.status"
    assert "'Closed Complete'" in str(unknown.value) and "Resolved (6)" in str(unknown.value)
    assert record(fake, 1)["state"] == "3"


# The engine: run --once writes back, then pushes what it wrote


def test_an_operators_done_resolves_the_incident_once_and_the_next_run_sends_nothing(
    fake: FakeServiceNow, emulator: Emulator, sqlite_url: str
) -> None:
    fake.touch(3, T0 + dt.timedelta(minutes=3), state="7")
    config = build_config(
        {
            "fragment": {"url": emulator.base_url, "token": TOKEN, "requests_per_minute": 10**5},
            "state": {"url": sqlite_url},
            "connectors": {
                "desk": {
                    "kind": "servicenow",
                    "base_url": fake.base_url,
                    "username": USERNAME,
                    "password": PASSWORD,
                    "fields_with_state": {"Resolved": RESOLUTION},
                    "write_back": {"status": {"DONE": "Resolved", "STARTED": "In Progress"}},
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
            for number, status in ((2, "DONE"), (3, "STARTED")):  # 3: ServiceNow closed it
                uid = task_uid("desk", sys_id_of(number))
                answer = operator.patch(f"/tasks/{uid}", json={"status": status})
                assert answer.status_code == 200, answer.text

        first = one_run()
        second = one_run()

        assert record(fake, 2)["state"] == "6"
        assert [sys_id for sys_id, _ in fake.writes] == [sys_id_of(2)]
        assert first.pushed == 1  # the resolved incident, as ServiceNow now shows it
        assert tasks_by_ticket(emulator)[sys_id_of(2)]["status"] == "DONE"
        assert second.pushed == 0 and len(fake.writes) == 1
        assert record(fake, 3)["state"] == "7"
        [conflict] = WriteBackLedger(store).rows("desk")
        assert conflict.source_id == sys_id_of(3) and conflict.conflict is not None
        assert "a closed state" in conflict.conflict


def test_an_operators_reassignment_sets_assigned_to_by_sys_id_and_settles(
    fake: FakeServiceNow, emulator: Emulator, sqlite_url: str
) -> None:
    """The people cache holds sys_user sys_ids: the email Fragment shows becomes one."""
    beth = fake.add_user("beth.anglin", "Beth Anglin", "beth@example.com")
    fake.touch(3, T0 + dt.timedelta(minutes=3), assigned_to=beth)
    config = build_config(
        {
            "fragment": {"url": emulator.base_url, "token": TOKEN, "requests_per_minute": 10**5},
            "state": {"url": sqlite_url},
            "connectors": {
                "desk": {
                    "kind": "servicenow",
                    "base_url": fake.base_url,
                    "username": USERNAME,
                    "password": PASSWORD,
                    "write_back": {"status": {"STARTED": "In Progress"}, "assignee": True},
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
            uid = task_uid("desk", sys_id_of(1))
            answer = operator.patch(
                f"/tasks/{uid}", json={"assignee_email": "beth@example.com", "status": "STARTED"}
            )
            assert answer.status_code == 200, answer.text

        first = one_run()
        second = one_run()

        assert (record(fake, 1)["assigned_to"], record(fake, 1)["state"]) == (beth, "2")
        assert [body for _, body in fake.writes] == [{"state": "2", "assigned_to": beth}]
        assert first.pushed == 1 and second.pushed == 0
        assert tasks_by_ticket(emulator)[sys_id_of(1)]["assignee"]["email"] == "beth@example.com"
        assert WriteBackLedger(store).rows("desk") == []
