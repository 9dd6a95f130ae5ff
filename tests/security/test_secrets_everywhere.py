"""No registered secret reaches anything a person or a program can read.

A property, driven through real processes and servers. For any three secrets
hypothesis draws (punctuation and all), a config registers them in three ways:
a GitHub token, the password of a Redmine `base_url` and the `?password=` of a
SQL URL. Then they turn up wherever a source, a ticket or Fragment can put them:

- the GitHub fake answers 401 with the token in its body (as JSON, as text, or
  where the error's excerpt of the body is cut);
- a JSONL ticket carries the token in a date that won't parse: the mapping
  error quotes the value and the failed item keeps the record;
- the mapping's hook raises an exception quoting it for another ticket;
- Fragment (the emulator) refuses an assignee whose email holds it, and says so;
- the Redmine and SQL sources are unreachable and their errors name their URLs.

Every command's stdout and stderr (`run --once`, `run --once --json`, `status`,
`status --json`, `check`, `failures list`, `failures list --json`), every JSON
document they print, the daemon's status page, `/readyz` and `/metrics`, and
every column of every table of the state must hold none of the secrets, in any
form text gives them: raw, JSON-escaped, repr'd, percent-encoded, HTML-escaped,
or cut in half.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import html
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from connectors.errors import SourceError
from connectors.redmine import RedmineConnector, RedmineOptions
from fakes import FakeApi, Reply, Request
from fakes.github import FakeGitHub
from fragment_emulator import Emulator
from sync.config import FragmentSettings
from sync.errors import ConfigError, FragmentAuthError, MappingError
from sync.fragment import FragmentClient
from sync.logs import register_secrets
from sync.mapping import TaskPayload
from sync.state import FailedItem, StateError, StateStore, record_json
from sync_http.policy import source_classifier
from sync_http.ratelimit import RequestBudget
from sync_http.session import HttpSession, RequestFailed, RetrySettings
from synckit import write_tickets

FRAGMENT_TOKEN = "frag-everywhere-0b61d2"
AGENT = "agent@support.example"
T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)

secret_text = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=6, max_size=30)
"""A token as a person might paste one: any printable ASCII, quotes and slashes too."""


def _marked(mark: str) -> st.SearchStrategy[str]:
    # The marks keep a secret from matching the ordinary text around it by chance.
    return secret_text.map(lambda core: f"{mark}{core}{mark[::-1]}")


BODIES = {
    "json": lambda secret: json.dumps({"message": f"Bad credentials, {secret} was refused"}),
    "text": lambda secret: f"credentials {secret} are not valid here",
    # Long enough that an excerpt of 200 characters would end inside the secret.
    "cut": lambda secret: "x" * (200 - len(secret) // 2) + secret + " was refused",
}

CONFIG = """
[fragment]
url = "{fragment}"
token = "${{FRAGMENT_TOKEN}}"
requests_per_minute = 100000
max_attempts = 2
max_retry_wait = "1s"

[state]
url = "{state}"

[logging]
level = "debug"
format = "json"

[daemon]
http_port = {web_port}

[connectors.github]
kind = "github"
base_url = "{github}"
repository = "octo-org/helpdesk"
token = "${{GITHUB_TOKEN}}"
max_attempts = 1

[connectors.portal]
kind = "redmine"
base_url = "http://bot:${{PORTAL_PASSWORD}}@127.0.0.1:{dead_port}"
api_key = "redmine-key-shown-nowhere"
max_attempts = 1

[connectors.warehouse]
kind = "sql"
url = "postgresql+psycopg://reader@127.0.0.1:{dead_port}/tickets?password=${{SQL_PASSWORD}}"
table = "tickets"

[connectors.helpdesk]
kind = "jsonl"
path = "{tickets}"

[connectors.helpdesk.mapping]
title = "{{subject}}"
due_at = "due"
assignee_email = "assignee"
hook = "secret_hook:refuse_noted"
"""

HOOK = """
def refuse_noted(ticket, task):
    note = ticket.record.get("note")
    if note:
        raise ValueError(f"this ticket's note {note!r} can't be synced")
    return task
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _forms(secret: str) -> set[str]:
    """`secret` as text may carry it, whole and cut in half (at least 6 characters each)."""
    whole = {
        secret,
        json.dumps(secret)[1:-1],
        repr(secret)[1:-1],
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret),
        html.escape(secret),
    }
    halves = set()
    for form in whole:
        half = max(6, len(form) // 2 + 1)
        halves |= {form[:half], form[-half:]}
    return whole | halves


def _leaks(secrets: list[str], text: str) -> list[str]:
    return sorted({form for secret in secrets for form in _forms(secret) if form in text})


def _strings(document: Any) -> Iterator[str]:
    """Every key and string value of a JSON document, decoded."""
    if isinstance(document, str):
        yield document
    elif isinstance(document, dict):
        for key, value in document.items():
            yield key
            yield from _strings(value)
    elif isinstance(document, list):
        for value in document:
            yield from _strings(value)


def _database_text(url: str) -> str:
    """Every value of every column of every table of the state database, as text."""
    engine = sa.create_engine(url)
    tables = sa.MetaData()
    tables.reflect(engine)
    chunks: list[str] = []
    with engine.connect() as conn:
        for table in tables.sorted_tables:
            for row in conn.execute(sa.select(table)):
                chunks.extend(str(value) for value in row)
    engine.dispose()
    return "\n".join(chunks)


class Setup:
    """The servers, files and environment of one example."""

    def __init__(self, tmp: Path, github: FakeGitHub, emulator: Emulator, env: dict[str, str]):
        self.tmp, self.github, self.emulator, self.env = tmp, github, emulator, env
        self.state_url = f"sqlite:///{tmp / 'state.db'}"
        self.web_port = _free_port()
        self.config = tmp / "sync.toml"

    def cli(self, *commands: list[str]) -> list[subprocess.CompletedProcess[str]]:
        """Run the commands side by side, each a fresh interpreter, on this config."""
        started = [
            subprocess.Popen(
                [sys.executable, "-m", "sync", *args, "--config", str(self.config)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=self.env,
            )
            for args in commands
        ]
        done = []
        for args, process in zip(commands, started, strict=True):
            stdout, stderr = process.communicate(timeout=120)
            done.append(subprocess.CompletedProcess(args, process.returncode, stdout, stderr))
        return done

    def daemon_pages(self) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
        """The daemon's page, /readyz and /metrics once its first passes are through."""
        process = subprocess.Popen(
            [sys.executable, "-m", "sync", "run", "--config", str(self.config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
        )
        base = f"http://127.0.0.1:{self.web_port}"
        pages: dict[str, str] = {}
        try:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                try:
                    metrics = httpx.get(f"{base}/metrics", timeout=5).text
                except httpx.HTTPError:
                    metrics = ""
                # Each of the four connectors has finished a pass of the daemon's own.
                if metrics.count("fragment_sync_runs_total{") >= 4:
                    break
                time.sleep(0.3)
            for path in ("/", "/metrics", "/readyz", "/readyz?format=json"):
                pages[path] = httpx.get(base + path, timeout=10).text
        finally:
            process.send_signal(signal.SIGTERM)
            stdout, stderr = process.communicate(timeout=60)
        return subprocess.CompletedProcess(["run"], process.returncode, stdout, stderr), pages


@contextlib.contextmanager
def _setup(tmp: Path, token: str, portal_password: str, sql_password: str) -> Iterator[Setup]:
    (tmp / "hooks").mkdir()
    (tmp / "hooks" / "secret_hook.py").write_text(HOOK)
    tickets = write_tickets(
        tmp / "tickets.jsonl",
        [
            {"id": 1, "subject": "Ordinary", "updated_at": "2026-11-02T09:01:00Z"},
            {
                "id": 2,
                "subject": "Due date pasted wrong",
                "due": f"due by {token}",
                "updated_at": "2026-11-02T09:02:00Z",
            },
            {
                "id": 3,
                "subject": "A note the hook refuses",
                "note": f"see {token}",
                "updated_at": "2026-11-02T09:03:00Z",
            },
            {
                "id": 4,
                "subject": "Assigned to someone Fragment doesn't know",
                "assignee": f"{token}@desk.example",
                "updated_at": "2026-11-02T09:04:00Z",
            },
        ],
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNC_")}
    env.update(
        NO_COLOR="1",
        PYTHONPATH=os.pathsep.join([str(tmp / "hooks"), env.get("PYTHONPATH", "")]),
        FRAGMENT_TOKEN=FRAGMENT_TOKEN,
        GITHUB_TOKEN=token,
        PORTAL_PASSWORD=quote(portal_password, safe=""),
        SQL_PASSWORD=quote(sql_password, safe=""),
    )
    with (
        Emulator(db_path=":memory:", tokens=[FRAGMENT_TOKEN], users=[AGENT]) as emulator,
        FakeGitHub(token) as github,
    ):
        setup = Setup(tmp, github, emulator, env)
        setup.config.write_text(
            CONFIG.format(
                fragment=emulator.base_url,
                state=setup.state_url,
                web_port=setup.web_port,
                github=github.base_url,
                dead_port=_free_port(),
                tickets=tickets,
            )
        )
        yield setup


@settings(
    max_examples=3,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    token=_marked("Tk9"),
    portal_password=_marked("Pw8"),
    sql_password=_marked("Sq7"),
    body=st.sampled_from(sorted(BODIES)),
)
@example(
    token="Tk9\"it's\\a/b@c:d?e=f&g%20h<i>9kT",
    portal_password="Pw8p@ss/w:rd#?8wP",
    sql_password="Sq7pa&ss=wo%rd+7qS",
    body="json",
)
@example(
    token="Tk9abcdefghijklmnop9kT", portal_password="Pw8x" * 4, sql_password="Sq7y" * 4, body="cut"
)
def test_no_registered_secret_reaches_any_output_page_or_row(
    token: str, portal_password: str, sql_password: str, body: str
) -> None:
    secrets = [token, portal_password, sql_password]
    with (
        tempfile.TemporaryDirectory() as tmp,
        _setup(Path(tmp), token, portal_password, sql_password) as setup,
    ):
        setup.github.add(1, T0)
        setup.github.fail_next(Reply(401, raw=BODIES[body](token).encode()), times=1000)

        done = setup.cli(["run", "--once", "--json"])
        done += setup.cli(["run", "--once"])
        done += setup.cli(
            ["status"],
            ["status", "--json"],
            ["check"],
            ["failures", "list"],
            ["failures", "list", "--json"],
        )
        daemon, pages = setup.daemon_pages()
        state = _database_text(setup.state_url)

    as_json, second, _status, status_json, check, listed, listed_json = done
    # The faults happened: each connector but helpdesk failed, helpdesk set three tickets aside.
    summary = json.loads(as_json.stdout)
    outcomes = {c["name"]: (c["outcome"], c["failed"]) for c in summary["connectors"]}
    assert outcomes == {
        "github": ("failed", 0),
        "portal": ("failed", 0),
        "warehouse": ("failed", 0),
        "helpdesk": ("ok", 3),
    }, as_json.stdout
    assert "401" in second.stdout and check.returncode == 1
    assert "3 failed items" in listed.stdout
    assert "unknown user" in listed.stdout  # Fragment's refusal, as the emulator words it
    assert "Traceback" not in "".join(d.stderr for d in [*done, daemon])
    assert "fragment_sync_runs_total" in pages["/metrics"]
    assert "helpdesk" in pages["/"]

    documents = [
        summary,
        json.loads(status_json.stdout),
        json.loads(listed_json.stdout),
        json.loads(pages["/readyz?format=json"]),
    ]
    for process in [*done, daemon]:
        for stream in (process.stdout, process.stderr):
            assert not _leaks(secrets, stream), (process.args, _leaks(secrets, stream), stream)
    for document in documents:
        text = "\n".join(_strings(document))
        assert not _leaks(secrets, text), (_leaks(secrets, text), document)
    for path, page in pages.items():
        assert not _leaks(secrets, page), (path, _leaks(secrets, page), page)
        assert not _leaks(secrets, html.unescape(page)), (path, page)
    assert not _leaks(secrets, state), (_leaks(secrets, state), state)


class _Refusing(FakeApi):
    """A source that answers every request with a 401 whose body is `body`."""

    def __init__(self, body: bytes, content_type: str) -> None:
        super().__init__()
        self.reply = Reply(401, raw=body, content_type=content_type)

    def route(self, request: Request) -> Reply:
        return self.reply


@settings(max_examples=60, deadline=None)
@given(
    secret=_marked("Ch5"),
    body=st.sampled_from(sorted(BODIES)),
    around=st.text(max_size=40),
)
def test_each_place_a_failure_is_written_down_redacts_a_registered_secret(
    secret: str, body: str, around: str
) -> None:
    """The choke points, one by one and quicker than the processes above: a source's
    answer quoted by `RequestFailed`, the engine's and the source's error types, and
    every text column of the state, the failed ticket's record included."""
    register_secrets([secret])
    embedded = f"{around}{secret}{around}"
    with _Refusing(BODIES[body](secret).encode(), "application/json") as source:
        session = HttpSession(
            "vendor",
            source.base_url,
            classify=source_classifier(),
            budget=RequestBudget.per_minute(100_000),
            retry=RetrySettings(max_attempts=1),
        )
        try:
            session.send("GET", "/tickets")
        except RequestFailed as exc:
            refused: Exception = exc
        finally:
            session.close()
    failures: list[Exception] = [
        refused,
        SourceError("vendor", str(refused)),
        SourceError("vendor", repr(embedded)),
        MappingError("helpdesk", "7", "due_at", f"{embedded!r} is not a date"),
        ConfigError("connectors.x.url", embedded),
        FragmentAuthError(f"Fragment: {json.dumps({'detail': embedded})}"),
        StateError(f"state database: {embedded}"),
    ]
    for failure in failures:
        shown = f"{failure} {getattr(failure, 'reason', '')}"
        assert not _leaks([secret], shown), (type(failure).__name__, shown)

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/state.db"
        with StateStore.open(url) as store:
            run_id = store.start_run("helpdesk", "helpdesk", None)
            store.commit_batch(
                "helpdesk",
                failed=[
                    FailedItem(
                        source_id="7",
                        uid=None,
                        stage="rejected",
                        field=f"fields.{embedded}",
                        error=f"Fragment rejected it: unknown user {embedded}",
                        record=record_json({"id": 7, "note": embedded, embedded: [embedded]}),
                    )
                ],
            )
            store.finish_run(
                run_id, outcome="failed", counts={}, watermark=None, error=f"boom {embedded}"
            )
            [kept] = store.failed_items("helpdesk")
        state = _database_text(url)
    assert not _leaks([secret], state), (_leaks([secret], state), state)
    assert kept.record is not None
    record = json.loads(kept.record)
    assert record["id"] == 7 and "***" in record["note"]  # the rest of the ticket is kept


@settings(max_examples=20, deadline=None)
@given(secret=_marked("Ex4"), status=st.sampled_from([200, 422]))
def test_an_answer_quoted_in_an_error_is_redacted_before_it_is_cut(
    secret: str, status: int
) -> None:
    """A source's answer that isn't JSON, and Fragment's refusal, are quoted up to a
    length; a secret lying across that length must not leave its first half behind."""
    register_secrets([secret])
    # The cut of each quote (120 and 500 characters) falls inside the secret.
    cut = 120 if status == 200 else 500
    body = ("x" * (cut - len(secret) // 2) + secret + " and more").encode()
    with _Refusing(body, "text/plain") as server:
        server.reply = Reply(status, raw=body, content_type="text/plain")
        if status == 200:
            source = RedmineConnector(
                "portal",
                RedmineOptions(base_url=server.base_url, api_key=SecretStr("key-0001")),
            )
            try:
                with pytest.raises(SourceError) as failed:
                    list(source.pull(None))
            finally:
                source.close()
            shown = str(failed.value)
        else:
            settings = FragmentSettings(
                url=server.base_url, token=SecretStr("tok-0001"), max_attempts=1
            )
            task = {"uid": "5b7e4c0a-3f1d-4e8a-9b2c-6d5e4f3a2b1c", "fields": {"title": "t"}}
            with FragmentClient(settings) as client:
                result = client.push([TaskPayload.encode("1", 1, task)])
            [rejected] = result.rejected
            shown = rejected.message

    assert "xxxx" in shown  # the answer is quoted
    assert not _leaks([secret], shown), shown
