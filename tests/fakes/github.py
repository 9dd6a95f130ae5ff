"""A fake GitHub `GET /repos/{owner}/{repo}/issues`, as GitHub's REST docs describe it.

`state` defaults to open; `sort` (created, updated) and `direction`;
`since` filters on `updated_at`, whole seconds, inclusive; `per_page`
(default 30, at most 100) and `page`, with a `Link` header carrying next,
prev, first and last; pull requests mixed in with a `pull_request` key;
`Authorization: Bearer` (or `token`); weak ETags per token and page, and a
304 for a matching `If-None-Match` that costs no quota; `x-ratelimit-*`
headers on every answer. Deleted issues simply vanish.

Deep paging is GitHub's newer way: a `page=` past `deepest_page` is refused
with 422 ("Pagination with the page parameter is not supported for large
datasets, please use cursor based pagination (after/before)"), and an answer
too large for page numbers to reach its end links its next page with an
opaque `after=` cursor instead (`cursor:v2:` + the last item's sort key,
base64; a keyset, so edits mid-scan shift nothing after it).

GitHub App installations (`install_app`): `POST /app/installations/{id}/access_tokens`
with `Authorization: Bearer <JWT>` checks the JWT as GitHub documents it (RS256,
signed with the app's private key; `iss` the app's client ID or app ID; `iat`
not in the future; `exp` in the future and at most 10 minutes ahead) and
answers 201 with an installation token (`ghs_…`) and its `expires_at`, one
hour ahead by default (`token_lifetime`). An expired or revoked installation
token gets the same 401 "Bad credentials" as a wrong one.

A renamed or transferred repository (`rename`) answers its former names as
GitHub does ("Follow redirects" in GitHub's REST best practices): `301 Moved
Permanently`, `Location` = the same request under `/repositories/{id}`, the
query kept, and a JSON body repeating it; the repository is served under
that path too, and its `Link` pages point there.

More repositories of the same account (`add_repository`) are served under
their own `/repos/{owner}/{name}/issues`; an issue belongs to one of them
(`add(..., repository=...)`). Issue ids are global, numbers per repository.
Transferring an issue (`transfer`) does what GitHub does: the destination
gets a new issue with a new `id`, `node_id` and `number`, and the old one is
gone from its repository's list (its old URL redirects to the new one).

GraphQL (`POST /graphql`, as GitHub's GraphQL docs describe it): `repository(owner:,
name:)` with its `issues` connection (`first` 1-100 required, `after`, `orderBy`
CREATED_AT/UPDATED_AT ASC/DESC, `states`; `nodes` with `number`, `databaseId`, `id`,
`createdAt`, `updatedAt`, `state`, `title`; `pageInfo`; `totalCount`) and the
`rateLimit` object. Pull requests are not issues there. Cursors are opaque keysets
(`cursor:v2:` + the last node's sort key and id, base64): a deletion before the
cursor shifts nothing after it. Points: 1 a query; its own hourly quota of 5,000,
apart from REST's, in `x-ratelimit-*` headers with `x-ratelimit-resource: graphql`.
Errors come as GitHub sends them: 200 with `{"errors": [...]}` (and `data` when the
query ran: an unknown repository is `NOT_FOUND` with `data.repository` null);
`graphql_rate_limited` (primary) and `graphql_secondary_rate_limit` are the
rate-limit answers, for `fail_next`.
Users (`add_user`): `GET /users/{username}` answers the public profile; its
`email` is the address the user chose to make public, null when they chose
none (most do). An unknown login is a 404 "Not Found". Each answer counts
against the hourly quota, like every other request.
Issue comments (`comment`): `GET /repos/{owner}/{repo}/issues/{number}/comments`
lists an issue's (or pull request's) comments in ascending id order, `per_page`
(default 30, at most 100) and `page` with the same `Link` header, each as GitHub
shows it (`id`, `user`, `body` in markdown, `created_at`, `updated_at`,
`issue_url`, `author_association`), with the same weak ETags and free 304s as
the issue list; a number the repository doesn't have is a 404. A new comment
raises the issue's `comments` count and moves its `updated_at`, as on GitHub.
There are no private comments.

Writes (`PATCH /repos/{owner}/{repo}/issues/{issue_number}`, "Update an issue",
https://docs.github.com/rest/issues/issues#update-an-issue, and the single issue,
`GET` on the same path, https://docs.github.com/rest/issues/issues#get-an-issue):
`state` (open, closed) and `state_reason` (completed, not_planned, reopened; "ignored
unless `state` is changed", github/docs#22914), closing with no reason is
`completed`, reopening makes it `reopened`; `assignees` replaces the list (`[]`
clears it) and a login that can't be assigned (`assignable`) is GitHub's 422
`{"message": "Validation Failed", "errors": [{"value", "resource": "Issue",
"field": "assignees", "code": "invalid"}]}`. The answer is the issue as it now
stands, `updated_at` on the fake's clock. A token without write access
(`read_only`) gets the 403 "Resource not accessible by personal access token";
a repository whose issues are disabled (`issues_disabled`) and a deleted issue
(`delete`) answer 410 Gone ("Issues are disabled for this repo", "This issue was
deleted"), as "Get an issue" documents for an issue deleted from a repository the
user can read; a transferred issue's former number answers its 301 to the new issue; a
number the repository never had is a 404. Every PATCH received is
kept in `writes` (issue id, body) before it is judged.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import math
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlencode

import jwt

from fakes import FakeApi, Reply, Request
from fakes.graphql import Enum, Field, QueryError, parse

DOCS = "https://docs.github.com/rest"
LIST_DOCS = "https://docs.github.com/rest/issues/issues#list-repository-issues"
DEEPEST_PAGE = 99
"""GitHub refuses `page=100` at `per_page=100` on large repositories (go-github#3565,
python-github-backup#429); it documents no number, so the fake takes that one."""
GRAPHQL_DOCS = "https://docs.github.com/graphql"
GRAPHQL_POINTS = 5000
FOLLOW_REDIRECTS = (
    "https://docs.github.com/rest/guides/best-practices-for-using-the-rest-api#follow-redirects"
)


def stamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def primary_rate_limit(wait: int) -> Reply:
    """The 403 GitHub sends once the hourly quota is spent, resetting `wait` s or more from now.

    The reset is whole Unix seconds, so it is rounded up and given one second
    more: by the time the reply is served it is still at least `wait` away.
    """
    reset = math.ceil(time.time()) + wait + 1
    return Reply(
        403,
        {"message": "API rate limit exceeded for user ID 583231.", "documentation_url": DOCS},
        headers={
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": "0",
            "x-ratelimit-used": "5000",
            "x-ratelimit-reset": str(reset),
            "x-ratelimit-resource": "core",
        },
    )


SECONDARY_RATE_LIMIT = Reply(
    403,
    {
        "message": "You have exceeded a secondary rate limit. Please wait a few minutes "
        "before you try again.",
        "documentation_url": DOCS,
    },
)
"""A secondary limit as it sometimes arrives: no headers, only the message."""


def graphql_rate_limited(wait: int) -> Reply:
    """GitHub's answer to a GraphQL query once the hour's points are spent: still 200, an
    error of type RATE_LIMITED, `x-ratelimit-remaining: 0` and the reset `wait` s away."""
    reset = math.ceil(time.time()) + wait + 1
    return Reply(
        200,
        {
            "errors": [
                {"type": "RATE_LIMITED", "message": "API rate limit exceeded for user ID 583231."}
            ]
        },
        headers={
            "x-ratelimit-limit": str(GRAPHQL_POINTS),
            "x-ratelimit-remaining": "0",
            "x-ratelimit-used": str(GRAPHQL_POINTS),
            "x-ratelimit-reset": str(reset),
            "x-ratelimit-resource": "graphql",
        },
    )


def graphql_secondary_rate_limit(status: int = 200) -> Reply:
    """A secondary limit on GraphQL: "a 200 or 403 status and an error message", with the
    primary quota's headers, points left and its reset most of an hour away: that reset is
    not this limit's (the docs: without `retry-after`, wait at least a minute)."""
    message = (
        "You have exceeded a secondary rate limit. Please wait a few minutes before you "
        "try again. If you reach out to GitHub Support for help, please include the request "
        "ID 0FA4:3C54:1D4C1A2:3B6C0D4:6A1B2C3D."
    )
    body: dict[str, Any] = (
        {"errors": [{"message": message}]}
        if status == 200
        else {"message": message, "documentation_url": GRAPHQL_DOCS}
    )
    return Reply(
        status,
        body,
        headers={
            "x-ratelimit-limit": str(GRAPHQL_POINTS),
            "x-ratelimit-remaining": "4990",
            "x-ratelimit-used": "10",
            "x-ratelimit-reset": str(int(time.time()) + 3300),
            "x-ratelimit-resource": "graphql",
        },
    )


NO_PERMISSION = Reply(
    403,
    {"message": "Resource not accessible by personal access token", "documentation_url": DOCS},
    headers={"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "4990"},
)


_ACCESS_TOKENS = re.compile(r"^/app/installations/(\d+)/access_tokens$")
USER_DOCS = "https://docs.github.com/rest/users/users#get-a-user"
_ISSUE_COMMENTS = re.compile(r"^/repos/([^/]+/[^/]+)/issues/(\d+)/comments$")
_ISSUE = re.compile(r"^/repos/([^/]+/[^/]+)/issues/(\d+)$")
UPDATE_DOCS = "https://docs.github.com/rest/issues/issues#update-an-issue"
STATE_REASONS = {"completed", "not_planned", "reopened", None}


@dataclass
class AppInstallation:
    """A GitHub App installed on the repository's account, and the tokens minted for it."""

    app_id: int
    client_id: str
    installation_id: int
    public_key: str
    """PEM: GitHub keeps the public half of the private key the app signs its JWTs with."""
    token_lifetime: float = 3600.0
    tokens: dict[str, float] = field(default_factory=dict)
    """Installation token → when it expires (time.monotonic())."""
    jwts: list[dict[str, Any]] = field(default_factory=list)
    """The claims of every JWT GitHub accepted, in order."""

    def valid(self, token: str) -> bool:
        expires = self.tokens.get(token)
        return expires is not None and time.monotonic() < expires

    def revoke(self) -> None:
        """`DELETE /installation/token`, for every token minted so far."""
        self.tokens.clear()


class FakeGitHub(FakeApi):
    def __init__(
        self, token: str, repository: str = "octo-org/helpdesk", repository_id: int = 1296269
    ) -> None:
        super().__init__()
        self.token = token
        self.repository = repository
        self.repository_id = repository_id
        """The repository's immutable id: what its `/repositories/{id}` path and redirects use."""
        self.former_names: set[str] = set()
        self.issues: dict[int, dict[str, Any]] = {}
        self.quota_used = 0
        """Requests that counted against the hourly quota (a 304 does not)."""
        self.deepest_page = DEEPEST_PAGE
        """The last `page=` number served; deeper is a 422, and longer answers link `after=`."""
        self.app: AppInstallation | None = None
        self.refused: list[Request] = []
        """Issue requests answered 401."""
        self.other_repositories: set[str] = set()
        """More repositories of the account, served under their names (`add_repository`)."""
        self.placement: dict[int, str] = {}
        """The repository of each issue not in the main one, by issue id."""
        self.graphql_points_used = 0
        """Points spent on GraphQL queries: a quota of its own, apart from REST's."""
        self.graphql_queries: list[dict[str, Any]] = []
        """The body of every GraphQL query answered, in order."""
        self.users: dict[str, dict[str, Any]] = {}
        """Public profiles by login, lower-cased (GitHub's logins ignore case)."""
        self.comments: dict[int, list[dict[str, Any]]] = {}
        """Each issue's comments by issue id, oldest first."""
        self._next_comment_id = 1_000_000
        self.writes: list[tuple[int | None, Any]] = []
        """Every issue PATCH received: the issue id (None: no such issue) and the body."""
        self.assignable: set[str] = set()
        """Logins (lower-cased) that may be assigned: the repository's collaborators."""
        self.read_only = False
        """The token may read issues but not write them (a fine-grained 'Issues: read')."""
        self.issues_disabled: set[str] = set()
        """Repositories (`owner/name`) whose issues are turned off: 410 Gone."""
        self.deleted: dict[str, set[int]] = {}
        """The numbers of deleted issues, by repository: 410 Gone."""
        self.transferred: dict[tuple[str, int], tuple[str, int]] = {}
        """Where each transferred issue went: (repository, number) before and after."""

    def add_user(
        self, login: str, name: str | None, public_email: str | None, kind: str = "User"
    ) -> dict[str, Any]:
        """A GitHub account; `public_email` None: the user keeps every address private."""
        user_id = 10_000 + len(self.users)
        user = {
            "login": login,
            "id": user_id,
            "node_id": f"U_kgDO{user_id:08d}",
            "avatar_url": f"https://avatars.githubusercontent.com/u/{user_id}?v=4",
            "url": f"https://api.github.com/users/{login}",
            "html_url": f"https://github.com/{login}",
            "type": kind,
            "site_admin": False,
            "name": name,
            "company": None,
            "blog": "",
            "location": None,
            "email": public_email,
            "hireable": None,
            "bio": None,
            "public_repos": 3,
            "followers": 1,
            "following": 0,
            "created_at": "2019-03-04T10:00:00Z",
            "updated_at": "2026-10-01T10:00:00Z",
        }
        with self.lock:
            self.users[login.lower()] = user
        return user

    def add_repository(self, name: str) -> None:
        """Serve a second (third, ...) repository, `owner/name`, with issues of its own."""
        with self.lock:
            self.other_repositories.add(name)

    def transfer(self, issue_id: int, to: str, new_id: int, updated: dt.datetime) -> None:
        """Move issue `issue_id` to repository `to`: a new issue there, as GitHub does it."""
        with self.lock:
            old = self.issues.pop(issue_id)
            home = self.placement.pop(issue_id, self.repository)
            numbers = [i["number"] for k, i in self.issues.items() if self._home(k) == to]
            self.transferred[(home, old["number"])] = (to, max(numbers, default=0) + 1)
            fields = {k: v for k, v in old.items() if k not in ("id", "node_id", "number")}
            fields.pop("html_url")
            fields.pop("updated_at")
            self.add(new_id, updated, number=max(numbers, default=0) + 1, repository=to, **fields)

    def _home(self, issue_id: int) -> str:
        return self.placement.get(issue_id, self.repository)

    def install_app(self, installation: AppInstallation) -> AppInstallation:
        self.app = installation
        return installation

    @property
    def issues_path(self) -> str:
        return f"/repos/{self.repository}/issues"

    @property
    def id_issues_path(self) -> str:
        """The issues under the repository's id, where GitHub redirects its former names."""
        return f"/repositories/{self.repository_id}/issues"

    def rename(self, new_name: str) -> None:
        """Rename or transfer the repository to `new_name` (`owner/name`); old names redirect."""
        with self.lock:
            self.former_names.add(self.repository)
            self.former_names.discard(new_name)
            self.repository = new_name

    def add(
        self,
        issue_id: int,
        updated: dt.datetime,
        number: int | None = None,
        pull_request: bool = False,
        repository: str | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        number = issue_id + 1000 if number is None else number
        home = repository or self.repository
        html = f"https://github.com/{home}/{'pull' if pull_request else 'issues'}"
        issue: dict[str, Any] = {
            "id": issue_id,
            "node_id": f"I_kwDO{issue_id:08d}",
            "number": number,
            "html_url": f"{html}/{number}",
            "title": f"Issue {number}",
            "user": {"login": "ana-ops", "id": 5},
            "labels": [{"id": 1, "name": "bug", "color": "d73a4a"}],
            "state": "open",
            "state_reason": None,
            "assignee": None,
            "assignees": [],
            "milestone": None,
            "comments": 0,
            "created_at": stamp(updated - dt.timedelta(hours=1)),
            "updated_at": stamp(updated),
            "closed_at": None,
            **fields,
        }
        if pull_request:
            issue["pull_request"] = {"url": f"https://api.github.com/pulls/{number}"}
        with self.lock:
            self.issues[issue_id] = issue
            if home != self.repository:
                self.placement[issue_id] = home
            else:
                self.placement.pop(issue_id, None)
        return issue

    def touch(self, issue_id: int, updated: dt.datetime, **fields: Any) -> None:
        with self.lock:
            self.issues[issue_id].update(fields, updated_at=stamp(updated))

    def comment(
        self,
        issue_id: int,
        at: dt.datetime,
        body: str = "Looking into it.",
        login: str = "bo-dev",
        user_id: int = 8,
        touch: bool = True,
    ) -> dict[str, Any]:
        """Comment on issue `issue_id` at `at`: its count goes up and, with `touch`, its
        `updated_at` moves to `at`, as a comment does on GitHub."""
        with self.lock:
            issue = self.issues[issue_id]
            self._next_comment_id += 1
            comment_id = self._next_comment_id
            home = self._home(issue_id)
            comment = {
                "id": comment_id,
                "node_id": f"IC_kwDO{comment_id:08d}",
                "url": f"https://api.github.com/repos/{home}/issues/comments/{comment_id}",
                "html_url": f"{issue['html_url']}#issuecomment-{comment_id}",
                "body": body,
                "user": {"login": login, "id": user_id, "type": "User"},
                "created_at": stamp(at),
                "updated_at": stamp(at),
                "issue_url": f"https://api.github.com/repos/{home}/issues/{issue['number']}",
                "author_association": "MEMBER",
            }
            self.comments.setdefault(issue_id, []).append(comment)
            issue["comments"] = len(self.comments[issue_id])
            if touch:
                issue["updated_at"] = stamp(at)
        return comment

    def delete(self, issue_id: int) -> None:
        """Delete issue `issue_id`: gone from the listing; its number answers 410."""
        with self.lock:
            issue = self.issues.pop(issue_id)
            home = self.placement.pop(issue_id, self.repository)
            self.deleted.setdefault(home, set()).add(issue["number"])

    def comment_gets(self) -> list[Request]:
        """The requests for an issue's comments."""
        return [r for r in self.requests if _ISSUE_COMMENTS.match(r.path)]

    def route(self, request: Request) -> Reply:
        minting = _ACCESS_TOKENS.match(request.path)
        if minting is not None and request.method == "POST":
            return self._access_token(int(minting[1]), request)
        if request.path == "/graphql" and request.method == "POST":
            if not self._authorized(request.headers.get("authorization", "")):
                self.refused.append(request)
                return Reply(401, {"message": "Bad credentials", "documentation_url": GRAPHQL_DOCS})
            return self._graphql(request)
        if request.path.startswith("/users/"):
            return self._user(request)
        one = _ISSUE.match(request.path)
        if one is not None and request.method in ("GET", "PATCH"):
            return self._one_issue(request, one[1], int(one[2]))
        listing = _ISSUE_COMMENTS.match(request.path)
        if listing is not None:
            return self._issue_comments(request, listing[1], int(listing[2]))
        former = {f"/repos/{name}/issues" for name in self.former_names}
        others = {f"/repos/{name}/issues": name for name in self.other_repositories}
        if request.path not in (self.issues_path, self.id_issues_path, *former, *others):
            return Reply(404, {"message": "Not Found", "documentation_url": DOCS})
        if not self._authorized(request.headers.get("authorization", "")):
            self.refused.append(request)
            return Reply(401, {"message": "Bad credentials", "documentation_url": DOCS})
        if request.path in former:
            return self._moved(request)
        repository = others.get(request.path, self.repository)
        issues = [i for k, i in self.issues.items() if self._home(k) == repository]
        state = request.param("state", "open")
        if state != "all":
            issues = [i for i in issues if i["state"] == state]
        since = request.param("since")
        if since is not None:
            try:
                bound = dt.datetime.fromisoformat(since.replace("Z", "+00:00"))
            except ValueError:
                return Reply(422, {"message": "Validation Failed", "documentation_url": DOCS})
            issues = [i for i in issues if i["updated_at"] >= stamp(bound)]
        field = "updated_at" if request.param("sort") == "updated" else "created_at"
        descending = request.param("direction", "desc") == "desc"
        issues.sort(key=lambda i: (i[field], i["id"]), reverse=descending)
        per_page = min(100, int(request.param("per_page", "30") or 30))
        after = request.param("after")
        if after is not None:
            try:
                position = _position(after)
            except ValueError:
                return Reply(422, {"message": "Validation Failed", "documentation_url": DOCS})
            beyond = [(i, (i[field], i["id"])) for i in issues]
            issues = [i for i, key in beyond if (key < position if descending else key > position)]
            body = issues[:per_page]
            links = self._cursor_link(request, field, body) if len(issues) > per_page else ""
        else:
            page = int(request.param("page", "1") or 1)
            if page > self.deepest_page:
                return Reply(
                    422,
                    {
                        "message": "Pagination with the page parameter is not supported for "
                        "large datasets, please use cursor based pagination (after/before)",
                        "documentation_url": LIST_DOCS,
                        "status": "422",
                    },
                )
            body = issues[(page - 1) * per_page : page * per_page]
            pages = max(1, math.ceil(len(issues) / per_page))
            if pages > self.deepest_page and page < pages:
                links = self._cursor_link(request, field, body)
            else:
                links = self._links(request, page, pages)
        headers = {"ETag": self._etag(body), **self._quota()}
        if links:
            headers["Link"] = links
        if request.headers.get("if-none-match") == headers["ETag"]:
            return Reply(304, raw=b"", headers=headers)
        self.quota_used += 1
        return Reply(200, body, headers={**headers, **self._quota()})

    # GraphQL

    def _graphql(self, request: Request) -> Reply:
        """`POST /graphql`: one query, run against the issues; see the module docstring."""
        try:
            payload = json.loads(request.body or b"null")
        except ValueError:
            return Reply(
                400, {"message": "Problems parsing JSON", "documentation_url": GRAPHQL_DOCS}
            )
        if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
            return Reply(
                200,
                {
                    "errors": [
                        {"message": "A query attribute must be specified and must be a string."}
                    ]
                },
            )
        self.graphql_queries.append(payload)
        try:
            fields = parse(payload["query"], dict(payload.get("variables") or {}))
        except QueryError as exc:
            return self._graphql_reply({"errors": [{"message": str(exc)}]})
        data: dict[str, Any] = {}
        errors: list[dict[str, Any]] = []
        for top in fields:
            if top.name == "repository":
                data[top.key] = self._repository(top, errors)
            elif top.name == "rateLimit":
                data[top.key] = None  # filled in below, once this query's cost is known
            else:
                return self._graphql_reply({"errors": [_undefined(top, "Query", ["query"])]})
        if any(error.get("extensions", {}).get("code") == "undefinedField" for error in errors):
            return self._graphql_reply({"errors": errors})  # invalid: nothing ran
        self.graphql_points_used += 1
        for top in fields:
            if top.name == "rateLimit":
                data[top.key] = self._rate_limit(top)
        body: dict[str, Any] = {"data": data}
        if errors:
            body["errors"] = errors
        return self._graphql_reply(body)

    def _graphql_reply(self, body: dict[str, Any]) -> Reply:
        return Reply(200, body, headers=self._graphql_quota())

    def _graphql_quota(self) -> dict[str, str]:
        return {
            "x-ratelimit-limit": str(GRAPHQL_POINTS),
            "x-ratelimit-remaining": str(GRAPHQL_POINTS - self.graphql_points_used),
            "x-ratelimit-used": str(self.graphql_points_used),
            "x-ratelimit-reset": str(int(time.time()) + 3600),
            "x-ratelimit-resource": "graphql",
        }

    def _rate_limit(self, field: Field) -> dict[str, Any]:
        reset = dt.datetime.fromtimestamp(int(time.time()) + 3600, dt.UTC)
        values = {
            "cost": 1,
            "limit": GRAPHQL_POINTS,
            "remaining": GRAPHQL_POINTS - self.graphql_points_used,
            "used": self.graphql_points_used,
            "resetAt": stamp(reset),
            "nodeCount": 100,
        }
        return {sub.key: values.get(sub.name) for sub in field.selections}

    def _repository(self, field: Field, errors: list[dict[str, Any]]) -> dict[str, Any] | None:
        owner, name = field.args.get("owner"), field.args.get("name")
        wanted = f"{owner}/{name}"
        served = {self.repository, *self.other_repositories}
        found = next((r for r in served if r.lower() == wanted.lower()), None)
        if found is None:
            errors.append(
                {
                    "type": "NOT_FOUND",
                    "path": [field.key],
                    "locations": [{"line": 2, "column": 3}],
                    "message": f"Could not resolve to a Repository with the name '{wanted}'.",
                }
            )
            return None
        answer: dict[str, Any] = {}
        for sub in field.selections:
            if sub.name == "issues":
                answer[sub.key] = self._issues(found, sub, [field.key, sub.key], errors)
            elif sub.name == "nameWithOwner":
                answer[sub.key] = found
            else:
                errors.append(_undefined(sub, "Repository", ["query", field.key, sub.key]))
        return answer

    def _issues(
        self, repository: str, field: Field, path: list[str], errors: list[dict[str, Any]]
    ) -> dict[str, Any] | None:
        first = field.args.get("first")
        if first is None:
            errors.append(
                {
                    "type": "MISSING_PAGINATION_BOUNDARIES",
                    "path": path,
                    "message": "You must provide a `first` or `last` value to properly "
                    "paginate the `issues` connection.",
                }
            )
            return None
        if not 1 <= int(first) <= 100:
            errors.append(
                {
                    "type": "EXCESSIVE_PAGINATION",
                    "path": path,
                    "message": f"Requesting {first} records on the `issues` connection exceeds "
                    "the `first` limit of 100 records.",
                }
            )
            return None
        order = field.args.get("orderBy") or {}
        by = {"CREATED_AT": "created_at", "UPDATED_AT": "updated_at"}.get(
            _enum(order.get("field")) or "CREATED_AT", "created_at"
        )
        descending = _enum(order.get("direction")) == "DESC"
        states = {(_enum(s) or "").lower() for s in field.args.get("states") or []}
        issues = [
            i
            for k, i in self.issues.items()
            if self._home(k) == repository
            and "pull_request" not in i
            and (not states or i["state"] in states)
        ]
        issues.sort(key=lambda i: (i[by], i["id"]), reverse=descending)
        total = len(issues)
        after = field.args.get("after")
        if after is not None:
            try:
                position = _position(after)
            except ValueError:
                errors.append(
                    {
                        "type": "INVALID_CURSOR_ARGUMENTS",
                        "path": path,
                        "message": f"`{after}` does not appear to be a valid cursor.",
                    }
                )
                return None
            issues = [
                i
                for i in issues
                if ((i[by], i["id"]) < position if descending else (i[by], i["id"]) > position)
            ]
        page = issues[: int(first)]
        answer: dict[str, Any] = {}
        for sub in field.selections:
            if sub.name == "nodes":
                answer[sub.key] = [self._node(issue, sub, path, errors) for issue in page]
            elif sub.name == "pageInfo":
                info = {
                    "hasNextPage": len(issues) > len(page),
                    "hasPreviousPage": after is not None,
                    "endCursor": _cursor(page[-1], by) if page else None,
                    "startCursor": _cursor(page[0], by) if page else None,
                }
                answer[sub.key] = {s.key: info.get(s.name) for s in sub.selections}
            elif sub.name == "totalCount":
                answer[sub.key] = total
            else:
                errors.append(_undefined(sub, "IssueConnection", ["query", *path, sub.key]))
        return answer

    def _node(
        self, issue: dict[str, Any], field: Field, path: list[str], errors: list[dict[str, Any]]
    ) -> dict[str, Any]:
        values = {
            "number": issue["number"],
            "databaseId": issue["id"],
            "id": issue["node_id"],
            "createdAt": issue["created_at"],
            "updatedAt": issue["updated_at"],
            "state": str(issue["state"]).upper(),
            "title": issue["title"],
        }
        node: dict[str, Any] = {}
        for sub in field.selections:
            if sub.name not in values:
                errors.append(_undefined(sub, "Issue", ["query", *path, "nodes", sub.key]))
            node[sub.key] = values.get(sub.name)
        return node

    def _user(self, request: Request) -> Reply:
        """`GET /users/{username}`: the public profile, or 404."""
        if not self._authorized(request.headers.get("authorization", "")):
            self.refused.append(request)
            return Reply(401, {"message": "Bad credentials", "documentation_url": DOCS})
        self.quota_used += 1
        login = unquote(request.path.removeprefix("/users/"))
        user = self.users.get(login.lower())
        if user is None:
            body = {"message": "Not Found", "documentation_url": USER_DOCS, "status": "404"}
            return Reply(404, body, headers=self._quota())
        return Reply(200, user, headers=self._quota())

    def _issue_comments(self, request: Request, repository: str, number: int) -> Reply:
        """`GET /repos/{owner}/{repo}/issues/{number}/comments`, oldest (lowest id) first."""
        if repository not in (self.repository, *self.other_repositories):
            return Reply(404, {"message": "Not Found", "documentation_url": DOCS})
        if not self._authorized(request.headers.get("authorization", "")):
            self.refused.append(request)
            return Reply(401, {"message": "Bad credentials", "documentation_url": DOCS})
        found = [
            k
            for k, i in self.issues.items()
            if i["number"] == number and self._home(k) == repository
        ]
        if not found:
            return Reply(404, {"message": "Not Found", "documentation_url": DOCS})
        comments = sorted(self.comments.get(found[0], []), key=lambda c: c["id"])
        per_page = min(100, int(request.param("per_page", "30") or 30))
        page = int(request.param("page", "1") or 1)
        body = comments[(page - 1) * per_page : page * per_page]
        pages = max(1, math.ceil(len(comments) / per_page))
        headers = {"ETag": self._etag(body), **self._quota()}
        links = self._links(request, page, pages)
        if links:
            headers["Link"] = links
        if request.headers.get("if-none-match") == headers["ETag"]:
            return Reply(304, raw=b"", headers=headers)
        self.quota_used += 1
        return Reply(200, body, headers={**headers, **self._quota()})

    def _one_issue(self, request: Request, repository: str, number: int) -> Reply:
        """`GET` or `PATCH /repos/{owner}/{repo}/issues/{number}` (see the module docstring)."""
        if not self._authorized(request.headers.get("authorization", "")):
            self.refused.append(request)
            return Reply(401, {"message": "Bad credentials", "documentation_url": DOCS})
        self.quota_used += 1
        body = request.json() if request.method == "PATCH" else None
        with self.lock:
            found = next(
                (
                    k
                    for k, i in self.issues.items()
                    if i["number"] == number and self._home(k).lower() == repository.lower()
                ),
                None,
            )
            if request.method == "PATCH":
                self.writes.append((found, body))
        served = {r.lower() for r in (self.repository, *self.other_repositories)}
        if repository.lower() not in served:
            return Reply(404, {"message": "Not Found", "documentation_url": DOCS})
        if repository in self.issues_disabled:
            return _gone("Issues are disabled for this repo")
        if found is None:
            if number in self.deleted.get(repository, set()):
                return _gone("This issue was deleted")
            moved = self.transferred.get((repository, number))
            if moved is not None:
                location = f"{self.base_url}/repos/{moved[0]}/issues/{moved[1]}"
                body = {"message": "Moved Permanently", "url": location}
                return Reply(301, body, headers={"Location": location, **self._quota()})
            return Reply(404, {"message": "Not Found", "documentation_url": DOCS})
        if request.method == "GET":
            return Reply(200, self.issues[found], headers=self._quota())
        if self.read_only:
            return NO_PERMISSION
        if not isinstance(body, dict):
            return Reply(400, {"message": "Problems parsing JSON", "documentation_url": DOCS})
        return self._update(found, body)

    def _update(self, issue_id: int, body: dict[str, Any]) -> Reply:
        """Apply an "Update an issue" body to `issue_id`, or refuse it as GitHub does."""
        state, reason = body.get("state"), body.get("state_reason")
        if state is not None and state not in ("open", "closed"):
            return _invalid("state", state)
        if reason not in STATE_REASONS:
            return _invalid("state_reason", reason)
        assignees = body.get("assignees")
        if assignees is not None:
            if not isinstance(assignees, list):
                return _invalid("assignees", assignees)
            for login in assignees:
                if not isinstance(login, str) or login.lower() not in self.assignable:
                    return _invalid("assignees", login)
        now = stamp(self.clock.now())
        with self.lock:
            issue = self.issues[issue_id]
            if state is not None and state != issue["state"]:
                issue["state"] = state
                if state == "closed":
                    issue["state_reason"] = (
                        reason if reason not in (None, "reopened") else "completed"
                    )
                    issue["closed_at"] = now
                else:
                    issue["state_reason"] = "reopened"
                    issue["closed_at"] = None
            if assignees is not None:
                users = [{"login": login, "id": 20_000 + len(login)} for login in assignees]
                issue["assignees"] = users
                issue["assignee"] = users[0] if users else None
            issue["updated_at"] = now
            answer = dict(issue)
        return Reply(200, answer, headers=self._quota())

    def _authorized(self, header: str) -> bool:
        if header in (f"Bearer {self.token}", f"token {self.token}"):
            return True
        scheme, _, token = header.partition(" ")
        return scheme in ("Bearer", "token") and self.app is not None and self.app.valid(token)

    def _access_token(self, installation_id: int, request: Request) -> Reply:
        """`POST /app/installations/{id}/access_tokens`: a JWT in, an installation token out."""
        app = self.app
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if app is None or scheme != "Bearer":
            return _unauthorized("A JSON web token could not be decoded")
        try:
            claims = jwt.decode(
                token,
                app.public_key,
                algorithms=["RS256"],
                options={"require": ["iat", "exp", "iss"], "verify_exp": False},
            )
        except jwt.InvalidTokenError:
            return _unauthorized("A JSON web token could not be decoded")
        now = time.time()
        if not isinstance(claims["iat"], int) or claims["iat"] > now:
            return _unauthorized(
                "'Issued at' claim ('iat') must be an Integer representing the time that the "
                "assertion was issued"
            )
        if not isinstance(claims["exp"], int) or claims["exp"] <= now:
            return _unauthorized(
                "'Expiration time' claim ('exp') must be a numeric value representing the "
                "future time at which the assertion expires"
            )
        if claims["exp"] > now + 600:
            return _unauthorized("'Expiration time' claim ('exp') is too far in the future")
        if str(claims["iss"]) not in (str(app.app_id), app.client_id):
            return _unauthorized("Integration not found")  # no app has this key and issuer
        if installation_id != app.installation_id:
            return Reply(404, {"message": "Not Found", "documentation_url": DOCS})
        minted = f"ghs_{secrets.token_hex(18)}"
        with self.lock:
            app.jwts.append(claims)
            app.tokens[minted] = time.monotonic() + app.token_lifetime
        # Whole seconds, rounded down: never later than the token really expires.
        expires_at = dt.datetime.fromtimestamp(math.floor(now + app.token_lifetime), dt.UTC)
        return Reply(
            201,
            {
                "token": minted,
                "expires_at": stamp(expires_at),
                "permissions": {"issues": "read", "metadata": "read"},
                "repository_selection": "selected",
            },
        )

    def _moved(self, request: Request) -> Reply:
        """GitHub's answer to a former name: the same request, under the repository's id."""
        self.quota_used += 1
        query = urlencode([(k, v) for k, values in request.query.items() for v in values])
        location = f"{self.base_url}{self.id_issues_path}" + (f"?{query}" if query else "")
        body = {"message": "Moved Permanently", "url": location}
        body["documentation_url"] = FOLLOW_REDIRECTS
        return Reply(301, body, headers={"Location": location, **self._quota()})

    def _etag(self, body: Any) -> str:
        text = f"{self.token}:{json.dumps(body, sort_keys=True)}"
        digest = hashlib.blake2b(text.encode(), digest_size=16)
        return f'W/"{digest.hexdigest()}"'

    def _links(self, request: Request, page: int, pages: int) -> str:
        query = {name: values[-1] for name, values in request.query.items()}

        def link(number: int, rel: str) -> str:
            params = urlencode({**query, "page": number})
            return f'<{self.base_url}{request.path}?{params}>; rel="{rel}"'

        links = []
        if page < pages:
            links += [link(page + 1, "next"), link(pages, "last")]
        if page > 1:
            links += [link(1, "first"), link(page - 1, "prev")]
        return ", ".join(links)

    def _cursor_link(self, request: Request, field: str, body: list[dict[str, Any]]) -> str:
        query = {name: values[-1] for name, values in request.query.items() if name != "page"}
        last = body[-1]
        key = json.dumps([last[field], last["id"]], separators=(",", ":"))
        cursor = base64.b64encode(f"cursor:v2:{key}".encode()).decode()
        params = urlencode({**query, "after": cursor})
        return f'<{self.base_url}{request.path}?{params}>; rel="next"'

    def _quota(self) -> dict[str, str]:
        return {
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": str(5000 - self.quota_used),
            "x-ratelimit-used": str(self.quota_used),
            "x-ratelimit-reset": str(int(time.time()) + 3600),
            "x-ratelimit-resource": "core",
        }


def _position(cursor: str) -> tuple[str, int]:
    """The sort key an `after=` cursor carries; ValueError when it isn't one of ours."""
    try:
        text = base64.b64decode(cursor, validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        raise ValueError(cursor) from None
    if not text.startswith("cursor:v2:"):
        raise ValueError(cursor)
    stamp_, issue_id = json.loads(text.removeprefix("cursor:v2:"))
    return str(stamp_), int(issue_id)


def _cursor(issue: dict[str, Any], by: str) -> str:
    key = json.dumps([issue[by], issue["id"]], separators=(",", ":"))
    return base64.b64encode(f"cursor:v2:{key}".encode()).decode()


def _enum(value: Any) -> str | None:
    return value.name if isinstance(value, Enum) else value if isinstance(value, str) else None


def _undefined(field: Field, type_name: str, path: list[str]) -> dict[str, Any]:
    """GitHub's validation error for a field its schema lacks (the query does not run)."""
    return {
        "path": path,
        "extensions": {"code": "undefinedField", "typeName": type_name, "fieldName": field.name},
        "locations": [{"line": 1, "column": 1}],
        "message": f"Field '{field.name}' doesn't exist on type '{type_name}'",
    }


def _gone(message: str) -> Reply:
    return Reply(410, {"message": message, "documentation_url": UPDATE_DOCS, "status": "410"})


def _invalid(field: str, value: Any) -> Reply:
    """GitHub's 422 for a value it won't take in an issue's `field`."""
    error = {"value": value, "resource": "Issue", "field": field, "code": "invalid"}
    return Reply(
        422,
        {
            "message": "Validation Failed",
            "errors": [error],
            "documentation_url": UPDATE_DOCS,
            "status": "422",
        },
    )


def _unauthorized(message: str) -> Reply:
    return Reply(401, {"message": message, "documentation_url": DOCS, "status": "401"})
