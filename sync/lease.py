"""The lease: one process at a time runs a connector's pass.

Taking the lease (waiting for a busy connector if asked) and keeping it
renewed in the background while the pass runs. The state store keeps the
lease; this module only decides when to take and renew it.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import structlog

from sync.errors import RunInterrupted
from sync.state import LeaseLost, StateStore

log = structlog.get_logger("sync.lease")


def take_lease(
    store: StateStore,
    connector: str,
    owner: str,
    ttl: float,
    *,
    wait: float | None,
    stop: threading.Event,
) -> bool:
    """Take `connector`'s lease for `owner`; False if another process holds it.

    `wait`: seconds to wait for it to come free (None: don't wait); a stop
    request ends the wait.
    """
    deadline = time.monotonic() + (wait or 0)
    while True:
        if store.acquire_lease(connector, owner, ttl):
            return True
        if wait is None or time.monotonic() >= deadline:
            return False
        if stop.wait(min(1.0, ttl / 10)):
            return False


def holder_text(store: StateStore, connector: str) -> str:
    """Who holds `connector`'s lease and until when, for a person to read."""
    holder = store.lease(connector)
    return f"{holder.owner} until {holder.expires_at:%H:%M:%S}Z" if holder else "another process"


class LeaseKeeper:
    """Renews a pass's lease every third of its TTL, in the background.

    A pass can spend longer than the TTL between checkpoints (a rate limit, a
    slow source); renewing apart from them keeps a live holder's lease. If a
    renewal finds the lease gone, `lost` turns true and the pass stops at its
    next ticket. Its thread starts only when the first renewal is due
    (`_Starter`): an idle pass ends in milliseconds and never needs one.
    """

    def __init__(self, store: StateStore, connector: str, owner: str, ttl: float) -> None:
        self.store, self.connector, self.owner, self.ttl = store, connector, owner, ttl
        self.lost = False
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        _STARTER.add(self, time.monotonic() + self.ttl / 3)

    def stop(self) -> None:
        with self._lock:
            self._stop.set()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=5)

    def _begin(self) -> None:
        """Start renewing in a thread of its own, unless the pass has ended already."""
        with self._lock:
            if self._stop.is_set():
                return
            self._thread = threading.Thread(
                target=self._renew, name=f"lease-{self.connector}", daemon=True
            )
            self._thread.start()

    def _renew(self) -> None:
        while not self._stop.is_set():
            try:
                renewed = self.store.renew_lease(self.connector, self.owner, self.ttl)
            except Exception as exc:  # the database is down: the next checkpoint will tell
                if not self._stop.is_set():
                    log.warning("lease_renewal_failed", connector=self.connector, error=str(exc))
                renewed = True
            # A renewal still waiting for a connection when its pass ended (a busy pool
            # waits up to `state.pool_timeout`) finds the lease released, not lost.
            if not renewed and not self._stop.is_set():
                self.lost = True
                log.error("lease_lost", connector=self.connector, owner=self.owner)
                return
            self._stop.wait(self.ttl / 3)


class _Starter:
    """One thread of the process that starts each keeper's renewals when the first is due.

    A thread started and joined for every pass cost 0.14 ms of CPU, about a
    twentieth of an idle pass. This one only waits and starts threads: a
    renewal slow to get its connection holds up no other keeper's.
    """

    def __init__(self) -> None:
        self._due: list[tuple[float, int, LeaseKeeper]] = []
        self._order = itertools.count()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def add(self, keeper: LeaseKeeper, when: float) -> None:
        with self._changed:
            heapq.heappush(self._due, (when, next(self._order), keeper))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="lease-start", daemon=True)
                self._thread.start()
            self._changed.notify()

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._due or self._due[0][0] > time.monotonic():
                    self._changed.wait(self._due[0][0] - time.monotonic() if self._due else None)
                _when, _order, keeper = heapq.heappop(self._due)
            keeper._begin()


_STARTER = _Starter()


@contextmanager
def leased(
    store: StateStore,
    connector: str,
    owner: str,
    ttl: float,
    *,
    wait: float | None,
    stop: threading.Event,
    held: bool = False,
) -> Iterator[LeaseKeeper | None]:
    """Hold `connector`'s lease, kept renewed, while in the block; None if it is busy.

    Released at the end unless it was lost (then another process holds it).
    `held`: `owner` holds it already (the daemon's claim, `sync.state.claims`):
    it is only kept renewed here, and its holder releases it.
    """
    if not held and not take_lease(store, connector, owner, ttl, wait=wait, stop=stop):
        yield None
        return
    keeper = LeaseKeeper(store, connector, owner, ttl)
    keeper.start()
    try:
        yield keeper
    finally:
        keeper.stop()
        if not keeper.lost and not held:
            store.release_lease(connector, owner)


def check_turn(
    name: str,
    keeper: LeaseKeeper | None,
    stop: threading.Event,
    deadline: float | None,
    *,
    stopped: str,
    timed_out: str,
) -> None:
    """Raise if connector `name`'s turn is over: its lease lost (`LeaseLost`), a stop
    requested or its `deadline` (monotonic) passed (`RunInterrupted`, with `stopped` or
    `timed_out` as the message). A pass and a census check it between batches alike."""
    if keeper is not None and keeper.lost:
        raise LeaseLost(f"connector {name!r}: the lease passed to another process")
    if stop.is_set():
        raise RunInterrupted(stopped)
    if deadline is not None and time.monotonic() > deadline:
        raise RunInterrupted(timed_out)
