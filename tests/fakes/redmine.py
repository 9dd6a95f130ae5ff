"""A fake Redmine `/issues.json`, as its REST API wiki documents it.

`status_id=*` or open issues only; `updated_on=>=ISO` compared at whole
seconds, inclusive; `sort=updated_on,id`; offset/limit paging (limit at most
100, default 25) with `total_count`; the `X-Redmine-API-Key` header; deleted
issues simply vanish.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fakes import FakeApi, Reply, Request

CLOSED = {"Resolved", "Closed", "Rejected"}


def stamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeRedmine(FakeApi):
    def __init__(self, api_key: str) -> None:
        super().__init__()
        self.api_key = api_key
        self.issues: dict[int, dict[str, Any]] = {}

    def add(self, number: int, updated: dt.datetime, **fields: Any) -> dict[str, Any]:
        issue = {
            "id": number,
            "project": {"id": 1, "name": "Operations"},
            "tracker": {"id": 1, "name": "Support"},
            "status": {"id": 1, "name": "New"},
            "priority": {"id": 2, "name": "Normal"},
            "author": {"id": 5, "name": "Ana Ops"},
            "subject": f"Issue {number}",
            "due_date": None,
            "created_on": stamp(updated - dt.timedelta(hours=1)),
            "updated_on": stamp(updated),
            **fields,
        }
        with self.lock:
            self.issues[number] = issue
        return issue

    def touch(self, number: int, updated: dt.datetime, **fields: Any) -> None:
        with self.lock:
            self.issues[number].update(fields, updated_on=stamp(updated))

    def route(self, request: Request) -> Reply:
        if request.path != "/issues.json":
            return Reply(404, {"errors": ["Not found"]})
        if request.headers.get("x-redmine-api-key") != self.api_key:
            return Reply(401, raw=b"", content_type="text/plain")
        issues = list(self.issues.values())
        if request.param("status_id") != "*":
            issues = [i for i in issues if i["status"]["name"] not in CLOSED]
        condition = request.param("updated_on")
        if condition:
            if not condition.startswith(">="):
                return Reply(422, {"errors": ["Updated is invalid"]})
            try:
                bound = dt.datetime.fromisoformat(condition[2:].replace("Z", "+00:00"))
            except ValueError:
                return Reply(422, {"errors": ["Updated is invalid"]})
            issues = [i for i in issues if i["updated_on"] >= stamp(bound)]
        if request.param("sort") == "updated_on,id":
            issues.sort(key=lambda i: (i["updated_on"], i["id"]))
        else:
            issues.sort(key=lambda i: -i["id"])  # Redmine's default: newest id first
        offset = int(request.param("offset", "0") or 0)
        limit = min(100, int(request.param("limit", "25") or 25))
        page = issues[offset : offset + limit]
        return Reply(
            200, {"issues": page, "total_count": len(issues), "offset": offset, "limit": limit}
        )
