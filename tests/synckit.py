"""The shared test kit: ticket files, configs pointing at the emulator, views of what landed."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from fragment_emulator import Emulator
from sync.config import Config, build_config
from sync_demo import DEMO_MAPPING

TOKEN = "test-token-7c1f9e2ab4"

MAPPING = DEMO_MAPPING


def write_tickets(path: Path, tickets: Iterable[dict[str, Any]]) -> Path:
    """Write `tickets` as JSON Lines at `path`."""
    path.write_text("".join(json.dumps(t, sort_keys=True) + "\n" for t in tickets))
    return path


def read_tickets(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def make_config(
    emulator: Emulator,
    tickets: Path,
    state_url: str,
    *,
    fragment: dict[str, Any] | None = None,
    mapping: dict[str, Any] | None = None,
    connector: dict[str, Any] | None = None,
    name: str = "helpdesk",
) -> Config:
    """A config syncing the JSONL file `tickets` into `emulator`."""
    raw = {
        "fragment": {
            "url": emulator.base_url,
            "token": TOKEN,
            "requests_per_minute": 100_000,
            "max_retry_wait": "5s",
            **(fragment or {}),
        },
        "state": {"url": state_url},
        "connectors": {
            name: {
                "kind": "jsonl",
                "path": str(tickets),
                "deleted_field": "deleted",
                "mapping": MAPPING if mapping is None else mapping,
                **(connector or {}),
            }
        },
    }
    return build_config(raw, source="test")


def tasks_by_ticket(emulator: Emulator, field: str = "ticket_id") -> dict[str, dict[str, Any]]:
    """Every task in the emulator, by the source id it carries; fails on a duplicate."""
    found: dict[str, dict[str, Any]] = {}
    for task in emulator.store.all_tasks():
        key = str(task["fields"][field])
        assert key not in found, f"ticket {key} is in Fragment twice"
        found[key] = task
    return found


def live_ids(tickets: Iterable[dict[str, Any]]) -> set[str]:
    """The ids of the tickets that are not deleted."""
    return {str(t["id"]) for t in tickets if not t.get("deleted")}


def pushed_items(emulator: Emulator) -> int:
    """How many task items were sent in accepted PUT /tasks/batch requests."""
    return sum(
        r["items"] or 0
        for r in emulator.requests
        if r["method"] == "PUT" and r["path"].endswith("/tasks/batch") and r["status"] == 200
    )


def small_config_file(
    path: Path, fragment_url: str, state_url: str, name: str, options: dict[str, Any]
) -> Path:
    """Write at `path` the smallest TOML config: Fragment, state, one connector; returns `path`.

    `options` are the connector's plain keys (strings and numbers), `kind` among them.
    """
    lines = [f"{key} = {json.dumps(value)}" for key, value in options.items()]
    path.write_text(
        f'[fragment]\nurl = "{fragment_url}"\ntoken = "{TOKEN}"\n\n'
        f'[state]\nurl = "{state_url}"\n\n'
        f"[connectors.{name}]\n" + "\n".join(lines) + "\n"
    )
    return path


def restartable_config_text(base_url: str, tickets: Path, state_url: str, batch_size: int) -> str:
    """A TOML config for a jsonl → emulator sync that is killed and restarted.

    A killed run's lease lives on for its TTL, so the lease is short and the next run
    waits it out instead of exiting busy.
    """
    return f"""
[fragment]
url = "{base_url}"
token = "{TOKEN}"
batch_size = {batch_size}
requests_per_minute = 100000

[state]
url = "{state_url}"

[locking]
lease_ttl = "3s"
when_busy = "wait"

[connectors.helpdesk]
kind = "jsonl"
path = "{tickets}"
deleted_field = "deleted"

[connectors.helpdesk.mapping]
title = "{MAPPING["title"]}"
status = "status"
assignee_email = "assignee"
due_at = "due_at"
fields = {{ country = "requester.country", priority = "priority" }}
"""


def free_port() -> int:
    """A TCP port free on loopback right now (for a daemon whose endpoint must be reached)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


class DaemonProcess:
    """`python -m sync run --config FILE` in a subprocess, its JSON log lines read back.

    The environment is this one without `SYNC_*` variables, plus `env`. Stop it with
    `stop()` (SIGTERM, then the exit code); `lines()` are its log events so far.
    """

    def __init__(
        self,
        config: Path,
        log: Path,
        env: dict[str, str] | None = None,
        preexec_fn: Callable[[], None] | None = None,
    ) -> None:
        environment = {k: v for k, v in os.environ.items() if not k.startswith("SYNC_")}
        self.log = log
        self._stderr = log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sync", "run", "--config", str(config)],
            cwd=config.parent,
            env={**environment, **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
            preexec_fn=preexec_fn,
        )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def lines(self) -> list[dict[str, Any]]:
        """Its log events so far (JSON lines; anything else as {"raw": line})."""
        events = []
        for line in self.text().splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                events.append({"raw": line})
        return events

    def wait_for(
        self, condition: Callable[[], bool], timeout: float = 30.0, what: str = ""
    ) -> None:
        """Poll `condition()` until true; fail with the log if the process dies or time runs out."""
        deadline = time.monotonic() + timeout
        while not condition():
            if self.process.poll() is not None:
                raise AssertionError(
                    f"the daemon exited with {self.process.returncode} before {what}:\n"
                    + self.text()[-4000:]
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} within {timeout}s:\n" + self.text()[-4000:])
            time.sleep(0.1)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then its exit code (killed if it outlives `timeout`)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise
        finally:
            self._stderr.close()

    def __enter__(self) -> DaemonProcess:
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._stderr.close()
