"""The built-in demo: what `python -m sync run --once` does when there is no config.

The bundled tickets (generated from a fixed seed by `sync_demo`) go through
the `jsonl` connector into an emulator of Fragment started in this process,
with state, tickets and the emulator's data under `./.sync/`. A second run
pushes nothing; edit `.sync/demo/tickets.jsonl` and run again to see only the
changed tickets pushed. Its files are its owner's alone (0600, directories 0700),
as the state's are: they hold tickets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sync.config import Config, build_config
from sync_demo import DEMO_COUNT, DEMO_MAPPING, DEMO_SEED, generate_tickets, write_jsonl

DEMO_DIR = Path(".sync")
DEMO_TOKEN = "demo-token-not-a-secret"  # noqa: S105 (the in-process emulator's only token)


def demo_config(base_url: str, directory: Path = DEMO_DIR) -> Config:
    """The demo's configuration, pointing at an emulator at `base_url`."""
    tickets = directory / "demo" / "tickets.jsonl"
    raw: dict[str, Any] = {
        "fragment": {"url": base_url, "token": DEMO_TOKEN, "requests_per_minute": 6000},
        "state": {"url": f"sqlite:///{directory / 'state.db'}"},
        "connectors": {
            "demo": {
                "kind": "jsonl",
                "path": str(tickets),
                "deleted_field": "deleted",
                "mapping": DEMO_MAPPING,
            }
        },
    }
    return build_config(raw, source="built-in demo")


def ensure_demo_tickets(directory: Path = DEMO_DIR) -> Path:
    """Write the bundled tickets under `directory` unless they are already there.

    The emulator's database (`emulator.db`) is created there too, private
    like the tickets, before the emulator opens it.
    """
    from sync.state import create_private_file

    path = directory / "demo" / "tickets.jsonl"
    if not path.exists():
        create_private_file(path)
        write_jsonl(path, generate_tickets(DEMO_COUNT, DEMO_SEED))
    create_private_file(directory / "emulator.db")
    return path
