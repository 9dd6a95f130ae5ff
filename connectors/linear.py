"""Linear: the issues of a workspace (or of some of its teams), oldest change first.

Calls Linear's GraphQL API, `POST https://api.linear.app/graphql`, with a
personal API key sent as it is (`Authorization: <key>`) or an OAuth access
token (`Authorization: Bearer <token>`):
`issues(filter: {updatedAt: {gte: W}, team: {key: {in: [...]}}}, orderBy: updatedAt,
last: N, before: $cursor, includeArchived: true)`.

- Order. Linear lists the most recently updated first ("to get most recently
  updated resources ... order by updatedAt"; no direction argument is
  documented). Read forward, a pass could checkpoint nothing until it had read
  everything, and an issue edited mid-scan would jump back over the cursor and
  be missed. So the list is read backward, with Relay's `last`/`before` (the
  pagination page documents both directions): its last page holds the oldest
  changes, and each page, reversed, goes out oldest first. The stream is in
  `updatedAt` order and the engine checkpoints after every batch.
- Cursor and ties. `updatedAt` has milliseconds; `gte` is inclusive. Every page
  re-anchors: the query is issued again from the last `updatedAt` read, the
  ids already read at that instant skipped, so the connector relies on no
  property of Linear's opaque cursors; `before` is followed only when a whole
  page shares one millisecond. An issue edited mid-scan moves to the newest end,
  which the pass has yet to reach: it is read (again) there.
- Identity. A task is keyed by the issue's `id`, a UUID Linear keeps for the
  issue's life. The `identifier` people see (`ENG-123`) changes when the
  issue moves to another team (the old one lands in `previousIdentifiers`):
  it is a field, not the key, so a move keeps the task.
- Archived and deleted issues. `includeArchived: true` returns archived
  issues (by hand, or by the team's auto-archive of closed issues) and trashed
  ones (`issueDelete` trashes: `archivedAt` set and `trashed: true`, restorable
  for 30 days, then gone); either archives its task when its change is read.
  An issue deleted for good, or one whose archiving didn't move its
  `updatedAt` (Linear doesn't say it does), is found by a census (`scope_ids`):
  `issues(first: 250, after:)` without archived ones, ids only.
- Teams. `teams` narrows the query to those team keys. A key no team has
  would read nothing, and a census would then archive every task, so each pass
  and census first asks `teams(filter: {key: {in: [...]}})` and fails naming a
  key that matches no team the credentials can see.
- Rate limits. Linear keeps leaky buckets of requests and of complexity points
  per user, reports both in `X-RateLimit-Requests-*` / `X-RateLimit-Complexity-*`
  (resets in epoch milliseconds), and answers a spent one with HTTP 400 and a
  `RATELIMITED` error (sometimes a plain 429): both wait until the spent
  bucket's reset. A query may not score over 10,000 points; at the largest
  `page_size`, 250, this one scores about 7,300.
- Errors. A GraphQL error in a 200 fails the pass naming it; so does one in a
  400, read the same way (`graphql_classifier`): `AUTHENTICATION_ERROR` (Linear's
  answer to a wrong, revoked or expired key, with 400 or 401) fails as refused
  credentials.
- Comments (`read_comments`): see `LinearConnector.conversations`.
- People. The query asks `assignee { id name email }` inline: the people a page
  names cost no request (`SeenPeople`); others (a failed item retried later)
  are read by `users(filter: {id: {in: ids}}, includeDisabled: true)`, 100 ids
  a request.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

import httpx
from pydantic import Field, SecretStr, field_validator, model_validator

from connectors.base import (
    WHOLE_SECOND_LOOKBACK,
    ConnectorOptions,
    Cursor,
    Person,
    SourceTicket,
    unset,
)
from connectors.comments import CommentShape, read_comments
from connectors.errors import SourceError
from connectors.http import (
    SOURCE_POLICY,
    Action,
    Conversations,
    GraphQLCursorPaginator,
    HttpOptions,
    PageRequest,
    Paginator,
    RestConnector,
    Rule,
    graphql_classifier,
    graphql_request,
)
from connectors.http.graphql import ErrorCodes
from connectors.http.people import SeenPeople, person, resolve_in_batches
from connectors.records import get_path
from connectors.values import HttpUrl
from sync_http.auth import api_key_header, bearer
from sync_http.policy import Classifier, Policy

GRAPHQL_PATH = "/graphql"
ISSUE_FIELDS = """
      id identifier number title url priority priorityLabel estimate dueDate
      createdAt updatedAt archivedAt trashed startedAt completedAt canceledAt
      state { name type }
      team { key name }
      assignee { id name email }
      labels(first: 20) { nodes { name } }
"""
"""What a pass reads of each issue: about 29 complexity points with its 20 labels."""
ISSUES_QUERY = f"""
query Issues($filter: IssueFilter, $last: Int!, $before: String) {{
  issues(filter: $filter, orderBy: updatedAt, last: $last, before: $before,
         includeArchived: true) {{
    nodes {{ {ISSUE_FIELDS} }}
    pageInfo {{ hasPreviousPage startCursor }}
  }}
}}
"""
"""One page of issues changed since the filter's bound: the oldest `last` of them."""
ISSUES_NODES = "data.issues.nodes"
ISSUES_PAGE_INFO = "data.issues.pageInfo"
CENSUS_QUERY = """
query Census($filter: IssueFilter, $first: Int!, $after: String) {
  issues(filter: $filter, first: $first, after: $after) {
    nodes { id }
    pageInfo { hasNextPage endCursor }
  }
}
"""
"""A page of the ids of every issue not archived nor trashed, for the census."""
CENSUS_PAGE = 250
"""Linear's largest page: ids only, about 280 points a page."""
USERS_QUERY = """
query People($ids: [ID!], $first: Int!) {
  users(filter: {id: {in: $ids}}, first: $first, includeDisabled: true) {
    nodes { id name email }
  }
}
"""
PEOPLE_BATCH = 100
COMMENTS_QUERY = """
query Comments($ids: [ID!], $first: Int!, $after: String) {
  comments(filter: {issue: {id: {in: $ids}}}, first: $first, after: $after) {
    nodes { id body createdAt issue { id } user { id name } }
    pageInfo { hasNextPage endCursor }
  }
}
"""
"""The comments of a batch of issues, one listing for all: about 900 points a page of 250."""
COMMENTS_BATCH = 50
"""Issues whose comments one listing reads."""
COMMENTS_PAGE = 250
COMMENT_SHAPE = CommentShape(
    id="id", created_at="createdAt", body="body", author="user.name", author_id="user.id"
)
"""A Linear comment: markdown `body`; no author for an integration's (`user` null). None are
private."""
TEAMS_QUERY = """
query Teams($keys: [String!]) {
  teams(filter: {key: {in: $keys}}, first: 250) { nodes { key } }
}
"""
_TEAM_KEY = re.compile(r"[A-Za-z0-9_]{1,20}")

REFUSED = (
    "Linear refused the credentials: the API key (sent as it is) or the OAuth token (sent "
    "as Bearer) is wrong, revoked or expired"
)
LINEAR_POLICY: Policy = {
    **SOURCE_POLICY,
    401: Rule(Action.FAIL_AUTH, REFUSED),
    403: Rule(
        Action.FAIL_AUTH,
        "Linear denied the credentials access: an OAuth token needs the 'read' scope",
    ),
}
"""Linear's statuses; most of its errors come as GraphQL errors instead (`LINEAR_CODES`)."""
LINEAR_CODES: ErrorCodes = {
    "AUTHENTICATION_ERROR": Rule(Action.FAIL_AUTH, REFUSED),
    "FORBIDDEN": Rule(
        Action.FAIL_AUTH,
        "Linear denied the credentials access: an OAuth token needs the 'read' scope, and a "
        "key sees only the teams its user can",
    ),
}
"""Linear's error codes (`extensions.code`), in a 200 or a 400, that say more than a failure."""

STATUS_MAP = {
    "triage": "TODO",
    "backlog": "TODO",
    "unstarted": "TODO",
    "started": "STARTED",
    "completed": "DONE",
    "canceled": "DONE",
    "duplicate": "DONE",
}
"""Linear's workflow state types (every team names its states as it likes; the type is fixed)."""


class LinearOptions(HttpOptions):
    api_key: SecretStr | None = None
    """A personal API key (Settings > Security & access), sent as it is: `${LINEAR_API_KEY}`."""
    oauth_token: SecretStr | None = None
    """An OAuth access token with the 'read' scope, sent as `Bearer` (or set api_key)."""
    teams: list[str] = Field(default_factory=list, exclude_if=unset)
    """Team keys whose issues are read (`["ENG", "OPS"]`); every team the credentials see when
    unset. An issue moved to a team not listed leaves the scope: a census archives its task."""
    base_url: HttpUrl = "https://api.linear.app"
    """Linear's API; its GraphQL endpoint is `/graphql` under it."""
    page_size: int = Field(default=100, ge=1, le=250)
    """Issues per request, up to Linear's 250 (about 7,300 of a query's 10,000 points)."""
    requests_per_minute: float = Field(default=40.0, gt=0)
    """The client-side request budget: 40 a minute stays under a personal API key's 2,500 an
    hour, which every API key and integration of the same user shares."""

    @field_validator("teams")
    @classmethod
    def _team_keys(cls, keys: list[str]) -> list[str]:
        for key in keys:
            if not _TEAM_KEY.fullmatch(key):
                raise ValueError(f"{key!r} is not a team key (the ENG of ENG-123)")
        repeated = sorted({k for k in keys if keys.count(k) > 1})
        if repeated:
            raise ValueError(f"{', '.join(repeated)} listed more than once")
        return keys

    @model_validator(mode="after")
    def _one_credential(self) -> LinearOptions:
        if (self.api_key is None) == (self.oauth_token is None):
            raise ValueError("set api_key (a personal API key) or oauth_token, one of them")
        return self


class LinearConnector(RestConnector):
    kind = "linear"
    summary = "Linear issues (GraphQL); needs api_key (or oauth_token), optionally teams"
    Options = LinearOptions
    options: LinearOptions

    records_path = ISSUES_NODES
    id_path = "id"
    cursor_path = "updatedAt"
    default_lookback = WHOLE_SECOND_LOOKBACK
    cursors_from_source_clock = True
    reanchor_after_pages = 1
    policy = LINEAR_POLICY
    comments = "requests"
    comments_batch = COMMENTS_BATCH
    moved_hint = "update base_url in the connector's config"

    default_mapping: ClassVar[dict[str, Any]] = {
        "title": "{identifier} {title}",
        "url": "{url}",
        "status": "state.type",
        "status_map": STATUS_MAP,
        "due_at": "dueDate",
        "external_created_at": "createdAt",
        "external_updated_at": "updatedAt",
        "fields": {
            "identifier": "identifier",
            "team": "team.key",
            "priority": "priorityLabel",
            "estimate": "estimate",
            "labels": "label_names",
            "assignee": "assignee.name",
            # The team's own name of the state ("In Review"); external_status takes its type.
            "source_status": "state.name",
            "trashed": "trashed",
        },
        "assignee": "assignee.id",
    }

    def __init__(
        self, name: str, options: ConnectorOptions, stop: threading.Event | None = None
    ) -> None:
        super().__init__(name, options, stop)
        self.seen_people = SeenPeople()
        """The assignees the pages named, with their emails: `people` answers from them."""
        self._teams_checked = False

    def auth(self) -> httpx.Auth:
        if self.options.oauth_token is not None:
            return bearer(self.options.oauth_token)
        assert self.options.api_key is not None
        return api_key_header("Authorization", self.options.api_key)

    def classifier(self) -> Classifier:
        return graphql_classifier(self.policy, LINEAR_CODES)

    def paginator(self) -> Paginator:
        return GraphQLCursorPaginator(ISSUES_PAGE_INFO, backward=True)

    def first_request(self, since: Cursor | None, paginator: Paginator) -> PageRequest:
        self._check_teams()
        variables = {"filter": self._filter(since), "last": self.options.page_size}
        return graphql_request(GRAPHQL_PATH, ISSUES_QUERY, variables, LINEAR_CODES)

    def _filter(self, since: Cursor | None) -> dict[str, Any]:
        found: dict[str, Any] = {}
        if isinstance(since, dt.datetime):
            found["updatedAt"] = {"gte": milliseconds(since)}
        if self.options.teams:
            found["team"] = {"key": {"in": list(self.options.teams)}}
        return found

    def records(self, body: Any, path: str | None = None) -> list[Any]:
        """A page's issues, oldest change first (Linear lists the newest first)."""
        issues = list(reversed(super().records(body, path)))
        for issue in issues:
            assignee = issue.get("assignee") if isinstance(issue, dict) else None
            if isinstance(assignee, dict) and isinstance(assignee.get("id"), str):
                self.seen_people.add(_person(assignee))
        return issues

    def is_deleted(self, record: Mapping[str, Any]) -> bool:
        """Archived (by hand or auto-archived) or trashed: `archivedAt` is set for both."""
        return record.get("archivedAt") is not None

    def enrich(self, record: dict[str, Any]) -> dict[str, Any]:
        labels = get_nodes(record.get("labels"))
        names = [label.get("name") for label in labels if isinstance(label, dict)]
        return {**record, "label_names": names}

    def conversations(self, tickets: Sequence[SourceTicket]) -> Conversations:
        """The comments of up to `COMMENTS_BATCH` issues, from one `comments` listing.

        `comments(filter: {issue: {id: {in: ids}}}, first: 250)`, paged by its
        cursor: a batch of 50 issues costs one request per 250 of their comments,
        at least one, however many have none (the issue records carry no count).
        Every comment is public (Linear has none private), replies and comments on
        the description included; an integration's has no author.
        """
        by_issue: dict[str, list[Any]] = {t.source_id: [] for t in tickets}
        variables = {"ids": list(by_issue), "first": COMMENTS_PAGE}
        request = graphql_request(GRAPHQL_PATH, COMMENTS_QUERY, variables, LINEAR_CODES)
        paginator = GraphQLCursorPaginator("data.comments.pageInfo")
        for comment in self.listing(request, paginator, "data.comments.nodes") or []:
            owner = get_path(comment, "issue.id") if isinstance(comment, dict) else None
            if isinstance(owner, str) and owner in by_issue:
                by_issue[owner].append(comment)
        return {
            t.source_id: read_comments(t, by_issue[t.source_id], COMMENT_SHAPE) for t in tickets
        }

    def scope_ids(self) -> Iterator[str]:
        """The id of every issue in scope that is neither archived nor trashed, 250 a page.

        Linear's cursors page a keyset (an issue deleted meanwhile shifts
        nothing). A team that can't be read fails the census (`SourceError`).
        """
        self._check_teams()
        filter_ = self._filter(None)
        variables = {"filter": filter_, "first": CENSUS_PAGE}
        request = graphql_request(GRAPHQL_PATH, CENSUS_QUERY, variables, LINEAR_CODES)
        paginator = GraphQLCursorPaginator(ISSUES_PAGE_INFO)
        yield from self.listed_ids(request, paginator, ISSUES_NODES, "id")

    def people(self, user_ids: Iterable[str]) -> Iterator[Person]:
        """The assignees the pages showed first, then `users` by id, `PEOPLE_BATCH` a request."""
        seen, unseen = self.seen_people.split(user_ids)
        yield from seen
        yield from resolve_in_batches(unseen, PEOPLE_BATCH, self._users)

    def _users(self, user_ids: list[str]) -> Iterator[Person]:
        variables = {"ids": user_ids, "first": len(user_ids)}
        request = graphql_request(GRAPHQL_PATH, USERS_QUERY, variables, LINEAR_CODES)
        _response, body = self.fetch(request)
        for user in get_nodes(get_path(body, "data.users")):
            if isinstance(user, dict) and isinstance(user.get("id"), str):
                yield _person(user)

    def _check_teams(self) -> None:
        """Fail naming the team keys no team the credentials see has; once per connector."""
        teams = self.options.teams
        if not teams or self._teams_checked:
            return
        request = graphql_request(GRAPHQL_PATH, TEAMS_QUERY, {"keys": teams}, LINEAR_CODES)
        _response, body = self.fetch(request)
        found = {
            team.get("key")
            for team in get_nodes(get_path(body, "data.teams"))
            if isinstance(team, dict)
        }
        missing = [key for key in teams if key not in found]
        if missing:
            raise SourceError(
                self.name,
                f"no team with the key {', '.join(missing)} is visible to these credentials "
                "(keys are case-sensitive: the ENG of ENG-123); fix teams, or the connector "
                "would read nothing there and a census would archive its tasks",
            )
        self._teams_checked = True


def milliseconds(moment: dt.datetime) -> str:
    """An instant as Linear writes one, floored to the millisecond it keeps: `...T09:00:00.123Z`.

    Flooring keeps `gte` inclusive of every issue stamped within that millisecond.
    """
    utc = moment.astimezone(dt.UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def get_nodes(connection: Any) -> list[Any]:
    """A connection's `nodes`, [] when it has none."""
    nodes = connection.get("nodes") if isinstance(connection, dict) else None
    return nodes if isinstance(nodes, list) else []


def _person(user: Mapping[str, Any]) -> Person:
    return person(str(user["id"]), user.get("email"), user.get("name"), "no email in Linear")
