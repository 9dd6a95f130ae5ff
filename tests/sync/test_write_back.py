"""Two-way sync: an operator's change in Fragment written back to its ticket.

Configuration first: write-back is off by default, and a connector that can't
write what the config asks of it fails the start naming the key.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sync.config import build_config
from sync.errors import ConfigError


def connector_config(kind: str, **keys: Any) -> Any:
    options = {
        "jsonl": {"path": "/tmp/t.jsonl"},
        "redmine": {"base_url": "http://127.0.0.1:9", "api_key": "k" * 40},
    }[kind]
    raw = {"connectors": {"desk": {"kind": kind, **options, **keys}}}
    return build_config(raw, source="test").connectors["desk"]


def test_write_back_is_off_unless_configured_and_names_what_it_writes() -> None:
    assert not connector_config("redmine").settings.write_back.enabled

    both = connector_config(
        "redmine", write_back={"status": {"DONE": "Resolved"}, "assignee": True}
    )

    assert both.settings.write_back.fields == ("status", "assignee")
    assert both.settings.write_back.status == {"DONE": "Resolved"}


@pytest.mark.parametrize(
    ("write_back", "key"),
    [
        ({"status": {"DONE": "closed"}}, "connectors.desk.write_back.status"),
        ({"assignee": True}, "connectors.desk.write_back.assignee"),
    ],
)
def test_a_connector_that_cant_write_refuses_write_back_naming_the_key(
    write_back: dict[str, Any], key: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        connector_config("jsonl", write_back=write_back)

    assert caught.value.key == key
    assert "can't write" in str(caught.value) and "it can write: nothing" in str(caught.value)


def test_a_status_outside_fragments_three_or_an_empty_name_is_refused() -> None:
    with pytest.raises(ConfigError) as unknown:
        connector_config("redmine", write_back={"status": {"CLOSED": "Closed"}})
    with pytest.raises(ConfigError) as empty:
        connector_config("redmine", write_back={"status": {"DONE": " "}})

    assert unknown.value.key.startswith("connectors.desk.write_back.status")
    assert empty.value.key == "connectors.desk.write_back.status"


def test_the_command_exits_2_naming_the_key_before_any_work(tmp_path: Path) -> None:
    config = tmp_path / "sync.toml"
    config.write_text(
        f"""
[connectors.desk]
kind = "jsonl"
path = "{tmp_path / "t.jsonl"}"
write_back = {{ status = {{ DONE = "closed" }} }}
"""
    )

    done = subprocess.run(
        [sys.executable, "-m", "sync", "run", "--once", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 2, done.stdout + done.stderr
    assert "connectors.desk.write_back.status" in done.stderr
