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

from sync.emulator import Emulator
from sync.mapping import task_uid
from synckit import TOKEN, tasks_by_ticket, write_tickets

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
    assert demo["pushed"] + demo["unchanged"] == 1200
    assert demo["pushed"] > 1100
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
    config = write_config(tmp_path, emulator, token=TOKEN)
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
