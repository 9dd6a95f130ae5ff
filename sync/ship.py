"""Ship: batches in flight to Fragment, their answers taken in the order they were cut.

Up to `max_in_flight` shipments are out at once, each sent on a sender
thread in requests of `batch_size`. A shipment carrying a version of a ticket
that an earlier one still out carries waits for that one to settle: two
requests in flight may land in either order. What becomes of each request
is Ship's policy, `sync.ship_policy`: it goes out within the request budget,
is retried as the retry policy table says, and when Fragment refuses it, is
bisected until the good items land and each bad one is set aside with the
server's message. That policy sits below the Fragment client that applies it
(`sync.fragment.FragmentClient`, which only carries one request) and apart
from this module, whose import must not load httpx: a pass with nothing to
push never does. Ship knows nothing of sources, the state or watermarks:
settling a shipment is the caller's (`sync.checkpoint`), in the order
`settle_before` and `drain` hand them back.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Collection, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from sync.batches import PushResult, batched
from sync.config import FragmentSettings
from sync.diff import Hashed, Queued, Version

if TYPE_CHECKING:
    from sync.fragment import FragmentClient

P = TypeVar("P", bound=Hashed)
M = TypeVar("M")


class Sink(Protocol):
    """Where shipments go: upserts a request's items, counting into `into` as it goes.

    Fragment's client does it as `sync.ship_policy.isolate` over its one-request `put_batch`.
    """

    def push(self, items: Sequence[Any], into: PushResult | None = None) -> PushResult: ...


class Fragment(Sink, Protocol):
    """What a pass needs of Fragment's client (`sync.fragment.FragmentClient`)."""

    @property
    def settings(self) -> FragmentSettings: ...

    def task_page(self, params: dict[str, str]) -> Any:
        """A page of Fragment's task listing (two-way sync's poll, `sync.changes`)."""
        ...


class FragmentOnDemand:
    """Fragment's client, made at the first push; `run_once` hands one to its passes.

    The one place the engine loads `sync.fragment`, and with it the HTTP stack (httpx,
    ~30 ms to import): a pass with nothing to push never loads it.
    """

    def __init__(self, settings: FragmentSettings, stop: threading.Event) -> None:
        self.settings = settings
        self._stop = stop
        self._client: FragmentClient | None = None
        self._lock = threading.Lock()

    def push(self, items: Sequence[Any], into: PushResult | None = None) -> PushResult:
        return self._connected().push(items, into)

    def post_comment(self, uid: str, text: str) -> Any:
        """`FragmentClient.post_comment` (comment sync, `sync.comments`)."""
        return self._connected().post_comment(uid, text)

    def task_comments(self, uid: str) -> list[str] | None:
        """`FragmentClient.task_comments`."""
        return self._connected().task_comments(uid)

    def task_page(self, params: dict[str, str]) -> Any:
        """`FragmentClient.task_page` (two-way sync's poll, `sync.changes`)."""
        return self._connected().task_page(params)

    def _connected(self) -> FragmentClient:
        with self._lock:
            if self._client is None:
                from sync.fragment import FragmentClient

                self._client = FragmentClient(self.settings, stop=self._stop)
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


V = TypeVar("V", bound=Version)


VC = TypeVar("VC", bound=Version, covariant=True)
PC = TypeVar("PC", bound=Hashed, covariant=True)
MC = TypeVar("MC", covariant=True)
"""Covariant: a shipment's batch and mark are never changed once cut, so a shipment of
tickets is one of `sync.checkpoint.Item`s too, for any stream's checkpoint to settle."""


@dataclass
class Shipment(Generic[VC, PC, MC]):
    """A batch cut from the stream: sent (or nothing to send), then settled in cut order."""

    batch: dict[str, tuple[VC, PC]]
    """Each item's version and payload, by its key (a ticket's source id)."""
    mark: MC
    """What its checkpoint records beside what lands (the caller's)."""
    answer: Future[PushResult] | None = None
    sent: PushResult = field(default_factory=PushResult)
    """What the sender has got so far: its requests count even when the push fails."""
    versions: dict[str, Queued] = field(default_factory=dict)
    """The version of each item it carries (`Ship.out`)."""

    def wait(self) -> PushResult:
        """What landed and what was refused; raises what stopped the push."""
        if self.answer is not None:
            self.answer.result()
        return self.sent


class Ship(Generic[V, P, M]):
    """The shipments out to one sink. `close()` when done: it waits for those still out."""

    def __init__(self, sink: Sink, batch_size: int, max_in_flight: int, name: str) -> None:
        self.sink = sink
        self.batch_size = batch_size
        self.max_in_flight = max_in_flight
        self.outbox: deque[Shipment[V, P, M]] = deque()
        self._sender = ThreadPoolExecutor(
            max_workers=max_in_flight, thread_name_prefix=f"push-{name}"
        )

    def settle_before(self, keys: Collection[str]) -> Iterator[Shipment[V, P, M]]:
        """The shipments to settle, oldest first, before one carrying `keys` may go out.

        One when `max_in_flight` are out; and every one up to the last that
        carries an earlier version of one of `keys`.
        """
        while len(self.outbox) >= self.max_in_flight or any(
            not shipment.batch.keys().isdisjoint(keys) for shipment in self.outbox
        ):
            yield self.outbox.popleft()

    def send(self, shipment: Shipment[V, P, M]) -> None:
        """Send `shipment`'s batch, if any, on a sender thread; it settles after those out."""
        if shipment.batch and not shipment.versions:
            shipment.versions = {
                key: Queued(version.cursor, payload.content_hash)
                for key, (version, payload) in shipment.batch.items()
            }
        if shipment.batch:
            payloads = [payload for _version, payload in shipment.batch.values()]
            shipment.answer = self._sender.submit(self._push, payloads, shipment.sent)
        self.outbox.append(shipment)

    def drain(self) -> Iterator[Shipment[V, P, M]]:
        """Every shipment still out, oldest first, to settle."""
        while self.outbox:
            yield self.outbox.popleft()

    def out(self) -> dict[str, Queued]:
        """The newest version of each item still out, by key."""
        out: dict[str, Queued] = {}
        for shipment in self.outbox:  # oldest first: a later version replaces an earlier one
            out.update(shipment.versions)
        return out

    def close(self) -> None:
        self._sender.shutdown(wait=True)

    def _push(self, payloads: list[P], result: PushResult) -> PushResult:
        """Send `payloads` in requests of `batch_size` into `result` (on a sender thread)."""
        for request in batched(payloads, self.batch_size):
            self.sink.push(request, into=result)
        return result
