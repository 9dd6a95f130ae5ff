"""A fake Salesforce REST API for Cases (SOQL `query`, `queryAll`), as Salesforce documents it.

Read from Salesforce's documentation:
- https://developer.salesforce.com/docs/platform/api-rest/guide/resources-query.md and
  dome-query.md: `GET /services/data/vXX.X/query?q=SOQL` answers `totalSize`, `done`,
  `records` (each with `attributes: {type, url}`) and, while `done` is false,
  `nextRecordsUrl` (`/services/data/vXX.X/query/01gD0000002HU6KIAW-2000`), fetched as is,
  without parameters. Up to 2,000 records a batch, and "the returned batch can include
  fewer records than the limit or what's set in the request".
- https://developer.salesforce.com/docs/platform/api-rest/guide/resources-queryall.md and
  dome-queryall.md: `queryAll` also returns records soft-deleted by a delete or a merge
  (`IsDeleted = true`) while they sit in the recycle bin; its `nextRecordsUrl` says
  `query` too.
- https://developer.salesforce.com/docs/platform/api-rest/guide/headers-queryoptions.html:
  `Sforce-Query-Options: batchSize=N`, 200 to 2,000 (default 2,000), no guarantee.
- https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/api/sforce_api_calls_soql_select_dateformats.htm:
  dateTime literals `YYYY-MM-DDThh:mm:ssZ` (or `+hh:mm`), never quoted; values come back
  in UTC as `2013-05-20T20:49:32.000+0000`.
- https://developer.salesforce.com/docs/atlas.en-us.264.0.api_rest.meta/api_rest/errorcodes.htm:
  errors are a JSON array `[{"message": ..., "errorCode": ...}]`; 401 with
  `INVALID_SESSION_ID` for an expired or invalid session, 403 `REQUEST_LIMIT_EXCEEDED`
  for the API limits (the org's rolling 24-hour allocation: "TotalRequests Limit
  exceeded."; too many concurrent long requests: "ConcurrentPerOrgLongTxn Limit
  exceeded."), 400 `MALFORMED_QUERY` / `INVALID_FIELD`, 404 `NOT_FOUND`.
- https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/headers_api_usage.htm:
  every REST answer carries `Sforce-Limit-Info: api-usage=used/limit`.
- https://developer.salesforce.com/docs/atlas.en-us.262.0.chatterapi.meta/chatterapi/quickstart_connecting.htm
  and the OAuth refresh-token flow page: `POST /services/oauth2/token` on the org's My Domain,
  form-encoded `grant_type=client_credentials` (or `refresh_token` with `refresh_token`),
  `client_id`, `client_secret` (in the form, or as Basic). The answer has `access_token`,
  `signature`, `instance_url`, `id`, `token_type: Bearer`, `issued_at` (ms) and `scope`,
  and NO `expires_in`: a session ends by the org's policy (two hours by default), and the
  API then answers 401 INVALID_SESSION_ID. A refused grant is a 400
  `{"error": "invalid_grant" | "invalid_client", "error_description": ...}`.
- https://developer.salesforce.com/docs/atlas.en-us.264.0.object_reference.meta/object_reference/sforce_api_objects_name.htm:
  a Case's `Owner` is polymorphic (a User or a queue, a Group): `Owner.Type`,
  `Owner.Name`, `Owner.Email` ("the email address of the user or group (queue)") come
  through the `Name` object in the same query.

- https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_objects_casecomment.htm
  and the field reference: a `CaseComment` has `Id`, `ParentId` (its Case), `CommentBody`
  (nillable, 4,000 bytes), `IsPublished` (visible to customers), `CreatedById` (its
  `CreatedBy` a User), `CreatedDate`, `LastModifiedDate`, `SystemModstamp`, `IsDeleted`.

Choices where the docs say nothing: a query locator keeps the rows as they were when the
query ran (an edit after it shows in the next query, not in its later batches); deleting
a Case moves its `SystemModstamp` to the time of the deletion (verify: replication tools
read deletions by `queryAll ... SystemModstamp >= X` on that assumption); a comment added
moves its Case's `SystemModstamp` unless `touch=False` says otherwise (verify). The SOQL this fake
runs is a subset: `SELECT fields FROM Case [WHERE ...] [ORDER BY ...] [LIMIT n]`, with
AND/OR/NOT, parentheses, `= != < <= > >=`, `IN (...)`, `LIKE`, quoted strings, unquoted
date-time literals, numbers, `true`/`false`/`null`; a quoted date-time compared with a
date-time field is refused as Salesforce refuses it. An unknown field is INVALID_FIELD.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from fakes import FakeApi, Reply, Request

TOKEN_PATH = "/services/oauth2/token"
_DATA = re.compile(r"^/services/data/v(?P<version>\d+\.\d)/(?P<resource>query|queryAll)/?$")
_MORE = re.compile(r"^/services/data/v(?P<version>\d+\.\d)/query/(?P<locator>01g\w+)-(?P<at>\d+)$")
VERSIONS = {f"{n}.0" for n in range(31, 67)}
"""API versions the fake serves (Summer '14 to Spring '26)."""
STAMP = "%Y-%m-%dT%H:%M:%S.000+0000"

CASE_FIELDS = {
    "Id",
    "CaseNumber",
    "Subject",
    "Description",
    "Status",
    "IsClosed",
    "Priority",
    "Origin",
    "Type",
    "Reason",
    "OwnerId",
    "ContactEmail",
    "CreatedDate",
    "ClosedDate",
    "LastModifiedDate",
    "SystemModstamp",
    "IsDeleted",
    "MasterRecordId",
}
USER_FIELDS = {"Id", "Name", "Email", "IsActive", "Username"}
COMMENT_FIELDS = {
    "Id",
    "ParentId",
    "CommentBody",
    "IsPublished",
    "CreatedById",
    "CreatedDate",
    "LastModifiedDate",
    "SystemModstamp",
    "IsDeleted",
}
TABLES = {"Case": CASE_FIELDS, "User": USER_FIELDS, "CaseComment": COMMENT_FIELDS}
RELATIONS = {"Case": ("Owner", "OwnerId"), "CaseComment": ("CreatedBy", "CreatedById")}
"""Each object's one relationship a query may read through: its name and its Id field."""
DATETIME_FIELDS = {"CreatedDate", "ClosedDate", "LastModifiedDate", "SystemModstamp"}
OWNER_FIELDS = {"Id", "Type", "Name", "Email", "IsActive", "Username"}
"""The `Name` object's fields a polymorphic `Owner.X` reads."""
CLOSED_STATUSES = {"Closed"}
"""Status values whose `IsClosed` is true (the org's setup decides which)."""
DEFAULT_BATCH = 2000


def case_id(number: int) -> str:
    """The 18-character Id of test case `number` (ids sort in no relation to numbers)."""
    digest = hashlib.md5(f"case-{number}".encode()).hexdigest()  # noqa: S324
    return f"500{digest[:12]}AAA"


def user_id(name: str) -> str:
    return f"005{hashlib.md5(f'user-{name}'.encode()).hexdigest()[:12]}AAA"  # noqa: S324


def queue_id(name: str) -> str:
    return f"00G{hashlib.md5(f'queue-{name}'.encode()).hexdigest()[:12]}AAA"  # noqa: S324


def stamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime(STAMP)


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Reply:
    """Salesforce's error answer: a JSON array of `{message, errorCode}`."""
    return Reply(status, [{"message": message, "errorCode": code}], headers=headers or {})


INVALID_SESSION = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
TOTAL_REQUESTS = "TotalRequests Limit exceeded."
CONCURRENT = "ConcurrentPerOrgLongTxn Limit exceeded."


class SoqlError(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Session:
    token: str
    grant: str
    valid: bool = True


@dataclass
class Locator:
    rows: list[dict[str, Any]]
    batch: int
    version: str


@dataclass
class Soql:
    table: str
    fields: list[str]
    where: Callable[[dict[str, Any]], bool]
    order: list[tuple[str, bool]]
    limit: int | None


@dataclass
class Owner:
    """A user or a queue (Group) that can own a case."""

    id: str
    name: str
    email: str | None
    type: str  # "User" or "Queue"
    active: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


class FakeSalesforce(FakeApi):
    def __init__(self, client_id: str, client_secret: str, refresh_token: str) -> None:
        super().__init__()
        self.client_id, self.client_secret = client_id, client_secret
        self.refresh_tokens = {refresh_token}
        self.cases: dict[str, dict[str, Any]] = {}
        self.comments: dict[str, dict[str, Any]] = {}
        self.owners: dict[str, Owner] = {}
        self.sessions: list[Session] = []
        self.locators: dict[str, Locator] = {}
        self.batch_cap = DEFAULT_BATCH
        """The most records the server puts in a batch, whatever `batchSize` asks: Salesforce
        may return fewer than asked; tests lower it to page small sets."""
        self.daily_limit = 100_000
        self.used = 0
        """API requests counted against the org's rolling 24-hour allocation."""
        self.announced_instance: str | None = None
        """The `instance_url` the token endpoint announces; None: this fake's own URL."""
        self._numbers = 0

    # Test controls

    def reset(self) -> None:
        with self.lock:
            self.cases.clear()
            self.comments.clear()
            self.owners.clear()
            self.sessions.clear()
            self.locators.clear()
            self.requests.clear()
            self.faults.clear()
            self.batch_cap = DEFAULT_BATCH
            self.daily_limit, self.used = 100_000, 0
            self.announced_instance = None
            self._numbers = 0

    def add_user(self, name: str, email: str | None, active: bool = True) -> str:
        owner = Owner(user_id(name), name, email, "User", active)
        with self.lock:
            self.owners[owner.id] = owner
        return owner.id

    def add_queue(self, name: str, email: str | None = None) -> str:
        owner = Owner(queue_id(name), name, email, "Queue")
        with self.lock:
            self.owners[owner.id] = owner
        return owner.id

    def put(self, number: int, at: dt.datetime, **fields: Any) -> dict[str, Any]:
        """Create case `number` at `at`, or change it then: `SystemModstamp` moves to `at`."""
        with self.lock:
            record = self.cases.get(case_id(number))
            if record is None:
                self._numbers += 1
                record = {
                    "Id": case_id(number),
                    "CaseNumber": f"{number:08d}",
                    "Subject": f"Case {number}",
                    "Description": None,
                    "Status": "New",
                    "Priority": "Medium",
                    "Origin": "Email",
                    "Type": None,
                    "Reason": None,
                    "OwnerId": None,
                    "ContactEmail": None,
                    "CreatedDate": stamp(at),
                    "ClosedDate": None,
                    "IsDeleted": False,
                    "MasterRecordId": None,
                }
                self.cases[record["Id"]] = record
            record.update(fields)
            record["IsClosed"] = record["Status"] in CLOSED_STATUSES
            if record["IsClosed"] and record["ClosedDate"] is None:
                record["ClosedDate"] = stamp(at)
            record["LastModifiedDate"] = record["SystemModstamp"] = stamp(at)
            return record

    def comment(
        self,
        number: int,
        at: dt.datetime,
        body: str | None = "We are on it.",
        public: bool = True,
        by: str | None = None,
        touch: bool = True,
    ) -> dict[str, Any]:
        """A CaseComment on case `number` at `at`, by the user `by` (an Id); `touch` moves the
        Case's `SystemModstamp` to `at`."""
        with self.lock:
            comment_id = f"00a{hashlib.md5(f'c{len(self.comments)}'.encode()).hexdigest()[:12]}AAA"  # noqa: S324
            record = {
                "Id": comment_id,
                "ParentId": case_id(number),
                "CommentBody": body,
                "IsPublished": public,
                "CreatedById": by,
                "CreatedDate": stamp(at),
                "LastModifiedDate": stamp(at),
                "SystemModstamp": stamp(at),
                "IsDeleted": False,
            }
            self.comments[comment_id] = record
            if touch:
                self.cases[case_id(number)]["SystemModstamp"] = stamp(at)
        return record

    def comment_queries(self) -> list[Request]:
        return [r for r in self.data_requests() if "FROM CaseComment" in (r.param("q") or "")]

    def stamp_only(self, number: int, at: dt.datetime) -> None:
        """A system change (a recalculated sharing rule, a rollup): `SystemModstamp` moves,
        `LastModifiedDate` does not."""
        with self.lock:
            self.cases[case_id(number)]["SystemModstamp"] = stamp(at)

    def delete(self, number: int, at: dt.datetime, merged_into: int | None = None) -> None:
        """Move case `number` to the recycle bin at `at` (a merge names the surviving case)."""
        with self.lock:
            record = self.cases[case_id(number)]
            record["IsDeleted"] = True
            record["SystemModstamp"] = stamp(at)
            if merged_into is not None:
                record["MasterRecordId"] = case_id(merged_into)

    def purge(self, number: int) -> None:
        """Empty case `number` out of the recycle bin (after ~15 days, or by hand): gone."""
        with self.lock:
            del self.cases[case_id(number)]

    def expire_sessions(self) -> None:
        """End every session, as the org's session timeout does."""
        with self.lock:
            for session in self.sessions:
                session.valid = False

    def issue_session(self) -> str:
        """A valid access token, as if obtained elsewhere (the Salesforce CLI)."""
        with self.lock:
            session = Session(_secret("00Dfake!AQ"), "cli")
            self.sessions.append(session)
        return session.token

    def grants(self) -> list[str]:
        return [
            (parse_qs(r.body.decode()).get("grant_type") or ["?"])[0]
            for r in self.requests
            if r.path == TOKEN_PATH
        ]

    def data_requests(self) -> list[Request]:
        return [r for r in self.requests if r.path.startswith("/services/data/")]

    def limit_exceeded(self, message: str = CONCURRENT) -> Reply:
        return error(403, "REQUEST_LIMIT_EXCEEDED", message, self._usage())

    # Serving

    def route(self, request: Request) -> Reply:
        if request.path == TOKEN_PATH:
            if request.method != "POST":
                return error(405, "METHOD_NOT_ALLOWED", "HTTP Method 'GET' not allowed")
            return self._token(request)
        if not request.path.startswith("/services/data/"):
            return error(404, "NOT_FOUND", "The requested resource does not exist")
        if not self._authorized(request.headers.get("authorization", "")):
            return Reply(401, INVALID_SESSION, headers={"WWW-Authenticate": 'Token realm="x"'})
        if self.used >= self.daily_limit:
            return error(403, "REQUEST_LIMIT_EXCEEDED", TOTAL_REQUESTS, self._usage())
        self.used += 1
        more = _MORE.match(request.path)
        if more is not None:
            return self._more(more["locator"], int(more["at"]), more["version"])
        data = _DATA.match(request.path)
        if data is None or data["version"] not in VERSIONS:
            return error(404, "NOT_FOUND", "The requested resource does not exist", self._usage())
        text = request.param("q")
        if not text:
            return error(400, "MALFORMED_QUERY", "A query string has to be specified")
        try:
            soql = parse_soql(text)
        except SoqlError as exc:
            return error(400, exc.code, str(exc), self._usage())
        with_deleted = data["resource"] == "queryAll"
        if soql.table == "User":
            table = [_user_row(o) for o in self.owners.values() if o.type == "User"]
        else:
            kept = self.cases if soql.table == "Case" else self.comments
            table = [r for r in kept.values() if with_deleted or not r["IsDeleted"]]
        rows = [r for r in table if soql.where(r)]
        for name, descending in reversed(soql.order):
            rows.sort(key=lambda r, n=name: _sort_key(self._value(r, n)), reverse=descending)  # type: ignore[misc]
        if soql.limit is not None:
            rows = rows[: soql.limit]
        rendered = [self._render(r, soql, data["version"]) for r in rows]
        locator = Locator(rendered, self._batch(request), data["version"])
        name = f"01g{secrets.token_hex(7).upper()}"
        self.locators[name] = locator
        return self._more(name, 0, data["version"])

    def _more(self, name: str, at: int, version: str) -> Reply:
        locator = self.locators.get(name)
        if locator is None or at > len(locator.rows):
            return error(400, "INVALID_QUERY_LOCATOR", "invalid query locator", self._usage())
        batch = locator.rows[at : at + locator.batch]
        done = at + len(batch) >= len(locator.rows)
        body: dict[str, Any] = {"totalSize": len(locator.rows), "done": done, "records": batch}
        if not done:
            body["nextRecordsUrl"] = (
                f"/services/data/v{locator.version}/query/{name}-{at + len(batch)}"
            )
        return Reply(200, body, headers=self._usage())

    def _batch(self, request: Request) -> int:
        options = request.headers.get("sforce-query-options", "")
        asked = DEFAULT_BATCH
        match = re.search(r"batchSize=(\d+)", options)
        if match:
            asked = max(200, min(DEFAULT_BATCH, int(match[1])))
        return max(1, min(asked, self.batch_cap))

    def _usage(self) -> dict[str, str]:
        return {"Sforce-Limit-Info": f"api-usage={self.used}/{self.daily_limit}"}

    def _authorized(self, header: str) -> bool:
        token = header.removeprefix("Bearer ").removeprefix("OAuth ")
        return header != token and any(s.token == token and s.valid for s in self.sessions)

    def _token(self, request: Request) -> Reply:
        form = {k: v[-1] for k, v in parse_qs(request.body.decode()).items()}
        basic = request.headers.get("authorization", "")
        if basic.startswith("Basic "):
            pair = base64.b64decode(basic[6:]).decode()
            form.setdefault("client_id", pair.partition(":")[0])
            form.setdefault("client_secret", pair.partition(":")[2])
        if (form.get("client_id"), form.get("client_secret")) != (
            self.client_id,
            self.client_secret,
        ):
            return Reply(
                400, {"error": "invalid_client", "error_description": "invalid client credentials"}
            )
        grant = form.get("grant_type")
        if grant == "refresh_token":
            if form.get("refresh_token") not in self.refresh_tokens:
                return Reply(
                    400,
                    {"error": "invalid_grant", "error_description": "expired access/refresh token"},
                )
        elif grant != "client_credentials":
            return Reply(
                400,
                {
                    "error": "unsupported_grant_type",
                    "error_description": "grant type not supported",
                },
            )
        session = Session(_secret("00Dfake!AQ"), grant)
        with self.lock:
            self.sessions.append(session)
        return Reply(
            200,
            {
                "access_token": session.token,
                "signature": base64.b64encode(secrets.token_bytes(32)).decode(),
                "scope": "api",
                "instance_url": self.announced_instance or self.base_url,
                "id": "https://login.salesforce.com/id/00Dfake0000000AAA/005fake0000000AAA",
                "token_type": "Bearer",
                "issued_at": str(int(time.time() * 1000)),
            },
        )

    # Records

    def _value(self, record: dict[str, Any], name: str) -> Any:
        relation, _, field = name.partition(".")
        if field:
            reference = dict(RELATIONS.values()).get(relation, "")
            owner = self.owners.get(record.get(reference) or "")
            return None if owner is None else _owner_field(owner, field)
        return record.get(name)

    def _render(self, record: dict[str, Any], soql: Soql, version: str) -> dict[str, Any]:
        out: dict[str, Any] = {
            "attributes": {
                "type": soql.table,
                "url": f"/services/data/v{version}/sobjects/{soql.table}/{record['Id']}",
            }
        }
        for name in soql.fields:
            relation, _, field = name.partition(".")
            if not field:
                out[name] = record.get(name)
                continue
            owner = self.owners.get(record.get(RELATIONS[soql.table][1]) or "")
            if owner is None:
                out[relation] = None
                continue
            target = out.get(relation) or {
                "attributes": {
                    "type": "Name" if relation == "Owner" else owner.type,
                    "url": f"/services/data/v{version}/sobjects/{owner.type}/{owner.id}",
                }
            }
            target[field] = _owner_field(owner, field)
            out[relation] = target
        return out


def _owner_field(owner: Owner, name: str) -> Any:
    return {
        "Id": owner.id,
        "Type": owner.type,
        "Name": owner.name,
        "Email": owner.email,
        "IsActive": owner.active if owner.type == "User" else None,
        "Username": owner.email if owner.type == "User" else None,
    }[name]


def _user_row(owner: Owner) -> dict[str, Any]:
    return {name: _owner_field(owner, name) for name in USER_FIELDS}


def _sort_key(value: Any) -> tuple[int, Any]:
    # SOQL sorts nulls first in ascending order.
    if value is None:
        return (0, "")
    if isinstance(value, bool):
        return (1, int(value))
    return (1, value)


def _secret(prefix: str) -> str:
    return f"{prefix}{secrets.token_urlsafe(40)}"


# SOQL, the subset a connector sends

_TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^'\\]|\\.)*')"
    r"|(?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2}))"
    r"|(?P<date>\d{4}-\d{2}-\d{2})"
    r"|(?P<number>-?\d+(?:\.\d+)?)"
    r"|(?P<op><=|>=|!=|<>|=|<|>)"
    r"|(?P<punct>[(),])"
    r"|(?P<word>[A-Za-z_][\w.]*))"
)


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    at = 0
    text = text.rstrip()
    while at < len(text):
        match = _TOKEN.match(text, at)
        if match is None or match.end() == at:
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{text[at : at + 20].strip()}'")
        kind = match.lastgroup
        assert kind is not None
        tokens.append((kind, match[kind]))
        at = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.at = 0

    def peek(self, offset: int = 0) -> tuple[str, str] | None:
        index = self.at + offset
        return self.tokens[index] if index < len(self.tokens) else None

    def keyword(self, *words: str) -> bool:
        token = self.peek()
        if token is not None and token[0] == "word" and token[1].upper() in words:
            self.at += 1
            return True
        return False

    def expect(self, kind: str, value: str | None = None) -> str:
        token = self.peek()
        if token is None or token[0] != kind or (value is not None and token[1].upper() != value):
            shown = token[1] if token else "end of query"
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{shown}'")
        self.at += 1
        return token[1]

    def query(self) -> Soql:
        self.expect("word", "SELECT")
        fields = [self.field()]
        while self.peek() == ("punct", ","):
            self.at += 1
            fields.append(self.field())
        self.expect("word", "FROM")
        table = {name.lower(): name for name in TABLES}.get(self.expect("word").lower(), "")
        if not table:
            raise SoqlError("INVALID_TYPE", "sObject type is not supported by this fake")
        for name in fields:
            self.check(table, name)
        where: Callable[[dict[str, Any]], bool] = lambda r: True  # noqa: E731
        if self.keyword("WHERE"):
            where = self.disjunction()
        order: list[tuple[str, bool]] = []
        if self.keyword("ORDER"):
            self.expect("word", "BY")
            while True:
                name = self.field()
                descending = self.keyword("DESC")
                if not descending:
                    self.keyword("ASC")
                order.append((name, descending))
                if self.peek() != ("punct", ","):
                    break
                self.at += 1
        limit = None
        if self.keyword("LIMIT"):
            limit = int(self.expect("number"))
        if self.peek() is not None:
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{self.peek()[1]}'")  # type: ignore[index]
        for name, _descending in order:
            self.check(table, name)
        return Soql(table, fields, where, order, limit)

    def field(self) -> str:
        return self.expect("word")

    def check(self, table: str, name: str) -> None:
        """Raise INVALID_FIELD for a field `table` doesn't have."""
        relation, _, field = name.partition(".")
        if field:
            if RELATIONS.get(table, ("",))[0] != relation:
                raise SoqlError("INVALID_FIELD", f"Didn't understand relationship '{relation}'")
            target = "Name" if relation == "Owner" else "User"
            if field not in (OWNER_FIELDS if relation == "Owner" else USER_FIELDS):
                raise SoqlError("INVALID_FIELD", f"No such column '{field}' on entity '{target}'")
            return
        if name not in TABLES[table]:
            raise SoqlError("INVALID_FIELD", f"No such column '{name}' on entity '{table}'")

    def disjunction(self) -> Callable[[dict[str, Any]], bool]:
        parts = [self.conjunction()]
        while self.keyword("OR"):
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else lambda r: any(p(r) for p in parts)

    def conjunction(self) -> Callable[[dict[str, Any]], bool]:
        parts = [self.negation()]
        while self.keyword("AND"):
            parts.append(self.negation())
        return parts[0] if len(parts) == 1 else lambda r: all(p(r) for p in parts)

    def negation(self) -> Callable[[dict[str, Any]], bool]:
        if self.keyword("NOT"):
            inner = self.negation()
            return lambda r: not inner(r)
        if self.peek() == ("punct", "("):
            self.at += 1
            inner = self.disjunction()
            self.expect("punct", ")")
            return inner
        return self.comparison()

    def comparison(self) -> Callable[[dict[str, Any]], bool]:
        name = self.field()
        if "." in name or not any(name in fields for fields in TABLES.values()):
            raise SoqlError(
                "INVALID_FIELD",
                f"No such column '{name}' (this fake filters on the object's own fields)",
            )
        negated = self.keyword("NOT")
        if self.keyword("IN"):
            self.expect("punct", "(")
            options = [self.value(name)]
            while self.peek() == ("punct", ","):
                self.at += 1
                options.append(self.value(name))
            self.expect("punct", ")")
            return lambda r: (r.get(name) in options) != negated
        if negated:
            raise SoqlError("MALFORMED_QUERY", "unexpected token: 'NOT'")
        if self.keyword("LIKE"):
            pattern = self.value(name)
            if not isinstance(pattern, str):
                raise SoqlError("MALFORMED_QUERY", "LIKE needs a string")
            regex = re.compile(
                "^" + re.escape(pattern).replace("%", ".*").replace("_", ".") + "$", re.I
            )
            return lambda r: isinstance(r.get(name), str) and bool(regex.match(r[name]))
        op = self.expect("op")
        value = self.value(name)
        return _compare(name, op, value)

    def value(self, name: str) -> Any:
        kind, text = self.peek() or ("end", "")
        self.at += 1
        is_datetime = name in DATETIME_FIELDS
        if kind == "datetime":
            if not is_datetime:
                raise SoqlError(
                    "INVALID_FIELD",
                    f"value of filter criterion for field '{name}' "
                    "must be of type string and should be enclosed in quotes",
                )
            moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
            return stamp(moment)
        if kind == "string":
            if is_datetime:
                raise SoqlError(
                    "INVALID_FIELD",
                    f"value of filter criterion for field '{name}' must be of type dateTime "
                    "and should not be enclosed in quotes",
                )
            return re.sub(r"\\(.)", r"\1", text[1:-1])
        if kind == "number":
            return float(text) if "." in text else int(text)
        if kind == "word" and text.lower() in ("true", "false"):
            return text.lower() == "true"
        if kind == "word" and text.lower() == "null":
            return None
        raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{text}'")


def _compare(name: str, op: str, value: Any) -> Callable[[dict[str, Any]], bool]:
    if op in ("=", "!=", "<>"):
        equal = op == "="
        return lambda r: (r.get(name) == value) == equal
    if value is None:
        raise SoqlError("MALFORMED_QUERY", f"null can only be compared with = or != ({name})")
    checks: dict[str, Callable[[Any, Any], bool]] = {
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
    }
    check = checks[op]
    # A null never compares; the rendered stamps (same zone, same width) compare as text.
    return lambda r: r.get(name) is not None and check(r.get(name), value)


def parse_soql(text: str) -> Soql:
    """`text` as a query this fake can run; raises `SoqlError` (MALFORMED_QUERY, INVALID_FIELD)."""
    return _Parser(text).query()
