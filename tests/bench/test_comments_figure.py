"""`python -m bench.comments`: the comment sync figure runs and holds its checks (never a time)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_comment_figure_posts_comments_with_no_429_and_no_task_push_delayed() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.comments", "--quick", "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr[-2000:]
    figure = json.loads(done.stdout)
    assert figure["check_ok"] is True
    assert figure["too_many_requests"] == 0
    assert figure["task_requests_delayed_by_comments"] == 0
    assert figure["comments_per_min"] > 0 and figure["tasks_per_min"] > 0
