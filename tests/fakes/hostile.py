"""Servers that attack their client through the answer: a gzip bomb, an endless body, a drip.

A source or a Fragment that is hostile (or broken) controls how big and how
slow its answers are. `HostileServer` answers every request with one
`Attack`: a status, headers and body pieces written as they are, chunked or
not, with a pause between pieces (or between the bytes of the status line
and headers). It notes how much of the body it got out before the client
hung up, which is what a test asserts on: a client that bounds its reads
hangs up early, one that does not reads to the end.

The body's last piece (`tail`) is made from the request, so an attack can
end in a well-formed answer: a page of tickets, or a batch acknowledgment
that echoes the items sent. A client that reads the whole thing would take
it as a good answer; only its bounds stop it.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

MiB = 1024 * 1024

Tail = Callable[[bytes], bytes]
"""The request body → the bytes that end the answer."""


def empty_page(body: bytes) -> bytes:
    """A page of no tickets for the `rest` connector configured with `records_path = "items"`."""
    return b'{"items": []}'


def acknowledgment(body: bytes) -> bytes:
    """Fragment's answer to `PUT /tasks/batch`: the items sent, in order, as tasks."""
    items = json.loads(body or b"{}").get("items", [])
    return json.dumps({"items": [{"uid": item.get("uid")} for item in items]}).encode()


@dataclass
class Attack:
    """How to answer: what the headers say, the body's pieces, and how slowly."""

    pieces: Callable[[bytes], Iterator[bytes]]
    """The request body → the body's pieces (already encoded as `headers` say)."""
    headers: dict[str, str] = field(default_factory=dict)
    chunked: bool = False
    """Send with `Transfer-Encoding: chunked` (else `headers` must carry Content-Length)."""
    pause: float = 0.0
    """Seconds between body pieces."""
    head_pause: float = 0.0
    """Seconds between the bytes of the status line and headers (0: all at once)."""
    status: int = 200


def gzip_bomb(expanded: int, tail: Tail = empty_page) -> Attack:
    """`expanded` bytes of JSON whitespace, then `tail`, gzipped: about 1,000 to 1.

    The whitespace is compressed once; each answer copies the compressor and
    adds its own tail.
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    spaces = b" " * MiB
    prefix = b"".join(compressor.compress(spaces) for _ in range(expanded // MiB))

    def pieces(body: bytes) -> Iterator[bytes]:
        finishing = compressor.copy()
        yield prefix + finishing.compress(tail(body)) + finishing.flush()

    return Attack(
        pieces,
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        chunked=True,
    )


def endless(safety_limit: int, tail: Tail = empty_page) -> Attack:
    """JSON whitespace, chunked, without end (for a test's sake: `safety_limit` bytes, then `tail`).

    A client that reads it all gets a well-formed answer after `safety_limit`
    bytes, so the limit stands in for "forever" while keeping a failing test
    from exhausting the machine.
    """
    piece = b" " * (64 * 1024)

    def pieces(body: bytes) -> Iterator[bytes]:
        for _ in range(safety_limit // len(piece)):
            yield piece
        yield tail(body)

    return Attack(pieces, headers={"Content-Type": "application/json"}, chunked=True)


def drip(length: int, pause: float, tail: Tail = empty_page, head_pause: float = 0.0) -> Attack:
    """A `length`-byte answer (whitespace, then `tail`) sent one byte every `pause` seconds.

    Each byte arrives well within any read timeout, so only a deadline on the
    whole request stops it. `head_pause` drips the status line and headers too.
    """

    def pieces(body: bytes) -> Iterator[bytes]:
        end = tail(body)
        whole = b" " * max(0, length - len(end)) + end
        for index in range(len(whole)):
            yield whole[index : index + 1]

    return Attack(
        pieces,
        headers={"Content-Type": "application/json", "Content-Length": str(length)},
        pause=pause,
        head_pause=head_pause,
    )


@dataclass
class Exchange:
    """One request the server answered, and how far its answer got."""

    method: str
    path: str
    headers: dict[str, str]
    sent: int = 0
    """Body bytes written before the answer ended or the client went away."""
    hung_up: bool = False
    """The client closed the connection before the whole answer was written."""
    finished: threading.Event = field(default_factory=threading.Event)
    """Set once the server is done with the exchange: answered, or found the client gone."""

    def outcome(self) -> Exchange:
        """This exchange once the server is done with it (a client's hang-up shows at a write)."""
        if not self.finished.wait(30):
            raise AssertionError("the server is still writing its answer after 30s")
        return self


class HostileServer:
    """A loopback HTTP/1.1 server answering every request with `attack`; a context manager."""

    def __init__(self, attack: Attack) -> None:
        self.attack = attack
        self.exchanges: list[Exchange] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> Self:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                exchange = Exchange(
                    self.command, self.path, {k.lower(): v for k, v in self.headers.items()}
                )
                with server._lock:
                    server.exchanges.append(exchange)
                self.close_connection = True
                try:
                    server._write(self.connection, exchange, body)
                except (BrokenPipeError, ConnectionResetError):
                    exchange.hung_up = True
                finally:
                    exchange.finished.set()

            do_GET = do_PUT = do_POST = _answer

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def _write(self, connection: socket.socket, exchange: Exchange, body: bytes) -> None:
        attack = self.attack
        head = [f"HTTP/1.1 {attack.status} Whatever", "Connection: close"]
        head += [f"{name}: {value}" for name, value in attack.headers.items()]
        if attack.chunked:
            head.append("Transfer-Encoding: chunked")
        raw_head = ("\r\n".join(head) + "\r\n\r\n").encode()
        if attack.head_pause:
            for index in range(len(raw_head)):
                connection.sendall(raw_head[index : index + 1])
                time.sleep(attack.head_pause)
        else:
            connection.sendall(raw_head)
        for piece in attack.pieces(body):
            framed = f"{len(piece):x}\r\n".encode() + piece + b"\r\n" if attack.chunked else piece
            connection.sendall(framed)
            exchange.sent += len(piece)
            if attack.pause:
                time.sleep(attack.pause)
        if attack.chunked:
            connection.sendall(b"0\r\n\r\n")

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
