"""A fake GitHub `GET /repos/{owner}/{repo}/issues`, as GitHub's REST docs describe it.

`state` defaults to open; `sort` (created, updated) and `direction`;
`since` filters on `updated_at`, whole seconds, inclusive; `per_page`
(default 30, at most 100) and `page`, with a `Link` header carrying next,
prev, first and last; pull requests mixed in with a `pull_request` key;
`Authorization: Bearer` (or `token`); weak ETags per token and page, and a
304 for a matching `If-None-Match` that costs no quota; `x-ratelimit-*`
headers on every answer. Deleted issues simply vanish.

A renamed or transferred repository (`rename`) answers its former names as
GitHub does ("Follow redirects" in GitHub's REST best practices): `301 Moved
Permanently`, `Location` = the same request under `/repositories/{id}`, the
query kept, and a JSON body repeating it; the repository is served under
that path too, and its `Link` pages point there.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import time
from typing import Any
from urllib.parse import urlencode

from fakes import FakeApi, Reply, Request

DOCS = "https://docs.github.com/rest"
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

NO_PERMISSION = Reply(
    403,
    {"message": "Resource not accessible by personal access token", "documentation_url": DOCS},
    headers={"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "4990"},
)


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
        **fields: Any,
    ) -> dict[str, Any]:
        number = issue_id + 1000 if number is None else number
        html = f"https://github.com/{self.repository}/{'pull' if pull_request else 'issues'}"
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
        return issue

    def touch(self, issue_id: int, updated: dt.datetime, **fields: Any) -> None:
        with self.lock:
            self.issues[issue_id].update(fields, updated_at=stamp(updated))

    def route(self, request: Request) -> Reply:
        former = {f"/repos/{name}/issues" for name in self.former_names}
        if request.path not in (self.issues_path, self.id_issues_path, *former):
            return Reply(404, {"message": "Not Found", "documentation_url": DOCS})
        if request.headers.get("authorization") not in (
            f"Bearer {self.token}",
            f"token {self.token}",
        ):
            return Reply(401, {"message": "Bad credentials", "documentation_url": DOCS})
        if request.path in former:
            return self._moved(request)
        issues = list(self.issues.values())
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
        page = int(request.param("page", "1") or 1)
        body = issues[(page - 1) * per_page : page * per_page]
        pages = max(1, math.ceil(len(issues) / per_page))
        headers = {"ETag": self._etag(body), **self._quota()}
        links = self._links(request, page, pages)
        if links:
            headers["Link"] = links
        if request.headers.get("if-none-match") == headers["ETag"]:
            return Reply(304, raw=b"", headers=headers)
        self.quota_used += 1
        return Reply(200, body, headers={**headers, **self._quota()})

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

    def _quota(self) -> dict[str, str]:
        return {
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": str(5000 - self.quota_used),
            "x-ratelimit-used": str(self.quota_used),
            "x-ratelimit-reset": str(int(time.time()) + 3600),
            "x-ratelimit-resource": "core",
        }
