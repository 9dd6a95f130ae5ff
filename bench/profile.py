"""`python -m bench --profile`: one more jsonl backfill under py-spy, and where its CPU went.

Samples only the thread holding the GIL (`py-spy record --gil`), so the
shares are of CPU, not of waiting. Writes the collapsed stacks to
`WORKDIR/runs/profile/backfill.stacks` (speedscope.app and flamegraph.pl read
them) and prints each stage's share. Needs `py-spy` on PATH (`pip install
py-spy`); profiling is separate from the measured figures, which it would slow.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import Counter
from pathlib import Path

from bench.emulator import EmulatorProcess
from bench.process import PYTHON, BenchError
from bench.runner import prepare_scenario
from bench.sources import Corpus, source_copy

STAGES: tuple[tuple[str, str], ...] = (
    ("start-up (imports)", "_find_and_load"),
    ("HTTP (sender threads)", "Ship._push"),
    ("source snapshot (file hash)", "snapshot (connectors/"),
    ("checkpoint (StateStore.commit_batch)", "commit_batch"),
    ("in-flight marks", "mark_in_flight"),
    ("hash lookups", "stored_tasks"),
    ("mapping and encoding (Mapper.map)", "Mapper.map"),
    ("reading: JSON parse", "_parse (connectors/jsonl.py"),
    ("reading: record to ticket", "_ticket (connectors/files.py"),
    ("reading: the rest", "FileConnector.pull"),
    ("run loop", "ConnectorRun._pull"),
)
"""Stage, and a frame that marks it; a sample counts for the first stage its stack shows."""


def profile_backfill(
    corpus: Corpus, emulator: EmulatorProcess, batch: int, rate: int, directory: Path
) -> list[tuple[str, float]]:
    """Backfill `corpus` from jsonl under py-spy; each stage's share of the samples."""
    spy = shutil.which("py-spy")
    if spy is None:
        raise BenchError("--profile needs py-spy on PATH: pip install py-spy")
    # Beside the scenario's directory, which preparing it empties.
    source = source_copy("jsonl", corpus, directory.with_name(f"{directory.name}-source"))
    scenario = prepare_scenario(directory, source, emulator.api_url, batch, rate)
    emulator.reset()
    stacks = directory / "backfill.stacks"
    command = [spy, "record", "--gil", "--rate", "200", "--format", "raw", "-o", str(stacks)]
    command += ["--", PYTHON, "-m", "sync", "run", "--once", "--json"]
    command += ["--config", str(scenario.config)]
    finished = subprocess.run(
        command, cwd=directory, capture_output=True, text=True, check=False, timeout=3600
    )
    if finished.returncode != 0 or not stacks.exists():
        raise BenchError(f"py-spy failed ({finished.returncode}): {finished.stderr[-2000:]}")
    # py-spy writes its own lines to stdout too; the sync's summary is the JSON one.
    document = next(line for line in finished.stdout.splitlines() if line.startswith("{"))
    summary = json.loads(document)["connectors"][0]
    if not summary["ok"] or summary["pushed"] == 0:
        raise BenchError(f"the profiled backfill did not sync: {summary}")
    return stage_shares(stacks)


def stage_shares(stacks: Path) -> list[tuple[str, float]]:
    """Each stage's share of the samples in a collapsed-stack file, largest first."""
    samples: Counter[str] = Counter()
    for line in stacks.read_text(encoding="utf-8").splitlines():
        stack, _, count = line.rpartition(" ")
        stage = next((name for name, frame in STAGES if frame in stack), "other")
        samples[stage] += int(count)
    total = sum(samples.values()) or 1
    return [(stage, count / total) for stage, count in samples.most_common()]
