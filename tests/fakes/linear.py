"""A fake of Linear's GraphQL API (`POST /graphql`), as Linear's developer docs describe it.

Sources (Linear's developer documentation and its published schema):
- https://linear.app/developers/graphql (endpoint, authentication)
- https://linear.app/developers/pagination (Relay cursors: `first`/`after` and `last`/`before`,
  `pageInfo`, 50 records by default, `orderBy: updatedAt` for "the most recently updated")
- https://linear.app/developers/filtering (`filter`, comparators `eq neq in nin lt lte gt gte`,
  `and`/`or`, `includeArchived`)
- https://linear.app/developers/rate-limiting (leaky buckets of requests and complexity points,
  their headers, the 10,000-point ceiling of one query, `RATELIMITED`)
- the schema, github.com/linear/linear packages/sdk/src/schema.graphql (`Query.issues`,
  `Issue`, `WorkflowState.type`, `IssueFilter`, `DateComparator`, `PageInfo`, `UserFilter`,
  `issueDelete`: "trashes", 30 days' grace; `issueArchive(trash:)`)

What it serves:
- `issues(filter, orderBy, first, after, last, before, includeArchived)` with `nodes`,
  `edges { node cursor }` and `pageInfo { hasNextPage hasPreviousPage startCursor endCursor }`.
  Both orders, `createdAt` (the default) and `updatedAt`, list the most recent first, as the
  pagination page puts it ("to get most recently updated resources ... order by updatedAt");
  the schema documents no direction argument (`sort` is internal). Ties are broken by `id`.
  Cursors are opaque keysets (the node's sort value and id, base64): a node changed or deleted
  after a cursor was given shifts nothing around it. `first` or `last`, not both, at most 250.
- Filters on `id`, `createdAt`, `updatedAt`, `archivedAt`, `team { key | id }`, `and`, `or`;
  date comparators take ISO 8601 times (millisecond precision, as Linear stores them) or
  ISO 8601 durations back from now (`-P1D`, `-PT2H`). An unknown filter field is refused as
  GraphQL validation refuses it.
- Archived issues (archived by hand, by the team's auto-archive, or trashed) are left out
  unless `includeArchived: true`; they carry `archivedAt`, and a trashed one `trashed: true`
  (`issueDelete` trashes; after 30 days, or at once when an admin deletes for good, an issue
  is gone: `purge`). Archiving is a change like any other here: it moves `updatedAt`
  (`archive(..., moves_updated_at=False)` for the case the docs leave open).
- `users(filter: {id: {in: [...]}}, first, includeDisabled)`: people by id, with `email`;
  `teams(filter: {key: {in: [...]}})`: teams by key (a key no team has matches nothing);
  `comments(filter: {issue: {...}}, first, after)`: comments (`id body createdAt user issue`)
  of the issues the filter matches, the most recent first. Linear has no private comments.
- Authentication: a personal API key as `Authorization: <key>`, or an OAuth token as
  `Authorization: Bearer <token>`. Anything else is refused as Linear does: status
  `auth_status` (400, as captured from the live API; some see 401) and an
  `AUTHENTICATION_ERROR` in `errors`.
- Errors: a query that doesn't parse or asks for a field the schema lacks is a 400 with
  `GRAPHQL_PARSE_FAILED` / `GRAPHQL_VALIDATION_FAILED`, `data` absent; an argument out of
  range is a 400 "Argument Validation Error". Rate limits: each answer carries
  `X-RateLimit-Requests-Limit/-Remaining/-Reset` and `X-RateLimit-Complexity-Limit/
  -Remaining/-Reset` (resets in epoch milliseconds) and `X-Complexity`, the query's cost
  scored as the docs say (a property 0.1, an object 1, a connection's children times its
  `first`/`last`, 50 by default, rounded up). A spent bucket answers 400 with a
  `RATELIMITED` error (`rate_limited` builds one for `fail_next`); `HTML_429` is the plain
  429 an edge sometimes sends instead.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

from fakes import FakeApi, Reply, Request
from fakes.graphql import Enum, Field, QueryError, parse

DOCS = "https://linear.app/developers/graphql"
RATE_LIMIT_DOCS = "https://linear.app/developers/rate-limiting"
DEFAULT_PAGE = 50
MAX_PAGE = 250
MAX_COMPLEXITY = 10_000
"""Linear rejects any one query scored above this."""
API_KEY_REQUESTS_PER_HOUR = 2_500
API_KEY_COMPLEXITY_PER_HOUR = 3_000_000
"""The per-user budgets of a personal API key the rate-limiting page lists (fetched 2026-09);
earlier versions listed 1,500 requests and 250,000 points: read the headers, not these."""
STATE_TYPES = ("triage", "backlog", "unstarted", "started", "completed", "canceled", "duplicate")
PRIORITY_LABELS = {0: "No priority", 1: "Urgent", 2: "High", 3: "Medium", 4: "Low"}
_NAMESPACE = uuid.UUID("9b2f6a51-7a0e-4c55-9b0c-3f1f0f6c1a11")


def issue_id(number: int) -> str:
    """The UUID the fake gives issue `number` (Linear's ids are UUIDs; `number` is per team)."""
    return str(uuid.uuid5(_NAMESPACE, f"issue-{number}"))


def stamp(moment: dt.datetime) -> str:
    """Linear's time format: UTC, milliseconds, `Z`."""
    utc = moment.astimezone(dt.UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def rate_limited(wait: float) -> Reply:
    """Linear's answer once a bucket is spent: 400, a RATELIMITED error, the reset `wait` s on.

    Built ahead of the request it answers (`fail_next`), so the reset is given one second
    more: by the time the reply is served it is still at least `wait` away.
    """
    reset_ms = math.ceil((time.time() + wait + 1) * 1000)
    return Reply(
        400,
        {
            "errors": [
                {
                    "message": "Rate limit exceeded",
                    "extensions": {
                        "type": "ratelimited",
                        "code": "RATELIMITED",
                        "statusCode": 429,
                        "userError": True,
                        "userPresentableMessage": "Too many requests: try again later.",
                    },
                }
            ]
        },
        headers={
            "X-RateLimit-Requests-Limit": str(API_KEY_REQUESTS_PER_HOUR),
            "X-RateLimit-Requests-Remaining": "0",
            "X-RateLimit-Requests-Reset": str(reset_ms),
            "X-RateLimit-Complexity-Limit": str(API_KEY_COMPLEXITY_PER_HOUR),
            "X-RateLimit-Complexity-Remaining": str(API_KEY_COMPLEXITY_PER_HOUR),
            "X-RateLimit-Complexity-Reset": str(reset_ms),
        },
    )


HTML_429 = Reply(
    429,
    raw=b"<html><head><title>429 Too Many Requests</title></head><body>slow down</body></html>",
    content_type="text/html",
)

AUTHENTICATION_ERROR = {
    "errors": [
        {
            "message": "Authentication required, not authenticated",
            "extensions": {
                "type": "authentication error",
                "code": "AUTHENTICATION_ERROR",
                "statusCode": 401,
                "userError": True,
                "userPresentableMessage": "You need to authenticate to access this operation.",
            },
        }
    ]
}
"""The body Linear answers a missing, wrong or revoked key with (captured from the live API)."""


class _Invalid(Exception):
    """The query is invalid: answered 400 with these errors and no data."""

    def __init__(self, *errors: dict[str, Any]) -> None:
        super().__init__(errors[0].get("message"))
        self.errors = list(errors)


def _validation(message: str) -> _Invalid:
    return _Invalid(
        {
            "message": message,
            "extensions": {
                "code": "GRAPHQL_VALIDATION_FAILED",
                "type": "graphql error",
                "userError": True,
                "http": {"status": 400},
            },
        }
    )


def _argument(path: list[str], reason: str) -> _Invalid:
    return _Invalid(
        {
            "message": "Argument Validation Error",
            "path": path,
            "extensions": {
                "type": "invalid input",
                "code": "INVALID_INPUT",
                "userError": True,
                "userPresentableMessage": reason,
            },
        }
    )


@dataclass
class _Bucket:
    """A leaky bucket: `limit` an hour, refilled at `limit / 3600` a second (real time)."""

    limit: int
    used: float = 0.0
    at: float = 0.0

    def level(self, now: float) -> float:
        self.used = max(0.0, self.used - (now - self.at) * self.limit / 3600)
        self.at = now
        return self.used

    def remaining(self, now: float) -> int:
        return max(0, math.floor(self.limit - self.level(now)))

    def reset_ms(self, now: float) -> int:
        """When the bucket is full again, epoch milliseconds."""
        return math.ceil((now + self.level(now) * 3600 / self.limit) * 1000)


class FakeLinear(FakeApi):
    def __init__(
        self,
        api_key: str,
        oauth_token: str | None = None,
        *,
        auth_status: int = 400,
        requests_per_hour: int = API_KEY_REQUESTS_PER_HOUR,
        complexity_per_hour: int = API_KEY_COMPLEXITY_PER_HOUR,
    ) -> None:
        super().__init__()
        self.api_key, self.oauth_token, self.auth_status = api_key, oauth_token, auth_status
        self.teams: dict[str, dict[str, Any]] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.issues: dict[str, dict[str, Any]] = {}
        """By id: each as Linear's fields name it; `state`, `team` and `assignee` hold ids."""
        self.states: dict[str, dict[str, Any]] = {}
        self.comments: dict[str, dict[str, Any]] = {}
        """By id: `issue` and `user` hold ids."""
        self.numbers: dict[str, int] = {}
        self.requests_bucket = _Bucket(requests_per_hour, at=time.time())
        self.complexity_bucket = _Bucket(complexity_per_hour, at=time.time())
        self.queries: list[dict[str, Any]] = []
        """Each query served (body as sent), for tests to read."""
        self.complexities: list[int] = []
        self.refused: list[Request] = []
        self.add_team("ENG", "Engineering")

    # Data

    def add_team(self, key: str, name: str) -> dict[str, Any]:
        team = {"id": str(uuid.uuid5(_NAMESPACE, f"team-{key}")), "key": key, "name": name}
        self.teams[team["id"]] = team
        for name_, type_ in (
            ("Triage", "triage"),
            ("Backlog", "backlog"),
            ("Todo", "unstarted"),
            ("In Progress", "started"),
            ("In Review", "started"),
            ("Done", "completed"),
            ("Canceled", "canceled"),
            ("Duplicate", "duplicate"),
        ):
            state_id = str(uuid.uuid5(_NAMESPACE, f"state-{key}-{name_}"))
            self.states[state_id] = {"id": state_id, "name": name_, "type": type_, "team": key}
        return team

    def team_id(self, key: str) -> str:
        return next(t["id"] for t in self.teams.values() if t["key"] == key)

    def state_id(self, team: str, name: str) -> str:
        return next(
            s["id"] for s in self.states.values() if s["team"] == team and s["name"] == name
        )

    def add_user(self, name: str, email: str, *, active: bool = True) -> str:
        user_id = str(uuid.uuid5(_NAMESPACE, f"user-{email}"))
        self.users[user_id] = {
            "id": user_id,
            "name": name,
            "displayName": name.split()[0].lower(),
            "email": email,
            "active": active,
        }
        return user_id

    def add(
        self,
        number: int,
        updated: dt.datetime,
        *,
        title: str | None = None,
        team: str = "ENG",
        state: str = "Todo",
        assignee: str | None = None,
        created: dt.datetime | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """Issue `number` of `team` (its id `issue_id(number)`), updated at `updated`."""
        self.numbers[team] = max(self.numbers.get(team, 0), number)
        identifier = f"{team}-{number}"
        issue = {
            "id": issue_id(number),
            "number": number,
            "identifier": identifier,
            "title": title or f"Issue {number}",
            "description": None,
            "url": f"https://linear.app/acme/issue/{identifier.lower()}",
            "priority": 0,
            "estimate": None,
            "createdAt": stamp(created or updated),
            "updatedAt": stamp(updated),
            "archivedAt": None,
            "trashed": None,
            "canceledAt": None,
            "completedAt": None,
            "startedAt": None,
            "dueDate": None,
            "previousIdentifiers": [],
            "state": self.state_id(team, state),
            "team": self.team_id(team),
            "assignee": assignee,
            "labels": [],
            **fields,
        }
        self.issues[issue["id"]] = issue
        return issue

    def touch(self, number: int, updated: dt.datetime, **fields: Any) -> dict[str, Any]:
        issue = self.issues[issue_id(number)]
        if "state" in fields:
            team = self.teams[issue["team"]]["key"]
            fields["state"] = self.state_id(team, fields["state"])
        issue.update(fields, updatedAt=stamp(updated))
        return issue

    def archive(
        self, number: int, at: dt.datetime, *, trash: bool = False, moves_updated_at: bool = True
    ) -> None:
        """Archive issue `number` (by hand, or the team's auto-archive), or trash it
        (`issueDelete`): hidden without `includeArchived`, `archivedAt` set."""
        issue = self.issues[issue_id(number)]
        issue["archivedAt"] = stamp(at)
        issue["trashed"] = True if trash else None
        if moves_updated_at:
            issue["updatedAt"] = stamp(at)

    def unarchive(self, number: int, at: dt.datetime) -> None:
        issue = self.issues[issue_id(number)]
        issue.update(archivedAt=None, trashed=None, updatedAt=stamp(at))

    def purge(self, number: int) -> None:
        """Delete issue `number` for good (30 days after trashing, or an admin's delete)."""
        del self.issues[issue_id(number)]

    def move(self, number: int, team: str, at: dt.datetime) -> str:
        """Move issue `number` to `team`: a new number and identifier there, the same id."""
        issue = self.issues[issue_id(number)]
        new_number = self.numbers.get(team, 0) + 1
        self.numbers[team] = new_number
        state = self.states[issue["state"]]["name"]
        identifier = f"{team}-{new_number}"
        issue.update(
            number=new_number,
            identifier=identifier,
            previousIdentifiers=[*issue["previousIdentifiers"], issue["identifier"]],
            team=self.team_id(team),
            state=self.state_id(team, state),
            url=f"https://linear.app/acme/issue/{identifier.lower()}",
            updatedAt=stamp(at),
        )
        return identifier

    def comment(
        self,
        number: int,
        body: str,
        at: dt.datetime,
        *,
        user: str | None = None,
        moves_updated_at: bool = True,
    ) -> dict[str, Any]:
        """A comment on issue `number` by `user` (None: an integration's, no user). Whether a
        comment moves the issue's `updatedAt` Linear doesn't say; here it does by default."""
        comment_id = str(uuid.uuid5(_NAMESPACE, f"comment-{len(self.comments)}-{number}"))
        record = {
            "id": comment_id,
            "body": body,
            "createdAt": stamp(at),
            "updatedAt": stamp(at),
            "issue": issue_id(number),
            "user": user,
        }
        self.comments[comment_id] = record
        if moves_updated_at:
            self.issues[issue_id(number)]["updatedAt"] = stamp(at)
        return record

    # Serving

    def route(self, request: Request) -> Reply:
        if request.path != "/graphql" or request.method != "POST":
            return Reply(404, raw=b"Not Found", content_type="text/plain")
        try:
            payload = json.loads(request.body or b"null")
        except ValueError:
            return Reply(400, {"errors": [{"message": "POST body sent invalid JSON."}]})
        if not self._authorized(request.headers.get("authorization", "")):
            self.refused.append(request)
            return Reply(self.auth_status, AUTHENTICATION_ERROR)
        now = time.time()
        if self.requests_bucket.remaining(now) < 1:
            return self._answer(rate_limited(self._seconds_to_one()), now)
        if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
            return self._answer(Reply(400, {"errors": [{"message": "Must provide query string."}]}))
        self.queries.append(payload)
        try:
            fields = parse(payload["query"], dict(payload.get("variables") or {}))
        except QueryError as exc:
            error = {
                "message": f"Syntax Error: {exc}",
                "extensions": {"code": "GRAPHQL_PARSE_FAILED", "type": "graphql error"},
            }
            return self._answer(Reply(400, {"errors": [error]}))
        try:
            cost = math.ceil(sum(self._cost(top, "Query") for top in fields) - 1e-9)
            if cost > MAX_COMPLEXITY:
                raise _validation(f"Query too complex: {cost} points, at most {MAX_COMPLEXITY}")
            if self.complexity_bucket.remaining(now) < cost:
                return self._answer(rate_limited(60), now)
            data = {top.key: self._top(top) for top in fields}
        except _Invalid as invalid:
            return self._answer(Reply(400, {"errors": invalid.errors}))
        self.requests_bucket.used += 1
        self.complexity_bucket.used += cost
        self.complexities.append(cost)
        return self._answer(Reply(200, {"data": data}), cost=cost)

    def _answer(self, reply: Reply, now: float | None = None, cost: int = 0) -> Reply:
        """`reply` with the rate-limit headers every answer carries (a reply built with its
        own, `rate_limited`'s, keeps them)."""
        now = time.time() if now is None else now
        headers = {
            "X-RateLimit-Requests-Limit": str(self.requests_bucket.limit),
            "X-RateLimit-Requests-Remaining": str(self.requests_bucket.remaining(now)),
            "X-RateLimit-Requests-Reset": str(self.requests_bucket.reset_ms(now)),
            "X-RateLimit-Complexity-Limit": str(self.complexity_bucket.limit),
            "X-RateLimit-Complexity-Remaining": str(self.complexity_bucket.remaining(now)),
            "X-RateLimit-Complexity-Reset": str(self.complexity_bucket.reset_ms(now)),
            "X-Complexity": str(cost),
        }
        return Reply(
            reply.status, reply.body, {**headers, **reply.headers}, reply.raw, reply.content_type
        )

    def _seconds_to_one(self) -> float:
        return 3600 / self.requests_bucket.limit

    def _authorized(self, header: str) -> bool:
        if header == self.api_key:
            return True
        return self.oauth_token is not None and header == f"Bearer {self.oauth_token}"

    # Complexity, as the rate-limiting page scores it

    def _cost(self, field: Field, parent: str) -> float:
        kind = _KIND.get((parent, field.name))
        if kind is None:
            raise _validation(f'Cannot query field "{field.name}" on type "{parent}".')
        if kind == "scalar":
            return 0.1
        child = _CHILD[(parent, field.name)]
        inner = sum(self._cost(sub, child) for sub in field.selections)
        if kind == "connection":
            size = field.args.get("first") or field.args.get("last") or DEFAULT_PAGE
            return 1 + int(size) * inner
        return 1 + inner

    # Execution

    def _top(self, field: Field) -> Any:
        if field.name == "issues":
            return self._issues(field)
        if field.name == "users":
            return self._users(field)
        if field.name == "teams":
            return self._teams(field)
        if field.name == "comments":
            return self._comments(field)
        if field.name == "viewer":
            return {sub.key: None for sub in field.selections}
        raise _validation(f'Cannot query field "{field.name}" on type "Query".')

    def _issues(self, field: Field) -> dict[str, Any]:
        args = field.args
        filter_ = args.get("filter") or {}
        issues = [
            i
            for i in self.issues.values()
            if (args.get("includeArchived") is True or i["archivedAt"] is None)
            and self._matches(i, filter_, [field.key, "filter"])
        ]
        by = _enum(args.get("orderBy")) or "createdAt"
        if by not in ("createdAt", "updatedAt"):
            raise _validation(f'Value "{by}" does not exist in "PaginationOrderBy" enum.')
        issues.sort(key=lambda i: (i[by], i["id"]), reverse=True)  # the most recent first
        return self._connection(field, issues, lambda i: (i[by], i["id"]), self._issue, [field.key])

    def _users(self, field: Field) -> dict[str, Any]:
        args = field.args
        ids = ((args.get("filter") or {}).get("id") or {}).get("in")
        users = [
            u
            for u in self.users.values()
            if (ids is None or u["id"] in ids) and (u["active"] or args.get("includeDisabled"))
        ]
        users.sort(key=lambda u: u["id"], reverse=True)
        return self._connection(field, users, lambda u: ("", u["id"]), self._user, [field.key])

    def _comments(self, field: Field) -> dict[str, Any]:
        """`comments(filter: {issue: {id: {in: [...]}}})`: the comments of those issues (of
        issues not archived, as without `includeArchived`), the most recent first."""
        filter_ = field.args.get("filter") or {}
        for name in filter_:
            if name != "issue":
                raise _validation(f'Field "{name}" is not defined by type "CommentFilter".')
        wanted = filter_.get("issue") or {}
        comments = [
            c
            for c in self.comments.values()
            if (issue := self.issues.get(c["issue"])) is not None
            and issue["archivedAt"] is None
            and self._matches(issue, wanted, [field.key, "filter", "issue"])
        ]
        comments.sort(key=lambda c: (c["createdAt"], c["id"]), reverse=True)
        return self._connection(
            field, comments, lambda c: (c["createdAt"], c["id"]), self._comment, [field.key]
        )

    def _comment(self, comment: dict[str, Any], field: Field) -> dict[str, Any]:
        node: dict[str, Any] = {}
        for sub in field.selections:
            if sub.name == "user":
                user = self.users.get(comment["user"] or "")
                node[sub.key] = None if user is None else _pick(user, sub)
            elif sub.name == "issue":
                node[sub.key] = _pick(self.issues[comment["issue"]], sub)
            else:
                node[sub.key] = comment.get(sub.name)
        return node

    def _teams(self, field: Field) -> dict[str, Any]:
        keys = ((field.args.get("filter") or {}).get("key") or {}).get("in")
        teams = [t for t in self.teams.values() if keys is None or t["key"] in keys]
        teams.sort(key=lambda t: t["id"], reverse=True)
        return self._connection(field, teams, lambda t: ("", t["id"]), _pick, [field.key])

    def _connection(
        self,
        field: Field,
        items: list[dict[str, Any]],
        key: Any,
        node: Any,
        path: list[str],
    ) -> dict[str, Any]:
        """A Relay connection over `items`, listed in order; `key(item)` sorts them the same
        way, descending, and is what a cursor carries."""
        args = field.args
        first, last = args.get("first"), args.get("last")
        if first is not None and last is not None:
            raise _argument(path, "Use either first or last, not both.")
        size = first if first is not None else last if last is not None else DEFAULT_PAGE
        if not isinstance(size, int) or not 0 <= size <= MAX_PAGE:
            raise _argument(path, f"first and last must be between 0 and {MAX_PAGE}.")
        keyed = [(tuple(key(i)), i) for i in items]
        if args.get("after") is not None:
            at = _position(args["after"], path)
            keyed = [(k, i) for k, i in keyed if k < at]  # later in a most-recent-first list
        if args.get("before") is not None:
            at = _position(args["before"], path)
            keyed = [(k, i) for k, i in keyed if k > at]
        window = keyed[:size] if last is None else keyed[max(0, len(keyed) - size) :]
        start = keyed.index(window[0]) if window else 0
        info = {
            "hasNextPage": start + len(window) < len(keyed),
            "hasPreviousPage": start > 0,
            "startCursor": _cursor(window[0][0]) if window else None,
            "endCursor": _cursor(window[-1][0]) if window else None,
        }
        answer: dict[str, Any] = {}
        for sub in field.selections:
            if sub.name == "nodes":
                answer[sub.key] = [node(i, sub) for _, i in window]
            elif sub.name == "edges":
                answer[sub.key] = [
                    {e.key: node(i, e) if e.name == "node" else _cursor(k) for e in sub.selections}
                    for k, i in window
                ]
            elif sub.name == "pageInfo":
                answer[sub.key] = {s.key: info[s.name] for s in sub.selections}
        return answer

    def _issue(self, issue: dict[str, Any], field: Field) -> dict[str, Any]:
        node: dict[str, Any] = {}
        for sub in field.selections:
            name = sub.name
            if name == "state":
                node[sub.key] = _pick(self.states[issue["state"]], sub)
            elif name == "team":
                node[sub.key] = _pick(self.teams[issue["team"]], sub)
            elif name == "assignee":
                user = self.users.get(issue["assignee"] or "")
                node[sub.key] = None if user is None else _pick(user, sub)
            elif name == "labels":
                labels = [{"id": n, "name": n} for n in issue["labels"]]
                node[sub.key] = self._connection(sub, labels, lambda x: ("", x["id"]), _pick, [])
            elif name == "priorityLabel":
                node[sub.key] = PRIORITY_LABELS.get(int(issue["priority"] or 0))
            else:
                node[sub.key] = issue.get(name)
        return node

    def _user(self, user: dict[str, Any], field: Field) -> dict[str, Any]:
        return _pick(user, field)

    # Filtering

    def _matches(self, issue: dict[str, Any], filter_: Any, path: list[str]) -> bool:
        if not isinstance(filter_, dict):
            raise _validation(f"Expected type IssueFilter at {'.'.join(path)}")
        for name, condition in filter_.items():
            if name == "and":
                ok = all(self._matches(issue, f, [*path, name]) for f in condition or [])
            elif name == "or":
                ok = any(self._matches(issue, f, [*path, name]) for f in condition or [])
            elif name in ("createdAt", "updatedAt", "archivedAt"):
                ok = _compare(issue[name], condition, name)
            elif name == "id":
                ok = _compare(issue["id"], condition, name)
            elif name == "team":
                team = self.teams[issue["team"]]
                ok = True
                for key, cond in (condition or {}).items():
                    if key not in ("key", "id"):
                        raise _validation(f'Field "{key}" is not defined by type "TeamFilter".')
                    ok = ok and _compare(team[key], cond, f"team.{key}")
            else:
                raise _validation(f'Field "{name}" is not defined by type "IssueFilter".')
            if not ok:
                return False
        return True


_DURATION = re.compile(r"^-?P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")


def _moment(value: Any, name: str) -> str:
    """A comparator's value as Linear's stamp: an ISO time, or a duration back from now."""
    if not isinstance(value, str):
        raise _validation(f"{name}: expected a DateTime or a Duration, got {value!r}")
    match = _DURATION.match(value)
    if match and value not in ("P", "-P"):
        days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
        span = dt.timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
        return stamp(dt.datetime.now(dt.UTC) - span)
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise _validation(f'{name}: "{value}" is not a valid DateTime') from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return stamp(moment)  # Linear keeps milliseconds: finer digits don't count


def _compare(value: Any, condition: Any, name: str) -> bool:
    if not isinstance(condition, dict):
        raise _validation(f"{name}: expected a comparator object")
    dates = name in ("createdAt", "updatedAt", "archivedAt")

    def norm(v: Any) -> Any:
        return _moment(v, name) if dates and v is not None else v

    for op, operand in condition.items():
        if op in ("in", "nin"):
            listed = [norm(v) for v in operand or []]
            ok = (value in listed) if op == "in" else (value not in listed)
        elif op in ("eq", "neq"):
            ok = (value == norm(operand)) if op == "eq" else (value != norm(operand))
        elif op in ("gt", "gte", "lt", "lte"):
            if value is None:
                return False  # a null archivedAt compares with nothing
            bound = norm(operand)
            ok = {
                "gt": value > bound,
                "gte": value >= bound,
                "lt": value < bound,
                "lte": value <= bound,
            }[op]
        elif op == "null":
            ok = (value is None) == bool(operand)
        else:
            raise _validation(f'Field "{op}" is not defined by the comparator of "{name}".')
        if not ok:
            return False
    return True


def _pick(record: dict[str, Any], field: Field) -> dict[str, Any]:
    return {sub.key: record.get(sub.name) for sub in field.selections}


def _enum(value: Any) -> str | None:
    return value.name if isinstance(value, Enum) else value if isinstance(value, str) else None


def _cursor(key: tuple[Any, ...]) -> str:
    return base64.b64encode(json.dumps(list(key)).encode()).decode()


def _position(cursor: Any, path: list[str]) -> tuple[Any, ...]:
    try:
        key = json.loads(base64.b64decode(str(cursor), validate=True))
    except ValueError:
        raise _argument(path, f"Invalid cursor: {cursor!r:.60}") from None
    if not isinstance(key, list):
        raise _argument(path, f"Invalid cursor: {cursor!r:.60}")
    return tuple(key)


_OBJECT_FIELDS: dict[str, dict[str, str]] = {
    "WorkflowState": {"id": "", "name": "", "type": "", "color": ""},
    "Team": {"id": "", "key": "", "name": ""},
    "User": {"id": "", "name": "", "displayName": "", "email": "", "active": ""},
    "IssueLabel": {"id": "", "name": ""},
    "PageInfo": {"hasNextPage": "", "hasPreviousPage": "", "startCursor": "", "endCursor": ""},
}
_ISSUE_SCALARS = [
    "id",
    "number",
    "identifier",
    "title",
    "description",
    "url",
    "priority",
    "priorityLabel",
    "estimate",
    "createdAt",
    "updatedAt",
    "archivedAt",
    "trashed",
    "canceledAt",
    "completedAt",
    "startedAt",
    "dueDate",
    "previousIdentifiers",
]
_KIND: dict[tuple[str, str], str] = {
    ("Query", "issues"): "connection",
    ("Query", "users"): "connection",
    ("Query", "viewer"): "object",
    ("Query", "teams"): "connection",
    ("Query", "comments"): "connection",
    ("CommentConnection", "nodes"): "object",
    ("CommentConnection", "pageInfo"): "object",
    ("Comment", "user"): "object",
    ("Comment", "issue"): "object",
    **{("Comment", name): "scalar" for name in ("id", "body", "createdAt", "updatedAt", "url")},
    ("TeamConnection", "nodes"): "object",
    ("TeamConnection", "pageInfo"): "object",
    ("IssueConnection", "nodes"): "object",
    ("IssueConnection", "pageInfo"): "object",
    ("IssueConnection", "edges"): "object",
    ("IssueEdge", "node"): "object",
    ("IssueEdge", "cursor"): "scalar",
    ("UserConnection", "nodes"): "object",
    ("UserConnection", "pageInfo"): "object",
    ("Issue", "state"): "object",
    ("Issue", "team"): "object",
    ("Issue", "assignee"): "object",
    ("Issue", "labels"): "connection",
    ("IssueLabelConnection", "nodes"): "object",
    ("IssueLabelConnection", "pageInfo"): "object",
    **{("Issue", name): "scalar" for name in _ISSUE_SCALARS},
    **{(t, f): "scalar" for t, fields in _OBJECT_FIELDS.items() for f in fields},
}
"""What each field the fake serves is, for validation and scoring."""
_CHILD: dict[tuple[str, str], str] = {
    ("Query", "issues"): "IssueConnection",
    ("Query", "users"): "UserConnection",
    ("Query", "viewer"): "User",
    ("Query", "teams"): "TeamConnection",
    ("Query", "comments"): "CommentConnection",
    ("CommentConnection", "nodes"): "Comment",
    ("CommentConnection", "pageInfo"): "PageInfo",
    ("Comment", "user"): "User",
    ("Comment", "issue"): "Issue",
    ("TeamConnection", "nodes"): "Team",
    ("TeamConnection", "pageInfo"): "PageInfo",
    ("IssueConnection", "nodes"): "Issue",
    ("IssueConnection", "pageInfo"): "PageInfo",
    ("IssueConnection", "edges"): "IssueEdge",
    ("IssueEdge", "node"): "Issue",
    ("UserConnection", "nodes"): "User",
    ("UserConnection", "pageInfo"): "PageInfo",
    ("Issue", "state"): "WorkflowState",
    ("Issue", "team"): "Team",
    ("Issue", "assignee"): "User",
    ("Issue", "labels"): "IssueLabelConnection",
    ("IssueLabelConnection", "nodes"): "IssueLabel",
    ("IssueLabelConnection", "pageInfo"): "PageInfo",
}
