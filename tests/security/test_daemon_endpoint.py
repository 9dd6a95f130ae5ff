"""The daemon's HTTP endpoint as an attacker meets it: over real HTTP, on real passes.

Beyond loopback the status page and `/metrics` (ticket values in errors,
source URLs, the config path) need the bearer token, and the daemon won't
start there without one; the probes stay open and say no more than ready or
not. A `Host` header outside the allow-list is refused, so a DNS-rebinding page
can't read the endpoint on loopback either. Idle connections are closed after
`daemon.http_timeout`, so they can't starve the probes of descriptors. A page
view doesn't count the tasks of the state: the counts are shared for a few
seconds.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from fragment_emulator import Emulator
from sync.config import Config
from sync.run import run_once
from sync.shell.cli import main
from sync.shell.metrics import Metrics
from sync.shell.web import WebServer
from sync.state import StateStore
from synckit import TOKEN, DaemonProcess, free_port, make_config, write_tickets

ALL_INTERFACES = "0.0.0.0"  # noqa: S104 (what the image binds: the case under test)
MAPPING = {"title": "{subject}", "assignee_email": "assignee"}
HTTP_TOKEN = "status-page-token-5e0c2b7d41a9"
SECRET = "Payroll export for ACME-4411"
"""A ticket value: what the status page and /metrics must not show to strangers."""


def tickets() -> list[dict[str, Any]]:
    good = [
        {"id": i, "subject": f"Printer {i} jammed", "updated_at": f"2026-11-02T09:{i:02d}:00Z"}
        for i in range(1, 6)
    ]
    # Not an email address: a failed item whose error quotes the ticket's value.
    bad = {"id": 9, "subject": "Export", "assignee": SECRET, "updated_at": "2026-11-02T09:30:00Z"}
    return [*good, bad]


def daemon_config(directory: Path, emulator: Emulator, port: int, extra: str = "") -> Path:
    path = write_tickets(directory / "tickets.jsonl", tickets())
    config = directory / "sync.toml"
    config.write_text(f"""
[fragment]
url = "{emulator.base_url}"
token = "{TOKEN}"
requests_per_minute = 100000

[state]
url = "sqlite:///{directory / "state.db"}"

[daemon]
http_port = {port}
shutdown_timeout = "5s"
{extra}

[connectors.helpdesk]
kind = "jsonl"
path = "{path}"
schedule = {{ interval = "1h" }}

[connectors.helpdesk.mapping]
title = "{{subject}}"
assignee_email = "assignee"
""")
    return config


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# Beyond loopback


def test_the_daemon_refuses_to_listen_beyond_loopback_without_a_token(
    tmp_path: Path, emulator: Emulator
) -> None:
    config = daemon_config(tmp_path, emulator, free_port())
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SYNC_")}
    environment["SYNC_DAEMON__HTTP_HOST"] = ALL_INTERFACES

    try:
        done = subprocess.run(
            [sys.executable, "-m", "sync", "run", "--config", str(config)],
            cwd=tmp_path,
            env=environment,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the daemon started serving 0.0.0.0 with no token: {exc.stderr!r}")

    assert done.returncode == 2, done.stderr
    assert "daemon.http_token" in done.stderr
    assert emulator.store.count() == 0  # nothing ran


@pytest.fixture
def exposed(tmp_path: Path, emulator: Emulator) -> Iterator[tuple[DaemonProcess, str]]:
    """The daemon on 0.0.0.0 as the image runs it, its token from a `_FILE` secret."""
    port = free_port()
    config = daemon_config(tmp_path, emulator, port)
    token_file = tmp_path / "http_token"
    token_file.write_text(HTTP_TOKEN + "\n")
    environment = {
        "SYNC_DAEMON__HTTP_HOST": ALL_INTERFACES,
        "SYNC_DAEMON__HTTP_TOKEN_FILE": str(token_file),
    }
    with DaemonProcess(config, tmp_path / "daemon.log", env=environment) as daemon:
        daemon.wait_for(
            lambda: any(e.get("event") == "run_finished" for e in daemon.lines()),
            what="the first pass",
        )
        yield daemon, f"http://127.0.0.1:{port}"
        assert daemon.stop() == 0, daemon.text()
    assert HTTP_TOKEN not in daemon.text()


def test_beyond_loopback_the_page_and_the_metrics_need_the_token(
    exposed: tuple[DaemonProcess, str],
) -> None:
    _daemon, url = exposed
    for path in ("/", "/metrics", "/admin"):
        for headers in ({}, bearer("guessed-token-0000000000"), {"Authorization": "Bearer"}):
            refused = httpx.get(url + path, headers=headers, timeout=10)
            assert refused.status_code == 401, (path, headers)
            assert SECRET not in refused.text and "sync.toml" not in refused.text
            assert "Basic" in refused.headers["www-authenticate"]

    page = httpx.get(url + "/", headers=bearer(HTTP_TOKEN), timeout=10)
    metrics = httpx.get(url + "/metrics", headers=bearer(HTTP_TOKEN), timeout=10)
    # A browser answers the Basic challenge: any user name, the token as the password.
    basic = base64.b64encode(f"ops:{HTTP_TOKEN}".encode()).decode()
    browser = httpx.get(url + "/", headers={"Authorization": f"Basic {basic}"}, timeout=10)

    assert page.status_code == 200 and SECRET in page.text  # the failed item's error
    assert metrics.status_code == 200 and "fragment_sync_runs_total" in metrics.text
    assert browser.status_code == 200 and "helpdesk" in browser.text


def test_beyond_loopback_the_probes_stay_open_and_reveal_nothing(
    exposed: tuple[DaemonProcess, str],
) -> None:
    _daemon, url = exposed

    health = httpx.get(url + "/healthz", timeout=10)
    ready = httpx.get(url + "/readyz", timeout=10)
    ready_json = httpx.get(url + "/readyz?format=json", timeout=10)
    detailed = httpx.get(url + "/readyz?format=json", headers=bearer(HTTP_TOKEN), timeout=10)

    assert (health.status_code, health.text) == (200, "ok\n")
    assert (ready.status_code, ready.text) == (200, "ready\n")
    assert (ready_json.status_code, ready_json.json()) == (200, {"ready": True})
    assert detailed.json() == {"ready": True, "reasons": [], "passes": []}


# The endpoint in process: its Host check, its probes, its timeouts, its counts


@pytest.fixture
def config(tmp_path: Path, emulator: Emulator, sqlite_url: str) -> Config:
    path = write_tickets(tmp_path / "tickets.jsonl", tickets())
    return make_config(emulator, path, sqlite_url, mapping=MAPPING)


@pytest.fixture
def store(config: Config, sqlite_url: str) -> Iterator[StateStore]:
    state = StateStore.open(sqlite_url)
    run_once(config, state)
    yield state
    state.close()


def serve(config: Config, store: StateStore, **daemon: Any) -> WebServer:
    """An endpoint on a free loopback port, `daemon` settings laid over the config's."""
    settings = config.daemon.model_copy(update=daemon)
    config = config.model_copy(update={"daemon": settings})
    return WebServer(config, store, Metrics(config, store), lambda: True)


def get(server: WebServer, path: str, host: str | None = None, **headers: str) -> httpx.Response:
    """GET `path` from `server`, its Host header naming `host` (with the server's port)."""
    if host is not None:
        headers["Host"] = f"{host}:{server.url.rsplit(':', 1)[1]}"
    return httpx.get(server.url + path, headers=headers, timeout=10)


def test_a_page_asked_for_under_another_host_name_is_refused_even_on_loopback(
    config: Config, store: StateStore
) -> None:
    """A DNS-rebinding page reaches 127.0.0.1 under its own name: it must read nothing."""
    with serve(config, store) as server:
        for path in ("/", "/metrics"):
            refused = get(server, path, host="rebind.attacker.example")
            assert refused.status_code == 421, path
            assert SECRET not in refused.text and "helpdesk" not in refused.text
        for name in ("localhost", "127.0.0.1", "[::1]", "LOCALHOST"):
            assert get(server, "/", host=name).status_code == 200, name
        # The probes: an orchestrator names the pod's address; they tell nothing more.
        assert get(server, "/healthz", host="rebind.attacker.example").text == "ok\n"
        probe = get(server, "/readyz?format=json", host="rebind.attacker.example")
        assert probe.json() == {"ready": True}

    with serve(config, store, http_allowed_hosts=["sync.internal"]) as server:
        assert get(server, "/metrics", host="sync.internal").status_code == 200
        assert get(server, "/metrics", host="localhost").status_code == 421


def test_with_a_token_on_loopback_readyz_gives_its_reasons_only_to_the_token(
    config: Config, store: StateStore, tmp_path: Path
) -> None:
    gone = StateStore.open(f"sqlite:///{tmp_path / 'moved' / 'state.db'}")
    gone.engine.dispose()
    shutil.rmtree(tmp_path / "moved")  # SQLite can't create the file in a missing directory
    with serve(config, gone, http_token=SecretStr(HTTP_TOKEN)) as server:
        anonymous = get(server, "/readyz")
        anonymous_json = get(server, "/readyz?format=json")
        detailed = get(server, "/readyz", **bearer(HTTP_TOKEN))
        page = get(server, "/")
    gone.close()

    assert (anonymous.status_code, anonymous.text) == (503, "not ready\n")
    assert anonymous_json.json() == {"ready": False}
    assert detailed.status_code == 503
    assert "the state database does not answer" in detailed.text
    assert page.status_code == 401  # a token configured is a token required, loopback or not


def test_an_idle_connection_is_closed_after_the_timeout(config: Config, store: StateStore) -> None:
    with serve(config, store, http_timeout=dt.timedelta(seconds=1)) as server:
        host, port = server.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=15) as idle:
            try:
                closed = idle.recv(1) == b""
            except TimeoutError:
                closed = False
        assert closed, "the server kept an idle connection open for 15 s"


def test_idle_connections_cannot_starve_healthz_under_a_descriptor_limit(
    tmp_path: Path, emulator: Emulator
) -> None:
    """252 idle connections under a 256-descriptor limit made /healthz time out."""
    port = free_port()
    config = daemon_config(tmp_path, emulator, port)
    limit = 40  # the daemon holds about 8 descriptors of its own

    def low_descriptor_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    with DaemonProcess(config, tmp_path / "daemon.log", preexec_fn=low_descriptor_limit) as daemon:
        daemon.wait_for(
            lambda: any(e.get("event") == "run_finished" for e in daemon.lines()),
            what="the first pass",
        )
        idle = []
        try:
            for _ in range(limit + 8):  # more than it has descriptors for
                try:
                    idle.append(socket.create_connection(("127.0.0.1", port), timeout=5))
                except OSError:
                    break  # its accept queue is full: the rest would wait there too
            # Answered once the server closes idle connections (`daemon.http_timeout`, 5 s).
            health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=30)
        finally:
            for connection in idle:
                connection.close()
        assert daemon.stop() == 0, daemon.text()

    assert len(idle) > limit // 2  # the descriptors were taken
    assert (health.status_code, health.text) == (200, "ok\n")


def test_status_page_views_and_scrapes_count_no_tasks(config: Config, store: StateStore) -> None:
    """40 clients against a million tasks each counted them per view: passes slowed 60-fold.
    Views and scrapes now read the count each pass keeps in its connector's summary row."""
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement.lower())

    sa.event.listen(store.engine, "before_cursor_execute", record)
    try:
        with serve(config, store) as server:
            views = [get(server, "/") for _ in range(5)]
            scrapes = [get(server, "/metrics") for _ in range(5)]
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", record)

    assert all(v.status_code == 200 for v in [*views, *scrapes])
    assert [s for s in statements if "count(" in s and "from tasks" in s] == []
    assert all('<td class="num">5</td>' in view.text for view in views)  # 5 tasks, as counted
    assert all('fragment_sync_tasks{connector="helpdesk"} 5.0' in s.text for s in scrapes)


def test_the_token_must_be_long_and_unpadded(
    tmp_path: Path, emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    def status(token: str) -> int:
        path = daemon_config(tmp_path, emulator, 0, extra=f"http_token = {json.dumps(token)}")
        return main(["status", "--config", str(path)])

    for bad in ("", "  ", f" {HTTP_TOKEN}", f"{HTTP_TOKEN}\n", "short"):
        assert status(bad) == 2, repr(bad)
        assert "daemon.http_token" in capsys.readouterr().err
    assert status(HTTP_TOKEN) == 0
