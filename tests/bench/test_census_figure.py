"""`python -m bench.census`: the census figure runs and counts right (never a time)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_census_figure_finds_exactly_the_gone_ids_in_few_source_queries(
    tmp_path: Path,
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.census", "--n", "25000", "--gone", "17", "--json",
         "--workdir", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr[-2000:]
    figure = json.loads(done.stdout)
    assert (figure["check_ok"], figure["gone"], figure["tracked"]) == (True, 17, 25000)
    assert figure["at_source"] == 25000 - 17
    # Pages of ten times page_size (1,000) ids, plus the connector's column probe and sample.
    assert figure["source_queries"] <= math.ceil((25000 - 17) / 10_000) + 5
    assert figure["peak_rss_mb"] > 0
