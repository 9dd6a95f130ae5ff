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

Ticket comments (`comment`): `GET /api/v2/tickets/{id}/comments(.json)` lists a
ticket's comments, the first being its description (Zendesk makes the
description a ticket's first comment), oldest first (`sort=-created_at` for
newest first). Cursor pagination as Zendesk documents it: `page[size]` (at
most 100) and `page[after]`, answered with `meta.has_more`,
`meta.after_cursor` and `links.next` (present even on the last page: `has_more`
is what says whether another follows); without `page[...]`, offset pagination
(`per_page`, `page`, `next_page`). Each comment has `id`, `type`, `author_id`,
`body`, `html_body`, `plain_body`, `public` (false for an internal note),
`created_at`; `include=users` side-loads the authors as `users`. A ticket the
account doesn't have, or one deleted, is a 404 `RecordNotFound`.

Ticket writes, as Zendesk's Tickets API documents them
(https://developer.zendesk.com/api-reference/ticketing/tickets/tickets/):
`GET /api/v2/tickets/{id}(.json)` shows one ticket, `{"ticket": {...}}`;
`PUT /api/v2/tickets/{id}(.json)` with `{"ticket": {"status", "assignee_id"}}`
changes it and answers 200 `{"ticket": {...}, "audit": {...}}`, the change
stamping `updated_at` and `generated_timestamp` with the fake's clock (an
update changing nothing leaves them alone). Statuses: new, open, pending,
hold, solved, closed. A closed ticket can't be updated at all: 422
`RecordInvalid` with `details.status` "Status: closed prevents ticket update"
(the answer integrations meet, e.g. zendesk_api_client_rb users' and
ForestAdmin's Zendesk plugin's). An assignee that is no agent or admin (an
end user, or no user) is a 422 `RecordInvalid` with `details.assignee`
"Assignee: is invalid" (facetoe/zenpy#628 quotes the body); `null` unassigns.
A ticket field an admin made required to solve (`require_to_solve`) left
empty makes a change to solved a 422 `RecordInvalid` with `details.base`
naming the field, "{title}: is required to solve a ticket" (zenpy#257 quotes
such a body, in Portuguese). An unknown or deleted ticket is a 404
`RecordNotFound`. Rate limits
(https://developer.zendesk.com/api-reference/introduction/rate-limits/):
Update Ticket allows 30 updates per 10 minutes per user per ticket
(`updates_per_ticket` in `update_window` seconds here), past which a 429 with
`Retry-After`. The writes received are kept in `writes` (id and body).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import math
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlencode

from fakes import FakeApi, Reply, Request

PATH = "/api/v2/incremental/tickets/cursor.json"
SHOW_MANY = "/api/v2/users/show_many.json"
SHOW_MANY_LIMIT = 100
USER_REFERENCES = ("requester_id", "submitter_id", "assignee_id")
_COMMENTS = re.compile(r"^/api/v2/tickets/(\d+)/comments(?:\.json)?$")
_TICKET = re.compile(r"^/api/v2/tickets/(\d+)(?:\.json)?$")
STATUSES = ("new", "open", "pending", "hold", "solved", "closed")
ASSIGNABLE_ROLES = ("agent", "admin")
CLOSED_PREVENTS_UPDATE = {
    "error": "RecordInvalid",
    "description": "Record validation errors",
    "details": {"status": [{"description": "Status: closed prevents ticket update"}]},
}
NOT_FOUND = {"error": "RecordNotFound", "description": "Not found"}
USERS = {
    501: "Rita Requester",
    601: "Aaron Agent",
    602: "Nina Notes",
}
"""The account's users by id, as `include=users` side-loads them."""
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
    def __init__(
        self,
        email: str,
        api_token: str,
        *,
        updates_per_ticket: int = 30,
        update_window: float = 600.0,
    ) -> None:
        super().__init__()
        self.updates_per_ticket = updates_per_ticket
        self.update_window = update_window
        self._updated: dict[int, list[float]] = {}
        """When each ticket's updates were taken, for the per-ticket limit."""
        self.writes: list[tuple[int, Any]] = []
        """Each `PUT /api/v2/tickets/{id}` received (id and body), refused ones too."""
        self.required_to_solve: dict[int, str] = {}
        """Ticket fields (id to title) a ticket can't be solved without."""
        self.credentials = base64.b64encode(f"{email}/token:{api_token}".encode()).decode()
        self.tickets: dict[int, dict[str, Any]] = {}
        self.positions: dict[int, int] = {}
        """Each ticket's `generated_timestamp` as the export files it (kept apart from the
        record, so a test can garble the record's own)."""
        self.users: dict[int, dict[str, Any]] = {}
        self.comments: dict[int, list[dict[str, Any]]] = {}
        """Each ticket's comments by ticket id, oldest first; the first is its description."""
        self._next_comment_id = 90_000_000

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
            self.comments[number] = []
            self._comment(number, at - dt.timedelta(hours=1), ticket["description"], 501, True)
        return ticket

    def comment(
        self,
        number: int,
        at: dt.datetime,
        text: str = "We are on it.",
        public: bool = True,
        author_id: int = 601,
        touch: bool = True,
    ) -> dict[str, Any]:
        """A comment (not `public`: an internal note) on ticket `number` at `at`; with `touch`,
        an agent's edit at `at` too (a comment moves `updated_at`)."""
        with self.lock:
            comment = self._comment(number, at, text, author_id, public)
            if touch:
                self.touch(number, at)
        return comment

    def _comment(
        self, number: int, at: dt.datetime, text: str, author_id: int, public: bool
    ) -> dict[str, Any]:
        self._next_comment_id += 1
        comment = {
            "id": self._next_comment_id,
            "type": "Comment",
            "author_id": author_id,
            "body": text,
            "html_body": f'<div class="zd-comment"><p>{text}</p></div>',
            "plain_body": text,
            "public": public,
            "attachments": [],
            "audit_id": self._next_comment_id + 1,
            "via": {"channel": "web", "source": {"from": {}, "to": {}, "rel": None}},
            "created_at": iso(at),
            "metadata": {"system": {}, "custom": {}},
        }
        self.comments.setdefault(number, []).append(comment)
        return comment

    def comment_gets(self) -> list[Request]:
        """The requests for a ticket's comments."""
        return [r for r in self.requests if _COMMENTS.match(r.path)]

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

    def require_to_solve(self, field_id: int, title: str) -> None:
        """Make the custom ticket field `field_id` required to solve a ticket."""
        with self.lock:
            self.required_to_solve[field_id] = title

    def _stamp(self, number: int, at: dt.datetime) -> None:
        self.tickets[number]["generated_timestamp"] = unix(at)
        self.positions[number] = unix(at)

    # The API

    def route(self, request: Request) -> Reply:
        listing = _COMMENTS.match(request.path)
        if listing is not None:
            return self._comments(request, int(listing[1]))
        shown = _TICKET.match(request.path)
        if shown is not None:
            if request.headers.get("authorization") != f"Basic {self.credentials}":
                return Reply(401, {"error": "Couldn't authenticate you"})
            if request.method == "PUT":
                return self._update(int(shown[1]), request)
            ticket = self.tickets.get(int(shown[1]))
            if ticket is None or ticket["status"] == "deleted":
                return Reply(404, NOT_FOUND)
            return Reply(200, {"ticket": ticket})
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

    def _update(self, number: int, request: Request) -> Reply:
        """`PUT /api/v2/tickets/{id}`: the change applied, or Zendesk's refusal."""
        body = request.json()
        self.writes.append((number, body))
        ticket = self.tickets.get(number)
        if ticket is None or ticket["status"] == "deleted":
            return Reply(404, NOT_FOUND)
        now = self.clock()
        taken = [t for t in self._updated.get(number, []) if t > now - self.update_window]
        if len(taken) >= self.updates_per_ticket:
            wait = math.ceil(taken[0] + self.update_window - now)
            return Reply(
                429,
                {"error": "TooManyRequests", "description": "Too many updates to this ticket"},
                headers={"Retry-After": str(max(1, wait))},
            )
        self._updated[number] = [*taken, now]
        changes = body.get("ticket") if isinstance(body, dict) else None
        if not isinstance(changes, dict):
            return Reply(400, {"error": "InvalidValue", "description": "ticket is required"})
        if ticket["status"] == "closed":
            return Reply(422, CLOSED_PREVENTS_UPDATE)
        fields: dict[str, Any] = {}
        if "status" in changes:
            if changes["status"] not in STATUSES:
                return _record_invalid("status", "Status: is invalid")
            fields["status"] = changes["status"]
            if changes["status"] == "solved":
                filled = {f.get("id") for f in ticket["custom_fields"] if f.get("value")}
                missing = [
                    {
                        "description": f"{title}: is required to solve a ticket",
                        "error": None,
                        "ticket_field_id": field_id,
                        "ticket_field_type": "FieldTagger",
                    }
                    for field_id, title in self.required_to_solve.items()
                    if field_id not in filled
                ]
                if missing:
                    return Reply(
                        422,
                        {
                            "error": "RecordInvalid",
                            "description": "Record validation errors",
                            "details": {"base": missing},
                        },
                    )
        if "assignee_id" in changes:
            assignee = changes["assignee_id"]
            user = self.users.get(assignee) if isinstance(assignee, int) else None
            if assignee is not None and (user is None or user["role"] not in ASSIGNABLE_ROLES):
                return _record_invalid("assignee", "Assignee: is invalid")
            fields["assignee_id"] = assignee
        if any(ticket.get(key) != value for key, value in fields.items()):
            self.touch(number, dt.datetime.fromtimestamp(now, dt.UTC), **fields)
        audit = {"id": number * 1000 + len(self.writes), "ticket_id": number, "events": []}
        return Reply(200, {"ticket": ticket, "audit": audit})

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

    def _comments(self, request: Request, number: int) -> Reply:
        """`GET /api/v2/tickets/{id}/comments`, cursor or offset paginated."""
        if request.headers.get("authorization") != f"Basic {self.credentials}":
            return Reply(401, {"error": "Couldn't authenticate you"})
        ticket = self.tickets.get(number)
        if ticket is None or ticket["status"] == "deleted":
            return Reply(404, {"error": "RecordNotFound", "description": "Not found"})
        comments = list(self.comments.get(number, []))
        newest_first = request.param("sort") == "-created_at"
        if newest_first:
            comments.reverse()
        size_text = request.param("page[size]")
        after_text = request.param("page[after]")
        if size_text is None and after_text is None:
            per_page = min(100, int(request.param("per_page", "100") or 100))
            page = int(request.param("page", "1") or 1)
            shown = comments[(page - 1) * per_page : page * per_page]
            more = len(comments) > page * per_page
            query = {k: v[-1] for k, v in request.query.items()}
            nxt = f"{self.base_url}{request.path}?{urlencode({**query, 'page': page + 1})}"
            body: dict[str, Any] = {
                "comments": shown,
                "next_page": nxt if more else None,
                "previous_page": None,
                "count": len(comments),
            }
        else:
            try:
                size = int(size_text or 100)
                start = int(base64.urlsafe_b64decode(after_text).decode()) if after_text else 0
            except (ValueError, binascii.Error):
                return _invalid("page[after] is invalid")
            if not 1 <= size <= 100:
                return _invalid("page[size] must be between 1 and 100")
            shown = comments[start : start + size]
            end = start + len(shown)
            after = base64.urlsafe_b64encode(str(end).encode()).decode()
            query = {k: v[-1] for k, v in request.query.items()}
            query.update({"page[size]": str(size), "page[after]": after})
            body = {
                "comments": shown,
                "meta": {
                    "has_more": end < len(comments),
                    "after_cursor": after,
                    "before_cursor": base64.urlsafe_b64encode(str(start).encode()).decode(),
                },
                "links": {
                    "prev": None,
                    "next": f"{self.base_url}{request.path}?{urlencode(query)}",
                },
            }
        if request.param("include") == "users":
            ids = sorted({c["author_id"] for c in body["comments"]})
            body["users"] = [
                {"id": i, "name": USERS.get(i, f"User {i}"), "role": "agent"} for i in ids
            ]
        return Reply(200, body)


def _record_invalid(field: str, description: str) -> Reply:
    """Zendesk's 422 for a value it won't take, naming the field in `details`."""
    return Reply(
        422,
        {
            "error": "RecordInvalid",
            "description": "Record validation errors",
            "details": {field: [{"description": description, "error": "InvalidValue"}]},
        },
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
