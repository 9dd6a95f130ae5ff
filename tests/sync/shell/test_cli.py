"""The command line, run as a real process: exit codes, JSON output, the demo, the daemon."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from fakes import FakeApi, Reply, Request
from fakes.redmine import FakeRedmine
from fragment_emulator import Emulator
from sync.mapping import task_uid
from sync.state import StateStore
from synckit import TOKEN, free_port, tasks_by_ticket, write_tickets

SECRET = "s3cr3t-fragment-token-XYZ"


def sync_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SYNC_")}
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "sync", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def write_config(directory: Path, emulator: Emulator, extra: str = "", **values: Any) -> Path:
    tickets = write_tickets(
        directory / "tickets.jsonl",
        [
            {"id": i, "subject": f"Printer {i} jammed", "updated_at": f"2026-11-02T09:{i:02d}:00Z"}
            for i in range(12)
        ],
    )
    text = f"""
[fragment]
url = "{emulator.base_url}"
token = "{values.get("token", "${FRAGMENT_TOKEN}")}"
max_attempts = 2
max_retry_wait = "10ms"

[state]
url = "{values.get("state", f"sqlite:///{directory / 'state.db'}")}"

[logging]
level = "{values.get("level", "info")}"

[connectors.helpdesk]
kind = "jsonl"
path = "{tickets}"
uid_namespace = "{values.get("namespace", "helpdesk")}"
schedule = {{ interval = "1s" }}

[connectors.helpdesk.mapping]
title = "{{subject}}"
{extra}
"""
    path = directory / "sync.toml"
    path.write_text(text)
    return path


def test_with_no_config_the_demo_runs_and_a_second_run_pushes_nothing(tmp_path: Path) -> None:
    first = sync_cli("run", "--once", "--json", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)  # stdout is exactly one JSON document
    assert report["ok"] is True
    [demo] = report["connectors"]
    assert demo["name"] == "demo"
    assert demo["pulled"] == 1200
    # Six tickets were deleted before they ever reached Fragment: skipped, and said so.
    assert (demo["pushed"], demo["unchanged"], demo["skipped_deleted"]) == (1194, 0, 6)
    assert "built-in demo" in first.stderr
    assert set(demo) >= {
        "name",
        "pulled",
        "pushed",
        "unchanged",
        "failed",
        "watermark",
        "duration_s",
    }

    second = sync_cli("run", "--once", "--json", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["connectors"][0]["pushed"] == 0


def test_a_bad_config_exits_2_naming_the_key(tmp_path: Path, emulator: Emulator) -> None:
    config = write_config(tmp_path, emulator, token=TOKEN)
    config.write_text(
        config.read_text().replace('schedule = { interval = "1s" }', "batch_size = 0")
    )
    result = sync_cli("run", "--once", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 2
    assert "connectors.helpdesk.batch_size" in result.stderr
    assert emulator.requests == []


@pytest.mark.parametrize(
    ("extra", "env", "key"),
    [
        (
            'fields = { "ticketId" = "a", "Ticket ID" = "b" }',
            {},
            "connectors.helpdesk.mapping.fields.",
        ),
        ('url = "{id"', {}, "connectors.helpdesk.mapping.url"),
        (
            "fields = { severity = \"jmespath:custom_fields[?name=='Severity'\" }",
            {},
            "connectors.helpdesk.mapping.fields.severity",
        ),
        (
            "fields = { severity = 'custom_fields[name=Severity].value | none' }",
            {},
            "connectors.helpdesk.mapping.fields.severity",
        ),
        ("", {"SYNC_FRAGMENT__BATCH_SIZE": "many"}, "fragment.batch_size"),
        (
            "",
            {"SYNC_CONNECTORS__HELPDESK__MAPPING__STATUS_DEFAULT": "LATER"},
            "connectors.helpdesk.mapping.status_default",
        ),
    ],
    ids=[
        "colliding-fields",
        "bad-template",
        "bad-jmespath",
        "bad-default",
        "bad-variable",
        "bad-variable-in-a-mapping",
    ],
)
def test_a_bad_mapping_or_variable_exits_2_naming_the_key(
    tmp_path: Path, emulator: Emulator, extra: str, env: dict[str, str], key: str
) -> None:
    config = write_config(tmp_path, emulator, extra, token=TOKEN)
    result = sync_cli("run", "--once", "--config", str(config), cwd=tmp_path, env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"configuration error: {key}" in result.stderr
    assert emulator.requests == []


def test_an_unreachable_state_database_exits_2_without_its_password(
    tmp_path: Path, emulator: Emulator
) -> None:
    config = write_config(
        tmp_path, emulator, token=TOKEN, state="postgresql+psycopg://sync:pw-9f8e7d@127.0.0.1:9/x"
    )
    result = sync_cli("run", "--once", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 2
    assert "state.url" in result.stderr
    assert "pw-9f8e7d" not in result.stderr + result.stdout


def test_run_once_syncs_and_status_reports_it(tmp_path: Path, emulator: Emulator) -> None:
    config = write_config(tmp_path, emulator, token=TOKEN)
    result = sync_cli("run", "--once", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "helpdesk: pulled 12, pushed 12" in result.stdout
    assert len(tasks_by_ticket(emulator)) == 12

    status = sync_cli("status", "--json", "--config", str(config), cwd=tmp_path)
    [row] = json.loads(status.stdout)
    assert row["name"] == "helpdesk"
    assert row["watermark"].startswith("2026-11-02T09:11:00")
    assert row["tasks"] == 12
    assert row["last_run"]["outcome"] == "ok"
    table = sync_cli("status", "--config", str(config), cwd=tmp_path)
    assert "helpdesk" in table.stdout and "ok at" in table.stdout


def test_a_failing_connector_exits_1_and_the_others_still_sync(
    tmp_path: Path, emulator: Emulator
) -> None:
    broken = '\n[connectors.broken]\nkind = "jsonl"\npath = "/nonexistent/tickets.jsonl"\n'
    config = write_config(tmp_path, emulator, token=TOKEN)
    config.write_text(config.read_text() + broken)
    result = sync_cli("run", "--once", "--json", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 1
    report = {c["name"]: c for c in json.loads(result.stdout)["connectors"]}
    assert report["broken"]["ok"] is False
    assert "/nonexistent/tickets.jsonl" in report["broken"]["error"]
    assert report["helpdesk"]["ok"] is True
    assert report["helpdesk"]["pushed"] == 12


def test_dry_run_prints_the_tasks_and_pushes_nothing(tmp_path: Path, emulator: Emulator) -> None:
    config = write_config(tmp_path, emulator, token=TOKEN)
    result = sync_cli("run", "--once", "--dry-run", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    planned = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(planned) == 12
    assert planned[0]["would_push"]["fields"]["title"] == "Printer 0 jammed"
    assert emulator.store.count() == 0


def test_uid_prints_the_task_uid_honouring_the_pinned_namespace(
    tmp_path: Path, emulator: Emulator
) -> None:
    config = write_config(tmp_path, emulator, token=TOKEN, namespace="zendesk-eu")
    result = sync_cli("uid", "helpdesk", "4242", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == task_uid("zendesk-eu", "4242")


def test_connectors_lists_the_built_in_kinds(tmp_path: Path) -> None:
    result = sync_cli("connectors", cwd=tmp_path)
    kinds = {line.split()[0] for line in result.stdout.splitlines() if line.strip()}
    assert {"jsonl", "csv"} <= kinds


def test_secrets_never_reach_the_logs_even_when_things_fail(
    tmp_path: Path, emulator: Emulator
) -> None:
    config = write_config(tmp_path, emulator, level="debug")
    result = sync_cli(
        "run", "--once", "--config", str(config), cwd=tmp_path, env={"FRAGMENT_TOKEN": SECRET}
    )
    assert result.returncode == 1  # Fragment refuses the token
    output = result.stdout + result.stderr
    assert "401" in output
    assert SECRET not in output
    check = sync_cli("check", "--config", str(config), cwd=tmp_path, env={"FRAGMENT_TOKEN": SECRET})
    assert "FAILED" in check.stdout
    assert SECRET not in check.stdout + check.stderr


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGHUP])
def test_the_daemon_syncs_on_schedule_and_stops_cleanly_on_a_stop_signal(
    tmp_path: Path, emulator: Emulator, stop_signal: signal.Signals
) -> None:
    """SIGHUP used to kill the daemon mid-batch (its default): a closed terminal, or a
    reload sent by habit, left the lease held until it expired."""
    # Its endpoint on a free port, not the default 9464 another worker's daemon may hold.
    endpoint = f"[daemon]\nhttp_port = {free_port()}\n"
    config = write_config(tmp_path, emulator, endpoint, token=TOKEN)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SYNC_")}
    daemon = subprocess.Popen(
        [sys.executable, "-m", "sync", "run", "--config", str(config)],
        cwd=tmp_path,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while emulator.store.count() < 12 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert emulator.store.count() == 12
        time.sleep(2.5)  # a few more scheduled passes, each pushing nothing
        daemon.send_signal(stop_signal)
        _, stderr = daemon.communicate(timeout=30)
    finally:
        if daemon.poll() is None:
            daemon.kill()
    assert daemon.returncode == 0, stderr
    assert "daemon_stopped" in stderr and stop_signal.name in stderr
    finished = [line for line in stderr.splitlines() if "run_finished" in line]
    assert len(finished) >= 2
    assert len(tasks_by_ticket(emulator)) == 12


def test_reset_replays_from_a_point_and_forget_hashes_pushes_everything_again(
    tmp_path: Path, emulator: Emulator
) -> None:
    config = write_config(tmp_path, emulator, token=TOKEN)
    assert sync_cli("run", "--once", "--config", str(config), cwd=tmp_path).returncode == 0

    reset = sync_cli(
        "reset", "helpdesk", "--to", "2026-11-02T09:05:00Z", "--config", str(config), cwd=tmp_path
    )
    assert reset.returncode == 0, reset.stderr
    replay = sync_cli("run", "--once", "--json", "--config", str(config), cwd=tmp_path)
    [summary] = json.loads(replay.stdout)["connectors"]
    assert (summary["pulled"], summary["pushed"]) == (7, 0)  # 09:05..09:11, all unchanged

    forget = sync_cli("reset", "helpdesk", "--forget-hashes", "--config", str(config), cwd=tmp_path)
    assert forget.returncode == 0, forget.stderr
    again = sync_cli("run", "--once", "--json", "--config", str(config), cwd=tmp_path)
    [summary] = json.loads(again.stdout)["connectors"]
    assert (summary["pulled"], summary["pushed"]) == (12, 12)
    assert len(tasks_by_ticket(emulator)) == 12  # pushed again, to the same tasks

    bad = sync_cli(
        "reset", "helpdesk", "--to", "last tuesday", "--config", str(config), cwd=tmp_path
    )
    assert bad.returncode == 2
    assert "--to" in bad.stderr


def test_failures_list_and_drop(tmp_path: Path, emulator: Emulator) -> None:
    config = write_config(tmp_path, emulator, token=TOKEN)
    tickets = tmp_path / "tickets.jsonl"
    with tickets.open("a") as handle:
        handle.write('{"id": 99, "updated_at": "2026-11-02T10:00:00Z"}\n')  # no subject
    run = sync_cli("run", "--once", "--config", str(config), cwd=tmp_path)
    assert run.returncode == 0, run.stderr

    listed = sync_cli("failures", "list", "--json", "--config", str(config), cwd=tmp_path)
    [item] = json.loads(listed.stdout)
    assert (item["connector"], item["source_id"], item["stage"]) == ("helpdesk", "99", "mapping")
    assert "'subject'" in item["error"]
    assert item["retry_at"] == item["last_seen"]  # failing for moments: due next pass
    table = sync_cli("failures", "--config", str(config), cwd=tmp_path)
    next_try = f"{dt.datetime.fromisoformat(item['retry_at']):%Y-%m-%dT%H:%M:%SZ}"
    assert f"helpdesk 99 [mapping] attempts 1, next try {next_try}: " in table.stdout

    dropped = sync_cli("failures", "drop", "--config", str(config), cwd=tmp_path)
    assert "dropped 1" in dropped.stdout
    empty = sync_cli("failures", "list", "--json", "--config", str(config), cwd=tmp_path)
    assert json.loads(empty.stdout) == []


def test_failures_list_reads_every_page_of_a_long_list(tmp_path: Path, emulator: Emulator) -> None:
    config = write_config(tmp_path, emulator, token=TOKEN)
    tickets = tmp_path / "tickets.jsonl"
    with tickets.open("a") as handle:
        for n in range(1_001):  # no subject: each fails; the list reads 1,000 at a time
            handle.write(f'{{"id": {1_000 + n}, "updated_at": "2026-11-02T10:00:00Z"}}\n')
    assert sync_cli("run", "--once", "--config", str(config), cwd=tmp_path).returncode == 0

    listed = sync_cli("failures", "list", "--json", "--config", str(config), cwd=tmp_path)
    table = sync_cli("failures", "--config", str(config), cwd=tmp_path)

    items = json.loads(listed.stdout)
    assert sorted(int(item["source_id"]) for item in items) == list(range(1_000, 2_001))
    assert table.stdout.splitlines()[-1] == "1001 failed items"


def test_a_dry_run_piped_into_a_reader_that_leaves_early_ends_quietly(
    tmp_path: Path, emulator: Emulator
) -> None:
    """`run --dry-run | head -1`: the rest of the plan has no reader; no traceback, no crash."""
    config = write_config(tmp_path, emulator, token=TOKEN)
    many = [
        {"id": i, "subject": f"Printer {i} jammed", "updated_at": f"2026-11-02T09:{i % 60:02d}:00Z"}
        for i in range(2_000)
    ]
    write_tickets(tmp_path / "tickets.jsonl", many)  # far more than a pipe's buffer
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SYNC_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "sync", "run", "--once", "--dry-run", "--config", str(config)],
        cwd=tmp_path,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    first = process.stdout.readline()
    process.stdout.close()
    errors = process.stderr.read()
    process.wait(timeout=60)

    assert json.loads(first)["would_push"]["fields"]["title"].startswith("Printer")
    assert "Traceback" not in errors, errors
    assert "internal error" not in errors and "run_crashed" not in errors, errors
    assert emulator.store.count() == 0


def test_after_the_demo_status_failures_and_check_work_on_its_state(tmp_path: Path) -> None:
    """They used to exit 2, "no config file found", where `run --once` had just worked."""
    demo = sync_cli("run", "--once", cwd=tmp_path)
    assert demo.returncode == 0, demo.stderr
    assert "demo: pulled 1200, pushed 1194, unchanged 0, skipped 6 deleted" in demo.stdout

    status = sync_cli("status", "--json", cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    [row] = json.loads(status.stdout)
    assert (row["name"], row["tasks"], row["last_run"]["outcome"]) == ("demo", 1194, "ok")
    failures = sync_cli("failures", "list", "--json", cwd=tmp_path)
    assert failures.returncode == 0, failures.stderr
    assert json.loads(failures.stdout) == []
    check = sync_cli("check", cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "connector demo (jsonl): ok" in check.stdout


def test_status_where_neither_a_config_nor_the_demo_is_says_how_to_start(tmp_path: Path) -> None:
    status = sync_cli("status", cwd=tmp_path)
    assert status.returncode == 2
    assert "no config file found" in status.stderr and "run --once" in status.stderr
    assert list(tmp_path.iterdir()) == []  # looking created nothing


@pytest.mark.parametrize(
    ("command", "token_line"),
    [
        (("run", "--once"), None),
        (("check",), None),
        (("failures", "retry"), None),
        (("run", "--once"), 'token = ""'),
        (("run", "--once"), 'token = "  tok-with-spaces "'),
    ],
)
def test_a_missing_empty_or_padded_fragment_token_is_a_configuration_error(
    tmp_path: Path, emulator: Emulator, command: tuple[str, ...], token_line: str | None
) -> None:
    """It looked like a network failure: "connection failed: still failing after 8 attempts"."""
    config = write_config(tmp_path, emulator, token=TOKEN)
    config.write_text(config.read_text().replace(f'token = "{TOKEN}"', token_line or ""))
    result = sync_cli(*command, "--config", str(config), cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "configuration error: fragment.token" in result.stderr
    assert emulator.requests == []
    if token_line is None:  # commands that don't talk to Fragment need no token
        assert sync_cli("status", "--config", str(config), cwd=tmp_path).returncode == 0


def test_check_tries_each_server_once_and_names_the_ones_that_failed(
    tmp_path: Path, emulator: Emulator
) -> None:
    """A diagnosis: one attempt each, not 41-62 s of retries before saying anything."""
    emulator.faults.error_rate = 1.0
    with FakeRedmine("redmine-key-1") as redmine:
        redmine.fail_next(Reply(503, {"error": "down for maintenance"}), times=100)
        extra = (
            f'\n[connectors.redmine]\nkind = "redmine"\nbase_url = "{redmine.base_url}"\n'
            'api_key = "redmine-key-1"\nmax_attempts = 3\n'
        )
        config = write_config(tmp_path, emulator, token=TOKEN, extra=extra)
        result = sync_cli("check", "--config", str(config), cwd=tmp_path)
        requests_to_redmine = len(redmine.requests)
        redmine_url = redmine.base_url
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert "connector helpdesk (jsonl): ok" in lines
    [source] = [line for line in lines if line.startswith("connector redmine")]
    assert "FAILED" in source and redmine_url in source and "503" in source
    [fragment] = [line for line in lines if line.startswith("fragment")]
    assert "FAILED" in fragment and emulator.base_url in fragment
    assert requests_to_redmine == 1
    assert len(emulator.requests) == 1


def test_check_gives_up_on_a_server_that_does_not_answer(
    tmp_path: Path, emulator: Emulator
) -> None:
    """It waited the request timeout (30 s) on each attempt; an answer after 20 s was "ok"."""
    emulator.faults.timeout_rate = 1.0
    emulator.faults.hang_seconds = 20
    config = write_config(tmp_path, emulator, token=TOKEN)
    result = sync_cli("check", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 1
    [fragment] = [line for line in result.stdout.splitlines() if line.startswith("fragment")]
    assert "FAILED" in fragment and "timed out" in fragment


class _OddAccount(FakeApi):
    """A server at fragment.url whose /accounts/me is not an object (a proxy, a wrong URL)."""

    def __init__(self, answer: Reply) -> None:
        super().__init__()
        self.answer = answer

    def route(self, request: Request) -> Reply:
        return self.answer


@pytest.mark.parametrize(
    "answer",
    [
        Reply(200, [{"name": "Acme"}]),
        Reply(200, raw=b"<html>Sign in</html>", content_type="text/html"),
    ],
    ids=["json-list", "not-json"],
)
def test_check_reports_an_account_answer_that_is_not_an_object_without_a_traceback(
    tmp_path: Path, emulator: Emulator, answer: Reply
) -> None:
    with _OddAccount(answer) as odd:
        config = write_config(tmp_path, emulator, token=TOKEN)
        config.write_text(config.read_text().replace(emulator.base_url, odd.base_url))
        result = sync_cli("check", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    [fragment] = [line for line in result.stdout.splitlines() if line.startswith("fragment")]
    assert "FAILED" in fragment and "/accounts/me" in fragment


def test_a_dry_run_with_json_prints_one_json_document(tmp_path: Path, emulator: Emulator) -> None:
    """The would_push lines came before the summary: no JSON parser could read the output."""
    config = write_config(tmp_path, emulator, token=TOKEN)
    result = sync_cli("run", "--once", "--dry-run", "--json", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["ok"] is True
    assert [entry["connector"] for entry in document["planned"]] == ["helpdesk"] * 12
    assert document["planned"][0]["would_push"]["fields"]["title"] == "Printer 0 jammed"
    assert document["connectors"][0]["pushed"] == 12
    assert emulator.store.count() == 0


def test_a_dry_run_creates_nothing(tmp_path: Path, emulator: Emulator) -> None:
    """It created the state database (and its folder) it had nothing to write to."""
    state = tmp_path / "state-folder" / "state.db"
    config = write_config(tmp_path, emulator, token=TOKEN, state=f"sqlite:///{state}")
    before = sorted(tmp_path.iterdir())
    result = sync_cli("run", "--once", "--dry-run", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(tmp_path.iterdir()) == before
    daemon = sync_cli("run", "--dry-run", "--config", str(config), cwd=tmp_path)
    assert daemon.returncode == 2 and "--dry-run" in daemon.stderr  # the daemon always pushes
    assert sorted(tmp_path.iterdir()) == before

    empty = tmp_path / "empty"
    empty.mkdir()
    demo = sync_cli("run", "--once", "--dry-run", "--json", cwd=empty)  # the built-in demo
    assert demo.returncode == 0, demo.stderr
    assert json.loads(demo.stdout)["connectors"][0]["pushed"] == 1194
    assert list(empty.iterdir()) == []


def test_requests_count_every_attempt_of_a_batch_whose_retries_ran_out(
    tmp_path: Path, emulator: Emulator
) -> None:
    """1 was reported where 2 went out (6 of 6 with more attempts)."""
    emulator.faults.error_rate = 1.0
    config = write_config(tmp_path, emulator, token=TOKEN)  # max_attempts = 2
    result = sync_cli("run", "--once", "--json", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 1
    [summary] = json.loads(result.stdout)["connectors"]
    sent = [r for r in emulator.requests if r["method"] == "PUT"]
    assert len(sent) == 2
    assert summary["requests"] == len(sent)


def test_a_killed_run_is_shown_abandoned_once_its_lease_is_gone(
    tmp_path: Path, emulator: Emulator
) -> None:
    """A SIGKILLed run stayed "running" forever, in the runs table, `status` and the page."""
    emulator.faults.latency = 120  # the pass waits on its first batch until it is killed
    state = tmp_path / "state.db"
    config = write_config(tmp_path, emulator, token=TOKEN, extra='[locking]\nlease_ttl = "3s"\n')
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SYNC_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "sync", "run", "--once", "--config", str(config)],
        cwd=tmp_path,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not _running_runs(state):
            time.sleep(0.1)
        assert _running_runs(state)
    finally:
        process.kill()
        process.wait(timeout=30)

    outcome = "running"
    deadline = time.monotonic() + 60
    while outcome == "running" and time.monotonic() < deadline:
        time.sleep(0.5)  # the lease outlives its holder by up to lease_ttl
        status = sync_cli("status", "--json", "--config", str(config), cwd=tmp_path)
        outcome = json.loads(status.stdout)[0]["last_run"]["outcome"]
    assert outcome == "abandoned"

    emulator.faults.latency = 0
    again = sync_cli("run", "--once", "--config", str(config), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    engine = sa.create_engine(f"sqlite:///{state}")
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT outcome FROM runs ORDER BY started_at")).scalars()
        assert list(stored) == ["abandoned", "ok"]  # recorded as such by the next pass
    engine.dispose()


def _running_runs(state: Path) -> list[str]:
    if not state.exists():
        return []
    with StateStore.open(f"sqlite:///{state}", upgrade=False) as store:
        try:
            return [run.id for run in store.recent_runs() if run.outcome == "running"]
        except sa.exc.OperationalError:
            return []  # the schema is being created


def test_a_rejected_item_records_the_field_fragment_named(tmp_path: Path) -> None:
    """Its `field` was null though the server's 422 said `assignee_email`."""
    with Emulator(tokens=[TOKEN], users=["agent@support.example.com"]) as emulator:
        config = write_config(tmp_path, emulator, token=TOKEN, extra='assignee_email = "assignee"')
        with (tmp_path / "tickets.jsonl").open("a") as handle:
            handle.write(
                '{"id": 99, "subject": "Ghost", "assignee": "ghost@elsewhere.example", '
                '"updated_at": "2026-11-02T10:00:00Z"}\n'
            )
        run = sync_cli("run", "--once", "--config", str(config), cwd=tmp_path)
        assert run.returncode == 0, run.stderr
    listed = sync_cli("failures", "list", "--json", "--config", str(config), cwd=tmp_path)
    [item] = json.loads(listed.stdout)
    assert (item["source_id"], item["stage"], item["field"]) == ("99", "rejected", "assignee_email")
    assert "unknown user" in item["error"]


def test_the_run_history_keeps_the_configured_number_of_runs(
    tmp_path: Path, emulator: Emulator
) -> None:
    """The runs table grew by one row a pass, forever (105,000 rows a year at 5 minutes).

    Idle passes are sampled once per `idle_runs_every`: here every one, so each is kept.
    """
    config = write_config(tmp_path, emulator, token=TOKEN)
    kept = 'keep_runs = 3\nidle_runs_every = "1ms"\n\n[logging]'
    text = config.read_text().replace("[logging]", kept)
    config.write_text(text)
    for _ in range(5):
        assert sync_cli("run", "--once", "--config", str(config), cwd=tmp_path).returncode == 0
    with StateStore.open(f"sqlite:///{tmp_path / 'state.db'}") as store:
        assert len(store.recent_runs("helpdesk", limit=100)) == 3


def test_a_pass_past_its_timeout_says_which_key_bounds_it(
    tmp_path: Path, emulator: Emulator
) -> None:
    config = write_config(tmp_path, emulator, token=TOKEN)
    config.write_text(
        config.read_text().replace('schedule = { interval = "1s" }', 'timeout = "1ms"')
    )
    result = sync_cli("run", "--once", "--json", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 1
    [summary] = json.loads(result.stdout)["connectors"]
    assert summary["outcome"] == "interrupted"
    assert "connectors.helpdesk.timeout" in summary["error"]


def test_a_state_from_a_newer_version_exits_2_saying_so_and_is_left_alone(
    tmp_path: Path, emulator: Emulator
) -> None:
    # A rollback after an upgrade: the schema is at a revision this version has never heard of.
    config = write_config(tmp_path, emulator, token=TOKEN)
    assert sync_cli("run", "--once", "--config", str(config), cwd=tmp_path).returncode == 0
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'state.db'}")
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0099'"))

    for command in (["run", "--once"], ["status"]):
        result = sync_cli(*command, "--config", str(config), cwd=tmp_path)

        assert result.returncode == 2, result.stderr
        assert "state.url" in result.stderr
        assert "schema revision 0099, newer than this version" in result.stderr
        assert "Traceback" not in result.stderr
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == "0099"


def test_with_auto_upgrade_off_an_old_schema_exits_2_naming_the_key_and_the_command(
    tmp_path: Path, emulator: Emulator
) -> None:
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    StateStore.open(state_url, upgrade=False).upgrade("0005")
    config = write_config(tmp_path, emulator, token=TOKEN, extra="")
    config.write_text(config.read_text().replace("[logging]", "auto_upgrade = false\n\n[logging]"))

    for command in (["run", "--once"], ["status"], ["failures", "list"]):
        result = sync_cli(*command, "--config", str(config), cwd=tmp_path)

        assert result.returncode == 2, result.stderr
        assert "state.auto_upgrade" in result.stderr
        assert "python -m sync db upgrade" in result.stderr
        assert "Traceback" not in result.stderr
    assert sync_cli("db", "upgrade", "--config", str(config), cwd=tmp_path).returncode == 0
    assert sync_cli("run", "--once", "--config", str(config), cwd=tmp_path).returncode == 0
