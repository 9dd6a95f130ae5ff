"""`python -m bench.compare` runs each checkout's backfill and reports a median for each."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_two_checkouts_are_backfilled_in_turn_and_each_gets_a_median(tmp_path: Path) -> None:
    other = tmp_path / "other"  # a second tree: this checkout's packages, copied
    for package in ("sync", "connectors"):
        shutil.copytree(REPO / package, other / package)
    options = ["--rounds", "2", "--n", "400", "--batch", "100"]
    done = subprocess.run(
        [sys.executable, "-m", "bench.compare", str(REPO), str(other), *options],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("400 jsonl tickets, batch 100, 2 rounds; floor ")
    for tree, line in zip((REPO, other), lines[1:], strict=True):
        assert line.startswith(f"{tree}: median ")
        rounds = re.search(r"rounds (.*)$", line)
        assert rounds is not None and len(rounds.group(1).split(", ")) == 2
    assert done.stderr.count("round 2:") == 2  # both trees ran in the second round too
