"""Every metric the docs name is one the daemon exports, so an alert copied from them can fire.

The names come from the exposition `/metrics` serves (`sync.shell.metrics.Metrics`),
not from a list kept beside it.
"""

from __future__ import annotations

import re
from pathlib import Path

from doc_blocks import ROOT, documents
from sync.config import build_config
from sync.shell.metrics import Metrics
from sync.state import StateStore

NAMED = re.compile(r"\bfragment_sync_(?!test_)[a-z0-9_]*[a-z0-9]")
"""A metric's name; `fragment_sync_test_…` are the test suite's databases."""
SAMPLE_SUFFIXES = ("", "_total", "_bucket", "_sum", "_count", "_created")


def exported_names(tmp_path: Path) -> set[str]:
    """Every sample name the daemon's `/metrics` can carry, from its own exposition."""
    config = build_config(
        {"connectors": {"helpdesk": {"kind": "jsonl", "path": str(tmp_path / "t.jsonl")}}},
        source="test",
    )
    store = StateStore.open(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        text = Metrics(config, store).exposition().decode()
    finally:
        store.close()
    families = re.findall(r"^# TYPE (\S+) ", text, re.M)
    return {family + suffix for family in families for suffix in SAMPLE_SUFFIXES}


def unknown_names(text: str, exported: set[str]) -> set[str]:
    return set(NAMED.findall(text)) - exported


def test_every_metric_named_in_the_docs_is_exported(tmp_path: Path) -> None:
    exported = exported_names(tmp_path)
    named = {name for path in documents() for name in NAMED.findall(path.read_text())}
    assert len(named) >= 10  # the metrics page names them; a broken pattern finds none

    unknown = {
        f"{name} ({path.relative_to(ROOT)})"
        for path in documents()
        for name in unknown_names(path.read_text(), exported)
    }
    assert not unknown, f"the docs name metrics the daemon doesn't export: {sorted(unknown)}"


def test_an_invented_metric_is_caught(tmp_path: Path) -> None:
    exported = exported_names(tmp_path)
    text = "alert on `fragment_sync_tasks_pushed_total` and `fragment_sync_tickets_teleported`"

    assert unknown_names(text, exported) == {"fragment_sync_tickets_teleported"}
