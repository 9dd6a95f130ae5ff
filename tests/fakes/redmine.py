"""A fake Redmine `/issues.json`, as its REST API wiki documents it and a real Redmine 5 answers.

`status_id=*` or open issues only; `sort=updated_on,id` or `sort=id`;
`project_id` (an identifier or id, with its subprojects: see Projects below);
`issue_id=>=N`, the short filter form the real server takes for an integer
filter; offset/limit paging (limit at most 100, default 25) with
`total_count`; the `X-Redmine-API-Key` header. Deleted issues simply vanish
(`delete`), and an issue moved to another project leaves the first one's
listing (`move`), with nothing to say it went.

Update times are kept with microseconds, as Redmine's database keeps them,
and shown floored to the second (`"2026-11-29T09:09:16Z"`). As on the real
server (`../shared/real-servers/redmine/README.md`), the filter
`updated_on=>=T` means `updated_on > T - 1 s` on the hidden microseconds, so
it also matches changes made during the second before `T`; a date alone
means from that day's start. Sorting on `updated_on` sorts on the hidden
microseconds, so within one shown second the order is that of the changes,
not of the ids; `sort=updated_on,id` breaks exact ties by id. A change made
without an explicit time is stamped by the fake's clock (`FakeApi.clock`).
Like thin, which serves Debian's Redmine, it sends no `Date` header unless
`sends_date` is set (a proxy in front adds one).

Users: `GET /users/{id}.json` (the REST API's "Users" page) answers
`{"user": {...}}` with `mail` (and the user's `api_key`, and `status`) for
an admin's key only (`admin_keys`); for any other key `mail` appears only if
the user doesn't hide it (Redmine's "Hide my email address", on by default),
and a locked user is a 404. An id that is no user (a group's too) is a 404
with an empty body. `GET /groups/{id}.json` answers `{"group": {"id", "name"}}`
to any key, as the real server does; a group has no email. Requests to either
are counted in `user_requests`.

Journals: `GET /issues/{id}.json?include=journals` shows one issue, `{"issue":
{..., "journals": [...]}}`, each journal `{"id", "user": {"id", "name"},
"notes", "created_on", "private_notes", "details"}`, oldest first; the
listing never carries them, and without `include=journals` neither does the
show. A journal may be a change without a note (`notes` ""). `note` adds one,
an edit of the issue like any other (its `updated_on` moves). The fake's key
is an administrator's: it sees private notes, as such a key does.

Writes (`PUT /issues/{id}.json`, body `{"issue": {...}}`), as the real Redmine 5
answers them: 204 with an empty body, the change applied and journaled
(`updated_on` moves); 404 with an empty body for an unknown id; 422
`{"errors": ["Assignee is invalid"]}` for an `assigned_to_id` that is no user
or group (`""` unassigns). A `status_id` the workflow doesn't allow the key's
user, or that names no status, is silently dropped: 204, the status as it
was. An admin's key may make any transition; another key follows `workflow`
(status name to the names it may move to), by default what the real server's
Developer role may do on a Feature: nothing out of Closed or Rejected.
`GET /issues/{id}.json?include=allowed_statuses` lists them (the current
status among them when it may stay, none at all from a closed one), and
`GET /issue_statuses.json` lists the statuses. Requests that write are kept
in `writes` (id and body).

Projects: `project_id` (a project's identifier or numeric id) narrows the list
to that project and its subprojects, as Redmine does with its default setting
"Display subprojects issues on main projects by default"; an unknown project
is a 404. Issues start in `operations` (id 1); `add_project` adds more, and
moving an issue (`move`) is an edit like any other: it changes `updated_on`.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from fakes import FakeApi, Reply, Request

CLOSED = {"Resolved", "Closed", "Rejected"}
STATUSES = {
    "New": 1,
    "In Progress": 2,
    "Resolved": 3,
    "Feedback": 4,
    "Closed": 5,
    "Rejected": 6,
}
"""Redmine's default statuses, by name, with their ids (`/issue_statuses.json`)."""
_WORKING = ["In Progress", "Resolved", "Feedback", "Closed"]
DEVELOPER_WORKFLOW: dict[str, list[str]] = {
    "New": ["New", *_WORKING],
    "In Progress": _WORKING,
    "Resolved": _WORKING,
    "Feedback": _WORKING,
    "Closed": [],
    "Rejected": [],
}
"""What the real server's Developer may move a Feature to, from each status (seen on it)."""

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# What Redmine's `parse_date` takes for a time: whole seconds, Z or an offset.
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(Z|[+-]\d{2}:?\d{2})?")


def stamp(moment: dt.datetime) -> str:
    """A time as Redmine shows it: UTC, floored to the second."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeRedmine(FakeApi):
    sends_date = False

    def __init__(
        self, api_key: str, *, sends_date: bool = False, admin_keys: tuple[str, ...] = ()
    ) -> None:
        super().__init__()
        self.sends_date = sends_date
        self.api_key = api_key
        self.keys = {api_key, *admin_keys}
        self.admin_keys = set(admin_keys)
        self.users: dict[int, dict[str, Any]] = {}
        """Users by id: login, firstname, lastname, mail, and `hide_mail`, `locked`."""
        self.groups: dict[int, str] = {}
        """Groups by id: their name."""
        self.user_requests: list[str] = []
        """The path of each `/users/…` and `/groups/…` request."""
        self.issues: dict[int, dict[str, Any]] = {}
        self.changed: dict[int, dt.datetime] = {}
        """Each issue's last change with its microseconds, which the API never shows."""
        self.projects: dict[str, dict[str, Any]] = {
            "operations": {"id": 1, "name": "Operations", "parent": None}
        }
        """Projects by identifier: their numeric id, name and parent's identifier."""
        self.journals: dict[int, list[dict[str, Any]]] = {}
        """Each issue's journals, oldest first, shown only by the show endpoint."""
        self.workflow = {name: list(allowed) for name, allowed in DEVELOPER_WORKFLOW.items()}
        """For a key not an admin's: the statuses it may move an issue to, from each."""
        self.writes: list[tuple[int, Any]] = []
        """Each `PUT /issues/{id}.json`: the issue's id and the body sent."""

    def add_project(self, identifier: str, name: str, parent: str | None = None) -> None:
        """A project (a subproject of `parent`), to put issues in with `project=identifier`."""
        with self.lock:
            number = max(p["id"] for p in self.projects.values()) + 1
            self.projects[identifier] = {"id": number, "name": name, "parent": parent}

    def project_ref(self, identifier: str) -> dict[str, Any]:
        """How an issue names its project: `{"id": 1, "name": "Operations"}`."""
        project = self.projects[identifier]
        return {"id": project["id"], "name": project["name"]}

    def move(self, number: int, identifier: str, updated: dt.datetime | None = None) -> None:
        """Move issue `number` to project `identifier` (made if new), an edit at `updated`.

        It leaves the first project's listing, with nothing to say it went.
        """
        if identifier not in self.projects:
            self.add_project(identifier, identifier.title())
        self.touch(number, updated, project=self.project_ref(identifier))

    def add(self, number: int, updated: dt.datetime | None = None, **fields: Any) -> dict[str, Any]:
        """Create issue `number`, changed at `updated` (default: now on the fake's clock)."""
        with self.lock:
            moment = self.clock.now() if updated is None else updated
            issue = {
                "id": number,
                "project": self.project_ref("operations"),
                "tracker": {"id": 1, "name": "Support"},
                "status": _status("New"),
                "priority": {"id": 2, "name": "Normal"},
                "author": {"id": 5, "name": "Ana Ops"},
                "subject": f"Issue {number}",
                "due_date": None,
                "created_on": stamp(moment - dt.timedelta(hours=1)),
                "updated_on": stamp(moment),
                **fields,
            }
            self.issues[number] = issue
            self.changed[number] = moment
        return issue

    def delete(self, number: int) -> None:
        """Delete issue `number`: it vanishes from every listing, with no trace."""
        with self.lock:
            del self.issues[number], self.changed[number]

    def touch(self, number: int, updated: dt.datetime | None = None, **fields: Any) -> None:
        """Change issue `number` at `updated` (default: now on the fake's clock)."""
        with self.lock:
            moment = self.clock.now() if updated is None else updated
            self.issues[number].update(fields, updated_on=stamp(moment))
            self.changed[number] = moment

    def add_user(
        self, number: int, login: str, mail: str, *, hide_mail: bool = True, locked: bool = False
    ) -> None:
        """A user, `Firstname Lastname` made from `login` (`ana.ops` is Ana Ops)."""
        first, _, last = login.partition(".")
        with self.lock:
            self.users[number] = {
                "login": login,
                "firstname": first.capitalize(),
                "lastname": last.capitalize() or "User",
                "mail": mail,
                "hide_mail": hide_mail,
                "locked": locked,
            }

    def note(
        self,
        number: int,
        notes: str,
        *,
        user: tuple[int, str] = (5, "Ana Ops"),
        private: bool = False,
        updated: dt.datetime | None = None,
        details: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Add a journal to issue `number` (a note, or "" for a change without one) at `updated`."""
        with self.lock:
            moment = self.clock.now() if updated is None else updated
            journals = self.journals.setdefault(number, [])
            journal = {
                "id": 1 + sum(len(j) for j in self.journals.values()),
                "user": {"id": user[0], "name": user[1]},
                "notes": notes,
                "created_on": stamp(moment),
                "private_notes": private,
                "details": details or [],
            }
            journals.append(journal)
        self.touch(number, moment)
        return journal

    def route(self, request: Request) -> Reply:
        key = request.headers.get("x-redmine-api-key")
        if key not in self.keys:
            return Reply(401, raw=b"", content_type="text/plain")
        principal = re.fullmatch(r"/(users|groups)/(\d+)\.json", request.path)
        if principal is not None:
            with self.lock:
                self.user_requests.append(request.path)
            kind, number = principal.group(1), int(principal.group(2))
            if kind == "groups":
                if number not in self.groups:
                    return Reply(404, raw=b"", content_type="application/json")
                return Reply(200, {"group": {"id": number, "name": self.groups[number]}})
            return self._user(number, admin=key in self.admin_keys)
        if request.path == "/issue_statuses.json":
            return Reply(200, {"issue_statuses": [_status(name) for name in STATUSES]})
        shown = re.fullmatch(r"/issues/(\d+)\.json", request.path)
        if shown and request.method == "PUT":
            return self._update(int(shown.group(1)), request, admin=key in self.admin_keys)
        if shown:
            return self._show(int(shown.group(1)), request, admin=key in self.admin_keys)
        if request.path != "/issues.json":
            return Reply(404, {"errors": ["Not found"]})
        issues = list(self.issues.values())
        scope = request.param("project_id")
        if scope:
            ids = self._project_ids(scope)
            if not ids:
                return Reply(404, raw=b"", content_type="text/plain")
            issues = [i for i in issues if i["project"]["id"] in ids]
        if request.param("status_id") != "*":
            issues = [i for i in issues if i["status"]["name"] not in CLOSED]
        first = request.param("issue_id")
        if first:
            if not re.fullmatch(r">=\d+", first):
                return Reply(422, {"errors": ["Issue is invalid"]})
            issues = [i for i in issues if i["id"] >= int(first[2:])]
        condition = request.param("updated_on")
        if condition:
            after = _after(condition)
            if after is None:
                return Reply(422, {"errors": ["Updated is invalid"]})
            issues = [i for i in issues if self.changed[i["id"]] > after]
        sort = request.param("sort")
        if sort == "updated_on,id":
            issues.sort(key=lambda i: (self.changed[i["id"]], i["id"]))
        elif sort == "id":
            issues.sort(key=lambda i: i["id"])
        elif sort == "updated_on":
            issues.sort(key=lambda i: (self.changed[i["id"]], -i["id"]))
        else:
            issues.sort(key=lambda i: -i["id"])  # Redmine's default: newest id first
        offset = int(request.param("offset", "0") or 0)
        limit = min(100, int(request.param("limit", "25") or 25))
        page = issues[offset : offset + limit]
        return Reply(
            200, {"issues": page, "total_count": len(issues), "offset": offset, "limit": limit}
        )

    def _user(self, number: int, *, admin: bool) -> Reply:
        """`/users/{id}.json` as an admin's key, or another's, sees it."""
        user = self.users.get(number)
        if user is None or (user["locked"] and not admin):
            return Reply(404, raw=b"", content_type="application/json")
        shown: dict[str, Any] = {
            "id": number,
            "login": user["login"],
            "firstname": user["firstname"],
            "lastname": user["lastname"],
            "created_on": "2026-01-05T09:00:00Z",
            "updated_on": "2026-01-05T09:00:00Z",
            "last_login_on": None,
        }
        if admin:
            shown.update(admin=False, mail=user["mail"], api_key=f"k{number:039d}")
            shown["status"] = 3 if user["locked"] else 1
        elif not user["hide_mail"]:
            shown["mail"] = user["mail"]
        return Reply(200, {"user": shown})

    def _show(self, number: int, request: Request, *, admin: bool) -> Reply:
        """`GET /issues/{id}.json`: the issue, with its journals or the statuses it may
        move to when `include` names them."""
        with self.lock:
            issue = self.issues.get(number)
            if issue is None:
                return Reply(404, raw=b"", content_type="text/plain")
            shown = dict(issue)
            included = (request.param("include") or "").split(",")
            if "journals" in included:
                shown["journals"] = [dict(j) for j in self.journals.get(number, [])]
            if "allowed_statuses" in included:
                allowed = self._allowed(issue["status"]["name"], admin=admin)
                shown["allowed_statuses"] = [_status(name) for name in allowed]
        return Reply(200, {"issue": shown})

    def _principal(self, number: str) -> dict[str, Any] | None:
        """How an issue names user or group `number`; None when it is neither."""
        if not number.isdigit():
            return None
        user = self.users.get(int(number))
        if user is not None:
            return {"id": int(number), "name": f"{user['firstname']} {user['lastname']}"}
        group = self.groups.get(int(number))
        return None if group is None else {"id": int(number), "name": group}

    def _allowed(self, current: str, *, admin: bool) -> list[str]:
        return list(STATUSES) if admin else self.workflow.get(current, [])

    def _update(self, number: int, request: Request, *, admin: bool) -> Reply:
        """`PUT /issues/{id}.json`: 204 and the change applied, as far as Redmine takes it."""
        body = request.json()
        changes = body.get("issue") if isinstance(body, dict) else None
        if not isinstance(changes, dict):
            return Reply(422, {"errors": ["Issue is invalid"]})  # what a body without it meets
        with self.lock:
            self.writes.append((number, body))
            issue = self.issues.get(number)
            if issue is None:
                return Reply(404, raw=b"", content_type="text/plain")
            fields: dict[str, Any] = {}
            if "assigned_to_id" in changes:
                assignee = str(changes["assigned_to_id"] or "")
                principal = self._principal(assignee) if assignee else None
                if assignee and principal is None:
                    return Reply(422, {"errors": ["Assignee is invalid"]})
                fields["assigned_to"] = principal
            names = {number: name for name, number in STATUSES.items()}
            status = names.get(int(changes.get("status_id") or 0))
            if status is not None and status in self._allowed(issue["status"]["name"], admin=admin):
                fields["status"] = _status(status)
            # else: dropped without a word, as Redmine drops an attribute it won't let you set
            changed = {k: v for k, v in fields.items() if issue.get(k) != v}
        if changed:
            if changed.get("assigned_to", "") is None:
                with self.lock:
                    self.issues[number].pop("assigned_to", None)
                changed.pop("assigned_to")
            self.note(number, "", details=[{"property": "attr", "name": k} for k in fields])
            self.touch(number, **changed)
        return Reply(204, raw=b"", content_type="application/json")

    def _project_ids(self, scope: str) -> set[int]:
        """The numeric ids of project `scope` (identifier or id) and its subprojects."""
        found = [k for k, p in self.projects.items() if scope in (k, str(p["id"]))]
        tree = set(found)
        while True:
            more = {k for k, p in self.projects.items() if p["parent"] in tree} - tree
            if not more:
                return {self.projects[k]["id"] for k in tree}
            tree |= more


def _status(name: str) -> dict[str, Any]:
    """A status as Redmine shows it: `{"id", "name", "is_closed"}`."""
    return {"id": STATUSES[name], "name": name, "is_closed": name in {"Closed", "Rejected"}}


def _after(condition: str) -> dt.datetime | None:
    """What `updated_on=>=VALUE` matches: changes strictly after this; None if invalid.

    Redmine's `date_clause` turns `>= T` into `> T - 1 s` for a time, and
    into "after the end of the day before" for a date (the user's zone: UTC here).
    """
    if not condition.startswith(">="):
        return None
    value = condition[2:]
    if _DATE.fullmatch(value):
        day = dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC)
        return day - dt.timedelta(microseconds=1)
    if not _TIME.fullmatch(value):
        return None
    moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment - dt.timedelta(seconds=1)
