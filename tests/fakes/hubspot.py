"""A fake HubSpot CRM v3 for tickets: search, the archived list, pipelines, owners, OAuth.

From HubSpot's documentation:
- CRM search, https://developers.hubspot.com/docs/api-reference/2026-03/crm/search-the-crm
  (its v3 form, https://developers.hubspot.com/docs-beta/crm/search, and its limitations,
  https://developers.hubspot.com/docs/api-reference/search/guide#limitations):
  `POST /crm/v3/objects/tickets/search` with `filterGroups` (ORed; the filters
  of a group ANDed; at most 5 groups, 6 filters a group, 18 in all), `sorts`
  (one sorting rule), `properties`, `limit` (default 10, at most 200) and
  `after`. Date-time filters take epoch milliseconds (or an ISO date-time).
  The answer is `{"total", "results", "paging": {"next": {"after"}}}`; each
  result `{"id", "properties", "createdAt", "updatedAt", "archived"}` with
  every property value a string (or null). At most 10,000 results per query:
  an `after` that reaches past it is a 400. Archived tickets never appear.
  Records that tie on the sort key come back in no documented order: this fake
  shuffles ties anew on every request. Search is limited to a few requests a
  second per account (4, then 5 in the current docs,
  https://developers.hubspot.com/changelog/crm-search-api-rate-limit-increase);
  its answers here carry none of the `X-HubSpot-RateLimit-*` headers, which
  describe the portal's other limits (integrators report them absent from
  search answers; the docs read don't say). "It may take
  a few moments for newly created or updated CRM objects to appear in search
  results": `index_lag` delays what search sees of each write, on the fake's
  clock, while the list and read endpoints see it at once.
- Tickets, https://developers.hubspot.com/docs/api-reference/latest/crm/objects/tickets/guide:
  `GET /crm/v3/objects/tickets?limit=&after=&archived=&properties=` pages by
  an opaque `after` (limit at most 100); with `archived=true` it lists the
  recycle bin, each ticket with `archived: true` and `archivedAt`.
- Pipelines, https://developers.hubspot.com/docs/api-reference/legacy/crm/pipelines/get-pipelines:
  `GET /crm/v3/pipelines/tickets` lists each pipeline with its `stages`,
  each stage with `metadata.ticketState` `OPEN` or `CLOSED`.
- Owners, https://developers.hubspot.com/docs/api-reference/crm-crm-owners-v3/guide:
  `GET /crm/v3/owners?limit=&after=&archived=` (limit at most 500) and
  `GET /crm/v3/owners/{ownerId}`; a ticket's `hubspot_owner_id` is an owner's `id`.
- Rate limits and errors, https://developers.hubspot.com/docs/api/usage-details:
  `X-HubSpot-RateLimit-Daily/-Daily-Remaining/-Interval-Milliseconds/-Max/
  -Remaining/-Secondly/-Secondly-Remaining` on the other endpoints; a 429's
  body `{"status": "error", "message": "You have reached your secondly
  limit.", "errorType": "RATE_LIMIT", "correlationId", "policyName",
  "requestId"}`, and no `Retry-After`. Other errors:
  `{"status": "error", "message", "correlationId", "category"}`.
- Notes, https://developers.hubspot.com/docs/api-reference/legacy/crm/associations/associate-records/batch/get-associations:
  `POST /crm/v4/associations/tickets/notes/batch/read` with `inputs` (at
  most 1,000, each `{"id", "after"}`) answers, per ticket, `{"from": {"id"},
  "to": [{"toObjectId", "associationTypes"}], "paging": {"next": {"after"}}}`
  (`paging` only while more follow, `assoc_page` a page); a ticket without
  notes is left out of `results` and named in `errors`, and the answer is
  then a 207. `POST /crm/v3/objects/notes/batch/read` (at most 100 `inputs`)
  answers the notes' `properties` (`hs_note_body`, HTML; `hs_timestamp`;
  `hubspot_owner_id`); ids it lacks go to `errors`, with a 207.
- OAuth, https://developers.hubspot.com/docs/api/oauth/refresh-access-token:
  `POST /oauth/v1/token` with the form `grant_type=refresh_token`,
  `client_id`, `client_secret`, `refresh_token`; the answer
  `{"token_type": "bearer", "refresh_token", "access_token", "expires_in"}`.
  Private-app tokens are plain bearer tokens.
"""

from __future__ import annotations

import collections
import datetime as dt
import hashlib
import itertools
import json
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from fakes import FakeApi, Reply, Request

SEARCH = "/crm/v3/objects/tickets/search"
TICKETS = "/crm/v3/objects/tickets"
PIPELINES = "/crm/v3/pipelines/tickets"
OWNERS = "/crm/v3/owners"
TOKEN = "/oauth/v1/token"
NOTE_LINKS = "/crm/v4/associations/tickets/notes/batch/read"
NOTES = "/crm/v3/objects/notes/batch/read"
RESULT_CAP = 10_000
DEFAULT_PROPERTIES = (
    "content",
    "createdate",
    "hs_lastmodifieddate",
    "hs_object_id",
    "hs_pipeline",
    "hs_pipeline_stage",
    "hs_ticket_category",
    "hs_ticket_priority",
    "subject",
)
"""What a ticket search returns when `properties` names none."""
OPERATORS = ("EQ", "NEQ", "LT", "LTE", "GT", "GTE", "BETWEEN", "HAS_PROPERTY", "NOT_HAS_PROPERTY")
DATETIME_PROPERTIES = ("createdate", "hs_lastmodifieddate", "closed_date")
NUMBER_PROPERTIES = ("hs_object_id",)
_OWNER = re.compile(r"^/crm/v3/owners/([^/]+)$")

PIPELINE = {
    "id": "0",
    "label": "Support Pipeline",
    "displayOrder": 0,
    "archived": False,
    "createdAt": "2024-01-10T09:00:00.000Z",
    "updatedAt": "2024-01-10T09:00:00.000Z",
    "stages": [
        {"id": "1", "label": "New", "displayOrder": 0, "metadata": {"ticketState": "OPEN"}},
        {
            "id": "2",
            "label": "Waiting on contact",
            "displayOrder": 1,
            "metadata": {"ticketState": "OPEN"},
        },
        {
            "id": "3",
            "label": "Waiting on us",
            "displayOrder": 2,
            "metadata": {"ticketState": "OPEN"},
        },
        {"id": "4", "label": "Closed", "displayOrder": 3, "metadata": {"ticketState": "CLOSED"}},
    ],
}
"""The default pipeline every portal starts with, as the pipelines API lists it."""


def iso(moment: dt.datetime) -> str:
    """HubSpot's property spelling of a time: UTC, milliseconds, `Z`."""
    utc = moment.astimezone(dt.UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def millis(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


@dataclass
class Indexed:
    """What search sees of a ticket: its record and stamp as of a write, once indexed."""

    visible_at: dt.datetime
    ticket_id: int
    record: dict[str, Any] | None  # None: archived, gone from search
    stamp: dt.datetime | None


class FakeHubSpot(FakeApi):
    def __init__(
        self,
        token: str,
        *,
        result_cap: int = RESULT_CAP,
        search_per_second: int = 5,
        index_lag: dt.timedelta = dt.timedelta(0),
        assoc_page: int = 500,
    ) -> None:
        super().__init__()
        self.token = token
        self.result_cap = result_cap
        self.search_per_second = search_per_second
        self.index_lag = index_lag
        self.assoc_page = assoc_page
        self.notes: dict[int, dict[str, Any]] = {}
        self.note_links: dict[int, list[int]] = {}
        """Each ticket's notes' ids, in the order they were associated."""
        self._note_ids = itertools.count(50_000_001)
        self.tickets: dict[int, dict[str, Any]] = {}
        self.stamps: dict[int, dt.datetime] = {}
        """Each ticket's `hs_lastmodifieddate` as search filters and sorts on it (kept apart
        from the record, so a test can garble the record's own)."""
        self.archived: dict[int, dict[str, Any]] = {}
        self.index: dict[int, tuple[dict[str, Any], dt.datetime]] = {}
        """What search sees: a ticket's record and stamp as of its last indexed write."""
        self._pending: list[Indexed] = []
        self.pipelines: list[dict[str, Any]] = [json.loads(json.dumps(PIPELINE))]
        self.owners: dict[str, dict[str, Any]] = {}
        self.archived_owners: dict[str, dict[str, Any]] = {}
        self._searches: collections.deque[float] = collections.deque()
        self.oauth: tuple[str, str, str] | None = None
        """(client_id, client_secret, refresh_token) the token endpoint accepts."""
        self.issued: list[str] = []
        self._tokens = itertools.count(1)

    # Test controls

    def add(self, number: int, updated: dt.datetime, **properties: Any) -> dict[str, Any]:
        created = iso(updated - dt.timedelta(hours=1))
        ticket = {
            "id": str(number),
            "properties": {
                "content": f"The printer on floor {number} is jammed.",
                "createdate": created,
                "hs_lastmodifieddate": iso(updated),
                "hs_object_id": str(number),
                "hs_pipeline": "0",
                "hs_pipeline_stage": "1",
                "hs_ticket_category": None,
                "hs_ticket_priority": "HIGH",
                "hubspot_owner_id": None,
                "subject": f"Ticket {number}",
                **properties,
            },
            "createdAt": created,
            "updatedAt": iso(updated),
            "archived": False,
        }
        with self.lock:
            self.tickets[number] = ticket
            self.stamps[number] = updated
            self._write(number)
        return ticket

    def touch(self, number: int, updated: dt.datetime, **properties: Any) -> None:
        with self.lock:
            ticket = self.tickets[number]
            ticket["properties"].update(properties, hs_lastmodifieddate=iso(updated))
            ticket["updatedAt"] = iso(updated)
            self.stamps[number] = updated
            self._write(number)

    def archive(self, number: int, at: dt.datetime) -> None:
        """Move the ticket to the recycle bin (`DELETE /crm/v3/objects/tickets/{id}`)."""
        with self.lock:
            ticket = self.tickets.pop(number)
            self.stamps.pop(number)
            self.archived[number] = {**ticket, "archived": True, "archivedAt": iso(at)}
            self._write(number)

    def add_owner(
        self, owner_id: str, email: str | None, first: str, last: str, archived: bool = False
    ) -> None:
        owner = {
            "id": owner_id,
            "email": email,
            "type": "PERSON",
            "firstName": first,
            "lastName": last,
            "userId": int(owner_id) + 1000,
            "userIdIncludingInactive": int(owner_id) + 1000,
            "createdAt": "2024-01-10T09:00:00.000Z",
            "updatedAt": "2024-01-10T09:00:00.000Z",
            "archived": archived,
            "teams": [],
        }
        with self.lock:
            (self.archived_owners if archived else self.owners)[owner_id] = owner

    def add_note(
        self,
        number: int,
        at: dt.datetime,
        text: str = "Called the customer back.",
        owner_id: str | None = "101",
        touch: bool = True,
    ) -> dict[str, Any]:
        """A note on ticket `number` at `at`; with `touch` the ticket's modification time moves
        to `at`, as logging an activity on it does."""
        with self.lock:
            note_id = next(self._note_ids)
            note = {
                "id": str(note_id),
                "properties": {
                    "hs_note_body": f"<p>{text}</p>",
                    "hs_timestamp": iso(at),
                    "hubspot_owner_id": owner_id,
                    "hs_createdate": iso(at),
                    "hs_lastmodifieddate": iso(at),
                    "hs_object_id": str(note_id),
                },
                "createdAt": iso(at),
                "updatedAt": iso(at),
                "archived": False,
            }
            self.notes[note_id] = note
            self.note_links.setdefault(number, []).append(note_id)
        if touch:
            self.touch(number, at)
        return note

    def searches(self) -> list[dict[str, Any]]:
        """The bodies of the search requests, in order."""
        return [json.loads(r.body) for r in self.requests if r.path == SEARCH]

    def _write(self, number: int) -> None:
        ticket = self.tickets.get(number)
        record = None if ticket is None else json.loads(json.dumps(ticket))
        stamp = self.stamps.get(number)
        self._pending.append(Indexed(self.clock.now() + self.index_lag, number, record, stamp))
        self._reindex()

    def _reindex(self) -> None:
        now = self.clock.now()
        waiting: list[Indexed] = []
        for entry in self._pending:
            if entry.visible_at > now:
                waiting.append(entry)
            elif entry.record is None or entry.stamp is None:
                self.index.pop(entry.ticket_id, None)
            else:
                self.index[entry.ticket_id] = (entry.record, entry.stamp)
        self._pending = waiting

    # The API

    def route(self, request: Request) -> Reply:
        with self.lock:
            if request.path == TOKEN and request.method == "POST":
                return self._token(request)
            if request.path == SEARCH:
                return self._search(request)
            reply = self._other(request)
            reply.headers.update(_quota_headers())
            return reply

    def _authorized(self, request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return scheme == "Bearer" and (token == self.token or token in self.issued)

    def _search(self, request: Request) -> Reply:
        now = time.monotonic()
        while self._searches and self._searches[0] <= now - 1.0:
            self._searches.popleft()
        if len(self._searches) >= self.search_per_second:
            return rate_limited(self.search_per_second)
        self._searches.append(now)
        if not self._authorized(request):
            return unauthorized()
        if request.method != "POST":
            return error(405, "Method not allowed", "VALIDATION_ERROR")
        try:
            body = json.loads(request.body or b"{}")
        except json.JSONDecodeError:
            return error(400, "Invalid input JSON", "VALIDATION_ERROR")
        query = _SearchQuery.read(body)
        if isinstance(query, Reply):
            return query
        if query.after + query.limit > self.result_cap:
            return error(
                400,
                f"There was a problem with the request: paging past {self.result_cap:,} results "
                "is not supported",
                "VALIDATION_ERROR",
            )
        self._reindex()
        matches = [
            (record, stamp) for record, stamp in self.index.values() if query.matches(record, stamp)
        ]
        salt = uuid.uuid4().hex  # ties in a new order each time: HubSpot documents none
        matches.sort(key=lambda m: (query.sort_key(*m), _shuffled(salt, m[0]["id"])))
        if query.descending:
            matches.reverse()
        page = matches[query.after : query.after + query.limit]
        answer: dict[str, Any] = {
            "total": len(matches),
            "results": [_with_properties(record, query.properties) for record, _ in page],
        }
        if query.after + query.limit < len(matches):
            answer["paging"] = {"next": {"after": str(query.after + query.limit)}}
        return Reply(200, answer)

    def _other(self, request: Request) -> Reply:
        if not self._authorized(request):
            return unauthorized()
        if request.path == NOTE_LINKS and request.method == "POST":
            return self._note_links(request)
        if request.path == NOTES and request.method == "POST":
            return self._notes(request)
        if request.path == PIPELINES:
            return Reply(200, {"results": self.pipelines})
        if request.path == TICKETS:
            return self._list(request)
        if request.path == OWNERS:
            archived = request.param("archived") == "true"
            owners = self.archived_owners if archived else self.owners
            return self._paged(request, [owners[k] for k in sorted(owners, key=int)], 500)
        found = _OWNER.match(request.path)
        if found is not None:
            owner = self.owners.get(found[1])
            if owner is None and request.param("archived") == "true":
                owner = self.archived_owners.get(found[1])
            if owner is None:
                return error(404, f"Owner {found[1]} not found", "OBJECT_NOT_FOUND")
            return Reply(200, owner)
        return error(404, f"Unable to route {request.method} {request.path}", "OBJECT_NOT_FOUND")

    def _note_links(self, request: Request) -> Reply:
        inputs = _inputs(request, 1000)
        if isinstance(inputs, Reply):
            return inputs
        results: list[dict[str, Any]] = []
        missing: list[str] = []
        for item in inputs:
            ticket_id = str(item.get("id"))
            linked = self.note_links.get(int(ticket_id)) if ticket_id.isdigit() else None
            if not linked:
                missing.append(ticket_id)
                continue
            start = int(item.get("after") or 0)
            page = linked[start : start + self.assoc_page]
            result: dict[str, Any] = {
                "from": {"id": ticket_id},
                "to": [
                    {
                        "toObjectId": note_id,
                        "associationTypes": [
                            {"category": "HUBSPOT_DEFINED", "typeId": 228, "label": None}
                        ],
                    }
                    for note_id in page
                ],
            }
            if start + self.assoc_page < len(linked):
                result["paging"] = {"next": {"after": str(start + self.assoc_page)}}
            results.append(result)
        errors = [
            {
                "status": "error",
                "category": "OBJECT_NOT_FOUND",
                "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                "message": f"No note is associated with ticket {ticket_id}.",
                "context": {"fromObjectId": [ticket_id]},
            }
            for ticket_id in missing
        ]
        return _batch(results, errors)

    def _notes(self, request: Request) -> Reply:
        inputs = _inputs(request, 100)
        if isinstance(inputs, Reply):
            return inputs
        wanted = json.loads(request.body).get("properties") or [
            "hs_createdate",
            "hs_lastmodifieddate",
            "hs_object_id",
        ]
        results, missing = [], []
        for item in inputs:
            note_id = str(item.get("id"))
            note = self.notes.get(int(note_id)) if note_id.isdigit() else None
            if note is None:
                missing.append(note_id)
                continue
            shown = {name: note["properties"].get(name) for name in wanted}
            results.append({**note, "properties": shown})
        errors = [
            {
                "status": "error",
                "category": "OBJECT_NOT_FOUND",
                "message": "Could not get some NOTE objects, they may be deleted or not exist.",
                "context": {"ids": missing},
            }
        ]
        return _batch(results, errors if missing else [])

    def _list(self, request: Request) -> Reply:
        if request.param("archived") == "true":
            tickets = [self.archived[n] for n in sorted(self.archived)]
        else:
            tickets = [self.tickets[n] for n in sorted(self.tickets)]
        wanted = request.param("properties")
        properties = None if wanted is None else [p for p in wanted.split(",") if p]
        shown = [_with_properties(t, properties) for t in tickets]
        return self._paged(request, shown, 100)

    def _paged(self, request: Request, items: list[dict[str, Any]], most: int) -> Reply:
        """A page of a list endpoint: `limit` (default 10), `after` the last id given."""
        try:
            limit = int(request.param("limit", "10") or "10")
        except ValueError:
            return error(400, "limit must be a number", "VALIDATION_ERROR")
        if not 1 <= limit <= most:
            return error(400, f"limit must be between 1 and {most}", "VALIDATION_ERROR")
        after = request.param("after")
        start = 0
        if after:
            ids = [str(item["id"]) for item in items]
            # The token is opaque; here it is the last id given, and the next page starts past it.
            start = next((i for i, v in enumerate(ids) if int(v) > int(after)), len(ids))
        page = items[start : start + limit]
        answer: dict[str, Any] = {"results": page}
        if start + limit < len(items):
            last = page[-1]["id"]
            answer["paging"] = {
                "next": {"after": str(last), "link": f"{self.base_url}{request.path}?after={last}"}
            }
        return Reply(200, answer)

    def _token(self, request: Request) -> Reply:
        form = {k: v[-1] for k, v in parse_qs(request.body.decode()).items()}
        if self.oauth is None or form.get("grant_type") != "refresh_token":
            return Reply(400, {"status": "BAD_GRANT_TYPE", "message": "unsupported grant type"})
        client_id, secret, refresh = self.oauth
        if (form.get("client_id"), form.get("client_secret")) != (client_id, secret):
            return Reply(
                400, {"status": "BAD_CLIENT_ID", "message": "missing or unknown client id"}
            )
        if form.get("refresh_token") != refresh:
            return Reply(
                400, {"status": "BAD_REFRESH_TOKEN", "message": "missing or invalid refresh token"}
            )
        access = f"hubspot-access-{next(self._tokens)}"
        self.issued.append(access)
        return Reply(
            200,
            {
                "token_type": "bearer",
                "refresh_token": refresh,
                "access_token": access,
                "expires_in": 1800,
            },
        )


@dataclass(frozen=True)
class _Filter:
    name: str
    operator: str
    value: Any
    high: Any

    def holds(self, record: dict[str, Any], stamp: dt.datetime) -> bool:
        raw = stamp if self.name == "hs_lastmodifieddate" else record["properties"].get(self.name)
        if self.operator == "HAS_PROPERTY":
            return raw not in (None, "")
        if self.operator == "NOT_HAS_PROPERTY":
            return raw in (None, "")
        if raw in (None, ""):
            return self.operator == "NEQ"
        have, want = _comparable(self.name, raw), _comparable(self.name, self.value)
        match self.operator:
            case "EQ":
                return bool(have == want)
            case "NEQ":
                return bool(have != want)
            case "LT":
                return bool(have < want)
            case "LTE":
                return bool(have <= want)
            case "GT":
                return bool(have > want)
            case "GTE":
                return bool(have >= want)
            case _:  # BETWEEN, inclusive at both ends
                return bool(want <= have <= _comparable(self.name, self.high))


@dataclass(frozen=True)
class _SearchQuery:
    groups: tuple[tuple[_Filter, ...], ...]
    sort: str | None
    descending: bool
    properties: list[str] | None
    limit: int
    after: int

    @classmethod
    def read(cls, body: Any) -> _SearchQuery | Reply:
        if not isinstance(body, dict):
            return error(400, "Invalid input JSON", "VALIDATION_ERROR")
        groups: list[tuple[_Filter, ...]] = []
        raw_groups = body.get("filterGroups") or []
        if len(raw_groups) > 5:
            return error(400, "A maximum of 5 filterGroups are allowed", "VALIDATION_ERROR")
        for group in raw_groups:
            filters: list[_Filter] = []
            raw_filters = group.get("filters") or []
            if len(raw_filters) > 6:
                return error(
                    400, "A maximum of 6 filters per group are allowed", "VALIDATION_ERROR"
                )
            for raw in raw_filters:
                operator = raw.get("operator")
                if operator not in OPERATORS or not raw.get("propertyName"):
                    return error(400, f"Invalid filter: {raw}", "VALIDATION_ERROR")
                if operator not in ("HAS_PROPERTY", "NOT_HAS_PROPERTY") and "value" not in raw:
                    return error(400, f"Filter {raw} needs a value", "VALIDATION_ERROR")
                filters.append(
                    _Filter(raw["propertyName"], operator, raw.get("value"), raw.get("highValue"))
                )
            groups.append(tuple(filters))
        if sum(len(g) for g in groups) > 18:
            return error(400, "A maximum of 18 filters in total are allowed", "VALIDATION_ERROR")
        sorts = body.get("sorts") or []
        if len(sorts) > 1:
            return error(400, "Only one sort is supported", "VALIDATION_ERROR")
        sort, descending = None, False
        if sorts:
            rule = sorts[0]
            sort = rule if isinstance(rule, str) else rule.get("propertyName")
            descending = isinstance(rule, dict) and rule.get("direction") == "DESCENDING"
        limit = body.get("limit", 10)
        if not isinstance(limit, int) or not 1 <= limit <= 200:
            return error(400, "limit must be between 1 and 200", "VALIDATION_ERROR")
        after_text = str(body.get("after") or "0")
        if not after_text.isdigit():
            return error(400, f"Invalid after: {after_text}", "VALIDATION_ERROR")
        properties = body.get("properties")
        return cls(tuple(groups), sort, descending, properties, limit, int(after_text))

    def matches(self, record: dict[str, Any], stamp: dt.datetime) -> bool:
        if not self.groups:
            return True
        return any(all(f.holds(record, stamp) for f in group) for group in self.groups)

    def sort_key(self, record: dict[str, Any], stamp: dt.datetime) -> Any:
        if self.sort is None:
            return int(record["id"])  # unsorted: by id
        if self.sort == "hs_lastmodifieddate":
            return stamp
        value = record["properties"].get(self.sort)
        return (value is None, _comparable(self.sort, value) if value is not None else 0)


def _comparable(name: str, value: Any) -> Any:
    if name in DATETIME_PROPERTIES:
        if isinstance(value, dt.datetime):
            return value
        text = str(value)
        if text.lstrip("-").isdigit():
            return dt.datetime.fromtimestamp(int(text) / 1000, dt.UTC)
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if name in NUMBER_PROPERTIES:
        return int(str(value))
    return str(value)


def _shuffled(salt: str, ticket_id: str) -> str:
    return hashlib.sha256(f"{salt}:{ticket_id}".encode()).hexdigest()


def _with_properties(record: dict[str, Any], properties: list[str] | None) -> dict[str, Any]:
    wanted = properties or DEFAULT_PROPERTIES
    shown = {name: record["properties"].get(name) for name in wanted}
    shown["hs_object_id"] = record["properties"].get("hs_object_id", record["id"])
    return {**record, "properties": shown}


def _inputs(request: Request, most: int) -> list[dict[str, Any]] | Reply:
    try:
        body = json.loads(request.body or b"{}")
    except json.JSONDecodeError:
        return error(400, "Invalid input JSON", "VALIDATION_ERROR")
    inputs = body.get("inputs") if isinstance(body, dict) else None
    if not isinstance(inputs, list) or not all(isinstance(i, dict) for i in inputs):
        return error(400, "inputs must be a list of objects", "VALIDATION_ERROR")
    if len(inputs) > most:
        return error(400, f"Batch input limit is {most}", "VALIDATION_ERROR")
    return inputs


def _batch(results: list[dict[str, Any]], errors: list[dict[str, Any]]) -> Reply:
    """A batch answer: 200 when every input was found, else 207 with the `errors`."""
    stamp = iso(dt.datetime.now(dt.UTC))
    body: dict[str, Any] = {
        "status": "COMPLETE",
        "results": results,
        "startedAt": stamp,
        "completedAt": stamp,
    }
    if errors:
        body["errors"] = errors
        body["numErrors"] = len(errors)
    return Reply(207 if errors else 200, body)


def error(status: int, message: str, category: str) -> Reply:
    """HubSpot's error body."""
    return Reply(
        status,
        {
            "status": "error",
            "message": message,
            "correlationId": str(uuid.uuid4()),
            "category": category,
        },
    )


def unauthorized() -> Reply:
    return error(
        401,
        "Authentication credentials not found. This API supports OAuth 2.0 authentication and "
        "you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
        "INVALID_AUTHENTICATION",
    )


def rate_limited(per_second: int, interval_ms: int = 1000) -> Reply:
    """A 429 as HubSpot documents it: the body names the policy; no `Retry-After`."""
    return Reply(
        429,
        {
            "status": "error",
            "message": "You have reached your secondly limit.",
            "errorType": "RATE_LIMIT",
            "correlationId": str(uuid.uuid4()),
            "groupName": "publicapi:search-secondly",
            "policyName": "SECONDLY",
            "requestId": str(uuid.uuid4()),
        },
        headers={
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(interval_ms),
            "X-HubSpot-RateLimit-Max": str(per_second),
            "X-HubSpot-RateLimit-Remaining": "0",
        },
    )


def _quota_headers() -> dict[str, str]:
    return {
        "X-HubSpot-RateLimit-Daily": "1000000",
        "X-HubSpot-RateLimit-Daily-Remaining": "999000",
        "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
        "X-HubSpot-RateLimit-Max": "190",
        "X-HubSpot-RateLimit-Remaining": "180",
        "X-HubSpot-RateLimit-Secondly": "19",
        "X-HubSpot-RateLimit-Secondly-Remaining": "18",
    }
