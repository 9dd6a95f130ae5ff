"""Rejected items: poisoned tickets scattered through batches, and what isolating them costs.

Two servers: the emulator, whose 422 names the bad items' indexes (isolation
is one extra request per batch), and a server that only says "invalid batch"
(isolation is a binary split). Either way every good ticket lands, every
poisoned one becomes a failed item carrying the server's message, and once
the mapping is fixed `failures retry` delivers them.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fakes import FakeApi, Reply, Request
from fragment_emulator import Emulator
from sync.config import Config
from sync.run import RunOptions, RunSummary, run_once
from sync.state import StateStore
from synckit import TOKEN, make_config, write_tickets

KNOWN = [f"agent{i}@support.example.com" for i in range(5)]
GHOST = "ghost@elsewhere.example"
BATCH = 64
FIXED_MAPPING = {"title": "[{priority}] {subject}", "fields": {"country": "requester.country"}}


class SilentFragment(FakeApi):
    """A Fragment that refuses a batch holding an unknown assignee without saying which item."""

    def __init__(self) -> None:
        super().__init__()
        self.tasks: dict[str, dict[str, Any]] = {}

    def start(self) -> SilentFragment:
        super().start()
        assert self._server is not None
        handler = self._server.RequestHandlerClass
        handler.do_PUT = handler._handle  # type: ignore[attr-defined]
        return self

    def route(self, request: Request) -> Reply:
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return Reply(401, {"detail": "invalid token"})
        if request.method == "GET" and request.path == "/api/v1/accounts/me":
            return Reply(200, {"name": "Silent Inc"})
        if request.method == "PUT" and request.path == "/api/v1/tasks/batch":
            items = json.loads(request.body)["items"]
            if any(item.get("assignee_email") not in (None, *KNOWN) for item in items):
                return Reply(422, {"detail": "invalid batch"})
            for item in items:
                self.tasks[item["uid"]] = item
            return Reply(200, {"items": items})
        return Reply(404, {"detail": "not found"})

    def batch_puts(self) -> int:
        return sum(1 for r in self.requests if r.method == "PUT")

    def tickets(self) -> set[str]:
        return {str(t["fields"]["ticket_id"]) for t in self.tasks.values()}


class Target:
    """One of the two servers under test, seen the same way."""

    def __init__(self, name: str, server: Emulator | SilentFragment) -> None:
        self.name, self.server = name, server

    @property
    def url(self) -> str:
        if isinstance(self.server, SilentFragment):
            return f"{self.server.base_url}/api/v1"
        return self.server.base_url

    def tickets(self) -> set[str]:
        if isinstance(self.server, SilentFragment):
            return self.server.tickets()
        return {str(t["fields"]["ticket_id"]) for t in self.server.store.all_tasks()}

    def message(self) -> str:
        """What the server says of a poisoned item, as the failed item must carry it."""
        if isinstance(self.server, SilentFragment):
            return "invalid batch"
        return f"unknown user {GHOST}"


@pytest.fixture(params=["emulator-names-items", "server-says-invalid-batch"])
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    if request.param == "emulator-names-items":
        with Emulator(tokens=[TOKEN], users=KNOWN) as emulator:
            yield Target(request.param, emulator)
    else:
        with SilentFragment() as fake:
            yield Target(request.param, fake)


def _tickets(count: int, poisoned: set[int]) -> list[dict[str, Any]]:
    return [
        {
            "id": i,
            "subject": f"Ticket {i}",
            "priority": "normal",
            "status": "open",
            "assignee": GHOST if i in poisoned else KNOWN[i % len(KNOWN)],
            "requester": {"country": "FR"},
            "updated_at": f"2026-11-02T{9 + i // 60:02d}:{i % 60:02d}:00Z",
            "deleted": False,
        }
        for i in range(count)
    ]


def _config(target: Target, path: Path, state_url: str, **kwargs: Any) -> Config:
    server = target.server
    config = make_config(
        server,  # type: ignore[arg-type]  # only .base_url is read, replaced just below
        path,
        state_url,
        fragment={"url": target.url, "batch_size": BATCH},
        **kwargs,
    )
    return config


def _sync(config: Config) -> RunSummary:
    store = StateStore.open(config.state.url)
    try:
        [summary] = run_once(config, store, options=RunOptions())
    finally:
        store.close()
    return summary


def _toml(raw: dict[str, Any]) -> str:
    """`raw` as TOML, every section an inline table (enough for these configs)."""

    def value(v: Any) -> str:
        if isinstance(v, dict):
            return "{" + ", ".join(f"{json.dumps(k)} = {value(x)}" for k, x in v.items()) + "}"
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return json.dumps(v)

    return "".join(f"{key} = {value(section)}\n" for key, section in raw.items())


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sync", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NO_COLOR": "1"},
        check=False,
    )


def _scattered(k: int, n: int, offset: int = 0) -> set[int]:
    """`k` indexes spread through a batch of `n`, none at its edges."""
    return {offset + (j * n) // k + n // (2 * k) - 1 for j in range(k)}


def test_poisoned_tickets_are_set_aside_and_failures_retry_delivers_them_once_fixed(
    target: Target, tmp_path: Path, sqlite_url: str
) -> None:
    poisoned = _scattered(2, BATCH) | _scattered(3, BATCH, offset=BATCH) | {2 * BATCH + 5}
    tickets = _tickets(2 * BATCH + 20, poisoned)
    path = write_tickets(tmp_path / "tickets.jsonl", tickets)

    first = _sync(_config(target, path, sqlite_url))

    assert first.ok, first.error
    assert (first.pushed, first.failed) == (len(tickets) - len(poisoned), len(poisoned))
    assert target.tickets() == {str(t["id"]) for t in tickets} - {str(i) for i in poisoned}
    store = StateStore.open(sqlite_url)
    failed = {item.source_id: item for item in store.failed_items("helpdesk")}
    assert set(failed) == {str(i) for i in poisoned}
    for source_id, item in failed.items():
        assert item.stage == "rejected"
        assert target.message() in item.error
        assert f"ticket {source_id!r}" in item.error and "'helpdesk'" in item.error

    # The fix: no assignee mapping. `failures retry` maps the set-aside records again.
    fixed = _config(target, path, sqlite_url, mapping=FIXED_MAPPING)
    config_file = tmp_path / "fixed.toml"
    raw = {
        "fragment": {"url": target.url, "token": TOKEN, "batch_size": BATCH},
        "state": {"url": sqlite_url},
        "connectors": {
            "helpdesk": {
                "kind": "jsonl",
                "path": str(path),
                "deleted_field": "deleted",
                "mapping": FIXED_MAPPING,
            }
        },
    }
    config_file.write_text(_toml(raw))
    retried = _cli("failures", "retry", "--config", str(config_file))

    assert retried.returncode == 0, retried.stderr
    assert "Traceback" not in retried.stderr
    assert store.failed_items("helpdesk") == []
    assert target.tickets() == {str(t["id"]) for t in tickets}
    store.close()
    assert _sync(fixed).failed == 0


def test_the_next_run_with_a_fixed_mapping_delivers_the_rejected_items(
    target: Target, tmp_path: Path, sqlite_url: str
) -> None:
    poisoned = _scattered(4, BATCH)
    tickets = _tickets(BATCH, poisoned)
    path = write_tickets(tmp_path / "tickets.jsonl", tickets)
    assert _sync(_config(target, path, sqlite_url)).failed == 4

    second = _sync(_config(target, path, sqlite_url, mapping=FIXED_MAPPING))

    assert second.ok and second.failed == 0
    assert target.tickets() == {str(t["id"]) for t in tickets}
    store = StateStore.open(sqlite_url)
    assert store.failed_items("helpdesk") == []
    store.close()


@pytest.mark.parametrize("k", [1, 2, 4])
def test_isolating_k_bad_items_in_a_batch_of_n_costs_logarithmic_requests_per_bad_item(
    target: Target, k: int, tmp_path: Path, sqlite_url: str
) -> None:
    poisoned = _scattered(k, BATCH)
    path = write_tickets(tmp_path / "tickets.jsonl", _tickets(BATCH, poisoned))

    summary = _sync(_config(target, path, sqlite_url))

    assert summary.ok and summary.failed == k
    assert summary.pushed == BATCH - k
    bound = k * (2 * math.log2(BATCH) + 1)
    print(
        f"\n{target.name}: n={BATCH} k={k}: {summary.requests} requests, "
        f"{summary.isolation_requests} for isolation (bound {bound:.0f})"
    )
    assert summary.isolation_requests <= bound
    assert summary.requests == 1 + summary.isolation_requests  # no retries hidden in there
    if isinstance(target.server, Emulator):
        assert summary.isolation_requests == 1  # it names the items: one resend of the rest
    else:
        assert summary.isolation_requests == target.server.batch_puts() - 1


def test_a_batch_whose_every_item_is_rejected_is_set_aside_in_one_request(
    tmp_path: Path, sqlite_url: str
) -> None:
    """Fragment names every bad item of a batch (FastAPI's 422 lists them all): when it names
    every item, they are set aside at once. Bisecting cost 1,990 requests for 1,000 bad
    tickets, 33 minutes of the 60-a-minute budget, and 99 to retry 50 still failing."""
    count = 3 * BATCH + 8
    with Emulator(tokens=[TOKEN], users=KNOWN) as emulator:
        target = Target("emulator-names-items", emulator)
        path = write_tickets(tmp_path / "tickets.jsonl", _tickets(count, set(range(count))))
        batches = math.ceil(count / BATCH)

        first = _sync(_config(target, path, sqlite_url))

        assert first.ok, first.error
        assert (first.pushed, first.failed) == (0, count)
        assert (first.requests, first.isolation_requests) == (batches, 0)
        puts = [r for r in emulator.requests if r["method"] == "PUT"]
        assert [(r["status"], r["items"]) for r in puts] == [(422, BATCH)] * (batches - 1) + [
            (422, count - (batches - 1) * BATCH)
        ]
        store = StateStore.open(sqlite_url)
        failed = store.failed_items("helpdesk")
        store.close()
        assert len(failed) == count
        assert all(f"unknown user {GHOST}" in item.error for item in failed)

        # Retrying the items, still failing, costs one request per batch too.
        emulator.reset()
        config = _config(target, path, sqlite_url)
        store = StateStore.open(config.state.url)
        try:
            [retried] = run_once(config, store, options=RunOptions(retry_only=True))
        finally:
            store.close()

        assert retried.failed == count
        assert (retried.requests, retried.isolation_requests) == (batches, 0)
        assert len([r for r in emulator.requests if r["method"] == "PUT"]) == batches
        assert emulator.store.count() == 0
