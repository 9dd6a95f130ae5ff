"""Pacing and waiting: the request budget, `Retry-After`, and backoff.

Shared by the Fragment client and the source connectors' HTTP toolkit. Pure
arithmetic plus one small thread-safe budget; no HTTP here. Sleeping goes
through a `threading.Event` so a stop request cuts any wait short; the
client that waited then raises `StopRequested`.
"""

from __future__ import annotations

import collections
import datetime as dt
import math
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sync_http import clock


class StopRequested(Exception):
    """A stop was requested (SIGTERM, a timeout) while a client waited; not a failure."""


MIN_WAIT = 1.0
"""Wait this long on a rate-limit answer that gives no hint."""
MINUTE_MARGIN = 0.25
"""Seconds a per-minute budget adds to its minute, a 0.4% cut in the rate: seven times the
widest spread of send-to-arrival delay the bench saw on a loaded machine (35 ms)."""


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` value (delta-seconds or an HTTP date).

    Returns None when absent or unreadable; never negative.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    moment = clock.http_date(text)
    if moment is None:
        return None
    current = time.time() if now is None else now
    return max(0.0, moment.timestamp() - current)


QUOTA_HEADERS: tuple[tuple[str, str | None], ...] = (
    ("x-ratelimit-remaining", "x-ratelimit-reset"),
    ("ratelimit-remaining", "ratelimit-reset"),
    ("x-rate-limit-remaining", "x-rate-limit-reset"),
    ("x-ratelimit-requests-remaining", "x-ratelimit-requests-reset"),
    ("x-ratelimit-complexity-remaining", "x-ratelimit-complexity-reset"),
    ("x-ratelimit-endpoint-requests-remaining", "x-ratelimit-endpoint-requests-reset"),
    ("x-hubspot-ratelimit-remaining", None),  # its window's length instead: see below
)
"""Each quota a server may report, as (what is left, when it resets), lower-cased. Most
report one; Linear reports two at once, requests and query complexity points (and a third
for an endpoint with a limit of its own), each with its reset in epoch milliseconds."""


def quota_left(headers: Mapping[str, str]) -> dict[str, int]:
    """What each quota the headers report has left, by its remaining header's name."""
    lowered = {k.lower(): v for k, v in headers.items()}
    left: dict[str, int] = {}
    for remaining, _reset in QUOTA_HEADERS:
        value = lowered.get(remaining)
        if value is None:
            continue
        try:
            left[remaining] = int(float(value))
        except ValueError:
            continue
    return left


def wait_from_headers(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """The wait a rate-limited answer asks for: `Retry-After`, else a reset header.

    Reset headers (`QUOTA_HEADERS`: `X-RateLimit-Reset`, `RateLimit-Reset`,
    `X-Rate-Limit-Reset`, Linear's `X-RateLimit-Requests-Reset` and
    `X-RateLimit-Complexity-Reset`) are read as epoch seconds, epoch
    milliseconds, ISO 8601, or (small values) seconds from now. Where several
    quotas are reported, the resets of those spent (nothing left) count, the
    latest of them; with none spent, the first reset given. HubSpot names no
    reset, only its window's length (`X-HubSpot-RateLimit-Interval-Milliseconds`):
    a whole window is the wait after which every request counted in it has aged
    out. Returns None when nothing says.

    A time (a reset epoch, a `Retry-After` date) is on the server's clock, so it
    is measured from the answer's `Date` when it has one, not from this
    machine's clock (`now` given overrides both): Intercom's reset read against
    a clock an hour behind would ask for an hour. `Date` is floored to the
    second and stamped before the answer left, so the wait errs long, by less
    than a second plus the answer's travel.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    if now is None:
        stamped = clock.http_date(lowered.get("date"))
        now = None if stamped is None else stamped.timestamp()
    wait = parse_retry_after(lowered.get("retry-after"), now)
    if wait is not None:
        return wait
    current = time.time() if now is None else now
    left = quota_left(lowered)
    spent = [reset for remaining, reset in QUOTA_HEADERS if reset and left.get(remaining, 1) <= 0]
    waits = [_reset_wait(lowered[name].strip(), current) for name in spent if name in lowered]
    known = [w for w in waits if w is not None]
    if known:
        return max(known)
    for _remaining, name in QUOTA_HEADERS:
        raw = None if name is None else lowered.get(name)
        if raw is None:
            continue
        wait = _reset_wait(raw.strip(), current)
        if wait is not None:
            return wait
    interval = lowered.get("x-hubspot-ratelimit-interval-milliseconds", "").strip()
    if interval.isdigit():
        return int(interval) / 1000
    return None


def _reset_wait(raw: str, now: float) -> float | None:
    try:
        number = float(raw)
    except ValueError:
        # ISO 8601: a trailing z is UTC (`fromisoformat` reads only Z), a naive time is UTC.
        try:
            moment = dt.datetime.fromisoformat(raw[:-1] + "Z" if raw.endswith("z") else raw)
        except ValueError:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.UTC)
        return max(0.0, moment.timestamp() - now)
    if number > 1e12:  # epoch milliseconds
        return max(0.0, number / 1000 - now)
    if number > 1e9:  # epoch seconds
        return max(0.0, number - now)
    return max(0.0, number)  # seconds from now


@dataclass(frozen=True)
class Backoff:
    """How long to wait before retrying an answer that names no wait (a 5xx, a timeout).

    `base` seconds before the first retry, doubling for each one after, at most
    `cap` (None: only the caller's limit), times a random factor drawn from
    `jitter`, so that retries from many clients spread out. The default waits
    between half and all of the doubled delay; a vendor that documents its
    own schedule declares it (Jira: 2 s doubling to 30 s, times 0.7 to 1.3).
    """

    base: float = 0.5
    cap: float | None = None
    jitter: tuple[float, float] = (0.5, 1.0)


def backoff_delay(
    attempt: int, backoff: Backoff, limit: float, rng: random.Random | None = None
) -> float:
    """The wait before retry `attempt` (1 for the first) under `backoff`, never over `limit`."""
    cap = limit if backoff.cap is None else min(backoff.cap, limit)
    ceiling: float = min(cap, backoff.base * 2.0 ** max(0, attempt - 1))
    low, high = backoff.jitter
    return min(limit, ceiling * (rng or random).uniform(low, high))


class RequestBudget:
    """Requests paced at `limit` per `window` seconds, under a hard ceiling, plus server holds.

    `acquire()` blocks until a request may go; `hold(seconds)` forbids any
    request before then (a `Retry-After`). Thread-safe. Two rules, each with
    one job:

    - The ceiling, `(count, seconds)` (by default `limit` per `window`): a
      sliding log of our send times never holds more than `count` requests in
      any `seconds + margin`. That is stricter than any fixed or sliding
      window the server keeps on its arrival times, so a client within budget
      never sees a 429; `margin` absorbs the spread of the delay between send
      and arrival, once per window.
    - The pace: a token bucket of `limit` requests, refilled at `limit` per
      `window`, so a long run goes out spread over time, in bursts of at most
      `limit`. A bucket rather than a second log: a request sent late leaves
      its turn to the next one. A log of bursts sent back to back carries
      every late request forward to the same slot of each window after; at
      600 a minute on a loaded machine it lost 0.3-0.7% of the rate that way,
      besides its margin.
    """

    def __init__(
        self,
        limit: int,
        window: float,
        *,
        ceiling: tuple[int, float] | None = None,
        margin: float = 0.05,
        stop: threading.Event | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        most, span = (limit, window) if ceiling is None else ceiling
        if limit < 1 or window <= 0 or most < 1 or span <= 0:
            raise ValueError("a request budget needs limits >= 1 and windows > 0")
        self.limit = limit
        self.window = window
        self.ceiling = (most, span + margin)
        self._interval = window / limit
        self._due = -math.inf
        """When the next request would go at the pace; it may go `limit - 1` turns early."""
        self._sent: collections.deque[float] = collections.deque()
        self._hold_until = 0.0
        self._lock = threading.Lock()
        self._stop = stop or threading.Event()
        self._clock = clock
        self.waited = 0.0
        """Seconds `acquire` spent waiting for the budget, in total."""
        self._waiting = 0
        """`acquire`s waiting now: `acquire_spare` lets them go first."""
        self.spare_taken = 0
        self.spare_waited = 0.0
        """Turns `acquire_spare` took, and the seconds it waited for them."""
        self._due_alone = -math.inf
        self._sent_alone: collections.deque[float] = collections.deque()
        """The pace and log of `acquire`'s turns alone (`_own_turns`)."""
        self.delayed_by_spare = 0
        """`acquire`s that waited longer than they would have without `acquire_spare`'s turns."""

    @classmethod
    def per_minute(
        cls,
        rate: float,
        stop: threading.Event | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> RequestBudget:
        """A budget of `rate` requests a minute, in bursts of at most a tenth of it.

        The ceiling is the documented minute itself (`rate` requests in any
        60 s, 0.25 s to spare); the pace spreads them over ten windows, which
        keeps us clear of a server that counts over a shorter window than the
        minute it documents.
        """
        burst = max(1, math.ceil(rate / 10))
        most = max(1, math.floor(rate))
        return cls(
            burst,
            60.0 * burst / rate,
            ceiling=(most, 60.0 * most / rate),
            margin=MINUTE_MARGIN,
            stop=stop,
            clock=clock,
        )

    def hold(self, seconds: float) -> None:
        """Send nothing for `seconds` from now (the server said so)."""
        with self._lock:
            self._hold_until = max(self._hold_until, self._clock() + seconds)

    def acquire(self) -> bool:
        """Wait for a turn and take it; False when a stop was requested while waiting."""
        with self._lock:
            self._waiting += 1
        try:
            return self._acquire((0, 0))
        finally:
            with self._lock:
                self._waiting -= 1

    def acquire_spare(self) -> bool:
        """Wait for a turn no `acquire` wants, and take it; False on a stop request.

        For work that must never delay the rest (comment sync): it waits while
        any `acquire` waits, and goes only while `spare_reserve` turns would
        remain at once for `acquire`s, in the bucket and under the ceiling, so
        requests arriving just after it, up to the reserve, still go at once.
        """
        return self._acquire(self.spare_reserve, lowly=True)

    def _own_turns(self, now: float, ready_at: float, first: bool) -> None:
        """Keep the pace and log `acquire`'s turns alone would have (under the lock), and
        count an `acquire` that waits where, without the spare turns, it would have gone
        sooner (`delayed_by_spare`): the bench's proof that comment sync delays no task push."""
        alone = self._ready_at(now, (0, 0), self._due_alone, self._sent_alone)
        if first and ready_at > now and alone < ready_at:
            self.delayed_by_spare += 1
        if ready_at <= now:
            self._sent_alone.append(now)
            self._due_alone = max(self._due_alone, now) + self._interval

    @property
    def spare_reserve(self) -> tuple[int, int]:
        """Turns `acquire_spare` leaves for `acquire`: in the bucket, half the burst (3 of 6
        at 60 a minute); under the ceiling, a tenth of it, at least as many (6 of 60).

        The ceiling's is larger: a slot of the ceiling comes back only as the send that
        took it ages out, a minute later, and task pushes arriving while none does (60 s
        after a lull in the sending) would find it full.
        """
        most = self.ceiling[0]
        in_bucket = min(self.limit // 2, most - 1)
        return in_bucket, min(max(in_bucket, most // 10), most - 1)

    def _ready_at(
        self, now: float, reserve: tuple[int, int], due: float, sent: collections.deque[float]
    ) -> float:
        """When a request leaving `reserve` turns (in the bucket, under the ceiling) may go,
        given the pace `due` and the log `sent` (aged to `now`)."""
        most, span = self.ceiling
        in_bucket, in_ceiling = reserve
        while sent and sent[0] + span <= now:
            sent.popleft()
        ready_at = max(self._hold_until, due - (self.limit - 1 - in_bucket) * self._interval)
        over = len(sent) - (most - in_ceiling)  # sends to age out, less one
        if over >= 0:
            ready_at = max(ready_at, sent[over] + span)
        return ready_at

    def _acquire(self, reserve: tuple[int, int], lowly: bool = False) -> bool:
        first = True
        while True:
            with self._lock:
                if lowly and self._waiting > 0:
                    delay = self._interval  # someone that may not be delayed came first
                else:
                    now = self._clock()
                    ready_at = self._ready_at(now, reserve, self._due, self._sent)
                    if not lowly and (first or ready_at <= now):
                        self._own_turns(now, ready_at, first)
                    if ready_at <= now:
                        self._sent.append(now)
                        self._due = max(self._due, now) + self._interval
                        if lowly:
                            self.spare_taken += 1
                        return True
                    delay = ready_at - now
                    first = False
            if lowly:
                self.spare_waited += delay
            else:
                self.waited += delay
            if self._stop.wait(delay):
                return False
