"""Two-way sync: an operator's change in Fragment written back to its ticket.

Configuration first: write-back is off by default, and a connector that can't
write what the config asks of it fails the start naming the key.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from connectors.redmine import RedmineConnector
from fakes.redmine import STATUSES, FakeRedmine
from fragment_emulator import Emulator
from sync.config import build_config
from sync.errors import ConfigError
from sync.fragment import FragmentClient
from sync.mapping import task_uid
from sync.run import RunSummary, run_once
from sync.shell.cli import main
from sync.shell.metrics import Metrics
from sync.state import StateStore
from sync.state.write_back import WriteBackLedger
from sync.write_back import ConnectorWriteBack, WriteBackSummary
from synckit import TOKEN, pushed_items, tasks_by_ticket


def connector_config(kind: str, **keys: Any) -> Any:
    options = {
        "jsonl": {"path": "/tmp/t.jsonl"},
        "redmine": {"base_url": "http://127.0.0.1:9", "api_key": "k" * 40},
    }[kind]
    raw = {"connectors": {"desk": {"kind": kind, **options, **keys}}}
    return build_config(raw, source="test").connectors["desk"]


def test_write_back_is_off_unless_configured_and_names_what_it_writes() -> None:
    assert not connector_config("redmine").settings.write_back.enabled

    both = connector_config(
        "redmine", write_back={"status": {"DONE": "Resolved"}, "assignee": True}
    )

    assert both.settings.write_back.fields == ("status", "assignee")
    assert both.settings.write_back.status == {"DONE": "Resolved"}


@pytest.mark.parametrize(
    ("write_back", "key"),
    [
        ({"status": {"DONE": "closed"}}, "connectors.desk.write_back.status"),
        ({"assignee": True}, "connectors.desk.write_back.assignee"),
    ],
)
def test_a_connector_that_cant_write_refuses_write_back_naming_the_key(
    write_back: dict[str, Any], key: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        connector_config("jsonl", write_back=write_back)

    assert caught.value.key == key
    assert "can't write" in str(caught.value) and "it can write: nothing" in str(caught.value)


def test_a_status_outside_fragments_three_or_an_empty_name_is_refused() -> None:
    with pytest.raises(ConfigError) as unknown:
        connector_config("redmine", write_back={"status": {"CLOSED": "Closed"}})
    with pytest.raises(ConfigError) as empty:
        connector_config("redmine", write_back={"status": {"DONE": " "}})

    assert unknown.value.key.startswith("connectors.desk.write_back.status")
    assert empty.value.key == "connectors.desk.write_back.status"


def test_the_command_exits_2_naming_the_key_before_any_work(tmp_path: Path) -> None:
    config = tmp_path / "sync.toml"
    config.write_text(
        f"""
[connectors.desk]
kind = "jsonl"
path = "{tmp_path / "t.jsonl"}"
write_back = {{ status = {{ DONE = "closed" }} }}
"""
    )

    done = subprocess.run(
        [sys.executable, "-m", "sync", "run", "--once", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 2, done.stdout + done.stderr
    assert "connectors.desk.write_back.status" in done.stderr


# The pass, against the Redmine fake and the emulator

ALICE_KEY = "b" * 40
"""A Developer's key: Redmine's workflow applies to what it writes."""


class TwoWay:
    """A Redmine fake, the emulator, a state and a config with write-back on, driven by
    passes: `forward` (a pass), `back` (a write-back pass) and an operator's `patch`."""

    def __init__(self, fake: FakeRedmine, emulator: Emulator, state_url: str, **keys: Any) -> None:
        self.fake, self.emulator = fake, emulator
        self.config = build_config(
            {
                "fragment": {
                    "url": emulator.base_url,
                    "token": TOKEN,
                    "requests_per_minute": 10**5,
                },
                "state": {"url": state_url},
                "connectors": {
                    "helpdesk": {
                        "kind": "redmine",
                        "base_url": fake.base_url,
                        "api_key": ALICE_KEY,
                        "write_back": {
                            "status": {"DONE": "Resolved", "STARTED": "In Progress", "TODO": "New"}
                        },
                        **keys,
                    }
                },
            },
            source="test",
        )
        self.store = StateStore.open(state_url)
        self.client = FragmentClient(self.config.fragment)

    def forward(self) -> RunSummary:
        [summary] = run_once(self.config, self.store)
        assert summary.outcome == "ok", summary.error
        return summary

    def back(self) -> WriteBackSummary:
        connector = self.config.connectors["helpdesk"]
        source = RedmineConnector("helpdesk", connector.options)
        try:
            return ConnectorWriteBack(connector, self.store, self.client, source).execute()
        finally:
            source.close()

    def patch(self, number: int, **changes: Any) -> None:
        uid = task_uid("helpdesk", str(number))
        headers = {"Authorization": f"Bearer {TOKEN}"}
        answer = httpx.patch(f"{self.emulator.base_url}/tasks/{uid}", json=changes, headers=headers)
        assert answer.status_code == 200, answer.text

    def task(self, number: int) -> dict[str, Any]:
        return tasks_by_ticket(self.emulator)[str(number)]

    def close(self) -> None:
        self.client.close()
        self.store.close()


@pytest.fixture
def two_way(emulator: Emulator, sqlite_url: str) -> Iterator[TwoWay]:
    with FakeRedmine(ALICE_KEY) as fake:
        fake.add_user(7, "carol.chen", "carol@example.com")
        for number in range(1, 6):
            fake.add(number, tracker={"id": 2, "name": "Feature"})
        rig = TwoWay(fake, emulator, sqlite_url)
        rig.forward()
        yield rig
        rig.close()


def test_an_operators_done_resolves_the_issue_and_the_next_passes_send_nothing(
    two_way: TwoWay,
) -> None:
    two_way.patch(3, status="DONE")

    back = two_way.back()
    forward = two_way.forward()

    assert two_way.fake.issues[3]["status"]["name"] == "Resolved"
    assert [number for number, _ in two_way.fake.writes] == [3]
    assert (back.written, back.echoes) == (1, 4)  # the other four hold what was pushed
    assert forward.pushed == 1  # the resolved issue, its source status now "Resolved"
    assert two_way.task(3)["status"] == "DONE"
    assert two_way.task(3)["fields"]["source_status"] == "Resolved"

    # Settled: the push's echo writes nothing, and nothing changed to push.
    again, then = two_way.back(), two_way.forward()
    assert (again.written, again.refused, then.pushed) == (0, 0, 0)
    assert len(two_way.fake.writes) == 1


def test_one_run_writes_back_then_pushes_what_it_wrote_and_the_next_sends_nothing(
    two_way: TwoWay,
) -> None:
    two_way.patch(2, status="STARTED")
    requests_before = len(two_way.emulator.requests)

    first = two_way.forward()  # run --once: write-back, then the forward pass
    second = two_way.forward()

    assert two_way.fake.issues[2]["status"]["name"] == "In Progress"
    assert first.pushed == 1 and second.pushed == 0
    assert len(two_way.fake.writes) == 1
    # The second pass asked Fragment for its changes once, and sent nothing.
    second_requests = two_way.emulator.requests[requests_before:]
    assert [r["method"] for r in second_requests[-1:]] == ["GET"]


def test_a_push_is_not_written_back_and_a_write_back_is_not_pushed_over_many_rounds(
    two_way: TwoWay,
) -> None:
    rounds = [
        ("fragment", 1, "STARTED"),
        ("source", 2, "In Progress"),
        ("fragment", 2, "DONE"),
        ("source", 4, "Feedback"),
        ("fragment", 5, "STARTED"),
        ("fragment", 1, "DONE"),
    ]
    for side, number, value in rounds:
        if side == "fragment":
            two_way.patch(number, status=value)
        else:
            two_way.fake.touch(number, status=_status(value))
        two_way.back()
        two_way.forward()

    writes, puts = len(two_way.fake.writes), pushed_items(two_way.emulator)
    for _ in range(2):
        assert two_way.back().written == 0
        assert two_way.forward().pushed == 0
    assert (len(two_way.fake.writes), pushed_items(two_way.emulator)) == (writes, puts)
    expected = {1: "Resolved", 2: "Resolved", 3: "New", 4: "Feedback", 5: "In Progress"}
    assert {n: two_way.fake.issues[n]["status"]["name"] for n in expected} == expected
    assert {n: two_way.task(n)["status"] for n in expected} == {
        1: "DONE", 2: "DONE", 3: "TODO", 4: "STARTED", 5: "STARTED"
    }  # fmt: skip


def test_a_forbidden_transition_is_a_failed_item_naming_it_and_the_forward_sync_goes_on(
    two_way: TwoWay,
) -> None:
    two_way.fake.touch(2, status=_status("In Progress"))  # a Developer can't take it back to New
    two_way.forward()
    two_way.patch(2, status="TODO")
    two_way.fake.touch(4, subject="Edited in Redmine")

    back = two_way.back()
    forward = two_way.forward()

    assert back.refused == 1
    [row] = WriteBackLedger(two_way.store).rows("helpdesk")
    assert row.source_id == "2" and row.field == "status"
    assert row.wanted == {"status": "TODO", "assignee_email": None}
    assert row.error is not None and "'New'" in row.error and "from 'In Progress'" in row.error
    # Refused by the write-back pass, then by the run's own (the failed items' policy tries
    # again on every pass for five minutes, then backs off).
    assert row.retry_at is not None and row.attempts == 2
    assert forward.pushed >= 1  # issue 4's edit went through all the same
    assert two_way.task(4)["fields"]["title"].endswith("Edited in Redmine")
    assert two_way.fake.issues[2]["status"]["name"] == "In Progress"


def test_an_issue_the_source_closed_wins_over_fragments_status_as_a_recorded_conflict(
    two_way: TwoWay,
) -> None:
    two_way.fake.touch(5, status=_status("Closed"))
    two_way.patch(5, status="STARTED")  # before the close reached Fragment

    back = two_way.back()
    two_way.forward()

    assert back.conflicts == 1
    [row] = WriteBackLedger(two_way.store).rows("helpdesk")
    assert row.conflict is not None and "closed status" in row.conflict
    assert two_way.fake.issues[5]["status"]["name"] == "Closed"
    assert two_way.task(5)["status"] == "DONE"  # the source's close reached Fragment


def _status(name: str) -> dict[str, Any]:
    return {"id": STATUSES[name], "name": name, "is_closed": name in ("Closed", "Rejected")}


def test_failures_list_and_status_show_a_refused_write_back_and_a_conflict(
    two_way: TwoWay, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    two_way.fake.touch(2, status=_status("In Progress"))  # a Developer can't take it to New
    two_way.fake.touch(5, status=_status("Closed"))
    two_way.forward()
    two_way.patch(2, status="TODO")
    two_way.patch(5, status="STARTED")
    two_way.back()
    config = tmp_path / "sync.toml"
    config.write_text(
        f"""
[fragment]
url = "{two_way.emulator.base_url}"
token = "{TOKEN}"

[state]
url = "{two_way.store.engine.url.render_as_string(hide_password=False)}"

[connectors.helpdesk]
kind = "redmine"
base_url = "{two_way.fake.base_url}"
api_key = "{ALICE_KEY}"
write_back = {{ status = {{ DONE = "Resolved", STARTED = "In Progress", TODO = "New" }} }}
"""
    )

    assert main(["failures", "list", "--config", str(config)]) == 0
    text = capsys.readouterr().out
    assert main(["failures", "list", "--json", "--config", str(config)]) == 0
    entries = json.loads(capsys.readouterr().out)

    assert "helpdesk 2 [write-back] attempts 1" in text and "from 'In Progress'" in text
    assert "helpdesk 5 [conflict: the source won]" in text
    assert "1 refused write-backs, 1 write-back conflicts" in text
    assert {(e["source_id"], e["stage"]) for e in entries} == {
        ("2", "write_back"),
        ("5", "conflict"),
    }
    assert next(e for e in entries if e["stage"] == "write_back")["wanted"] == {
        "status": "TODO", "assignee_email": None
    }  # fmt: skip

    assert main(["status", "--config", str(config)]) == 0
    table = capsys.readouterr().out
    assert main(["status", "--json", "--config", str(config)]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert "WRITE-BACK" in table and "1 refused, 1 conflicts" in table
    assert row["write_back"] == {"refused": 1, "conflicts": 1}


def test_metrics_count_what_write_back_wrote_refused_and_lost_to_conflicts(
    two_way: TwoWay,
) -> None:
    metrics = Metrics(two_way.config, two_way.store)
    metrics.install()
    try:
        before = _write_backs(metrics)
        two_way.fake.touch(2, status=_status("In Progress"))
        two_way.fake.touch(5, status=_status("Closed"))
        two_way.forward()
        two_way.patch(1, status="DONE")
        two_way.patch(2, status="TODO")  # a Developer can't take it back to New
        two_way.patch(5, status="STARTED")  # closed in Redmine: a conflict
        two_way.forward()
    finally:
        metrics.uninstall()

    assert before == {"written": 0, "refused": 0, "conflict": 0}  # the series exist from the start
    assert _write_backs(metrics) == {"written": 1, "refused": 1, "conflict": 1}


def _write_backs(metrics: Metrics) -> dict[str, float]:
    text = metrics.exposition().decode()
    return {
        sample.labels["outcome"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "fragment_sync_write_backs_total"
        and sample.labels["connector"] == "helpdesk"
    }


def test_turning_write_back_on_carries_changes_from_then_on_not_the_tasks_past(
    emulator: Emulator, sqlite_url: str
) -> None:
    with FakeRedmine(ALICE_KEY) as fake:
        for number in range(1, 4):
            fake.add(number, tracker={"id": 2, "name": "Feature"})
        one_way = TwoWay(fake, emulator, sqlite_url, write_back={})
        one_way.forward()
        one_way.patch(1, status="DONE")  # before write-back was on: stays in Fragment
        one_way.close()

        two_way = TwoWay(fake, emulator, sqlite_url)
        try:
            first = two_way.back()
            two_way.patch(2, status="DONE")
            second = two_way.back()
        finally:
            two_way.close()

    assert (first.seen, first.written) == (0, 0)
    assert second.written == 1
    assert [number for number, _ in fake.writes] == [2]
    assert fake.issues[1]["status"]["name"] == "New"
