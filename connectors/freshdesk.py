"""Freshdesk: List All Tickets by `updated_at`, oldest change first, plus deleted and spam.

Calls `GET /api/v2/tickets?updated_since=W&order_by=updated_at&order_type=asc
&per_page=N` with the API key as the Basic user and "X" as the password.
`updated_since` is always sent (1970 or `start_date` on a first pass): without
it Freshdesk lists only tickets created in the last 30 days. It is compared at
whole seconds and read as inclusive.

Paging. Page numbers over a sorted set shift when a ticket changes mid-scan
(it jumps to the end and the one after it is skipped for good), so every query
reads one page and the next starts again at the last `updated_at` seen,
skipping the ids already read there. Only a run of tickets sharing one
`updated_at` pages deeper, following the `link` header. Freshdesk refuses any
page past the 300th with a 400; `max_pages` stops each query before that, and
a run of one `updated_at` longer than the cap fails the pass with "cursor
stopped advancing" rather than looping.

Deletions. The default list hides deleted and spam tickets, so each pass also
reads `filter=deleted` and `filter=spam` from the same watermark; all become
archived tasks (restored ones come back through the default list). The passes
are merged in `updated_at` order, so the connector stays ordered and the engine
checkpoints after every batch. Marking it unordered instead would make a
30,000-ticket backfill, interrupted, start over. The cost of the merge is two
more requests per pass, even when nothing was deleted.
"""

from __future__ import annotations

import datetime as dt
import heapq
import threading
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import httpx
from pydantic import AwareDatetime, Field, SecretStr

from connectors.base import (
    WHOLE_SECOND_LOOKBACK,
    BadRecord,
    ConnectorOptions,
    Cursor,
    SourceTicket,
)
from connectors.http import HttpOptions, LinkHeaderPaginator, Paginator, RestConnector
from connectors.http.rest import vendor_site
from connectors.values import whole_seconds_utc
from sync_http.auth import api_key_as_user

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class FreshdeskOptions(HttpOptions):
    site_option = ("domain", "freshdesk.com")
    domain: str | None = None
    """`acme` for acme.freshdesk.com; gives `base_url` and the agent links."""
    api_key: SecretStr
    """An agent's API key; the agent needs global ticket scope to see every ticket."""
    start_date: AwareDatetime | None = None
    """Where the first pass starts (default: 1970, every ticket)."""
    include_deleted: bool = True
    """Read `filter=deleted` too, so deleted tickets archive their tasks."""
    include_spam: bool = True
    """Read `filter=spam` too, so tickets marked as spam archive their tasks."""
    max_pages: int = Field(default=300, ge=1, le=300)
    """How deep one query may page; Freshdesk refuses page 301."""
    requests_per_minute: float = Field(default=20.0, gt=0)
    """The budget is the account's, shared with every integration; 20 is the smallest plan's
    List Tickets limit."""
    page_size: int = Field(default=100, ge=1, le=100)
    """Tickets per page, up to 100."""


class FreshdeskConnector(RestConnector):
    kind = "freshdesk"
    summary = "Freshdesk tickets, deleted and spam included; needs domain and an agent's api_key"
    Options = FreshdeskOptions
    options: FreshdeskOptions

    path = "/api/v2/tickets"
    records_path = ""
    cursor_path = "updated_at"
    default_lookback = WHOLE_SECOND_LOOKBACK
    cursors_from_source_clock = True
    reanchor_after_pages = 1
    max_pages_per_query = 300

    ticket_filter: str | None = None
    """The list this instance reads: None for the default one, "deleted" or "spam"."""

    default_mapping: ClassVar[dict[str, Any]] = {
        "title": "#{id} {subject}",
        "url": "{web_url}",
        "status": "status",
        "status_map": {"2": "TODO", "3": "STARTED", "4": "DONE", "5": "DONE"},
        "due_at": "due_by",
        "external_created_at": "created_at",
        "external_updated_at": "updated_at",
        "fields": {
            "priority": "priority",
            "fr_due_by": "fr_due_by",
            "type": "type",
            "group_id": "group_id",
            "requester_id": "requester_id",
            "responder_id": "responder_id",
            "tags": "tags",
        },
    }

    def __init__(
        self, name: str, options: ConnectorOptions, stop: threading.Event | None = None
    ) -> None:
        super().__init__(name, options, stop)
        # The option lets tests (or a cautious operator) lower the cap.
        self.max_pages_per_query = self.options.max_pages

    def auth(self) -> httpx.Auth:
        return api_key_as_user(self.options.api_key)

    def paginator(self) -> Paginator:
        return LinkHeaderPaginator()

    def params(self, since: Cursor | None) -> dict[str, Any]:
        start = since if isinstance(since, dt.datetime) else self.options.start_date or EPOCH
        params: dict[str, Any] = {
            # Freshdesk reads it as UTC and compares whole seconds; flooring keeps the
            # bound inclusive. A `start_date` may carry any offset: convert, don't relabel.
            "updated_since": whole_seconds_utc(max(start, EPOCH)),
            "order_by": "updated_at",
            "order_type": "asc",
            "per_page": self.options.page_size,
        }
        if self.ticket_filter is not None:
            params["filter"] = self.ticket_filter
        return params

    def is_deleted(self, record: Mapping[str, Any]) -> bool:
        flagged = record.get("deleted") is True or record.get("spam") is True
        return self.ticket_filter is not None or flagged

    def enrich(self, record: dict[str, Any]) -> dict[str, Any]:
        domain = self.options.domain
        site = vendor_site(domain, "freshdesk.com") if domain else self.options.base_url
        return {**record, "web_url": f"{site}/a/tickets/{record.get('id')}"}

    def pull(self, since: Cursor | None) -> Iterator[SourceTicket | BadRecord]:
        """The default, deleted and spam lists (as configured), merged in `updated_at` order."""
        filters: list[str | None] = [None]
        if self.options.include_deleted:
            filters.append("deleted")
        if self.options.include_spam:
            filters.append("spam")
        passes = [RestConnector.pull(self._reading(f), since) for f in filters]
        return heapq.merge(*passes, key=_merge_key)

    def _reading(self, ticket_filter: str | None) -> FreshdeskConnector:
        """A connector reading the list `ticket_filter` over this one's session and budget."""
        if ticket_filter is None:
            return self
        view = type(self)(self.name, self.options, self.stop)
        view._session = self.session
        view.ticket_filter = ticket_filter
        return view


def _merge_key(item: SourceTicket | BadRecord) -> dt.datetime:
    # A record without a readable cursor goes out as soon as it is read.
    return item.cursor if isinstance(item.cursor, dt.datetime) else EPOCH
