"""Intercom: conversations and tickets through the Search API, oldest change first.

Each of `objects` is its own query (`RestConnector.scopes`), merged in
`updated_at` order: `POST /conversations/search` and `POST /tickets/search`
with `{"query": {"field": "updated_at", "operator": ">", "value": W - 1},
"sort": {"field": "updated_at", "order": "ascending"}, "pagination":
{"per_page": 150}}`, a Bearer access token, and the `Intercom-Version` header
pinned (`intercom_version`, 2.14 by default: the shapes below are that
version's).

- Whole seconds, no `>=`: `updated_at` is Unix seconds and the search has only
  `>` and `<` for dates (its table says "greater (or equal)"; integrators read
  it as strict). Asking `> W - 1` reads the watermark's whole second under
  either reading; what lies before `W` is dropped, ids read at the bound are
  skipped, and the engine's hash diff absorbs the rest.
- Unsorted search results come in no useful order (an early Airbyte source
  missed records that way): the sort is explicit, ascending.
- "The starting_after context is stateless": a conversation edited between
  two pages moves, and an offset-like cursor would skip the one after it. So
  every page re-anchors: the query is sent again from the last `updated_at`
  read. `starting_after` is followed only while a whole page shares one second.
- Rate limits: a 429 (`rate_limit_exceeded`) with `X-RateLimit-Remaining: 0`
  waits until `X-RateLimit-Reset`, Unix seconds on Intercom's clock, read
  against the answer's `Date` (`sync_http.ratelimit.wait_from_headers`). The
  limits are per app and per workspace (10,000 and 25,000 a minute for a
  private app, enforced in 10-second windows), shared with the workspace's
  other integrations: `requests_per_minute` stays well below them.
- A ticket is a conversation too, with the same id (`POST
  /conversations/{id}/convert` keeps it): ids are Intercom's, so a
  conversation turned into a ticket keeps its task. A conversation that says
  it is a ticket (`ticket` set, API 2.16+) is left to the tickets query when
  both are read, so it is one task, not two versions fighting.
- Deletions: deleting a conversation or ticket (API 2.13+) leaves nothing in
  search; its show answers 404. A census (`scope_ids`) finds them. (API 2.16
  adds `GET /conversations/deleted`, not read here.)
- People: `admin_assignee_id` names an admin (teammate); `people` lists
  `GET /admins` once per call and answers every id from it.
- Conversation (`read_comments`): `GET /conversations/{id}` or `GET
  /tickets/{id}` per ticket read, one request each: the opening message and
  the parts with a body (at most the last 500, Intercom's cap); a `note` is
  private.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, Literal

import httpx
from pydantic import Field, SecretStr, field_validator, model_validator

from connectors.base import (
    WHOLE_SECOND_LOOKBACK,
    BadRecord,
    ConnectorOptions,
    Cursor,
    Person,
    SourceComment,
    SourceTicket,
)
from connectors.comments import CommentShape, read_comments
from connectors.http import (
    Conversations,
    HttpOptions,
    NextTokenPaginator,
    PageRequest,
    Paginator,
    RestConnector,
)
from connectors.http.people import NO_SUCH_USER, person
from connectors.values import HttpUrl
from sync_http.auth import bearer

Region = Literal["us", "eu", "au"]
IntercomObject = Literal["conversations", "tickets"]
OBJECTS: tuple[IntercomObject, ...] = ("conversations", "tickets")

API_HOSTS: dict[str, str] = {
    "us": "https://api.intercom.io",
    "eu": "https://api.eu.intercom.io",
    "au": "https://api.au.intercom.io",
}
"""Intercom's API host for a workspace hosted in each region."""
INBOX = "https://app.intercom.com/a/inbox/{workspace}/inbox/conversation/{id}"
"""A conversation's (or ticket's) page in Intercom's inbox."""
MAX_PER_PAGE = 150

PART_SHAPE = CommentShape(
    body="body",
    author="author.name",
    author_id="author.id",
    public=lambda part: part.get("part_type") != "note",
)
"""A conversation or ticket part: an internal note (`part_type: note`) is private."""


class IntercomOptions(HttpOptions):
    base_url: HttpUrl = API_HOSTS["us"]
    """The API's URL: by default the `region`'s. Credentials are sent only to its scheme,
    host and port."""
    access_token: SecretStr
    """An access token of the workspace's app (Developer Hub > your app > Authentication)."""
    region: Region = "us"
    """Where the workspace is hosted: `us`, `eu` or `au`; gives `base_url` when that is
    unset (https://api.intercom.io, api.eu.intercom.io, api.au.intercom.io)."""
    objects: list[IntercomObject] = Field(default_factory=lambda: [*OBJECTS], min_length=1)
    """What to read: `conversations`, `tickets` or both; each is a query of its own."""
    intercom_version: str = "2.14"
    """The `Intercom-Version` header: the API version whose shapes the connector reads."""
    workspace_id: str | None = None
    """The workspace's id (`app.id_code`), for links into the inbox; read once from
    `GET /me` when unset."""
    page_size: int = Field(default=MAX_PER_PAGE, ge=1, le=MAX_PER_PAGE)
    """Conversations or tickets per request, up to 150."""
    requests_per_minute: float = Field(default=1000.0, gt=0)
    """The client-side request budget: Intercom allows a private app 10,000 a minute, in
    10-second windows, shared with the workspace's other apps (25,000)."""

    @model_validator(mode="before")
    @classmethod
    def _base_url_from_region(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and not data.get("base_url"):
            region = data.get("region", "us")
            if region in API_HOSTS:
                return {**data, "base_url": API_HOSTS[region]}
        return data

    @field_validator("objects")
    @classmethod
    def _each_once(cls, objects: list[IntercomObject]) -> list[IntercomObject]:
        if len(set(objects)) != len(objects):
            raise ValueError("list each of conversations and tickets once")
        return objects


class IntercomConnector(RestConnector):
    kind = "intercom"
    summary = "Intercom conversations and tickets (Search API); needs an access_token"
    Options = IntercomOptions
    options: IntercomOptions

    cursor_path = "updated_at"
    reanchor_after_pages = 1
    default_lookback = WHOLE_SECOND_LOOKBACK
    cursors_from_source_clock = True
    comments = "requests"

    default_mapping: ClassVar[dict[str, Any]] = {
        "title": "{subject}",
        "url": "{web_url}",
        "status": "state_name",
        "status_map": {
            # conversations' `state`
            "open": "TODO",
            "snoozed": "STARTED",
            "closed": "DONE",
            # tickets' `ticket_state.category`
            "submitted": "TODO",
            "in_progress": "STARTED",
            "waiting_on_customer": "STARTED",
            "resolved": "DONE",
        },
        "assignee": "assignee_id",
        "external_created_at": "created_at",
        "external_updated_at": "updated_at",
        "fields": {
            "object": "object",
            "ticket_number": "ticket_id",
            "ticket_type": "ticket_type.name",
            "priority": "priority",
            "team_assignee_id": "team_assignee_id",
            # Intercom's own state word ("snoozed", "waiting_on_customer").
            "source_status": "state_name",
        },
    }

    query_field: str = "updated_at"
    """The date the search filters and sorts on: `updated_at`, or `created_at` for a census."""

    def __init__(
        self, name: str, options: ConnectorOptions, stop: threading.Event | None = None
    ) -> None:
        super().__init__(name, options, stop)
        self._workspace: dict[str, str] = {}
        """The workspace id read from `/me`, shared with the views `reading` makes."""

    def auth(self) -> httpx.Auth:
        return bearer(self.options.access_token)

    def headers(self) -> dict[str, str]:
        return {"Intercom-Version": self.options.intercom_version}

    def scopes(self) -> Sequence[str | None]:
        return list(self.options.objects)

    def paginator(self) -> Paginator:
        return NextTokenPaginator(
            "pages.next.starting_after", "pagination.starting_after", in_body=True
        )

    def first_request(self, since: Cursor | None, paginator: Paginator) -> PageRequest:
        after = math.floor(since.timestamp()) - 1 if isinstance(since, dt.datetime) else -1
        body = {
            "query": {"field": self.query_field, "operator": ">", "value": max(after, 0)},
            "sort": {"field": self.query_field, "order": "ascending"},
            "pagination": {"per_page": self.options.page_size},
        }
        return PageRequest(f"/{self.scope}/search", method="POST", json=body)

    def records(self, body: Any, path: str | None = None) -> list[Any]:
        return super().records(body, path if path is not None else str(self.scope))

    def keep(self, record: Mapping[str, Any]) -> bool:
        both = "tickets" in self.options.objects
        return not (self.scope == "conversations" and both and record.get("ticket"))

    def enrich(self, record: dict[str, Any]) -> dict[str, Any]:
        if self.query_field != "updated_at":
            return record  # a census reads ids only
        ticket = self.scope == "tickets"
        if ticket:
            attributes = record.get("ticket_attributes")
            title = attributes.get("_default_title_") if isinstance(attributes, dict) else None
            subject = title or f"Ticket {record.get('ticket_id') or record.get('id')}"
            state = record.get("ticket_state")
            state_name = state.get("category") if isinstance(state, dict) else state
        else:
            source = record.get("source")
            found = source.get("subject") if isinstance(source, dict) else None
            subject = record.get("title") or found or f"Conversation {record.get('id')}"
            state_name = record.get("state")
        assignee = record.get("admin_assignee_id")
        return {
            **record,
            "object": "ticket" if ticket else "conversation",
            "subject": subject,
            "state_name": state_name,
            "assignee_id": None if assignee in (None, 0, "0", "") else str(assignee),
            "web_url": INBOX.format(workspace=self.workspace_id(), id=record.get("id")),
        }

    def workspace_id(self) -> str:
        """The workspace's id: the option, else `app.id_code` of `GET /me` (once)."""
        if self.options.workspace_id:
            return self.options.workspace_id
        if "id" not in self._workspace:
            _response, body = self.fetch(PageRequest("/me"))
            app = body.get("app") if isinstance(body, dict) else None
            code = app.get("id_code") if isinstance(app, dict) else None
            self._workspace["id"] = str(code or "_")
        return self._workspace["id"]

    def scope_ids(self) -> Iterator[str]:
        """Every conversation and ticket in `objects`, by id, oldest created first.

        The same search, on `created_at` instead of `updated_at`, re-anchored on
        the last creation time read (a time that never changes): a deletion
        while the listing runs shifts nothing, where the stateless
        `starting_after` would skip the record after it and archive a live task.
        Whole records come back (the search can't give ids only), 150 a request.
        """
        for scope in self.options.objects:
            view = self.reading(scope)
            assert isinstance(view, IntercomConnector)
            view.query_field = view.cursor_path = "created_at"
            for item in view.pull_scope(None):
                if isinstance(item, SourceTicket):
                    yield item.source_id

    def people(self, user_ids: Iterable[str]) -> Iterator[Person]:
        """Every id from one `GET /admins`: the workspace's teammates, with their emails."""
        wanted = [user_id for user_id in dict.fromkeys(user_ids) if user_id]
        if not wanted:
            return
        _response, body = self.fetch(PageRequest("/admins"))
        admins = body.get("admins") if isinstance(body, dict) else None
        known: dict[str, Any] = {
            str(admin["id"]): admin
            for admin in (admins if isinstance(admins, list) else [])
            if isinstance(admin, dict) and admin.get("id") is not None
        }
        for user_id in wanted:
            admin = known.get(user_id)
            if admin is None:
                yield Person(user_id, None, reason=f"{NO_SUCH_USER}: not an admin of the workspace")
            else:
                yield person(user_id, admin.get("email"), admin.get("name"), _NO_EMAIL)

    def conversations(self, tickets: Sequence[SourceTicket]) -> Conversations:
        """Each one's opening message and parts: `GET /conversations/{id}` or `/tickets/{id}`.

        One request per conversation or ticket read. Parts without a body
        (assignments, state changes) are no comments. Gone since it was listed
        (404): `comments` stays None.
        """
        found: dict[str, list[SourceComment] | BadRecord | None] = {}
        for ticket in tickets:
            kind = "tickets" if ticket.record.get("object") == "ticket" else "conversations"
            body = self.lookup(PageRequest(f"/{kind}/{ticket.source_id}"))
            if not isinstance(body, dict):
                found[ticket.source_id] = None
                continue
            found[ticket.source_id] = read_comments(ticket, _parts(body, kind), PART_SHAPE)
        return found


_NO_EMAIL = "the Intercom admin has no email"


def _parts(body: Mapping[str, Any], kind: str) -> list[Any]:
    """The comments of a conversation's or ticket's show: its opening message (a
    conversation's `source`), then its parts with a body."""
    key = "ticket_parts" if kind == "tickets" else "conversation_parts"
    listing = body.get(key)
    parts = listing.get(key) if isinstance(listing, dict) else None
    found: list[Any] = []
    source = body.get("source")
    if kind == "conversations" and isinstance(source, dict) and source.get("body"):
        found.append({**source, "created_at": body.get("created_at"), "part_type": "comment"})
    for part in parts if isinstance(parts, list) else []:
        if not isinstance(part, dict) or part.get("body"):
            found.append(part)
    return found
