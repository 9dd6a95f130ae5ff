"""The daemon's small HTTP server: health and readiness probes, metrics, a status page.

    GET /healthz   200 "ok" while the process lives
    GET /readyz    200 when the state database answers, the scheduler runs and no
                   pass has outrun its bound; else 503 with the reasons
                   (`?format=json` for JSON)
    GET /metrics   Prometheus text exposition of `sync.shell.metrics.Metrics`
    GET /          a status page for people, refreshed every 30 s

The page and the metrics show ticket values, source URLs and the config path,
so they answer only a request that names an allowed host (`Host` header: a
DNS-rebinding page names its own) and, with `daemon.http_token` set, carries
the token (`Authorization: Bearer`, or as the password of Basic for a
browser); the daemon won't listen beyond loopback without one. The probes stay
open to orchestrators and tell such a stranger ready or not, nothing more.
Connections idle for `daemon.http_timeout` are closed, so they can't hold the
descriptors the probes need.

Served by the standard library's threading HTTP server from a daemon thread;
it reads the state and the metrics, never changes them. The page is
`templates/status.html`, rendered by Jinja2 with autoescape, and every value
it prints passes through `sync.shell.logs.redact` first: ticket errors are
user data, run errors come from exceptions. Jinja2 is imported on the page's
first view, not before. Started by the daemon; nothing else imports it.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import errno
import functools
import hmac
import ipaddress
import json
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qs, urlsplit

import sqlalchemy as sa
import structlog
from prometheus_client import CONTENT_TYPE_LATEST

from sync.config import Config, DaemonSettings
from sync.errors import ConfigError, first_line
from sync.shell.logs import redact, register_secrets
from sync.shell.metrics import Metrics, PassInFlight
from sync.shell.status import census_found, collect
from sync.state import FailedItem, RunRecord, StateError, StateStore

if TYPE_CHECKING:
    import jinja2

log = structlog.get_logger("sync.shell.web")

RUNS_SHOWN = 10
"""Recent runs listed per connector on the status page."""
FAILED_SHOWN = 20
"""Failed items listed per connector; the rest are counted in an "N more" line."""
ROWS_SHOWN = 200
"""Connectors the status page's table lists, those that need attention first; the page
counts the rest. At 10,000 connectors, listing every one took seconds."""
CARDS_SHOWN = 20
"""Of them, the connectors shown in full (recent runs, failed items), chosen alike.
`?connector=NAME` shows any one in full."""
REFRESH_S = 30
STUCK_GRACE_S = 300.0
"""Beyond a pass's timeout: its last batch may still be retrying toward Fragment."""

Query = dict[str, list[str]]
StuckAfter = Callable[[str], float | None]

TEXT = "text/plain; charset=utf-8"
JSON = "application/json"
HTML = "text/html; charset=utf-8"
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
"""Host names a request to a loopback endpoint may carry by default."""
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})  # noqa: S104 (names, not a binding)
"""`http_host` values that listen on every interface."""
_CHALLENGE = {"WWW-Authenticate": 'Basic realm="fragment-sync", charset="UTF-8"'}
"""Makes a browser ask for the token (as the password; any user name)."""
_SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    # No script runs on these pages, whatever a ticket's error says.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
}


def no_bound(_name: str) -> float | None:
    """A `stuck_after` that never calls a pass stuck."""
    return None


def stuck_bounds(config: Config, grace_s: float = STUCK_GRACE_S) -> StuckAfter:
    """A `stuck_after` from the config: how long a pass of each connector may run.

    A connector with a `timeout` gets it plus `fragment.max_retry_wait` plus
    `grace_s`: a pass checks its deadline between tickets, so it can outlive
    its timeout by a batch still retrying toward Fragment. The others get
    `daemon.stuck_after`.
    """
    retry_s = config.fragment.max_retry_wait.total_seconds()
    default = config.daemon.stuck_after.total_seconds()

    def bound(name: str) -> float | None:
        connector = config.connectors.get(name)
        if connector is None or connector.settings.timeout is None:
            return default
        return connector.settings.timeout.total_seconds() + retry_s + grace_s

    return bound


class Scheduled(Protocol):
    """What the web server asks of the daemon (`sync.shell.daemon.Daemon`)."""

    def running(self) -> bool: ...


def start_daemon_web(config: Config, store: StateStore, daemon: Scheduled) -> WebServer:
    """The daemon's endpoint on `daemon.http_host:http_port`, serving fresh metrics.

    Start it before the scheduler, so the metrics see the first passes.
    Raises `ConfigError` when it would listen beyond loopback without a token
    (`check_endpoint`), `OSError` when the address can't be bound.
    """
    check_endpoint(config.daemon)
    server = WebServer(
        config,
        store,
        Metrics(config, store),
        daemon.running,
        host=config.daemon.http_host,
        port=config.daemon.http_port,
        stuck_after=stuck_bounds(config),
    )
    return server.start()


def check_endpoint(settings: DaemonSettings) -> None:
    """Raise `ConfigError` naming `daemon.http_token` if the endpoint would serve beyond
    loopback without one.

    There is no opting out: every client can present the token (Prometheus'
    `authorization.credentials_file`, a proxy adding the header, a browser
    answering the Basic prompt), and a page that shows ticket values must not
    be one forgotten setting away from the network.
    """
    if settings.http_port == 0 or settings.http_token is not None:
        return
    if not listens_beyond_loopback(settings.http_host):
        return
    raise ConfigError(
        "daemon.http_token",
        f"the endpoint listens on {settings.http_host!r}, beyond loopback, and its status page "
        "and /metrics show ticket data: set a token (SYNC_DAEMON__HTTP_TOKEN_FILE=/run/secrets/"
        "http_token, from `openssl rand -hex 32`), or listen on 127.0.0.1",
    )


def listens_beyond_loopback(host: str) -> bool:
    """Whether `http_host` may be reached from other machines (a host name: it may)."""
    if host.lower().rstrip(".") == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return True  # a wildcard ("") or a name that could resolve to anything


def allowed_host_names(configured: Sequence[str], host: str) -> frozenset[str] | None:
    """The host names requests may carry (None: any), for an endpoint bound to `host`.

    By default the loopback names and `host` itself; on a wildcard address any
    name, since the endpoint then requires the token (`check_endpoint`).
    """
    if configured:
        names = frozenset(_host_name(name) for name in configured)
        return None if "*" in names else names
    if host in WILDCARD_HOSTS:
        return None
    return LOOPBACK_NAMES | {_host_name(host)}


def _host_name(header: str) -> str:
    """The host name of a `Host` header (`localhost:9464`, `[::1]:9464`), without its port."""
    text = header.strip().lower()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else text
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    return text.rstrip(".")


@dataclass(frozen=True)
class Request:
    """What an answer depends on: the path, the query, and who asks under which name."""

    path: str
    query: Query
    hosts: list[str]
    """Every `Host` header sent (one, from a well-formed request)."""
    authorization: str | None = None


@dataclass(frozen=True)
class Readiness:
    """Why the daemon is not ready (no reasons: ready), and what it is running."""

    reasons: list[str]
    passes: list[dict[str, Any]]

    @property
    def ready(self) -> bool:
        return not self.reasons

    def as_json(self, detailed: bool = True) -> dict[str, Any]:
        if not detailed:
            return {"ready": self.ready}
        return {"ready": self.ready, "reasons": self.reasons, "passes": self.passes}


@dataclass(frozen=True)
class Response:
    status: int
    content_type: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


class WebServer:
    """The probes, the metrics and the status page on `host:port` (port 0 picks a free one).

    While started, `metrics` is installed: it observes every pass and HTTP
    request of this process.

    `scheduler_running` says whether the daemon's scheduler is up;
    `stuck_after(name)` is how many seconds a pass of that connector may run
    before `/readyz` calls it stuck (None: no bound; see `stuck_bounds`).
    The token, the allowed host names and the connection timeout come from
    `config.daemon`.
    """

    def __init__(
        self,
        config: Config,
        store: StateStore,
        metrics: Metrics,
        scheduler_running: Callable[[], bool],
        host: str = "127.0.0.1",
        port: int = 0,
        stuck_after: StuckAfter = no_bound,
    ) -> None:
        self.config = config
        self.store = store
        self.metrics = metrics
        self.scheduler_running = scheduler_running
        self.host = host
        self.port = port
        self.stuck_after = stuck_after
        settings = config.daemon
        token = settings.http_token
        self.token = None if token is None else token.get_secret_value().encode()
        self.allowed_hosts = allowed_host_names(settings.http_allowed_hosts, host)
        self.timeout_s = settings.http_timeout.total_seconds()
        # The CLI registers them too; the page must not depend on having been started by it.
        register_secrets(config.secrets())
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Where it serves, e.g. `http://127.0.0.1:9464`; raises `RuntimeError` before start."""
        if self._server is None:
            raise RuntimeError("the web server is not started")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._server.server_address[1]}"

    def start(self) -> WebServer:
        """Bind, install the metrics and serve from a daemon thread; returns self.

        Raises `OSError` if it can't bind.
        """
        if self._server is not None:
            raise RuntimeError("the web server is already started")
        self._server = _Server((self.host, self.port), self)
        self.metrics.install()
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.1,), name="sync-web", daemon=True
        )
        self._thread.start()
        log.info("web_started", url=self.url)
        return self

    def stop(self) -> None:
        """Stop serving and release the port (idempotent)."""
        server, self._server = self._server, None
        if server is None:
            return
        self.metrics.uninstall()
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> WebServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # What each route answers

    def respond(self, request: Request) -> Response:
        """The answer to `GET request.path?request.query`.

        The probes answer anyone, in detail only a trusted request (an allowed
        host name, and the token if one is set); every other path answers only
        a trusted request: 421 for a host name not allowed, 401 without the token.
        """
        host_allowed = self.host_allowed(request.hosts)
        trusted = host_allowed and self.authorized(request.authorization)
        probe = PROBES.get(request.path)
        if probe is not None:
            return probe(self, request.query, trusted)
        if not host_allowed:
            return Response(421, TEXT, b"misdirected request: not a host name this serves\n")
        if not trusted:
            return Response(401, TEXT, b"this page needs the daemon's token\n", _CHALLENGE)
        route = ROUTES.get(request.path)
        if route is None:
            return Response(404, TEXT, b"not found\n")
        return route(self, request.query)

    def host_allowed(self, hosts: Sequence[str]) -> bool:
        """Whether a request with these `Host` headers may be answered in full."""
        if self.allowed_hosts is None:
            return True
        return len(hosts) == 1 and _host_name(hosts[0]) in self.allowed_hosts

    def authorized(self, authorization: str | None) -> bool:
        """Whether the `Authorization` header carries the token (True when none is set)."""
        if self.token is None:
            return True
        scheme, _, credentials = (authorization or "").strip().partition(" ")
        offered = credentials.strip().encode()
        if scheme.lower() == "basic":
            try:
                offered = base64.b64decode(offered, validate=True).partition(b":")[2]
            except (binascii.Error, ValueError):
                return False
        elif scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(offered, self.token)

    def healthz(self, _query: Query, _detailed: bool) -> Response:
        return Response(200, TEXT, b"ok\n")

    def readyz(self, query: Query, detailed: bool) -> Response:
        """Ready or not; the reasons and the passes in flight only when `detailed`."""
        readiness = self.readiness()
        status = 200 if readiness.ready else 503
        if query.get("format") == ["json"]:
            return Response(status, JSON, json.dumps(readiness.as_json(detailed)).encode())
        if readiness.ready:
            return Response(status, TEXT, b"ready\n")
        if not detailed:
            return Response(status, TEXT, b"not ready\n")
        text = "not ready:\n" + "".join(f"- {reason}\n" for reason in readiness.reasons)
        return Response(status, TEXT, text.encode())

    def metrics_text(self, _query: Query) -> Response:
        return Response(200, CONTENT_TYPE_LATEST, self.metrics.exposition())

    def status_page(self, query: Query) -> Response:
        page = render_status(
            self.config,
            self.store,
            self.readiness(),
            dt.datetime.now(dt.UTC),
            only=query.get("connector", [None])[0],
        )
        return Response(200, HTML, page.encode())

    def readiness(self) -> Readiness:
        """What `/readyz` checks: the state database, the scheduler, passes outrunning bounds."""
        reasons = []
        problem = state_problem(self.store)
        if problem is not None:
            reasons.append(problem)
        if not self.scheduler_running():
            reasons.append("the scheduler is not running")
        now = time.monotonic()
        passes = []
        for flight in self.metrics.passes_in_flight():
            running_s = flight.running_s(now)
            bound = self.stuck_after(flight.name)
            if bound is not None and running_s > bound:
                reasons.append(
                    f"the pass of {flight.name!r} (run {flight.run_id}) has run for "
                    f"{running_s:.1f}s, more than its bound of {bound:g}s: stuck?"
                )
            passes.append(_pass_json(flight, running_s, bound))
        return Readiness([redact(reason) for reason in reasons], passes)


PROBES: dict[str, Callable[[WebServer, Query, bool], Response]] = {
    "/healthz": WebServer.healthz,
    "/readyz": WebServer.readyz,
}
"""For orchestrators: open to all; the bool says whether to answer in detail."""
ROUTES: dict[str, Callable[[WebServer, Query], Response]] = {
    "/": WebServer.status_page,
    "/metrics": WebServer.metrics_text,
}
"""For people and Prometheus: trusted requests only."""


def state_problem(store: StateStore) -> str | None:
    """None when the state database answers a trivial query, else what went wrong."""
    try:
        store.ping()
    except (sa.exc.SQLAlchemyError, OSError) as exc:
        return f"the state database does not answer: {first_line(exc)}"
    return None


def _pass_json(flight: PassInFlight, running_s: float, bound: float | None) -> dict[str, Any]:
    return {
        "connector": flight.name,
        "run_id": flight.run_id,
        "running_s": round(running_s, 3),
        "bound_s": bound,
    }


# The HTTP plumbing


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    OUT_OF_DESCRIPTORS_PAUSE_S = 0.05

    def __init__(self, address: tuple[str, int], web: WebServer) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.web = web
        self._warned_at = -3600.0
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        try:
            return super().get_request()
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE):
                # The waiting connection stays queued: pause instead of spinning on it,
                # while the open ones finish or time out (`daemon.http_timeout`).
                if time.monotonic() - self._warned_at > 60:
                    self._warned_at = time.monotonic()
                    log.warning("web_out_of_descriptors", detail="connections wait their turn")
                time.sleep(self.OUT_OF_DESCRIPTORS_PAUSE_S)
            raise


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "fragment-sync"

    def setup(self) -> None:
        super().setup()
        # Bounds every read and write: an idle client is dropped, its descriptor freed.
        self.connection.settimeout(self.server.web.timeout_s)

    def do_GET(self) -> None:
        self._answer(with_body=True)

    def do_HEAD(self) -> None:
        self._answer(with_body=False)

    def _answer(self, with_body: bool) -> None:
        parts = urlsplit(self.path)
        request = Request(
            parts.path,
            parse_qs(parts.query),
            hosts=self.headers.get_all("Host") or [],
            authorization=self.headers.get("Authorization"),
        )
        try:
            response = self.server.web.respond(request)
        except Exception:  # a bug on one page must not take the probes down
            log.exception("web_request_failed", path=parts.path)
            response = Response(500, TEXT, b"internal error; see the daemon's log\n")
        self.send_response(response.status)
        headers = {
            "Content-Type": response.content_type,
            "Content-Length": str(len(response.body)),
            **_SECURITY_HEADERS,
            **response.headers,
        }
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if with_body:
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("web_request", client=self.client_address[0], line=format % args)


# The status page: the words are made here, the markup is `templates/status.html`'s


@dataclass(frozen=True)
class Moment:
    """A time as the page shows it."""

    iso: str
    utc: str
    """`2026-12-07 09:24:50 UTC`"""
    ago: str
    """`just now`, `3 min ago`"""


@dataclass(frozen=True)
class RunLine:
    """One of a connector's recent runs."""

    started: Moment
    outcome: str
    badge: str
    """The outcome's style: itself when known, else "other"."""
    took: str
    pulled: int
    pushed: int
    unchanged: int
    failed: int
    error: str


@dataclass(frozen=True)
class FailedLine:
    """One of a connector's failed items."""

    source_id: str
    stage: str
    field: str
    error: str
    attempts: int
    last_seen: Moment | None


@dataclass(frozen=True)
class CensusLine:
    """A connector's last census."""

    began: Moment
    outcome: str
    badge: str
    found: str
    """`archived 2 of 2 gone`, `3 gone, archived nothing`; "" when not recorded."""
    forced: bool


@dataclass(frozen=True)
class ConnectorView:
    """What the page shows of one connector."""

    name: str
    kind: str
    enabled: bool
    watermark: str
    lag: str
    tasks: int
    runs: list[RunLine]
    """The newest first."""
    failed: list[FailedLine]
    """The oldest first, at most `FAILED_SHOWN`."""
    failed_total: int
    census: CensusLine | None = None
    """The last census; None: it never took one."""
    census_scheduled: bool = False
    comments: dict[str, int] | None = None
    """Comment sync's counts (posted, pending, failed), when it is on."""
    card: bool = True
    """Shown in full below the table (`CARDS_SHOWN`); else its row is all the page shows,
    its last pass read from its summary row."""

    @property
    def failed_hidden(self) -> int:
        """Failed items not listed: the page counts them and names the command that lists them."""
        return self.failed_total - len(self.failed)


def render_status(
    config: Config,
    store: StateStore,
    readiness: Readiness,
    now: dt.datetime,
    only: str | None = None,
) -> str:
    """The status page as HTML; a state database that fails shows as a banner, not a 500.

    `ROWS_SHOWN` connectors in its table and `CARDS_SHOWN` in full, those that
    need attention first; with `only`, that connector alone. Read in a constant
    number of queries, whatever the number of connectors.
    """
    views: ConnectorViews | None = None
    problem = ""
    try:
        views = _connector_views(config, store, now, only)
    except (sa.exc.SQLAlchemyError, StateError, OSError) as exc:
        problem = f"the state database could not be read: {first_line(exc)}"
    running = [(p["connector"], _duration(p["running_s"])) for p in readiness.passes]
    return status_template().render(
        refresh=REFRESH_S,
        source=config.source,
        now=_utc(now),
        readiness=readiness,
        running=running,
        problem=problem,
        connectors=None if views is None else views.shown,
        only=only,
        total=0 if views is None else views.total,
        attention=0 if views is None else views.attention,
        in_table_only=0 if views is None else sum(not view.card for view in views.shown),
    )


@dataclass(frozen=True)
class ConnectorViews:
    """The connectors the page shows, and how many there are."""

    shown: list[ConnectorView]
    """In the configuration's order."""
    total: int
    attention: int
    """Connectors whose last pass did not end ok, or that hold failed items."""


def _connector_views(
    config: Config, store: StateStore, now: dt.datetime, only: str | None
) -> ConnectorViews:
    rows = [row for row in collect(config, store) if only is None or row["name"] == only]
    attention = [row for row in rows if _needs_attention(row)]
    first = attention + [row for row in rows if not _needs_attention(row)]
    listed = {row["name"] for row in first[:ROWS_SHOWN]}
    carded = {row["name"] for row in first[:CARDS_SHOWN]}
    namespaces = [row["uid_namespace"] for row in rows if row["name"] in carded]
    recent = store.recent_runs_each(RUNS_SHOWN, namespaces) if namespaces else {}
    # The oldest failures first: they are the ones that need a person.
    oldest_failed = store.oldest_failed_items_each(FAILED_SHOWN, namespaces) if namespaces else {}
    views = []
    for row in rows:
        if row["name"] not in listed:
            continue
        namespace = row["uid_namespace"]
        runs = recent.get(namespace, [])
        last = row["last_run"]
        if last is not None and all(run.id != last["id"] for run in runs):
            # An idle pass is in the connector's summary row, not in the history.
            runs = [_last_run(namespace, row["name"], last), *runs[: RUNS_SHOWN - 1]]
        failed = oldest_failed.get(namespace, [])
        views.append(
            ConnectorView(
                name=row["name"],
                kind=row["kind"],
                enabled=row["enabled"],
                watermark=row["watermark"] or "-",
                lag=_lag(row["lag_s"], row["watermark"]),
                tasks=row["tasks"],
                runs=[_run_line(run, now) for run in runs],
                failed=[_failed_line(item, now) for item in failed],
                failed_total=row["failed_items"],
                census=_census_line(row["last_census"], now),
                census_scheduled=row["census_every"] is not None,
                comments=row["comments"],
                card=row["name"] in carded,
            )
        )
    return ConnectorViews(views, total=len(rows), attention=len(attention))


def _needs_attention(row: dict[str, Any]) -> bool:
    last = row["last_run"]
    return bool(row["failed_items"]) or (last is not None and last["outcome"] != "ok")


def _census_line(census: dict[str, Any] | None, now: dt.datetime) -> CensusLine | None:
    if census is None:
        return None
    outcome = census["outcome"]
    return CensusLine(
        began=_moment(dt.datetime.fromisoformat(census["began_at"]), now),
        outcome=outcome,
        badge=outcome if outcome in _OUTCOMES else "other",
        found=census_found(census),
        forced=census["forced"],
    )


_OUTCOMES = frozenset(
    {"ok", "failed", "interrupted", "running", "busy", "lease_lost", "abandoned", "refused"}
)


def _last_run(namespace: str, name: str, last: dict[str, Any]) -> RunRecord:
    """The connector's last pass as its summary row tells it (`status.collect`'s `last_run`)."""
    ended = last["ended_at"]
    return RunRecord(
        id=last["id"],
        connector=namespace,
        name=name,
        started_at=dt.datetime.fromisoformat(last["started_at"]),
        ended_at=None if ended is None else dt.datetime.fromisoformat(ended),
        outcome=last["outcome"],
        pulled=last["pulled"],
        pushed=last["pushed"],
        unchanged=last["unchanged"],
        failed=last["failed"],
        requests=0,
        watermark_before=None,
        watermark_after=None,
        error=last["error"],
    )


def _run_line(run: RunRecord, now: dt.datetime) -> RunLine:
    return RunLine(
        started=_moment(run.started_at, now),
        outcome=run.outcome,
        badge=run.outcome if run.outcome in _OUTCOMES else "other",
        took=_duration(((run.ended_at or now) - run.started_at).total_seconds()),
        pulled=run.pulled,
        pushed=run.pushed,
        unchanged=run.unchanged,
        failed=run.failed,
        error=run.error or "",
    )


def _failed_line(item: FailedItem, now: dt.datetime) -> FailedLine:
    return FailedLine(
        source_id=item.source_id,
        stage=item.stage,
        field=item.field or "-",
        error=item.error,
        attempts=item.attempts,
        last_seen=None if item.last_seen is None else _moment(item.last_seen, now),
    )


@functools.cache
def status_template() -> jinja2.Template:
    """The page's template, loaded on the first view: until then jinja2 is not imported."""
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("sync.shell", "templates"),
        autoescape=True,
        finalize=_shown,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return environment.get_template("status.html")


def _shown(value: object) -> object:
    """What the template prints of `value`: text redacted (autoescape then escapes it).

    Markup (a macro's output) is the template's own and numbers hold no secret.
    """
    if hasattr(value, "__html__") or isinstance(value, int | float):
        return value
    return redact(str(value))


# Words for people


def _moment(moment: dt.datetime, now: dt.datetime) -> Moment:
    seconds = (now - moment).total_seconds()
    ago = "just now" if seconds < 1 else f"{_duration(seconds)} ago"
    return Moment(iso=moment.isoformat(), utc=_utc(moment), ago=ago)


def _lag(lag_s: float | None, watermark: str | None) -> str:
    if watermark is None:
        return "no watermark yet"
    if lag_s is None:
        return "-"  # not a timestamp cursor: there is no "behind" to tell
    if lag_s < 0:
        return "ahead of this clock"
    return f"{_duration(lag_s)} behind"


def _duration(seconds: float) -> str:
    """`seconds` in the units that read well: "20 ms", "42 s", "3 min", "2 h 5 min", "3 days"."""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{hours // 24} days"


def _utc(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
