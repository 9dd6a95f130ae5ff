"""The record of requests the emulator answered: what tests and demos inspect.

Counts by method, route and status, plus the most recent requests (arrival
time, method, path, status, item count, fault injected). Holds no opinion on
what the requests did; the HTTP layer appends one `RequestRecord` per request.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from dataclasses import asdict, dataclass
from typing import Any

RECENT_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One answered (or deliberately unanswered) request.

    `t` is the arrival time (epoch seconds). `route` is the path template
    (`/api/v1/tasks/{uid}`). `status` is what was (or would have been) sent;
    None when the connection was dropped before handling. `items` counts the
    tasks in the request body (batch length, 1 for a single-task write, 0 for
    none). `fault` names the injected fault, if any.
    """

    t: float
    method: str
    path: str
    route: str
    status: int | None
    items: int
    fault: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The record as the stats route shows it."""
        return asdict(self)


class TrafficLog:
    """Thread-safe request counts and the last `RECENT_LIMIT` requests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._recent: deque[RequestRecord] = deque(maxlen=RECENT_LIMIT)
        self._counts: Counter[str] = Counter()

    def add(self, record: RequestRecord) -> None:
        """Remember one request."""
        outcome = "dropped" if record.status is None else record.status
        key = f"{record.method} {record.route} {outcome}"
        with self._lock:
            self._recent.append(record)
            self._counts[key] += 1

    def records(self) -> list[RequestRecord]:
        """The recent requests, oldest first."""
        with self._lock:
            return list(self._recent)

    def stats(self) -> dict[str, Any]:
        """`{"total", "counts": {"PUT /api/v1/tasks/batch 200": n, ...}, "requests": [...]}`."""
        with self._lock:
            return {
                "total": sum(self._counts.values()),
                "counts": dict(self._counts),
                "requests": [record.as_json() for record in self._recent],
            }

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._recent.clear()
            self._counts.clear()
