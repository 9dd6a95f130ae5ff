"""Ship's policy toward Fragment: the retry table, the request budget, and bisection.

- The retry table (`RETRY_POLICY`), read by the request loop every HTTP client
  shares (`sync_http.session`): which answers are retried, which wait for a
  rate limit (`Retry-After` or the rate-limit headers, never less, else
  `FRAGMENT_RATE_LIMIT_FLOOR` doubling), which refuse the batch's items, and
  which fail the pass.
- The request budget under `fragment.requests_per_minute` and the retry
  limits: `ShipPolicy.for_fragment` builds them, with the table, from the
  settings.
- Bisection (`isolate`): a refused request's bad items are set aside and
  the good ones land.

The Fragment client (`sync.fragment`) applies this and only carries requests;
`sync.ship` keeps the shipments in flight. This sits below both (the client
applies it) and loads httpx (the table names its exceptions), which a pass
with nothing to push never does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import httpx

from sync.batches import Payload, PushResult, Refusal, Rejected
from sync.config import FragmentSettings
from sync_http.bounded import ResponseTooLarge
from sync_http.policy import TRANSIENT, Action, Classifier, Policy, Rule, classify
from sync_http.ratelimit import RequestBudget
from sync_http.session import RetrySettings

RETRY_POLICY: Policy = {
    **TRANSIENT,
    400: Rule(Action.REJECT, "bad request: some items are invalid"),
    401: Rule(Action.FAIL_AUTH, "the token is missing or invalid (fragment.token)"),
    403: Rule(Action.FAIL_AUTH, "the token lacks permission (Fragment asks for super admin)"),
    404: Rule(Action.FAIL, "not found: check fragment.url (it should end in /api/v1)"),
    409: Rule(Action.FAIL, "conflict"),
    413: Rule(Action.REJECT, "batch too large: it is split"),
    422: Rule(Action.REJECT, "some items are invalid"),
    ResponseTooLarge: Rule(
        Action.FAIL, "the answer is larger than fragment.max_response_size allows"
    ),
}
"""Fragment's answers: status or exception type → what to do (unlisted 5xx retry, 4xx fail)."""


COMMENT_POLICY: Policy = {
    **RETRY_POLICY,
    404: Rule(Action.REJECT, "the task is not in Fragment"),
    409: Rule(Action.REJECT, "conflict"),
}
"""Fragment's answers to a comment (`POST /tasks/{uid}/comments`): as `RETRY_POLICY`, but a
404 is the task gone, which refuses that comment alone. The POST is not idempotent: the
client sends it with `idempotent=False`, so an answer that leaves unknown whether it landed
is not retried blindly (`sync.comments` looks first)."""


FRAGMENT_RATE_LIMIT_FLOOR = 2.0
"""Wait this long on a 429 without `Retry-After` (doubling on each repeat)."""


def classify_answer(outcome: httpx.Response | Exception) -> Rule:
    """What `RETRY_POLICY` says to do with one of Fragment's answers (or a transport error)."""
    return classify(outcome, RETRY_POLICY)


def classify_comment_answer(outcome: httpx.Response | Exception) -> Rule:
    """What `COMMENT_POLICY` says to do with Fragment's answer to a comment."""
    return classify(outcome, COMMENT_POLICY)


@dataclass(frozen=True)
class ShipPolicy:
    """How requests to Fragment are paced and retried: handed to the session that sends them."""

    budget: RequestBudget
    """Keeps us under `fragment.requests_per_minute`; a server's hold stops every sender."""
    retry: RetrySettings
    """How often and how long to retry what `RETRY_POLICY` calls transient or rate-limited."""
    classify: Classifier = field(default=classify_answer)
    """Reads each answer; `RETRY_POLICY` unless a caller (a test) gives another table."""

    @classmethod
    def for_fragment(cls, settings: FragmentSettings, stop: threading.Event) -> ShipPolicy:
        """The policy `settings` ask for; a set `stop` cuts any wait for the budget short."""
        return cls(
            budget=RequestBudget.per_minute(settings.requests_per_minute, stop=stop),
            retry=RetrySettings(
                max_attempts=settings.max_attempts,
                max_wait=settings.max_retry_wait.total_seconds(),
                rate_limit_floor=FRAGMENT_RATE_LIMIT_FLOOR,
            ),
        )


S = TypeVar("S", bound=Payload)

SendRequest = Callable[[list[S], PushResult], Refusal | None]
"""Sends one request of items, counting its attempts into the result; None when acknowledged."""


def isolate(send: SendRequest[S], items: Sequence[S], into: PushResult | None = None) -> PushResult:
    """Send `items` in one request; when refused, set the bad items aside and land the rest.

    A refusal that names items sets those aside and sends the rest again: one
    more request. When it names every item, that is all: bisecting would cost
    2n - 1 requests. A refusal naming none is split in two, each half sent on
    its own, until the bad items are alone: about 2k·log2(n/k) requests for k
    bad items among n. Returns `into` (or a new result) with what landed and
    what was refused; every request beyond the first counts in
    `isolation_requests`. Raises what `send` raises (retries ran out, a stop).
    """
    result = PushResult() if into is None else into
    _isolate(send, list(items), result, isolating=False)
    return result


def _isolate(send: SendRequest[S], items: list[S], result: PushResult, isolating: bool) -> None:
    if not items:
        return
    result.isolation_requests += isolating
    refusal = send(items, result)
    if refusal is None:
        result.acked.extend(items)
        return
    named = refusal.named
    if len(items) == 1:
        field_name, message = named.get(0, (None, refusal.message))
        result.rejected.append(Rejected(items[0], message, field_name))
        return
    if named:
        for index in sorted(named):
            field_name, message = named[index]
            result.rejected.append(Rejected(items[index], message, field_name))
        rest = [item for index, item in enumerate(items) if index not in named]
        _isolate(send, rest, result, isolating=True)
        return
    middle = len(items) // 2
    _isolate(send, items[:middle], result, isolating=True)
    _isolate(send, items[middle:], result, isolating=True)
