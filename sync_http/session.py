"""One HTTP connection to one server, with the request loop every client shares.

`HttpSession.send` paces requests through a `RequestBudget`, classifies each
answer with a policy (`sync_http.policy`), waits what a rate limit asks
(never less), backs off on transient failures, paces itself down when the
server's remaining quota runs low, and raises a named error when it must
stop. The Fragment client and every REST connector send through it.

It is also where the boundaries toward a server are kept, once for every
client and whatever auth it holds:
- Origin: a request goes out only to the scheme, host and port of the
  configured base URL. A pagination link or a redirect pointing anywhere else
  (another host or port, https to http) fails the request before anything,
  credentials included, is sent there. Redirects within the origin are
  followed, and a permanent one is logged once so the operator can update
  the configuration.
- Size and time: every answer is read whole through `sync_http.bounded`,
  capped at `max_response_size` once unpacked, and each request (connecting,
  sending, waiting, reading) must end within `timeout`.
- Clock: each answer's `Date` header tells the server's clock (`clock_offset`).
"""

from __future__ import annotations

import datetime as dt
import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import structlog

from sync_http import clock
from sync_http.auth import origin_of
from sync_http.bounded import (
    ACCEPT_ENCODING,
    DEFAULT_MAX_RESPONSE_SIZE,
    ResponseTooLarge,
    deadline_transport,
    read_answer,
    request_deadline,
)
from sync_http.policy import Action, Classifier, Rule, remaining_quota
from sync_http.ratelimit import (
    Backoff,
    RequestBudget,
    StopRequested,
    backoff_delay,
    parse_retry_after,
    wait_from_headers,
)
from sync_http.redaction import excerpt, redact

log = structlog.get_logger("sync_http")


class HttpObserver(Protocol):
    """Told of every answer and every wait, for metrics (`sync.shell.metrics` registers one)."""

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


OFF_ORIGIN = Rule(Action.FAIL, "refused to send credentials to another origin")
TOO_MANY_REDIRECTS = Rule(Action.FAIL, "too many redirects")
BAD_URL = Rule(Action.FAIL, "not a URL that can be requested")
MAX_REDIRECTS = 5
"""Redirects followed in a row for one request before it fails."""
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_PERMANENT = frozenset({301, 308})
_BODY_KEEPING = frozenset({307, 308})
"""The redirects that keep the method and body, so any method may follow them."""

Validate = Callable[[httpx.Response], str | Rule | None]
"""Reads an accepted answer; returns what is wrong with it, or None when it is what was asked.

A string is retried like a server error; a `Rule` is acted on as the policy's own
(a GraphQL 200 whose body says rate limited waits like a 429, one naming a bad
query fails)."""


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
    backoff: Backoff = field(default_factory=Backoff)
    """The wait before retrying a transient failure that names none (a 5xx, a timeout)."""
    rate_limit_floor: float = 60.0
    """Wait at least this long on a rate limit that gives no hint (GitHub, Zendesk edge)."""
    quota_reserve: int = 1
    """Pause until the reset once the server's remaining quota falls to this."""


class HttpSession:
    """A keep-alive connection to `base_url` with pacing, the retry loop and the bounds.

    `timeout` bounds each request as a whole; `max_response_size` each answer's
    body, once unpacked. `moved_hint` ends the log line of a permanent
    redirect: what the operator should change. A `transport` given (tests)
    replaces the one that enforces the deadline.
    """

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
        max_response_size: int = DEFAULT_MAX_RESPONSE_SIZE,
        moved_hint: str = "update the configured URL to the new location",
        stop: threading.Event | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.name = name
        self.classify = classify
        self.budget = budget
        self.retry = retry
        self.stop = stop or threading.Event()
        self.stats = SessionStats()
        self.origin = origin_of(httpx.URL(base_url))
        self.timeout = timeout
        self.max_response_size = max_response_size
        self.moved_hint = moved_hint
        self._moved_logged: set[str] = set()
        self.clock_offset: dt.timedelta | None = None
        """The server's clock minus this machine's, the lowest its answers' `Date` showed."""
        self._rng = random.Random()
        limits = httpx.Limits(max_keepalive_connections=4, keepalive_expiry=30)
        self.http = httpx.Client(
            base_url=base_url,
            headers={"Accept-Encoding": ACCEPT_ENCODING, **(headers or {})},
            auth=auth,
            timeout=httpx.Timeout(timeout),
            limits=limits,
            transport=transport or deadline_transport(limits),
        )

    def close(self) -> None:
        self.http.close()

    def send(
        self,
        method: str,
        url: str,
        *,
        attempts: list[int] | None = None,
        validate: Validate | None = None,
        classify: Classifier | None = None,
        spare: bool = False,
        idempotent: bool = True,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send until the answer is accepted (or rejected, for the caller to handle).

        `kwargs` go to `httpx.Client.build_request`. Each request sent (attempts
        and redirects followed) is appended to `attempts` when given, so callers
        can count their own requests.
        `validate`, when given, reads an accepted answer: one it finds wrong
        is retried like a server error, or handled by the `Rule` it returns
        (see `Validate`). Redirects within the base URL's
        origin are followed (any redirect for GET and HEAD, 307 and 308 for
        the other methods, which keep the body). Raises `RequestFailed` for a
        persistent failure, when retries run out, or for a request or
        redirect off the base URL's origin (nothing is sent there);
        `StopRequested` when a stop is requested while waiting.

        `classify` reads the answers instead of the session's table; `spare`:
        each attempt takes a turn no other request wants
        (`RequestBudget.acquire_spare`). Not `idempotent`: a request that
        must not be sent twice (a `POST` that creates) is not retried after
        an answer that leaves unknown whether it was applied (a 5xx, a
        timeout, a dropped connection): it raises `RequestFailed` at once,
        for the caller to find out first. A 429 is still waited out.
        """
        acquire = self.budget.acquire_spare if spare else self.budget.acquire
        classify = classify or self.classify
        sent = attempt = redirects = 0  # a redirect followed is a request, not an attempt
        while True:
            request = self._request(method, url, kwargs)
            if not acquire():
                raise StopRequested(f"{self.name}: stop requested while waiting to send")
            sent += 1
            self.stats.requests += 1
            if attempts is not None:
                attempts.append(sent)
            outcome = self._exchange(request)
            key = (
                str(outcome.status_code)
                if isinstance(outcome, httpx.Response)
                else type(outcome).__name__
            )
            self.stats.by_status[key] = self.stats.by_status.get(key, 0) + 1
            for observer in OBSERVERS:
                observer.answered(self.name, key)
            if isinstance(outcome, httpx.Response) and self._follows(method, outcome):
                redirects += 1
                if redirects > MAX_REDIRECTS:
                    detail = f"{method} {_path(url)} was redirected more than {MAX_REDIRECTS} times"
                    raise RequestFailed(TOO_MANY_REDIRECTS, detail, outcome)
                url = self._redirect(request, outcome)
                kwargs = {name: value for name, value in kwargs.items() if name != "params"}
                continue
            attempt += 1
            rule = classify(outcome)
            validated = False  # a rule of `validate`'s names the problem: no excerpt needed
            if isinstance(outcome, httpx.Response):
                self._read_clock(outcome)
                self._pace_from_quota(outcome)
                if rule.action is Action.ACCEPT and validate is not None:
                    problem = validate(outcome)
                    if problem is not None:
                        validated = True
                        rule = problem if isinstance(problem, Rule) else Rule(Action.RETRY, problem)
                if rule.action in (Action.ACCEPT, Action.REJECT):
                    return outcome
            if rule.action in (Action.FAIL, Action.FAIL_AUTH):
                shown = "" if validated else _excerpt(outcome)
                raise RequestFailed(
                    rule,
                    f"{method} {_path(url)} answered {key}{shown}",
                    outcome if isinstance(outcome, httpx.Response) else None,
                )
            if not idempotent and rule.action is not Action.RATE_LIMITED:
                raise RequestFailed(
                    rule,
                    f"{method} {_path(url)} answered {key}{_excerpt(outcome)}; it is not "
                    "sent again before it is known whether it was applied",
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

    def _request(self, method: str, url: str, kwargs: Mapping[str, Any]) -> httpx.Request:
        """The request to send; raises `RequestFailed` when it would leave the base origin."""
        try:
            request = self.http.build_request(method, url, **kwargs)
        except httpx.InvalidURL as exc:
            raise RequestFailed(BAD_URL, f"{method} {url[:200]!r}: {exc}") from None
        there = origin_of(request.url)
        if there != self.origin:
            raise RequestFailed(
                OFF_ORIGIN,
                f"{method} {there}{request.url.path} is not on {self.origin}, the origin of "
                "the configured base URL; credentials go there only, so it was not sent",
            )
        return request

    def _exchange(self, request: httpx.Request) -> httpx.Response | Exception:
        """One request and its whole answer, within the deadline and the size cap."""
        try:
            with request_deadline(self.timeout):
                response = self.http.send(request, stream=True)
                try:
                    return read_answer(response, self.max_response_size)
                finally:
                    response.close()
        except (httpx.HTTPError, ResponseTooLarge) as exc:
            return exc

    @staticmethod
    def _follows(method: str, response: httpx.Response) -> bool:
        if response.status_code not in _REDIRECTS or "location" not in response.headers:
            return False
        return method in ("GET", "HEAD") or response.status_code in _BODY_KEEPING

    def _redirect(self, request: httpx.Request, response: httpx.Response) -> str:
        """Where `response` redirects `request`; raises `RequestFailed` when off the origin."""
        location = response.headers["location"]
        try:
            target = request.url.join(location)
        except httpx.InvalidURL as exc:
            detail = f"{request.method} {request.url.path} was redirected to {location[:200]!r}"
            raise RequestFailed(BAD_URL, f"{detail}: {exc}", response) from None
        there = origin_of(target)
        if there != self.origin:
            raise RequestFailed(
                OFF_ORIGIN,
                f"{request.method} {request.url.path} was redirected to {there}{target.path}, "
                f"which is not on {self.origin}, the origin of the configured base URL; "
                "credentials go there only, so the redirect was not followed",
                response,
            )
        if response.status_code in _PERMANENT and request.url.path not in self._moved_logged:
            # Once per old address: every page of a pass would otherwise say it again.
            self._moved_logged.add(request.url.path)
            log.warning(
                "http_moved_permanently",
                server=self.name,
                old=request.url.path,
                new=target.path,
                hint=self.moved_hint,
            )
        return str(target)

    def _wait_for(self, rule: Rule, outcome: httpx.Response | Exception, attempt: int) -> float:
        headers = outcome.headers if isinstance(outcome, httpx.Response) else None
        if rule.action is not Action.RATE_LIMITED:
            # A 503 may say when to come back; never sooner than it asks.
            asked = None if headers is None else wait_from_headers(headers)
            backoff = backoff_delay(attempt, self.retry.backoff, self.retry.max_wait, self._rng)
            return backoff if asked is None else max(backoff, min(asked, self.retry.max_wait))
        self.stats.rate_limited += 1
        asked = None if headers is None else _rate_limit_wait(headers)
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

    def _read_clock(self, response: httpx.Response) -> None:
        """Lower `clock_offset` to `Date` minus the time the answer arrived, if that is lower.

        `Date` is truncated to the second and stamped before the answer left,
        so each estimate is at most the true offset; the lowest is the safest
        (answers may come from several servers behind one name).
        """
        stamped = clock.http_date(response.headers.get("date"))
        if stamped is None:
            return
        offset = stamped - clock.now()
        if self.clock_offset is None or offset < self.clock_offset:
            self.clock_offset = offset

    def _pace_from_quota(self, response: httpx.Response) -> None:
        """Pause before the server's quota runs out instead of running into its 429."""
        remaining = remaining_quota(response.headers)
        if remaining is None or remaining > self.retry.quota_reserve or response.status_code >= 400:
            return
        wait = wait_from_headers({k: v for k, v in response.headers.items() if k != "retry-after"})
        if wait is not None and 0 < wait <= self.retry.max_wait:
            log.info("quota_low", server=self.name, remaining=remaining, pause_s=round(wait, 1))
            self.budget.hold(wait)


def _rate_limit_wait(headers: httpx.Headers) -> float | None:
    """The wait a rate-limited answer asks for, reading its quota's reset only when the quota
    is spent.

    A reset time describes the quota's window: with requests still left in it,
    the limit hit is another one (GitHub's secondary limits carry the primary
    quota's headers, its reset up to an hour away), so only `Retry-After` counts.
    """
    remaining = remaining_quota(headers)
    if remaining is None or remaining <= 0:
        return wait_from_headers(headers)
    return parse_retry_after(headers.get("retry-after"))


def _path(url: str) -> str:
    return httpx.URL(url).path or url


def _excerpt(outcome: httpx.Response | Exception) -> str:
    """The start of an answer's body (or the transport error), for the error that quotes it."""
    if isinstance(outcome, Exception):
        return f" ({redact(str(outcome))})"
    try:
        text = excerpt(outcome.text, 200)
    except (UnicodeDecodeError, httpx.ResponseNotRead):
        return ""
    return f": {text}" if text else ""
