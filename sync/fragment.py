"""The Fragment client: pushes batches of tasks through `PUT /tasks/batch`.

Owns the HTTP connection (timeouts, keep-alive, bearer auth, User-Agent), the
request budget that keeps us under Fragment's 60 requests a minute, the retry
policy (one table below), and the isolation of rejected items: a batch that
Fragment refuses as invalid is split until the good items land and each bad
one is set aside with the server's message. It knows nothing of sources,
state or watermarks.
"""

from __future__ import annotations

import enum
import json
import random
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import structlog

from connectors.ratelimit import MIN_WAIT, RequestBudget, backoff_delay, wait_from_headers
from sync.config import FragmentSettings
from sync.errors import FragmentAuthError, FragmentUnavailable, RunInterrupted
from sync.mapping import TaskPayload

log = structlog.get_logger("sync.fragment")


class Action(enum.Enum):
    """What the client does with an answer."""

    ACCEPT = "accept"
    RETRY = "retry"  # transient: back off and send again
    RATE_LIMITED = "rate_limited"  # wait what the server says, then send again
    REJECT = "reject"  # the items are invalid: isolate the bad ones
    FAIL_AUTH = "fail_auth"  # nothing will work until the token is fixed
    FAIL = "fail"  # a bug or a misconfiguration: stop this run


@dataclass(frozen=True)
class Rule:
    action: Action
    meaning: str


RETRY_POLICY: dict[int | type[Exception], Rule] = {
    200: Rule(Action.ACCEPT, "applied"),
    400: Rule(Action.REJECT, "bad request: some items are invalid"),
    401: Rule(Action.FAIL_AUTH, "the token is missing or invalid (fragment.token)"),
    403: Rule(Action.FAIL_AUTH, "the token lacks permission (Fragment asks for super admin)"),
    404: Rule(Action.FAIL, "not found: check fragment.url (it should end in /api/v1)"),
    408: Rule(Action.RETRY, "request timeout"),
    409: Rule(Action.FAIL, "conflict"),
    413: Rule(Action.REJECT, "batch too large: it is split"),
    422: Rule(Action.REJECT, "some items are invalid"),
    425: Rule(Action.RETRY, "too early"),
    429: Rule(Action.RATE_LIMITED, "rate limited"),
    500: Rule(Action.RETRY, "server error"),
    502: Rule(Action.RETRY, "bad gateway"),
    503: Rule(Action.RETRY, "service unavailable"),
    504: Rule(Action.RETRY, "gateway timeout"),
    httpx.TimeoutException: Rule(Action.RETRY, "timed out"),
    httpx.TransportError: Rule(Action.RETRY, "connection failed"),
}
"""Status code or exception type → what to do. Unlisted 2xx accept, 5xx retry, 4xx fail."""


def classify(outcome: int | Exception) -> Rule:
    """The rule for an HTTP status or a transport exception."""
    if isinstance(outcome, int):
        if outcome in RETRY_POLICY:
            return RETRY_POLICY[outcome]
        if 200 <= outcome < 300:
            return Rule(Action.ACCEPT, "applied")
        if outcome >= 500:
            return Rule(Action.RETRY, f"server error {outcome}")
        return Rule(Action.FAIL, f"unexpected status {outcome}")
    for kind in type(outcome).__mro__:
        rule = RETRY_POLICY.get(kind)
        if rule is not None:
            return rule
    return Rule(Action.FAIL, f"{type(outcome).__name__}: {outcome}")


@dataclass
class PushResult:
    """What became of one batch: the items that landed and the ones refused."""

    acked: list[TaskPayload] = field(default_factory=list)
    rejected: list[tuple[TaskPayload, str]] = field(default_factory=list)
    requests: int = 0
    """HTTP requests sent for this batch, retries and isolation included."""
    isolation_requests: int = 0
    """Of those, the extra requests spent isolating rejected items."""


@dataclass
class ClientStats:
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    by_status: dict[str, int] = field(default_factory=dict)


class FragmentClient:
    """A connection to Fragment's task API. Use as a context manager."""

    def __init__(
        self,
        settings: FragmentSettings,
        *,
        stop: threading.Event | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        token = settings.token.get_secret_value() if settings.token else ""
        self.settings = settings
        self.stop = stop or threading.Event()
        self.budget = RequestBudget.per_minute(settings.requests_per_minute, stop=self.stop)
        self.stats = ClientStats()
        self._rng = random.Random()
        self._http = httpx.Client(
            base_url=settings.url,
            timeout=httpx.Timeout(settings.timeout.total_seconds()),
            headers={
                "Authorization": f"Bearer {token}",
                "User-Agent": settings.user_agent,
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
            limits=httpx.Limits(max_keepalive_connections=4, keepalive_expiry=30),
            transport=transport,
        )

    def __enter__(self) -> FragmentClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def account(self) -> dict[str, Any]:
        """`GET /accounts/me`: proves the URL and token work. Raises `FragmentError`."""
        response = self._send("GET", "/accounts/me", None)
        data: dict[str, Any] = response.json()
        return data

    def push(self, items: Sequence[TaskPayload]) -> PushResult:
        """Upsert `items` with `PUT /tasks/batch`, isolating any the server rejects.

        Returns which items landed and which were refused (with the server's
        message). Raises `FragmentUnavailable` when retries run out,
        `FragmentAuthError` on 401/403, `RunInterrupted` on a stop request.
        """
        result = PushResult()
        self._deliver(list(items), result, isolating=False)
        return result

    def _deliver(self, items: list[TaskPayload], result: PushResult, isolating: bool) -> None:
        if not items:
            return
        result.isolation_requests += isolating
        response = self._send("PUT", "/tasks/batch", _batch_body(items), result)
        if classify(response.status_code).action is Action.ACCEPT:
            result.acked.extend(items)
            return
        detail = _detail(response)
        if len(items) == 1:
            result.rejected.append((items[0], _item_message(detail, 0) or _summary(detail)))
            return
        named = _rejected_indexes(detail, len(items))
        if named and len(named) < len(items):
            # The server named the bad items: set them aside, send the rest again.
            for index in sorted(named):
                result.rejected.append((items[index], named[index]))
            rest = [item for index, item in enumerate(items) if index not in named]
            self._deliver(rest, result, isolating=True)
            return
        middle = len(items) // 2
        self._deliver(items[:middle], result, isolating=True)
        self._deliver(items[middle:], result, isolating=True)

    def _send(
        self, method: str, path: str, body: bytes | None, tally: PushResult | None = None
    ) -> httpx.Response:
        """One logical request: paced, retried per `RETRY_POLICY`, until accepted or rejected.

        Each HTTP attempt is counted in `self.stats` and, when given, in `tally`.
        """
        attempt = 0
        cap = self.settings.max_retry_wait.total_seconds()
        while True:
            if not self.budget.acquire():
                raise RunInterrupted("stop requested while waiting to send to Fragment")
            attempt += 1
            self.stats.requests += 1
            if tally is not None:
                tally.requests += 1
            outcome: httpx.Response | Exception
            try:
                outcome = self._http.request(method, path, content=body)
                key = str(outcome.status_code)
            except httpx.HTTPError as exc:
                outcome = exc
                key = type(exc).__name__
            self.stats.by_status[key] = self.stats.by_status.get(key, 0) + 1
            status = outcome.status_code if isinstance(outcome, httpx.Response) else outcome
            rule = classify(status)
            if rule.action in (Action.ACCEPT, Action.REJECT):
                assert isinstance(outcome, httpx.Response)
                return outcome
            if rule.action is Action.FAIL_AUTH:
                raise FragmentAuthError(f"Fragment answered {key}: {rule.meaning}")
            if rule.action is Action.FAIL:
                raise FragmentUnavailable(
                    f"Fragment answered {key} to {method} {path}: {rule.meaning}{_excerpt(outcome)}"
                )
            if attempt >= self.settings.max_attempts:
                raise FragmentUnavailable(
                    f"Fragment still failing after {attempt} attempts "
                    f"({method} {path}, last: {key} {rule.meaning})"
                )
            self.stats.retries += 1
            if rule.action is Action.RATE_LIMITED:
                self.stats.rate_limited += 1
                assert isinstance(outcome, httpx.Response)
                asked = wait_from_headers(outcome.headers)
                wait = MIN_WAIT if asked is None else asked
                if wait > cap:
                    raise FragmentUnavailable(
                        f"Fragment asked to wait {wait:.0f}s (Retry-After), longer than "
                        f"fragment.max_retry_wait ({cap:.0f}s); the next run resumes"
                    )
                # Nothing at all goes out before the server's time is up.
                self.budget.hold(wait)
            else:
                wait = backoff_delay(attempt, base=0.5, cap=cap, rng=self._rng)
                self.budget.hold(wait)
            log.warning(
                "fragment_retry",
                method=method,
                path=path,
                answer=key,
                reason=rule.meaning,
                attempt=attempt,
                wait_s=round(wait, 3),
            )


def _batch_body(items: Iterable[TaskPayload]) -> bytes:
    # The payloads are already canonical JSON: join them, don't encode again.
    return b'{"items":[' + b",".join(item.body for item in items) + b"]}"


def _detail(response: httpx.Response) -> Any:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500]
    return body.get("detail", body) if isinstance(body, dict) else body


def _rejected_indexes(detail: Any, count: int) -> dict[int, str]:
    """Item index → message, from FastAPI-style `loc: ["body", "items", i, ...]` entries."""
    named: dict[int, str] = {}
    if not isinstance(detail, list):
        return named
    for entry in detail:
        if not isinstance(entry, dict):
            return {}
        loc = entry.get("loc")
        if not (isinstance(loc, list) and len(loc) >= 3 and loc[:2] == ["body", "items"]):
            return {}
        index = loc[2]
        if not isinstance(index, int) or not 0 <= index < count:
            return {}
        where = ".".join(str(part) for part in loc[3:])
        message = f"{where}: {entry.get('msg', 'invalid')}" if where else str(entry.get("msg"))
        named[index] = f"{named[index]}; {message}" if index in named else message
    return named


def _item_message(detail: Any, index: int) -> str | None:
    return _rejected_indexes(detail, index + 1).get(index)


def _summary(detail: Any) -> str:
    text = detail if isinstance(detail, str) else json.dumps(detail, ensure_ascii=False)
    return text[:1000]


def _excerpt(outcome: httpx.Response | Exception) -> str:
    if isinstance(outcome, httpx.Response):
        return f" ({_summary(_detail(outcome))[:200]})"
    return f" ({outcome})"
