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
archived tasks (restored ones come back through the default list). The lists
are the connector's scopes (`RestConnector.scopes`), merged in `updated_at`
order, so the connector stays ordered and the engine checkpoints after every
batch. Marking it unordered instead would make a 30,000-ticket backfill,
interrupted, start over. The cost of the merge is two more requests per pass,
even when nothing was deleted.

Groups. List All Tickets filters by requester, company and the predefined
lists only; the Filter Tickets search that knows `group_id` stops at 300
results and filters `updated_at` by the day. So `group_ids` is kept here: the
whole account is read (every request counts against the account's budget)
and a ticket of another group is yielded as a tombstone, which archives the
task of a ticket moved out of the groups and is dropped for one never sent.

People. A ticket's `responder_id` is an agent's id (its `group_id` is a
group, not a person). `people` reads `GET /api/v2/agents`, 100 agents a
page, until every id asked is found: one request for an account of up to
100 agents, whatever the number of tickets. The email is the agent's
`contact.email`; an id that is no agent's (deleted agents become contacts)
resolves without one.

Write-back (`writes` status and assignee): `PUT /api/v2/tickets/{id}` with
`status` (a code) and `responder_id` (an agent's id, or null), after one `GET`
of the ticket, so a ticket already where it is asked to go is left alone. The
status named in `write_back.status` is an agent's label of the status field
("Resolved", a custom "Waiting on Customer") or its code ("4"): the labels
are read once from `GET /api/v2/ticket_fields?type=default_status`.
Freshdesk lets an agent reopen a closed ticket, but a ticket the source
closed (5) stays closed: Fragment asking for another status is a
`WriteConflict`. A resolved ticket (4) may be reopened. Freshdesk refuses a
value with a 400 "Validation failed", whose errors are quoted in the refusal.
The requests go on a budget of their own (`write_requests_per_minute`).

Conversations (`read_comments`): see `FreshdeskConnector.conversations`.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

import httpx
from pydantic import AwareDatetime, Field, SecretStr

from connectors.base import (
    WHOLE_SECOND_LOOKBACK,
    BadRecord,
    ConnectorOptions,
    Cursor,
    Person,
    SourceComment,
    SourceTicket,
    TicketWrite,
)
from connectors.comments import CommentShape, read_comments
from connectors.errors import FixConfiguration, SourceError, WriteConflict
from connectors.http import (
    Conversations,
    HttpOptions,
    LinkHeaderPaginator,
    PageRequest,
    PaginationLoop,
    Paginator,
    RestConnector,
)
from connectors.http.people import person
from connectors.http.rest import vendor_site
from connectors.records import outside_scope
from connectors.values import whole_seconds_utc
from sync_http.auth import api_key_as_user

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
AGENTS_PATH = "/api/v2/agents"
NOT_AN_AGENT = "no such agent (deleted agents become contacts)"
CONVERSATIONS_PER_PAGE = 100
"""Freshdesk's largest page of a ticket's conversations (30 by default)."""
CONVERSATION_SHAPE = CommentShape(
    body="body_text", author_id="user_id", public=lambda c: c.get("private") is not True
)
"""A reply or note as Freshdesk lists it: `body_text` is the plain text of the HTML `body`;
a private note is private, a reply or public note public."""
STATUS_NAMES = {"2": "Open", "3": "Pending", "4": "Resolved", "5": "Closed"}
"""The built-in statuses, by the code a ticket carries (Freshdesk's API reference)."""
CLOSED = 5
"""The status code of a closed ticket."""
TICKET_FIELDS = "/api/v2/ticket_fields"


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
    group_ids: list[int] = Field(default_factory=list)
    """Only tickets of these groups (ids); empty: every group. Kept by the connector: the whole
    account is read, and a ticket moved to another group archives its task."""
    max_pages: int = Field(default=300, ge=1, le=300)
    """How deep one query may page; Freshdesk refuses page 301."""
    requests_per_minute: float = Field(default=20.0, gt=0)
    """The budget is the account's, shared with every integration; 20 is the smallest plan's
    List Tickets limit."""
    page_size: int = Field(default=100, ge=1, le=100)
    """Tickets per page, up to 100."""
    comment_requests_per_minute: float = Field(default=50.0, gt=0, exclude=True)
    """The budget of conversation requests (one or more per ticket read, when comments are
    read), apart from the ticket lists': Freshdesk limits those lists more tightly than the
    account (50 a minute is a trial account's whole budget, a quarter of the smallest paid
    plan's). Pacing decides no task, so it is kept out of the settings fingerprint."""
    write_requests_per_minute: float = Field(default=50.0, gt=0, exclude=True)
    """The budget of write-back's requests (a read and an update per ticket changed in
    Fragment), apart from the ticket lists': they count against the account's whole budget.
    Pacing decides no task, so it is kept out of the settings fingerprint."""


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
    comments = "requests"
    writes = frozenset({"status", "assignee"})
    write_refusals = frozenset({400, 403, 404, 409, 422})  # 400: "Validation failed"
    _statuses: dict[str, int] | None = None
    """The status field's choices by agent label (casefolded), read at the first write."""

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
            "source_status": "status_name",  # "Pending", added by enrich
        },
        "assignee": "responder_id",
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
        if self.scope is not None:
            params["filter"] = self.scope
        return params

    def people(self, user_ids: Iterable[str]) -> Iterator[Person]:
        """Agents by id, from the agents list (100 a page) until every id asked is found."""
        pending: dict[str, None] = {}
        for user_id in user_ids:
            if user_id.isdigit():
                pending[user_id] = None
            elif user_id:
                yield Person(user_id, None, reason="not a Freshdesk agent id (a number)")
        paginator = LinkHeaderPaginator()
        request: PageRequest | None = PageRequest(AGENTS_PATH, {"per_page": 100})
        while request is not None and pending:
            response, body = self.fetch(request)
            agents = body if isinstance(body, list) else []
            for agent in agents:
                agent_id = str(agent.get("id")) if isinstance(agent, dict) else None
                if agent_id in pending:
                    del pending[agent_id]
                    contact = agent.get("contact") or {}
                    yield person(
                        agent_id,
                        contact.get("email"),
                        contact.get("name"),
                        "the Freshdesk agent has no email",
                    )
            try:
                request = paginator.next_page(request, response, body, len(agents))
            except PaginationLoop as exc:
                raise SourceError(self.name, str(exc)) from None
        for user_id in pending:
            yield Person(user_id, None, reason=NOT_AN_AGENT)

    def write(self, change: TicketWrite) -> None:
        """`PUT /api/v2/tickets/{id}` of what differs from the ticket as shown (see the
        module); nothing when nothing does."""
        if not change.source_id.isdigit():
            raise self.refused(change, "not a Freshdesk ticket id (a number)")
        writer = self.writing
        url = f"/api/v2/tickets/{change.source_id}"
        ticket = writer.lookup(PageRequest(url))
        if not isinstance(ticket, dict) or ticket.get("deleted") is True:
            raise self.refused(change, "the ticket is gone (deleted in Freshdesk)")
        update: dict[str, Any] = {}
        if change.status is not None:
            code = self._status_code(change.status)
            current = ticket.get("status")
            if current == CLOSED and code != CLOSED:
                raise WriteConflict(
                    self.name,
                    change.source_id,
                    "+".join(change.fields),
                    change.status,
                    "the ticket is Closed in Freshdesk: the source closed it, and that wins "
                    "over Fragment's status",
                )
            if current != code:
                update["status"] = code
        if change.assign:
            responder = change.assignee_id
            if responder is not None and not responder.isdigit():
                raise self.refused(change, f"{responder!r} is not a Freshdesk agent id")
            number = None if responder is None else int(responder)
            if ticket.get("responder_id") != number:
                update["responder_id"] = number
        if not update:
            return  # already there
        response = writer.send_write("PUT", url, update)
        if response.status_code < 300:
            return
        if response.status_code == 404:
            raise self.refused(change, "the ticket is gone (Freshdesk answered 404)")
        said = _freshdesk_said(response)
        raise self.refused(change, f"Freshdesk answered {response.status_code}: {said}")

    def _status_code(self, name: str) -> int:
        """The code of the status whose agent label is `name` (any case), or `name` itself
        when it is a code the field has. Raises `FixConfiguration`."""
        if self._statuses is None:
            _response, body = self.writing.fetch(
                PageRequest(TICKET_FIELDS, {"type": "default_status"})
            )
            fields = body if isinstance(body, list) else []
            field = next(
                (f for f in fields if isinstance(f, dict) and f.get("name") == "status"), {}
            )
            choices = field.get("choices")
            self._statuses = {
                str(labels[0]).casefold(): int(code)
                for code, labels in (choices.items() if isinstance(choices, dict) else [])
                if str(code).isdigit() and isinstance(labels, list) and labels
            }
        wanted = name.strip()
        if wanted.isdigit() and int(wanted) in self._statuses.values():
            return int(wanted)
        found = self._statuses.get(wanted.casefold())
        if found is None:
            known = ", ".join(f"{label} ({code})" for label, code in self._statuses.items())
            raise FixConfiguration(
                f"connector {self.name!r}: Freshdesk has no status {name!r} "
                f"(it has: {known or 'none'})",
                key=f"connectors.{self.name}.write_back.status",
            )
        return found

    def scopes(self) -> Sequence[str | None]:
        """The default list, then `filter=deleted` and `filter=spam` as configured."""
        lists: list[str | None] = [None]
        if self.options.include_deleted:
            lists.append("deleted")
        if self.options.include_spam:
            lists.append("spam")
        return lists

    def is_deleted(self, record: Mapping[str, Any]) -> bool:
        flagged = record.get("deleted") is True or record.get("spam") is True
        elsewhere = outside_scope(record, {"group_id": self.options.group_ids})
        return self.scope is not None or flagged or elsewhere

    def conversations(self, tickets: Sequence[SourceTicket]) -> Conversations:
        """Each ticket's replies and notes: `GET /api/v2/tickets/{id}/conversations`.

        One request per 100 conversations of each ticket read (the list says
        nothing of a ticket's conversations, so a ticket without any costs one
        request too), on a budget of their own (`comment_requests_per_minute`).
        The ticket's description is not a conversation and is not among them.
        A private note is private. A ticket gone since it was listed (404)
        keeps `comments` None.
        """
        reader = self.commenting
        found: dict[str, list[SourceComment] | BadRecord | None] = {}
        for ticket in tickets:
            path = f"/api/v2/tickets/{ticket.source_id}/conversations"
            request = PageRequest(path, {"per_page": CONVERSATIONS_PER_PAGE})
            raw = reader.listing(request, LinkHeaderPaginator())
            found[ticket.source_id] = (
                None if raw is None else read_comments(ticket, raw, CONVERSATION_SHAPE)
            )
        return found

    def enrich(self, record: dict[str, Any]) -> dict[str, Any]:
        domain = self.options.domain
        site = vendor_site(domain, "freshdesk.com") if domain else self.options.base_url
        return {
            **record,
            "web_url": f"{site}/a/tickets/{record.get('id')}",
            "status_name": status_name(record.get("status")),
        }


def _freshdesk_said(response: httpx.Response) -> str:
    """Freshdesk's words in an error answer: each of `errors` as "field: message (code)"
    (400 "Validation failed"), else its `message` or `description`, else the text."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if not isinstance(body, dict):
        return response.text[:200]
    errors = body.get("errors")
    said = [
        f"{error.get('field')}: {error.get('message')} ({error.get('code')})"
        for error in (errors if isinstance(errors, list) else [])
        if isinstance(error, dict)
    ]
    if said:
        return f"{body.get('description') or 'Validation failed'}: {'; '.join(said)}"
    return str(body.get("message") or body.get("description") or response.text[:200])


def status_name(code: object) -> str | None:
    """Freshdesk's name for a status code; a custom status's code as text (its name is
    not in the ticket: it lives in the ticket fields' choices); None for no status."""
    if code is None:
        return None
    return STATUS_NAMES.get(str(code), str(code))
