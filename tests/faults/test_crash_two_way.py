"""Two-way sync killed with SIGKILL again and again, both directions moving, ends exact.

A real `python -m sync run --once` process syncs a Redmine fake (in this
process, so it outlives every kill) with the emulator, write-back on. Each
round an operator changes tasks' statuses in Fragment and someone edits issues
in Redmine, then a run starts and is killed at a seeded instant: while it
polls Fragment, writes to Redmine, reads, pushes or commits. After the rounds,
two runs end it. Every Fragment change must be applied to its issue once (no
write repeated), every issue's latest subject in Fragment once, and the two
sides must agree, with no failed item in either direction.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from itertools import pairwise
from pathlib import Path

import httpx
import pytest

from fakes.redmine import FakeRedmine
from fragment_emulator import Emulator
from sync.mapping import task_uid
from sync.state import StateStore
from sync.state.write_back import WriteBackLedger
from synckit import TOKEN, tasks_by_ticket

pytestmark = pytest.mark.crash

API_KEY = "c" * 40
ISSUES = 200
ROUNDS = 16
WRITE_BACK = {"DONE": "Resolved", "STARTED": "In Progress", "TODO": "New"}
FORWARD = {"New": "TODO", "In Progress": "STARTED", "Resolved": "DONE"}
LATENCY = 0.02
"""Seconds the emulator holds every request, so a kill often lands inside one."""


def config_text(emulator: Emulator, redmine: FakeRedmine, state_url: str) -> str:
    statuses = ", ".join(f'{k} = "{v}"' for k, v in WRITE_BACK.items())
    return f"""
[fragment]
url = "{emulator.base_url}"
token = "{TOKEN}"
batch_size = 20
requests_per_minute = 100000

[state]
url = "{state_url}"

[locking]
lease_ttl = "3s"
when_busy = "wait"

[connectors.helpdesk]
kind = "redmine"
base_url = "{redmine.base_url}"
api_key = "{API_KEY}"
requests_per_minute = 100000
write_back = {{ status = {{ {statuses} }} }}
"""


def test_two_way_sync_killed_at_random_instants_applies_each_change_once(
    tmp_path: Path, state_url: str
) -> None:
    dice = random.Random(2026)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SYNC_")}
    with (
        Emulator(tokens=[TOKEN]) as emulator,
        FakeRedmine(API_KEY, admin_keys=(API_KEY,)) as redmine,
    ):
        emulator.faults.latency = LATENCY
        for number in range(1, ISSUES + 1):
            redmine.add(number, tracker={"id": 2, "name": "Feature"})
        config = tmp_path / "sync.toml"
        config.write_text(config_text(emulator, redmine, state_url))
        command = [sys.executable, "-m", "sync", "run", "--once", "--config", str(config)]

        def run(kill_after: float | None) -> bool:
            """One run, killed after `kill_after` seconds if still going; whether it was."""
            process = subprocess.Popen(
                command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            if kill_after is not None:
                time.sleep(kill_after)
                if process.poll() is None:
                    process.send_signal(signal.SIGKILL)
                    process.wait(timeout=30)
                    return True
            assert process.wait(timeout=300) == 0
            return False

        run(None)  # the backfill
        wanted = dict.fromkeys(range(1, ISSUES + 1), "TODO")
        operator = httpx.Client(
            base_url=emulator.base_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
        )
        kills = 0
        with operator:
            for round_number in range(ROUNDS):
                for number in dice.sample(sorted(wanted), 20):
                    wanted[number] = dice.choice(sorted(WRITE_BACK))
                    uid = task_uid("helpdesk", str(number))
                    answer = operator.patch(f"/tasks/{uid}", json={"status": wanted[number]})
                    assert answer.status_code == 200, answer.text
                for number in dice.sample(sorted(wanted), 10):
                    redmine.touch(number, subject=f"Issue {number}, edit {round_number}")
                kills += run(kill_after=dice.uniform(0.05, 1.5))
        for _ in range(2):
            run(None)

        assert kills >= ROUNDS // 2, f"only {kills} of {ROUNDS} runs were killed"
        statuses = {n: redmine.issues[n]["status"]["name"] for n in wanted}
        assert statuses == {n: WRITE_BACK[s] for n, s in wanted.items()}
        tasks = tasks_by_ticket(emulator)
        assert {n: tasks[str(n)]["status"] for n in wanted} == wanted
        assert {n: tasks[str(n)]["fields"]["source_status"] for n in wanted} == statuses
        titles = {n: tasks[str(n)]["fields"]["title"] for n in wanted}
        assert titles == {n: f"#{n} {redmine.issues[n]['subject']}" for n in wanted}
        # Applied once: no issue was sent the same status twice in a row (a write repeated
        # after a kill finds the issue there already and sends nothing).
        sent: dict[int, list[int]] = {}
        for number, body in redmine.writes:
            sent.setdefault(number, []).append(body["issue"]["status_id"])
        repeated = {n: ids for n, ids in sent.items() if any(a == b for a, b in pairwise(ids))}
        assert repeated == {}
        assert all(FORWARD[statuses[n]] == wanted[n] for n in wanted)
        print(f"\n{ROUNDS} rounds, {kills} kills, {len(redmine.writes)} writes to Redmine")

    store = StateStore.open(state_url)
    try:
        assert store.failed_items("helpdesk") == []
        assert WriteBackLedger(store).rows("helpdesk") == []
    finally:
        store.close()
