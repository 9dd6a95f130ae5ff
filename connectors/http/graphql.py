"""GraphQL over the REST toolkit: a query is a POST of `{"query", "variables"}`.

`graphql_request` builds the first page's `PageRequest`; `GraphQLCursorPaginator`
(`connectors.http.paginators`) sets the `after` variable from each answer's
`pageInfo`. GraphQL answers a failed query with 200 and an `errors` list, so each
answer goes through `graphql_answer` inside the session's retry loop: a rate
limit said in the body (GitHub's `RATE_LIMITED`, Linear's `RATELIMITED`) waits
like a 429, what the `x-ratelimit-*` or `Retry-After` headers ask, else the
floor; any other error fails the request naming the errors. An answer with data
*and* errors fails too: a listing with a hole in it must not pass for whole.

Some servers answer a failed query with a 4xx and the same `errors` body (Linear: 400
for a rate limit, a refused key or an invalid query): `graphql_classifier` reads those
bodies before the status's own rule, so a 400 that says RATELIMITED waits and one that
says AUTHENTICATION_ERROR fails as refused credentials. `codes` maps a vendor's error
codes to the rule they mean, naming what to fix.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

import httpx

from connectors.http.paginators import PageRequest
from sync_http.policy import Action, Classifier, Policy, Rule, source_classifier
from sync_http.redaction import excerpt

RATE_LIMIT_CODES = frozenset({"RATE_LIMITED", "RATE_LIMIT", "RATELIMITED", "GRAPHQL_RATE_LIMIT"})
"""Error `type`s (GitHub: RATE_LIMITED, lately RATE_LIMIT) and `extensions.code`s (Linear:
RATELIMITED) that mean a rate limit, compared upper-cased."""
RATE_LIMIT_WORDS = ("rate limit",)
"""Words of an error's message that mean one when no code says so (GitHub's secondary limits:
"You have exceeded a secondary rate limit")."""
SHOWN_ERRORS = 3
"""Errors quoted in a failure's message; the rest are counted."""


ErrorCodes = Mapping[str, Rule]
"""A vendor's GraphQL error codes (`extensions.code`, or `type`), upper-cased, to what they
mean: `{"AUTHENTICATION_ERROR": Rule(Action.FAIL_AUTH, "... check api_key")}`."""


def graphql_request(
    url: str,
    query: str,
    variables: dict[str, Any] | None = None,
    codes: ErrorCodes | None = None,
) -> PageRequest:
    """The request for a GraphQL `query` with `variables`, answers checked by `graphql_answer`
    (with the vendor's error `codes`)."""
    body = {"query": query, "variables": dict(variables or {})}
    check = graphql_answer if not codes else functools.partial(graphql_answer, codes=codes)
    return PageRequest(url, method="POST", json=body, check=check)


def graphql_classifier(policy: Policy, codes: ErrorCodes | None = None) -> Classifier:
    """A source classifier (`source_classifier(policy)`) that reads a 4xx's GraphQL `errors`
    first, as `graphql_answer` reads a 200's. A 4xx without them gets the policy's rule; so
    does a 401 or 403 whose errors name neither a rate limit nor one of `codes` (the
    policy's wording names the credentials)."""
    base = source_classifier(policy)

    def classify(outcome: httpx.Response | Exception) -> Rule:
        if isinstance(outcome, httpx.Response) and 400 <= outcome.status_code < 500:
            errors = _errors(outcome)
            if errors and (outcome.status_code not in (401, 403) or _named(errors, codes)):
                return _rule(errors, codes)
        return base(outcome)

    return classify


def graphql_answer(response: httpx.Response, codes: ErrorCodes | None = None) -> Rule | None:
    """What to do with a GraphQL answer: None when it carries no errors.

    A rate limit (by code, else by its message) is `Action.RATE_LIMITED`; an
    error whose code is in `codes` takes that rule, the errors named after its
    meaning; any other error is `Action.FAIL`, its meaning naming up to
    `SHOWN_ERRORS` of them with their type and path. A body that is not JSON is
    left to the caller to report.
    """
    errors = _errors(response)
    return _rule(errors, codes) if errors else None


def _errors(response: httpx.Response) -> list[Any]:
    """The answer's GraphQL `errors`, [] when it has none or is not JSON."""
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError, RecursionError):
        return []
    errors = body.get("errors") if isinstance(body, dict) else None
    if not errors:
        return []
    return errors if isinstance(errors, list) else [errors]


def _named(errors: list[Any], codes: ErrorCodes | None) -> bool:
    """Whether `errors` say more than a failure: a rate limit, or one of `codes`."""
    known = codes or {}
    return any(_rate_limited(e) or _code(e).upper() in known for e in errors)


def _rule(errors: list[Any], codes: ErrorCodes | None) -> Rule:
    described = [_described(error) for error in errors]
    if any(_rate_limited(error) for error in errors):
        return Rule(Action.RATE_LIMITED, f"rate limited (GraphQL): {described[0]}")
    shown = "; ".join(described[:SHOWN_ERRORS])
    more = len(described) - SHOWN_ERRORS
    if more > 0:
        shown += f"; and {more} more"
    for error in errors:
        known = (codes or {}).get(_code(error).upper())
        if known is not None:
            return Rule(known.action, f"{known.meaning} ({shown})")
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
