"""Start-up loads only what the path needs, so a cron-style run with nothing to do is cheap.

Untimed on purpose: each test runs the real `python -m sync` and looks at the
modules loaded when it exits. A change that brings httpx, the emulator, the
web endpoint or an unused connector back onto the path fails here, long
before a benchmark would notice.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fragment_emulator import Emulator
from sync.config import load_config
from synckit import small_config_file, write_tickets

PROBE = """
import atexit, json, runpy, sys
out = sys.argv.pop(1)
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
sys.argv[0] = "sync"
runpy.run_module("sync", run_name="__main__", alter_sys=True)
"""
"""Runs `python -m sync ARGS` and writes the names of the modules loaded at its exit."""

NEVER_LOADED = (
    "httpx",
    "httpcore",
    "h11",
    "anyio",
    "alembic",
    "apscheduler",
    "prometheus_client",
    "sqlalchemy.orm",
    "sqlalchemy.dialects.postgresql",
    "sqlalchemy.dialects.mysql",
    "fragment_emulator",
    "sync.shell.demo",
    "sync_demo",
    "sync.shell.web",
    "sync.shell.metrics",
    "sync.shell.daemon",
    "sync.shell.status",
    "jinja2",
    "jmespath",  # only a mapping that uses a jmespath: path loads it
    "connectors.http",
    "connectors.csv",
    "connectors.sql",
    "connectors.rest",
    "connectors.zendesk",
    "connectors.freshdesk",
    "connectors.hubspot",
    "connectors.jira",
    "connectors.servicenow",
    "connectors.salesforce",
    "connectors.github",
    "connectors.redmine",
)
"""What neither a nothing-changed `run --once` of a jsonl connector nor `--help` needs."""


def loaded_modules(*args: str, cwd: Path) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run `python -m sync ARGS` (no `SYNC_*` variables); its result and its modules at exit."""
    out = cwd / "modules.json"
    environment = {k: v for k, v in os.environ.items() if not k.upper().startswith("SYNC_")}
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(out), *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return result, set(json.loads(out.read_text()))


def unwanted(modules: set[str]) -> list[str]:
    return sorted(
        m for m in modules if any(m == name or m.startswith(f"{name}.") for name in NEVER_LOADED)
    )


def write_config(directory: Path, fragment_url: str) -> Path:
    tickets = write_tickets(
        directory / "tickets.jsonl",
        [
            {"id": i, "subject": f"Ticket {i}", "updated_at": "2026-11-02T09:00:00Z"}
            for i in range(5)
        ],
    )
    return small_config_file(
        directory / "sync.toml",
        fragment_url,
        f"sqlite:///{directory / 'state.db'}",
        "helpdesk",
        {"kind": "jsonl", "path": str(tickets)},
    )


def test_a_run_with_nothing_to_push_loads_no_http_stack_and_no_unused_part(
    tmp_path: Path, emulator: Emulator
) -> None:
    config = write_config(tmp_path, emulator.base_url)
    first, _ = loaded_modules("run", "--once", "--json", "--config", str(config), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert emulator.store.count() == 5
    requests = len(emulator.requests)

    # Fragment's URL now leads nowhere: the run must not need it.
    write_config(tmp_path, "http://127.0.0.1:9/api/v1")
    second, modules = loaded_modules(
        "run", "--once", "--json", "--config", str(config), cwd=tmp_path
    )

    assert second.returncode == 0, second.stderr
    [summary] = json.loads(second.stdout)["connectors"]
    assert (summary["outcome"], summary["pushed"], summary["requests"]) == ("ok", 0, 0)
    assert len(emulator.requests) == requests
    assert unwanted(modules) == []
    assert {"sync.run", "sync.state", "connectors.jsonl"} <= modules  # the probe saw the run


SERVE = """
import json, sys, urllib.request
from pathlib import Path

from sync.config import load_config
from sync.shell.metrics import Metrics
from sync.shell.web import WebServer
from sync.state import StateStore

config = load_config(Path(sys.argv[1]))
store = StateStore.open(config.state.url)
loaded = {}
with WebServer(config, store, Metrics(config, store), lambda: True) as server:
    for path in ("/healthz", "/readyz", "/metrics", "/"):
        with urllib.request.urlopen(server.url + path, timeout=30) as answer:
            assert answer.status == 200, (path, answer.status)
        loaded[path] = "jinja2" in sys.modules
print(json.dumps(loaded))
"""
"""Serves each path of the daemon's endpoint in turn; whether jinja2 was loaded after each."""


def test_the_daemon_endpoint_loads_jinja2_only_to_serve_the_status_page(tmp_path: Path) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:9/api/v1")
    result = subprocess.run(
        [sys.executable, "-c", SERVE, str(config)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.splitlines()[-1])  # after the log lines (unconfigured)
    assert loaded == {"/healthz": False, "/readyz": False, "/metrics": False, "/": True}


def test_help_loads_no_http_stack_and_no_unused_part(tmp_path: Path) -> None:
    result, modules = loaded_modules("--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "usage: fragment-sync" in result.stdout
    assert unwanted(modules) == []


def test_a_config_reads_the_same_whether_or_not_a_sync_variable_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A `SYNC_*` variable that names no setting changes nothing; one that does wins."""
    for name in [n for n in os.environ if n.upper().startswith("SYNC_")]:
        monkeypatch.delenv(name)
    path = write_config(tmp_path, "http://127.0.0.1:9/api/v1")
    plain = load_config(path)
    monkeypatch.setenv("SYNC_NOTHING_TO_OVERRIDE", "1")
    through_the_environment = load_config(path)
    assert through_the_environment == plain
    monkeypatch.setenv("SYNC_FRAGMENT__BATCH_SIZE", "7")
    assert load_config(path).fragment.batch_size == 7
