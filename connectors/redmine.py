"""Redmine: `/issues.json`, every status, oldest change first.

Calls `GET /issues.json?status_id=*&updated_on=>=W&sort=updated_on,id` with
the `X-Redmine-API-Key` header, paging by offset/limit. Offsets shift when an
issue is edited mid-scan, so each page re-anchors on the last `updated_on`
seen (skipping the ids already read there) instead of trusting the offset.
`status_id=*` matters: without it Redmine returns open issues only. Deleted
issues vanish from the API without a trace; they are not archived.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

import httpx
from pydantic import Field, SecretStr

from connectors.base import WHOLE_SECOND_LOOKBACK, Cursor
from connectors.http import HttpOptions, OffsetPaginator, Paginator, RestConnector
from connectors.values import whole_seconds_utc
from sync_http.auth import api_key_header


class RedmineOptions(HttpOptions):
    api_key: SecretStr
    """A Redmine API key (My account > API access key)."""
    project: str | None = None
    """A project identifier to limit the sync to (with its subprojects)."""
    page_size: int = Field(default=100, ge=1, le=100)
    """Issues per request, up to 100."""


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
        if self.options.project:
            params["project_id"] = self.options.project
        return params

    def enrich(self, record: dict[str, Any]) -> dict[str, Any]:
        return {**record, "web_url": f"{self.options.base_url}/issues/{record.get('id')}"}
