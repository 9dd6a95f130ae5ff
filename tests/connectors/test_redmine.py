"""The Redmine connector against a fake of Redmine's REST API, plus its own pitfalls."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest

from fakes import Reply, Request
from fakes.redmine import FakeRedmine
from fakes.suite import T0, ConnectorSuite, VendorCase

API_KEY = "redmine-key-5b0c11"


class RedmineCase(VendorCase):
    kind = "redmine"
    fake: FakeRedmine

    def options(self) -> dict[str, Any]:
        return {"base_url": self.fake.base_url, "api_key": API_KEY, "page_size": self.page_size}

    def put(self, number: int, updated: dt.datetime, version: int) -> None:
        subject = f"Printer {number} jammed v{version}"
        if number in self.fake.issues:
            self.fake.touch(number, updated, subject=subject)
        else:
            self.fake.add(number, updated, subject=subject)

    def remove(self, number: int, at: dt.datetime) -> None:
        del self.fake.issues[number]

    def put_malformed(self, number: int, updated: dt.datetime) -> str:
        issue = self.fake.add(number, updated)
        issue["updated_on"] = "yesterday-ish"
        return "updated_on"

    def rate_limit(self, wait: int) -> Reply:
        # Core Redmine has no rate limit; proxies in front of hosted ones answer 429.
        return Reply(429, {"errors": ["Too many requests"]}, headers={"Retry-After": str(wait)})

    def title(self, number: int, version: int) -> str:
        return f"#{number} Printer {number} jammed v{version}"

    def is_page_request(self, request: Request) -> bool:
        return request.path == "/issues.json"


@pytest.fixture
def case() -> Iterator[RedmineCase]:
    with FakeRedmine(API_KEY) as fake:
        yield RedmineCase(fake)


class TestRedmine(ConnectorSuite):
    pass


def test_every_status_is_asked_for_and_sorted_by_update(case: RedmineCase) -> None:
    from connectors.redmine import RedmineConnector, RedmineOptions

    connector = RedmineConnector(
        "redmine", RedmineOptions(base_url=case.fake.base_url, api_key=API_KEY, page_size=5)
    )
    case.add(1, T0)
    case.fake.add(2, T0 + dt.timedelta(minutes=1), status={"id": 5, "name": "Closed"})
    case.versions[2] = 1
    tickets = list(connector.pull(T0))
    connector.close()
    assert [t.source_id for t in tickets] == ["1", "2"]  # the closed one too
    [request] = case.fake.gets("/issues.json")
    assert request.param("status_id") == "*"
    assert request.param("sort") == "updated_on,id"
    assert request.param("updated_on") == ">=2026-11-02T09:00:00Z"
    assert request.headers["x-redmine-api-key"] == API_KEY
