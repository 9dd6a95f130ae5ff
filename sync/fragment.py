"""The Fragment client: carries one request at a time to Fragment's task API.

Builds `PUT /tasks/batch` from canonical payloads, sends it through the
`sync_http` session (its connection: timeouts, keep-alive, bearer auth,
User-Agent, origin and size bounds) and reads the answer: the uids that
acknowledge the batch, or the items a refusal names. What to retry and how
long to wait, the request budget and the bisection of a refused batch are
Ship's policy (`sync.ship_policy`), applied here. It knows nothing of sources,
state or watermarks.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr, TypeAdapter, ValidationError

from sync.batches import PushResult, Refusal
from sync.config import FragmentSettings
from sync.errors import FragmentAuthError, FragmentError, FragmentUnavailable, RunInterrupted
from sync.mapping import TaskPayload
from sync.ship_policy import ShipPolicy, classify_comment_answer, isolate
from sync_http.auth import bearer
from sync_http.clock import http_date
from sync_http.policy import Action
from sync_http.ratelimit import RequestBudget, StopRequested
from sync_http.redaction import redact
from sync_http.session import HttpSession, RequestFailed


class FragmentClient:
    """A connection to Fragment's task API. Use as a context manager."""

    def __init__(
        self,
        settings: FragmentSettings,
        *,
        stop: threading.Event | None = None,
        transport: httpx.BaseTransport | None = None,
        policy: ShipPolicy | None = None,
    ) -> None:
        """`policy`: how requests are paced and retried (`sync.ship_policy`).

        By default, what `settings` ask for, made afresh with each connection.
        """
        self.settings = settings
        self.stop = stop or threading.Event()
        self.policy = policy
        self._transport = transport
        self._session: HttpSession | None = None
        self._session_lock = threading.Lock()
        rate = settings.requests_per_minute * settings.write_back_share
        self._poll_budget = RequestBudget.per_minute(rate, stop=self.stop)
        """Two-way sync's polls (`task_page`): their share of the budget, at most."""

    @property
    def session(self) -> HttpSession:
        """The connection, opened at the first request: a pass with nothing to push opens none."""
        with self._session_lock:
            if self._session is None:
                self._session = self._open()
            return self._session

    def _open(self) -> HttpSession:
        settings = self.settings
        token = SecretStr(settings.bearer_token())  # ConfigError naming fragment.token if unset
        policy = self.policy or ShipPolicy.for_fragment(settings, self.stop)
        return HttpSession(
            "fragment",
            settings.url,
            classify=policy.classify,
            budget=policy.budget,
            retry=policy.retry,
            headers={
                "User-Agent": settings.user_agent,
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
            # As auth, not a header: the session sends it to fragment.url's origin only.
            auth=bearer(token),
            timeout=settings.timeout.total_seconds(),
            max_response_size=settings.max_response_size,
            moved_hint="update fragment.url",
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
        """`GET /accounts/me`: proves the URL and token work. Raises `FragmentError`.

        Anything but a JSON object is an error: a proxy's sign-in page or a
        wrong `fragment.url` answers 200 too.
        """
        response = self._send("GET", "/accounts/me", None)
        try:
            data = response.json()
        except ValueError:
            what = "something that is not JSON"
        else:
            what = "JSON that is not an object"
            if isinstance(data, dict) and response.status_code < 400:
                return data
        if response.status_code >= 400:
            what = _summary(_detail(response))
        start = " ".join(response.text[:80].split())
        raise FragmentError(
            f"Fragment: GET /accounts/me answered {response.status_code} with {what} "
            f"(it starts {start!r}); fragment.url should be Fragment's API, ending in /api/v1"
        )

    def push(self, items: Sequence[TaskPayload], into: PushResult | None = None) -> PushResult:
        """Upsert `items`, isolating any the server rejects (`isolate` over `put_batch`).

        Returns which items landed and which were refused (with the server's
        message), added to `into` when given: it keeps the requests counted
        even when this raises. Raises `FragmentUnavailable` when retries run
        out, `FragmentAuthError` on 401/403, `RunInterrupted` on a stop request.
        """
        return isolate(self.put_batch, items, into)

    def post_comment(self, uid: str, text: str) -> CommentAnswer:
        """`POST /tasks/{uid}/comments` of `text`, once, on a spare turn of the budget.

        Returns the comment's id in Fragment, or Fragment's refusal (404: the
        task is gone; 422): `CommentAnswer.refused`. Never sent twice: an
        answer that leaves unknown whether it landed (a 5xx, a timeout, a
        lost connection) raises `FragmentUnavailable`, for the caller to look
        (`task_comments`) before it posts again. Raises as `push` otherwise.
        """
        body = json.dumps({"content": text}, ensure_ascii=False).encode()
        response = self._send(
            "POST",
            f"/tasks/{uid}/comments",
            body,
            classify=classify_comment_answer,
            spare=True,
            idempotent=False,
        )
        if response.is_success:
            try:
                answer = response.json()
            except ValueError:
                answer = None
            given = answer.get("uid", answer.get("id")) if isinstance(answer, dict) else None
            return CommentAnswer(None if given is None else str(given))
        return CommentAnswer(None, refused=f"{response.status_code} {_summary(_detail(response))}")

    def task_comments(self, uid: str) -> list[str] | None:
        """The text of every comment on task `uid` (`GET /tasks/{uid}/comments`), on spare
        turns; None when the task is not in Fragment (404).

        Raises `FragmentError` for an answer that holds no list of comments,
        and as `push`.
        """
        response = self._send(
            "GET", f"/tasks/{uid}/comments", None, classify=classify_comment_answer, spare=True
        )
        if response.status_code == 404:
            return None
        try:
            answer = response.json()
        except ValueError:
            answer = None
        items = answer.get("items") if isinstance(answer, dict) else answer
        if response.status_code >= 400 or not isinstance(items, list):
            raise FragmentError(
                f"Fragment: GET /tasks/{uid}/comments answered {response.status_code} without "
                "a list of comments"
            )
        return [
            str(next((item[key] for key in ("content", "body", "text") if key in item), ""))
            for item in items
            if isinstance(item, dict)
        ]

    def task_page(self, params: dict[str, str]) -> TaskListPage:
        """One page of `GET /tasks` with `params` (filters, order, cursor), on spare turns.

        At most `fragment.write_back_share` of the request budget goes to them, and only
        turns no push wants. Raises `FragmentError` for an answer that holds no list of
        tasks, and as `push`.
        """
        if not self._poll_budget.acquire():
            raise RunInterrupted("stop requested while waiting to poll Fragment's changes")
        response = self._send("GET", "/tasks", None, spare=True, params=params)
        try:
            answer = response.json()
        except ValueError:
            answer = None
        items = answer.get("items") if isinstance(answer, dict) else None
        if response.status_code >= 400 or not isinstance(items, list):
            what = _summary(_detail(response)) if response.status_code >= 400 else "no items"
            raise FragmentError(f"Fragment: GET /tasks answered {response.status_code} with {what}")
        meta = answer.get("meta") if isinstance(answer, dict) else None
        cursor = meta.get("next_cursor") if isinstance(meta, dict) else None
        return TaskListPage(
            [item for item in items if isinstance(item, dict)],
            cursor if isinstance(cursor, str) and cursor else None,
            http_date(response.headers.get("Date")),
        )

    def put_batch(self, items: Sequence[TaskPayload], tally: PushResult) -> Refusal | None:
        """One `PUT /tasks/batch` of `items`, retried per the policy: None once acknowledged.

        An answer acknowledges the batch when it lists one task per item with
        the items' uids; a refusal (400, 413, 422) comes back as a `Refusal`
        naming the items it can. Each request sent counts in `tally.requests`.
        Raises as `push`.
        """
        response = self._send(
            "PUT", "/tasks/batch", _batch_body(items), tally, validate=_acknowledges(items)
        )
        if self.session.classify(response).action is Action.ACCEPT:
            return None
        detail = _detail(response)
        named = _rejected_indexes(detail, len(items))
        # The summary serves only a refusal naming no item: a 422 of 500 named ones is long.
        return Refusal(named, "" if named else _summary(detail))

    def _send(
        self,
        method: str,
        path: str,
        body: bytes | None,
        tally: PushResult | None = None,
        validate: Callable[[httpx.Response], str | None] | None = None,
        **how: Any,
    ) -> httpx.Response:
        """One logical request through the session's retry loop; translates its failures.

        `how`: `HttpSession.send`'s `classify`, `spare` and `idempotent`.
        """
        attempts: list[int] = []
        try:
            return self.session.send(
                method, path, content=body, attempts=attempts, validate=validate, **how
            )
        except RequestFailed as exc:
            if exc.rule.action is Action.FAIL_AUTH:
                raise FragmentAuthError(f"Fragment: {exc}") from None
            raise FragmentUnavailable(f"Fragment: {exc}") from None
        except StopRequested as exc:
            raise RunInterrupted(str(exc)) from None
        finally:
            if tally is not None:
                tally.requests += len(attempts)


@dataclass(frozen=True)
class TaskListPage:
    """A page of Fragment's task listing: its tasks, the next page's cursor (None: the
    last), and the answer's `Date` (Fragment's clock; None when unusable)."""

    items: list[dict[str, Any]]
    next_cursor: str | None
    date: dt.datetime | None


@dataclass(frozen=True)
class CommentAnswer:
    """Fragment's answer to a comment: its id there, or why Fragment refused it."""

    comment_id: str | None
    refused: str | None = None


class _AcknowledgedTask(BaseModel):
    """Of each task in Fragment's answer, what acknowledging it takes: its uid."""

    model_config = ConfigDict(extra="ignore")
    uid: str


class _Acknowledgment(BaseModel):
    """Fragment's answer to a batch, `{"items": [...]}`, read no further than its uids."""

    model_config = ConfigDict(extra="ignore")
    items: list[_AcknowledgedTask]


_ACKNOWLEDGMENT = TypeAdapter(_Acknowledgment)
"""Checks the JSON and reads only the uids, in pydantic's parser: 3.7 ms for a 930 KB answer
of 500 tasks where `json.loads` alone took 12.8 (the answer echoes every task whole)."""


def _acknowledges(items: Sequence[TaskPayload]) -> Callable[[httpx.Response], str | None]:
    """What is wrong with a 2xx to `PUT /tasks/batch` of `items`; None when it acknowledges them.

    Fragment answers a batch with `{"items": [...]}`, the resulting task of
    each item sent. Anything else (not JSON, another shape, another count,
    other uids) says nothing about whether the batch landed: it is neither
    acknowledged nor rejected, but retried, and the pass fails when retries
    run out so the next one sends it again.
    """
    sent = Counter(item.uid.lower() for item in items)

    def check(response: httpx.Response) -> str | None:
        status = response.status_code
        try:
            answer = _ACKNOWLEDGMENT.validate_json(response.content)
        except ValidationError as exc:
            if any(error["type"] == "json_invalid" for error in exc.errors()):
                return f"answered {status} with something that is not JSON, not an acknowledgment"
            return f"answered {status} without the list of items acknowledging the batch"
        count = len(answer.items)
        if count != len(items):
            return f"answered {status} acknowledging {count} items of the {len(items)} sent"
        if Counter(task.uid.lower() for task in answer.items) != sent:
            return f"answered {status} acknowledging tasks other than the batch's"
        return None

    return check


def _batch_body(items: Iterable[TaskPayload]) -> bytes:
    # The payloads are already canonical JSON: join them, don't encode again.
    return b'{"items":[' + b",".join(item.body for item in items) + b"]}"


def _detail(response: httpx.Response) -> Any:
    try:
        body = response.json()
    except ValueError:
        return redact(response.text)[:500]  # redacted before it is cut, as every excerpt
    return body.get("detail", body) if isinstance(body, dict) else body


def _rejected_indexes(detail: Any, count: int) -> dict[int, tuple[str | None, str]]:
    """Item index → (field, message), from FastAPI-style `loc: ["body", "items", i, ...]` entries.

    The field is the first the server named for the item (None if it named
    the item as a whole); the message holds every entry's.
    """
    named: dict[int, tuple[str | None, str]] = {}
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
        if index in named:
            field, before = named[index]
            named[index] = (field or where or None, f"{before}; {message}")
        else:
            named[index] = (where or None, message)
    return named


def _summary(detail: Any) -> str:
    text = detail if isinstance(detail, str) else json.dumps(detail, ensure_ascii=False)
    return redact(text)[:1000]
