"""GitLab: the issues of projects and groups, every state, oldest change first (REST v4).

Calls, for each project, `GET /api/v4/projects/:id/issues?scope=all&state=all
&order_by=updated_at&sort=asc&updated_after=W&per_page=N&pagination=keyset`, and
for each group `GET /api/v4/groups/:id/issues` with the same query less
`pagination=keyset` (GitLab lists only project issues among the endpoints with
keyset pagination, from 18.3; a group's are offset pages). `:id` is a numeric id
or the URL-encoded path (`acme%2Fhelpdesk`). Auth: `PRIVATE-TOKEN` (a personal,
project or group access token with `read_api`) or an OAuth `Authorization: Bearer`.

- `updated_after` is "on or after", compared with `updated_at`, which GitLab
  shows with milliseconds (`2016-01-04T15:31:51.081Z`) and keeps with
  microseconds: the bound, floored to the millisecond, stays inclusive. Ids read
  at the bound are skipped; the engine's hash diff absorbs other re-reads.
- Every page re-anchors: the query goes again from the last `updated_at` seen.
  Offset pages shift when an issue already read is edited mid-scan (and GitLab
  caps offsets, 50,000 by default), so a group's listing must; a project's keyset
  pages don't shift, and re-anchoring costs them nothing more. A GitLab before 18.3
  refuses `pagination=keyset` for issues (405, "Keyset pagination is not yet
  available"): the connector then pages its projects by offset too. The `Link` header's
  next page is followed only when a whole page shares one millisecond (a keyset
  cursor for a project; for a group, a page number within that tie).
- Rate limits: a 429 (GitLab's throttles answer "Retry later" as text) waits its
  `Retry-After`, else its `RateLimit-Reset` (Unix seconds).
- Deletion: a deleted issue vanishes without a trace; a census (`scope_ids`) lists
  every issue's id through the same listing, ordered by `created_at` and
  re-anchored the same way (GitLab's REST has no lighter, ids-only answer).
- Moving an issue closes it and copies it to the target project: a new `id` and
  `iid` there, the original kept, closed, with `moved_to_id`. The copy becomes a
  new task (if its project is in scope); the original is read as a tombstone, so
  its task is archived rather than left showing a closed duplicate.
- Several projects and groups: one query each, merged in `updated_at` order on one
  request budget (`RestConnector.scopes`). A project also under a configured group
  is read twice; each version goes out once. The ticket id is the issue's global
  `id` (its `iid`, unique only within its project, is kept as a field).
- Status: `opened` and `closed`; an open issue with one of `started_labels` reads
  as `started`. Fragment's status takes TODO/STARTED/DONE; `state` is kept as
  the `source_status` field.
- People: an issue names its assignees by `id` and `username`. `people` asks
  `GET /api/v4/users/:id` once per id: `public_email` (the address the user
  chose to show, "" for most), or `email`, which GitLab shows administrators.
- Notes (`read_comments`): see `GitLabConnector.conversations`.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import quote

import httpx
import structlog
from pydantic import Field, SecretStr, field_validator, model_validator

from connectors.base import (
    WHOLE_SECOND_LOOKBACK,
    BadRecord,
    Cursor,
    Person,
    SourceComment,
    SourceTicket,
    unset,
)
from connectors.comments import CommentShape, read_comments
from connectors.errors import SourceError
from connectors.http import (
    SOURCE_POLICY,
    Action,
    Conversations,
    HttpOptions,
    LinkHeaderPaginator,
    PageRequest,
    Paginator,
    RestConnector,
    Rule,
)
from connectors.http.people import NO_SUCH_USER, person
from connectors.values import HttpUrl
from sync_http.auth import HeaderAuth, bearer
from sync_http.policy import Policy

API = "/api/v4"
NOTES_PER_PAGE = 100
"""GitLab's largest page, of notes as of issues."""
NO_PUBLIC_EMAIL = "no public email on the GitLab profile"
KEYSET_UNAVAILABLE = "Keyset pagination is not yet available"
"""How GitLab words its 405 to `pagination=keyset` where it has none (issues before 18.3)."""
NOTE_SHAPE = CommentShape(
    body="body",
    author="author.name",
    author_id="author.id",
    public=lambda note: not note.get("internal") and not note.get("confidential"),
)
"""A user's note on an issue as GitLab lists it; an internal note is private."""

log = structlog.get_logger("connectors")

GITLAB_POLICY: Policy = {
    **SOURCE_POLICY,
    401: Rule(
        Action.FAIL_AUTH,
        "GitLab refused the credentials: the token is invalid, expired or revoked",
    ),
    403: Rule(
        Action.FAIL_AUTH,
        "GitLab denied the token access: it needs the read_api scope and a role on "
        "the project or group that sees its issues",
    ),
    404: Rule(
        Action.FAIL,
        "no such project or group, or the token can't see it (GitLab answers 404 for "
        "private ones): check projects, groups and the token",
    ),
    405: Rule(
        Action.FAIL,
        "GitLab refused the page (past the instance's max offset for offset pagination, "
        "or keyset pagination asked where it has none)",
    ),
}
"""GitLab's answers. Its 429s are rate limits, recognised before this table is read."""


class GitLabOptions(HttpOptions):
    base_url: HttpUrl = "https://gitlab.com"
    """The GitLab instance, without `/api/v4`: `https://gitlab.example.com` for a
    self-managed one."""
    token: SecretStr | None = None
    """A personal, project or group access token with `read_api`, sent as `PRIVATE-TOKEN`
    (or set oauth_token)."""
    oauth_token: SecretStr | None = None
    """An OAuth 2 access token, sent as `Authorization: Bearer`, instead of token."""
    projects: list[str | int] = Field(default_factory=list, exclude_if=unset)
    """Projects by numeric id or full path (`acme/helpdesk`); each is one query a pass."""
    groups: list[str | int] = Field(default_factory=list, exclude_if=unset)
    """Groups by numeric id or full path (`acme/support`): the issues of every project in
    them, subgroups included; each is one query a pass."""
    started_labels: list[str] = Field(default_factory=lambda: ["Doing", "In Progress"])
    """Labels (any case) that make an open issue read as `started` (STARTED in Fragment),
    such as a board's `workflow::in progress`."""
    page_size: int = Field(default=100, ge=1, le=100)
    """Issues per request, up to 100."""

    @field_validator("projects", "groups")
    @classmethod
    def _ids_or_paths_once(cls, values: list[str | int]) -> list[str | int]:
        folded: list[str] = []
        for value in values:
            text = str(value).strip().strip("/")
            if not text:
                raise ValueError("an entry is empty: give a numeric id or a full path")
            if isinstance(value, int) and value < 1:
                raise ValueError(f"{value} is not a GitLab id")
            folded.append(text.lower())  # GitLab's paths ignore case
        repeated = sorted(
            {str(v) for v, f in zip(values, folded, strict=True) if folded.count(f) > 1}
        )
        if repeated:
            raise ValueError(f"{', '.join(repeated)} listed more than once")
        return values

    @model_validator(mode="after")
    def _something_to_read(self) -> GitLabOptions:
        if not self.projects and not self.groups:
            raise ValueError('set projects (e.g. ["acme/helpdesk"]) or groups (e.g. ["acme"])')
        if (self.token is None) == (self.oauth_token is None):
            raise ValueError("set token (an access token) or oauth_token, one of them")
        return self

    @property
    def scopes(self) -> list[str]:
        """`projects/<id or encoded path>` and `groups/<...>`: the listings read, one query each."""
        projects = [f"projects/{quote(str(p).strip().strip('/'), safe='')}" for p in self.projects]
        groups = [f"groups/{quote(str(g).strip().strip('/'), safe='')}" for g in self.groups]
        return projects + groups


class GitLabConnector(RestConnector):
    kind = "gitlab"
    summary = (
        "GitLab issues of projects and groups (REST v4); needs projects or groups and a "
        "token with read_api"
    )
    Options = GitLabOptions
    options: GitLabOptions

    id_path = "id"
    cursor_path = "updated_at"
    default_lookback = WHOLE_SECOND_LOOKBACK
    cursors_from_source_clock = True
    reanchor_after_pages = 1
    policy = GITLAB_POLICY
    comments = "requests"
    moved_hint = "GitLab moved the project (its path changed): put its new path in projects"

    default_mapping: ClassVar[dict[str, Any]] = {
        "title": "#{iid} {title}",
        "url": "{web_url}",
        "status": "status_key",
        "status_map": {"opened": "TODO", "started": "STARTED", "closed": "DONE"},
        "due_at": "due_date",
        "assignee": "assignee.id",
        "external_created_at": "created_at",
        "external_updated_at": "updated_at",
        "fields": {
            "reference": "references.full",
            "iid": "iid",
            "labels": "labels",
            "milestone": "milestone.title",
            "author": "author.username",
            "assignee": "assignee.username",
            "notes": "user_notes_count",
            "source_status": "state",
        },
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.paging = _Paging()
        """Shared by the per-scope views (shallow copies of this connector)."""

    def auth(self) -> httpx.Auth:
        if self.options.token is not None:
            return HeaderAuth("PRIVATE-TOKEN", self.options.token)
        assert self.options.oauth_token is not None
        return bearer(self.options.oauth_token)

    def paginator(self) -> Paginator:
        return LinkHeaderPaginator()

    def scopes(self) -> Sequence[str | None]:
        return self.options.scopes

    def first_request(self, since: Cursor | None, paginator: Paginator) -> PageRequest:
        return PageRequest(f"{API}/{self.scope}/issues", self.params(since))

    def params(self, since: Cursor | None) -> dict[str, Any]:
        params: dict[str, Any] = {
            "scope": "all",  # /issues defaults to the token's own; be explicit everywhere
            "state": "all",
            "order_by": self.cursor_path,  # `created_at` for a census (`_census_view`)
            "sort": "asc",
            "per_page": self.options.page_size,
        }
        if str(self.scope).startswith("projects/") and self.paging.keyset:
            params["pagination"] = "keyset"
        if isinstance(since, dt.datetime):
            # GitLab shows milliseconds and keeps microseconds: floored, the bound stays inclusive.
            params[f"{self.cursor_path.removesuffix('_at')}_after"] = _milliseconds(since)
        return params

    def fetch(self, request: PageRequest) -> tuple[httpx.Response, Any]:
        """One page; a keyset query GitLab refuses (before 18.3) goes again by offset.

        The refusal is remembered for the connector's life, so a pass pays one
        request for it, not one a page.
        """
        if request.params.get("pagination") != "keyset":
            return super().fetch(request)
        try:
            return super().fetch(request)
        except SourceError as exc:
            if KEYSET_UNAVAILABLE not in exc.reason:
                raise
        log.warning(
            "gitlab_keyset_unavailable",
            connector=self.name,
            meaning="this GitLab has no keyset pages for issues (before 18.3): projects are "
            "read by offset pages, re-anchored on updated_at as groups are",
        )
        self.paging.keyset = False
        offset = {k: v for k, v in request.params.items() if k not in ("pagination", "cursor")}
        return super().fetch(PageRequest(request.url, offset, request.headers))

    def is_deleted(self, record: Mapping[str, Any]) -> bool:
        """A moved issue: GitLab closed it and copied it elsewhere (see the module)."""
        return record.get("moved_to_id") is not None

    def enrich(self, record: dict[str, Any]) -> dict[str, Any]:
        return {**record, "status_key": self.status_key(record)}

    def status_key(self, record: Mapping[str, Any]) -> Any:
        """`opened`, `closed`, or `started` for an open issue with a started label."""
        state = record.get("state")
        if state != "opened":
            return state
        started = {label.casefold() for label in self.options.started_labels}
        labels = record.get("labels")
        names = labels if isinstance(labels, list) else []
        if any(isinstance(n, str) and n.casefold() in started for n in names):
            return "started"
        return state

    def scope_ids(self) -> Iterator[str]:
        """Every issue of every project and group by id, oldest created first.

        The listing of a pass, ordered by `created_at` and re-anchored on it
        (`created_after`, inclusive) page by page, so an issue deleted meanwhile
        shifts no page and no live issue is missed. Moved issues are left out
        (their tasks are archived). A scope that can't be read raises
        `SourceError`, never lists nothing. An issue whose `created_at` can't be
        read is still listed by its id: a census must not archive it.
        """
        for scope in self.options.scopes:
            view = self._census_view(scope)
            for item in view.pull_scope(None):
                if isinstance(item, SourceTicket):
                    if not item.deleted:
                        yield item.source_id
                elif item.source_id is not None:
                    yield item.source_id

    def _census_view(self, scope: str) -> GitLabConnector:
        view = copy.copy(self)
        view._session = self.session
        view.scope = scope
        view.cursor_path = "created_at"
        return view

    def people(self, user_ids: Iterable[str]) -> Iterator[Person]:
        """User ids to emails: one `GET /api/v4/users/:id` each (GitLab has no batch)."""
        for user_id in dict.fromkeys(u for u in user_ids if u):
            if not user_id.isdigit():
                yield Person(user_id, None, reason="not a GitLab user id")
                continue
            user = self.lookup(PageRequest(f"{API}/users/{user_id}"))
            if not isinstance(user, dict):
                yield Person(user_id, None, reason=NO_SUCH_USER)
                continue
            email = user.get("email") or user.get("public_email")  # `email`: admins only
            yield person(user_id, email, user.get("name"), NO_PUBLIC_EMAIL)

    def conversations(self, tickets: Sequence[SourceTicket]) -> Conversations:
        """Each issue's notes: `GET /api/v4/projects/:id/issues/:iid/notes`, oldest first.

        One request per 100 notes, none for an issue whose `user_notes_count`
        is 0 (the listing says so for free). System notes ("changed the
        description", "moved to ...") are GitLab's activity log, not part of the
        conversation: they are left out. An internal note is private. An issue
        gone since it was listed (404) keeps `comments` None.
        """
        found: dict[str, list[SourceComment] | BadRecord | None] = {}
        for ticket in tickets:
            record = ticket.record
            count, iid, project = (
                record.get("user_notes_count"),
                record.get("iid"),
                record.get("project_id"),
            )
            if count == 0:
                found[ticket.source_id] = []
                continue
            if not _whole_number(iid) or not _whole_number(project):
                found[ticket.source_id] = BadRecord(
                    ticket.source_id,
                    "issue",
                    "iid" if not _whole_number(iid) else "project_id",
                    f"no project and iid to read the notes of: {project!r:.40}, {iid!r:.40}",
                    record,
                    ticket.cursor,
                )
                continue
            request = PageRequest(
                f"{API}/projects/{project}/issues/{iid}/notes",
                {"sort": "asc", "order_by": "created_at", "per_page": NOTES_PER_PAGE},
            )
            raw = self.listing(request, LinkHeaderPaginator())
            if raw is None:
                found[ticket.source_id] = None
                continue
            notes = [n for n in raw if not (isinstance(n, dict) and n.get("system") is True)]
            found[ticket.source_id] = read_comments(ticket, notes, NOTE_SHAPE)
        return found


@dataclass
class _Paging:
    keyset: bool = True
    """Whether projects are asked for keyset pages: False once GitLab refused them."""


def _milliseconds(moment: dt.datetime) -> str:
    """`moment` as GitLab writes times: UTC, floored to the millisecond, with `Z`."""
    moment = moment.astimezone(dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _whole_number(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
