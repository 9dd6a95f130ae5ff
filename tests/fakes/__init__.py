"""Fakes of vendor APIs, served over real HTTP on loopback, following the vendors' docs.

Each fake holds its tickets in memory and answers the vendor's query the way
the vendor documents it: its filter's inclusivity and granularity, its
pagination, its rate-limit answers and headers, its error bodies, how it
shows deletions. `FakeApi` is the shared base: a threaded server, a request
log, scripted faults (`fail_next`) every fake supports, and a clock of its
own (`FakeClock`) that stamps the changes a fake makes itself and the `Date`
header of every answer, as a real server's clock does; it may run ahead of or
behind this machine's.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)

    def param(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def json(self) -> Any:
        """The body as JSON; None when empty or not JSON (the fake then answers as its
        vendor does to a body it can't read)."""
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None
    """Bytes to send as they are (HTML error pages, truncated JSON)."""
    content_type: str = "application/json"

    def encoded(self) -> bytes:
        if self.raw is not None:
            return self.raw
        return json.dumps(self.body).encode()


Fault = Callable[[Request], Reply | None]


class FakeClock:
    """A fake server's clock: this machine's shifted by `offset`, or stopped where a test puts it.

    A stopped clock moves only by `advance`, so a test can place changes in
    the same second, or seconds apart, without sleeping.
    """

    def __init__(self, offset: dt.timedelta = dt.timedelta(0)) -> None:
        self.offset = offset
        self.stopped: dt.datetime | None = None

    def now(self) -> dt.datetime:
        if self.stopped is not None:
            return self.stopped
        return dt.datetime.now(dt.UTC) + self.offset

    def __call__(self) -> float:
        """The time in Unix seconds, as `time.time` gives it."""
        return self.now().timestamp()

    def stop_at(self, moment: dt.datetime) -> None:
        self.stopped = moment

    def advance(self, span: dt.timedelta) -> None:
        if self.stopped is not None:
            self.stopped += span
        else:
            self.offset += span


class FakeApi:
    """A vendor fake: subclasses implement `route(request) -> Reply`."""

    sends_date = True
    """Whether every answer carries a `Date` header, as RFC 9110 asks of a server with a clock."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.faults: list[Fault] = []
        self.lock = threading.RLock()
        self.clock = FakeClock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # Test controls

    def fail_next(
        self, reply: Reply, times: int = 1, when: Callable[[Request], bool] | None = None
    ) -> None:
        """Answer the next `times` matching requests with `reply` instead of the real answer."""
        remaining = [times]

        def fault(request: Request) -> Reply | None:
            if remaining[0] <= 0 or (when is not None and not when(request)):
                return None
            remaining[0] -= 1
            return reply

        self.faults.append(fault)

    def when(self, matches: Callable[[Request], bool], action: Callable[[], None]) -> None:
        """Run `action` (change the data) once, as the first request matching arrives."""
        done = [False]

        def hook(request: Request) -> Reply | None:
            if not done[0] and matches(request):
                done[0] = True
                action()
            return None

        self.faults.append(hook)

    def route(self, request: Request) -> Reply:
        raise NotImplementedError

    # Serving

    @property
    def base_url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> Self:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def send_response(self, code: int, message: str | None = None) -> None:
                self.log_request(code)
                self.send_response_only(code, message)
                self.send_header("Server", self.version_string())
                if api.sends_date:  # the fake's clock, as a real server's `Date` is its own
                    self.send_header(
                        "Date", email.utils.format_datetime(api.clock.now(), usegmt=True)
                    )

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                request = Request(
                    self.command,
                    parts.path,
                    parse_qs(parts.query, keep_blank_values=True),
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                )
                with api.lock:
                    api.requests.append(request)
                    reply = None
                    for fault in api.faults:
                        reply = fault(request)
                        if reply is not None:
                            break
                    if reply is None:
                        reply = api.route(request)
                payload = reply.encoded()
                self.send_response(reply.status)
                headers = {"Content-Type": reply.content_type, **reply.headers}
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def gets(self, path: str) -> list[Request]:
        """The GET requests made to `path`."""
        return [r for r in self.requests if r.method == "GET" and r.path == path]


HTML_ERROR = Reply(
    502,
    raw=b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
    content_type="text/html",
)
TRUNCATED_JSON = Reply(200, raw=b'{"issues": [{"id": 1, "subject": "cut he')
