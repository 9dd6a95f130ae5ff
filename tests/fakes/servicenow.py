"""A fake ServiceNow Table API (`/api/now/table/{table}`), as ServiceNow documents it.

Raw values (`sysparm_display_value=false`) are strings; date-times are UTC
`YYYY-MM-DD HH:MM:SS` with no zone marker. Display values are rendered in
the API user's zone (`user_tz`), and so is `javascript:gs.dateGenerate(...)`
in a query; a plain date literal is UTC. Encoded queries: conditions
(`=`, `!=`, `>`, `>=`, `<`, `<=`, `IN`, `LIKE`, `STARTSWITH`, `ISEMPTY`,
`ISNOTEMPTY`) joined by `^`, `^OR` binding to the condition before it,
`^NQ` starting an ORed group, `ORDERBY`/`ORDERBYDESC` anywhere. An empty
value compares like SQL NULL (never greater, never equal). Paging by
`sysparm_limit`/`sysparm_offset` with a `Link` header (first/prev/next, last
only when counting; none at all when one page holds everything) and
`X-Total-Count` unless `sysparm_no_count=true`. Rows an ACL hides
(`acl_hidden`) are dropped from a page after the query ran: short and even
empty pages with more to come. Basic or Bearer auth, else 401. OAuth
(`POST /oauth_token.do`, form-encoded, client id and secret in the body): the
password grant returns an access and a refresh token (the current access token
again while it is valid), the refresh_token grant a new access token and the
same refresh token, the client_credentials grant an access token only;
`expires_in` is `token_lifetime` (1800 s by default, so 1799 as the instance
says it) and an expired or revoked access token gets the Table API's 401;
anything refused gets ServiceNow's 401 `{"error": "server_error",
"error_description": "access_denied"}`. Unlike a real
instance, which by default ignores a condition on an unknown field, this fake
answers 400, so a connector's typo can't pass unnoticed.

Users (`add_user`) live in `sys_user` (`sys_id`, `user_name`, `name`,
`email`, `active`), read through the same Table API
(`sys_idINa,b,c`). A reference field's target can be dot-walked in
`sysparm_fields`: `assigned_to.email` comes back as a key of that name
holding the user's email, "" when the reference is empty. An ACL may hide a
user's email from the API user (`email_hidden`): it reads "", directly and
dot-walked alike.

Journal entries (`journal`): the `sys_journal_field` table holds each entry
of a record's journal fields, one row each: `element_id` the record's
sys_id, `name` its table, `element` the field (`comments`, the additional
comments a customer sees; `work_notes`, seen by agents only), `value` the
text, `sys_created_on` (UTC, raw) and `sys_created_by` (the author's
`user_name`, not a sys_id). It is queried like any table; an entry also moves
its record's `sys_updated_on`, as posting a comment does.

One record (Table API, https://www.servicenow.com/docs/r/api-reference/rest-apis/c_TableAPI.html):
`GET /api/now/table/{table}/{sys_id}` answers `{"result": {...}}`, and `PATCH` on the same
path updates the fields its JSON body names and answers the record as it now stands
(200), `sys_updated_on` on the fake's clock. A sys_id the table lacks (or an ACL hides)
is a 404 `{"error": {"message": "No Record found", "detail": "Record doesn't exist or
ACL restricts the record retrieval"}, "status": "failure"}`. "403 Forbidden: ... ACL
failures, or business rule or data policy constraints" (REST API HTTP response codes,
https://www.servicenow.com/docs/r/api-reference/rest-api-explorer/r_RESTAPIHTTPResponseCodes.html):
an API user without write access (`write_denied`) gets "ACL Exception Update Failed due
to security constraints", and the data policy many instances have on incident
(`resolution_policy`, on by default) refuses a move to Resolved (6) or Closed (7) without
`close_code` and `close_notes`: "Data Policy Exception: The following fields are
mandatory: Resolution code, Resolution notes" (the wording of the docs' "Data Policy
Exception: Short description is mandatory"). A reference (`assigned_to`) takes a sys_id,
"" to empty it. Every PATCH is kept in `writes` (sys_id, body) before it is judged.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode
from zoneinfo import ZoneInfo

from fakes import FakeApi, Reply, Request

STAMP = "%Y-%m-%d %H:%M:%S"
DATETIMES = {"sys_created_on", "sys_updated_on", "due_date", "opened_at"}
REFERENCES = {"assigned_to", "assignment_group", "caller_id"}
USER_FIELDS = {"user_name", "name", "email"}
FIELDS = {
    *USER_FIELDS,
    "sys_id",
    "number",
    "short_description",
    "state",
    "priority",
    "urgency",
    "impact",
    "category",
    "active",
    *DATETIMES,
    *REFERENCES,
}
JOURNAL = "sys_journal_field"
JOURNAL_FIELDS = {
    "sys_id",
    "element",
    "element_id",
    "name",
    "value",
    "sys_created_on",
    "sys_created_by",
}
TABLE_FIELDS = {"incident": FIELDS, "sys_user": FIELDS, JOURNAL: JOURNAL_FIELDS}
STATES = {
    "1": "New",
    "2": "In Progress",
    "3": "On Hold",
    "6": "Resolved",
    "7": "Closed",
    "8": "Canceled",
}
NO_RECORD = ("No Record found", "Record doesn't exist or ACL restricts the record retrieval")
RESOLVING = {"6", "7"}
"""The incident states the resolution data policy guards."""
_CONDITION = re.compile(
    r"^(?P<field>[a-z0-9_]+)"
    r"(?P<op>ISNOTEMPTY|ISEMPTY|STARTSWITH|LIKE|NOT IN|IN|>=|<=|!=|=|>|<)(?P<value>.*)$"
)
_DATE_GENERATE = re.compile(
    r"^javascript:gs\.dateGenerate\('(\d{4}-\d{2}-\d{2})','(\d{2}:\d{2}:\d{2})'\)$"
)
_LITERAL = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


def sys_id_of(number: int) -> str:
    """The 32-hex sys_id of test record `number` (ids sort in no relation to numbers)."""
    return hashlib.md5(f"incident-{number}".encode()).hexdigest()  # noqa: S324


def stamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime(STAMP)


class QueryError(ValueError):
    """An encoded query the fake can't run: a 400."""


Condition = Callable[[dict[str, str]], bool]

TOKEN_PATH = "/oauth_token.do"
ACCESS_DENIED = {"error_description": "access_denied", "error": "server_error"}
"""What the instance answers, with a 401, to any token request it refuses."""


@dataclass
class OAuthClient:
    """An OAuth application registered on the instance (System OAuth > Application Registry)."""

    client_id: str
    client_secret: str
    client_credentials: bool = True
    """Whether the instance takes the client_credentials grant for it (Washington DC and later,
    behind a system property, mapped to the OAuth Application User)."""


@dataclass
class IssuedToken:
    grant: str
    access_token: str
    expires_at: float  # time.monotonic()
    refresh_token: str | None = None
    revoked: bool = False

    def valid(self) -> bool:
        return not self.revoked and time.monotonic() < self.expires_at


class FakeServiceNow(FakeApi):
    def __init__(
        self, username: str, password: str, token: str, user_tz: str = "America/New_York"
    ) -> None:
        super().__init__()
        self.username, self.password, self.token = username, password, token
        self._user = (username, password)
        self.user_tz = ZoneInfo(user_tz)
        self.tables: dict[str, dict[str, dict[str, str]]] = {
            "incident": {},
            "sys_user": {},
            JOURNAL: {},
        }
        self.acl_hidden: set[str] = set()
        """sys_ids the API user may not read: dropped from pages after the query ran."""
        self.email_hidden: set[str] = set()
        """sys_user sys_ids whose `email` an ACL hides from the API user: it reads ""."""
        self.oauth_client: OAuthClient | None = None
        self.token_lifetime = 1800.0
        """Seconds an access token lives (the instance's default; tests shorten it)."""
        self.issued: list[IssuedToken] = []
        self.refresh_tokens: set[str] = set()
        self.refused: list[Request] = []
        """Table API requests answered 401."""
        self.writes: list[tuple[str, Any]] = []
        """Every PATCH of a record: its sys_id and the body."""
        self.write_denied = False
        """The API user may read the table but not write it: an ACL refuses each PATCH."""
        self.resolution_policy = True
        """Resolving or closing an incident needs close_code and close_notes (a data policy)."""
        self.business_rules: list[Callable[[dict[str, str]], None]] = []
        """"Before update" business rules: each may change the record about to be saved."""

    # Test controls

    def reset(self, user_tz: str = "America/New_York") -> None:
        """Forget every record, request and scripted fault (one server serves many tests)."""
        with self.lock:
            self.tables = {"incident": {}, "sys_user": {}, JOURNAL: {}}
            self.requests.clear()
            self.faults.clear()
            self.acl_hidden.clear()
            self.email_hidden.clear()
            self.user_tz = ZoneInfo(user_tz)
            self.username, self.password = self._user
            self.oauth_client = None
            self.token_lifetime = 1800.0
            self.issued.clear()
            self.refresh_tokens.clear()
            self.refused.clear()
            self.writes.clear()
            self.write_denied = False
            self.resolution_policy = True
            self.business_rules.clear()

    def revoke_access_tokens(self) -> None:
        """Revoke every access token issued so far (an admin deleting them all)."""
        with self.lock:
            for token in self.issued:
                token.revoked = True

    def revoke_refresh_tokens(self) -> None:
        with self.lock:
            self.refresh_tokens.clear()

    def grants(self) -> list[str]:
        """The grant type of each token request the instance received, in order."""
        return [
            (parse_qs(r.body.decode()).get("grant_type") or ["?"])[0]
            for r in self.requests
            if r.path == TOKEN_PATH
        ]

    def add(self, number: int, updated: dt.datetime | None, **fields: str) -> dict[str, str]:
        """Insert incident `number`; `updated=None` leaves `sys_updated_on` empty."""
        created = stamp(updated - dt.timedelta(hours=1)) if updated else ""
        record = {
            "sys_id": sys_id_of(number),
            "number": f"INC{number:07d}",
            "short_description": f"Incident {number}",
            "state": "1",
            "priority": "4",
            "urgency": "3",
            "impact": "3",
            "category": "inquiry",
            "active": "true",
            "assigned_to": "",
            "assignment_group": "287ebd7da9fe198100f92cc8d1d2154e",
            "caller_id": "681ccaf9c0a8016400b98a06818d57c7",
            "due_date": "",
            "opened_at": created,
            "sys_created_on": created,
            "sys_updated_on": stamp(updated) if updated else "",
            **fields,
        }
        with self.lock:
            self.tables["incident"][record["sys_id"]] = record
        return record

    def add_user(
        self, user_name: str, name: str, email: str, *, active: bool = True, hidden: bool = False
    ) -> str:
        """Insert a `sys_user` row; its sys_id. `hidden`: an ACL hides its email."""
        sys_id = hashlib.md5(f"user-{user_name}".encode()).hexdigest()  # noqa: S324
        with self.lock:
            self.tables["sys_user"][sys_id] = {
                "sys_id": sys_id,
                "user_name": user_name,
                "name": name,
                "email": email,
                "active": "true" if active else "false",
                "sys_created_on": "2024-01-15 09:00:00",
                "sys_updated_on": "2026-10-01 09:00:00",
            }
            if hidden:
                self.email_hidden.add(sys_id)
        return sys_id

    def touch(self, number: int, updated: dt.datetime, **fields: str) -> None:
        with self.lock:
            self.tables["incident"][sys_id_of(number)].update(fields, sys_updated_on=stamp(updated))

    def journal(
        self,
        number: int,
        at: dt.datetime,
        text: str = "We are on it.",
        element: str = "comments",
        by: str = "beth.anglin",
        touch: bool = True,
    ) -> dict[str, str]:
        """An entry in incident `number`'s `element` journal (`comments` or `work_notes`) at
        `at`; with `touch` the incident's `sys_updated_on` moves to `at`."""
        with self.lock:
            target = sys_id_of(number)
            entry_id = hashlib.md5(f"journal-{len(self.tables[JOURNAL])}".encode()).hexdigest()  # noqa: S324
            entry = {
                "sys_id": entry_id,
                "element": element,
                "element_id": target,
                "name": "incident",
                "value": text,
                "sys_created_on": stamp(at),
                "sys_created_by": by,
            }
            self.tables[JOURNAL][entry_id] = entry
            if touch:
                self.tables["incident"][target]["sys_updated_on"] = stamp(at)
        return entry

    def journal_gets(self) -> list[Request]:
        """The requests for journal entries."""
        return [r for r in self.requests if r.path == f"/api/now/table/{JOURNAL}"]

    def delete(self, number: int) -> None:
        with self.lock:
            del self.tables["incident"][sys_id_of(number)]

    def rate_limited(self, wait: int) -> Reply:
        return Reply(
            429,
            {
                "error": {"message": "Rate limit exceeded", "detail": "Too many requests"},
                "status": "failure",
            },
            headers={
                "Retry-After": str(wait),
                "X-RateLimit-Limit": "1000",
                "X-RateLimit-Reset": str(int(time.time()) + wait),
                "X-RateLimit-Rule": "d4cf6ed9c0a8016400e2aa1b6f5e1a6c",
            },
        )

    # Serving

    def route(self, request: Request) -> Reply:
        if request.path == TOKEN_PATH and request.method == "POST":
            return self._token(request)
        if not request.path.startswith("/api/now/table/"):
            return _failure(400, "Requested URI does not represent any resource")
        if not self._authorized(request.headers.get("authorization", "")):
            self.refused.append(request)
            return _failure(401, "User Not Authenticated", "Required to provide Auth information")
        table = request.path.removeprefix("/api/now/table/")
        table, _, sys_id = table.partition("/")
        if table in self.tables and sys_id:
            return self._record(request, table, sys_id)
        if table not in self.tables:
            return _failure(400, f"Invalid table {table}")
        try:
            where, order = self._parse(request.param("sysparm_query") or "", table)
            limit = int(request.param("sysparm_limit") or 10_000)
            offset = int(request.param("sysparm_offset") or 0)
        except (QueryError, ValueError) as exc:
            return _failure(400, str(exc))
        with self.lock:
            rows = [dict(r) for r in self.tables[table].values() if where(r)]
        for name, descending in reversed(order):
            rows.sort(key=lambda r, n=name: r.get(n, ""), reverse=descending)  # type: ignore[misc]
        total = len(rows)
        page = [r for r in rows[offset : offset + limit] if r["sys_id"] not in self.acl_hidden]
        counting = request.param("sysparm_no_count") != "true"
        headers = {"X-Total-Count": str(total)} if counting else {}
        if offset > 0 or offset + limit < total:
            headers["Link"] = self._links(request, offset, limit, total, counting)
        return Reply(200, {"result": [self._render(r, request) for r in page]}, headers=headers)

    def _record(self, request: Request, table: str, sys_id: str) -> Reply:
        """`GET` or `PATCH /api/now/table/{table}/{sys_id}` (see the module docstring)."""
        if request.method not in ("GET", "PATCH"):
            return _failure(405, "Method not Supported", f"{request.method} is not supported")
        body = request.json() if request.method == "PATCH" else None
        with self.lock:
            if request.method == "PATCH":
                self.writes.append((sys_id, body))
            record = self.tables[table].get(sys_id)
            if record is None or sys_id in self.acl_hidden:
                return _failure(404, *NO_RECORD)
            if request.method == "PATCH":
                if not isinstance(body, dict):
                    return _failure(
                        400, "Exception while reading request", "The payload is not valid JSON."
                    )
                refusal = self._refusal(record, body)
                if refusal is not None:
                    return refusal
                changes = {
                    k: str(v) for k, v in body.items() if k in FIELDS or k.startswith("close_")
                }
                saved = {**record, **changes}
                for rule in self.business_rules:
                    rule(saved)
                record.update(saved, sys_updated_on=stamp(self.clock.now()))
            answer = self._render(dict(record), request)
        return Reply(200, {"result": answer})

    def _refusal(self, record: dict[str, str], body: dict[str, Any]) -> Reply | None:
        """What the instance's ACLs and data policies answer to this update, if they refuse it."""
        if self.write_denied:
            return _failure(
                403, "Operation Failed", "ACL Exception Update Failed due to security constraints"
            )
        after = {**record, **{k: str(v) for k, v in body.items()}}
        if (
            self.resolution_policy
            and str(body.get("state")) in RESOLVING
            and not (after.get("close_code") and after.get("close_notes"))
        ):
            return _failure(
                403,
                "Operation Failed",
                "Data Policy Exception: \n\tThe following fields are mandatory: "
                "Resolution code, Resolution notes\n",
            )
        return None

    def _authorized(self, header: str) -> bool:
        basic = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        if header in (f"Basic {basic}", f"Bearer {self.token}"):
            return True
        bearer = header.removeprefix("Bearer ")
        return any(t.access_token == bearer and t.valid() for t in self.issued)

    def _token(self, request: Request) -> Reply:
        """`POST /oauth_token.do`, as ServiceNow documents its OAuth API."""
        if request.headers.get("content-type", "").split(";")[0] != (
            "application/x-www-form-urlencoded"
        ):
            return Reply(401, ACCESS_DENIED)  # "application/json results in an unspecified error"
        form = {k: v[-1] for k, v in parse_qs(request.body.decode()).items()}
        client = self.oauth_client
        if (
            client is None
            or form.get("client_id") != client.client_id
            or form.get("client_secret") != client.client_secret
        ):
            return Reply(401, ACCESS_DENIED)
        grant = form.get("grant_type")
        with self.lock:
            if grant == "password":
                if (form.get("username"), form.get("password")) != (self.username, self.password):
                    return Reply(401, ACCESS_DENIED)
                current = next(
                    (t for t in reversed(self.issued) if t.grant == "password" and t.valid()), None
                )
                if current is not None:  # "always return the current access token"
                    return self._token_reply(current)
                refresh = next(iter(self.refresh_tokens), None) or _secret("snow-refresh")
                self.refresh_tokens.add(refresh)
                return self._token_reply(self._issue("password", refresh))
            if grant == "refresh_token":
                refresh = form.get("refresh_token", "")
                if refresh not in self.refresh_tokens:
                    return Reply(401, ACCESS_DENIED)
                return self._token_reply(self._issue("refresh_token", refresh))
            if grant == "client_credentials" and client.client_credentials:
                return self._token_reply(self._issue("client_credentials", None))
        return Reply(401, ACCESS_DENIED)

    def _issue(self, grant: str, refresh: str | None) -> IssuedToken:
        token = IssuedToken(
            grant, _secret("snow-access"), time.monotonic() + self.token_lifetime, refresh
        )
        self.issued.append(token)
        return token

    def _token_reply(self, token: IssuedToken) -> Reply:
        body: dict[str, Any] = {
            "access_token": token.access_token,
            "scope": "useraccount",
            "token_type": "Bearer",
            # What is left of it, in whole seconds (1799 for a fresh token of 1800 s).
            "expires_in": max(0, int(token.expires_at - time.monotonic())),
        }
        if token.refresh_token is not None:
            body["refresh_token"] = token.refresh_token
        return Reply(200, body)

    def _links(self, request: Request, offset: int, limit: int, total: int, counting: bool) -> str:
        def at(position: int) -> str:
            params = {k: v[-1] for k, v in request.query.items()}
            params["sysparm_offset"] = str(max(0, position))
            return f"{self.base_url}{request.path}?{urlencode(params)}"

        links = [f'<{at(0)}>;rel="first"']
        if offset > 0:
            links.append(f'<{at(offset - limit)}>;rel="prev"')
        if offset + limit < total:
            links.append(f'<{at(offset + limit)}>;rel="next"')
        if counting:
            links.append(f'<{at((max(0, total - 1) // limit) * limit)}>;rel="last"')
        return ",".join(links)

    def _render(self, record: dict[str, str], request: Request) -> dict[str, Any]:
        display = request.param("sysparm_display_value", "false")
        links = request.param("sysparm_exclude_reference_link") != "true"
        wanted = [f for f in (request.param("sysparm_fields") or "").split(",") if f]
        out: dict[str, Any] = {}
        for name in wanted or list(record):
            if "." in name:  # dot-walked: a field of the row a reference points at
                out[name] = self._walked(record, name)
                continue
            value = record.get(name, "")
            if name == "email" and record.get("sys_id") in self.email_hidden:
                value = ""
            if display == "true" and name in DATETIMES and value:
                value = self._local(value)
            elif display == "true" and name == "state":
                value = STATES.get(value, value)
            if links and name in REFERENCES and value:
                out[name] = {
                    "link": f"{self.base_url}/api/now/table/sys_user/{value}",
                    "value": value,
                }
            else:
                out[name] = value
        return out

    def _walked(self, record: dict[str, str], name: str) -> str:
        reference, _, field = name.partition(".")
        target = self.tables["sys_user"].get(record.get(reference, "")) or {}
        if field == "email" and target.get("sys_id") in self.email_hidden:
            return ""
        return target.get(field, "") if reference in REFERENCES else ""

    def _local(self, value: str) -> str:
        moment = dt.datetime.strptime(value, STAMP).replace(tzinfo=dt.UTC)
        return moment.astimezone(self.user_tz).strftime(STAMP)

    # Encoded queries

    def _parse(self, query: str, table: str) -> tuple[Condition, list[tuple[str, bool]]]:
        order: list[tuple[str, bool]] = []
        groups: list[list[list[Condition]]] = []
        for text in query.split("^NQ"):
            group: list[list[Condition]] = []  # AND of ORs
            for term in text.split("^"):
                if not term or term == "EQ":
                    continue
                if term.startswith("ORDERBYDESC"):
                    order.append((self._field(term[11:], table), True))
                elif term.startswith("ORDERBY"):
                    order.append((self._field(term[7:], table), False))
                elif term.startswith("OR") and group:
                    group[-1].append(self._condition(term[2:], table))
                else:
                    group.append([self._condition(term, table)])
            if group:
                groups.append(group)

        def matches(record: dict[str, str]) -> bool:
            if not groups:
                return True
            return any(all(any(c(record) for c in ors) for ors in group) for group in groups)

        return matches, order

    def _field(self, name: str, table: str) -> str:
        if name not in TABLE_FIELDS[table]:
            raise QueryError(f"Invalid query: unknown field {name!r}")
        return name

    def _condition(self, term: str, table: str) -> Condition:
        match = _CONDITION.match(term)
        if match is None:
            raise QueryError(f"Invalid query: can't read condition {term!r}")
        name, op, value = self._field(match["field"], table), match["op"], match["value"]
        if name in DATETIMES and op not in ("ISEMPTY", "ISNOTEMPTY"):
            value = self._datetime(value)
        if op == "ISEMPTY":
            return lambda r: r.get(name, "") == ""
        if op == "ISNOTEMPTY":
            return lambda r: r.get(name, "") != ""
        if op in ("IN", "NOT IN"):
            options = set(value.split(","))
            return lambda r: (r.get(name, "") in options) == (op == "IN")
        if op == "LIKE":
            return lambda r: value.lower() in r.get(name, "").lower()
        if op == "STARTSWITH":
            return lambda r: r.get(name, "").lower().startswith(value.lower())
        if op == "!=":
            return lambda r: r.get(name, "") != value
        compare: dict[str, Callable[[str, str], bool]] = {
            "=": lambda a, b: a == b,
            ">": lambda a, b: a > b,
            ">=": lambda a, b: a >= b,
            "<": lambda a, b: a < b,
            "<=": lambda a, b: a <= b,
        }
        check = compare[op]
        # An empty value is NULL in the database: no comparison holds for it.
        return lambda r: r.get(name, "") != "" and check(r.get(name, ""), value)

    def _datetime(self, value: str) -> str:
        generated = _DATE_GENERATE.match(value)
        if generated:  # the user's zone, as the platform evaluates it
            local = dt.datetime.strptime(f"{generated[1]} {generated[2]}", STAMP)
            return stamp(local.replace(tzinfo=self.user_tz))
        if not _LITERAL.match(value):
            raise QueryError(f"Invalid query: {value!r} is not a date-time (YYYY-MM-DD HH:MM:SS)")
        return value  # a literal is UTC


def _secret(prefix: str) -> str:
    return f"{prefix}-{secrets.token_urlsafe(24)}"


def _failure(status: int, message: str, detail: str | None = None) -> Reply:
    return Reply(status, {"error": {"message": message, "detail": detail}, "status": "failure"})
