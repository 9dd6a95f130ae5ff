"""Redmine: `/issues.json`, every status, oldest change first.

Calls `GET /issues.json?status_id=*&updated_on=>=W&sort=updated_on,id` with
the `X-Redmine-API-Key` header, paging by offset/limit. Offsets shift when an
issue is edited mid-scan, so each page re-anchors on the last `updated_on`
seen (skipping the ids already read there) instead of trusting the offset.
`status_id=*` matters: without it Redmine returns open issues only. Deleted
issues vanish from the API without a trace, and an issue moved to another
project leaves this one's listing: a census (`scope_ids`) finds both.

Projects: each of `projects` is its own query (`project_id=P`, which takes in
its subprojects), merged in `updated_on` order (`RestConnector.scopes`). An
issue's id is Redmine's, unique across projects, so an issue moved between
two of them stays one task; one moved out of all of them stops coming, and a
census archives its task. An issue listed under a project and its subproject
goes out once.

People: an issue names its assignee as `assigned_to: {"id", "name"}` (left
out when unassigned), and the default mapping resolves `assigned_to.id`.
`people` asks `GET /users/{id}.json` per id: Redmine has no call for several
users by id. Its `mail` is there for an admin's key; for another key only if
the user shows their email (Redmine hides it by default). An id that is no
user may be a group (issues can be assigned to groups): `GET /groups/{id}.json`
names it, and a group has no email. The user record also carries the user's
own API key for an admin: only the name and email are kept.

Write-back (`writes` status and assignee): `PUT /issues/{id}.json` with
`status_id` (the status named in `write_back.status`, looked up once in
`/issue_statuses.json`) and `assigned_to_id`. Redmine answers 204 even when
it drops a `status_id` its workflow doesn't allow the key's user (seen on the
real Redmine 5), so the connector first reads the statuses the issue may move
to (`include=allowed_statuses`, one request) and refuses a transition outside
them itself, naming them. An issue already where it is asked to go is left
alone: a write repeated after a crash sends nothing. An admin's key may make
any transition. An issue in a closed status (`is_closed`: Closed, Rejected) is
not moved by Fragment's status: the source closed it, and that wins
(`WriteConflict`).

Journals (`comments = "requests"`): the listing carries none; only
`GET /issues/{id}.json?include=journals` does. With the conversation on, each
issue a pass yields costs that one request more, within the connector's
request budget: the issues the listing gives since the watermark (changed
ones, and the few the lookback reads again), never a census. A journal with
a note is a comment (a change without one is not); `private_notes` makes it
private; its author is `user.name`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

import httpx
from pydantic import Field, SecretStr, field_validator, model_validator

from connectors.base import (
    WHOLE_SECOND_LOOKBACK,
    BadRecord,
    Cursor,
    Person,
    SourceComment,
    SourceTicket,
    TicketWrite,
    unset,
)
from connectors.conversation import BadComment, comment
from connectors.errors import FixConfiguration, SourceNotFound, WriteConflict
from connectors.http import HttpOptions, OffsetPaginator, PageRequest, Paginator, RestConnector
from connectors.http.people import NO_SUCH_USER, person
from connectors.values import whole_seconds_utc
from sync_http.auth import api_key_header


class RedmineOptions(HttpOptions):
    api_key: SecretStr
    """A Redmine API key (My account > API access key)."""
    projects: list[str] = Field(default_factory=list, exclude_if=unset)
    """Project identifiers (or ids) to sync, each with its subprojects; empty: every project
    the key can see. Each costs a request a pass, at least."""
    project: str | None = None
    """One project: shorthand for `projects = ["..."]`."""
    page_size: int = Field(default=100, ge=1, le=100)
    """Issues per request, up to 100."""

    @field_validator("projects")
    @classmethod
    def _each_once(cls, projects: list[str]) -> list[str]:
        repeated = sorted({p for p in projects if projects.count(p) > 1})
        if repeated:
            raise ValueError(f"{', '.join(repeated)} listed more than once")
        if any(not p.strip() for p in projects):
            raise ValueError("a project identifier is empty")
        return projects

    @model_validator(mode="after")
    def _list_or_shorthand(self) -> RedmineOptions:
        if self.project is not None and self.projects:
            raise ValueError(
                "set projects or its shorthand project, not both: "
                f"projects = {[self.project, *self.projects]!r}"
            )
        return self

    @property
    def scopes(self) -> list[str | None]:
        """The projects read, one query each; [None] for every project."""
        if self.projects:
            return list(self.projects)
        return [self.project]


class RedmineConnector(RestConnector):
    kind = "redmine"
    summary = "Redmine issues (/issues.json); needs base_url and an api_key with REST enabled"
    Options = RedmineOptions
    options: RedmineOptions

    path = "/issues.json"
    records_path = "issues"
    cursor_path = "updated_on"
    reanchor_after_pages = 1
    default_lookback = WHOLE_SECOND_LOOKBACK
    cursors_from_source_clock = True
    comments = "requests"
    writes = frozenset({"status", "assignee"})
    _statuses: dict[str, int] | None = None
    """Redmine's statuses by name (casefolded), read at the first write."""

    default_mapping: ClassVar[dict[str, Any]] = {
        "title": "#{id} {subject}",
        "url": "{web_url}",
        "status": "status.name",
        "status_map": {
            "New": "TODO",
            "In Progress": "STARTED",
            "Feedback": "STARTED",
            "Resolved": "DONE",
            "Closed": "DONE",
            "Rejected": "DONE",
        },
        "due_at": "due_date",
        "assignee": "assigned_to.id",
        "external_created_at": "created_on",
        "external_updated_at": "updated_on",
        "fields": {
            "project": "project.name",
            "tracker": "tracker.name",
            "priority": "priority.name",
            "author": "author.name",
            "assigned_to": "assigned_to.name",
            # Redmine's own status name ("In Progress"): Fragment's external_status, like
            # its status, takes TODO/STARTED/DONE only (docs/fragment-api.md).
            "source_status": "status.name",
        },
    }

    def auth(self) -> httpx.Auth:
        return api_key_header("X-Redmine-API-Key", self.options.api_key)

    def paginator(self) -> Paginator:
        return OffsetPaginator(self.options.page_size, total_path="total_count")

    def params(self, since: Cursor | None) -> dict[str, Any]:
        params: dict[str, Any] = {"status_id": "*", "sort": "updated_on,id"}
        if isinstance(since, dt.datetime):
            # Redmine compares whole seconds; flooring keeps the bound inclusive.
            params["updated_on"] = ">=" + whole_seconds_utc(since)
        if self.scope is not None:
            params["project_id"] = self.scope
        return params

    def scopes(self) -> Sequence[str | None]:
        return self.options.scopes

    def pull(self, since: Cursor | None) -> Iterator[SourceTicket | BadRecord]:
        """The listing's issues from `since`; with `read_comments`, each with its journals.

        An issue deleted between the listing and its journals is left out, as the
        next listing leaves it out; a census archives its task.
        """
        for item in super().pull(since):
            if self.read_comments and isinstance(item, SourceTicket):
                with_journals = self._with_journals(item)
                if with_journals is not None:
                    yield with_journals
            else:
                yield item

    def _with_journals(self, ticket: SourceTicket) -> SourceTicket | BadRecord | None:
        """`ticket` with the notes of its journals as comments: one request. None: it's gone.

        A journal that can't be read fails the ticket (naming it), not the pass.
        """
        request = PageRequest(f"/issues/{ticket.source_id}.json", {"include": "journals"})
        try:
            _response, body = self.fetch(request)
        except SourceNotFound:
            return None  # deleted since the listing
        try:
            ticket.comments = journal_notes(body)
        except BadComment as exc:
            return exc.bad_record(ticket, f"GET {request.url}")
        return ticket

    def scope_ids(self) -> Iterator[str]:
        """Every issue of any status in scope, by id: `issue_id=>=N&sort=id`, 100 a page.

        Each page is anchored on the id after the last one read, never on an
        offset: an issue deleted meanwhile shifts nothing, where an offset would
        skip the issue after it (and archive its task). Redmine returns whole
        issues; it has no way to ask for ids only. An issue listed under two of
        `projects` (a subproject's) is yielded twice; the census counts it once.
        """
        for scope in self.options.scopes:
            yield from self._ids_of(scope)

    def _ids_of(self, project: str | None) -> Iterator[str]:
        """The ids of one project (with its subprojects), or of every project for None."""
        params: dict[str, Any] = {"status_id": "*", "sort": "id", "limit": self.options.page_size}
        if project is not None:
            params["project_id"] = project
        first = 1
        while True:
            _response, body = self.fetch(
                PageRequest(self.path, {**params, "issue_id": f">={first}"})
            )
            issues = [issue for issue in self.records(body) if isinstance(issue, dict)]
            numbers = [issue["id"] for issue in issues if isinstance(issue.get("id"), int)]
            yield from (str(number) for number in numbers)
            if len(issues) < self.options.page_size or not numbers:
                return
            first = max(numbers) + 1

    def people(self, user_ids: Iterable[str]) -> Iterator[Person]:
        """Each id as a user (`/users/{id}.json`), else a group (`/groups/{id}.json`)."""
        for user_id in dict.fromkeys(user_ids):
            if not user_id.isdigit():
                yield Person(user_id, None, reason="not a Redmine user id (a number)")
                continue
            body = self.lookup(PageRequest(f"/users/{user_id}.json"))
            user = body.get("user") if isinstance(body, dict) else None
            if isinstance(user, dict):
                name = " ".join(
                    part for part in (user.get("firstname"), user.get("lastname")) if part
                )
                yield person(user_id, user.get("mail"), name or user.get("login"), _HIDDEN)
                continue
            body = self.lookup(PageRequest(f"/groups/{user_id}.json"))
            group = body.get("group") if isinstance(body, dict) else None
            if isinstance(group, dict):
                yield Person(user_id, None, group.get("name"), reason=_GROUP)
            else:
                yield Person(
                    user_id,
                    None,
                    reason=f"{NO_SUCH_USER} (deleted or locked, or not visible to this API key)",
                )

    def write(self, change: TicketWrite) -> None:
        """`PUT /issues/{id}.json`, after checking the workflow allows it (see the module)."""
        url = f"/issues/{change.source_id}.json"
        shown = self.lookup(PageRequest(url, {"include": "allowed_statuses"}))
        issue = shown.get("issue") if isinstance(shown, dict) else None
        if not isinstance(issue, dict):
            raise self.refused(change, "the issue is gone (Redmine answered 404)")
        update: dict[str, Any] = {}
        if change.status is not None:
            status_id = self._status_id(change.status)
            current = issue.get("status") or {}
            if current.get("id") != status_id and current.get("is_closed"):
                target = change.status
                raise WriteConflict(
                    self.name,
                    change.source_id,
                    "status",
                    target,
                    f"the issue is {current.get('name')!r} in Redmine, a closed status: "
                    "the source closed it, and that wins over Fragment's status",
                )
            if current.get("id") != status_id:
                allowed = [s for s in issue.get("allowed_statuses") or [] if isinstance(s, dict)]
                if status_id not in {s.get("id") for s in allowed}:
                    names = ", ".join(repr(s.get("name")) for s in allowed) or "no status"
                    raise self.refused(
                        change,
                        f"Redmine's workflow doesn't let this API key's user move the issue "
                        f"from {current.get('name')!r} (it may go to: {names})",
                    )
                update["status_id"] = status_id
        if change.assign:
            assigned = (issue.get("assigned_to") or {}).get("id")
            if str(assigned or "") != (change.assignee_id or ""):
                update["assigned_to_id"] = change.assignee_id or ""
        if not update:
            return  # already there
        response = self.send_write("PUT", url, {"issue": update})
        if response.status_code < 300:
            return
        if response.status_code == 404:
            raise self.refused(change, "the issue is gone (Redmine answered 404)")
        try:
            errors = response.json().get("errors")
        except (ValueError, AttributeError):
            errors = None
        said = "; ".join(map(str, errors)) if isinstance(errors, list) else response.text[:200]
        raise self.refused(change, f"Redmine answered {response.status_code}: {said}")

    def _status_id(self, name: str) -> int:
        """The id of the status named `name` (any case). Raises `FixConfiguration`."""
        if self._statuses is None:
            body = self.lookup(PageRequest("/issue_statuses.json"))
            listed = body.get("issue_statuses") if isinstance(body, dict) else None
            self._statuses = {
                str(s.get("name")).casefold(): s["id"]
                for s in listed or []
                if isinstance(s, dict) and isinstance(s.get("id"), int)
            }
        found = self._statuses.get(name.casefold())
        if found is None:
            known = ", ".join(sorted(self._statuses)) or "none"
            raise FixConfiguration(
                f"connector {self.name!r}: Redmine has no status {name!r} (it has: {known})",
                key=f"connectors.{self.name}.write_back.status",
            )
        return found

    def enrich(self, record: dict[str, Any]) -> dict[str, Any]:
        return {**record, "web_url": f"{self.options.base_url}/issues/{record.get('id')}"}


_HIDDEN = (
    "email hidden: Redmine shows it to admins' API keys, or when the user shows it; use an "
    "admin's key, or the connector's people table"
)
_GROUP = "a Redmine group: groups have no email (name someone in the connector's people table)"


def journal_notes(body: Any) -> list[SourceComment]:
    """The comments of `GET /issues/{id}.json?include=journals`: its journals with a note.

    Raises `BadComment` naming the journal and key at fault (`journals.3.created_on`).
    """
    issue = body.get("issue") if isinstance(body, Mapping) else None
    journals = issue.get("journals") if isinstance(issue, Mapping) else None
    if not isinstance(journals, list):
        raise BadComment("journals", "the issue's answer has no list of journals")
    notes = []
    for index, journal in enumerate(journals):
        if not isinstance(journal, Mapping):
            raise BadComment(f"journals.{index}", "is not an object")
        if not journal.get("notes"):
            continue  # a change of fields without a note
        user = journal.get("user")
        user = user if isinstance(user, Mapping) else {}
        notes.append(
            comment(
                f"journals.{index}",
                comment_id=journal.get("id"),
                created_at=journal.get("created_on"),
                body=journal.get("notes"),
                author=user.get("name"),
                author_id=user.get("id"),
                public=not journal.get("private_notes"),
                keys=_JOURNAL_KEYS,
            )
        )
    return notes


_JOURNAL_KEYS = {"created_at": "created_on", "body": "notes"}
