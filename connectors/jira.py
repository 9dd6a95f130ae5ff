"""Jira Cloud: the enhanced JQL search, oldest change first.

Calls `GET /rest/api/3/search/jql` with `jql=(<scope>) AND updated >= <epoch ms>
ORDER BY updated ASC, id ASC`, Basic auth (email + API token), paging by
`nextPageToken` until it is absent or `isLast` (a short page is not the end).
The token is the server's cursor into that order, not an offset, so pages are
not re-anchored; the `id` tiebreak (JQL reads it as the issue key) only has
to make the order total.

The bound is epoch milliseconds, not a date string: JQL reads a date string in
the API user's profile time zone at minute precision, so a UTC watermark
rendered as text is hours off for any user not on UTC. Whether an epoch
literal is honoured below the minute is unconfirmed, so the bound is floored
to the minute; the inclusive re-read and the content-hash diff absorb the
tickets read again. Tickets are keyed on the numeric issue `id` (the key
changes when an issue moves project). Search is eventually consistent, so the
connector's default lookback is five minutes. A 503 without `Retry-After`
backs off as Atlassian advises (`JiraConnector.backoff`). Deleted issues vanish
from search, as do issues that leave the JQL's scope: a census (`scope_ids`,
`fields=id`, 5,000 a page) finds them.

People. An issue's `fields.assignee` carries `emailAddress` only where the
assignee's profile visibility shows it; the default mapping takes it from
there and names the `accountId` for the rest. `people` answers from the
assignees with a visible email that pulls have read (the newest
`SEEN_ASSIGNEES`), then reads `GET /rest/api/3/user/bulk?accountId=...`,
`USER_BATCH` ids a request (paged by `startAt` should Jira answer fewer).
A hidden email stays hidden there too: that person resolves without one,
saying so (the unrestricted `user/email` endpoints are for Atlassian-approved
apps only).

Write-back (`writes` status and assignee). Jira has no "set status": an issue
moves by one of its workflow's transitions. One request reads the issue's
status, its assignee and the transitions the account may make from that
status (`GET /rest/api/3/issue/{id}?fields=status,assignee&expand=transitions`);
the one whose `to` is the status asked in `write_back.status` (any case) is
made (`POST .../transitions`, `{"transition": {"id"}}`). None reaching it is
a refusal naming the statuses the issue may go to from where it is; a status
Jira doesn't have at all (`GET /rest/api/3/status`, read once, only then) is
the config's mistake. An issue whose status is in the done category (Done,
Won't Do, Closed: the source closed it) is not moved out of it by Fragment's
status (`WriteConflict`); from one done status to another it may go. The
assignee is set by `PUT .../assignee` with the account id (null: unassigned).
An issue already where it is asked to go is left alone, so a write repeated
after a crash sends nothing. Jira refuses a transition (a required field on
its screen, a permission) and an assignee with a 400 and its error body
`{"errorMessages": [...], "errors": {"field": "message"}}`: the refusal
quotes it. Every request goes through the connector's session, its 429s
waited out as for the search.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, ClassVar

import httpx
from pydantic import Field, SecretStr, field_validator

from connectors.base import (
    BadRecord,
    ConnectorOptions,
    Cursor,
    Person,
    SourceComment,
    SourceTicket,
    TicketWrite,
)
from connectors.conversation import BadComment, comment
from connectors.errors import (
    FixConfiguration,
    SourceError,
    SourceNotFound,
    WriteConflict,
    WriteRefused,
)
from connectors.http import SOURCE_POLICY, Action, HttpOptions, RestConnector, Rule
from connectors.http.paginators import NextTokenPaginator, PageRequest, Paginator
from connectors.http.people import SeenPeople, person, resolve_in_batches
from connectors.http.rest import vendor_site
from connectors.records import MISSING, get_path
from sync_http.auth import basic
from sync_http.ratelimit import Backoff
from sync_http.redaction import excerpt

SEARCH_PATH = "/rest/api/3/search/jql"
USER_BULK_PATH = "/rest/api/3/user/bulk"
ISSUE_PATH = "/rest/api/3/issue/{}"
STATUS_PATH = "/rest/api/3/status"
DONE = "done"
"""The status category of a closed issue (Done, Won't Do, Closed): the source closed it."""
USER_BATCH = 50
"""Account ids per `user/bulk` request."""
SEEN_ASSIGNEES = 10_000
"""Assignees with a visible email kept from the issues read, for `people`."""
HIDDEN_EMAIL = "email hidden by the user's profile visibility settings"
ORDER = "ORDER BY updated ASC, id ASC"
DEFAULT_FIELDS = (
    "summary",
    "status",
    "assignee",
    "duedate",
    "created",
    "updated",
    "priority",
    "issuetype",
    "project",
    "labels",
    "reporter",
)
_QUOTED = re.compile(r"\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'")
_ORDER_BY = re.compile(r"\border\s+by\b", re.IGNORECASE)


class JiraOptions(HttpOptions):
    site_option = ("site", "atlassian.net")
    site: str | None = None
    """`acme` for https://acme.atlassian.net. Set `base_url` too for a scoped token's
    gateway (`https://api.atlassian.com/ex/jira/<cloudId>`); links still use the site."""
    email: str
    """The account the token belongs to (a service account with Browse projects)."""
    api_token: SecretStr
    """The account's Atlassian API token."""
    jql: str
    """The sync's scope, such as `project = OPS`; the bound and the order are added."""
    fields: list[str] = Field(default_factory=lambda: list(DEFAULT_FIELDS), min_length=1)
    """Issue fields to fetch (`updated` is always added); add the custom fields you map."""
    page_size: int = Field(default=100, ge=1, le=5000)
    """`maxResults` per page; Jira may send fewer, which is not the end."""

    @property
    def browse_base(self) -> str:
        """Where people open issues: the site, even when the API goes through a gateway."""
        return vendor_site(self.site, "atlassian.net") if self.site else self.base_url

    @field_validator("jql")
    @classmethod
    def _scope_only(cls, jql: str) -> str:
        if not jql.strip():
            raise ValueError("is empty; give the sync's scope, such as `project = OPS`")
        if _ORDER_BY.search(_QUOTED.sub('""', jql)):
            raise ValueError(
                f"must not contain ORDER BY: the connector appends `{ORDER}` itself "
                "(its paging depends on that order); remove the ORDER BY clause"
            )
        return jql.strip()

    @field_validator("fields")
    @classmethod
    def _with_updated(cls, fields: list[str]) -> list[str]:
        # `updated` is the cursor: without it no issue could be read.
        return list(dict.fromkeys([*(f.strip() for f in fields if f.strip()), "updated"]))


class JiraConnector(RestConnector):
    kind = "jira"
    summary = "Jira Cloud issues (enhanced JQL search); needs site, email, api_token and jql"
    Options = JiraOptions
    options: JiraOptions

    comments = "listing"
    default_lookback = dt.timedelta(minutes=5)
    """Search is eventually consistent (Atlassian: usually seconds, minutes for a bulk
    edit): an issue indexed after the watermark passed its `updated` is re-read."""

    path = SEARCH_PATH
    records_path = "issues"
    id_path = "id"
    cursor_path = "fields.updated"  # `2024-11-29T10:44:51.887-0800`: read as aware UTC
    backoff = Backoff(base=2.0, cap=30.0, jitter=(0.7, 1.3))
    """Atlassian's advice for a 5xx without `Retry-After` (a 503 when a resource limit is
    reached): back off exponentially from about 2 s, doubling to a cap, times a random
    0.7 to 1.3. With the default 8 attempts that is 1.4 to 2.6 minutes before giving up."""
    writes = frozenset({"status", "assignee"})
    write_refusals = frozenset({400, 403, 404, 409, 422})
    """Jira refuses one issue's transition or assignee with a 400 (its error body says why)."""
    _status_categories: dict[str, set[str]] | None = None
    """Jira's statuses by name (casefolded): their categories' keys, read when first needed."""
    policy = {
        **SOURCE_POLICY,
        400: Rule(Action.FAIL, "Jira refused the JQL (check the jql option)"),
        410: Rule(
            Action.FAIL,
            f"Jira has removed this endpoint (410 Gone); issue search must use {SEARCH_PATH}",
        ),
    }

    default_mapping: ClassVar[dict[str, Any]] = {
        "title": "{key} {fields.summary}",
        "url": "{web_url}",
        "status": "fields.status.statusCategory.key",
        "status_map": {"new": "TODO", "indeterminate": "STARTED", "done": "DONE"},
        "assignee_email": "fields.assignee.emailAddress",
        "due_at": "fields.duedate",
        "external_created_at": "fields.created",
        "external_updated_at": "fields.updated",
        "fields": {
            "issue_key": "key",
            "project": "fields.project.key",
            "issue_type": "fields.issuetype.name",
            "priority": "fields.priority.name",
            "labels": "fields.labels",
            "reporter": "fields.reporter.displayName",
            # The workflow's status name ("In Review"); external_status takes the category.
            "source_status": "fields.status.name",
        },
        "assignee": "fields.assignee.accountId",
    }

    def __init__(
        self, name: str, options: ConnectorOptions, stop: threading.Event | None = None
    ) -> None:
        super().__init__(name, options, stop)
        self.seen_assignees = SeenPeople(SEEN_ASSIGNEES)
        """The assignees with a visible email the issues read so far showed."""

    def auth(self) -> httpx.Auth:
        return basic(self.options.email, self.options.api_token)

    def paginator(self) -> Paginator:
        return NextTokenPaginator("nextPageToken", "nextPageToken", last_path="isLast")

    def params(self, since: Cursor | None) -> dict[str, Any]:
        fields = self.options.fields
        if self.read_comments and "comment" not in fields:
            fields = [*fields, "comment"]
        return {
            "jql": self.jql(since),
            "maxResults": self.options.page_size,
            "fields": ",".join(fields),
        }

    def pull(self, since: Cursor | None) -> Iterator[SourceTicket | BadRecord]:
        """The search's issues from `since`; with `read_comments`, each with its comments."""
        for item in super().pull(since):
            if self.read_comments and isinstance(item, SourceTicket):
                yield self._with_comments(item)
            else:
                yield item

    def _with_comments(self, ticket: SourceTicket) -> SourceTicket | BadRecord:
        """`ticket` with its comments: the search's, and the rest when it cut the list.

        A comment that can't be read fails the ticket (naming it), not the pass. An
        issue without the field (a field configuration hides it) keeps `comments` None.
        """
        page = get_path(ticket.record, "fields.comment")
        if page is MISSING:
            return ticket  # hidden by a field configuration: no comments read, no summary
        try:
            if not isinstance(page, Mapping) or not isinstance(page.get("comments"), list):
                raise BadComment("fields.comment", "the search gave no list of comments")
            raw = list(page["comments"])
            total = page.get("total")
            while isinstance(total, int) and len(raw) < total:
                more = self._comment_page(ticket.source_id, len(raw))
                if not more:
                    break  # deleted meanwhile: what there is
                raw += more
            ticket.comments = [
                jira_comment(c, f"fields.comment.comments.{i}") for i, c in enumerate(raw)
            ]
        except BadComment as exc:
            return exc.bad_record(ticket, f"issue {ticket.record.get('key')}")
        return ticket

    def _comment_page(self, issue_id: str, start: int) -> list[Any]:
        """The issue's comments from the `start`th on, oldest first: one request."""
        request = PageRequest(
            f"/rest/api/3/issue/{issue_id}/comment",
            {"startAt": start, "maxResults": 5000, "orderBy": "created"},
        )
        try:
            _response, body = self.fetch(request)
        except SourceNotFound:
            return []  # the issue was deleted since the search listed it
        found = body.get("comments") if isinstance(body, Mapping) else None
        return found if isinstance(found, list) else []

    def jql(self, since: Cursor | None) -> str:
        """The query for a pull from `since`: the scope, the bound, the order."""
        scope = f"({self.options.jql})"
        if isinstance(since, dt.datetime):
            scope += f" AND updated >= {epoch_ms_floored_to_minute(since)}"
        return f"{scope} {ORDER}"

    def scope_ids(self) -> Iterator[str]:
        """The id of every issue the JQL matches: `fields=id`, 5,000 a page, by id.

        The page token is the server's cursor, not an offset: a deletion meanwhile
        shifts nothing.
        """
        params = {
            "jql": f"({self.options.jql}) ORDER BY id ASC",
            "maxResults": 5000,
            "fields": "id",
        }
        return self.listed_ids(PageRequest(self.path, params))

    def enrich(self, record: dict[str, Any]) -> dict[str, Any]:
        return {**record, "web_url": f"{self.options.browse_base}/browse/{record.get('key')}"}

    def records(self, body: Any, path: str | None = None) -> list[Any]:
        issues = super().records(body, path)
        for issue in issues:
            assignee = get_path(issue, "fields.assignee")
            # Only a visible email: for a hidden one, absence here is no proof of it there.
            if (
                isinstance(assignee, dict)
                and isinstance(assignee.get("accountId"), str)
                and isinstance(assignee.get("emailAddress"), str)
            ):
                self.seen_assignees.add(_person(assignee))
        return issues

    def people(self, user_ids: Iterable[str]) -> Iterator[Person]:
        """Assignees seen with a visible email, then `user/bulk`, `USER_BATCH` a request."""
        seen, unseen = self.seen_assignees.split(user_ids)
        yield from seen
        yield from resolve_in_batches(unseen, USER_BATCH, self._accounts)

    def _accounts(self, account_ids: list[str]) -> Iterator[Person]:
        start = 0
        while True:
            params = {"accountId": account_ids, "startAt": start, "maxResults": len(account_ids)}
            _response, body = self.fetch(PageRequest(USER_BULK_PATH, params))
            values = body.get("values") if isinstance(body, dict) else None
            if not isinstance(values, list):
                raise SourceError(self.name, f"{USER_BULK_PATH} answered no list of `values`")
            for user in values:
                if isinstance(user, dict) and isinstance(user.get("accountId"), str):
                    yield _person(user)
            start += len(values)
            # No more users than ids asked: a server still saying "not last" is done too.
            if body.get("isLast") is not False or not values or start >= len(account_ids):
                return

    def write(self, change: TicketWrite) -> None:
        """Transition the issue and (un)assign it, as far as needed (see the module)."""
        url = ISSUE_PATH.format(change.source_id)
        params = {"fields": "status,assignee", "expand": "transitions"}
        issue = self.lookup(PageRequest(url, params))
        if not isinstance(issue, dict):
            raise self.refused(change, _GONE)
        if change.status is not None:
            current = _object(get_path(issue, "fields.status"))
            transitions = [t for t in issue.get("transitions") or [] if isinstance(t, dict)]
            transition = self._transition_to(change, change.status, current, transitions)
            if transition is not None:
                move = {"transition": {"id": transition}}
                self._sent(change, "status", "POST", f"{url}/transitions", move)
        assignee = _object(get_path(issue, "fields.assignee")).get("accountId")
        if change.assign and assignee != change.assignee_id:
            assign = {"accountId": change.assignee_id}
            self._sent(change, "assignee", "PUT", f"{url}/assignee", assign)

    def _transition_to(
        self,
        change: TicketWrite,
        target: str,
        current: Mapping[str, Any],
        transitions: list[dict[str, Any]],
    ) -> str | None:
        """The id of the transition from `current` that reaches status `target`; None when
        the issue is there already. Raises `WriteConflict` (it's closed), `WriteRefused`
        (no transition reaches it) or `FixConfiguration` (Jira has no such status)."""
        name = current.get("name")
        if isinstance(name, str) and name.casefold() == target.casefold():
            return None
        wanted = target.casefold()
        reaching = [t for t in transitions if str(get_path(t, "to.name")).casefold() == wanted]
        if reaching:
            to_done = get_path(reaching[0], "to.statusCategory.key") == DONE
        else:
            to_done = DONE in self._categories_of(target)  # also: is it a status at all?
        if get_path(current, "statusCategory.key") == DONE and not to_done:
            raise WriteConflict(
                self.name,
                change.source_id,
                "status",
                target,
                f"the issue is {name!r} in Jira, a status of the done category: the source "
                "closed it, and that wins over Fragment's status",
            )
        if not reaching:
            reachable = ", ".join(repr(get_path(t, "to.name")) for t in transitions)
            raise WriteRefused(
                self.name,
                change.source_id,
                "status",
                target,
                f"Jira's workflow has no transition for this account from {name!r} to it "
                f"(the issue may go to: {reachable or _NO_TRANSITION})",
            )
        return str(reaching[0].get("id"))

    def _categories_of(self, status: str) -> set[str]:
        """The category keys of Jira's statuses named `status` (any case; team-managed
        projects may repeat a name). Raises `FixConfiguration` when Jira has none."""
        if self._status_categories is None:
            _response, body = self.fetch(PageRequest(STATUS_PATH))
            found: dict[str, set[str]] = {}
            for listed in body if isinstance(body, list) else []:
                if isinstance(listed, dict) and isinstance(listed.get("name"), str):
                    key = get_path(listed, "statusCategory.key")
                    found.setdefault(listed["name"].casefold(), set()).add(str(key))
            self._status_categories = found
        categories = self._status_categories.get(status.casefold())
        if categories is None:
            known = ", ".join(sorted(self._status_categories)) or "none"
            raise FixConfiguration(
                f"connector {self.name!r}: Jira has no status {status!r} (it has: {known})",
                key=f"connectors.{self.name}.write_back.status",
            )
        return categories

    def _sent(self, change: TicketWrite, field: str, method: str, url: str, body: Any) -> None:
        """Send one write; a refusal of it raises `WriteRefused` in Jira's own words."""
        response = self.send_write(method, url, body)
        if response.status_code < 300:
            return
        target = change.status if field == "status" else change.assignee_id
        if response.status_code == 404:
            raise WriteRefused(self.name, change.source_id, field, target, _GONE)
        raise WriteRefused(
            self.name,
            change.source_id,
            field,
            target,
            f"Jira answered {response.status_code}: {jira_error(response)}",
        )


_NO_TRANSITION = "no status; does the account have the Transition issues permission?"
_GONE = "the issue is gone (Jira answered 404: deleted, or no longer visible to this account)"


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def jira_error(response: httpx.Response) -> str:
    """Jira's error body (`{"errorMessages": [...], "errors": {"field": "message"}}`) as one
    line: its messages, then each field's; the start of the text when it isn't that."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return excerpt(response.text, 200) or "no reason given"
    messages = [str(m) for m in body.get("errorMessages") or [] if m]
    errors = body.get("errors")
    if isinstance(errors, dict):
        messages += [f"{field}: {message}" for field, message in errors.items()]
    return "; ".join(messages) or "no reason given"


def _person(user: dict[str, Any]) -> Person:
    """A Jira user as a `Person`: an app's account has no email; a person's may be hidden."""
    kind = user.get("accountType")
    hidden = HIDDEN_EMAIL if kind in (None, "atlassian") else f"a Jira {kind} account has no email"
    return person(user["accountId"], user.get("emailAddress"), user.get("displayName"), hidden)


def jira_comment(raw: Any, field: str) -> SourceComment:
    """One comment as the REST v3 API shows it; raises `BadComment` naming the key at fault."""
    if not isinstance(raw, Mapping):
        raise BadComment(field, "is not an object")
    author = raw.get("author")
    author = author if isinstance(author, Mapping) else {}
    body = raw.get("body")
    text = body if isinstance(body, str) else adf_text(body)
    restricted = isinstance(raw.get("visibility"), Mapping)
    return comment(
        field,
        comment_id=raw.get("id"),
        created_at=raw.get("created"),
        body=text,
        author=author.get("displayName"),
        author_id=author.get("accountId"),
        public=raw.get("jsdPublic") is not False and not restricted,
        keys={"created_at": "created"},
    )


_BLOCKS = frozenset(
    {"paragraph", "heading", "blockquote", "codeBlock", "listItem", "tableRow", "rule", "panel"}
)


def adf_text(node: Any) -> str:
    """The plain text of an Atlassian Document Format node: its text, blocks on their lines.

    Mentions, emoji, dates and links read as they show (`@Ana`, `:smile:`); any
    node this doesn't know contributes the text inside it.
    """
    out: list[str] = []
    stack: list[Any] = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)  # a line break queued after a block
            continue
        if not isinstance(item, Mapping):
            continue
        kind, attrs = item.get("type"), item.get("attrs")
        attrs = attrs if isinstance(attrs, Mapping) else {}
        if kind == "text" and isinstance(item.get("text"), str):
            out.append(item["text"])
        elif kind == "hardBreak":
            out.append("\n")
        elif kind in ("mention", "emoji", "status") and isinstance(attrs.get("text"), str):
            out.append(attrs["text"])
        elif kind == "emoji" and isinstance(attrs.get("shortName"), str):
            out.append(attrs["shortName"])
        elif kind in ("inlineCard", "blockCard") and isinstance(attrs.get("url"), str):
            out.append(attrs["url"])
        content = item.get("content")
        if kind in _BLOCKS:
            stack.append("\n")
        if isinstance(content, list):
            stack.extend(reversed(content))
    return "".join(out).strip()


def epoch_ms_floored_to_minute(moment: dt.datetime) -> int:
    """`moment` as Unix milliseconds, floored to its minute (JQL's sure precision)."""
    return math.floor(moment.timestamp() / 60) * 60_000
