"""The naive client (figure 3): one `PUT /tasks/{uid}` per ticket, as the API docs' upsert example.

The baseline the real sync is compared with. It reads the first SAMPLE
tickets through the config's connector, then, timed, maps each with the real
`Mapper` and upserts it on its own request over one keep-alive connection:
no batching, no diff, no state. Run as a script, measured like the others:

    python bench/naive.py CONFIG SAMPLE

Prints `{"tickets", "seconds", "statuses"}`: the timed loop only, so the
interpreter's start-up is not held against it.
"""

from __future__ import annotations

import itertools
import json
import sys
import time
from collections import Counter
from pathlib import Path

import httpx

from connectors.base import SourceTicket
from connectors.registry import connector_class
from sync.config import load_config
from sync.mapping import Mapper


def read_sample(config_path: Path, sample: int) -> tuple[Mapper, list[SourceTicket], str, str]:
    """The mapper, the first `sample` tickets, and Fragment's URL and token from the config."""
    config = load_config(config_path)
    ((name, connector),) = config.connectors.items()
    source = connector_class(connector.kind)(name, connector.options)
    try:
        pulled = source.pull(None)
        tickets = [t for t in itertools.islice(pulled, sample) if isinstance(t, SourceTicket)]
    finally:
        source.close()
    mapper = Mapper(name, connector.uid_namespace, connector.settings.mapping)
    token = config.fragment.token.get_secret_value() if config.fragment.token else ""
    return mapper, tickets, config.fragment.url, token


def upsert_one_by_one(
    mapper: Mapper, tickets: list[SourceTicket], url: str, token: str
) -> tuple[float, Counter[int]]:
    """Map and PUT each ticket on its own request; the seconds it took and the statuses."""
    statuses: Counter[int] = Counter()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    with httpx.Client(base_url=url, headers=headers, timeout=30.0) as client:
        started = time.perf_counter()
        for ticket in tickets:
            payload = mapper.map(ticket)
            statuses[client.put(f"/tasks/{payload.uid}", content=payload.body).status_code] += 1
        seconds = time.perf_counter() - started
    return seconds, statuses


def main(argv: list[str]) -> int:
    config_path, sample = Path(argv[0]), int(argv[1])
    mapper, tickets, url, token = read_sample(config_path, sample)
    seconds, statuses = upsert_one_by_one(mapper, tickets, url, token)
    print(json.dumps({"tickets": len(tickets), "seconds": seconds, "statuses": statuses}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
