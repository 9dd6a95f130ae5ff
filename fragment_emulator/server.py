"""The emulator on the wire: HTTP/1.1 server, fault execution, `Emulator`, `serve`.

Owns sockets: reading request bodies, writing responses with exact
Content-Length over keep-alive connections, and carrying out the faults
`Faults` decides on (closing a connection unanswered, answering late, answering
5xx, applying a request then dropping the answer). What a request means is
`api`'s business. Standard library `http.server` on purpose: these faults need
raw control of the connection, which an ASGI stack hides.
"""

from __future__ import annotations

import contextlib
import email.utils
import gc
import json
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from os import PathLike
from types import FrameType, TracebackType
from typing import Any, Self, cast
from urllib.parse import parse_qs, urlsplit

from fragment_emulator.api import API_PREFIX, AdminApi, ApiRequest, FragmentApi, Reply, json_reply
from fragment_emulator.faults import Faults
from fragment_emulator.models import now_text
from fragment_emulator.store import TaskStore
from fragment_emulator.traffic import RequestRecord, TrafficLog
from fragment_emulator.users import UserDirectory

# Not a secret: the token a local emulator accepts when none is configured.
DEFAULT_TOKEN = "fragment-emulator-token"  # noqa: S105
_WRITE_METHODS = frozenset({"POST", "PUT", "PATCH"})
_PROXY_PAGE = (
    "<html><head><title>{0}</title></head><body><center><h1>{0}</h1></center>"
    "<hr><center>nginx</center></body></html>\n"
)
_PROXY_REASONS = {
    502: "502 Bad Gateway",
    503: "503 Service Temporarily Unavailable",
    504: "504 Gateway Time-out",
}


def _injected_error(status: int) -> Reply:
    """A 5xx as a client meets them: the app's JSON 500, or a proxy's HTML page."""
    if status == 500:
        return json_reply(500, {"detail": "Internal Server Error"})
    page = _PROXY_PAGE.format(_PROXY_REASONS[status]).encode()
    return Reply(status, page, content_type="text/html")


def _items_in(method: str, route: str, body: bytes) -> int:
    """How many tasks a request body carries (for requests never handled)."""
    if method not in _WRITE_METHODS or not body:
        return 0
    if not route.endswith("/tasks/batch"):
        return 1
    try:
        items = json.loads(body).get("items")
    except (ValueError, AttributeError):
        return 0
    return len(items) if isinstance(items, list) else 0


class _BadFraming(ValueError):
    """The request body's length or chunking cannot be read."""


class _EmulatorHandler(BaseHTTPRequestHandler):
    """One connection: reads requests, runs them through the emulator, answers."""

    protocol_version = "HTTP/1.1"
    server_version = "fragment-emulator"
    # Headers and body go out as two writes; without this, Nagle + delayed ACK
    # would add ~40 ms to every answer and ruin throughput measurements.
    disable_nagle_algorithm = True

    @property
    def emulator(self) -> Emulator:
        return cast(_EmulatorHTTPServer, self.server).emulator

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def version_string(self) -> str:
        return self.server_version

    def date_time_string(self, timestamp: float | None = None) -> str:
        # The `Date` header, on the emulated Fragment's clock (`Faults.clock_offset`).
        moment = time.time() if timestamp is None else timestamp
        return email.utils.formatdate(moment + self.emulator.faults.clock_offset, usegmt=True)

    def log_message(self, format: str, *args: Any) -> None:
        # Request lines are logged by _serve (when verbose); stdlib noise is not wanted.
        pass

    def _serve(self) -> None:
        emulator = self.emulator
        arrived = time.time()
        started = time.perf_counter()
        split = urlsplit(self.path)
        try:
            body = self._read_body()
        except _BadFraming as exc:
            self.close_connection = True
            self._send(json_reply(400, {"detail": str(exc)}))
            return
        request = ApiRequest(
            method=self.command,
            path=split.path,
            query=parse_qs(split.query, keep_blank_values=True),
            headers=self.headers,
            body=body,
        )
        if not request.path.startswith(API_PREFIX):
            self._send(self._answer(emulator.admin.handle, request))
            return
        reply, fault = self._serve_api(emulator, request)
        route = (
            reply.route
            if reply is not None
            else emulator.api.router.template_of(request.method, request.path)
        )
        items = (
            reply.items
            if reply is not None and reply.items
            else _items_in(request.method, route, body)
        )
        record = RequestRecord(
            t=arrived,
            method=request.method,
            path=request.path,
            route=route,
            status=reply.status if reply is not None else None,
            items=items,
            fault=fault,
        )
        emulator.traffic.add(record)
        if emulator.verbose:
            elapsed = (time.perf_counter() - started) * 1000
            note = f" fault={fault}" if fault else ""
            print(
                f"{record.method} {self.path} -> {record.status or '-'} "
                f"items={record.items} {elapsed:.1f}ms{note}",
                file=sys.stderr,
                flush=True,
            )

    def _serve_api(
        self, emulator: Emulator, request: ApiRequest
    ) -> tuple[Reply | None, str | None]:
        """Run an `/api/v1` request through the faults; send (or withhold) its answer.

        Returns the reply (None when none was produced) and the fault injected.
        """
        faults = emulator.faults
        if faults.roll(faults.drop_rate):
            self._drop()
            return None, "drop"
        delay = faults.latency
        fault = None
        if faults.roll(faults.timeout_rate):
            delay += faults.hang_seconds
            fault = "timeout"
        if delay > 0 and emulator.stopping.wait(delay):
            self._drop()
            return None, "shutdown"
        if faults.roll(faults.error_rate):
            route = emulator.api.router.template_of(request.method, request.path)
            reply = replace(_injected_error(faults.error_status()), route=route)
            self._send(reply)
            return reply, "error"
        reply = self._answer(emulator.api.handle, request)
        if faults.roll(faults.lost_response_rate):
            self._drop()
            return reply, "lost_response"
        self._send(reply)
        return reply, fault

    def _answer(self, handle: Callable[[ApiRequest], Reply], request: ApiRequest) -> Reply:
        """`handle(request)`, with a bug turned into a logged 500 rather than a dead connection."""
        try:
            return handle(request)
        except Exception:
            traceback.print_exc(file=sys.stderr)
            return json_reply(500, {"detail": "Internal Server Error"})

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked()
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            return b""
        try:
            length = int(length_text)
        except ValueError:
            raise _BadFraming(f"bad Content-Length {length_text!r}") from None
        if length < 0:
            raise _BadFraming(f"bad Content-Length {length_text!r}")
        return self.rfile.read(length)

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        while True:
            size_line = self.rfile.readline(65537).split(b";", 1)[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError:
                raise _BadFraming(f"bad chunk size {size_line!r}") from None
            if size == 0:
                # Skip trailers up to the blank line that ends the body.
                while self.rfile.readline(65537).strip():
                    pass
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline(3)

    def _send(self, reply: Reply) -> None:
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            for name, value in reply.headers:
                self.send_header(name, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(reply.body)
        except OSError:
            # The client went away mid-answer; nothing left to tell it.
            self.close_connection = True

    def _drop(self) -> None:
        """Close the connection without a word: the client sees a transport error."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


class _EmulatorHTTPServer(ThreadingHTTPServer):
    """A thread per connection; remembers open connections so `stop` can close them."""

    daemon_threads = True
    block_on_close = True  # server_close() waits for handler threads
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], emulator: Emulator) -> None:
        self.emulator = emulator
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _EmulatorHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """End every open connection (idle keep-alive ones would block shutdown)."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return  # a client hung up; not the emulator's bug
        super().handle_error(request, client_address)


class Emulator:
    """A Fragment API emulator, served from a daemon thread; one start, one stop.

    `db_path` is a SQLite file (kept across runs) or ":memory:". `tokens` are
    the accepted bearer tokens. `users`, when given, are the only emails
    `assignee_email` may name. `port=0` picks a free port. Use as a context
    manager, or `start()` / `stop()`.
    """

    def __init__(
        self,
        db_path: str | PathLike[str] = ":memory:",
        tokens: Sequence[str] = (DEFAULT_TOKEN,),
        users: Iterable[str] | None = None,
        faults: Faults | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        max_batch_items: int | None = 1000,
        verbose: bool = False,
    ) -> None:
        if not tokens:
            raise ValueError("the emulator needs at least one token")
        self.host = host
        self.verbose = verbose
        self.tokens = tuple(tokens)
        self.faults = faults if faults is not None else Faults()
        self.store = TaskStore(db_path)
        self.traffic = TrafficLog()
        self.stopping = threading.Event()
        directory = UserDirectory.of(users)
        if directory.known:
            with self.store.writing() as writer:
                writer.add_users(sorted(directory.known), now_text())
        self.api = FragmentApi(self.store, self.tokens, directory, self.faults, max_batch_items)
        self.admin = AdminApi(self.store, self.traffic, self.faults, self.tokens)
        self._requested_port = port
        self._server: _EmulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port served on; raises `RuntimeError` before `start()`."""
        if self._server is None:
            raise RuntimeError("the emulator is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The server root, e.g. `http://127.0.0.1:43817` (admin routes hang off it)."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The API base, e.g. `http://127.0.0.1:43817/api/v1`."""
        return self.url + API_PREFIX

    @property
    def requests(self) -> list[dict[str, Any]]:
        """The recent `/api/v1` requests, oldest first (see `traffic.RequestRecord`)."""
        return [record.as_json() for record in self.traffic.records()]

    def stats(self) -> dict[str, Any]:
        """What `GET /_emulator/stats` answers."""
        return self.traffic.stats()

    def reset(self) -> None:
        """Forget tasks, traffic and rate-limit history (fault switches and users stay)."""
        self.admin.reset()

    def start(self) -> Self:
        """Bind and serve in a daemon thread; returns self."""
        if self._server is not None or self.stopping.is_set():
            raise RuntimeError("an Emulator starts once; make a new one")
        self._server = _EmulatorHTTPServer((self.host, self._requested_port), self)
        # A short poll interval makes stop() quick (shutdown waits for one poll).
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fragment-emulator:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close open connections, close the database."""
        if self.stopping.is_set():
            return
        self.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.close_connections()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self.store.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# Objects allocated between young-generation collections: CPython's default
# (700) collects several times within every batch of 500 tasks, re-reading
# objects the batch still uses; at this size most of a batch is gone first.
_YOUNG_COLLECTION_THRESHOLD = 20_000


def _settle_collector() -> None:
    """Tune the cyclic garbage collector for a process that only serves the emulator.

    What start-up built (modules, classes, schemas: some 55,000 objects)
    lives as long as the process; frozen, full collections stop reading it
    again, each one 20-30 ms in a backfill. Young collections run less often
    (`_YOUNG_COLLECTION_THRESHOLD`). Together they were ~3 µs of CPU per task
    of a batch. Only `serve` calls this: an in-process `Emulator` leaves its
    host's collector alone.
    """
    gc.freeze()
    gc.set_threshold(_YOUNG_COLLECTION_THRESHOLD, *gc.get_threshold()[1:])


def serve(
    host: str = "127.0.0.1",
    port: int = 8400,
    db: str | PathLike[str] = ":memory:",
    tokens: Sequence[str] = (DEFAULT_TOKEN,),
    users: Iterable[str] | None = None,
    faults: Faults | None = None,
    max_batch_items: int | None = 1000,
    verbose: bool = False,
) -> None:
    """Serve the emulator until SIGINT or SIGTERM (call from the main thread).

    Prints the API base URL to stderr once listening. Raises `OSError` when
    the port cannot be bound.
    """
    finished = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        finished.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with Emulator(db, tokens, users, faults, host, port, max_batch_items, verbose) as emulator:
            _settle_collector()
            print(
                f"Fragment emulator listening at {emulator.base_url} (db: {db})",
                file=sys.stderr,
                flush=True,
            )
            # Short waits keep the main thread responsive to signals on every platform.
            while not finished.wait(0.5):
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
