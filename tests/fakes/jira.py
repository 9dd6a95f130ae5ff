"""A fake Jira Cloud issue search, as Atlassian's REST v3 docs describe it.

`GET /rest/api/3/search/jql` with `jql`, `fields`, `maxResults` and an opaque
`nextPageToken` tied to its query; answers `issues`, `isLast` and, only when
more follow, `nextPageToken` (no `total`). Pages can come back shorter than
`maxResults` mid-stream (`page_cap`, and 100 at most unless only ids are
asked for). A bare `ORDER BY` (an unbounded query) is refused. JQL is parsed
for what a sync sends: `project = X`, `project in (A, B)`, `key`/`id`,
`updated`/`created` against an epoch-milliseconds number or a date string,
`AND`/`OR`/`NOT`, parentheses, `ORDER BY updated ASC, id ASC` (`id` is an alias
of the issue key, as in JQL). A date string has minute precision and is read
in the API user's profile time zone (`profile_tz`); an epoch number is taken
at minute precision too, the pessimistic reading of the docs. Timestamps come
back in the profile zone with a colon-less offset (`...T01:04:00.000-0800`).
Basic `email:api_token` or 401; the removed `/rest/api/{2,3}/search` answers
410 Gone; deleted issues vanish.

Comments: asked for in `fields` (`comment`), an issue carries
`{"comments": [...], "maxResults", "total", "startAt": 0}`, oldest first, cut to
the first `comments_in_search` (the search caps the list; `total` says how many
there are). `GET /rest/api/3/issue/{idOrKey}/comment` pages them all
(`startAt`, `maxResults`, `orderBy=created|-created`). A comment is `{"id",
"author": {"accountId", "displayName"}, "body": <ADF document>, "created",
"updated", "jsdPublic"}` (`jsdPublic` on Service Management issues only;
false: an internal note), with `visibility` when restricted to a role or group.
Adding one (`comment`) is an edit: the issue's `updated` moves.

Search is eventually consistent, as Atlassian says of it: a write reaches the
search index `index_lag` after its `updated` stamp, by the fake's clock (`now`,
the real time unless a test sets it). Until then search doesn't find a new
issue and shows an edited one as it was. Limits answer as Atlassian documents
them: a 429 with `Retry-After` (seconds), `X-RateLimit-Reset` (the request's
time plus that wait, `yyyy-MM-ddTHH:mmZ`: whole minutes), `RateLimit-Reason`;
a 503 when a resource limit is reached, with or without `Retry-After`.

Users (`add_user`): `GET /rest/api/3/user/bulk?accountId=a&accountId=b`
answers a page (`startAt`, `maxResults` default 10, `total`, `isLast`,
`values`) of the users it knows among the ids asked; an unknown id is left
out. A user's `emailAddress` is there only when their profile visibility
settings show it to the caller: a hidden one is absent, not null. An issue's
`assignee` given as an account id is rendered as that user, the same way.

Writes (write-back). Jira has no "set status": an issue moves by a workflow
transition. `GET /rest/api/3/issue/{idOrKey}/transitions` lists those the
caller may make from the issue's current status, each `{"id", "name", "to":
{"id", "name", "statusCategory": {"key": "new"|"indeterminate"|"done"}},
"hasScreen", "isGlobal", "isInitial", "isAvailable", "isConditional"}`, and
`GET /rest/api/3/issue/{idOrKey}?fields=...&expand=transitions` carries the
same list beside the fields. `workflow` says which transitions leave each
status (`DEFAULT_WORKFLOW`, a test may change it). `POST .../transitions`
with `{"transition": {"id": "..."}}` answers 204 and moves the issue; an id
not available from the current status, or a transition whose screen has a
required field the request doesn't fill (`require_on_transition`), is a 400
with Jira's error body `{"errorMessages": [...], "errors": {"field":
"message"}}`. `PUT .../assignee` with `{"accountId": "..."}` (null:
unassigned) answers 204; an account that is no assignable user is a 400. A
missing issue is a 404 with "Issue does not exist or you do not have
permission to see it." `GET /rest/api/3/status` lists every status with its
category. Each write is an edit (`updated` moves, on the fake's clock) and is
kept in `writes` as (method, issue id, body).

Sources (Atlassian's Jira Cloud REST v3 reference, developer.atlassian.com/
cloud/jira/platform/rest/v3/): api-group-issues (#api-rest-api-3-issue-
issueidorkey-transitions-get / -post: 204; 400 "no transition is specified,
the user does not have permission to transition the issue, a field that isn't
included on the transition screen ..., the request is invalid for any other
reason"; 404 "the issue is not found or the user does not have permission to
view it"; #api-rest-api-3-issue-issueidorkey-assignee-put: 204; 400 "the user
is not found"; 403; 404 "the issue is not found"; `accountId` null
unassigns; #api-rest-api-3-issue-issueidorkey-get: `expand=transitions`
"Returns all possible transitions for the issue"), api-group-workflow-statuses
(#api-rest-api-3-status-get), and the error-body shape
`{"errorMessages": [], "errors": {"customfield_12312": "... is required."}}`
as Jira answers a transition whose screen field is required
(github.com/textfuel/lazyjira/issues/111).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import functools
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from fakes import FakeApi, Reply, Request

SEARCH = "/rest/api/3/search/jql"
USER_BULK = "/rest/api/3/user/bulk"
STATUS_LIST = "/rest/api/3/status"
REMOVED = ("/rest/api/3/search", "/rest/api/2/search", "/rest/api/latest/search")
ID_ONLY = {"id", "key"}
_ISSUE = re.compile(r"/rest/api/3/issue/([^/]+)(?:/(comment|transitions|assignee))?")
CATEGORIES = {
    "To Do": "new",
    "In Progress": "indeterminate",
    "In Review": "indeterminate",  # a workflow's own name, in a built-in category
    "Done": "done",
    "Won't Do": "done",
}
STATUS_IDS = {"To Do": "10000", "In Progress": "3", "In Review": "10001", "Done": "10002"}
STATUS_IDS["Won't Do"] = "10003"
DEFAULT_WORKFLOW: dict[str, list[tuple[str, str, str]]] = {
    "To Do": [("11", "Start progress", "In Progress"), ("51", "Done", "Done")],
    "In Progress": [
        ("21", "Review", "In Review"),
        ("51", "Done", "Done"),
        ("61", "Stop progress", "To Do"),
    ],
    "In Review": [("31", "Approve", "Done"), ("41", "Rework", "In Progress")],
    "Done": [("71", "Reopen", "To Do"), ("81", "Mark won't do", "Won't Do")],
    "Won't Do": [("71", "Reopen", "To Do")],
}
"""From each status, the transitions (id, name, target status) the API user may make."""
NO_ISSUE = "Issue does not exist or you do not have permission to see it."


@dataclass
class FakeIssue:
    id: str
    project: str
    number: int
    updated: dt.datetime
    created: dt.datetime
    fields: dict[str, Any] = field(default_factory=dict)
    broken_updated: str | None = None
    """Sent instead of `updated` when set: a value no client can read."""
    indexed_at: dt.datetime | None = None
    """When search starts to see this version; None: at once."""
    stale: FakeIssue | None = None
    """The version search shows until then (None: search doesn't find the issue yet)."""
    comments: list[dict[str, Any]] = field(default_factory=list)
    """Its comments as the API shows them, oldest first."""

    @property
    def key(self) -> str:
        return f"{self.project}-{self.number}"


class JqlError(ValueError):
    """The query is not valid JQL (or not what this fake understands): a 400."""


Predicate = Callable[[FakeIssue], bool]


class FakeJira(FakeApi):
    def __init__(self, email: str, api_token: str, profile_tz: str = "America/Los_Angeles") -> None:
        super().__init__()
        self.email, self.api_token = email, api_token
        self.profile_tz = ZoneInfo(profile_tz)
        self.issues: dict[str, FakeIssue] = {}
        self.page_cap: int | None = None
        """Return at most this many issues a page, whatever `maxResults` says."""
        self.index_lag = dt.timedelta(0)
        """How long after its `updated` stamp a write becomes visible to search."""
        self.now: dt.datetime | None = None
        """The fake's clock for the index; None for the real time."""
        self.users: dict[str, dict[str, Any]] = {}
        self.hidden_emails: set[str] = set()
        """Account ids whose profile visibility hides their email from the API user."""
        self.user_page_cap: int | None = None
        """Return at most this many users a page of `user/bulk`, whatever `maxResults` says."""
        self.comments_in_search = 20
        """How many of an issue's comments the search's `comment` field holds at most."""
        self.hidden_fields: set[str] = set()
        """Fields a field configuration hides: left out of every issue, even when asked for."""
        self.workflow = {status: list(moves) for status, moves in DEFAULT_WORKFLOW.items()}
        """From each status, the transitions (id, name, target) the API user may make."""
        self.required_on_transition: dict[str, dict[str, str]] = {}
        """By transition id: the screen's required fields and Jira's message for each."""
        self.writes: list[tuple[str, str, Any]] = []
        """Each write received: (method, issue id, body), refused ones included."""
        self.unassignable: set[str] = set()
        """Known account ids that may not be assigned issues (no Assignable permission)."""

    # Test controls

    def reset(self, profile_tz: str = "America/Los_Angeles") -> None:
        """Forget every issue, request and scripted fault (one server serves many tests)."""
        with self.lock:
            self.issues.clear()
            self.requests.clear()
            self.faults.clear()
            self.page_cap = None
            self.profile_tz = ZoneInfo(profile_tz)
            self.index_lag = dt.timedelta(0)
            self.now = None
            self.users.clear()
            self.hidden_emails.clear()
            self.user_page_cap = None
            self.comments_in_search = 20
            self.hidden_fields = set()
            self.workflow = {status: list(moves) for status, moves in DEFAULT_WORKFLOW.items()}
            self.required_on_transition = {}
            self.writes = []
            self.unassignable = set()

    def require_on_transition(self, transition_id: str, field: str, message: str) -> None:
        """Make `field` required on the screen of transition `transition_id`."""
        with self.lock:
            self.required_on_transition.setdefault(transition_id, {})[field] = message

    def delete(self, issue_id: int | str) -> None:
        """Delete an issue: it vanishes from search and its own URL answers 404."""
        with self.lock:
            del self.issues[str(issue_id)]

    def add_user(
        self,
        account_id: str,
        name: str,
        email: str,
        *,
        hidden: bool = False,
        active: bool = True,
        account_type: str = "atlassian",
    ) -> None:
        """An Atlassian account; `hidden`: its profile visibility hides the email."""
        with self.lock:
            self.users[account_id] = {
                "accountId": account_id,
                "accountType": account_type,
                "displayName": name,
                "active": active,
                "timeZone": "Europe/Paris",
                "locale": "en_US",
                "email": email,
            }
            if hidden:
                self.hidden_emails.add(account_id)
            else:
                self.hidden_emails.discard(account_id)

    def _user(self, account_id: str) -> dict[str, Any]:
        """A user as the API shows it to the caller: the email only where visible."""
        stored = self.users[account_id]
        user = {
            "self": f"{self.base_url}/rest/api/3/user?accountId={account_id}",
            "accountId": account_id,
            "accountType": stored["accountType"],
            "avatarUrls": {"48x48": f"https://avatar.example/{account_id}/48"},
            "displayName": stored["displayName"],
            "active": stored["active"],
            "timeZone": stored["timeZone"],
            "locale": stored["locale"],
        }
        if account_id not in self.hidden_emails:
            user["emailAddress"] = stored["email"]
        return user

    def add(
        self, issue_id: int, updated: dt.datetime, project: str = "OPS", **fields: Any
    ) -> FakeIssue:
        issue = FakeIssue(
            str(issue_id),
            project,
            issue_id,
            updated,
            updated - dt.timedelta(hours=1),
            {
                "summary": f"Issue {issue_id}",
                "status": "To Do",
                "issuetype": "Task",
                "priority": "Medium",
                "labels": [],
                "duedate": None,
                "assignee": None,
                "reporter": "Ana Ops",
                **fields,
            },
        )
        with self.lock:
            if self.index_lag:
                issue.indexed_at = updated + self.index_lag
            self.issues[issue.id] = issue
        return issue

    def touch(self, issue_id: int | str, updated: dt.datetime, **fields: Any) -> None:
        with self.lock:
            issue = self.issues[str(issue_id)]
            if self.index_lag:
                shown = self._searchable(issue, self._now())
                issue.stale = dataclasses.replace(shown) if shown is issue else shown
                issue.indexed_at = updated + self.index_lag
            issue.fields = {**issue.fields, **fields}
            issue.updated = updated

    def comment(
        self,
        issue_id: int | str,
        text: str,
        created: dt.datetime,
        *,
        author: str = "Ana Ops",
        public: bool | None = None,
        visibility: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Add a comment to an issue at `created` (an edit: `updated` moves there too).

        `public`: Service Management's `jsdPublic`, left out when None (a software project).
        """
        with self.lock:
            issue = self.issues[str(issue_id)]
            number = 10000 + sum(len(i.comments) for i in self.issues.values())
            stamp = self._stamp(created)
            body = {
                "type": "doc",
                "version": 1,
                "content": [
                    {"type": "paragraph", "content": [{"type": "text", "text": line}]}
                    for line in text.split("\n")
                ],
            }
            shown: dict[str, Any] = {
                "self": f"{self.base_url}/rest/api/3/issue/{issue.id}/comment/{number}",
                "id": str(number),
                "author": {"accountId": f"acct-{author.lower()}", "displayName": author},
                "body": body,
                "created": stamp,
                "updated": stamp,
            }
            if public is not None:
                shown["jsdPublic"] = public
            if visibility is not None:
                shown["visibility"] = visibility
            issue.comments.append(shown)
        self.touch(issue_id, created)
        return shown

    def move(self, issue_id: int | str, project: str, number: int, updated: dt.datetime) -> None:
        """Move an issue to another project: its key changes, its id does not."""
        with self.lock:
            issue = self.issues[str(issue_id)]
            issue.project, issue.number, issue.updated = project, number, updated

    def rate_limited(self, wait: int) -> Reply:
        """A burst limit's 429, headers as Atlassian's rate-limiting page lists them."""
        reset = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=wait)
        return Reply(
            429,
            {"errorMessages": ["Rate limit exceeded."]},
            headers={
                "Retry-After": str(wait),
                "X-RateLimit-Limit": "100",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": reset.strftime("%Y-%m-%dT%H:%MZ"),
                "RateLimit-Reason": "jira-burst-based",
            },
        )

    @staticmethod
    def unavailable(wait: int | None = None) -> Reply:
        """A 503 for a resource limit reached: not a rate limit, `Retry-After` only sometimes."""
        return Reply(
            503,
            {"errorMessages": ["Service Unavailable"]},
            headers={} if wait is None else {"Retry-After": str(wait)},
        )

    def _now(self) -> dt.datetime:
        return self.now or dt.datetime.now(dt.UTC)

    @staticmethod
    def _searchable(issue: FakeIssue, now: dt.datetime) -> FakeIssue | None:
        """The version of `issue` the search index holds at `now`, if any."""
        if issue.indexed_at is None or issue.indexed_at <= now:
            return issue
        return issue.stale

    # Serving

    def route(self, request: Request) -> Reply:
        if request.path in REMOVED:
            return Reply(
                410,
                {
                    "errorMessages": [
                        "This API has been removed; migrate to /rest/api/3/search/jql "
                        "(see CHANGE-2046 in the developer changelog)."
                    ]
                },
            )
        issue_path = _ISSUE.fullmatch(request.path)
        if request.path not in (SEARCH, USER_BULK, STATUS_LIST) and issue_path is None:
            return Reply(404, {"errorMessages": ["Not found"]})
        allowed = {None: ("GET",), "comment": ("GET",), "transitions": ("GET", "POST")}
        allowed["assignee"] = ("PUT",)
        methods = allowed[issue_path.group(2)] if issue_path is not None else ("GET",)
        if request.method not in methods:
            return Reply(405, {"errorMessages": ["Method not allowed"]})
        expected = base64.b64encode(f"{self.email}:{self.api_token}".encode()).decode()
        if request.headers.get("authorization") != f"Basic {expected}":
            return Reply(401, {"errorMessages": ["You are not authenticated."]})
        if request.path == USER_BULK:
            return self._users(request)
        if request.path == STATUS_LIST:
            return Reply(200, [self._status(name) for name in CATEGORIES])
        if issue_path is not None:
            ref, part = issue_path.group(1), issue_path.group(2)
            if part == "comment":
                return self._comments(ref, request)
            if part is None:
                return self._issue(ref, request)
            if part == "assignee":
                return self._assign(ref, request)
            if request.method == "POST":
                return self._transition(ref, request)
            with self.lock:
                found = self._find(ref)
                if found is None:
                    return Reply(404, {"errorMessages": [NO_ISSUE], "errors": {}})
                return Reply(200, {"transitions": self._transitions(found)})
        jql = request.param("jql") or ""
        try:
            where, order = parse_jql(jql, self.profile_tz)
        except JqlError as exc:
            return Reply(400, {"errorMessages": [str(exc)], "errors": {}})
        order = order or [("key", True)]  # no ORDER BY: newest key first
        if where is None:
            return Reply(
                400,
                {"errorMessages": ["Unbounded JQL queries are not allowed here."], "errors": {}},
            )
        fields = [f for v in request.query.get("fields", []) for f in v.split(",") if f]
        limit = int(request.param("maxResults") or 50)
        limit = min(limit, 5000 if set(fields) <= ID_ONLY else 100, self.page_cap or limit)
        digest = hashlib.sha256(jql.encode()).hexdigest()[:16]
        with self.lock:
            now = self._now()
            indexed = (self._searchable(i, now) for i in self.issues.values())
            matching = sorted(
                (i for i in indexed if i is not None and where(i)),
                key=lambda i: _sort_key(i, order),
            )
            token = request.param("nextPageToken")
            if token:
                try:
                    state = json.loads(base64.urlsafe_b64decode(token))
                except ValueError:
                    state = {}
                if state.get("q") != digest:
                    return Reply(400, {"errorMessages": ["The next page token is invalid."]})
                after = _comparable(state["after"], order)
                matching = [i for i in matching if _sort_key(i, order) > after]
            page = matching[:limit]
            body: dict[str, Any] = {"issues": [self._render(i, fields) for i in page]}
            if len(matching) > len(page):
                position = {"q": digest, "after": _sort_values(page[-1], order)}
                body["nextPageToken"] = base64.urlsafe_b64encode(
                    json.dumps(position).encode()
                ).decode()
                body["isLast"] = False
            else:
                body["isLast"] = True
        return Reply(200, body)

    def _users(self, request: Request) -> Reply:
        """`GET /rest/api/3/user/bulk`: a page of the known users among the ids asked."""
        asked = request.query.get("accountId", [])
        if not asked:
            return Reply(400, {"errorMessages": ["accountId must be provided."], "errors": {}})
        try:
            start = int(request.param("startAt") or 0)
            limit = int(request.param("maxResults") or 10)
        except ValueError:
            return Reply(400, {"errorMessages": ["startAt and maxResults are numbers."]})
        limit = min(limit, self.user_page_cap or limit)
        with self.lock:
            known = [self._user(a) for a in dict.fromkeys(asked) if a in self.users]
        page = known[start : start + limit]
        return Reply(
            200,
            {
                "self": f"{self.base_url}{USER_BULK}",
                "maxResults": limit,
                "startAt": start,
                "total": len(known),
                "isLast": start + len(page) >= len(known),
                "values": page,
            },
        )

    def _find(self, ref: str) -> FakeIssue | None:
        """The issue whose id or key is `ref` (call with the lock held)."""
        return next((i for i in self.issues.values() if ref in (i.id, i.key)), None)

    def _status(self, name: str) -> dict[str, Any]:
        """A status as the API shows it (`StatusDetails`), its category's key included."""
        category = CATEGORIES[name]
        return {
            "self": f"{self.base_url}/rest/api/3/status/{STATUS_IDS[name]}",
            "id": STATUS_IDS[name],
            "name": name,
            "untranslatedName": name,
            "statusCategory": {
                "id": {"new": 2, "indeterminate": 4, "done": 3}[category],
                "key": category,
                "name": {"new": "To Do", "indeterminate": "In Progress", "done": "Done"}[category],
            },
        }

    def _transitions(self, issue: FakeIssue) -> list[dict[str, Any]]:
        """The transitions the API user may make from the issue's status (lock held)."""
        return [
            {
                "id": transition_id,
                "name": name,
                "to": self._status(target),
                "hasScreen": transition_id in self.required_on_transition,
                "isGlobal": False,
                "isInitial": False,
                "isAvailable": True,
                "isConditional": False,
                "isLooped": False,
            }
            for transition_id, name, target in self.workflow.get(issue.fields["status"], [])
        ]

    def _issue(self, ref: str, request: Request) -> Reply:
        """`GET /rest/api/3/issue/{idOrKey}`: its `fields`; `expand=transitions` adds those."""
        fields = [f for v in request.query.get("fields", []) for f in v.split(",") if f]
        expand = {e for v in request.query.get("expand", []) for e in v.split(",") if e}
        with self.lock:
            issue = self._find(ref)
            if issue is None:
                return Reply(404, {"errorMessages": [NO_ISSUE], "errors": {}})
            body = self._render(issue, fields or ["*navigable"])
            if "transitions" in expand:
                body["transitions"] = self._transitions(issue)
        return Reply(200, body)

    def _transition(self, ref: str, request: Request) -> Reply:
        """`POST .../transitions`: 204 and the issue moved, or Jira's 400 saying why not."""
        body = request.json()
        with self.lock:
            issue = self._find(ref)
            self.writes.append(("POST", issue.id if issue else ref, body))
            if issue is None:
                return Reply(404, {"errorMessages": [NO_ISSUE], "errors": {}})
            asked = body.get("transition") if isinstance(body, dict) else None
            transition_id = asked.get("id") if isinstance(asked, dict) else None
            if transition_id is None:
                return Reply(
                    400, {"errorMessages": ["Missing 'transition' identifier"], "errors": {}}
                )
            moves = {t: target for t, _, target in self.workflow.get(issue.fields["status"], [])}
            if str(transition_id) not in moves:
                message = f"Transition id '{transition_id}' is not valid for this issue."
                return Reply(400, {"errorMessages": [message], "errors": {}})
            given = body.get("fields") if isinstance(body.get("fields"), dict) else {}
            missing = {
                field: message
                for field, message in self.required_on_transition.get(
                    str(transition_id), {}
                ).items()
                if field not in given
            }
            if missing:
                return Reply(400, {"errorMessages": [], "errors": missing})
            target = moves[str(transition_id)]
        self.touch(issue.id, self._now(), status=target)
        return Reply(204, raw=b"")

    def _assign(self, ref: str, request: Request) -> Reply:
        """`PUT .../assignee`: 204 and the issue (un)assigned, or Jira's refusal."""
        body = request.json()
        with self.lock:
            issue = self._find(ref)
            self.writes.append(("PUT", issue.id if issue else ref, body))
            if issue is None:
                return Reply(404, {"errorMessages": [NO_ISSUE], "errors": {}})
            if not isinstance(body, dict) or "accountId" not in body:
                return Reply(400, {"errorMessages": ["accountId must be provided."], "errors": {}})
            account = body["accountId"]
            if account is not None and (account not in self.users or account in self.unassignable):
                message = f"User '{account}' cannot be assigned issues."
                return Reply(400, {"errorMessages": [], "errors": {"assignee": message}})
        self.touch(issue.id, self._now(), assignee=account)
        return Reply(204, raw=b"")

    def _comments(self, issue_ref: str, request: Request) -> Reply:
        """`GET /rest/api/3/issue/{idOrKey}/comment`: a page of the issue's comments."""
        with self.lock:
            found = [i for i in self.issues.values() if issue_ref in (i.id, i.key)]
            if not found:
                return Reply(
                    404,
                    {"errorMessages": ["Issue does not exist or you do not have permission."]},
                )
            comments = list(found[0].comments)
        if request.param("orderBy") in ("-created", "-+created"):
            comments.reverse()
        start = int(request.param("startAt") or 0)
        limit = min(int(request.param("maxResults") or 5000), 5000)
        page = comments[start : start + limit]
        body = {"startAt": start, "maxResults": limit, "total": len(comments), "comments": page}
        return Reply(200, body)

    def _render(self, issue: FakeIssue, fields: list[str]) -> dict[str, Any]:
        values = {
            "updated": issue.broken_updated or self._stamp(issue.updated),
            "created": self._stamp(issue.created),
            "summary": issue.fields["summary"],
            "status": self._status(issue.fields["status"]),
            "issuetype": {"name": issue.fields["issuetype"]},
            "priority": {"name": issue.fields["priority"]},
            "project": {"key": issue.project, "name": issue.project.title()},
            "labels": issue.fields["labels"],
            "duedate": issue.fields["duedate"],
            "assignee": self._assignee(issue.fields["assignee"]),
            "reporter": {"displayName": issue.fields["reporter"]},
            "comment": {
                "comments": issue.comments[: self.comments_in_search],
                "self": f"{self.base_url}/rest/api/3/issue/{issue.id}/comment",
                "maxResults": self.comments_in_search,
                "total": len(issue.comments),
                "startAt": 0,
            },
        }
        wanted = set(values) if {"*all", "*navigable"} & set(fields) else set(fields)
        wanted -= self.hidden_fields
        rendered = {name: value for name, value in values.items() if name in wanted}
        return {
            "id": issue.id,
            "key": issue.key,
            "self": f"{self.base_url}/rest/api/3/issue/{issue.id}",
            "fields": rendered,
        }

    def _assignee(self, assignee: Any) -> Any:
        """An account id as that user (the email where visible); anything else as given."""
        if isinstance(assignee, str) and assignee in self.users:
            return self._user(assignee)
        return assignee

    def _stamp(self, moment: dt.datetime) -> str:
        local = moment.astimezone(self.profile_tz)
        return (
            local.strftime("%Y-%m-%dT%H:%M:%S.")
            + f"{local.microsecond // 1000:03d}"
            + (local.strftime("%z"))
        )


# JQL, as far as a sync needs it

_TOKEN = re.compile(
    r"\s*(?:(?P<str>\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*')|(?P<op>>=|<=|!=|=|>|<)"
    r"|(?P<punct>[(),])|(?P<word>[^\s(),=<>!\"']+))"
)
_DATE_FORMATS = ("%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M", "%Y-%m-%d", "%Y/%m/%d")
_KEY_FIELDS = {"key", "id", "issue", "issuekey"}
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    ">=": lambda a, b: a >= b,
    ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b,
    "<": lambda a, b: a < b,
}

Order = list[tuple[str, bool]]
"""(field, descending) pairs."""


def parse_jql(jql: str, zone: dt.tzinfo) -> tuple[Predicate | None, Order]:
    """The filter (None when there is none) and the order of `jql`; raises `JqlError`."""
    tokens = _tokens(jql)
    order: Order = []
    lowered = [t.lower() for t in tokens]
    for i in range(len(tokens) - 1):
        if lowered[i] == "order" and lowered[i + 1] == "by":
            order = _order(tokens[i + 2 :])
            tokens = tokens[:i]
            break
    if not tokens:
        return None, order
    parser = _Parser(tokens, zone)
    predicate = parser.expression()
    if parser.position != len(tokens):
        raise JqlError(f"Error in the JQL Query: unexpected {tokens[parser.position]!r}.")
    return predicate, order


def _tokens(jql: str) -> list[str]:
    tokens: list[str] = []
    position = 0
    text = jql.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise JqlError(f"Error in the JQL Query: can't read {text[position:]!r}.")
        tokens.append(match.group(match.lastgroup or "word"))
        position = match.end()
    return tokens


def _order(tokens: list[str]) -> Order:
    order: Order = []
    for part in " ".join(tokens).split(","):
        words = part.split()
        if not words or len(words) > 2:
            raise JqlError("Error in the JQL Query: bad ORDER BY clause.")
        name = words[0].lower()
        if name not in {"updated", "created", *_KEY_FIELDS}:
            raise JqlError(f"Not able to sort using field '{words[0]}'.")
        direction = words[1].lower() if len(words) == 2 else "asc"
        if direction not in ("asc", "desc"):
            raise JqlError(f"Error in the JQL Query: bad direction {words[1]!r}.")
        order.append(("key" if name in _KEY_FIELDS else name, direction == "desc"))
    return order


class _Parser:
    def __init__(self, tokens: list[str], zone: dt.tzinfo) -> None:
        self.tokens, self.zone, self.position = tokens, zone, 0

    def peek(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self) -> str:
        token = self.peek()
        if token is None:
            raise JqlError("Error in the JQL Query: the query ends too soon.")
        self.position += 1
        return token

    def keyword(self, word: str) -> bool:
        token = self.peek()
        if token is not None and token.lower() == word:
            self.position += 1
            return True
        return False

    def expression(self) -> Predicate:
        terms = [self.conjunction()]
        while self.keyword("or"):
            terms.append(self.conjunction())
        return terms[0] if len(terms) == 1 else lambda i: any(t(i) for t in terms)

    def conjunction(self) -> Predicate:
        terms = [self.term()]
        while self.keyword("and"):
            terms.append(self.term())
        return terms[0] if len(terms) == 1 else lambda i: all(t(i) for t in terms)

    def term(self) -> Predicate:
        if self.keyword("not"):
            inner = self.term()
            return lambda i: not inner(i)
        if self.peek() == "(":
            self.take()
            inner = self.expression()
            if self.take() != ")":
                raise JqlError("Error in the JQL Query: expected ')'.")
            return inner
        return self.clause()

    def clause(self) -> Predicate:
        name = self.take().lower()
        read = _reader(name)
        negate = self.keyword("not")
        if self.keyword("in"):
            wanted = {self.value(name, v) for v in self.values()}
            if name in _KEY_FIELDS:  # a key or a numeric id
                return lambda i: bool({i.key, i.id} & wanted) != negate
            return lambda i: (read(i) in wanted) != negate
        if negate:
            raise JqlError("Error in the JQL Query: expected IN after NOT.")
        op = self.take()
        if op not in _COMPARE:
            raise JqlError(f"Error in the JQL Query: unknown operator {op!r}.")
        value = self.value(name, self.take())
        compare = _COMPARE[op]
        if name in _KEY_FIELDS:
            if op not in ("=", "!="):
                raise JqlError(f"The operator '{op}' is not supported by this fake for keys.")
            return lambda i: (value in (i.key, i.id)) == (op == "=")
        if name == "labels":
            return lambda i: any(compare(label, value) for label in i.fields["labels"])
        return lambda i: compare(read(i), value)

    def values(self) -> list[str]:
        if self.take() != "(":
            raise JqlError("Error in the JQL Query: expected '(' after IN.")
        values = [self.take()]
        while self.peek() == ",":
            self.take()
            values.append(self.take())
        if self.take() != ")":
            raise JqlError("Error in the JQL Query: expected ')'.")
        return values

    def value(self, name: str, token: str) -> Any:
        text = token[1:-1] if token[:1] in ("'", '"') else token
        if name in ("updated", "created"):
            return _instant(token, text, self.zone)
        if name in _KEY_FIELDS:
            return text.upper()
        return text.casefold()


def _reader(name: str) -> Callable[[FakeIssue], Any]:
    readers: dict[str, Callable[[FakeIssue], Any]] = {
        "project": lambda i: i.project.casefold(),
        "updated": lambda i: i.updated,
        "created": lambda i: i.created,
        "status": lambda i: i.fields["status"].casefold(),
        "issuetype": lambda i: i.fields["issuetype"].casefold(),
        "type": lambda i: i.fields["issuetype"].casefold(),
        "labels": lambda i: None,
    }
    if name in _KEY_FIELDS:
        return lambda i: i.key
    if name not in readers:
        raise JqlError(f"Field '{name}' does not exist or you do not have permission to view it.")
    return readers[name]


def _instant(token: str, text: str, zone: dt.tzinfo) -> dt.datetime:
    """A date literal as an instant: epoch ms (a bare number) or a string in `zone`."""
    if token.isdigit():
        moment = dt.datetime.fromtimestamp(int(token) / 1000, dt.UTC)
        return moment.replace(second=0, microsecond=0)  # minute precision
    for layout in _DATE_FORMATS:
        try:
            return dt.datetime.strptime(text, layout).replace(tzinfo=zone)
        except ValueError:
            continue
    raise JqlError(
        f"Date value '{text}' for field is invalid. Valid formats include: "
        "'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', or a period format."
    )


# Ordering and the position a page token carries


def _sort_values(issue: FakeIssue, order: Order) -> list[Any]:
    values: list[Any] = []
    for name, _ in order:
        if name == "key":
            values.append([issue.project, issue.number])
        else:
            moment: dt.datetime = getattr(issue, name)
            values.append(int(moment.timestamp() * 1000))
    values.append(int(issue.id))  # the index's own tiebreak keeps the order total
    return values


def _comparable(values: list[Any], order: Order) -> tuple[Any, ...]:
    directions = [desc for _, desc in order] + [False]
    return tuple(
        _Desc(_frozen(v)) if desc else _frozen(v)
        for v, desc in zip(values, directions, strict=False)
    )


def _sort_key(issue: FakeIssue, order: Order) -> tuple[Any, ...]:
    return _comparable(_sort_values(issue, order), order)


def _frozen(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


@functools.total_ordering
class _Desc:
    def __init__(self, value: Any) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Desc) and self.value == other.value

    def __lt__(self, other: _Desc) -> bool:
        return bool(self.value > other.value)

    def __hash__(self) -> int:
        return hash(self.value)
