"""Salesforce Service Cloud: Cases by SOQL over the REST API, oldest change first.

One `GET /services/data/vXX.X/queryAll?q=SELECT ... FROM Case WHERE SystemModstamp >= W
ORDER BY SystemModstamp, Id` a pass, then its `nextRecordsUrl` batches until `done`.
`SystemModstamp` is the cursor: the system sets it on every change, automated ones too,
where `LastModifiedDate` follows users' edits only and can be back-dated by an import.
Both are whole seconds (`.000`), so the bound is inclusive at the second and the default
lookback covers it; the query locator behind `nextRecordsUrl` holds the whole answer, so
a bulk update stamping thousands of Cases with one second pages through without an offset
that edits could shift. Ties are ordered by `Id` and re-read at the watermark's second,
where the engine drops what it has already pushed.

`queryAll`, not `query`: it also returns Cases deleted (or merged away) while they sit in
the recycle bin, with `IsDeleted: true`, and deleting moves `SystemModstamp`; such a Case
goes out as a tombstone, archiving its task. After about 15 days (or an emptied bin)
Salesforce purges them and only a census (`scope_ids`: `SELECT Id FROM Case`) sees they
are gone.

Auth: OAuth 2 tokens from `<instance>/services/oauth2/token` (client credentials, or a
refresh token), `client_id`/`client_secret` in the form. Token answers carry no
`expires_in` (a session ends by the org's policy): a token is renewed when the API
refuses it (401 `INVALID_SESSION_ID`), once, and the request sent again. They carry an
`instance_url`, which is ignored: requests, the token with them, go to the configured
instance only, and a `nextRecordsUrl` naming another origin is refused unsent.

Limits: every answer says `Sforce-Limit-Info: api-usage=used/limit` for the org's rolling
24-hour allocation, which every integration in the org shares; a pass stops once the org
has used `max_api_usage` of it. Salesforce answers 403 `REQUEST_LIMIT_EXCEEDED` both when
the allocation is spent ("TotalRequests Limit exceeded.": the pass fails at once, waiting
minutes would not help) and when too many long requests run at once (waited out).

People: `Owner.Type`, `Owner.Name` and `Owner.Email` come in the same query (the
polymorphic `Owner` reads through the `Name` object). A User owner's email is the
assignee's; a queue owns a Case nobody has taken, and its email, if any, is a shared
mailbox, not a person: it resolves without one, saying so.

Comments (`read_comments`): see `SalesforceConnector.conversations`.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

import httpx
from pydantic import Field, SecretStr, field_validator

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
from connectors.errors import SourceError
from connectors.http import (
    Action,
    Conversations,
    HttpOptions,
    NextUrlPaginator,
    PageRequest,
    Paginator,
    RestConnector,
    Rule,
    source_classifier,
)
from connectors.http.people import SeenPeople, person, resolve_in_batches
from sync_http.auth import OAuth2, token_endpoint
from sync_http.policy import Classifier

TOKEN_PATH = "/services/oauth2/token"  # noqa: S105 (a path, not a secret)
CASE_FIELDS = (
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
    "Owner.Type",
    "Owner.Name",
    "Owner.Email",
    "ContactEmail",
    "CreatedDate",
    "ClosedDate",
    "LastModifiedDate",
    "SystemModstamp",
    "IsDeleted",
    "MasterRecordId",
)
"""Standard Case fields every org has, read by every pass (`fields` adds the org's own)."""
USERS_BATCH = 100
"""User Ids per `SELECT ... FROM User WHERE Id IN (...)`: 100 ids make a URL of ~2.5 KB."""
NO_EMAIL = "the Salesforce user has no email"
QUEUE_OWNER = "a queue owns the case, not a person (a queue's email is a shared mailbox)"
COMMENT_PARENTS = 100
"""Cases whose comments one query asks for: 100 Ids in `ParentId IN (...)` make a URL of
about 2.6 KB, within the request line proxies allow."""
COMMENT_SHAPE = CommentShape(
    id="Id",
    created_at="CreatedDate",
    body="CommentBody",
    author="CreatedBy.Name",
    author_id="CreatedById",
    public=lambda comment: comment.get("IsPublished") is True,
)
"""A CaseComment: `IsPublished` ones are visible to the customer, the others agents' only."""
_USAGE = re.compile(r"api-usage=(\d+)/(\d+)")
_ID = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")
_FIELD = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*)*$")
_CLAUSES = re.compile(r"\b(ORDER\s+BY|LIMIT|OFFSET|GROUP\s+BY|FOR\s+(?:VIEW|UPDATE))\b", re.I)

DAILY_LIMIT = Rule(
    Action.FAIL,
    "the org's rolling 24-hour API request allocation is used up (REQUEST_LIMIT_EXCEEDED); "
    "the next pass resumes from the checkpoint once older requests age out of the window",
)
ERROR_CODES: Mapping[str, Rule] = {
    "REQUEST_LIMIT_EXCEEDED": Rule(
        Action.RATE_LIMITED, "too many concurrent long-running requests in the org"
    ),
    "INVALID_SESSION_ID": Rule(
        Action.FAIL_AUTH, "the source refused the credentials (the session is invalid)"
    ),
    "API_DISABLED_FOR_ORG": Rule(Action.FAIL_AUTH, "the org's edition has no API access"),
    "INSUFFICIENT_ACCESS": Rule(
        Action.FAIL_AUTH, "the integration user may not read Cases (check its profile)"
    ),
    "MALFORMED_QUERY": Rule(Action.FAIL, "Salesforce refused the SOQL (check `where`)"),
    "INVALID_FIELD": Rule(Action.FAIL, "Salesforce refused a field (check `fields` and `where`)"),
    "INVALID_QUERY_LOCATOR": Rule(
        Action.FAIL, "the query's locator expired or was dropped; the next pass starts over"
    ),
}
"""What a Salesforce error's `errorCode` means, read before the status table."""


class SalesforceOptions(HttpOptions):
    site_option = ("my_domain", "my.salesforce.com")
    my_domain: str | None = None
    """`acme` for https://acme.my.salesforce.com (a sandbox: `acme--dev.sandbox.my.salesforce.com`);
    or set `base_url` to the instance URL. Requests and tokens go to that origin only."""
    api_version: str = Field(default="62.0", pattern=r"^\d{2,3}\.0$")
    """The REST API version (`62.0` is Winter '25): `/services/data/v62.0/...`."""
    client_id: str
    """The consumer key of the connected app (or external client app) used for OAuth."""
    client_secret: SecretStr
    """Its consumer secret."""
    refresh_token: SecretStr | None = None
    """A refresh token issued to the app: tokens come from the refresh_token grant. Unset:
    the client_credentials grant, as the app's run-as user."""
    token_url: str | None = None
    """The token endpoint; default `<base_url>/services/oauth2/token` (My Domain, which the
    client credentials flow requires). Must be https, or on base_url's origin."""
    where: str | None = None
    """A SOQL condition ANDed to the connector's own (`RecordType.DeveloperName = 'Support'`);
    it narrows the census as well."""
    fields: list[str] = Field(default_factory=list)
    """More Case fields to read (`Product__c`, `Account.Name`), for the mapping."""
    page_size: int = Field(default=2000, ge=200, le=2000)
    """`Sforce-Query-Options: batchSize`: records per batch, 200 to 2,000 (Salesforce may send
    fewer)."""
    max_api_usage: float = Field(default=0.9, gt=0, le=1, exclude=True)
    """Stop a pass once the org has used this share of its 24-hour API allocation
    (`Sforce-Limit-Info`), leaving the rest to the org's other integrations. Pacing decides no
    task, so it is kept out of the settings fingerprint."""

    @field_validator("where")
    @classmethod
    def _plain_condition(cls, where: str | None) -> str | None:
        if where is None or not where.strip():
            return None
        clause = _CLAUSES.search(where)
        if clause is not None:
            raise ValueError(
                f"must be a condition only, without {clause[1].upper()}: the connector "
                "orders and pages the query itself"
            )
        if where.count("(") != where.count(")"):
            raise ValueError("has unbalanced parentheses")
        return where.strip()

    @field_validator("fields")
    @classmethod
    def _field_names(cls, fields: list[str]) -> list[str]:
        for name in fields:
            if not _FIELD.match(name):
                raise ValueError(f"{name!r} is not a SOQL field name (Field__c, Account.Name)")
        return fields

    @field_validator("api_version", mode="before")
    @classmethod
    def _without_v(cls, version: Any) -> Any:
        return version[1:] if isinstance(version, str) and version.startswith("v") else version


class SalesforceConnector(RestConnector):
    kind = "salesforce"
    summary = (
        "Salesforce Service Cloud Cases (SOQL queryAll by SystemModstamp); needs my_domain, "
        "client_id and client_secret"
    )
    Options = SalesforceOptions
    options: SalesforceOptions

    records_path = "records"
    id_path = "Id"
    cursor_path = "SystemModstamp"
    default_lookback = WHOLE_SECOND_LOOKBACK
    cursors_from_source_clock = True
    comments = "requests"
    comments_batch = COMMENT_PARENTS

    default_mapping: ClassVar[dict[str, Any]] = {
        "title": "{CaseNumber} {Subject}",
        "url": "{web_url}",
        "status": "status_class",
        "status_map": {"new": "TODO", "open": "STARTED", "closed": "DONE"},
        "external_created_at": "CreatedDate",
        "external_updated_at": "LastModifiedDate",
        "fields": {
            "case_number": "CaseNumber",
            "priority": "Priority",
            "origin": "Origin",
            "type": "Type",
            "reason": "Reason",
            "owner": "Owner.Name",
            "contact_email": "ContactEmail",
            # The org's own status label ("Waiting on Customer"); external_status takes
            # TODO/STARTED/DONE from `status_class` (IsClosed first, then the label).
            "source_status": "Status",
        },
        "assignee_email": "owner_email",  # a User owner's, added by enrich; None for a queue
        "assignee": "OwnerId",  # then `people`, which says why a queue has no email
    }

    def __init__(
        self, name: str, options: ConnectorOptions, stop: threading.Event | None = None
    ) -> None:
        super().__init__(name, options, stop)
        self.seen_owners = SeenPeople()
        """The owners the queries showed (`Owner.*`): `people` answers from them first."""

    @property
    def data_path(self) -> str:
        return f"/services/data/v{self.options.api_version}"

    # The query

    def soql(self, since: Cursor | None) -> str:
        """The pass's SOQL: every field, from `since`'s second on, in cursor order."""
        fields = ", ".join(dict.fromkeys([*CASE_FIELDS, *self.options.fields]))
        bound = f"SystemModstamp >= {literal(since)}" if isinstance(since, dt.datetime) else None
        return self.case_query(fields, bound, "ORDER BY SystemModstamp, Id")

    def case_query(self, fields: str, condition: str | None, tail: str) -> str:
        """`SELECT fields FROM Case WHERE condition AND (where) tail`: the one place Case
        queries are written. Fields and `where` are the operator's, checked at config load;
        the condition is the connector's own (a date literal)."""
        conditions = [c for c in (condition, self.options.where) if c]
        clause = " WHERE " + " AND ".join(f"({c})" for c in conditions) if conditions else ""
        return f"SELECT {fields} FROM Case{clause} {tail}"  # noqa: S608 (SOQL, read-only)

    def first_request(self, since: Cursor | None, paginator: Paginator) -> PageRequest:
        return PageRequest(f"{self.data_path}/queryAll", {"q": self.soql(since)})

    def paginator(self) -> Paginator:
        return NextUrlPaginator("nextRecordsUrl", end_path="done")

    def headers(self) -> dict[str, str]:
        return {"Sforce-Query-Options": f"batchSize={self.options.page_size}"}

    def auth(self) -> httpx.Auth:
        options = self.options
        return OAuth2(
            token_endpoint(options.token_url or TOKEN_PATH, options.base_url),
            "refresh_token" if options.refresh_token is not None else "client_credentials",
            client_id=options.client_id,
            client_secret=options.client_secret,
            client_auth="body",  # as Salesforce's examples send them
            refresh_token=options.refresh_token,
        )

    def classifier(self) -> Classifier:
        table = source_classifier(self.policy)

        def classify(outcome: httpx.Response | Exception) -> Rule:
            if isinstance(outcome, httpx.Response) and outcome.status_code >= 400:
                code, message = salesforce_error(outcome)
                if code == "REQUEST_LIMIT_EXCEEDED" and message.startswith("TotalRequests"):
                    return DAILY_LIMIT
                if code in ERROR_CODES:
                    return ERROR_CODES[code]
            return table(outcome)

        return classify

    def fetch(self, request: PageRequest) -> tuple[httpx.Response, Any]:
        """A page, then a look at the org's API usage: past `max_api_usage`, the pass stops."""
        response, body = super().fetch(request)
        usage = _USAGE.search(response.headers.get("sforce-limit-info", ""))
        if usage is not None:
            used, limit = int(usage[1]), int(usage[2])
            if limit > 0 and used >= limit * self.options.max_api_usage:
                raise SourceError(
                    self.name,
                    f"the org has used {used:,} of its {limit:,} API requests of the last 24 "
                    f"hours, past max_api_usage = {self.options.max_api_usage:g}; the pass "
                    "stops to leave the rest to the org's other integrations and the next one "
                    "resumes from the checkpoint",
                )
        return response, body

    # Records

    def records(self, body: Any, path: str | None = None) -> list[Any]:
        found = super().records(body, path)
        for record in found:
            owner = _owner(record)
            if owner is not None:
                self.seen_owners.add(owner)
        return found

    def is_deleted(self, record: Mapping[str, Any]) -> bool:
        return record.get("IsDeleted") is True

    def enrich(self, record: dict[str, Any]) -> dict[str, Any]:
        owner = record.get("Owner")
        is_user = isinstance(owner, dict) and owner.get("Type") == "User"
        return {
            **record,
            "web_url": f"{self.options.base_url}/lightning/r/Case/{record.get('Id')}/view",
            "owner_email": owner.get("Email") if is_user and isinstance(owner, dict) else None,
            "status_class": status_class(record),
        }

    def conversations(self, tickets: Sequence[SourceTicket]) -> Conversations:
        """The CaseComments of up to 100 Cases, from one query, oldest first.

        `SELECT ... FROM CaseComment WHERE ParentId IN (...) ORDER BY CreatedDate, Id`
        over `query` (deleted comments left out), its batches through the locator: one
        request per 100 Cases read (plus one per 2,000 comments), whatever the number with
        comments. Published comments are public, the others private; the author's name
        comes by `CreatedBy.Name` in the same query. A Case deleted meanwhile just has no
        comments left.
        """
        by_case: dict[str, list[Any]] = {t.source_id: [] for t in tickets if _ID.match(t.source_id)}
        if not by_case:
            return {}
        listed = ", ".join(f"'{case_id}'" for case_id in by_case)  # checked by _ID: no quotes
        fields = "Id, ParentId, CommentBody, IsPublished, CreatedDate, CreatedById, CreatedBy.Name"
        where = f"ParentId IN ({listed})"
        soql = f"SELECT {fields} FROM CaseComment WHERE {where} ORDER BY CreatedDate, Id"  # noqa: S608
        request = PageRequest(f"{self.data_path}/query", {"q": soql})
        paginator = NextUrlPaginator("nextRecordsUrl", end_path="done")
        for entry in self.commenting.listing(request, paginator, self.records_path) or []:
            parent = entry.get("ParentId") if isinstance(entry, dict) else None
            if isinstance(parent, str) and parent in by_case:
                by_case[parent].append(entry)
        found: dict[str, list[SourceComment] | BadRecord | None] = {}
        for ticket in tickets:
            if ticket.source_id in by_case:
                found[ticket.source_id] = read_comments(
                    ticket, by_case[ticket.source_id], COMMENT_SHAPE
                )
        return found

    # Census and people

    def scope_ids(self) -> Iterator[str]:
        """Every Case `where` matches: `SELECT Id FROM Case ... ORDER BY Id` over `query`
        (which leaves deleted ones out), 2,000 Ids a batch through its locator."""
        soql = self.case_query("Id", None, "ORDER BY Id")
        request = PageRequest(f"{self.data_path}/query", {"q": soql})
        yield from self.listed_ids(request, NextUrlPaginator("nextRecordsUrl", end_path="done"))

    def people(self, user_ids: Iterable[str]) -> Iterator[Person]:
        """The owners the queries showed first; a queue's Id (`00G`) without a request; other
        User Ids (`005`) by `SELECT Id, Name, Email FROM User WHERE Id IN (...)`, 100 a request."""
        seen, unseen = self.seen_owners.split(user_ids)
        yield from seen
        users: list[str] = []
        for user_id in unseen:
            if user_id.startswith("00G"):
                yield Person(user_id, None, reason=QUEUE_OWNER)
            elif user_id.startswith("005") and _ID.match(user_id):
                users.append(user_id)
            else:
                yield Person(user_id, None, reason="not a Salesforce User Id (005...)")
        yield from resolve_in_batches(users, USERS_BATCH, self._users)

    def _users(self, user_ids: list[str]) -> Iterator[Person]:
        listed = ", ".join(f"'{user_id}'" for user_id in user_ids)  # checked by _ID: no quotes
        soql = f"SELECT Id, Name, Email FROM User WHERE Id IN ({listed})"  # noqa: S608
        _response, body = self.fetch(PageRequest(f"{self.data_path}/query", {"q": soql}))
        for user in self.records(body) if body is not None else []:
            if isinstance(user, dict) and isinstance(user.get("Id"), str):
                yield person(user["Id"], user.get("Email"), user.get("Name"), NO_EMAIL)

    def check(self) -> None:
        # One Case proves the token, the API access and the read permission.
        soql = self.case_query("Id", None, "LIMIT 1")
        self.fetch(PageRequest(f"{self.data_path}/query", {"q": soql}))


def literal(moment: dt.datetime) -> str:
    """`moment` as a SOQL dateTime literal: UTC, whole seconds floored (`>=` stays inclusive),
    unquoted, as SOQL wants it."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_class(record: Mapping[str, Any]) -> str:
    """`closed` when Salesforce says the Case is (`IsClosed`, whatever the org calls its
    closed statuses), `new` for the shipped default status `New`, else `open`."""
    if record.get("IsClosed") is True:
        return "closed"
    return "new" if record.get("Status") == "New" else "open"


def salesforce_error(response: httpx.Response) -> tuple[str, str]:
    """The first `errorCode` and `message` of Salesforce's error array; ("", "") without one."""
    try:
        body = response.json()
    except (ValueError, httpx.ResponseNotRead):
        return "", ""
    first = body[0] if isinstance(body, list) and body else body
    if not isinstance(first, dict):
        return "", ""
    code, message = first.get("errorCode"), first.get("message")
    return (code if isinstance(code, str) else "", message if isinstance(message, str) else "")


def _owner(record: Any) -> Person | None:
    """The Case's owner as a `Person`, from `OwnerId` and the `Owner.*` fields read with it."""
    if not isinstance(record, dict):
        return None
    owner_id, owner = record.get("OwnerId"), record.get("Owner")
    if not isinstance(owner_id, str) or not isinstance(owner, dict):
        return None
    name = owner.get("Name") if isinstance(owner.get("Name"), str) else None
    if owner.get("Type") != "User":
        return Person(owner_id, None, name, reason=QUEUE_OWNER)
    return person(owner_id, owner.get("Email"), name, NO_EMAIL)
