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

from connectors.values import parse_datetime
from fragment_emulator import Emulator
from sync.state import StateStore
from sync_demo import generate_tickets
from synckit import (
    TOKEN,
    live_ids,
    read_tickets,
    restartable_config_text,
    tasks_by_ticket,
    write_tickets,
)

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
