"""Bounded reads: an answer is read whole within a size cap and one deadline, or refused.

A server decides how big and how slow its answer is, and httpx bounds
neither: its timeout applies to each socket operation (a server dripping a
byte a second never trips it), and it inflates gzip without a cap (a 500 KiB
bomb unpacks to 500 MiB). So `HttpSession` (sources and the Fragment client
alike) reads every answer streamed through `read_answer`, which inflates here
in steps of at most `INFLATE_STEP` bytes and gives up past `limit` bytes of
body, and runs each request under `request_deadline`, which the transport
from `deadline_transport` enforces on every socket operation: connecting,
sending, waiting for the status line and headers, reading the body.

Not here: what a body means (the callers parse it), retries (the session's
policy: a deadline overrun is a timeout like any other).
"""

from __future__ import annotations

import ssl
import time
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import httpcore
import httpx

MiB = 1024 * 1024
DEFAULT_MAX_RESPONSE_SIZE = 64 * MiB
"""A source page's cap, once unpacked: a thousand large tickets fit many times over."""
INFLATE_STEP = MiB
"""The most a compressed answer unpacks at a time, whatever one network read holds."""
ACCEPT_ENCODING = "gzip, deflate"
"""What the client asks for; any other encoding in an answer is refused, not guessed at."""

SocketOption = (
    tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
)


class ResponseTooLarge(Exception):
    """The answer's body is larger than the cap (counted after unpacking)."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"its body passed {describe_size(limit)} once unpacked and was not read further"
        )
        self.limit = limit


def describe_size(size: int) -> str:
    """`size` bytes as a person reads it: "64 MiB", "512 KiB", "1000 bytes"."""
    for unit, name in ((MiB, "MiB"), (1024, "KiB")):
        if size >= unit and size % unit == 0:
            return f"{size // unit} {name}"
    return f"{size} bytes"


def read_answer(response: httpx.Response, limit: int) -> httpx.Response:
    """The streamed `response` read whole and unpacked, as a response holding its body.

    The copy carries the same status, headers (but the encoding, which is
    undone), request and extensions. Raises `ResponseTooLarge` once the body
    passes `limit` bytes, `httpx.DecodingError` for an encoding that was not
    asked for or does not unpack, and what httpx raises while reading.
    """
    encoding = response.headers.get("content-encoding", "").strip().lower()
    inflater = _Inflater.for_encoding(encoding, response.request)
    declared = response.headers.get("content-length", "")
    if inflater is None and declared.isdigit() and int(declared) > limit:
        raise ResponseTooLarge(limit)
    parts: list[bytes] = []
    size = 0
    for raw in response.iter_raw():
        for part in inflater.feed(raw) if inflater is not None else (raw,):
            size += len(part)
            if size > limit:
                raise ResponseTooLarge(limit)
            parts.append(part)
    headers = [
        (name, value)
        for name, value in response.headers.multi_items()
        if name.lower() not in ("content-encoding", "content-length")
    ]
    return httpx.Response(
        response.status_code,
        headers=headers,
        content=b"".join(parts),
        request=response.request,
        extensions=response.extensions,
    )


class _Inflater:
    """Unpacks gzip or deflate in bounded steps (`zlib`'s `max_length`)."""

    def __init__(self, encoding: str, request: httpx.Request) -> None:
        self.encoding, self.request = encoding, request
        self._engine: zlib._Decompress | None = None
        self._head = b""

    @classmethod
    def for_encoding(cls, encoding: str, request: httpx.Request) -> _Inflater | None:
        """None for an answer sent as is; raises `httpx.DecodingError` for what was not asked."""
        if encoding in ("", "identity"):
            return None
        if encoding in ("gzip", "x-gzip", "deflate"):
            return cls(encoding, request)
        raise httpx.DecodingError(
            f"the answer is encoded as {encoding!r}; only {ACCEPT_ENCODING} were asked for",
            request=request,
        )

    def feed(self, data: bytes) -> Iterator[bytes]:
        """The bytes `data` unpacks to, `INFLATE_STEP` at most at a time."""
        if self._engine is None:
            data, self._head = self._head + data, b""
            self._engine = self._start(data)
            if self._engine is None:
                self._head = data  # too little yet to tell raw deflate from zlib
                return
        engine = self._engine
        try:
            while not engine.eof:
                out = engine.decompress(data, INFLATE_STEP)
                data = engine.unconsumed_tail
                if out:
                    yield out
                if not data and len(out) < INFLATE_STEP:
                    return  # all input used and nothing held back: wait for more
        except zlib.error as exc:
            raise httpx.DecodingError(
                f"the answer does not unpack as {self.encoding}: {exc}", request=self.request
            ) from None

    def _start(self, data: bytes) -> zlib._Decompress | None:
        if self.encoding != "deflate":
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        # "deflate" is meant to be zlib-wrapped, and some servers send it raw:
        # the first two bytes tell which.
        if len(data) < 2:
            return None
        first, second = data[0], data[1]
        wrapped = first & 0x0F == 8 and ((first << 8) | second) % 31 == 0
        return zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)


# One deadline per request, enforced on every socket operation.

_DEADLINE: ContextVar[float | None] = ContextVar("request_deadline", default=None)


@contextmanager
def request_deadline(seconds: float) -> Iterator[None]:
    """Every socket operation in this block (this thread) ends within `seconds` from now."""
    token = _DEADLINE.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def _within(timeout: float | None, overrun: type[httpcore.TimeoutException]) -> float | None:
    """`timeout` shortened to what is left of the deadline; raises `overrun` when none is."""
    deadline = _DEADLINE.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise overrun("the request ran past its deadline (timeout) before it was answered")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _within(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _within(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        timeout = _within(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> object:
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's own backend, with each operation's timeout cut to the request's deadline."""

    def __init__(self) -> None:
        self._backend = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.NetworkStream:
        timeout = _within(timeout, httpcore.ConnectTimeout)
        stream = self._backend.connect_tcp(host, port, timeout, local_address, socket_options)
        return _DeadlineStream(stream)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.NetworkStream:
        timeout = _within(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._backend.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


def deadline_transport(limits: httpx.Limits) -> httpx.HTTPTransport:
    """httpx's transport, its connections made through `_DeadlineBackend`.

    httpx offers no total timeout (encode/httpx#1450) and its transport takes
    no network backend; httpcore's pool does, so the transport's pool is
    replaced by one built with it, configured as httpx builds its own.
    """
    transport = httpx.HTTPTransport(limits=limits)
    transport._pool = httpcore.ConnectionPool(
        ssl_context=httpx.create_ssl_context(),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=_DeadlineBackend(),
    )
    return transport
