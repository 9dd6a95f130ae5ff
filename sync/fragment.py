"""The Fragment client: pushes batches of tasks through `PUT /tasks/batch`.

Owns the HTTP connection (timeouts, keep-alive, bearer auth, User-Agent), the
request budget that keeps us under Fragment's 60 requests a minute, the retry
policy (one table below), and the isolation of rejected items: a batch that
Fragment refuses as invalid is split until the good items land and each bad
one is set aside with the server's message. It knows nothing of sources,
state or watermarks.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from connectors.errors import StopRequested
from connectors.redaction import redact
from sync.config import FragmentSettings
from sync.errors import FragmentAuthError, FragmentUnavailable, RunInterrupted
from sync.mapping import TaskPayload

if TYPE_CHECKING:
    import httpx

    from connectors.http.policy import Policy
    from connectors.http.session import HttpSession


@functools.cache
def retry_policy() -> Policy:
    """Fragment's answers: status or exception type → what to do (unlisted 5xx retry, 4xx fail).

    Built at the first request, not at import: its transport rules are keyed by httpx's
    exception types, and a pass with nothing to push never imports httpx (~30 ms).
    """
    from connectors.http.policy import TRANSIENT, Action, Rule

    return {
        **TRANSIENT,
        400: Rule(Action.REJECT, "bad request: some items are invalid"),
        401: Rule(Action.FAIL_AUTH, "the token is missing or invalid (fragment.token)"),
        403: Rule(Action.FAIL_AUTH, "the token lacks permission (Fragment asks for super admin)"),
        404: Rule(Action.FAIL, "not found: check fragment.url (it should end in /api/v1)"),
        409: Rule(Action.FAIL, "conflict"),
        413: Rule(Action.REJECT, "batch too large: it is split"),
        422: Rule(Action.REJECT, "some items are invalid"),
    }


FRAGMENT_RATE_LIMIT_FLOOR = 2.0
"""Wait this long on a 429 without `Retry-After` (doubling on each repeat)."""


@dataclass
class PushResult:
    """What became of one batch: the items that landed and the ones refused."""

    acked: list[TaskPayload] = field(default_factory=list)
    rejected: list[tuple[TaskPayload, str]] = field(default_factory=list)
    requests: int = 0
    """HTTP requests sent for this batch, retries and isolation included."""
    isolation_requests: int = 0
    """Of those, the extra requests spent isolating rejected items."""


class FragmentClient:
    """A connection to Fragment's task API. Use as a context manager."""

    def __init__(
        self,
        settings: FragmentSettings,
        *,
        stop: threading.Event | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.stop = stop or threading.Event()
        self._transport = transport
        self._session: HttpSession | None = None
        self._session_lock = threading.Lock()

    @property
    def session(self) -> HttpSession:
        """The connection, opened at the first request: a pass with nothing to push opens none."""
        with self._session_lock:
            if self._session is None:
                self._session = self._open()
            return self._session

    def _open(self) -> HttpSession:
        # The HTTP stack (httpx, ~30 ms to import) loads with the first request: a pass
        # with nothing to push never sends one.
        from connectors.http.policy import classify
        from connectors.http.session import HttpSession, RetrySettings
        from connectors.ratelimit import RequestBudget

        settings = self.settings
        policy = retry_policy()
        token = settings.token.get_secret_value() if settings.token else ""
        return HttpSession(
            "fragment",
            settings.url,
            classify=lambda outcome: classify(outcome, policy),
            budget=RequestBudget.per_minute(settings.requests_per_minute, stop=self.stop),
            retry=RetrySettings(
                max_attempts=settings.max_attempts,
                max_wait=settings.max_retry_wait.total_seconds(),
                rate_limit_floor=FRAGMENT_RATE_LIMIT_FLOOR,
            ),
            headers={
                "Authorization": f"Bearer {token}",
                "User-Agent": settings.user_agent,
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
            timeout=settings.timeout.total_seconds(),
            stop=self.stop,
            transport=self._transport,
        )

    def __enter__(self) -> FragmentClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._session_lock:
            if self._session is not None:
                self._session.close()
                self._session = None

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
        from connectors.http.policy import Action, classify  # see `_open`

        result.isolation_requests += isolating
        response = self._send("PUT", "/tasks/batch", _batch_body(items), result)
        if classify(response, retry_policy()).action is Action.ACCEPT:
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
        """One logical request through the session's retry loop; translates its failures."""
        from connectors.http.policy import Action  # see `_open`
        from connectors.http.session import RequestFailed

        attempts: list[int] = []
        try:
            return self.session.send(method, path, content=body, attempts=attempts)
        except RequestFailed as exc:
            if exc.rule.action is Action.FAIL_AUTH:
                raise FragmentAuthError(f"Fragment: {exc}") from None
            raise FragmentUnavailable(f"Fragment: {exc}") from None
        except StopRequested as exc:
            raise RunInterrupted(str(exc)) from None
        finally:
            if tally is not None:
                tally.requests += len(attempts)


def _batch_body(items: Iterable[TaskPayload]) -> bytes:
    # The payloads are already canonical JSON: join them, don't encode again.
    return b'{"items":[' + b",".join(item.body for item in items) + b"]}"


def _detail(response: httpx.Response) -> Any:
    try:
        body = response.json()
    except ValueError:
        return redact(response.text)[:500]  # redacted before it is cut, as every excerpt
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
    return redact(text)[:1000]
