"""A fake GitLab REST API v4 (issues, users, notes), as GitLab's documentation describes it.

Sources (docs.gitlab.com, and the same pages in gitlab-org/gitlab's `doc/`):
- Issues API, https://docs.gitlab.com/api/issues/ (list project issues, list group issues)
- REST pagination, https://docs.gitlab.com/api/rest/#pagination (offset and keyset,
  "Supported resources": project issues, keyset by `updated_at`, since GitLab 18.3,
  gitlab-org/gitlab!199887)
- Rate limits, https://docs.gitlab.com/security/rate_limits/ and
  https://docs.gitlab.com/administration/settings/user_and_ip_rate_limits/ (response
  headers; the response text "Retry later"),
  https://docs.gitlab.com/administration/dedicated/user_rate_limits/ ("a 429 Too Many
  Requests HTTP status code with a plain-text response of Retry later")
- Users API, https://docs.gitlab.com/api/users/ (`public_email`; `email` for administrators)
- Notes API, https://docs.gitlab.com/api/notes/ (issue notes, `system` notes)
- Moving issues, https://docs.gitlab.com/user/project/issues/managing_issues/#move-an-issue
- Keyset refusal and the offset limit: `API::Helpers::Pagination` and
  `API::Helpers::PaginationStrategies` in gitlab-org/gitlab (405, `{"error": ...}`)

What it serves:
- `GET /api/v4/projects/:id/issues` and `GET /api/v4/groups/:id/issues`; `:id` is the
  numeric id or the URL-encoded path (`acme%2Fhelpdesk`). A group lists the issues of
  every project under it, subgroups included. `state` (`opened`, `closed`, default all),
  `scope` (`all` by default here), `updated_after` (ISO 8601, "on or after": inclusive;
  an unreadable one is a 400 `{"error": "updated_after is invalid"}`), `order_by`
  (`created_at` default, `updated_at`, `id`) with `sort` (`desc` default), ties broken by
  `id` in the same direction.
- Offset pagination: `page` (default 1), `per_page` (default 20, at most 100); headers
  `x-page`, `x-per-page`, `x-next-page` (empty on the last page), `x-prev-page`,
  `x-total`, `x-total-pages`, and `Link` with prev/next/first/last. Past 10,000 records
  `x-total`, `x-total-pages` and `rel="last"` are left out, as the docs say. An offset
  past `max_offset` (50,000 by default, an instance limit) is refused with 405 and an
  `error` naming keyset pagination.
- Keyset pagination, project issues only: `pagination=keyset` with `order_by` in
  `created_at`, `updated_at`, `id` and a `sort`; the `Link` header's next page carries an
  opaque `cursor` (base64 of the last record's sort value and id); a full page always
  links a next one, so the end can be an empty page with no `Link`, as the docs describe.
  Asked of a group, or of a project on a GitLab before 18.3 (`keyset_issues = False`),
  keyset is a 405 `{"error": "Keyset pagination is not yet available for this type of
  request"}`, as GitLab's `API::Helpers::Pagination#paginate` answers a resource it has
  no keyset order for.
- Timestamps are ISO 8601 UTC with milliseconds and `Z` (`2016-01-04T15:31:51.081Z`).
- Auth: `PRIVATE-TOKEN: <token>` (personal, project or group access token) or
  `Authorization: Bearer <token>` (OAuth); anything else is a 401
  `{"message": "401 Unauthorized"}`. An unknown project or group is a 404
  `{"message": "404 Project Not Found"}` / `"404 Group Not Found"`.
- Rate limits (`rate_limited`): 429 with the body "Retry later" (text/plain) and the
  documented headers `RateLimit-Name`, `RateLimit-Limit`, `RateLimit-Observed`,
  `RateLimit-Remaining`, `RateLimit-Reset` (Unix seconds), `RateLimit-ResetTime`
  (an HTTP date) and `Retry-After` (seconds).
- Deletion: a deleted issue vanishes from every listing; nothing says it was there.
  Moving an issue (`move`) closes it and copies it to the target project: a new issue
  with a new `id` and `iid`; the original stays, closed, its `moved_to_id` naming the copy.
- Users (`add_user`): `GET /api/v4/users/:id` answers the profile; `public_email` is the
  address the user chose to show, "" when none; `email` only for an administrator's token
  (`admin_tokens`). An unknown id is a 404 `{"message": "404 User Not Found"}`.
- Notes (`note`): `GET /api/v4/projects/:id/issues/:iid/notes`, `sort` (`desc` default)
  and `order_by` (`created_at` default), offset pagination as above; system notes
  (`system: true`, "changed the description") are listed among the users' own. A note
  adds to the issue's `user_notes_count` (a system note does not) and moves its
  `updated_at`.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import email.utils
import json
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlencode

from fakes import FakeApi, Reply, Request

API = "/api/v4"
DEFAULT_PER_PAGE = 20
MAX_PER_PAGE = 100
MAX_OFFSET = 50_000
"""The instance limit on offset pagination (administration/instance_limits)."""
COUNTED_RECORDS = 10_000
"""Past this many records, no `x-total`, `x-total-pages` or `rel="last"`."""
KEYSET_ORDERS = ("created_at", "updated_at", "id")
RETRY_LATER = b"Retry later\n"

_LISTING = re.compile(r"^/api/v4/(projects|groups)/([^/]+)/issues$")
_NOTES = re.compile(r"^/api/v4/projects/([^/]+)/issues/(\d+)/notes$")
_USER = re.compile(r"^/api/v4/users/([^/]+)$")


def stamp(moment: dt.datetime) -> str:
    """GitLab's clock format: ISO 8601 UTC, milliseconds, `Z`."""
    moment = moment.astimezone(dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def rate_limited(wait: int, limit: int = 2000) -> Reply:
    """The 429 GitLab's throttles answer, the quota resetting `wait` seconds from now."""
    reset = math.ceil(time.time()) + wait
    return Reply(
        429,
        raw=RETRY_LATER,
        content_type="text/plain",
        headers={
            "RateLimit-Name": "throttle_authenticated_api",
            "RateLimit-Limit": str(limit),
            "RateLimit-Observed": str(limit + 1),
            "RateLimit-Remaining": "0",
            "RateLimit-Reset": str(reset),
            "RateLimit-ResetTime": email.utils.formatdate(reset, usegmt=True),
            "Retry-After": str(wait),
        },
    )


UNAUTHORIZED = Reply(401, {"message": "401 Unauthorized"})
FORBIDDEN = Reply(403, {"message": "403 Forbidden"})


@dataclass
class Project:
    project_id: int
    path: str
    """`namespace/name`, the namespace being the group's full path."""

    @property
    def namespace(self) -> str:
        return self.path.rsplit("/", 1)[0]


@dataclass
class Group:
    group_id: int
    path: str


@dataclass
class _Listing:
    issues: list[dict[str, Any]]
    order: str
    descending: bool
    keyset_allowed: bool = False
    extra_headers: dict[str, str] = field(default_factory=dict)


class FakeGitLab(FakeApi):
    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token
        self.admin_tokens: set[str] = set()
        self.projects: dict[int, Project] = {}
        self.groups: dict[int, Group] = {}
        self.issues: dict[int, dict[str, Any]] = {}
        self.users: dict[int, dict[str, Any]] = {}
        self.notes: dict[int, list[dict[str, Any]]] = {}
        """Each issue's notes by issue id, oldest first."""
        self.max_offset = MAX_OFFSET
        self.keyset_issues = True
        """Whether project issues take keyset pagination (GitLab 18.3 and later)."""
        self._next_note_id = 3_000_000

    # Test controls

    def add_group(self, group_id: int, path: str) -> Group:
        group = Group(group_id, path)
        with self.lock:
            self.groups[group_id] = group
        return group

    def add_project(self, project_id: int, path: str) -> Project:
        project = Project(project_id, path)
        with self.lock:
            self.projects[project_id] = project
        return project

    def add_user(
        self, user_id: int, username: str, name: str, public_email: str = "", email: str = ""
    ) -> dict[str, Any]:
        user = {
            "id": user_id,
            "username": username,
            "name": name,
            "state": "active",
            "locked": False,
            "avatar_url": f"https://secure.gravatar.com/avatar/{user_id}?s=80&d=identicon",
            "web_url": f"https://gitlab.example.com/{username}",
            "created_at": "2020-03-04T10:00:00.000Z",
            "bio": "",
            "location": "",
            "public_email": public_email,
            "linkedin": "",
            "twitter": "",
            "website_url": "",
            "organization": "",
            "job_title": "",
            "bot": False,
            "_email": email,  # what an administrator sees as `email`; not served as is
        }
        with self.lock:
            self.users[user_id] = user
        return user

    def add(
        self,
        issue_id: int,
        project_id: int,
        updated: dt.datetime,
        iid: int | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        with self.lock:
            project = self.projects[project_id]
            if iid is None:
                taken = [i["iid"] for i in self.issues.values() if i["project_id"] == project_id]
                iid = max(taken, default=0) + 1
            issue: dict[str, Any] = {
                "id": issue_id,
                "iid": iid,
                "project_id": project_id,
                "title": f"Issue {iid}",
                "description": "",
                "state": "opened",
                "created_at": stamp(updated - dt.timedelta(hours=1)),
                "updated_at": stamp(updated),
                "closed_at": None,
                "closed_by": None,
                "labels": [],
                "milestone": None,
                "assignees": [],
                "assignee": None,
                "author": _user_ref(self.users.get(7) or {"id": 7, "username": "ana.ops"}),
                "type": "ISSUE",
                "issue_type": "issue",
                "user_notes_count": 0,
                "merge_requests_count": 0,
                "upvotes": 0,
                "downvotes": 0,
                "due_date": None,
                "confidential": False,
                "discussion_locked": None,
                "moved_to_id": None,
                "web_url": f"https://gitlab.example.com/{project.path}/-/issues/{iid}",
                "references": {
                    "short": f"#{iid}",
                    "relative": f"#{iid}",
                    "full": f"{project.path}#{iid}",
                },
                "severity": "UNKNOWN",
                "task_completion_status": {"count": 0, "completed_count": 0},
                "_links": {
                    "self": f"https://gitlab.example.com/api/v4/projects/{project_id}/issues/{iid}",
                    "notes": f"https://gitlab.example.com/api/v4/projects/{project_id}/issues/"
                    f"{iid}/notes",
                    "project": f"https://gitlab.example.com/api/v4/projects/{project_id}",
                },
                **fields,
            }
            self.issues[issue_id] = issue
        return issue

    def touch(self, issue_id: int, updated: dt.datetime, **fields: Any) -> None:
        with self.lock:
            self.issues[issue_id].update(fields, updated_at=stamp(updated))

    def assign(self, issue_id: int, *user_ids: int) -> None:
        with self.lock:
            refs = [_user_ref(self.users[u]) for u in user_ids]
            self.issues[issue_id].update(assignees=refs, assignee=refs[0] if refs else None)

    def delete(self, issue_id: int) -> None:
        with self.lock:
            self.issues.pop(issue_id)
            self.notes.pop(issue_id, None)

    def move(self, issue_id: int, to_project: int, new_id: int, at: dt.datetime) -> None:
        """GitLab's move: the issue is closed and copied to `to_project` as `new_id`."""
        with self.lock:
            old = self.issues[issue_id]
            kept = {
                k: v
                for k, v in old.items()
                if k in ("title", "description", "labels", "assignees", "assignee", "author")
            }
            self.add(new_id, to_project, at, **kept)
            old.update(
                state="closed",
                closed_at=stamp(at),
                updated_at=stamp(at),
                moved_to_id=new_id,
            )

    def note(
        self,
        issue_id: int,
        at: dt.datetime,
        body: str = "Looking into it.",
        author_id: int = 8,
        system: bool = False,
        internal: bool = False,
    ) -> dict[str, Any]:
        with self.lock:
            issue = self.issues[issue_id]
            self._next_note_id += 1
            author = self.users.get(author_id) or {"id": author_id, "username": f"user{author_id}"}
            note = {
                "id": self._next_note_id,
                "type": None,
                "body": body,
                "author": _user_ref(author),
                "created_at": stamp(at),
                "updated_at": stamp(at),
                "system": system,
                "noteable_id": issue_id,
                "noteable_type": "Issue",
                "project_id": issue["project_id"],
                "noteable_iid": issue["iid"],
                "resolvable": False,
                "confidential": internal,
                "internal": internal,
            }
            self.notes.setdefault(issue_id, []).append(note)
            if not system:
                issue["user_notes_count"] += 1
            issue["updated_at"] = stamp(at)
        return note

    def listing_requests(self) -> list[Request]:
        return [r for r in self.requests if _LISTING.match(r.path)]

    # Serving

    def route(self, request: Request) -> Reply:
        token = request.headers.get("private-token") or _bearer(request.headers)
        if token != self.token and token not in self.admin_tokens:
            return UNAUTHORIZED
        listing = _LISTING.match(request.path)
        if listing is not None:
            return self._issues(request, listing[1], unquote(listing[2]))
        notes = _NOTES.match(request.path)
        if notes is not None:
            return self._notes(request, unquote(notes[1]), int(notes[2]))
        user = _USER.match(request.path)
        if user is not None:
            return self._user(user[1], admin=token in self.admin_tokens)
        return Reply(404, {"error": "404 Not Found"})

    def _project(self, ref: str) -> Project | None:
        if ref.isdigit():
            return self.projects.get(int(ref))
        return next((p for p in self.projects.values() if p.path.lower() == ref.lower()), None)

    def _group(self, ref: str) -> Group | None:
        if ref.isdigit():
            return self.groups.get(int(ref))
        return next((g for g in self.groups.values() if g.path.lower() == ref.lower()), None)

    def _issues(self, request: Request, kind: str, ref: str) -> Reply:
        if kind == "projects":
            project = self._project(ref)
            if project is None:
                return Reply(404, {"message": "404 Project Not Found"})
            issues = [i for i in self.issues.values() if i["project_id"] == project.project_id]
        else:
            group = self._group(ref)
            if group is None:
                return Reply(404, {"message": "404 Group Not Found"})
            inside = {
                p.project_id
                for p in self.projects.values()
                if p.namespace == group.path or p.namespace.startswith(group.path + "/")
            }
            issues = [i for i in self.issues.values() if i["project_id"] in inside]
        state = request.param("state", "all")
        if state in ("opened", "closed"):
            issues = [i for i in issues if i["state"] == state]
        after = request.param("updated_after")
        if after is not None:
            bound = _parse_time(after)
            if bound is None:
                return Reply(400, {"error": "updated_after is invalid"})
            issues = [i for i in issues if _on_or_after(i["updated_at"], bound)]
        order = request.param("order_by", "created_at") or "created_at"
        if order not in ("created_at", "updated_at", "id", "title", "due_date"):
            return Reply(400, {"error": "order_by does not have a valid value"})
        sort = request.param("sort", "desc") or "desc"
        if sort not in ("asc", "desc"):
            return Reply(400, {"error": "sort does not have a valid value"})
        descending = sort == "desc"
        issues.sort(key=lambda i: (i[order], i["id"]), reverse=descending)
        keyset = kind == "projects" and self.keyset_issues
        return self._page(request, _Listing(issues, order, descending, keyset))

    def _page(self, request: Request, listing: _Listing) -> Reply:
        try:
            per_page = min(MAX_PER_PAGE, max(1, int(request.param("per_page") or DEFAULT_PER_PAGE)))
            page = max(1, int(request.param("page") or 1))
        except ValueError:
            return Reply(400, {"error": "page is invalid"})
        records = listing.issues
        if request.param("pagination") == "keyset":
            if not listing.keyset_allowed or listing.order not in KEYSET_ORDERS:
                return Reply(
                    405,
                    {"error": "Keyset pagination is not yet available for this type of request"},
                )
            cursor = request.param("cursor")
            if cursor:
                position = _decode_cursor(cursor, listing.order)
                if position is None:
                    return Reply(400, {"error": "cursor is invalid"})
                records = [
                    r
                    for r in records
                    if ((r[listing.order], r["id"]) < position) == listing.descending
                    and (r[listing.order], r["id"]) != position
                ]
            body = records[:per_page]
            headers: dict[str, str] = {}
            if len(body) == per_page:
                last = body[-1]
                token = _encode_cursor(listing.order, last[listing.order], last["id"])
                headers["Link"] = f'<{self._url(request, cursor=token)}>; rel="next"'
            return Reply(200, body, headers=headers)
        offset = (page - 1) * per_page
        if offset > self.max_offset:
            return Reply(
                405,
                {
                    "error": f"Offset pagination has a maximum allowed offset of {self.max_offset} "
                    "for requests that return objects of type Issue. Remaining records can be "
                    "retrieved using keyset pagination."
                },
            )
        body = records[offset : offset + per_page]
        total = len(records)
        pages = max(1, math.ceil(total / per_page))
        links = []
        if page > 1:
            links.append(f'<{self._url(request, page=page - 1)}>; rel="prev"')
        if page < pages:
            links.append(f'<{self._url(request, page=page + 1)}>; rel="next"')
        links.append(f'<{self._url(request, page=1)}>; rel="first"')
        headers = {
            "x-page": str(page),
            "x-per-page": str(per_page),
            "x-next-page": str(page + 1) if page < pages else "",
            "x-prev-page": str(page - 1) if page > 1 else "",
        }
        if total <= COUNTED_RECORDS:
            links.append(f'<{self._url(request, page=pages)}>; rel="last"')
            headers.update({"x-total": str(total), "x-total-pages": str(pages)})
        headers["Link"] = ", ".join(links)
        return Reply(200, body, headers=headers)

    def _url(self, request: Request, **changes: Any) -> str:
        query = {k: v[-1] for k, v in request.query.items()}
        query.update({k: str(v) for k, v in changes.items()})
        path = quote(request.path, safe="/%")  # `acme%2Fhelpdesk` stays encoded
        return f"{self.base_url}{path}?{urlencode(query)}"

    def _notes(self, request: Request, ref: str, iid: int) -> Reply:
        project = self._project(ref)
        if project is None:
            return Reply(404, {"message": "404 Project Not Found"})
        issue = next(
            (
                i
                for i in self.issues.values()
                if i["project_id"] == project.project_id and i["iid"] == iid
            ),
            None,
        )
        if issue is None:
            return Reply(404, {"message": "404 Issue Not Found"})
        notes = list(self.notes.get(issue["id"], []))
        order = request.param("order_by", "created_at") or "created_at"
        descending = (request.param("sort", "desc") or "desc") == "desc"
        notes.sort(key=lambda n: (n[order], n["id"]), reverse=descending)
        return self._page(request, _Listing(notes, order, descending))

    def _user(self, ref: str, admin: bool) -> Reply:
        user = self.users.get(int(ref)) if ref.isdigit() else None
        if user is None:
            return Reply(404, {"message": "404 User Not Found"})
        shown = {k: v for k, v in user.items() if k != "_email"}
        if admin:
            shown["email"] = user["_email"]
            shown["is_admin"] = False
        return Reply(200, shown)


def _user_ref(user: dict[str, Any]) -> dict[str, Any]:
    """A user as an issue names one: id, username, name, state, avatar and web URLs."""
    user_id, username = user["id"], user["username"]
    return {
        "id": user_id,
        "username": username,
        "name": user.get("name", username),
        "state": "active",
        "locked": False,
        "avatar_url": None,
        "web_url": f"https://gitlab.example.com/{username}",
    }


def _bearer(headers: dict[str, str]) -> str | None:
    value = headers.get("authorization", "")
    return value[7:] if value.lower().startswith("bearer ") else None


def _parse_time(value: str) -> dt.datetime | None:
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment


def _on_or_after(value: Any, bound: dt.datetime) -> bool:
    """Whether a stored time is at or after `bound`; a test's unreadable one always is."""
    moment = _parse_time(value) if isinstance(value, str) else None
    return moment is None or moment >= bound


def _encode_cursor(order: str, value: Any, record_id: int) -> str:
    payload = json.dumps({order: value, "id": str(record_id), "_kd": "n"})
    return base64.urlsafe_b64encode(payload.encode()).decode()


def _decode_cursor(cursor: str, order: str) -> tuple[Any, int] | None:
    try:
        payload = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return payload[order], int(payload["id"])
    except (binascii.Error, ValueError, KeyError, TypeError):
        return None
