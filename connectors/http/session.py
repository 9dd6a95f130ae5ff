"""One HTTP connection to one server, with the request loop every client shares.

`HttpSession.send` paces requests through a `RequestBudget`, classifies each
answer with a policy (`connectors.http.policy`), waits what a rate limit asks
(never less), backs off on transient failures, paces itself down when the
server's remaining quota runs low, and raises a named error when it must
stop. The Fragment client and every REST connector send through it.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import structlog

from connectors.errors import StopRequested
from connectors.http.policy import Action, Classifier, Rule, remaining_quota
from connectors.ratelimit import RequestBudget, backoff_delay, wait_from_headers
from connectors.redaction import redact

log = structlog.get_logger("connectors.http")


class HttpObserver(Protocol):
    """Told of every answer and every wait, for metrics (`sync.metrics` registers one)."""

    def answered(self, server: str, answer: str) -> None: ...

    def waited(self, server: str, reason: str, seconds: float) -> None: ...


OBSERVERS: list[HttpObserver] = []
"""Process-wide, like the metrics registry they feed."""


class RequestFailed(Exception):
    """The server's answer means this run can't go on (the rule says why)."""

    def __init__(self, rule: Rule, detail: str, response: httpx.Response | None = None) -> None:
        super().__init__(f"{rule.meaning}: {detail}" if detail else rule.meaning)
        self.rule = rule
        self.response = response


@dataclass
class SessionStats:
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    waited_s: float = 0.0
    by_status: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class RetrySettings:
    max_attempts: int = 8
    max_wait: float = 300.0
    """The longest single wait; a server asking for longer fails the request instead."""
    backoff_base: float = 0.5
    rate_limit_floor: float = 60.0
    """Wait at least this long on a rate limit that gives no hint (GitHub, Zendesk edge)."""
    quota_reserve: int = 1
    """Pause until the reset once the server's remaining quota falls to this."""


class HttpSession:
    """A keep-alive connection to `base_url` with pacing and the retry loop."""

    def __init__(
        self,
        name: str,
        base_url: str,
        *,
        classify: Classifier,
        budget: RequestBudget,
        retry: RetrySettings,
        headers: Mapping[str, str] | None = None,
        auth: httpx.Auth | None = None,
        timeout: float = 30.0,
        stop: threading.Event | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.name = name
        self.classify = classify
        self.budget = budget
        self.retry = retry
        self.stop = stop or threading.Event()
        self.stats = SessionStats()
        self._rng = random.Random()
        self.http = httpx.Client(
            base_url=base_url,
            headers=dict(headers or {}),
            auth=auth,
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_keepalive_connections=4, keepalive_expiry=30),
            transport=transport,
        )

    def close(self) -> None:
        self.http.close()

    def send(
        self, method: str, url: str, *, attempts: list[int] | None = None, **kwargs: Any
    ) -> httpx.Response:
        """Send until the answer is accepted (or rejected, for the caller to handle).

        `kwargs` go to `httpx.Client.request`. Each attempt is appended to
        `attempts` when given (so callers can count their own requests).
        Raises `RequestFailed` for a persistent failure or when retries run
        out, `StopRequested` when a stop is requested while waiting.
        """
        attempt = 0
        while True:
            if not self.budget.acquire():
                raise StopRequested(f"{self.name}: stop requested while waiting to send")
            attempt += 1
            self.stats.requests += 1
            if attempts is not None:
                attempts.append(attempt)
            outcome: httpx.Response | Exception
            try:
                outcome = self.http.request(method, url, **kwargs)
                key = str(outcome.status_code)
            except httpx.HTTPError as exc:
                outcome, key = exc, type(exc).__name__
            self.stats.by_status[key] = self.stats.by_status.get(key, 0) + 1
            for observer in OBSERVERS:
                observer.answered(self.name, key)
            rule = self.classify(outcome)
            if isinstance(outcome, httpx.Response):
                self._pace_from_quota(outcome)
                if rule.action in (Action.ACCEPT, Action.REJECT):
                    return outcome
            if rule.action in (Action.FAIL, Action.FAIL_AUTH):
                raise RequestFailed(
                    rule,
                    f"{method} {_path(url)} answered {key}{_excerpt(outcome)}",
                    outcome if isinstance(outcome, httpx.Response) else None,
                )
            if attempt >= self.retry.max_attempts:
                raise RequestFailed(
                    rule,
                    f"still failing after {attempt} attempts ({method} {_path(url)}, last {key})",
                )
            wait = self._wait_for(rule, outcome, attempt)
            self.stats.retries += 1
            self.stats.waited_s += wait
            for observer in OBSERVERS:
                observer.waited(self.name, rule.action.value, wait)
            # Nothing at all goes out before the wait is over, not even other requests.
            self.budget.hold(wait)
            log.warning(
                "http_retry",
                server=self.name,
                method=method,
                path=_path(url),
                answer=key,
                reason=rule.meaning,
                attempt=attempt,
                wait_s=round(wait, 3),
            )

    def _wait_for(self, rule: Rule, outcome: httpx.Response | Exception, attempt: int) -> float:
        asked = wait_from_headers(outcome.headers) if isinstance(outcome, httpx.Response) else None
        if rule.action is not Action.RATE_LIMITED:
            # A 503 may say when to come back; never sooner than it asks.
            backoff = backoff_delay(
                attempt, self.retry.backoff_base, self.retry.max_wait, self._rng
            )
            return backoff if asked is None else max(backoff, min(asked, self.retry.max_wait))
        self.stats.rate_limited += 1
        if asked is None:
            # No hint: the floor, growing with each attempt; retrying early lengthens some blocks.
            asked = self.retry.rate_limit_floor * 2 ** (attempt - 1)
        if asked > self.retry.max_wait:
            raise RequestFailed(
                rule,
                f"the server asked to wait {asked:.0f}s, more than the {self.retry.max_wait:.0f}s "
                "allowed (max_retry_wait); the next run resumes from the checkpoint",
            )
        return asked

    def _pace_from_quota(self, response: httpx.Response) -> None:
        """Pause before the server's quota runs out instead of running into its 429."""
        remaining = remaining_quota(response.headers)
        if remaining is None or remaining > self.retry.quota_reserve or response.status_code >= 400:
            return
        wait = wait_from_headers({k: v for k, v in response.headers.items() if k != "retry-after"})
        if wait is not None and 0 < wait <= self.retry.max_wait:
            log.info("quota_low", server=self.name, remaining=remaining, pause_s=round(wait, 1))
            self.budget.hold(wait)


def _path(url: str) -> str:
    return httpx.URL(url).path or url


def _excerpt(outcome: httpx.Response | Exception) -> str:
    """The start of an answer's body (or the transport error), for the error that quotes it.

    Redacted whole before it is cut: a secret the server echoes must not
    survive as a half that no longer matches it.
    """
    if isinstance(outcome, Exception):
        return f" ({redact(str(outcome))})"
    try:
        text = " ".join(redact(outcome.text).split())[:200]
    except (UnicodeDecodeError, httpx.ResponseNotRead):
        return ""
    return f": {text}" if text else ""
