"""Fragment misbehaving: rate limits, 5xx, timeouts, dropped and lost answers, outages.

The emulator injects the faults (seeded), the real client and run loop deal
with them. What a user must see: the sync still ends exact (every ticket once,
latest content); no request reaches Fragment before a `Retry-After` it was
given expires (checked against the emulator's own arrival log); and a run that
can't finish within its bounds exits non-zero with its checkpoint intact, so
the next run resumes from it and pushes nothing twice.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.values import parse_datetime
from fragment_emulator import Emulator
from sync.config import Config
from sync.fragment import FragmentClient
from sync.mapping import task_uid
from sync.run import ConnectorRun, RunOptions, RunSummary
from sync.state import StateStore
from sync.state.comments import CommentLedger
from synckit import (
    MAPPING,
    TOKEN,
    make_config,
    pushed_items,
    tasks_by_ticket,
    write_tickets,
)

MISBEHAVING = {
    "rate_limit": (6, 1.0),  # a 429 with Retry-After: 1 every so often
    "error_rate": 0.08,  # 500/502/503/504, not applied
    "timeout_rate": 0.05,  # held 2s (> the client's 1s timeout), applied afterwards
    "hang_seconds": 2.0,
    "drop_rate": 0.05,  # connection closed before anything is applied
    "lost_response_rate": 0.06,  # applied, then the answer never comes
    "latency": 0.01,
}


def test_a_misbehaving_fragment_ends_exact_and_no_request_beats_a_retry_after(
    tmp_path: Path, state_url: str
) -> None:
    tickets = [_ticket(i, _minute(i)) for i in range(240)]
    path = write_tickets(tmp_path / "tickets.jsonl", tickets)
    with Emulator(tokens=[TOKEN]) as emulator:
        emulator.faults.update({**MISBEHAVING, "seed": 11})
        config = make_config(
            emulator,
            path,
            state_url,
            fragment={
                "batch_size": 10,
                "timeout": "1s",
                "max_attempts": 30,
                "max_retry_wait": "3s",
                # One batch out at a time: a request already on the wire when another's
                # 429 arrives can't be recalled, and this test times every arrival.
                "max_in_flight": 1,
            },
        )
        rate_limits: list[tuple[float, float]] = []  # (answered at, Retry-After), epoch seconds

        backfill = _sync_recording_rate_limits(config, rate_limits)
        for ticket in tickets[::8]:
            ticket["subject"] += " (edited)"
            ticket["updated_at"] = "2026-11-03T08:00:00Z"
        write_tickets(path, tickets)
        edits = _sync_recording_rate_limits(config, rate_limits)
        time.sleep(MISBEHAVING["hang_seconds"])  # let held requests land before reading the log

        assert backfill.ok, backfill.error
        assert edits.ok, edits.error
        assert edits.pushed == len(tickets[::8])
        landed = tasks_by_ticket(emulator)
        assert {key: task["fields"]["title"] for key, task in landed.items()} == {
            str(t["id"]): f"[{t['priority']}] {t['subject']}" for t in tickets
        }
        requests = emulator.requests
        seen = Counter(_fault_kind(r) for r in requests)
        assert {"429", "5xx", "timeout", "drop", "lost_response"} <= set(seen), seen
        assert sum(seen.values()) - seen["ok"] >= 0.2 * len(requests), seen
        arrivals = sorted(r["t"] for r in requests)
        assert rate_limits, "the emulator never rate-limited: the test proves nothing"
        for answered_at, retry_after in rate_limits:
            early = [t for t in arrivals if answered_at < t < answered_at + retry_after]
            assert early == [], f"{len(early)} request(s) arrived before Retry-After expired"

    store = StateStore.open(state_url)
    try:
        assert store.watermark("helpdesk") == dt.datetime(2026, 11, 3, 8, 0, tzinfo=dt.UTC)
        assert store.failed_items("helpdesk") == []
    finally:
        store.close()


@pytest.mark.parametrize("bound", ["fragment_down", "connector_timeout"])
def test_a_run_out_of_bounds_exits_nonzero_with_its_checkpoint_and_the_next_resumes(
    tmp_path: Path, state_url: str, bound: str
) -> None:
    tickets = [_ticket(i, _minute(i)) for i in range(200)]
    path = write_tickets(tmp_path / "tickets.jsonl", tickets)
    with Emulator(tokens=[TOKEN]) as emulator:
        config = tmp_path / "sync.toml"
        command = [sys.executable, "-m", "sync", "run", "--once", "--config", str(config)]
        environment = {k: v for k, v in os.environ.items() if not k.startswith("SYNC_")}
        if bound == "fragment_down":
            # Fragment goes down for good after the fifth batch; 3 attempts per batch.
            config.write_text(_config_toml(emulator, path, state_url, max_attempts=3))
            emulator.faults.latency = 0.05
            process = subprocess.Popen(
                command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
            )
            while process.poll() is None and _acked_batches(emulator) < 5:
                time.sleep(0.005)
            emulator.faults.error_rate = 1.0
            output = process.communicate(timeout=60)[0].decode()
            expected_error = "still failing after 3 attempts"
        else:
            # 20 batches at 0.5s each, two at a time, can't fit in the connector's 2s.
            config.write_text(_config_toml(emulator, path, state_url, timeout="2s"))
            emulator.faults.latency = 0.5
            process = subprocess.Popen(
                command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
            )
            output = process.communicate(timeout=60)[0].decode()
            expected_error = "timed out after"

        assert process.returncode != 0, output
        assert expected_error in output
        store = StateStore.open(state_url)
        try:
            watermark = store.watermark("helpdesk")
            landed = tasks_by_ticket(emulator)
            assert watermark is not None, "no batch was checkpointed: the test proves nothing"
            assert len(landed) < len(tickets), "the run finished: the test proves nothing"
            # The checkpoint is the last acknowledged batch's boundary, never past it.
            behind = {str(t["id"]) for t in tickets if parse_datetime(t["updated_at"]) <= watermark}
            assert behind <= set(landed)
            assert watermark == max(
                parse_datetime(t["updated_at"]) for t in tickets if str(t["id"]) in landed
            )
            [failed_run, *_] = store.recent_runs("helpdesk")
            assert failed_run.outcome in ("failed", "interrupted")

            emulator.faults.update({"error_rate": 0.0, "latency": 0.0})
            resumed = subprocess.run(
                command, env=environment, capture_output=True, text=True, check=False, timeout=60
            )

            assert resumed.returncode == 0, resumed.stdout + resumed.stderr
            assert set(tasks_by_ticket(emulator)) == {str(t["id"]) for t in tickets}
            assert pushed_items(emulator) == len(tickets)  # resumed, nothing pushed twice
            assert store.watermark("helpdesk") == parse_datetime(tickets[-1]["updated_at"])
            assert store.failed_items("helpdesk") == []
        finally:
            store.close()


@pytest.mark.parametrize("known", [False, True], ids=["new-ticket", "known-ticket"])
def test_a_ticket_deleted_after_an_unrecorded_push_is_archived(
    tmp_path: Path, sqlite_url: str, known: bool
) -> None:
    """A new ticket's push is marked in flight first; a known one (a stored hash) needs no mark."""
    tickets = [_ticket(i, _minute(i)) for i in range(5)]
    path = write_tickets(tmp_path / "tickets.jsonl", tickets)
    with Emulator(tokens=[TOKEN]) as emulator:
        config = make_config(
            emulator, path, sqlite_url, fragment={"max_attempts": 1, "max_retry_wait": "10ms"}
        )
        if known:
            assert _sync_recording_rate_limits(config, []).ok
            tickets[2] = {**tickets[2], "subject": "Edited", "updated_at": "2026-11-02T23:00:00Z"}
            write_tickets(path, tickets)
        # Fragment applies the batch but its answer is lost: the run fails, nothing recorded.
        emulator.faults.lost_response_rate = 1.0
        assert not _sync_recording_rate_limits(config, []).ok
        assert len(tasks_by_ticket(emulator)) == 5
        store = StateStore.open(sqlite_url)
        marked = store.in_flight(config.connectors["helpdesk"].uid_namespace, ["2"])
        store.close()
        emulator.faults.lost_response_rate = 0.0
        tickets[2] = {**tickets[2], "deleted": True, "updated_at": "2026-11-03T00:00:00Z"}
        write_tickets(path, tickets)

        assert _sync_recording_rate_limits(config, []).ok

        assert marked == (set() if known else {"2"})
        landed = tasks_by_ticket(emulator)
        assert landed["2"]["archived"] is True, "the deleted ticket's task is still active"
        assert [key for key, task in landed.items() if not task["archived"]] == ["0", "1", "3", "4"]


def _sync_recording_rate_limits(
    config: Config, rate_limits: list[tuple[float, float]]
) -> RunSummary:
    """One pass with the real client, noting when each 429 arrived and what it asked."""

    def on_response(response: httpx.Response) -> None:
        if response.status_code == 429:
            rate_limits.append((time.time(), float(response.headers["Retry-After"])))

    store = StateStore.open(config.state.url)
    try:
        with FragmentClient(config.fragment) as client:
            client.session.http.event_hooks["response"].append(on_response)
            return ConnectorRun(
                config.connectors["helpdesk"],
                store,
                client,
                config.fragment.batch_size,
                RunOptions(),
            ).execute()
    finally:
        store.close()


def _fault_kind(request: dict[str, Any]) -> str:
    """What the emulator did to one request: ok, 429, 5xx, timeout, drop, lost_response."""
    if request["fault"] in ("timeout", "drop", "lost_response"):
        return str(request["fault"])
    if request["status"] == 429:
        return "429"
    return "5xx" if request["fault"] == "error" else "ok"


def _acked_batches(emulator: Emulator) -> int:
    return sum(
        1
        for r in emulator.requests
        if r["method"] == "PUT" and r["status"] == 200 and r["fault"] is None
    )


def _minute(number: int) -> str:
    return f"2026-11-02T{number // 60:02d}:{number % 60:02d}:00Z"


def _ticket(number: int, updated_at: str) -> dict[str, Any]:
    return {
        "id": number,
        "subject": f"Ticket {number}",
        "priority": "normal",
        "status": "open",
        "assignee": None,
        "requester": {"country": "FR"},
        "updated_at": updated_at,
        "deleted": False,
    }


def _config_toml(
    emulator: Emulator,
    tickets: Path,
    state_url: str,
    *,
    max_attempts: int = 8,
    timeout: str | None = None,
) -> str:
    connector_timeout = f'timeout = "{timeout}"' if timeout else ""
    return f"""
[fragment]
url = "{emulator.base_url}"
token = "{TOKEN}"
batch_size = 10
requests_per_minute = 100000
max_attempts = {max_attempts}
max_retry_wait = "20ms"

[state]
url = "{state_url}"

[connectors.helpdesk]
kind = "jsonl"
path = "{tickets}"
deleted_field = "deleted"
sorted = true
{connector_timeout}

[connectors.helpdesk.mapping]
title = "{MAPPING["title"]}"
fields = {{ country = "requester.country" }}
"""


def test_comments_through_a_misbehaving_fragment_land_once_each(
    tmp_path: Path, state_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """POST /tasks/{uid}/comments is not idempotent: 5xx, dropped and lost answers and
    429s must neither lose a comment nor post one twice, pass after pass."""
    tickets = [_ticket(i, _minute(i)) for i in range(30)]
    for ticket in tickets:
        ticket["comments"] = [
            {"id": f"{ticket['id']}-{n}", "created_at": "2026-11-01T00:00:00Z",
             "body": f"reply {n}", "author": "Ada"}
            for n in range(4)
        ]  # fmt: skip
    path = write_tickets(tmp_path / "tickets.jsonl", tickets)
    faults = {key: MISBEHAVING[key] for key in ("error_rate", "drop_rate", "latency")}
    with Emulator(tokens=[TOKEN]) as emulator:
        config = make_config(
            emulator, path, state_url,
            fragment={"timeout": "1s", "max_attempts": 30, "max_retry_wait": "3s"},
            connector={
                "comments_field": "comments", "conversation": {"sync": True, "backfill": True}
            },
        )  # fmt: skip
        store = StateStore.open(state_url)
        try:
            with FragmentClient(config.fragment) as client:
                monkeypatch.setattr("sync.run.COMMENT_SHARE", 0.0)  # tasks in, no comment
                ConnectorRun(
                    config.connectors["helpdesk"], store, client, 50, RunOptions()
                ).execute()
                monkeypatch.setattr("sync.run.COMMENT_SHARE", 0.5)
                emulator.faults.update(
                    {**faults, "rate_limit": (20, 1.0), "lost_response_rate": 0.15, "seed": 5}
                )
                for _ in range(60):  # a pass leaves a comment whose answer is unclear
                    summary = ConnectorRun(
                        config.connectors["helpdesk"], store, client, 50, RunOptions()
                    ).execute()
                    assert summary.ok, summary.error
                    if CommentLedger(store).counts("helpdesk").pending == 0:
                        break
            counts = CommentLedger(store).counts("helpdesk")
        finally:
            store.close()
        requests = emulator.requests
        texts = {
            ticket["id"]: [
                c["content"]
                for c in emulator.store.comments(task_uid("helpdesk", str(ticket["id"])))
            ]
            for ticket in tickets
        }

    assert (counts.pending, counts.failed, counts.posted) == (0, 0, 120)
    seen = Counter(_fault_kind(r) for r in requests if "/comments" in r["path"])
    assert {"5xx", "drop", "lost_response"} <= set(seen), seen
    for number, posted in texts.items():
        assert sorted(text.rsplit("\n", 1)[-1] for text in posted) == [
            f"reply {n}" for n in range(4)
        ], number
