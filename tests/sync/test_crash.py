"""A sync process killed with SIGKILL at random moments, restarted each time, ends exact.

The sync runs as a real process against the emulator in this one; each kill
lands wherever it lands (mid-request, mid-commit, mid-read). The final state
must hold every live ticket once, with its latest content, and a watermark at
the source's maximum cursor.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from connectors.values import parse_datetime
from fragment_emulator import Emulator
from sync.state import StateStore
from sync.state.comments import CommentLedger
from sync_demo import generate_tickets
from synckit import (
    TOKEN,
    live_ids,
    read_tickets,
    restartable_config_text,
    tasks_by_ticket,
    write_tickets,
)

pytestmark = pytest.mark.crash

KILLS = 8


def test_sigkill_at_random_moments_then_restart_ends_with_every_ticket_once(
    tmp_path: Path,
) -> None:
    tickets_path = write_tickets(tmp_path / "tickets.jsonl", generate_tickets(3000, seed=5))
    tickets = read_tickets(tickets_path)
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    dice = random.Random(2026)
    with Emulator(tokens=[TOKEN]) as emulator:
        emulator.faults.latency = 0.02  # long enough a pass for kills to land inside it
        config = tmp_path / "sync.toml"
        config.write_text(restartable_config_text(emulator.base_url, tickets_path, state_url, 50))
        environment = {k: v for k, v in os.environ.items() if not k.startswith("SYNC_")}
        command = [sys.executable, "-m", "sync", "run", "--once", "--config", str(config)]

        killed = 0
        for _ in range(KILLS):
            process = subprocess.Popen(
                command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            time.sleep(dice.uniform(0.3, 1.5))
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                killed += 1
            process.wait(timeout=30)
        final = subprocess.run(
            command, env=environment, capture_output=True, text=True, check=False
        )

        assert killed >= KILLS // 2, "most runs must really have been killed mid-way"
        assert final.returncode == 0, final.stderr
        landed = tasks_by_ticket(emulator)
        assert set(landed) == live_ids(tickets)
        for ticket in tickets:
            if not ticket["deleted"]:
                task = landed[str(ticket["id"])]
                assert task["fields"]["title"] == f"[{ticket['priority']}] {ticket['subject']}"

    store = StateStore.open(state_url)
    assert store.watermark("helpdesk") == max(parse_datetime(t["updated_at"]) for t in tickets)
    assert store.failed_items("helpdesk") == []
    store.close()


def test_a_census_killed_at_random_moments_then_rerun_archives_each_gone_task_once(
    tmp_path: Path,
) -> None:
    tickets_path = write_tickets(tmp_path / "tickets.jsonl", generate_tickets(1200, seed=9))
    tickets = read_tickets(tickets_path)
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    dice = random.Random(19)
    with Emulator(tokens=[TOKEN]) as emulator:
        config = tmp_path / "sync.toml"
        config.write_text(restartable_config_text(emulator.base_url, tickets_path, state_url, 10))
        environment = {k: v for k, v in os.environ.items() if not k.startswith("SYNC_")}
        sync = [sys.executable, "-m", "sync", "run", "--once", "--config", str(config)]
        assert (
            subprocess.run(sync, env=environment, capture_output=True, check=False).returncode == 0
        )
        live = sorted(live_ids(tickets), key=int)
        gone = set(live[::4])  # a quarter of the live tickets: over the share, so --force
        write_tickets(tickets_path, [t for t in tickets if str(t["id"]) not in gone])
        emulator.faults.latency = 0.05  # a census long enough for kills to land inside it
        census = [sys.executable, "-m", "sync", "census", "--force", "--config", str(config),
                  "--connector", "helpdesk"]  # fmt: skip

        killed = 0
        for _ in range(KILLS // 2):
            process = subprocess.Popen(
                census, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            time.sleep(dice.uniform(0.5, 2.0))
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                killed += 1
            process.wait(timeout=30)
        final = subprocess.run(census, env=environment, capture_output=True, text=True, check=False)
        again = subprocess.run(census, env=environment, capture_output=True, text=True, check=False)

        assert killed >= 2, "most censuses must really have been killed mid-way"
        assert final.returncode == 0, final.stderr
        landed = tasks_by_ticket(emulator)
        assert {key for key, task in landed.items() if task["archived"]} == gone
        assert set(landed) == set(live)
        # Each gone task was recorded archived once: the last census found nothing left.
        assert again.returncode == 0, again.stderr
        assert " 0 gone " in again.stdout, again.stdout


def test_comment_sync_killed_at_random_moments_then_restarted_posts_every_comment_once(
    tmp_path: Path,
) -> None:
    """POST /tasks/{uid}/comments is not idempotent: a kill between the POST and the state
    write must neither lose the comment nor post it twice (`sync.comments`)."""
    tickets = list(generate_tickets(150, seed=11))
    for ticket in tickets:
        ticket["comments"] = [
            {"id": f"{ticket['id']}-{n}", "created_at": ticket["created_at"],
             "body": f"reply {n} on {ticket['id']}", "author": "Ada", "public": n != 2}
            for n in range(5)
        ]  # fmt: skip
    tickets_path = write_tickets(tmp_path / "tickets.jsonl", tickets)
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    dice = random.Random(33)
    with Emulator(tokens=[TOKEN]) as emulator:
        emulator.faults.latency = 0.02  # each comment a request: kills land mid-POST
        config = tmp_path / "sync.toml"
        config.write_text(
            restartable_config_text(emulator.base_url, tickets_path, state_url, 50).replace(
                'deleted_field = "deleted"\n',
                'deleted_field = "deleted"\ncomments_field = "comments"\n',
            )
            + "\n[connectors.helpdesk.conversation]\nsync = true\nbackfill = true\n"
        )
        environment = {k: v for k, v in os.environ.items() if not k.startswith("SYNC_")}
        command = [sys.executable, "-m", "sync", "run", "--once", "--config", str(config)]

        def posts() -> int:
            counts = emulator.traffic.stats()["counts"]
            return sum(n for key, n in counts.items() if key.startswith("POST /api/v1/tasks/{"))

        killed = 0
        for _ in range(KILLS):
            process = subprocess.Popen(
                command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            # Into its comment posting (past start-up, the lease and the tasks), then a while.
            before, deadline = posts(), time.monotonic() + 60
            while posts() == before and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(dice.uniform(0.0, 0.5))
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                killed += 1
            process.wait(timeout=30)
        final = subprocess.run(command, env=environment, capture_output=True, text=True)

        assert killed >= KILLS // 2, "most runs must really have been killed mid-way"
        assert final.returncode == 0, final.stderr
        landed = tasks_by_ticket(emulator)
        for ticket in tickets:
            if ticket["deleted"]:
                continue
            texts = [
                c["content"] for c in emulator.store.comments(landed[str(ticket["id"])]["uid"])
            ]
            wanted = [f"reply {n} on {ticket['id']}" for n in range(5) if n != 2]
            assert sorted(text.rsplit("\n", 1)[-1] for text in texts) == wanted, ticket["id"]
        # Kills landed between a comment's write-ahead and its answer, and were looked up.
        looked = [r for r in emulator.requests if r["method"] == "GET" and "/comments" in r["path"]]
        assert looked, "no kill landed while a comment was in flight"

    store = StateStore.open(state_url)
    counts = CommentLedger(store).counts("helpdesk")
    store.close()
    live = len(live_ids(tickets))
    assert (counts.pending, counts.failed) == (0, 0)
    assert counts.posted == live * 4  # a deleted ticket's comments are not kept
