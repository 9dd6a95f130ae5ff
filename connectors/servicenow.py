"""ServiceNow: the Table API, oldest change first, paged by keyset.

Calls `GET /api/now/table/{table}` with raw values (`sysparm_display_value=false`:
UTC `YYYY-MM-DD HH:MM:SS`, no zone marker, read as UTC) and Basic or OAuth
bearer auth. The first page asks `sys_updated_on>=W`; each later page asks
for what comes after the last row read in `(sys_updated_on, sys_id)` order:
`sys_updated_on>T^NQsys_updated_on=T^sys_id>S`. Offsets over a live table
shift when a row is edited mid-scan and bulk imports stamp thousands of rows
with one second; a keyset is immune to both and never pages deep. Date
literals in a query are UTC; `gs.dateGenerate` would be the user's zone and
is never used. Deleted rows vanish from the table, as do rows that leave the
`query`'s scope: a census (`scope_ids`) finds them (`sys_audit_delete` could
report deletions as they happen, not read yet). OAuth (`client_id`,
`client_secret`) gets access tokens from `POST /oauth_token.do` by the
password, refresh_token or client_credentials grant, and renews them before
they expire (30 minutes by default) and when one is refused mid-pass.

People. `assigned_to` is the assignee's `sys_user` sys_id. When `fields`
lists `assigned_to`, the connector dot-walks it: `assigned_to.email` comes
with each record at no extra request, and the default mapping takes the
email from there. Without `fields` every column is read and nothing can be
dot-walked, so `people` resolves the sys_ids: `GET /api/now/table/sys_user`
with `sys_idIN...`, `PEOPLE_BATCH` a request. An email an ACL hides reads as
"" either way: that user resolves without one, saying so.

Comments and work notes (`read_comments`): see `ServiceNowConnector.conversations`.

Write-back (`writes` status and assignee): `PATCH /api/now/table/{table}/{sys_id}` with
`state` and `assigned_to`; see `ServiceNowConnector.write`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, ClassVar

import httpx
from pydantic import Field, SecretStr, field_validator, model_validator

from connectors.base import WHOLE_SECOND_LOOKBACK, Cursor, Person, SourceTicket, TicketWrite, unset
from connectors.comments import CommentShape, read_comments
from connectors.errors import FixConfiguration, WriteConflict
from connectors.http import Conversations, HttpOptions, PageRequest, Paginator, RestConnector
from connectors.http.people import person, resolve_in_batches
from connectors.records import get_path
from sync_http.auth import Grant, OAuth2, basic, bearer, token_endpoint

ORDER = "ORDERBYsys_updated_on^ORDERBYsys_id"
OAUTH_PATH = "/oauth_token.do"
CENSUS_PAGE = 2000
"""sys_ids a census asks for per request: ServiceNow advises pages of 500 to 2,000."""
STAMP = "%Y-%m-%d %H:%M:%S"  # what raw values look like, and what a query literal is
USERS_PATH = "/api/now/table/sys_user"
PEOPLE_BATCH = 100
"""sys_ids per `sys_user` request: 100 ids make a query of about 3,300 characters."""
ASSIGNEE_EMAIL = "assigned_to.email"
"""The dot-walked column added to `fields` that list `assigned_to`."""

JOURNAL = "/api/now/table/sys_journal_field"
JOURNAL_ELEMENTS = "comments,work_notes"
JOURNAL_IDS_PER_REQUEST = 100
"""Tickets whose journal one query asks for: 100 sys_ids make a query string of about
3.5 KB, well within the 8 KB request line common proxies and load balancers allow."""
JOURNAL_PAGE = 1000
"""Journal entries per request (ServiceNow advises pages of 500 to 2,000)."""
JOURNAL_SHAPE = CommentShape(
    id="sys_id",
    created_at="sys_created_on",  # raw: UTC without a zone marker
    body="value",
    author="sys_created_by",  # a user_name, not a sys_id
    public=lambda entry: entry.get("element") == "comments",
)
"""A journal entry: `comments` (additional comments) are customer-visible, `work_notes`
are agents' only, so private."""

INCIDENT_STATES = {
    "New": 1,
    "In Progress": 2,
    "On Hold": 3,
    "Resolved": 6,
    "Closed": 7,
    "Canceled": 8,
}
"""incident's states (its `state` choices, out of the box): what write-back's status names
mean unless `state_values` says otherwise."""
INCIDENT_CLOSED = (7, 8)
"""incident's closed states, Closed and Canceled: a record there stays there."""

Keyset = tuple[str, str]
"""A row's place in the order: its `sys_updated_on` as a literal, and its `sys_id`."""


class ServiceNowOptions(HttpOptions):
    site_option = ("instance", "service-now.com")
    instance: str | None = None
    """`acme` for https://acme.service-now.com (or set `base_url`)."""
    table: str = Field(default="incident", pattern=r"^[A-Za-z0-9_]+$")
    """The table to read (`incident`, `sc_req_item`, `problem`)."""
    query: str | None = None
    """An encoded query ANDed to the sync's own, such as `assignment_group=<sys_id>`."""
    fields: list[str] | None = None
    """`sysparm_fields`: only these columns (sys_id and sys_updated_on are always added)."""
    username: str | None = None
    """Basic auth: an integration user that can read the table (or the OAuth password grant's
    user)."""
    password: SecretStr | None = None
    """That user's password."""
    token: SecretStr | None = None
    """A fixed OAuth access token, sent as `Authorization: Bearer`; it expires (see client_id)."""
    client_id: str | None = None
    """An OAuth application's (System OAuth > Application Registry): tokens from /oauth_token.do.

    With username and password: the password grant; with refresh_token: the
    refresh_token grant; alone: the client_credentials grant (Washington DC
    and later, once enabled on the instance).
    """
    client_secret: SecretStr | None = None
    """The OAuth application's client secret."""
    refresh_token: SecretStr | None = None
    """An OAuth refresh token: tokens come from the refresh_token grant."""
    page_size: int = Field(default=500, ge=1, le=10_000)
    """`sysparm_limit`: records per request."""
    state_values: dict[str, int] | None = Field(default=None, exclude_if=unset)
    """Write-back: the table's state names and values, which `write_back.status` names
    (`{ "Closed Complete" = 3 }` for sc_req_item); unset: incident's (New 1, In Progress 2,
    On Hold 3, Resolved 6, Closed 7, Canceled 8). A status given as a number is sent as it
    is."""
    closed_states: list[int] | None = Field(default=None, exclude_if=unset)
    """Write-back: the state values of a closed record, which Fragment's status never moves
    (the source closing it wins: a conflict); unset: incident's Closed (7) and Canceled (8)."""
    fields_with_state: dict[str, dict[str, str]] | None = Field(default=None, exclude_if=unset)
    """Write-back: more fields to send with a state, by its name or value, such as
    `{ Resolved = { close_code = "Solved (Permanently)", close_notes = "Resolved in
    Fragment" } }`: many instances refuse to resolve an incident without them (a data
    policy)."""

    @model_validator(mode="after")
    def _one_credential(self) -> ServiceNowOptions:
        has_basic = self.username is not None or self.password is not None
        if self.client_id is not None or self.client_secret is not None:
            return self._oauth_credentials(has_basic)
        if self.refresh_token is not None:
            raise ValueError("refresh_token needs client_id and client_secret (OAuth)")
        if has_basic and self.token is not None:
            raise ValueError("set either username and password (Basic) or token (OAuth), not both")
        if not has_basic and self.token is None:
            raise ValueError("set username and password (Basic auth) or token (OAuth bearer)")
        if has_basic and (not self.username or self.password is None):
            raise ValueError("Basic auth needs both username and password")
        return self

    def _oauth_credentials(self, has_basic: bool) -> ServiceNowOptions:
        if not self.client_id or self.client_secret is None:
            raise ValueError("OAuth needs both client_id and client_secret")
        if self.token is not None:
            raise ValueError("set either client_id (tokens renewed as needed) or token, not both")
        if has_basic and self.refresh_token is not None:
            raise ValueError(
                "set username and password (password grant) or refresh_token, not both"
            )
        if has_basic and (not self.username or self.password is None):
            raise ValueError("the password grant needs both username and password")
        return self

    @property
    def grant(self) -> Grant:
        """The OAuth grant the credentials given call for."""
        if self.username is not None:
            return "password"
        return "refresh_token" if self.refresh_token is not None else "client_credentials"

    @field_validator("query")
    @classmethod
    def _plain_conditions(cls, query: str | None) -> str | None:
        if query is None or not query.strip():
            return None
        upper = query.upper()
        if "ORDERBY" in upper:
            raise ValueError("must not contain ORDERBY: the connector orders by its own keyset")
        if "^NQ" in upper:
            raise ValueError(
                "must not contain ^NQ: the connector ORs two keyset groups and ANDs your "
                "query into each; write the alternatives with ^OR or IN instead"
            )
        if "JAVASCRIPT:" in upper:
            raise ValueError("must not contain javascript: (gs.dateGenerate reads the user's zone)")
        return query.strip().strip("^")


class ServiceNowConnector(RestConnector):
    kind = "servicenow"
    summary = "ServiceNow Table API (incident by default); needs instance and Basic or OAuth auth"
    Options = ServiceNowOptions
    options: ServiceNowOptions

    records_path = "result"
    id_path = "sys_id"
    cursor_path = "sys_updated_on"  # UTC without a zone marker: parse_cursor reads it as UTC
    default_lookback = WHOLE_SECOND_LOOKBACK
    cursors_from_source_clock = True
    comments = "requests"
    comments_batch = JOURNAL_IDS_PER_REQUEST
    writes = frozenset({"status", "assignee"})
    write_refusals = frozenset({400, 403, 404, 409, 422})

    default_mapping: ClassVar[dict[str, Any]] = {
        "title": "{number} {short_description}",
        "url": "{web_url}",
        "status": "state",
        # incident's states; other tables number theirs differently (override status_map).
        "status_map": {
            "1": "TODO",
            "2": "STARTED",
            "3": "STARTED",
            "6": "DONE",
            "7": "DONE",
            "8": "DONE",
        },
        "due_at": "due_date",
        "external_created_at": "sys_created_on",
        "external_updated_at": "sys_updated_on",
        "fields": {
            "number": "number",
            "priority": "priority",
            "urgency": "urgency",
            "impact": "impact",
            "category": "category",
            "assignment_group": "assignment_group",
            "assigned_to": "assigned_to",
            "caller_id": "caller_id",
            # The state's raw value ("2"): the connector reads raw values, so its label
            # ("In Progress") is not in the record.
            "source_status": "state",
        },
        # Dot-walked when `fields` lists assigned_to; else `people` resolves the sys_id.
        "assignee_email": ASSIGNEE_EMAIL,
        "assignee": "assigned_to",
    }

    def first_request(self, since: Cursor | None, paginator: Paginator) -> PageRequest:
        return PageRequest(f"/api/now/table/{self.options.table}", self.params(since))

    def auth(self) -> httpx.Auth:
        options = self.options
        if options.client_id is not None:
            return OAuth2(
                token_endpoint(OAUTH_PATH, options.base_url),
                options.grant,
                client_id=options.client_id,
                client_secret=options.client_secret,
                client_auth="body",  # as ServiceNow documents it: all in the form
                username=options.username,
                password=options.password,
                refresh_token=options.refresh_token,
            )
        if options.token is not None:
            return bearer(options.token)
        assert options.username is not None and options.password is not None
        return basic(options.username, options.password)

    def paginator(self) -> Paginator:
        return KeysetPaginator(
            self.records_path, self.keyset_of, self.after, self.options.page_size
        )

    def params(self, since: Cursor | None) -> dict[str, Any]:
        bound = f"sys_updated_on>={literal(since)}" if isinstance(since, dt.datetime) else ""
        return self._page(self._and(bound))

    def after(self, keyset: Keyset) -> dict[str, Any]:
        """The parameters of the page after the row at `keyset` (`sys_updated_on`, `sys_id`)."""
        stamp, sys_id = keyset
        later = self._and(f"sys_updated_on>{stamp}")
        tied = self._and(f"sys_updated_on={stamp}^sys_id>{sys_id}")
        return self._page(f"{later}^NQ{tied}")

    def keyset_of(self, record: Any) -> Keyset | None:
        """A row's place in the order, or None when it can't anchor a query."""
        sys_id = get_path(record, "sys_id")
        if not isinstance(sys_id, str) or not sys_id.isalnum():
            return None
        try:
            cursor = self.parse_cursor(get_path(record, self.cursor_path))
        except ValueError:
            return None
        assert isinstance(cursor, dt.datetime)
        return literal(cursor), sys_id

    def scope_ids(self) -> Iterator[str]:
        """Every record `query` matches: `sysparm_fields=sys_id`, keyset-paged by sys_id.

        2,000 a page (ServiceNow advises 500 to 2,000), each page anchored on the
        last sys_id read (`sys_id>X^ORDERBYsys_id`), never an offset.
        """
        table = f"/api/now/table/{self.options.table}"
        last = ""
        while True:
            conditions = self._and(f"sys_id>{last}" if last else "")
            params = {
                "sysparm_query": f"{conditions}^ORDERBYsys_id" if conditions else "ORDERBYsys_id",
                "sysparm_fields": "sys_id",
                "sysparm_no_count": "true",
                "sysparm_limit": CENSUS_PAGE,
            }
            _response, body = self.fetch(PageRequest(table, params))
            records = self.records(body) if body is not None else []
            ids = [
                r["sys_id"]
                for r in records
                if isinstance(r, dict) and isinstance(r.get("sys_id"), str) and r["sys_id"]
            ]
            yield from ids
            if len(records) < CENSUS_PAGE or not ids:
                return
            last = max(ids)

    def people(self, user_ids: Iterable[str]) -> Iterator[Person]:
        """`sys_user` rows by sys_id, `PEOPLE_BATCH` a request; a sys_id it lacks says so."""
        wanted: list[str] = []
        for user_id in dict.fromkeys(user_ids):
            if user_id.isalnum():
                wanted.append(user_id)
            elif user_id:  # nothing else may go into an encoded query
                yield Person(user_id, None, reason="not a sys_id")
        yield from resolve_in_batches(wanted, PEOPLE_BATCH, self._users)

    def _users(self, sys_ids: list[str]) -> Iterator[Person]:
        params = {
            "sysparm_query": f"sys_idIN{','.join(sys_ids)}",
            "sysparm_fields": "sys_id,name,email",
            "sysparm_display_value": "false",
            "sysparm_exclude_reference_link": "true",
            "sysparm_no_count": "true",
            "sysparm_limit": len(sys_ids),
        }
        _response, body = self.fetch(PageRequest(USERS_PATH, params))
        for user in self.records(body) if body is not None else []:
            if isinstance(user, dict) and isinstance(user.get("sys_id"), str):
                hidden = "no email on the ServiceNow user, or an ACL hides it"
                yield person(user["sys_id"], user.get("email"), user.get("name"), hidden)

    def conversations(self, tickets: Sequence[SourceTicket]) -> Conversations:
        """The comments and work notes of up to 100 tickets, from one `sys_journal_field` query.

        `element_idIN<sys_ids>^elementINcomments,work_notes`, oldest first, 1,000
        entries a page: a page of 500 tickets costs 5 requests more (plus one per
        1,000 entries), whatever the number of tickets with comments. Additional
        comments are public, work notes private. The integration user needs read
        access to `sys_journal_field`: a 403 fails the pass, and entries an ACL
        hides leave their tickets with fewer comments. A ticket deleted meanwhile
        just has no entries left to list.
        """
        # sys_ids are 32 hex digits; anything else can't go in an IN list and stays unread.
        by_ticket: dict[str, list[Any]] = {
            t.source_id: [] for t in tickets if t.source_id.isalnum()
        }
        query = (
            # No `name=<table>`: an entry's `name` is its record's own class (`incident`
            # under `table = "task"`); sys_ids are unique across tables anyway.
            f"element_idIN{','.join(by_ticket)}"
            f"^elementIN{JOURNAL_ELEMENTS}^ORDERBYsys_created_on^ORDERBYsys_id"
        )
        params = {
            "sysparm_query": query,
            "sysparm_fields": "sys_id,element_id,element,value,sys_created_on,sys_created_by",
            "sysparm_display_value": "false",
            "sysparm_limit": JOURNAL_PAGE,
            "sysparm_offset": 0,
        }  # counted (no sysparm_no_count): X-Total-Count ends the paging without an empty page
        entries = self.listing(PageRequest(JOURNAL, params), TablePages(), self.records_path)
        for entry in entries or []:
            owner = entry.get("element_id") if isinstance(entry, dict) else None
            if isinstance(owner, str) and owner in by_ticket:
                by_ticket[owner].append(entry)
        return {
            t.source_id: read_comments(t, by_ticket[t.source_id], JOURNAL_SHAPE) for t in tickets
        }

    def write(self, change: TicketWrite) -> None:
        """`PATCH /api/now/table/{table}/{sys_id}` with `state` and `assigned_to`, after
        reading the record (one request) so that a change already made sends nothing.

        A status is a name of `state_values` (any case) or a value, sent with the
        `fields_with_state` configured for it. A record in a closed state
        (`closed_states`) stays there: asked for another, open state it is a
        `WriteConflict`, asked for another closed one nothing is sent. The assignee is
        a `sys_user` sys_id ("" empties it). ACLs, data policies and business rules
        refuse with a 403 (a 400 for a value the instance can't take), and a business
        rule may quietly keep the old value: the answer is checked, and either is a
        `WriteRefused` in ServiceNow's words.
        """
        url = f"/api/now/table/{self.options.table}/{change.source_id}"
        if not change.source_id.isalnum():
            raise self.refused(change, "not a sys_id (32 hex digits)")
        state = None if change.status is None else self._state_value(change.status)
        shown = self.send_write("GET", url, None, params=_ONE_RECORD)
        record = _result(shown)
        if record is None:
            raise self.refused(change, _servicenow_said(shown))
        update: dict[str, str] = {}
        closed = set(self.options.closed_states or INCIDENT_CLOSED)
        current = str(record.get("state", ""))
        if state is not None and current != str(state):
            if current.isdigit() and int(current) in closed:
                if state not in closed:
                    raise WriteConflict(
                        self.name,
                        change.source_id,
                        "status",
                        change.status,
                        f"the record's state is {current} in ServiceNow, a closed state: the "
                        "source closed it, and that wins over Fragment's status",
                    )
            else:
                update = {**self._fields_with(change.status or "", state), "state": str(state)}
        wanted = change.assignee_id or ""
        if change.assign and str(record.get("assigned_to") or "") != wanted:
            update["assigned_to"] = wanted
        if not update:
            return  # already there
        answer = self.send_write("PATCH", url, update, params=_ONE_RECORD)
        written = _result(answer)
        if written is None:
            raise self.refused(change, _servicenow_said(answer))
        asked = {k: update[k] for k in ("state", "assigned_to") if k in update}
        kept = {k: str(written.get(k, "")) for k in asked}
        if kept != asked:
            raise self.refused(
                change,
                f"ServiceNow answered 200 but kept {kept} (asked {asked}): a business rule "
                "on the table changed it back or ignored it",
            )

    def _state_value(self, name: str) -> int:
        """The state value of status `name` (any case, or a number). Raises `FixConfiguration`."""
        if name.strip().isdigit():
            return int(name)
        states = self.options.state_values or INCIDENT_STATES
        found = {k.casefold(): v for k, v in states.items()}.get(name.strip().casefold())
        if found is None:
            known = ", ".join(f"{k} ({v})" for k, v in states.items())
            raise FixConfiguration(
                f"connector {self.name!r}: ServiceNow's {self.options.table} has no state "
                f"{name!r} (known: {known}; set state_values for another table's)",
                key=f"connectors.{self.name}.write_back.status",
            )
        return found

    def _fields_with(self, name: str, state: int) -> dict[str, str]:
        """The `fields_with_state` configured for this state, by its name or its value."""
        configured = {k.casefold(): v for k, v in (self.options.fields_with_state or {}).items()}
        return dict(configured.get(name.strip().casefold()) or configured.get(str(state)) or {})

    def enrich(self, record: dict[str, Any]) -> dict[str, Any]:
        table, sys_id = self.options.table, record.get("sys_id")
        url = f"{self.options.base_url}/nav_to.do?uri={table}.do?sys_id={sys_id}"
        return {**record, "web_url": url}

    def _and(self, condition: str) -> str:
        return "^".join(part for part in (self.options.query, condition) if part)

    def _page(self, conditions: str) -> dict[str, Any]:
        params: dict[str, Any] = {
            "sysparm_query": f"{conditions}^{ORDER}" if conditions else ORDER,
            "sysparm_display_value": "false",
            "sysparm_exclude_reference_link": "true",
            "sysparm_no_count": "true",
            "sysparm_limit": self.options.page_size,
            "sysparm_offset": 0,
        }
        if self.options.fields:
            wanted = [*self.options.fields, "sys_id", self.cursor_path]
            if "assigned_to" in self.options.fields:
                wanted.append(ASSIGNEE_EMAIL)  # the assignee's email, at no extra request
            params["sysparm_fields"] = ",".join(dict.fromkeys(wanted))
        return params


_ONE_RECORD = {
    "sysparm_fields": "sys_id,state,assigned_to",
    "sysparm_display_value": "false",
    "sysparm_exclude_reference_link": "true",
}
"""What write-back reads of a record, and asks back from its PATCH: raw values."""


def _result(response: httpx.Response) -> dict[str, Any] | None:
    """The record a 200 answers (`{"result": {...}}`); None for anything else."""
    if response.status_code != 200:
        return None
    try:
        result = response.json().get("result")
    except (ValueError, AttributeError):
        return None
    return result if isinstance(result, dict) else None


def _servicenow_said(response: httpx.Response) -> str:
    """ServiceNow's refusal in its own words: `{"error": {"message", "detail"}}`."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        error = None
    if not isinstance(error, dict):
        return f"ServiceNow answered {response.status_code}: {response.text[:200]}"
    words = [str(error.get(k)).strip() for k in ("message", "detail") if error.get(k)]
    said = f"ServiceNow answered {response.status_code}: {' - '.join(words)}"
    return f"the record is gone: {said}" if response.status_code == 404 else said


def literal(moment: dt.datetime) -> str:
    """`moment` as a query date literal: UTC, whole seconds (floored, so `>=` stays inclusive)."""
    return moment.astimezone(dt.UTC).strftime(STAMP)


class KeysetPaginator(Paginator):
    """Each page is a fresh query for what sorts after the last row of the page before.

    The end is an empty page. A short page is not the end (ACLs drop rows from
    a page after the query ran), and neither is a missing `Link: rel="next"`
    (whether it is sent with `sysparm_no_count` is not documented): an empty
    last query costs one request, a wrong end would lose rows silently. When
    no row of a page can anchor a query, or every row of a page was filtered
    out while `rel="next"` says more follow, the same query steps on by offset.
    """

    def __init__(
        self,
        records_path: str,
        keyset_of: Callable[[Any], Keyset | None],
        after: Callable[[Keyset], dict[str, Any]],
        limit: int,
        offset_param: str = "sysparm_offset",
    ) -> None:
        super().__init__()
        self.records_path, self.keyset_of, self.after = records_path, keyset_of, after
        self.limit, self.offset_param = limit, offset_param

    def next_page(
        self, current: PageRequest, response: httpx.Response, body: Any, count: int
    ) -> PageRequest | None:
        if count == 0 and "next" not in response.links:
            return None
        rows = get_path(body, self.records_path)
        for row in reversed(rows if isinstance(rows, list) else []):
            keyset = self.keyset_of(row)
            if keyset is not None:
                self._follow("|".join(keyset))
                return PageRequest(current.url, self.after(keyset))
        offset = int(current.params.get(self.offset_param, 0)) + self.limit
        self._follow(f"{current.params.get('sysparm_query')}|{offset}")
        return PageRequest(current.url, {**current.params, self.offset_param: offset})


class TablePages(Paginator):
    """A counted Table API query paged by `sysparm_offset`, a whole `sysparm_limit` at a time.

    The end is the offset reaching `X-Total-Count`; without that header, an empty
    page without `rel="next"`, as for `KeysetPaginator`. ACLs drop rows from a
    page after the query ran, so a short page is not the end. Offsets don't
    shift under a journal query ordered by creation: new entries sort last.
    """

    def next_page(
        self, current: PageRequest, response: httpx.Response, body: Any, count: int
    ) -> PageRequest | None:
        offset = int(current.params["sysparm_offset"]) + int(current.params["sysparm_limit"])
        total = response.headers.get("x-total-count", "")
        if total.isdigit():
            if offset >= int(total):
                return None
        elif count == 0 and "next" not in response.links:
            return None
        self._follow(str(offset))
        return PageRequest(current.url, {**current.params, "sysparm_offset": offset})
