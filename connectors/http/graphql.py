"""GraphQL over the REST toolkit: a query is a POST of `{"query", "variables"}`.

`graphql_request` builds the first page's `PageRequest`; `GraphQLCursorPaginator`
(`connectors.http.paginators`) sets the `after` variable from each answer's
`pageInfo`. GraphQL answers a failed query with 200 and an `errors` list, so each
answer goes through `graphql_answer` inside the session's retry loop: a rate
limit said in the body (GitHub's `RATE_LIMITED`, Linear's `RATELIMITED`) waits
like a 429, what the `x-ratelimit-*` or `Retry-After` headers ask, else the
floor; any other error fails the request naming the errors. An answer with data
*and* errors fails too: a listing with a hole in it must not pass for whole.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from connectors.http.paginators import PageRequest
from sync_http.policy import Action, Rule
from sync_http.redaction import excerpt

RATE_LIMIT_CODES = frozenset({"RATE_LIMITED", "RATE_LIMIT", "RATELIMITED", "GRAPHQL_RATE_LIMIT"})
"""Error `type`s (GitHub: RATE_LIMITED, lately RATE_LIMIT) and `extensions.code`s (Linear:
RATELIMITED) that mean a rate limit, compared upper-cased."""
RATE_LIMIT_WORDS = ("rate limit",)
"""Words of an error's message that mean one when no code says so (GitHub's secondary limits:
"You have exceeded a secondary rate limit")."""
SHOWN_ERRORS = 3
"""Errors quoted in a failure's message; the rest are counted."""


def graphql_request(url: str, query: str, variables: dict[str, Any] | None = None) -> PageRequest:
    """The request for a GraphQL `query` with `variables`, answers checked by `graphql_answer`."""
    body = {"query": query, "variables": dict(variables or {})}
    return PageRequest(url, method="POST", json=body, check=graphql_answer)


def graphql_answer(response: httpx.Response) -> Rule | None:
    """What to do with a GraphQL answer the status accepted: None when it carries no errors.

    A rate limit (by code, else by its message) is `Action.RATE_LIMITED`; any other
    error is `Action.FAIL`, its meaning naming up to `SHOWN_ERRORS` of them with
    their type and path. A body that is not JSON is left to the caller to report.
    """
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    errors = body.get("errors") if isinstance(body, dict) else None
    if not errors:
        return None
    listed = errors if isinstance(errors, list) else [errors]
    described = [_described(error) for error in listed]
    if any(_rate_limited(error) for error in listed):
        return Rule(Action.RATE_LIMITED, f"rate limited (GraphQL): {described[0]}")
    shown = "; ".join(described[:SHOWN_ERRORS])
    more = len(described) - SHOWN_ERRORS
    if more > 0:
        shown += f"; and {more} more"
    return Rule(Action.FAIL, f"the GraphQL query failed: {shown}")


def _code(error: Any) -> str:
    if not isinstance(error, dict):
        return ""
    extensions = error.get("extensions")
    code = error.get("type") or (extensions.get("code") if isinstance(extensions, dict) else None)
    return str(code or "")


def _rate_limited(error: Any) -> bool:
    if _code(error).upper() in RATE_LIMIT_CODES:
        return True
    message = str(error.get("message", "")) if isinstance(error, dict) else str(error)
    return any(word in message.lower() for word in RATE_LIMIT_WORDS)


def _described(error: Any) -> str:
    """`TYPE: message (at a.b.c)`, excerpted and redacted."""
    if not isinstance(error, dict):
        return excerpt(json.dumps(error, default=str), 200)
    code = _code(error)
    text = excerpt(str(error.get("message", "")), 200) or "(no message)"
    path = error.get("path")
    where = f" (at {'.'.join(str(p) for p in path)})" if isinstance(path, list) and path else ""
    return f"{code}: {text}{where}" if code else f"{text}{where}"
