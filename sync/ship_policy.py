"""Ship's policy toward Fragment: the retry table, the rate-limit floor, the request budget.

Data, read by the request loop every HTTP client shares (`sync_http.session`):
which answers are retried, which wait for a rate limit (`Retry-After` or
the rate-limit headers, never less, else `FRAGMENT_RATE_LIMIT_FLOOR`
doubling), which set the batch's items aside for bisection
(`sync.ship.isolate`), and which fail the pass. `ShipPolicy.for_fragment`
builds the whole of it from `fragment.*` settings; the Fragment client
(`sync.fragment`) takes one and only carries requests. Apart from `sync.ship`
because the table names httpx's exceptions: a pass with nothing to push
never loads this.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import httpx

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


FRAGMENT_RATE_LIMIT_FLOOR = 2.0
"""Wait this long on a 429 without `Retry-After` (doubling on each repeat)."""


def classify_answer(outcome: httpx.Response | Exception) -> Rule:
    """What `RETRY_POLICY` says to do with one of Fragment's answers (or a transport error)."""
    return classify(outcome, RETRY_POLICY)


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
