"""The daemon's HTTP endpoint over real HTTP, on a state written by real passes.

The state holds two connectors: `helpdesk`, whose pass went through with
three tickets set aside (one Fragment rejected, two that would not map, one
of them carrying a `<script>` tag and one a password), and `legacy`, whose
pass failed because Fragment refused its token. The status page is also
loaded in a real headless Chromium.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import markupsafe
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fragment_emulator import Emulator
from sync.config import Config
from sync.run import RUN_OBSERVERS, RunSummary, run_once
from sync.shell import web
from sync.shell.metrics import Metrics
from sync.shell.web import WebServer
from sync.state import StateStore
from sync.watermark import encode
from synckit import TOKEN, make_config, write_tickets

AGENTS = [f"agent{i}@support.example.com" for i in range(3)]
GHOST = "ghost@elsewhere.example"
SCRIPT = "<script>alert('owned')</script>"
PASSWORD = "hunter2-do-not-show"
CHROMIUM = Path("/usr/bin/chromium")


@dataclass
class Site:
    """The endpoint under test and the parts behind it."""

    server: WebServer
    emulator: Emulator
    config: Config
    store: StateStore
    metrics: Metrics
    summaries: dict[str, RunSummary]
    scheduler_up: list[bool]
    """Its first item is what `scheduler_running()` answers."""
    bounds: dict[str, float | None]
    """`stuck_after` by connector; absent: no bound."""

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.server.url + path, timeout=10)


def _tickets() -> list[dict[str, Any]]:
    newest = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=3)
    assignees = [*AGENTS, AGENTS[0], AGENTS[1], GHOST, SCRIPT, f"password={PASSWORD}"]
    return [
        {
            "id": number,
            "subject": f"Printer on floor {number} is jammed",
            "priority": "high" if number % 2 else "normal",
            "status": "open",
            "assignee": assignee,
            "requester": {"country": "FR"},
            "updated_at": (newest - dt.timedelta(minutes=len(assignees) - number)).isoformat(),
        }
        for number, assignee in enumerate(assignees, start=1)
    ]


@pytest.fixture
def site(tmp_path: Path, sqlite_url: str) -> Iterator[Site]:
    path = write_tickets(tmp_path / "tickets.jsonl", _tickets())
    with Emulator(tokens=[TOKEN], users=AGENTS) as emulator:
        helpdesk = make_config(emulator, path, sqlite_url)
        legacy = make_config(
            emulator, path, sqlite_url, name="legacy", fragment={"token": "revoked-token-0451"}
        )
        config = helpdesk.model_copy(
            update={"connectors": {**helpdesk.connectors, **legacy.connectors}}
        )
        store = StateStore.open(sqlite_url)
        metrics = Metrics(config, store)
        scheduler_up = [True]
        bounds: dict[str, float | None] = {}
        server = WebServer(
            config,
            store,
            metrics,
            scheduler_running=lambda: scheduler_up[0],
            host="127.0.0.1",
            port=0,
            stuck_after=bounds.get,
        )
        site = Site(server, emulator, config, store, metrics, {}, scheduler_up, bounds)
        with site.server:
            for summary in [*run_once(helpdesk, store), *run_once(legacy, store)]:
                site.summaries[summary.name] = summary
            yield site
        store.close()


def test_the_passes_behind_the_page_went_as_planned(site: Site) -> None:
    helpdesk, legacy = site.summaries["helpdesk"], site.summaries["legacy"]
    assert helpdesk.ok and (helpdesk.pushed, helpdesk.failed) == (5, 3)
    assert not legacy.ok and legacy.error


def test_healthz_answers_while_the_process_lives(site: Site) -> None:
    answer = site.get("/healthz")

    assert (answer.status_code, answer.text) == (200, "ok\n")


def test_readyz_is_ready_until_the_scheduler_stops_and_says_so(site: Site) -> None:
    assert site.get("/readyz").status_code == 200
    assert site.get("/readyz?format=json").json() == {"ready": True, "reasons": [], "passes": []}

    site.scheduler_up[0] = False
    answer = site.get("/readyz")

    assert answer.status_code == 503
    assert "the scheduler is not running" in answer.text
    assert site.get("/readyz?format=json").json()["reasons"] == ["the scheduler is not running"]


def test_readyz_names_a_pass_running_past_its_bound(site: Site) -> None:
    site.emulator.faults.latency = 1.5  # every Fragment answer is slow: the pass hangs in there
    site.bounds["helpdesk"] = 0.3
    passing = threading.Thread(target=run_once, args=(site.config, site.store, ["helpdesk"]))
    passing.start()
    try:
        answer = _poll(site, "/readyz", until=lambda r: r.status_code == 503)
        assert "the pass of 'helpdesk'" in answer.text
        assert "more than its bound of 0.3s" in answer.text
        [flight] = site.get("/readyz?format=json").json()["passes"]
        assert flight["connector"] == "helpdesk" and flight["bound_s"] == 0.3

        site.bounds["helpdesk"] = None  # no bound: a long pass is not a stuck one
        assert site.get("/readyz").status_code == 200
    finally:
        passing.join(timeout=20)
    site.bounds["helpdesk"] = 0.3
    assert site.get("/readyz").status_code == 200  # it finished: nothing in flight


def test_readyz_and_the_page_say_when_the_state_database_is_gone(
    site: Site, tmp_path: Path
) -> None:
    gone = StateStore.open(f"sqlite:///{tmp_path / 'moved' / 'state.db'}")
    gone.engine.dispose()
    shutil.rmtree(tmp_path / "moved")  # SQLite can't create the file in a missing directory
    with WebServer(site.config, gone, Metrics(site.config, gone), lambda: True) as server:
        ready = httpx.get(server.url + "/readyz", timeout=10)
        page = httpx.get(server.url + "/", timeout=10)
    gone.close()

    assert ready.status_code == 503
    assert "the state database does not answer" in ready.text
    assert page.status_code == 200
    assert "the state database could not be read" in page.text


def test_metrics_are_served_in_the_prometheus_text_format(site: Site) -> None:
    answer = site.get("/metrics")

    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=")
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }
    helpdesk = (("connector", "helpdesk"),)
    assert samples[("fragment_sync_tasks_pushed_total", helpdesk)] == 5
    assert samples[("fragment_sync_failed_items", helpdesk)] == 3
    assert samples[("fragment_sync_runs_total", (("connector", "legacy"), ("outcome", "failed")))]
    assert samples[("fragment_sync_state_up", ())] == 1


def test_the_status_page_shows_each_connector_its_runs_and_its_failed_items(site: Site) -> None:
    answer = site.get("/")

    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    page = answer.text
    watermark = site.store.watermark("helpdesk")
    assert watermark is not None
    assert 'http-equiv="refresh" content="30"' in page
    assert ">helpdesk</a>" in page and ">legacy</a>" in page
    assert f"<code>{encode(watermark)}</code>" in page  # as `status` shows it
    assert "3 min behind" in page
    assert "<code>6</code>" in page  # the ticket Fragment rejected, by its source id
    assert f"Fragment rejected it: assignee_email: unknown user {GHOST}" in page
    legacy_error = site.summaries["legacy"].error
    assert legacy_error and markupsafe.escape(legacy_error) in page  # why the legacy pass failed


def test_the_status_page_shows_each_connectors_last_census(site: Site) -> None:
    """Read from the state's censuses table: a forced one says so, a refused one what it
    would have archived; a connector that never took one says `-` (no census scheduled)."""
    began = dt.datetime(2026, 12, 7, 9, 0, tzinfo=dt.UTC)
    site.store.record_census("helpdesk", began, "ok", gone=4, archived=4, forced=True)
    site.store.record_census("legacy", began, "refused", gone=30, archived=0)

    page = site.get("/").text

    assert "<th>Last census</th>" in page
    helpdesk, legacy = (page.split(f">{name}</a>", 1)[1].split("</tr>", 1)[0] for name in
                        ("helpdesk", "legacy"))  # fmt: skip
    assert 'class="badge o-ok">ok</span>' in helpdesk
    assert "archived 4 of 4 gone" in helpdesk and ">forced</span>" in helpdesk
    assert 'class="badge o-refused">refused</span>' in legacy
    assert "30 gone, archived nothing" in legacy and "forced" not in legacy


def test_a_large_fleet_lists_those_needing_attention_first_and_any_one_on_request(
    site: Site, tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At 10,000 connectors a card each made a page of megabytes: the page lists
    `ROWS_SHOWN`, `CARDS_SHOWN` of them in full, those needing attention first."""
    ticket = {**_tickets()[0], "assignee": AGENTS[0]}
    clean = write_tickets(tmp_path / "clean.jsonl", [ticket])
    quiet = make_config(site.emulator, clean, sqlite_url, name="quiet")
    [summary] = run_once(quiet, site.store)
    assert summary.ok and summary.failed == 0
    # First in the configuration: the two needing attention still come first.
    config = quiet.model_copy(update={"connectors": {**quiet.connectors, **site.config.connectors}})
    monkeypatch.setattr(web, "ROWS_SHOWN", 2)
    monkeypatch.setattr(web, "CARDS_SHOWN", 1)

    with WebServer(config, site.store, Metrics(config, site.store), lambda: True) as server:
        page = httpx.get(server.url + "/", timeout=10).text
        one = httpx.get(server.url + "/?connector=quiet", timeout=10).text
        nobody = httpx.get(server.url + "/?connector=nobody", timeout=10).text

    assert '<a href="#c-helpdesk">helpdesk</a>' in page  # in full: it holds failed items
    assert 'id="c-helpdesk"' in page
    assert '<a href="?connector=legacy">legacy</a>' in page  # listed: its pass failed
    assert 'id="c-legacy"' not in page
    assert ">quiet<" not in page
    assert "3 connectors, 2 needing attention" in page
    assert 'id="c-quiet"' in one and ">helpdesk<" not in one
    assert "No connector named <code>nobody</code> is configured" in nobody


def test_the_status_page_escapes_ticket_data_and_redacts_secrets(site: Site) -> None:
    page = site.get("/").text

    assert "&lt;script&gt;alert(&#39;owned&#39;)&lt;/script&gt;" in page  # as Jinja2 escapes
    assert "<script" not in page.lower()
    assert "password=***" in page
    assert PASSWORD not in page
    assert "revoked-token-0451" not in page


def test_failed_items_beyond_the_cap_are_counted_not_listed(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(web, "FAILED_SHOWN", 1)

    page = site.get("/").text

    assert "Failed items (3)" in page
    assert "2 more: <code>python -m sync failures list --connector helpdesk</code>" in page


def test_an_unknown_path_is_404(site: Site) -> None:
    assert site.get("/admin").status_code == 404
    assert site.get("/metrics/extra").status_code == 404


# In a real browser


@pytest.fixture
def chromium() -> Path:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing; .ci/run installs Debian's chromium")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium); CI runs this")
    return CHROMIUM


def browse(chromium: Path, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium with a throwaway profile and nothing phoning home."""
    command = [
        str(chromium),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        *args,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def test_the_status_page_renders_in_a_browser(site: Site, chromium: Path, tmp_path: Path) -> None:
    url = site.server.url + "/"

    dom = browse(chromium, tmp_path / "profile", "--dump-dom", url).stdout

    assert "<title>fragment-sync status</title>" in dom
    assert '<a href="#c-helpdesk">helpdesk</a>' in dom
    assert "<code>6</code>" in dom
    assert f"unknown user {GHOST}" in dom
    assert "<script" not in dom.lower()  # the ticket's tag stayed text

    shot = tmp_path / "status.png"
    browse(chromium, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,900", url)

    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (1280, 900)
    assert len(png) > 20_000  # a page of tables, not a blank frame


def _poll(site: Site, path: str, until: Any, timeout: float = 10.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        answer = site.get(path)
        if until(answer) or time.monotonic() > deadline:
            return answer
        time.sleep(0.05)


def test_the_daemon_endpoint_takes_its_address_and_bounds_from_the_config(
    emulator: Emulator, tmp_path: Path, sqlite_url: str
) -> None:
    path = write_tickets(tmp_path / "tickets.jsonl", _tickets()[:1])
    config = make_config(emulator, path, sqlite_url, connector={"timeout": "10m"})
    config = config.model_copy(update={"daemon": config.daemon.model_copy(update={"http_port": 0})})
    bounds = web.stuck_bounds(config)
    assert bounds("helpdesk") == 600 + 5 + web.STUCK_GRACE_S  # timeout, max_retry_wait, grace
    assert bounds("no-timeout") == config.daemon.stuck_after.total_seconds()

    class Daemon:
        def running(self) -> bool:
            return True

    store = StateStore.open(sqlite_url)
    server = web.start_daemon_web(config, store, Daemon())
    try:
        assert server.url.startswith("http://127.0.0.1:")
        assert httpx.get(server.url + "/readyz", timeout=10).status_code == 200
        assert server.metrics in RUN_OBSERVERS  # observing while it serves
    finally:
        server.stop()
        store.close()
    assert server.metrics not in RUN_OBSERVERS
