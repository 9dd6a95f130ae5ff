"""Zendesk Support: the cursor-based Incremental Ticket Export, oldest change first.

Calls `GET /api/v2/incremental/tickets/cursor.json?start_time=<unix s>&per_page=N`
once per pass, then follows `after_url` until `end_of_stream` is true. Auth is
Basic `{email}/token:{api_token}`; the export endpoints are admin-only.

The export filters and orders on `generated_timestamp` (Unix seconds), not on
`updated_at`: system changes move the first without the second, so a ticket
may come back with `updated_at < start_time`. The cursor is therefore
`generated_timestamp`, compared at whole seconds, inclusive, like `start_time`.
Zendesk withholds changes made in the last minute before each request; they
arrive on the next pass. Deleted tickets stay in the export with `status:
"deleted"` and become archived tasks.

Each pass starts from `start_time` = the stored watermark rather than from a
persisted `after_cursor`: the engine keeps one cursor watermark per connector,
re-reads the watermark's second inclusively and lets the hash diff drop what
it has pushed, so a pass needs no other state, and a full re-read (a mapping
change, `--full`) or a lookback works the same way. The export's own cursor is
a keyset on (generated_timestamp, id), so a bulk update stamping thousands of
tickets with one second pages through without looping.

Groups and brands. The export takes no filter but time, so `group_ids` and
`brand_ids` are kept here: the whole account is read (each request counts
against the export's 10 a minute, whatever the share of tickets kept) and a
ticket of another group or brand is yielded as a tombstone, which archives
the task of a ticket moved out of scope and is dropped for one never sent.
(The Search API filters by group and brand, but caps a query at 1,000
results and is eventually consistent: not a change feed.)

People. The export carries only `assignee_id`; `people` resolves ids to
emails. Each export request asks `include=users`, so Zendesk sideloads the
users the page's tickets name at no extra request; the connector keeps the
last `SEEN_USERS` of them and answers from those first. The rest cost one
`GET /api/v2/users/show_many.json?ids=...` per 100 ids, on the connector's
request budget. A deleted user (`active: false`) resolves without an email;
a suspended one keeps it.

Write-back (`writes` status and assignee): `PUT /api/v2/tickets/{id}.json` with
`{"ticket": {"status", "assignee_id"}}`, after one `GET` of the ticket (cheap,
where an update is not: Zendesk allows 30 updates per ticket in 10 minutes),
so a ticket already where it is asked to go is left alone. The status is one
of Zendesk's six (new, open, pending, hold, solved, closed; a custom status is
its category's); the assignee an agent's or admin's user id, or none. Closed
is the only status that counts as closed: Zendesk locks a closed ticket (422
"closed prevents ticket update" to any change) and that wins over Fragment
(`WriteConflict`), while a solved ticket is one an agent or the requester may
still reopen, so Fragment may too. These requests go on a budget of their own
(`write_requests_per_minute`): they count against the account's limit, not
the export's 10 a minute.

Not here: audits. Comments (`read_comments`): see `ZendeskConnector.conversations`.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

import httpx
from pydantic import AwareDatetime, Field, SecretStr

from connectors.base import (
    BadRecord,
    ConnectorOptions,
    Cursor,
    Person,
    SourceComment,
    SourceTicket,
    TicketWrite,
)
from connectors.comments import CommentShape, read_comments
from connectors.errors import FixConfiguration, WriteConflict
from connectors.http import (
    Conversations,
    HttpOptions,
    NextUrlPaginator,
    PageRequest,
    Paginator,
    RestConnector,
)
from connectors.http.people import SeenPeople, person, resolve_in_batches
from connectors.http.rest import vendor_site
from connectors.records import outside_scope
from sync_http.auth import zendesk_token

START_TIME_LAG = 300
"""Never ask for a `start_time` younger than this many seconds.

Zendesk answers a too recent `start_time` with 422 (its docs say one minute
today, five minutes in the past). Starting earlier is always safe: the bound
is inclusive and what lies before `since` is dropped.
"""
SHOW_MANY = "/api/v2/users/show_many.json"
SHOW_MANY_LIMIT = 100
"""Ids per `users/show_many` request, as Zendesk documents it."""
SEEN_USERS = 10_000
"""Sideloaded users kept for `people`, the oldest dropped first: a few MB at most."""
STATUSES = ("new", "open", "pending", "hold", "solved", "closed")
"""Zendesk's ticket statuses, the values `status` takes (a custom status is its category's)."""
CLOSED_PREVENTS_UPDATE = "closed prevents ticket update"
"""Zendesk's words (422) to any update of a closed ticket."""


COMMENTS_PER_PAGE = 100
"""Zendesk's largest page of a ticket's comments (`page[size]`)."""
COMMENT_SHAPE = CommentShape(
    body="plain_body",
    author="author_name",  # from the side-loaded users (`include=users`)
    author_id="author_id",
    public=lambda c: c.get("public") is not False,
)
"""A ticket comment as Zendesk lists it: `plain_body` is its text without markup; an
internal note (`public: false`) is private."""


class ZendeskOptions(HttpOptions):
    site_option = ("subdomain", "zendesk.com")
    subdomain: str | None = None
    """`acme` for acme.zendesk.com; gives `base_url` and the agent links."""
    email: str
    """An admin's email: the export endpoints are admin-only."""
    api_token: SecretStr
    """That admin's Zendesk API token."""
    start_date: AwareDatetime | None = None
    """Where the first pass starts (default: the beginning, Unix time 0)."""
    group_ids: list[int] = Field(default_factory=list)
    """Only tickets of these groups (ids); empty: every group. Kept by the connector: the whole
    account is read, and a ticket moved to another group archives its task."""
    brand_ids: list[int] = Field(default_factory=list)
    """Only tickets of these brands (ids); empty: every brand. Kept like `group_ids`."""
    requests_per_minute: float = Field(default=10.0, gt=0)
    """The incremental exports allow 10 requests a minute (more with the High Volume add-on)."""
    page_size: int = Field(default=1000, ge=1, le=1000)
    """Tickets per request, up to 1000."""
    comment_requests_per_minute: float = Field(default=100.0, gt=0, exclude=True)
    """The budget of comment requests (one or more per ticket read, when comments are read),
    apart from the export's 10 a minute: they count against the account's Support API limit
    (200 a minute on the smallest plan), which agents' apps share. Pacing decides no task,
    so it is kept out of the settings fingerprint."""
    write_requests_per_minute: float = Field(default=100.0, gt=0, exclude=True)
    """The budget of write-back's requests (a read and an update per ticket changed in
    Fragment), apart from the export's: Zendesk allows 100 ticket updates a minute per
    account, within its Support API limit. Pacing decides no task, so it is kept out of
    the settings fingerprint."""


class ZendeskConnector(RestConnector):
    kind = "zendesk"
    summary = (
        "Zendesk Support tickets (incremental cursor export); needs subdomain, "
        "an admin's email and api_token"
    )
    Options = ZendeskOptions
    options: ZendeskOptions

    path = "/api/v2/incremental/tickets/cursor.json"
    records_path = "tickets"
    cursor_path = "generated_timestamp"
    cursors_from_source_clock = True
    comments = "requests"
    writes = frozenset({"status", "assignee"})
    # No default lookback: `start_time` is inclusive at the cursor's own whole seconds, and
    # Zendesk withholds the last minute's changes until they are settled.

    default_mapping: ClassVar[dict[str, Any]] = {
        "title": "#{id} {subject}",
        "url": "{web_url}",
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
        "external_created_at": "created_at",
        "external_updated_at": "updated_at",
        "fields": {
            "priority": "priority",
            "type": "type",
            "channel": "via.channel",
            "group_id": "group_id",
            "requester_id": "requester_id",
            "tags": "tags",
            # Zendesk's own status word ("pending"); external_status takes TODO/STARTED/DONE.
            "source_status": "status",
        },
        "assignee": "assignee_id",
    }

    def __init__(
        self, name: str, options: ConnectorOptions, stop: threading.Event | None = None
    ) -> None:
        super().__init__(name, options, stop)
        self.seen_users = SeenPeople(SEEN_USERS)
        """The users the export sideloaded, the newest `SEEN_USERS`."""

    def auth(self) -> httpx.Auth:
        return zendesk_token(self.options.email, self.options.api_token)

    def paginator(self) -> Paginator:
        return NextUrlPaginator("after_url", end_path="end_of_stream")

    def params(self, since: Cursor | None) -> dict[str, Any]:
        start = since if isinstance(since, dt.datetime) else self.options.start_date
        start_time = 0 if start is None else math.floor(start.timestamp())
        start_time = min(start_time, math.floor(time.time()) - START_TIME_LAG)
        return {
            "start_time": max(0, start_time),
            "per_page": self.options.page_size,
            "include": "users",  # sideloaded at no extra request: `people` answers from them
        }

    def records(self, body: Any, path: str | None = None) -> list[Any]:
        users = body.get("users") if isinstance(body, dict) else None
        for user in users if isinstance(users, list) else []:
            found = _person(user)
            if found is not None:
                self.seen_users.add(found)
        return super().records(body, path)

    def people(self, user_ids: Iterable[str]) -> Iterator[Person]:
        """The sideloaded users first, then `users/show_many`, 100 ids a request.

        An id that is not a number can't be a Zendesk user's: it is answered
        without a request.
        """
        seen, unseen = self.seen_users.split(user_ids)
        yield from seen
        for user_id in unseen:
            if not user_id.isdigit():
                yield Person(user_id, None, reason="not a Zendesk user id (a number)")
        numbers = [user_id for user_id in unseen if user_id.isdigit()]
        yield from resolve_in_batches(numbers, SHOW_MANY_LIMIT, self._show_many)

    def _show_many(self, user_ids: list[str]) -> Iterator[Person]:
        _response, body = self.fetch(PageRequest(SHOW_MANY, {"ids": ",".join(user_ids)}))
        users = body.get("users") if isinstance(body, dict) else None
        for user in users if isinstance(users, list) else []:
            found = _person(user)
            if found is not None:
                yield found

    def is_deleted(self, record: Mapping[str, Any]) -> bool:
        scope = {"group_id": self.options.group_ids, "brand_id": self.options.brand_ids}
        return record.get("status") == "deleted" or outside_scope(record, scope)

    def enrich(self, record: dict[str, Any]) -> dict[str, Any]:
        subdomain = self.options.subdomain
        site = vendor_site(subdomain, "zendesk.com") if subdomain else self.options.base_url
        return {**record, "web_url": f"{site}/agent/tickets/{record.get('id')}"}

    def conversations(self, tickets: Sequence[SourceTicket]) -> Conversations:
        """Each ticket's comments: `GET /api/v2/tickets/{id}/comments.json`, oldest first.

        One request per 100 comments of each ticket read (the export says
        nothing of a ticket's comments, so every ticket costs one), with the
        authors' names side-loaded (`include=users`, no request more), on a
        budget of their own (`comment_requests_per_minute`). The first comment
        is the ticket's description, as Zendesk has it. An internal note is
        private. The incremental ticket events export (`include=comment_events`)
        would read all tickets' comments at once, but only those made since the
        watermark, where the summary needs each changed ticket's whole
        conversation. A ticket deleted since it was listed (404) keeps
        `comments` None; so does a tombstone, whose comments are not read.
        """
        reader = self.commenting
        found: dict[str, list[SourceComment] | BadRecord | None] = {}
        for ticket in tickets:
            path = f"/api/v2/tickets/{ticket.source_id}/comments.json"
            params = {"page[size]": COMMENTS_PER_PAGE, "include": "users"}
            paginator = NextUrlPaginator("links.next", more_path="meta.has_more")
            raw = reader.listing(PageRequest(path, params), paginator, page_records=_named)
            found[ticket.source_id] = (
                None if raw is None else read_comments(ticket, raw, COMMENT_SHAPE)
            )
        return found

    def write(self, change: TicketWrite) -> None:
        """`PUT /api/v2/tickets/{id}.json` of what differs from the ticket as shown (see the
        module); nothing when nothing does."""
        if not change.source_id.isdigit():
            raise self.refused(change, "not a Zendesk ticket id (a number)")
        writer = self.writing
        url = f"/api/v2/tickets/{change.source_id}.json"
        shown = writer.lookup(PageRequest(url))
        ticket = shown.get("ticket") if isinstance(shown, dict) else None
        if not isinstance(ticket, dict):
            raise self.refused(change, "the ticket is gone (Zendesk answered 404)")
        update: dict[str, Any] = {}
        if change.status is not None:
            status = self._status(change.status)
            if ticket.get("status") != status:
                update["status"] = status
        if change.assign:
            assignee = self._assignee(change)
            if ticket.get("assignee_id") != assignee:
                update["assignee_id"] = assignee
        if not update:
            return  # already there
        if ticket.get("status") == "closed":
            raise self._closed(change)
        response = writer.send_write("PUT", url, {"ticket": update})
        if response.status_code < 300:
            return
        if response.status_code == 404:
            raise self.refused(change, "the ticket is gone (Zendesk answered 404)")
        said = _zendesk_said(response)
        if CLOSED_PREVENTS_UPDATE in said:
            raise self._closed(change)  # closed between the read and the update
        raise self.refused(change, f"Zendesk answered {response.status_code}: {said}")

    def _status(self, name: str) -> str:
        """Zendesk's status named `name` (any case). Raises `FixConfiguration`."""
        status = name.strip().casefold()
        if status not in STATUSES:
            raise FixConfiguration(
                f"connector {self.name!r}: Zendesk has no status {name!r} "
                f"(it has: {', '.join(STATUSES)})",
                key=f"connectors.{self.name}.write_back.status",
            )
        return status

    def _assignee(self, change: TicketWrite) -> int | None:
        user_id = change.assignee_id
        if user_id is None:
            return None
        if not user_id.isdigit():
            raise self.refused(change, f"{user_id!r} is not a Zendesk user id (a number)")
        return int(user_id)

    def _closed(self, change: TicketWrite) -> WriteConflict:
        return WriteConflict(
            self.name,
            change.source_id,
            "+".join(change.fields),
            change.target,
            "the ticket is closed in Zendesk, which takes no change to a closed ticket: "
            "the source closed it, and that wins over Fragment",
        )

    def check(self) -> None:
        # One ticket proves the credentials and the admin role; a default page is 1000 of them.
        self.fetch(PageRequest(self.path, {**self.params(None), "per_page": 1}))


def _person(user: Any) -> Person | None:
    """A Zendesk user record as a `Person`; None for one without an id."""
    if not isinstance(user, dict) or user.get("id") is None:
        return None
    user_id = str(user["id"])
    if user.get("active") is False:
        return Person(user_id, None, user.get("name") or None, reason="deleted in Zendesk")
    return person(user_id, user.get("email"), user.get("name"), "the Zendesk user has no email")


def _named(body: Any) -> Any:
    """A page's comments, each with its author's name from the side-loaded `users`."""
    comments = body.get("comments") if isinstance(body, dict) else None
    if not isinstance(comments, list):
        return comments
    users = body.get("users")
    names = {
        u.get("id"): u.get("name")
        for u in (users if isinstance(users, list) else [])
        if isinstance(u, dict)
    }
    return [
        {**c, "author_name": names.get(c.get("author_id"))} if isinstance(c, dict) else c
        for c in comments
    ]


def _zendesk_said(response: httpx.Response) -> str:
    """Zendesk's words in an error answer: each of `details`' descriptions (422
    `RecordInvalid`: "Assignee: is invalid"), else its `description`, else the text."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if not isinstance(body, dict):
        return response.text[:200]
    details = body.get("details")
    said = [
        str(item.get("description"))
        for items in (details.values() if isinstance(details, dict) else [])
        for item in (items if isinstance(items, list) else [])
        if isinstance(item, dict) and item.get("description")
    ]
    if said:
        return "; ".join(said)
    return str(body.get("description") or body.get("error") or response.text[:200])
