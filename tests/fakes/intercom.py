"""A fake Intercom REST API: conversations and tickets search, their shows, admins, `/me`.

Written from Intercom's developer documentation (API version 2.14, the
`Intercom-Version` the connector pins; the OpenAPI description is
github.com/intercom/Intercom-OpenAPI, descriptions/2.14/api.intercom.io.yaml):

- Search: https://developers.intercom.com/docs/references/2.14/rest-api/api.intercom.io/conversations/searchconversations
  and .../tickets/searchtickets. `POST /conversations/search` and
  `POST /tickets/search` take `{"query": ..., "pagination": {"per_page",
  "starting_after"}, "sort": {"field", "order"}}`. A query is one filter
  `{"field", "operator", "value"}` or `{"operator": "AND"|"OR", "value": [...]}`.
  Operators `=`, `!=`, `IN`, `NIN`, `>`, `<` (and the string ones, not served
  here); there is no `>=` or `<=` for `updated_at` (the tickets page allows
  them for `created_at` only): the fake answers 400 to them. The operator table
  calls `>` "Greater (or equal) than"; Intercom's examples and integrators
  read it as strictly greater. The fake is strict by default (the reading that
  loses ties if a client trusts "or equal") and inclusive with
  `inclusive_comparisons`. A value may be a number or a string of digits (the
  documented example sends `"1306054154"`).
- Sorting: https://developers.intercom.com/docs/build-an-integration/learn-more/rest-apis/pagination-sorting-search/#sorting
  (`{"field": "updated_at", "order": "ascending"}`; absent from the OpenAPI
  schema, github.com/intercom/Intercom-OpenAPI/issues/114). The default order
  is descending; another order word is a 400 `invalid_sort_order`. Ties within
  one second come in no documented order: the fake gives them highest id first.
- Pagination: https://developers.intercom.com/docs/build-an-integration/learn-more/rest-apis/pagination/
  `per_page` default 20, max 150; `pages: {"type": "pages", "page",
  "per_page", "total_pages", "next": {"page", "starting_after"}}`, `next`
  only while more pages follow. "The starting_after context is stateless":
  the fake's cursor is the offset into the result set (base64 JSON, the
  `WzE...` shape of Intercom's), so a change between two pages shifts the rest.
- Shows: `GET /conversations/{id}` with `conversation_parts` (at most 500),
  `GET /tickets/{id}` with `ticket_parts`; a deleted one is a 404 with
  Intercom's error body (`code: not_found`). Deleting (API 2.13+: `DELETE
  /conversations/{id}`, `DELETE /tickets/{id}`) leaves no trace in search.
- Admins: https://developers.intercom.com/docs/references/2.14/rest-api/api.intercom.io/admins/listadmins
  `GET /admins` → `{"type": "admin.list", "admins": [...]}` with each admin's
  email; `GET /admins/{id}` one, or 404. `GET /me` names the token's admin and
  its workspace (`app.id_code`).
- Errors: https://developers.intercom.com/docs/references/2.17/rest-api/errors/error-objects
  and .../errors/error-codes: `{"type": "error.list", "request_id": ..., "errors":
  [{"code", "message"}]}`; a bad token is a 401 `unauthorized`, "Access Token
  Invalid"; a query it can't run a 400 `parameter_invalid`.
- Rate limits: https://developers.intercom.com/docs/references/2.17/rest-api/errors/rate-limiting
  every authenticated answer (none without valid credentials) carries
  `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset` (Unix
  seconds on Intercom's clock: the fake's `clock`), counted over 10-second
  windows; past `limit_per_window` the answer is a 429 with code
  `rate_limit_exceeded`.

Conversations are `{"type": "conversation", "id": "515", "title", "created_at",
"updated_at", "state": "open"|"closed"|"snoozed", "open", "admin_assignee_id":
int or null, "source": {"subject", "body", "author"}, ...}`; tickets are
`{"type": "ticket", "id", "ticket_id", "ticket_attributes": {"_default_title_",
"_default_description_"}, "ticket_state": {"type": "ticket_state", "category":
"submitted"|"in_progress"|"waiting_on_customer"|"resolved", "internal_label",
"external_label"}, "admin_assignee_id": "1295" (a string in 2.14), ...}`.
Times are Unix seconds. A ticket made from a conversation keeps its id
(`convert`, as `POST /conversations/{id}/convert` does).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import re
import uuid
from typing import Any

from fakes import FakeApi, Reply, Request

SEARCHES = ("/conversations/search", "/tickets/search")
MAX_PER_PAGE = 150
DEFAULT_PER_PAGE = 20
WINDOW_SECONDS = 10
PARTS_LIMIT = 500
TICKET_CATEGORIES = ("submitted", "in_progress", "waiting_on_customer", "resolved")

_SHOW = re.compile(r"^/(conversations|tickets)/(\d+)$")
_ADMIN = re.compile(r"^/admins/(\d+)$")


def unix(moment: dt.datetime) -> int:
    """A time as Intercom shows it: Unix seconds."""
    return math.floor(moment.timestamp())


def error(status: int, code: str, message: str) -> Reply:
    """Intercom's error answer."""
    body = {
        "type": "error.list",
        "request_id": str(uuid.uuid4()),
        "errors": [{"code": code, "message": message}],
    }
    return Reply(status, body)


class FakeIntercom(FakeApi):
    def __init__(
        self,
        token: str,
        *,
        inclusive_comparisons: bool = False,
        limit_per_window: int = 1_000_000,
        workspace: str = "ecahpwf5",
    ) -> None:
        super().__init__()
        self.token = token
        self.inclusive_comparisons = inclusive_comparisons
        self.limit_per_window = limit_per_window
        self.workspace = workspace
        self.conversations: dict[int, dict[str, Any]] = {}
        self.tickets: dict[int, dict[str, Any]] = {}
        self.parts: dict[int, list[dict[str, Any]]] = {}
        """Each conversation's or ticket's parts (replies, notes, events), oldest first."""
        self.admins: dict[int, dict[str, Any]] = {}
        self.indexed: dict[int, int] = {}
        """Each record's `updated_at` as the search index holds it (what a test that
        garbles the shown value leaves alone)."""
        self.versions: list[str | None] = []
        """The `Intercom-Version` header of each request, as sent."""
        self._window: tuple[int, int] = (0, 0)  # (window start, requests in it)

    # Test controls

    def add_conversation(self, number: int, updated: dt.datetime, **fields: Any) -> dict[str, Any]:
        with self.lock:
            conversation: dict[str, Any] = {
                "type": "conversation",
                "id": str(number),
                "title": None,
                "created_at": unix(updated),
                "updated_at": unix(updated),
                "waiting_since": None,
                "snoozed_until": None,
                "open": True,
                "state": "open",
                "read": False,
                "priority": "not_priority",
                "admin_assignee_id": None,
                "team_assignee_id": None,
                "tags": {"type": "tag.list", "tags": []},
                "source": {
                    "type": "conversation",
                    "id": str(400_000_000 + number),
                    "delivered_as": "customer_initiated",
                    "subject": "",
                    "body": f"<p>Help with {number}</p>",
                    "author": {
                        "type": "user",
                        "id": f"6762f0{number:018x}",
                        "name": "Joe Bloggs",
                        "email": "joe@bloggs.example",
                    },
                    "attachments": [],
                    "url": None,
                    "redacted": False,
                },
                "contacts": {"type": "contact.list", "contacts": []},
                "custom_attributes": {},
                "statistics": None,
                "linked_objects": {"type": "list", "data": [], "total_count": 0, "has_more": False},
            }
            conversation.update(fields)
            self.conversations[number] = conversation
            self.indexed[number] = conversation["updated_at"]
            self.parts.setdefault(number, [])
            return conversation

    def add_ticket(self, number: int, updated: dt.datetime, **fields: Any) -> dict[str, Any]:
        with self.lock:
            ticket: dict[str, Any] = {
                "type": "ticket",
                "id": str(number),
                "ticket_id": str(1000 + number),
                "category": "Customer",
                "ticket_attributes": {
                    "_default_title_": f"Ticket {number}",
                    "_default_description_": None,
                },
                "ticket_state": ticket_state("submitted"),
                "ticket_type": {"type": "ticket_type", "id": "53", "name": "Bug"},
                "contacts": {"type": "contact.list", "contacts": []},
                "admin_assignee_id": "0",
                "team_assignee_id": "0",
                "created_at": unix(updated),
                "updated_at": unix(updated),
                "open": True,
                "snoozed_until": None,
                "linked_objects": {"type": "list", "data": [], "total_count": 0, "has_more": False},
                "is_shared": True,
            }
            ticket.update(fields)
            self.tickets[number] = ticket
            self.indexed[number] = ticket["updated_at"]
            self.parts.setdefault(number, [])
            return ticket

    def touch(self, number: int, updated: dt.datetime, **fields: Any) -> None:
        """Edit conversation or ticket `number` at `updated`."""
        with self.lock:
            record = self.conversations.get(number) or self.tickets[number]
            record.update(fields)
            record["updated_at"] = self.indexed[number] = unix(updated)

    def delete(self, number: int) -> None:
        """`DELETE /conversations/{id}` or `/tickets/{id}`: it vanishes from search and shows."""
        with self.lock:
            self.conversations.pop(number, None)
            self.tickets.pop(number, None)
            self.parts.pop(number, None)

    def convert(self, number: int, updated: dt.datetime) -> None:
        """`POST /conversations/{id}/convert`: the conversation becomes a ticket, same id."""
        with self.lock:
            conversation = self.conversations.pop(number)
            self.add_ticket(
                number,
                updated,
                created_at=conversation["created_at"],
                ticket_attributes={
                    "_default_title_": conversation.get("title") or f"Ticket {number}",
                    "_default_description_": None,
                },
            )

    def add_part(self, number: int, at: dt.datetime, **fields: Any) -> dict[str, Any]:
        """A part (a reply, a note) of conversation or ticket `number`: an edit at `at`."""
        with self.lock:
            kind = "ticket_part" if number in self.tickets else "conversation_part"
            part = {
                "type": kind,
                "id": str(100_000 + sum(len(p) for p in self.parts.values())),
                "part_type": "comment",
                "body": "<p>A reply</p>",
                "created_at": unix(at),
                "updated_at": unix(at),
                "notified_at": unix(at),
                "author": {"type": "admin", "id": "991267", "name": "Ada", "email": None},
                "attachments": [],
                "redacted": False,
                **fields,
            }
            self.parts[number].append(part)
            self.touch(number, at)
            return part

    def add_admin(self, number: int, name: str, email: str | None) -> None:
        self.admins[number] = {
            "type": "admin",
            "id": str(number),
            "name": name,
            "email": email,
            "away_mode_enabled": False,
            "away_mode_reassign": False,
            "has_inbox_seat": True,
            "team_ids": [],
        }

    def searches(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.method == "POST" and r.path == path]

    # Serving

    def route(self, request: Request) -> Reply:
        self.versions.append(request.headers.get("intercom-version"))
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return error(401, "unauthorized", "Access Token Invalid")
        limit = self._rate_limit_headers()
        if limit is None:
            reply = error(429, "rate_limit_exceeded", self._exceeded())
            reply.headers.update(self._headers(0))
            return reply
        reply = self._answer(request)
        reply.headers.update(limit)
        return reply

    def _answer(self, request: Request) -> Reply:
        if request.method == "POST" and request.path in SEARCHES:
            return self._search(request)
        if request.method != "GET":
            return error(404, "not_found", "Resource Not Found")
        if request.path == "/me":
            return Reply(200, self._me())
        if request.path == "/admins":
            return Reply(200, {"type": "admin.list", "admins": list(self.admins.values())})
        found = _ADMIN.match(request.path)
        if found:
            admin = self.admins.get(int(found.group(1)))
            if admin is None:
                return error(404, "admin_not_found", "Admin not found")
            return Reply(200, admin)
        found = _SHOW.match(request.path)
        if found:
            return self._show(found.group(1), int(found.group(2)))
        return error(404, "not_found", "Resource Not Found")

    def _me(self) -> dict[str, Any]:
        return {
            "type": "admin",
            "id": "991267459",
            "email": "admin1@email.example",
            "name": "Ciaran Lee",
            "email_verified": True,
            "app": {
                "type": "app",
                "id_code": self.workspace,
                "name": "MyApp",
                "created_at": 1734537243,
                "secure": False,
                "identity_verification": False,
                "timezone": "America/Los_Angeles",
                "region": "US",
            },
            "has_inbox_seat": True,
        }

    def _show(self, kind: str, number: int) -> Reply:
        store = self.conversations if kind == "conversations" else self.tickets
        record = store.get(number)
        if record is None:
            return error(404, "not_found", "Resource Not Found")
        parts = self.parts.get(number, [])[-PARTS_LIMIT:]
        if kind == "conversations":
            listing = {
                "type": "conversation_part.list",
                "conversation_parts": parts,
                "total_count": len(parts),
            }
            return Reply(200, {**record, "conversation_parts": listing})
        listing = {"type": "ticket_part.list", "ticket_parts": parts, "total_count": len(parts)}
        return Reply(200, {**record, "ticket_parts": listing})

    def _search(self, request: Request) -> Reply:
        try:
            body = json.loads(request.body or b"{}")
        except json.JSONDecodeError:
            return error(400, "parameter_invalid", "Request body is not valid JSON")
        if not isinstance(body, dict) or "query" not in body:
            return error(400, "parameter_not_found", "query is required")
        pagination = body.get("pagination") or {}
        per_page = int(pagination.get("per_page") or DEFAULT_PER_PAGE)
        if not 1 <= per_page <= MAX_PER_PAGE:
            return error(400, "parameter_invalid", f"per_page must be 1 to {MAX_PER_PAGE}")
        sort = body.get("sort") or {}
        order = sort.get("order", "descending")
        if order not in ("ascending", "descending"):
            return error(
                400,
                "invalid_sort_order",
                f"Invalid sort order '{order}'. Must be one of: ascending, descending",
            )
        field = sort.get("field", "updated_at")
        tickets = request.path == "/tickets/search"
        records = list((self.tickets if tickets else self.conversations).values())
        try:
            matched = [r for r in records if self._matches(r, body["query"])]
        except ValueError as exc:
            return error(400, "parameter_invalid", str(exc))
        # Ties in no documented order: highest id first, whichever way the field sorts.
        matched.sort(key=lambda r: int(r["id"]), reverse=True)
        matched.sort(key=lambda r: self._value(r, field) or 0, reverse=order == "descending")
        offset = 0
        if pagination.get("starting_after"):
            try:
                [offset] = json.loads(base64.b64decode(pagination["starting_after"]))
            except (ValueError, TypeError):
                return error(400, "parameter_invalid", "starting_after is invalid")
        page = matched[offset : offset + per_page]
        total_pages = max(1, math.ceil(len(matched) / per_page))
        pages: dict[str, Any] = {
            "type": "pages",
            "page": offset // per_page + 1,
            "per_page": per_page,
            "total_pages": total_pages,
        }
        if offset + per_page < len(matched):
            cursor = base64.b64encode(json.dumps([offset + per_page]).encode()).decode()
            pages["next"] = {"page": offset // per_page + 2, "starting_after": cursor}
        key = "tickets" if tickets else "conversations"
        return Reply(
            200,
            {
                "type": "ticket.list" if tickets else "conversation.list",
                "pages": pages,
                "total_count": len(matched),
                key: page,
            },
        )

    def _matches(self, record: dict[str, Any], query: Any) -> bool:
        if not isinstance(query, dict):
            raise ValueError("a query must be an object")
        operator = query.get("operator")
        if operator in ("AND", "OR"):
            parts = query.get("value")
            if not isinstance(parts, list) or not parts or len(parts) > 15:
                raise ValueError("AND and OR take a list of 1 to 15 filters")
            results = [self._matches(record, part) for part in parts]
            return all(results) if operator == "AND" else any(results)
        field, value = query.get("field"), query.get("value")
        if field not in ("updated_at", "created_at", "id", "state", "open"):
            raise ValueError(f"the fake does not search on {field!r}")
        actual = self._value(record, field)
        if field in ("updated_at", "created_at"):
            if operator not in ("=", "!=", ">", "<"):
                raise ValueError(f"operator {operator!r} is not supported on Date fields")
            try:
                number = int(value)
            except (TypeError, ValueError):
                raise ValueError(f"{field} takes a Unix timestamp, got {value!r}") from None
            if operator == ">":
                return actual >= number if self.inclusive_comparisons else actual > number
            if operator == "<":
                return actual <= number if self.inclusive_comparisons else actual < number
            return (actual == number) == (operator == "=")
        if operator == "=":
            return str(actual) == str(value)
        if operator == "!=":
            return str(actual) != str(value)
        if operator in ("IN", "NIN"):
            inside = str(actual) in {str(v) for v in value}
            return inside == (operator == "IN")
        raise ValueError(f"operator {operator!r} is not supported on {field}")

    def _value(self, record: dict[str, Any], field: str) -> Any:
        if field == "updated_at":
            return self.indexed[int(record["id"])]
        return record.get(field)

    def _rate_limit_headers(self) -> dict[str, str] | None:
        """The headers of an answer within the limit; None past it (then a 429)."""
        now = math.floor(self.clock())
        start = now - now % WINDOW_SECONDS
        window, used = self._window
        if window != start:
            window, used = start, 0
        if used >= self.limit_per_window:
            self._window = (window, used)
            return None
        self._window = (window, used + 1)
        return self._headers(self.limit_per_window - used - 1)

    def _headers(self, remaining: int) -> dict[str, str]:
        now = math.floor(self.clock())
        reset = now - now % WINDOW_SECONDS + WINDOW_SECONDS
        return {
            "X-RateLimit-Limit": str(self.limit_per_window),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": str(reset),
        }

    def _exceeded(self) -> str:
        return f"Exceeded rate limit of {self.limit_per_window} in 10_seconds"


def ticket_state(category: str) -> dict[str, Any]:
    """A ticket's `ticket_state` object as API 2.14 shows it."""
    label = category.replace("_", " ").capitalize()
    return {
        "type": "ticket_state",
        "id": str(7490 + TICKET_CATEGORIES.index(category)),
        "category": category,
        "internal_label": label,
        "external_label": label,
    }


def rate_limited(clock_now: float, wait: int, limit: int = 167) -> Reply:
    """Intercom's 429: the error body and the quota's headers, resetting `wait` s from
    `clock_now` (the fake's clock, Intercom's own)."""
    reply = error(429, "rate_limit_exceeded", f"Exceeded rate limit of {limit} in 10_seconds")
    reply.headers.update(
        {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(math.ceil(clock_now) + wait),
        }
    )
    return reply
