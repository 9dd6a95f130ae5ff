"""Queries sent as a JSON body (GraphQL, search APIs) through the REST toolkit, over loopback.

A toy tracker serves `POST /graphql` (a Relay connection of items) and `POST /search`
(HubSpot's shape: the next page's `after` goes back in the body). A connector of a
few declarations reads both through `listed_ids`: the same session, so the same
pacing, retries, rate-limit waits, origin guard and redaction as a GET.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from connectors.errors import SourceError
from connectors.http import (
    SOURCE_POLICY,
    Action,
    GraphQLCursorPaginator,
    HttpOptions,
    NextTokenPaginator,
    PageRequest,
    RestConnector,
    Rule,
    graphql_answer,
    graphql_classifier,
    graphql_request,
)
from fakes import FakeApi, Reply, Request
from sync_http.auth import bearer
from sync_http.redaction import register_secrets

TOKEN = "toy_tok_5b0c1d2e3f4a"
QUERY = """query($first: Int!, $after: String) {
  items(first: $first, after: $after) { nodes { id } pageInfo { hasNextPage endCursor } }
}"""


class ToyTracker(FakeApi):
    def __init__(self, count: int) -> None:
        super().__init__()
        self.ids = list(range(1, count + 1))

    def route(self, request: Request) -> Reply:
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return Reply(401, {"message": "Bad credentials"})
        if request.headers.get("content-type") != "application/json":
            return Reply(415, {"message": "JSON only"})
        body = json.loads(request.body)
        if request.path == "/graphql" and request.method == "POST":
            variables = body["variables"]
            after = variables.get("after")
            start = 0 if after is None else int(base64.b64decode(after)) + 1
            page = self.ids[start : start + variables["first"]]
            last = start + len(page) - 1
            info = {
                "hasNextPage": last + 1 < len(self.ids),
                "endCursor": base64.b64encode(str(last).encode()).decode(),
            }
            nodes = [{"id": i} for i in page]
            return Reply(200, {"data": {"items": {"nodes": nodes, "pageInfo": info}}})
        if request.path == "/search" and request.method == "POST":
            start = int(body.get("after", 0))
            page = self.ids[start : start + body["limit"]]
            paging = {"next": {"after": str(start + len(page))}} if start + len(page) < len(
                self.ids
            ) else None  # fmt: skip
            return Reply(200, {"results": [{"id": i} for i in page], "paging": paging})
        return Reply(404, {"message": "Not Found"})


class ToyConnector(RestConnector):
    kind = "toy"

    def auth(self) -> Any:
        return bearer(SecretStr(TOKEN))

    def graphql_ids(self) -> Iterator[str]:
        request = graphql_request("/graphql", QUERY, {"first": 3})
        paginator = GraphQLCursorPaginator("data.items.pageInfo")
        return self.listed_ids(request, paginator, "data.items.nodes", "id")

    def search_ids(self) -> Iterator[str]:
        request = PageRequest("/search", method="POST", json={"limit": 3})
        paginator = NextTokenPaginator("paging.next.after", "after", in_body=True)
        return self.listed_ids(request, paginator, "results", "id")


@pytest.fixture
def tracker() -> Iterator[ToyTracker]:
    with ToyTracker(7) as fake:
        yield fake


def toy(fake: FakeApi, **options: Any) -> ToyConnector:
    settings = {"base_url": fake.base_url, "rate_limit_floor": "200ms", **options}
    return ToyConnector("toy", HttpOptions.model_validate(settings))


def listed(connector: ToyConnector, ids: Iterator[str] | None = None) -> list[str]:
    try:
        return list(ids if ids is not None else connector.graphql_ids())
    finally:
        connector.close()


def posts(fake: FakeApi, path: str = "/graphql") -> list[Request]:
    return [r for r in fake.requests if r.method == "POST" and r.path == path]


def test_a_graphql_connection_is_read_page_by_page_through_its_cursors(
    tracker: ToyTracker,
) -> None:
    assert listed(toy(tracker)) == [str(n) for n in range(1, 8)]
    sent = [json.loads(r.body)["variables"] for r in posts(tracker)]
    assert sent == [{"first": 3}, {"first": 3, "after": "Mg=="}, {"first": 3, "after": "NQ=="}]


def test_a_search_api_pages_by_a_token_in_the_posted_body(tracker: ToyTracker) -> None:
    connector = toy(tracker)
    assert listed(connector, connector.search_ids()) == [str(n) for n in range(1, 8)]
    bodies = [json.loads(r.body) for r in posts(tracker, "/search")]
    assert bodies == [{"limit": 3}, {"limit": 3, "after": "3"}, {"limit": 3, "after": "6"}]


def test_a_post_is_retried_like_a_get_body_and_all(tracker: ToyTracker) -> None:
    tracker.fail_next(Reply(502, raw=b"<html>Bad Gateway</html>", content_type="text/html"))
    assert listed(toy(tracker)) == [str(n) for n in range(1, 8)]
    failed, retried = posts(tracker)[:2]
    assert failed.body == retried.body


def test_graphql_errors_in_a_200_fail_naming_each_error_not_an_empty_listing(
    tracker: ToyTracker,
) -> None:
    errors = [
        {"type": "FORBIDDEN", "message": "Resource not accessible", "path": ["items"]},
        {"extensions": {"code": "BAD_USER_INPUT"}, "message": "first must be at most 100"},
        {"message": "three"},
        {"message": "four"},
    ]
    tracker.fail_next(Reply(200, {"data": {"items": None}, "errors": errors}))
    with pytest.raises(SourceError) as failed:
        listed(toy(tracker))
    message = str(failed.value)
    assert "the GraphQL query failed: FORBIDDEN: Resource not accessible (at items)" in message
    assert "BAD_USER_INPUT: first must be at most 100; three; and 1 more" in message
    assert len(posts(tracker)) == 1  # an error in the query is not retried


def test_a_secret_quoted_in_a_graphql_error_is_redacted(tracker: ToyTracker) -> None:
    register_secrets([TOKEN])
    tracker.fail_next(Reply(200, {"errors": [{"message": f"token {TOKEN} lacks a scope"}]}))
    with pytest.raises(SourceError) as failed:
        listed(toy(tracker))
    assert TOKEN not in str(failed.value) and "lacks a scope" in str(failed.value)


def test_a_rate_limit_said_in_a_200_body_waits_what_the_headers_ask(
    tracker: ToyTracker,
) -> None:
    """Linear's code, in `extensions`; GitHub's is a `type` (tests/connectors/test_github.py)."""
    limited = {"errors": [{"message": "Too busy", "extensions": {"code": "RATELIMITED"}}]}
    tracker.fail_next(Reply(200, limited, headers={"Retry-After": "0.5"}))
    assert listed(toy(tracker)) == [str(n) for n in range(1, 8)]
    first, again = posts(tracker)[:2]
    assert again.at - first.at >= 0.5
    assert first.body == again.body


def test_a_post_redirected_off_the_origin_is_not_sent_there(tracker: ToyTracker) -> None:
    elsewhere = f"http://localhost:{tracker.base_url.rsplit(':', 1)[1]}/graphql"
    tracker.fail_next(Reply(307, {}, headers={"Location": elsewhere}))
    with pytest.raises(SourceError, match="refused to send credentials to another origin"):
        listed(toy(tracker))
    assert len(tracker.requests) == 1


def test_a_post_redirected_within_the_origin_keeps_its_method_and_body(
    tracker: ToyTracker,
) -> None:
    """307 and 308 keep both (RFC 9110); the token goes along, to the same origin only."""
    tracker.fail_next(Reply(308, {}, headers={"Location": "/graphql"}))
    assert listed(toy(tracker)) == [str(n) for n in range(1, 8)]
    moved, followed = tracker.requests[:2]
    assert (followed.method, followed.body) == ("POST", moved.body)


def _answer(status: int, body: Any) -> httpx.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.Response(status, content=raw, request=httpx.Request("POST", "http://x/graphql"))


REFUSED = Rule(Action.FAIL_AUTH, "the vendor refused the key: check api_key")


@pytest.mark.parametrize(
    ("status", "body", "action", "said"),
    [
        # Linear's limit: a 400, not a 429, with the code in `extensions`.
        (
            400,
            {"errors": [{"message": "Rate limit exceeded", "extensions": {"code": "RATELIMITED"}}]},
            Action.RATE_LIMITED,
            "RATELIMITED",
        ),
        # Linear's refused key: a 400 (or 401) with AUTHENTICATION_ERROR: the vendor's rule.
        (
            400,
            {
                "errors": [
                    {
                        "message": "Authentication required, not authenticated",
                        "extensions": {"code": "AUTHENTICATION_ERROR"},
                    }
                ]
            },
            Action.FAIL_AUTH,
            "the vendor refused the key: check api_key (AUTHENTICATION_ERROR",
        ),
        (
            401,
            {
                "errors": [
                    {
                        "message": "Authentication required, not authenticated",
                        "extensions": {"code": "AUTHENTICATION_ERROR"},
                    }
                ]
            },
            Action.FAIL_AUTH,
            "check api_key",
        ),
        # An invalid query: the errors named, not "bad request".
        (
            400,
            {
                "errors": [
                    {
                        "message": 'Cannot query field "x" on type "Issue".',
                        "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"},
                    }
                ]
            },
            Action.FAIL,
            'GRAPHQL_VALIDATION_FAILED: Cannot query field "x"',
        ),
        # A 401 whose errors say nothing more: the policy's wording, naming the credentials.
        (401, {"errors": [{"message": "nope"}]}, Action.FAIL_AUTH, "refused the credentials"),
        # Not GraphQL at all: the policy's rule for the status.
        (429, b"<html>slow down</html>", Action.RATE_LIMITED, "rate limited"),
        (400, b"<html>bad</html>", Action.FAIL, "bad request"),
    ],
)
def test_a_4xx_is_read_by_its_graphql_errors_before_its_status(
    status: int, body: Any, action: Action, said: str
) -> None:
    classify = graphql_classifier(SOURCE_POLICY, {"AUTHENTICATION_ERROR": REFUSED})
    rule = classify(_answer(status, body))
    assert rule.action is action
    assert said in rule.meaning


def test_vendor_codes_name_a_200s_errors_too() -> None:
    body = {"errors": [{"message": "denied", "extensions": {"code": "AUTHENTICATION_ERROR"}}]}
    rule = graphql_answer(_answer(200, body), {"AUTHENTICATION_ERROR": REFUSED})
    assert rule is not None and rule.action is Action.FAIL_AUTH
    assert graphql_answer(_answer(200, {"data": {"items": []}})) is None
