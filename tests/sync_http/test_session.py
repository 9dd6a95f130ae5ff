"""The HTTP toolkit: waits read from headers, the policy table, the session loop, the budget."""

from __future__ import annotations

import email.utils
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from connectors.errors import StopRequested
from fakes import FakeApi, Reply, Request
from sync_http.policy import Action, remaining_quota, source_classifier
from sync_http.ratelimit import RequestBudget, parse_retry_after, wait_from_headers
from sync_http.session import HttpSession, RequestFailed, RetrySettings

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("headers", "wait"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"Retry-After": email.utils.formatdate(NOW + 30, usegmt=True)}, 30.0),
        ({"X-RateLimit-Reset": str(int(NOW + 12))}, 12.0),  # GitHub: epoch seconds
        ({"X-RateLimit-Reset": str(int((NOW + 5) * 1000))}, 5.0),  # Linear: epoch ms
        ({"X-RateLimit-Reset": "2027-01-15T08:00:10Z"}, None),  # ISO (checked below)
        ({"RateLimit-Reset": "3"}, 3.0),  # seconds from now
        ({"X-HubSpot-RateLimit-Interval-Milliseconds": "10000"}, 10.0),  # HubSpot: the window
        ({"Retry-After": "2", "X-HubSpot-RateLimit-Interval-Milliseconds": "10000"}, 2.0),
        ({}, None),
    ],
)
def test_waits_are_read_from_every_header_style(
    headers: dict[str, str], wait: float | None
) -> None:
    got = wait_from_headers(headers, now=NOW)
    if headers.get("X-RateLimit-Reset", "").endswith("Z"):
        assert got is not None and got > 0
    else:
        assert got == pytest.approx(wait, abs=1.0) if wait is not None else got is None


def test_a_reset_time_is_measured_from_the_answers_date_on_the_servers_clock() -> None:
    """A server an hour ahead of this machine says its reset is 12 s after its own `Date`:
    the wait is 12 s, not an hour and 12 s."""
    server_now = time.time() + 3600
    date = email.utils.formatdate(server_now, usegmt=True)
    reset = {"Date": date, "X-RateLimit-Reset": str(int(server_now) + 12)}
    assert wait_from_headers(reset) == pytest.approx(12.0, abs=1.0)
    retry_at = {"Date": date, "Retry-After": email.utils.formatdate(server_now + 30, usegmt=True)}
    assert wait_from_headers(retry_at) == pytest.approx(30.0, abs=1.0)
    # Without a `Date`, this machine's clock is all there is.
    assert wait_from_headers({"X-RateLimit-Reset": str(int(server_now) + 12)}) > 3600


def test_unreadable_retry_after_is_no_hint_rather_than_a_crash() -> None:
    assert parse_retry_after("soon, maybe") is None
    assert parse_retry_after("-5") == 0.0


def test_a_retry_after_date_in_an_unnamed_zone_is_read_as_utc_whatever_the_machines_zone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # RFC 5322's "-0000": a UTC time from a sender that doesn't say its zone.
    unnamed = email.utils.formatdate(NOW + 30, usegmt=True).replace("GMT", "-0000")
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        assert parse_retry_after(unnamed, now=NOW) == pytest.approx(30.0)
    finally:
        monkeypatch.undo()
        time.tzset()


def response(status: int, headers: dict[str, str] | None = None, text: str = "") -> httpx.Response:
    return httpx.Response(
        status, headers=headers, text=text, request=httpx.Request("GET", "http://x")
    )


@pytest.mark.parametrize(
    ("answer", "action"),
    [
        (response(200), Action.ACCEPT),
        (response(429), Action.RATE_LIMITED),
        (
            response(403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1"}),
            Action.RATE_LIMITED,
        ),
        (
            response(403, text='{"message": "You have exceeded a secondary rate limit"}'),
            Action.RATE_LIMITED,
        ),
        (
            response(400, text='{"errors":[{"extensions":{"code":"RATELIMITED"}}]}'),
            Action.RATE_LIMITED,
        ),
        (response(403, text='[{"errorCode":"REQUEST_LIMIT_EXCEEDED"}]'), Action.RATE_LIMITED),
        (
            response(403, text='{"message": "Resource not accessible by integration"}'),
            Action.FAIL_AUTH,
        ),
        (response(401), Action.FAIL_AUTH),
        (response(404), Action.FAIL),
        (response(410), Action.FAIL),
        (response(503), Action.RETRY),
        (response(599), Action.RETRY),
        (httpx.ConnectError("refused"), Action.RETRY),
        (httpx.ReadTimeout("slow"), Action.RETRY),
    ],
)
def test_the_source_policy_classifies_rate_limits_in_every_guise(
    answer: httpx.Response | Exception, action: Action
) -> None:
    assert source_classifier()(answer).action is action


class Scripted(FakeApi):
    """Answers from a script, then 200s."""

    def __init__(self, script: list[Reply]) -> None:
        super().__init__()
        self.script = script

    def route(self, request: Request) -> Reply:
        if self.script:
            return self.script.pop(0)
        return Reply(200, {"ok": True}, headers={"X-RateLimit-Remaining": "100"})


@pytest.fixture
def scripted() -> Iterator[Scripted]:
    with Scripted([]) as api:
        yield api


def session(api: FakeApi, stop: threading.Event | None = None, **retry: Any) -> HttpSession:
    return HttpSession(
        "vendor",
        api.base_url,
        classify=source_classifier(),
        budget=RequestBudget(1000, 1.0, stop=stop),
        retry=RetrySettings(
            **{"max_attempts": 4, "max_wait": 10, "rate_limit_floor": 0.2, **retry}
        ),
        stop=stop,
    )


def test_the_session_waits_what_retry_after_says_then_succeeds(scripted: Scripted) -> None:
    scripted.script[:] = [Reply(429, {"error": "slow down"}, headers={"Retry-After": "1"})]
    client = session(scripted)
    assert client.send("GET", "/things").status_code == 200
    first, second = scripted.requests
    assert second.at - first.at >= 1.0
    assert client.stats.rate_limited == 1
    client.close()


def test_a_rate_limit_without_a_hint_waits_the_floor(scripted: Scripted) -> None:
    scripted.script[:] = [
        Reply(429, raw=b"<html>Automated response</html>", content_type="text/html")
    ]
    client = session(scripted, rate_limit_floor=0.5)
    client.send("GET", "/things")
    first, second = scripted.requests
    assert second.at - first.at >= 0.5
    client.close()


def test_a_wait_longer_than_allowed_fails_instead_of_retrying_early(scripted: Scripted) -> None:
    scripted.script[:] = [Reply(429, {}, headers={"Retry-After": "3600"})]
    client = session(scripted, max_wait=5)
    with pytest.raises(RequestFailed, match="3600s"):
        client.send("GET", "/things")
    assert len(scripted.requests) == 1
    client.close()


def test_a_persistent_error_fails_with_the_status_and_the_body(scripted: Scripted) -> None:
    scripted.script[:] = [Reply(404, {"error": "no such project OPS"})]
    client = session(scripted)
    with pytest.raises(RequestFailed) as caught:
        client.send("GET", "/projects/OPS")
    assert "404" in str(caught.value) and "no such project OPS" in str(caught.value)
    client.close()


def test_low_remaining_quota_pauses_before_the_server_says_no(scripted: Scripted) -> None:
    scripted.script[:] = [
        Reply(
            200,
            {},
            headers={"X-RateLimit-Remaining": "1", "X-RateLimit-Reset": str(int(time.time()) + 2)},
        )
    ]
    client = session(scripted)
    client.send("GET", "/a")
    client.send("GET", "/b")
    first, second = scripted.requests
    assert second.at - first.at >= 0.9
    client.close()


def test_a_stop_request_cuts_a_long_wait_short(scripted: Scripted) -> None:
    scripted.script[:] = [Reply(429, {}, headers={"Retry-After": "8"})]
    stop = threading.Event()
    client = session(scripted, stop=stop)
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    with pytest.raises(StopRequested):
        client.send("GET", "/things")
    assert time.monotonic() - started < 3
    client.close()


def test_the_budget_never_exceeds_its_rate() -> None:
    budget = RequestBudget(3, 0.5, margin=0.0)
    sent = []
    for _ in range(7):
        assert budget.acquire()
        sent.append(time.monotonic())
    for i in range(3, 7):
        assert sent[i] - sent[i - 3] >= 0.5 - 1e-3


LINEAR_QUOTAS = {
    "X-RateLimit-Requests-Remaining": "1200",
    "X-RateLimit-Requests-Reset": str(int((NOW + 40) * 1000)),
    "X-RateLimit-Complexity-Remaining": "250000",
    "X-RateLimit-Complexity-Reset": str(int((NOW + 900) * 1000)),
}
"""Linear's two buckets, both with room: requests reset sooner than complexity points."""


@pytest.mark.parametrize(
    ("spent", "wait"),
    [
        ({"X-RateLimit-Complexity-Remaining": "0"}, 900.0),  # the spent bucket's reset
        ({"X-RateLimit-Requests-Remaining": "0"}, 40.0),
        ({"X-RateLimit-Requests-Remaining": "0", "X-RateLimit-Complexity-Remaining": "0"}, 900.0),
        ({}, 40.0),  # none spent: the first reset given
    ],
)
def test_of_several_quotas_the_reset_of_the_spent_one_is_the_wait(
    spent: dict[str, str], wait: float
) -> None:
    assert wait_from_headers({**LINEAR_QUOTAS, **spent}, now=NOW) == pytest.approx(wait)


def test_the_remaining_quota_is_the_least_of_the_quotas_reported() -> None:
    headers = httpx.Headers({**LINEAR_QUOTAS, "X-RateLimit-Complexity-Remaining": "3"})
    assert remaining_quota(headers) == 3
    assert remaining_quota(httpx.Headers({"X-RateLimit-Remaining": "soon"})) is None
