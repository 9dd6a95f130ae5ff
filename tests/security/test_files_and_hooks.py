"""Files hold tickets, so only their owner reads them; a hook is code, run only to map.

The SQLite state keeps failed tickets' records, and the built-in demo's
`.sync/` keeps its tickets, its state and its emulator's tasks: each file is
created with mode 0600 and each directory with 0700, whatever the umask lets
through. A mapping's `hook` is a module of the operator's: `run` and `check`
import it (they map tickets, and check says at once when it can't be
imported), `status`, `failures list`, `uid`, `reset` and `db upgrade` don't.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fragment_emulator import Emulator
from sync.state import StateStore
from synckit import TOKEN, write_tickets


def _modes(root: Path) -> dict[str, str]:
    """The permission bits of `root` and everything under it, by path relative to its parent."""
    found = {}
    for path in [root, *sorted(root.rglob("*"))]:
        found[str(path.relative_to(root.parent))] = oct(stat.S_IMODE(path.stat().st_mode))
    return found


def _sync(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sync", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env=env or _env(),
        check=False,
    )


def _env(**more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNC_")}
    # The package from this checkout, whatever the working directory.
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parents[2]), env.get("PYTHONPATH", "")])
    return {**env, **more}


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A umask that lets everyone read what is created (022 is the usual one)."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


@pytest.mark.usefixtures("open_umask")
def test_the_demo_keeps_its_tickets_state_and_emulator_to_its_owner(tmp_path: Path) -> None:
    done = _sync("run", "--once", cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    modes = _modes(tmp_path / ".sync")
    assert {".sync/demo/tickets.jsonl", ".sync/state.db", ".sync/emulator.db"} <= set(modes)
    for path, mode in modes.items():
        expected = "0o700" if (tmp_path / path).is_dir() else "0o600"
        assert mode == expected, (path, modes)


@pytest.mark.usefixtures("open_umask")
def test_a_new_sqlite_state_and_its_directories_are_private(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'var' / 'lib' / 'sync' / 'state.db'}"

    with StateStore.open(url) as store:
        run_id = store.start_run("helpdesk", "helpdesk", None)
        store.finish_run(run_id, outcome="ok", counts={}, watermark=None)
        modes = _modes(tmp_path / "var")  # while open: its write-ahead log is there too

    assert {"var/lib/sync/state.db", "var/lib/sync/state.db-wal"} <= set(modes)
    for path, mode in modes.items():
        expected = "0o700" if (tmp_path / path).is_dir() else "0o600"
        assert mode == expected, (path, modes)


HOOK = """
from pathlib import Path

Path(__file__).with_name("imported").touch()  # what any code at import could do


def adjust(ticket, task):
    return task
"""


def _hooked_config(tmp: Path, emulator: Emulator, hook: str) -> Path:
    tickets = write_tickets(
        tmp / "tickets.jsonl",
        [{"id": 1, "subject": "Hello", "updated_at": "2026-11-02T09:00:00Z"}],
    )
    path = tmp / "sync.toml"
    path.write_text(
        f"""
[fragment]
url = "{emulator.base_url}"
token = "{TOKEN}"

[state]
url = "sqlite:///{tmp / "state.db"}"

[connectors.helpdesk]
kind = "jsonl"
path = "{tickets}"

[connectors.helpdesk.mapping]
title = "{{subject}}"
hook = "{hook}"
"""
    )
    return path


@pytest.mark.parametrize(
    ("command", "imports"),
    [
        (["status"], False),
        (["status", "--json"], False),
        (["failures", "list"], False),
        (["uid", "helpdesk", "1"], False),
        (["reset", "helpdesk"], False),
        (["db", "upgrade"], False),
        (["check"], True),
        (["run", "--once", "--dry-run"], True),
        (["run", "--once"], True),
    ],
)
def test_a_hook_is_imported_only_by_the_commands_that_map_tickets(
    tmp_path: Path, emulator: Emulator, command: list[str], imports: bool
) -> None:
    (tmp_path / "hooks").mkdir()
    (tmp_path / "hooks" / "desk_hook.py").write_text(HOOK)
    config = _hooked_config(tmp_path, emulator, "desk_hook:adjust")
    env = _env(PYTHONPATH=os.pathsep.join([str(tmp_path / "hooks"), _env()["PYTHONPATH"]]))

    done = _sync(*command, "--config", str(config), cwd=tmp_path, env=env)

    assert done.returncode == 0, done.stderr
    assert (tmp_path / "hooks" / "imported").exists() is imports


@pytest.mark.parametrize(
    ("command", "code"),
    [(["status"], 0), (["failures", "list"], 0), (["check"], 2), (["run", "--once"], 2)],
)
def test_a_hook_that_cant_be_imported_stops_only_the_commands_that_map(
    tmp_path: Path, emulator: Emulator, command: list[str], code: int
) -> None:
    config = _hooked_config(tmp_path, emulator, "nowhere.at_all:adjust")

    done = _sync(*command, "--config", str(config), cwd=tmp_path)

    assert done.returncode == code, done.stderr
    if code == 2:
        assert "connectors.helpdesk.mapping.hook" in done.stderr
        assert emulator.requests == []
