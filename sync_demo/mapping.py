"""How the demo's tickets become Fragment tasks: the mapping the built-in demo configures.

The bench and the tests map generated tickets with it too, so it lives beside the data it
reads (field names of `sync_demo.generator`'s tickets), as a plain `[connectors.NAME.mapping]`
table.
"""

from __future__ import annotations

from typing import Any

DEMO_MAPPING: dict[str, Any] = {
    "title": "[{priority}] {subject}",
    "url": "https://support.example.com/tickets/{id}",
    "status": "status",
    "status_map": {
        "new": "TODO",
        "open": "TODO",
        "pending": "STARTED",
        "hold": "STARTED",
        "solved": "DONE",
        "closed": "DONE",
    },
    "due_at": "due_at",
    "assignee_email": "assignee",
    "external_created_at": "created_at",
    "external_updated_at": "updated_at",
    "fields": {
        "country": "requester.country",
        "requesterEmail": "requester.email",
        "priority": "priority",
        "Support Group": "group",
        "channel": "channel",
        "tags": "tags",
    },
}
