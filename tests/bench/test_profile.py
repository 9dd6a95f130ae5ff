"""`bench.profile.stage_shares`: collapsed py-spy stacks into each stage's share."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.profile import stage_shares


def test_each_sample_counts_for_the_first_stage_its_stack_shows(tmp_path: Path) -> None:
    stacks = tmp_path / "backfill.stacks"
    stacks.write_text(
        "\n".join(
            [
                # Mapping inside the run loop: the more specific stage wins.
                "main (sync/cli.py:47);ConnectorRun._pull (sync/run.py:360);"
                "Mapper.map (sync/mapping.py:236) 6",
                "main (sync/cli.py:47);ConnectorRun._pull (sync/run.py:358) 2",
                "main (sync/cli.py:47);StateStore.commit_batch (sync/state/__init__.py:300) 1",
                "main (sync/cli.py:47);somewhere_else (x.py:1) 1",
            ]
        ),
        encoding="utf-8",
    )

    shares = dict(stage_shares(stacks))

    assert shares == {
        "mapping and encoding (Mapper.map)": pytest.approx(0.6),
        "run loop": pytest.approx(0.2),
        "checkpoint (StateStore.commit_batch)": pytest.approx(0.1),
        "other": pytest.approx(0.1),
    }
    assert next(iter(shares)) == "mapping and encoding (Mapper.map)"  # largest first
