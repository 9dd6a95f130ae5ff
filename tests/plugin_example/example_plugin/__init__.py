"""An example fragment-sync connector: `kind = "example"` yields a few bundled tickets.

A plugin is a `Connector` subclass (a `kind`, a one-line `summary`, an
`Options` model of its config keys, `pull`) and an entry point in the
`fragment_sync.connectors` group that names it. Installed next to
fragment-sync, it is listed by `python -m sync connectors` and configured
like any built-in: `[connectors.NAME]` with `kind = "example"`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any, ClassVar

from pydantic import Field

from connectors.base import BadRecord, Connector, ConnectorOptions, Cursor, SourceTicket

TICKETS: tuple[dict[str, Any], ...] = (
    {
        "id": "EX-1",
        "title": "Printer on floor 3 jams",
        "status": "open",
        "updated_at": "2026-11-02T09:00:00Z",
    },
    {
        "id": "EX-2",
        "title": "VPN drops every hour",
        "status": "in_progress",
        "updated_at": "2026-11-02T09:05:00Z",
    },
    {
        "id": "EX-3",
        "title": "New laptop for Bo",
        "status": "done",
        "updated_at": "2026-11-02T09:10:00Z",
    },
)


class ExampleOptions(ConnectorOptions):
    count: int = Field(default=len(TICKETS), ge=0, le=len(TICKETS))
    """How many of the bundled tickets to yield."""


class ExampleConnector(Connector):
    kind = "example"
    summary = "a few bundled example tickets (the plugin example)"
    Options = ExampleOptions
    options: ExampleOptions

    default_mapping: ClassVar[dict[str, Any]] = {
        "title": "{title}",
        "status": "status",
        "status_map": {"open": "TODO", "in_progress": "STARTED", "done": "DONE"},
        "external_updated_at": "updated_at",
    }

    def pull(self, since: Cursor | None) -> Iterator[SourceTicket | BadRecord]:
        for record in TICKETS[: self.options.count]:
            updated = dt.datetime.fromisoformat(record["updated_at"])
            if not isinstance(since, dt.datetime) or updated >= since:
                yield SourceTicket(record["id"], updated, record)
