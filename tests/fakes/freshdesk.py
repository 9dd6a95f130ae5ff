"""A fake Freshdesk `GET /api/v2/tickets` (List All Tickets), as Freshdesk documents it.

`updated_since` (ISO 8601, whole seconds, inclusive) is a UTC time, written
`2015-01-19T02:00:00Z` in Freshdesk's docs: a value without a zone is read as
UTC, one with an offset as the instant it names; without it only tickets
created in the last 30 days; `order_by` created_at/due_by/updated_at/status
and `order_type` (default created_at desc); `page` from 1 and `per_page` up to
100 (default 30, more is a 400); a `link` header with the next page's URL
while more exist; a page past the cap (300 at Freshdesk, smaller in tests)
is a 400 "You cannot access tickets beyond the 300th page". Deleted and spam
tickets are hidden unless `filter=deleted` / `filter=spam`. Basic auth with the
API key as the user and any password, else 401. Every answer carries
`X-Ratelimit-Total/-Remaining/-Used-CurrentRequest`; past the account's budget
(`requests_per_window` in `window` seconds, invalid requests counted too) a 429
with `Retry-After`.

Agents (`add_agent`): `GET /api/v2/agents` lists them, `per_page` up to 100
(default 30), `page` from 1, a `link` header while more follow;
`GET /api/v2/agents/{id}` shows one, or 404 for an id that is no agent's
(never one, deleted, or converted to a contact). An agent carries its
person in `contact` (`name`, `email`, `active`); a ticket's `responder_id`
is an agent's `id`. Groups are not agents.

Conversations (`converse`): `GET /api/v2/tickets/{id}/conversations` lists a
ticket's replies and notes oldest first, `page` and `per_page` (default 30,
at most 100) with the same `link` header; each has `body` (HTML), `body_text`,
`private` (a private note), `incoming` (from outside the helpdesk), `user_id`,
`source`, `ticket_id`, `created_at`, `updated_at`. The ticket's description is
not among them. A ticket the account doesn't have is a 404. Conversation
requests count against the same per-minute budget.

Ticket writes, as Freshdesk's API reference documents them
(https://developers.freshdesk.com/api/#update_ticket, #view_a_ticket,
#list_all_ticket_fields): `GET /api/v2/tickets/{id}` shows one ticket (a
deleted one too, with `deleted: true`), 404 for an id the account doesn't
have. `PUT /api/v2/tickets/{id}` with `{"status": <code>, "responder_id":
<agent id or null>}` answers 200 with the ticket, `updated_at` moved to the
fake's clock when something changed. Status codes: 2 Open, 3 Pending, 4
Resolved, 5 Closed, and the account's custom statuses (`add_status`, 6 on);
Freshdesk lets an agent reopen a closed ticket. A value it won't take is a 400
`{"description": "Validation failed", "errors": [{"field", "message",
"code"}]}`: a status no choice has, a `responder_id` that is no agent's.
`GET /api/v2/ticket_fields` (`type=default_status` narrows it) lists the
fields; the status field's `choices` map each code to its agent label and
its customer label. Writes count against the per-minute budget like any
request, and are kept in `writes` (id and body).
"""

from __future__ import annotations

import base64
import binascii
import collections
import datetime as dt
import math
import re
from typing import Any
from urllib.parse import urlencode

from fakes import FakeApi, Reply, Request

PATH = "/api/v2/tickets"
AGENTS = "/api/v2/agents"
_CONVERSATIONS = re.compile(r"^/api/v2/tickets/(\d+)/conversations$")
_TICKET = re.compile(r"^/api/v2/tickets/(\d+)$")
TICKET_FIELDS = "/api/v2/ticket_fields"
DEFAULT_STATUSES = {
    2: ["Open", "Being Processed"],
    3: ["Pending", "Awaiting your Reply"],
    4: ["Resolved", "This ticket has been Resolved"],
    5: ["Closed", "This ticket has been Closed"],
}
"""The built-in statuses' choices: code to [agent label, customer label]."""
ORDER_FIELDS = ("created_at", "due_by", "updated_at", "status")
FILTERS = ("new_and_my_open", "watching", "spam", "deleted")
DEFAULT_WINDOW = dt.timedelta(days=30)


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


class FakeFreshdesk(FakeApi):
    def __init__(
        self,
        api_key: str,
        *,
        page_cap: int = 300,
        requests_per_window: int = 5000,
        window: float = 60.0,
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.page_cap = page_cap
        self.requests_per_window = requests_per_window
        self.window = window
        self.tickets: dict[int, dict[str, Any]] = {}
        self.stamps: dict[int, dt.datetime] = {}
        """Each ticket's `updated_at` as the list filters and sorts on it (kept apart from the
        record, so a test can garble the record's own)."""
        self._served: collections.deque[float] = collections.deque()
        self.agents: dict[int, dict[str, Any]] = {}
        self.conversations: dict[int, list[dict[str, Any]]] = {}
        """Each ticket's replies and notes by ticket id, oldest first."""
        self._next_conversation_id = 43_000_000_000
        self.statuses: dict[int, list[str]] = {k: list(v) for k, v in DEFAULT_STATUSES.items()}
        """The status field's choices, custom statuses (`add_status`) included."""
        self.writes: list[tuple[int, Any]] = []
        """Each `PUT /api/v2/tickets/{id}` received (id and body), refused ones too."""

    # Test controls

    def add(self, number: int, updated: dt.datetime, **fields: Any) -> dict[str, Any]:
        ticket = {
            "id": number,
            "subject": f"Ticket {number}",
            "status": 2,
            "priority": 1,
            "source": 2,
            "type": "Incident",
            "requester_id": 5001,
            "responder_id": 6001,
            "group_id": 7001,
            "company_id": None,
            "due_by": iso(updated + dt.timedelta(days=3)),
            "fr_due_by": iso(updated + dt.timedelta(days=1)),
            "is_escalated": False,
            "fr_escalated": False,
            "spam": False,
            "tags": ["printer"],
            "custom_fields": {},
            "created_at": iso(updated - dt.timedelta(hours=1)),
            "updated_at": iso(updated),
            **fields,
        }
        with self.lock:
            self.tickets[number] = ticket
            self.stamps[number] = updated
        return ticket

    def touch(self, number: int, updated: dt.datetime, **fields: Any) -> None:
        with self.lock:
            self.tickets[number].update(fields, updated_at=iso(updated))
            self.stamps[number] = updated

    def delete(self, number: int, at: dt.datetime) -> None:
        """Move the ticket to the trash (it leaves the default list)."""
        self.touch(number, at, deleted=True)

    def mark_spam(self, number: int, at: dt.datetime) -> None:
        self.touch(number, at, spam=True)

    def add_agent(
        self, agent_id: int, name: str, email: str, *, active: bool = True
    ) -> dict[str, Any]:
        """An agent as `GET /api/v2/agents/{id}` shows it."""
        agent = {
            "id": agent_id,
            "available": True,
            "occasional": False,
            "signature": None,
            "ticket_scope": 1,
            "type": "support_agent",
            "group_ids": [7001],
            "role_ids": [1],
            "created_at": "2024-01-15T09:00:00Z",
            "updated_at": "2026-10-01T09:00:00Z",
            "contact": {
                "active": active,
                "email": email,
                "job_title": None,
                "language": "en",
                "mobile": None,
                "name": name,
                "phone": None,
                "time_zone": "Eastern Time (US & Canada)",
                "created_at": "2024-01-15T09:00:00Z",
                "updated_at": "2026-10-01T09:00:00Z",
            },
        }
        with self.lock:
            self.agents[agent_id] = agent
        return agent

    def add_status(self, code: int, name: str, customer_label: str | None = None) -> None:
        """A custom status (Admin > Ticket fields > Status), agents seeing `name`."""
        with self.lock:
            self.statuses[code] = [name, customer_label or name]

    def remove_agent(self, agent_id: int) -> None:
        """Delete the agent (Freshdesk turns them into a contact): no longer an agent."""
        with self.lock:
            del self.agents[agent_id]

    def converse(
        self,
        number: int,
        at: dt.datetime,
        text: str = "We are on it.",
        private: bool = False,
        user_id: int = 6001,
        incoming: bool = False,
        touch: bool = True,
    ) -> dict[str, Any]:
        """A reply (or, `private`, a private note) on ticket `number` at `at`; with `touch`
        the ticket's `updated_at` moves to `at`, as a reply does in Freshdesk."""
        with self.lock:
            self._next_conversation_id += 1
            conversation = {
                "id": self._next_conversation_id,
                "body": f"<div>{text}</div>",
                "body_text": text,
                "incoming": incoming,
                "private": private,
                "user_id": user_id,
                "support_email": None if private else "support@acme.freshdesk.com",
                "source": 2 if private else 0,  # 0 a reply, 2 a note
                "category": 2,
                "ticket_id": number,
                "to_emails": [],
                "from_email": None,
                "cc_emails": [],
                "bcc_emails": [],
                "attachments": [],
                "created_at": iso(at),
                "updated_at": iso(at),
                "last_edited_at": None,
                "last_edited_user_id": None,
            }
            self.conversations.setdefault(number, []).append(conversation)
            if touch:
                self.touch(number, at)
        return conversation

    def conversation_gets(self) -> list[Request]:
        """The requests for a ticket's conversations."""
        return [r for r in self.requests if _CONVERSATIONS.match(r.path)]

    # The API

    def route(self, request: Request) -> Reply:
        with self.lock:
            reply = self._answer(request)
            reply.headers.update(self._quota_headers(reply))
            return reply

    def _answer(self, request: Request) -> Reply:
        now = self.clock()
        while self._served and self._served[0] <= now - self.window:
            self._served.popleft()
        if len(self._served) >= self.requests_per_window:
            wait = math.ceil(self._served[0] + self.window - now)
            return Reply(
                429,
                {"message": "You have exceeded the limit of requests per minute"},
                headers={"Retry-After": str(max(1, wait))},
            )
        self._served.append(now)
        listing = _CONVERSATIONS.match(request.path)
        if listing is not None:
            return self._conversations(request, int(listing[1]))
        shown = _TICKET.match(request.path)
        if shown is not None or request.path == TICKET_FIELDS:
            if self._user(request) != self.api_key:
                return Reply(
                    401,
                    {
                        "code": "invalid_credentials",
                        "message": "You have to be logged in to perform this action.",
                    },
                )
            if shown is None:
                return self._ticket_fields(request)
            if request.method == "PUT":
                return self._update(int(shown[1]), request)
            ticket = self.tickets.get(int(shown[1]))
            return _not_found() if ticket is None else Reply(200, ticket)
        agent = request.path.removeprefix(f"{AGENTS}/")
        if request.path != PATH and request.path != AGENTS and not agent.isdigit():
            return _not_found()
        if self._user(request) != self.api_key:
            return Reply(
                401,
                {
                    "code": "invalid_credentials",
                    "message": "You have to be logged in to perform this action.",
                },
            )
        if request.path == AGENTS:
            return self._agents(request)
        if agent.isdigit():
            found = self.agents.get(int(agent))
            return _not_found() if found is None else Reply(200, found)
        errors: list[tuple[str, str]] = []
        page = _integer(request.param("page", "1"))
        per_page = _integer(request.param("per_page", "30"))
        if page is None or page < 1:
            errors.append(("page", "It should be a Positive Number"))
        elif page > self.page_cap:
            errors.append(
                ("page", f"You cannot access tickets beyond the {ordinal(self.page_cap)} page")
            )
        if per_page is None or not 1 <= per_page <= 100:
            errors.append(("per_page", "It should be a Positive Number less than or equal to 100"))
        order_by = request.param("order_by", "created_at")
        order_type = request.param("order_type", "desc")
        if order_by not in ORDER_FIELDS:
            errors.append(("order_by", f"It should be one of these values: {ORDER_FIELDS}"))
        if order_type not in ("asc", "desc"):
            errors.append(("order_type", "It should be one of these values: 'asc,desc'"))
        ticket_filter = request.param("filter")
        if ticket_filter is not None and ticket_filter not in FILTERS:
            errors.append(("filter", f"It should be one of these values: {FILTERS}"))
        since = request.param("updated_since")
        bound: dt.datetime | None = None
        if since is not None:
            try:
                bound = dt.datetime.fromisoformat(since.replace("Z", "+00:00"))
            except ValueError:
                errors.append(("updated_since", "It should be a valid date in ISO format"))
            else:
                if bound.tzinfo is None:  # Freshdesk's API times are UTC
                    bound = bound.replace(tzinfo=dt.UTC)
        if errors:
            return _validation_failed(errors)
        assert page is not None and per_page is not None

        tickets = [t for t in self.tickets.values() if _in_list(t, ticket_filter)]
        if bound is not None:
            cut = bound.replace(microsecond=0)
            tickets = [t for t in tickets if self.stamps[t["id"]] >= cut]
        else:  # Freshdesk's default: only the tickets created in the last 30 days
            created_after = dt.datetime.fromtimestamp(now, dt.UTC) - DEFAULT_WINDOW
            tickets = [t for t in tickets if t["created_at"] >= iso(created_after)]
        tickets.sort(key=lambda t: (self._sort_value(t, order_by), t["id"]))
        if order_type == "desc":
            tickets.reverse()
        return self._page(request, tickets, page, per_page)

    def _update(self, number: int, request: Request) -> Reply:
        """`PUT /api/v2/tickets/{id}`: the change applied, or Freshdesk's 400."""
        body = request.json()
        self.writes.append((number, body))
        ticket = self.tickets.get(number)
        if ticket is None:
            return _not_found()
        if not isinstance(body, dict):
            return _validation_failed([("body", "It should be a valid JSON object")])
        errors: list[tuple[str, str]] = []
        if "status" in body and body["status"] not in self.statuses:
            codes = ",".join(str(code) for code in sorted(self.statuses))
            errors.append(("status", f"It should be one of these values: '{codes}'"))
        if "responder_id" in body:
            responder = body["responder_id"]
            if responder is not None and responder not in self.agents:
                errors.append(("responder_id", "There is no agent matching the given id"))
        if errors:
            return _validation_failed(errors)
        fields = {k: body[k] for k in ("status", "responder_id") if k in body}
        if any(ticket.get(key) != value for key, value in fields.items()):
            now = dt.datetime.fromtimestamp(self.clock(), dt.UTC).replace(microsecond=0)
            self.touch(number, now, **fields)
        return Reply(200, ticket)

    def _ticket_fields(self, request: Request) -> Reply:
        """`GET /api/v2/ticket_fields`: the status field (and the priority), by `type`."""
        fields = [
            {
                "id": 5_000_000_003,
                "name": "status",
                "label": "Status",
                "description": "Ticket status",
                "position": 3,
                "required_for_closure": False,
                "required_for_agents": False,
                "type": "default_status",
                "default": True,
                "customers_can_edit": False,
                "label_for_customers": "Status",
                "required_for_customers": False,
                "displayed_to_customers": True,
                "created_at": "2024-01-15T09:00:00Z",
                "updated_at": "2026-10-01T09:00:00Z",
                "choices": {str(code): labels for code, labels in sorted(self.statuses.items())},
            },
            {
                "id": 5_000_000_004,
                "name": "priority",
                "label": "Priority",
                "type": "default_priority",
                "default": True,
                "choices": {"Low": 1, "Medium": 2, "High": 3, "Urgent": 4},
            },
        ]
        wanted = request.param("type")
        return Reply(200, [f for f in fields if wanted is None or f["type"] == wanted])

    def _agents(self, request: Request) -> Reply:
        """`GET /api/v2/agents`: every agent, by id, paged."""
        paging = _paging(request)
        if isinstance(paging, Reply):
            return paging
        agents = [self.agents[i] for i in sorted(self.agents)]
        return self._page(request, agents, *paging)

    def _page(self, request: Request, items: list[Any], page: int, per_page: int) -> Reply:
        """Page `page` of `items`, with the `link` header Freshdesk sends while more follow."""
        start = (page - 1) * per_page
        headers: dict[str, str] = {}
        if len(items) > start + per_page:
            query = {**{k: v[-1] for k, v in request.query.items()}, "page": str(page + 1)}
            headers["Link"] = f'<{self.base_url}{request.path}?{urlencode(query)}>; rel="next"'
        return Reply(200, items[start : start + per_page], headers=headers)

    def _conversations(self, request: Request, number: int) -> Reply:
        """`GET /api/v2/tickets/{id}/conversations`, oldest first."""
        if self._user(request) != self.api_key:
            return Reply(
                401,
                {
                    "code": "invalid_credentials",
                    "message": "You have to be logged in to perform this action.",
                },
            )
        paging = _paging(request)
        if isinstance(paging, Reply):
            return paging
        if number not in self.tickets:
            return Reply(404, {"code": "not_found", "message": "Resource not found"})
        listed = self.conversations.get(number, [])
        return self._page(request, listed, *paging)

    def _sort_value(self, ticket: dict[str, Any], order_by: str) -> Any:
        if order_by == "updated_at":
            return iso(self.stamps[ticket["id"]])
        value = ticket[order_by]
        return "" if value is None else value

    def _user(self, request: Request) -> str | None:
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme != "Basic":
            return None
        try:
            user, _, _ = base64.b64decode(encoded).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return user

    def _quota_headers(self, reply: Reply) -> dict[str, str]:
        remaining = max(0, self.requests_per_window - len(self._served))
        return {
            "X-Ratelimit-Total": str(self.requests_per_window),
            "X-Ratelimit-Remaining": str(remaining),
            "X-Ratelimit-Used-CurrentRequest": "0" if reply.status == 429 else "1",
        }


def _in_list(ticket: dict[str, Any], ticket_filter: str | None) -> bool:
    if ticket_filter == "deleted":
        return ticket.get("deleted") is True
    if ticket_filter == "spam":
        return ticket.get("spam") is True and ticket.get("deleted") is not True
    if ticket.get("deleted") is True or ticket.get("spam") is True:
        return False
    if ticket_filter == "new_and_my_open":
        return bool(ticket["status"] == 2)
    return True  # no filter; "watching" would need a user, and no one watches here


def _not_found() -> Reply:
    return Reply(404, {"code": "not_found", "message": "Resource not found"})


def _integer(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _validation_failed(errors: list[tuple[str, str]]) -> Reply:
    return Reply(
        400,
        {
            "description": "Validation failed",
            "errors": [
                {"field": field, "message": message, "code": "invalid_value"}
                for field, message in errors
            ],
        },
    )


def _paging(request: Request) -> tuple[int, int] | Reply:
    """A list's `page` and `per_page` (30 by default, at most 100), or Freshdesk's 400."""
    page = _integer(request.param("page", "1"))
    per_page = _integer(request.param("per_page", "30"))
    errors: list[tuple[str, str]] = []
    if page is None or page < 1:
        errors.append(("page", "It should be a Positive Number"))
    if per_page is None or not 1 <= per_page <= 100:
        errors.append(("per_page", "It should be a Positive Number less than or equal to 100"))
    if errors:
        return _validation_failed(errors)
    assert page is not None and per_page is not None
    return page, per_page
