"""`python -m bench.fleet`: the fleet figure runs and counts right (never a time).

Two real daemons share a throwaway PostgreSQL database and six idle jsonl
connectors on a one-second schedule; one is killed -9 in the middle of the
window. The test asserts what was counted: passes seen in the replicas'
logs, both replicas listed, every ticket (the ones added at the kill too) in
the emulator, every connector passing again after the kill, no stray line. How fast any of
it was is the benchmark's business, not this test's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.fleet_run import TICKETS

REPO = Path(__file__).resolve().parents[2]
HANG_GUARD_S = 600
"""Only stops a hung run; this one takes well under a minute."""


@pytest.mark.postgres
def test_the_fleet_figure_counts_both_replicas_passes_and_every_ticket_through_a_kill(
    postgres_database: str, tmp_path: Path
) -> None:
    connectors = 6
    done = subprocess.run(
        [sys.executable, "-m", "bench.fleet", "--connectors", str(connectors),
         "--replicas", "2", "--interval", "1", "--warmup", "2", "--measure", "8",
         "--lease-ttl", "3", "--kill", "--state-url", postgres_database,
         "--workdir", str(tmp_path), "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=HANG_GUARD_S, check=False,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr[-3000:]
    figure = json.loads(done.stdout)
    assert figure["checks"] == {"every_ticket_in_fragment": True, "passes_observed": True}
    # The connectors' tickets, and the one added to each after the kill.
    expected = connectors * (TICKETS + 1)
    assert figure["tickets"] == {"expected": expected, "in_fragment": expected}
    assert figure["passes"]["ok"] > 0
    assert set(figure["replica_share"]) == set(figure["replica_attempts"]) == {"r0", "r1"}
    assert figure["strays"] == {"r0": 0, "r1": 0}
    assert figure["kill"]["connectors_passed_again"] == connectors
    # The survivor's /metrics answered; the killed replica is not scraped.
    assert set(figure["metrics_s"]) == {"r0"}
    assert figure["metrics_failed"] == 0
    assert {target["name"] for target in figure["targets"]} >= {
        "passes_per_interval", "busy_share", "max_gap", "cpu_per_pass", "metrics_s",
        "tracebacks", "kill_recovery",
    }  # fmt: skip
