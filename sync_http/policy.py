"""Retry policies as data: what to do with each answer a server gives.

A policy is a table from HTTP status (or exception type) to a `Rule`: the
action and a line a person can act on. `classify` reads a table, and
`SOURCE_POLICY` plus `rate_limit_signal` cover what ticket systems send:
429s, GitHub's and Salesforce's 403s, Linear's 400s, bodies that say
"rate limit". Fragment's table is Ship's (`sync.ship_policy`).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import httpx

from sync_http.auth import TokenEndpointFailed, TokenRefused
from sync_http.bounded import ResponseTooLarge


class Action(enum.Enum):
    """What the client does with an answer."""

    ACCEPT = "accept"
    RETRY = "retry"  # transient: back off and send again
    RATE_LIMITED = "rate_limited"  # wait what the server says (or the floor), then again
    REJECT = "reject"  # the request's items are invalid: the caller isolates them
    FAIL_AUTH = "fail_auth"  # nothing will work until the credentials are fixed
    FAIL = "fail"  # persistent: this run fails with the message


@dataclass(frozen=True)
class Rule:
    action: Action
    meaning: str


Policy = Mapping[int | type[Exception], Rule]
Classifier = Callable[[httpx.Response | Exception], Rule]

TRANSIENT: Policy = {
    408: Rule(Action.RETRY, "request timeout"),
    425: Rule(Action.RETRY, "too early"),
    429: Rule(Action.RATE_LIMITED, "rate limited"),
    500: Rule(Action.RETRY, "server error"),
    502: Rule(Action.RETRY, "bad gateway"),
    503: Rule(Action.RETRY, "service unavailable"),
    504: Rule(Action.RETRY, "gateway timeout"),
    httpx.TimeoutException: Rule(Action.RETRY, "timed out"),
    httpx.TransportError: Rule(Action.RETRY, "connection failed"),
}
"""What every server's transient answers mean."""

SOURCE_POLICY: Policy = {
    **TRANSIENT,
    400: Rule(Action.FAIL, "the source refused the query (bad request)"),
    401: Rule(Action.FAIL_AUTH, "the source refused the credentials"),
    403: Rule(Action.FAIL_AUTH, "the credentials lack permission for this query"),
    404: Rule(Action.FAIL, "not found: check the URL, project or table"),
    410: Rule(Action.FAIL, "the endpoint is gone (removed by the vendor)"),
    422: Rule(Action.FAIL, "the source could not process the query"),
    TokenEndpointFailed: Rule(Action.RETRY, "the token endpoint failed"),
    TokenRefused: Rule(Action.FAIL_AUTH, "could not get an access token"),
    ResponseTooLarge: Rule(Action.FAIL, "the answer is larger than max_response_size allows"),
}
"""A ticket system's answers; a persistent 4xx fails the connector's run."""

_RATE_LIMIT_WORDS = (
    "rate limit",
    "ratelimit",
    "rate_limit",
    "too many requests",
    "request_limit_exceeded",
    "throttl",
)
_REMAINING_HEADERS = (
    "x-ratelimit-remaining",
    "x-rate-limit-remaining",
    "ratelimit-remaining",
    "x-hubspot-ratelimit-remaining",
)


def remaining_quota(headers: httpx.Headers) -> int | None:
    """The requests left in the current window, when a header says so."""
    for name in _REMAINING_HEADERS:
        value = headers.get(name)
        if value is not None:
            try:
                return int(float(value))
            except ValueError:
                return None
    return None


def rate_limit_signal(response: httpx.Response) -> bool:
    """Whether a 4xx other than 429 is really a rate limit.

    GitHub answers 403 (or 429) with `x-ratelimit-remaining: 0`, or with only
    a message body for secondary limits; Salesforce answers 403
    REQUEST_LIMIT_EXCEEDED; Linear answers 400 with a RATELIMITED error.
    """
    if response.status_code not in (400, 403, 429):
        return False
    if response.status_code == 429 or remaining_quota(response.headers) == 0:
        return True
    if "retry-after" in response.headers:
        return True
    try:
        text = response.text[:2000].lower()
    except (UnicodeDecodeError, httpx.ResponseNotRead):
        return False
    return any(word in text for word in _RATE_LIMIT_WORDS)


def classify(outcome: httpx.Response | Exception, policy: Policy) -> Rule:
    """The rule of `policy` for a response or a transport exception.

    Unlisted 2xx accept, 5xx retry, other statuses fail.
    """
    if isinstance(outcome, httpx.Response):
        status = outcome.status_code
        if status in policy:
            return policy[status]
        if 200 <= status < 300 or status == 304:
            return Rule(Action.ACCEPT, "ok")
        if status >= 500:
            return Rule(Action.RETRY, f"server error {status}")
        return Rule(Action.FAIL, f"unexpected status {status}")
    for kind in type(outcome).__mro__:
        rule = policy.get(kind)
        if rule is not None:
            return rule
    return Rule(Action.FAIL, f"{type(outcome).__name__}: {outcome}")


def source_classifier(policy: Policy = SOURCE_POLICY) -> Classifier:
    """A classifier for a ticket system: `policy`, with rate limits recognised in any guise."""

    def classify_source(outcome: httpx.Response | Exception) -> Rule:
        if isinstance(outcome, httpx.Response) and rate_limit_signal(outcome):
            return Rule(Action.RATE_LIMITED, "rate limited")
        return classify(outcome, policy)

    return classify_source
