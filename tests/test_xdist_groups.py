"""The suite's grouping works: tests marked `xdist_group` share one worker.

Modules with a costly fixture (the quick bench, the real Redmine's project) and the
docs' pages (they take the emulator's documented port, 8400) rely on it. pytest 9.2
silently broke it (pytest-dev/pytest-xdist#1386: the group suffix on the node id no
longer took), and those tests then failed at random; this fails at once instead.
"""

from __future__ import annotations

import os

import pytest


@pytest.mark.xdist_group("grouping_self_check")
def test_a_grouped_test_is_scheduled_as_its_group(request: pytest.FixtureRequest) -> None:
    # A worker's own config says dist "no"; xdist sets `loadgroup` on it instead.
    if "PYTEST_XDIST_WORKER" not in os.environ or not request.config.option.loadgroup:
        pytest.skip("only under pytest-xdist's --dist loadgroup (the suite's addopts)")
    assert request.node.nodeid.endswith("@grouping_self_check"), request.node.nodeid
