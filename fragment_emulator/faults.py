"""The emulator's fault switches: rate limiting and transport failures on demand.

`Faults` is the one mutable set of switches a test or demo flips at runtime
(in-process, or over `POST /_emulator/faults`); the HTTP layer asks it what to
do with each `/api/v1` request. Dice come from one seeded `random.Random`, so a
run with the same seed and the same request order fails the same way. This
module decides; it never touches sockets (`server` does).
"""

from __future__ import annotations

import datetime as dt
import math
import random
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from fragment_emulator.models import timestamp_text

RateLimit = tuple[int, float]
"""(requests allowed, window in seconds), per token."""

ERROR_STATUSES = (500, 502, 503, 504)
_RATES = frozenset({"error_rate", "timeout_rate", "drop_rate", "lost_response_rate"})
_DURATIONS = frozenset({"latency", "hang_seconds"})


class SlidingWindowLimiter:
    """Per-token sliding-window request counter.

    Only admitted requests are remembered: a refused (429) request does not
    push the window further out, as a client backing off would expect.
    """

    def __init__(self) -> None:
        self._admitted: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def admit(self, token: str, limit: RateLimit, now: float | None = None) -> int | None:
        """None if `token` may make a request now, else seconds to wait (>= 1)."""
        count, window = limit
        moment = time.monotonic() if now is None else now
        with self._lock:
            admitted = self._admitted.setdefault(token, deque())
            while admitted and admitted[0] <= moment - window:
                admitted.popleft()
            if len(admitted) >= count:
                wait = admitted[0] + window - moment if admitted else window
                return max(1, math.ceil(wait))
            admitted.append(moment)
            return None

    def clear(self) -> None:
        """Forget every token's history."""
        with self._lock:
            self._admitted.clear()


@dataclass
class Faults:
    """Fault switches; every field may be changed at any time, from any thread.

    - `rate_limit`: (count, window_seconds) per token, sliding; None = off.
      Over it: 429 with `Retry-After`.
    - `error_rate`: share of requests answered 500/502/503/504 without being
      applied.
    - `latency`: seconds added before every answer.
    - `timeout_rate`: share of requests held `hang_seconds` before being
      handled, to trip client timeouts (the request is still applied after).
    - `drop_rate`: share of requests whose connection is closed with no
      answer, before anything is applied.
    - `lost_response_rate`: share of requests applied, then left unanswered
      (connection closed): the case retries must be idempotent for.
    - `unnamed_rejections`: a batch holding invalid items is refused with a
      422 that names none of them ("invalid batch"), as a gateway in front of
      Fragment may answer: the client must bisect to find them.
    - `clock_offset`: seconds added to the server's clock (negative: behind),
      for the timestamps it stamps on tasks; Fragment's clock is not ours.
    - `seed`: seeds the dice (None = unpredictable); setting it reseeds.
    """

    rate_limit: RateLimit | None = None
    error_rate: float = 0.0
    latency: float = 0.0
    timeout_rate: float = 0.0
    hang_seconds: float = 30.0
    drop_rate: float = 0.0
    lost_response_rate: float = 0.0
    unnamed_rejections: bool = False
    clock_offset: float = 0.0
    seed: int | None = None
    limiter: SlidingWindowLimiter = field(
        default_factory=SlidingWindowLimiter, init=False, repr=False, compare=False
    )
    _dice: random.Random = field(init=False, repr=False, compare=False)
    _dice_lock: threading.Lock = field(init=False, repr=False, compare=False)

    def __setattr__(self, name: str, value: Any) -> None:
        # Validating on every assignment keeps a typo'd runtime switch
        # (drop_rate=5) from silently meaning "always".
        super().__setattr__(name, _checked(name, value))
        if name == "seed":
            dice_lock = self.__dict__.get("_dice_lock")
            if dice_lock is None:
                super().__setattr__("_dice_lock", threading.Lock())
                super().__setattr__("_dice", random.Random(value))
            else:
                with dice_lock:
                    self._dice.seed(value)

    @classmethod
    def switch_names(cls) -> tuple[str, ...]:
        """The names of the settable switches."""
        return tuple(f.name for f in fields(cls) if f.init)

    def update(self, changes: Mapping[str, Any]) -> None:
        """Set several switches; raise `ValueError` (nothing set) on a bad one."""
        unknown = set(changes) - set(self.switch_names())
        if unknown:
            raise ValueError(f"unknown fault switch(es): {', '.join(sorted(unknown))}")
        checked = {name: _checked(name, value) for name, value in changes.items()}
        for name, value in checked.items():
            setattr(self, name, value)

    def snapshot(self) -> dict[str, Any]:
        """The switches as JSON-ready values."""
        return {name: getattr(self, name) for name in self.switch_names()}

    def roll(self, rate: float) -> bool:
        """True with probability `rate`; consumes no dice when `rate` is 0."""
        if rate <= 0.0:
            return False
        with self._dice_lock:
            return self._dice.random() < rate

    def error_status(self) -> int:
        """Which 5xx an injected error answers with."""
        with self._dice_lock:
            return self._dice.choice(ERROR_STATUSES)

    def now_text(self) -> str:
        """The server's clock, `clock_offset` applied, as `models.timestamp_text`."""
        moment = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self.clock_offset)
        return timestamp_text(moment)

    def admit(self, token: str) -> int | None:
        """None if the rate limit lets `token` through, else Retry-After seconds."""
        limit = self.rate_limit
        return None if limit is None else self.limiter.admit(token, limit)


def _checked(name: str, value: Any) -> Any:
    """`value` if it suits switch `name`; raises `ValueError` naming the switch."""
    if name in _RATES or name in _DURATIONS:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{name} must be a number, got {value!r}")
        if name in _RATES and not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be between 0 and 1, got {value!r}")
        if name in _DURATIONS and not 0.0 <= value < math.inf:
            raise ValueError(f"{name} must be a non-negative number of seconds, got {value!r}")
        return float(value)
    if name == "clock_offset":
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or not math.isfinite(value):
            raise ValueError(f"clock_offset must be a number of seconds, got {value!r}")
        return float(value)
    if name == "rate_limit":
        if value is None:
            return None
        # "60/60" is the command line's spelling of (60, 60.0).
        parts = value.split("/", 1) if isinstance(value, str) else value
        try:
            count_part, window_part = parts
            count, window = int(count_part), float(window_part)
        except (TypeError, ValueError):
            raise ValueError(
                f"rate_limit must be [count, window_seconds], COUNT/SECONDS or null, got {value!r}"
            ) from None
        if count < 1 or not 0.0 < window < math.inf:
            raise ValueError(f"rate_limit needs count >= 1 and window > 0, got {value!r}")
        return (count, window)
    if name == "unnamed_rejections" and not isinstance(value, bool):
        raise ValueError(f"unnamed_rejections must be true or false, got {value!r}")
    if (
        name == "seed"
        and value is not None
        and (isinstance(value, bool) or not isinstance(value, int))
    ):
        raise ValueError(f"seed must be an integer or null, got {value!r}")
    return value
