"""A fake Zendesk Incremental Ticket Export (cursor flavour), as Zendesk documents it.

`GET /api/v2/incremental/tickets/cursor.json`: the first call carries
`start_time` (Unix seconds, compared with `generated_timestamp`, inclusive),
later ones `cursor`; pages of `per_page` (at most 1000) ordered by
`generated_timestamp`, then id; `after_cursor` is an opaque keyset position,
`after_url` the next page, `end_of_stream` true once everything up to now
minus the withheld minute is out. A `start_time` less than a minute old is
refused with 422. Basic auth `{email}/token:{api_token}`, else 401. Deleted
tickets stay listed with `status: "deleted"` (unless `exclude_deleted=true`).

`generated_timestamp` moves on any change, system ones included, while
`updated_at` moves only on an agent's edit: `touch` is an edit, `stamp` a
system or bulk update, which can stamp many tickets with one second.

Users (`add_user`): `GET /api/v2/users/show_many.json?ids=1,2,3` answers
`{"users": [...]}` with the users it knows among up to 100 ids (more is a
400; an id it doesn't know is left out, not an error), each with `id`,
`name`, `email` (null for a user without one, such as a phone-only end
user), `role` (`end-user`, `agent`, `admin`), `active` (false once deleted)
and `suspended`. The export sideloads the users its page's tickets name
(requester, submitter, assignee) in a top-level `users` list when asked
`include=users`, and its `after_url` keeps asking.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlencode

from fakes import FakeApi, Reply, Request

PATH = "/api/v2/incremental/tickets/cursor.json"
SHOW_MANY = "/api/v2/users/show_many.json"
SHOW_MANY_LIMIT = 100
USER_REFERENCES = ("requester_id", "submitter_id", "assignee_id")
WITHHELD_SECONDS = 60
"""Changes made in the minute before a request are left for a later one."""
MAX_PER_PAGE = 1000

Position = tuple[int, int]
"""Where a ticket sits in the export: (generated_timestamp, id)."""


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def unix(moment: dt.datetime) -> int:
    return int(moment.timestamp())


def encode_cursor(position: Position) -> str:
    # Zendesk's cursors look like base64 of "1580753798.0||432|"; opaque to clients.
    return base64.urlsafe_b64encode(f"{position[0]}.0||{position[1]}|".encode()).decode()


def decode_cursor(cursor: str) -> Position:
    """The position a cursor names; raises ValueError for one this fake never issued."""
    try:
        seconds, _, number, _ = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        return int(float(seconds)), int(number)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(cursor) from exc


class FakeZendesk(FakeApi):
    def __init__(self, email: str, api_token: str) -> None:
        super().__init__()
        self.credentials = base64.b64encode(f"{email}/token:{api_token}".encode()).decode()
        self.tickets: dict[int, dict[str, Any]] = {}
        self.positions: dict[int, int] = {}
        """Each ticket's `generated_timestamp` as the export files it (kept apart from the
        record, so a test can garble the record's own)."""
        self.users: dict[int, dict[str, Any]] = {}

    # Test controls

    def add(self, number: int, at: dt.datetime, **fields: Any) -> dict[str, Any]:
        ticket = {
            "id": number,
            "url": f"https://acme.zendesk.com/api/v2/tickets/{number}.json",
            "external_id": None,
            "via": {"channel": "web", "source": {"from": {}, "to": {}, "rel": None}},
            "created_at": iso(at - dt.timedelta(hours=1)),
            "updated_at": iso(at),
            "generated_timestamp": unix(at),
            "type": "incident",
            "subject": f"Ticket {number}",
            "raw_subject": f"Ticket {number}",
            "description": "The printer on floor 3 is jammed.",
            "priority": "normal",
            "status": "open",
            "requester_id": 501,
            "submitter_id": 501,
            "assignee_id": 601,
            "organization_id": None,
            "group_id": 701,
            "brand_id": 360001,
            "tags": ["printer"],
            "due_at": None,
            "custom_fields": [],
            "is_public": True,
            **fields,
        }
        with self.lock:
            self.tickets[number] = ticket
            self.positions[number] = unix(at)
        return ticket

    def touch(self, number: int, at: dt.datetime, **fields: Any) -> None:
        """An agent's edit at `at`: `updated_at` and `generated_timestamp` both move."""
        with self.lock:
            self.tickets[number].update(fields, updated_at=iso(at))
            self._stamp(number, at)

    def stamp(self, numbers: Iterable[int], at: dt.datetime, **fields: Any) -> None:
        """A system or bulk update at `at`: only `generated_timestamp` moves, for all of them."""
        with self.lock:
            for number in numbers:
                self.tickets[number].update(fields)
                self._stamp(number, at)

    def delete(self, number: int, at: dt.datetime) -> None:
        with self.lock:
            self.tickets[number].update(status="deleted", updated_at=iso(at))
            self._stamp(number, at)

    def add_user(
        self,
        user_id: int,
        name: str,
        email: str | None,
        role: str = "agent",
        *,
        active: bool = True,
        suspended: bool = False,
    ) -> dict[str, Any]:
        """A user as `GET /api/v2/users/{id}` shows it (the fields a sync reads, and a few)."""
        user = {
            "id": user_id,
            "url": f"https://acme.zendesk.com/api/v2/users/{user_id}.json",
            "name": name,
            "email": email,
            "role": role,
            "active": active,
            "suspended": suspended,
            "verified": email is not None,
            "time_zone": "Eastern Time (US & Canada)",
            "created_at": "2024-01-15T09:00:00Z",
            "updated_at": "2026-10-01T09:00:00Z",
        }
        with self.lock:
            self.users[user_id] = user
        return user

    def _stamp(self, number: int, at: dt.datetime) -> None:
        self.tickets[number]["generated_timestamp"] = unix(at)
        self.positions[number] = unix(at)

    # The API

    def route(self, request: Request) -> Reply:
        if request.path not in (PATH, SHOW_MANY):
            return Reply(404, {"error": "InvalidEndpoint", "description": "Not found"})
        if request.headers.get("authorization") != f"Basic {self.credentials}":
            return Reply(401, {"error": "Couldn't authenticate you"})
        if request.path == SHOW_MANY:
            return self._show_many(request)
        try:
            per_page = min(MAX_PER_PAGE, int(request.param("per_page", str(MAX_PER_PAGE)) or 0))
        except ValueError:
            per_page = 0
        if per_page < 1:
            return _invalid("per_page must be a positive number")
        newest = int(self.clock()) - WITHHELD_SECONDS
        cursor, start_time = request.param("cursor"), request.param("start_time")
        if cursor:
            try:
                after = decode_cursor(cursor)
            except ValueError:
                return _invalid("cursor is invalid")
        elif start_time is None or not start_time.isdigit():
            return _invalid("start_time is required, as a Unix time in seconds")
        elif int(start_time) > newest:
            return _invalid("Too recent start_time. Use a start_time older than 1 minute")
        else:
            after = (int(start_time), -1)  # inclusive: everything at start_time too
        skip_deleted = request.param("exclude_deleted") == "true"
        listed = sorted(
            (seconds, number)
            for number, seconds in self.positions.items()
            if after < (seconds, number)
            and seconds <= newest
            and not (skip_deleted and self.tickets[number]["status"] == "deleted")
        )
        page = listed[:per_page]
        position = page[-1] if page else after
        query = {"cursor": encode_cursor(position), "per_page": per_page}
        if skip_deleted:
            query["exclude_deleted"] = "true"
        include = request.param("include")
        if include:
            query["include"] = include
        tickets = [self.tickets[number] for _, number in page]
        body: dict[str, Any] = {
            "tickets": tickets,
            "after_cursor": encode_cursor(position),
            "after_url": f"{self.base_url}{PATH}?{urlencode(query)}",
            "before_cursor": encode_cursor(page[0]) if page else None,
            "before_url": None,
            "end_of_stream": len(listed) <= per_page,
        }
        if "users" in (include or "").split(","):
            named = {t.get(key) for t in tickets for key in USER_REFERENCES}
            body["users"] = [self.users[i] for i in sorted(self.users) if i in named]
        return Reply(200, body)

    def _show_many(self, request: Request) -> Reply:
        """`GET /api/v2/users/show_many.json?ids=...`: the users it knows among up to 100 ids."""
        text = request.param("ids") or ""
        parts = [part for part in text.split(",") if part]
        if not parts or not all(part.isdigit() for part in parts):
            return _invalid("ids must be a comma-separated list of user ids")
        if len(parts) > SHOW_MANY_LIMIT:
            return Reply(
                400,
                {"error": "InvalidValue", "description": "Too many ids (max 100)"},
            )
        wanted = [int(part) for part in parts]
        users = [self.users[i] for i in wanted if i in self.users]
        return Reply(
            200, {"users": users, "next_page": None, "previous_page": None, "count": len(users)}
        )


def _invalid(description: str) -> Reply:
    return Reply(422, {"error": "InvalidValue", "description": description})


RATE_LIMITED_BODY = {
    "error": "APIRateLimitExceeded",
    "description": "Number of allowed incremental export API requests per minute exceeded",
}
EDGE_RATE_LIMITED = Reply(
    429,
    raw=b"<html><body><h1>Automated response</h1><p>Too many requests.</p></body></html>",
    content_type="text/html",
)
"""Zendesk's edge protection: a 429 with an HTML body and no Retry-After."""
