"""No secret anywhere: not in output, not in logs, not in the state database, not in reprs.

A realistic config (Fragment, Zendesk, GitHub, Redmine, a SQL source whose URL
carries a password, a healthy jsonl source) takes its secrets from the
environment. It runs in subprocesses through successes and failures: a wrong
Fragment token, sources refusing credentials, unreachable databases, `--json`,
`status`, `check`, `failures list`, every log format at debug level. None of
the secret strings may appear in stdout, stderr, the state database's text,
or `repr()`/`str()` of the `Config`.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from fakes import Reply
from fakes.github import NO_PERMISSION, FakeGitHub
from fakes.redmine import FakeRedmine
from fakes.zendesk import FakeZendesk
from fragment_emulator import Emulator
from sync.config import Config, build_config
from synckit import MAPPING, write_tickets

FRAGMENT_TOKEN = "frag-SECRET-tok-91f3c2e8"
WRONG_FRAGMENT_TOKEN = "frag-SECRET-wrong-40d7aa"
ZENDESK_TOKEN = "zd-SECRET-tok-5a7e61b0"
GITHUB_TOKEN = "ghp_SECRETgithub0042beef"
REDMINE_KEY = "rm-SECRET-key-3c9d17f2"
SQL_PASSWORD = "sqlSECRETpw-77c1"
STATE_PASSWORD = "stateSECRETpw-5e20"
SECRETS = [
    FRAGMENT_TOKEN,
    WRONG_FRAGMENT_TOKEN,
    ZENDESK_TOKEN,
    GITHUB_TOKEN,
    REDMINE_KEY,
    SQL_PASSWORD,
    STATE_PASSWORD,
]
ZENDESK_EMAIL = "bot@acme.example"
T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)

CONFIG = """
[fragment]
url = "{fragment_url}"
token = "${{FRAGMENT_TOKEN}}"
requests_per_minute = 100000
max_attempts = 2
max_retry_wait = "1s"

[state]
url = "{state_url}"

[logging]
level = "debug"
format = "{log_format}"

[connectors.zendesk]
kind = "zendesk"
subdomain = "acme"
base_url = "{zendesk_url}"
email = "{zendesk_email}"
api_token = "${{ZENDESK_TOKEN}}"
max_attempts = 2
rate_limit_floor = "100ms"
requests_per_minute = 100000

[connectors.github]
kind = "github"
base_url = "{github_url}"
repository = "octo-org/helpdesk"
token = "${{GITHUB_TOKEN}}"
max_attempts = 2
rate_limit_floor = "100ms"
requests_per_minute = 100000

[connectors.redmine]
kind = "redmine"
base_url = "{redmine_url}"
api_key = "${{REDMINE_KEY}}"
max_attempts = 2
rate_limit_floor = "100ms"
requests_per_minute = 100000

[connectors.warehouse]
kind = "sql"
url = "postgresql+psycopg://reader:${{SQL_PASSWORD}}@127.0.0.1:1/tickets"
table = "tickets"

[connectors.helpdesk]
kind = "jsonl"
path = "{tickets}"
deleted_field = "deleted"
mapping = {mapping}
"""


class Sources:
    """The vendor fakes, the emulator and where the config and state live."""

    def __init__(
        self,
        tmp: Path,
        emulator: Emulator,
        zendesk: FakeZendesk,
        github: FakeGitHub,
        redmine: FakeRedmine,
    ) -> None:
        self.tmp, self.emulator = tmp, emulator
        self.zendesk, self.github, self.redmine = zendesk, github, redmine
        self.state_url = f"sqlite:///{tmp / 'state.db'}"

    def config_file(self, log_format: str = "json", state_url: str | None = None) -> Path:
        tickets = write_tickets(
            self.tmp / "tickets.jsonl",
            [
                {
                    "id": 1,
                    "subject": "Hello",
                    "priority": "low",
                    "updated_at": "2026-11-02T09:00:00Z",
                }
            ],
        )
        text = CONFIG.format(
            fragment_url=self.emulator.base_url,
            state_url=state_url or self.state_url,
            log_format=log_format,
            zendesk_url=self.zendesk.base_url,
            zendesk_email=ZENDESK_EMAIL,
            github_url=self.github.base_url,
            redmine_url=self.redmine.base_url,
            tickets=tickets,
            mapping=_inline(MAPPING),
        )
        path = self.tmp / f"sync-{log_format}.toml"
        path.write_text(text)
        return path


def _inline(value: Any) -> str:
    import json

    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_inline(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


@pytest.fixture
def sources(tmp_path: Path) -> Iterator[Sources]:
    with (
        Emulator(db_path=":memory:", tokens=[FRAGMENT_TOKEN]) as emulator,
        FakeZendesk(ZENDESK_EMAIL, ZENDESK_TOKEN) as zendesk,
        FakeGitHub(GITHUB_TOKEN) as github,
        FakeRedmine(REDMINE_KEY) as redmine,
    ):
        for n in range(1, 4):
            at = T0 + dt.timedelta(minutes=n)
            zendesk.add(n, at)
            github.add(n, at)
            redmine.add(n, at)
        yield Sources(tmp_path, emulator, zendesk, github, redmine)


def _env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNC_")}
    return {
        **env,
        "NO_COLOR": "1",
        "FRAGMENT_TOKEN": FRAGMENT_TOKEN,
        "ZENDESK_TOKEN": ZENDESK_TOKEN,
        "GITHUB_TOKEN": GITHUB_TOKEN,
        "REDMINE_KEY": REDMINE_KEY,
        "SQL_PASSWORD": SQL_PASSWORD,
        **overrides,
    }


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sync", *args],
        capture_output=True,
        text=True,
        timeout=90,
        env=env or _env(),
        check=False,
    )


def _cli_together(*commands: list[str]) -> list[subprocess.CompletedProcess[str]]:
    """Run read-only commands side by side (each is a fresh interpreter: this saves seconds)."""
    started = [
        subprocess.Popen(
            [sys.executable, "-m", "sync", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        for args in commands
    ]
    done = []
    for args, process in zip(commands, started, strict=True):
        stdout, stderr = process.communicate(timeout=90)
        done.append(subprocess.CompletedProcess(args, process.returncode, stdout, stderr))
    return done


def _assert_no_secret(done: subprocess.CompletedProcess[str]) -> None:
    for secret in SECRETS:
        assert secret not in done.stdout, f"{secret} in stdout of {done.args}:\n{done.stdout}"
        assert secret not in done.stderr, f"{secret} in stderr of {done.args}:\n{done.stderr}"


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


def test_failing_runs_and_reports_with_debug_logging_show_no_secret(sources: Sources) -> None:
    config = str(sources.config_file("json"))
    # Sources refusing credentials, each its own way.
    sources.zendesk.fail_next(Reply(401, {"error": "Couldn't authenticate you"}), times=10)
    sources.github.fail_next(NO_PERMISSION, times=10)
    sources.redmine.fail_next(Reply(403, raw=b"", content_type="text/plain"), times=10)

    runs = [
        _cli("run", "--once", "--config", config),
        _cli("run", "--once", "--json", "--config", config),
    ]
    runs += _cli_together(
        ["status", "--config", config],
        ["status", "--json", "--config", config],
        ["check", "--config", config],
        ["failures", "list", "--config", config],
        ["failures", "list", "--json", "--config", config],
    )

    for done in runs:
        assert "Traceback" not in done.stderr, done.stderr
        _assert_no_secret(done)
    first = runs[0]
    assert first.returncode == 1  # the refusing sources and the SQL one failed
    assert "helpdesk" in first.stdout and "401" in first.stdout + first.stderr
    state = _database_text(sources.state_url)
    assert "warehouse" in state  # its failed run is recorded, with its error
    for secret in SECRETS:
        assert secret not in state


def test_a_successful_debug_run_then_reports_show_no_secret(sources: Sources) -> None:
    config = str(sources.config_file("console"))
    healthy = [f"--connector={name}" for name in ("zendesk", "github", "redmine", "helpdesk")]

    runs = [_cli("run", "--once", "--json", *healthy, "--config", config)]
    runs += _cli_together(["status", "--config", config], ["check", "--config", config])

    for done in runs:
        _assert_no_secret(done)
    assert runs[0].returncode == 0, runs[0].stdout
    assert len(sources.emulator.store.all_tasks()) == 3 * 3 + 1
    state = _database_text(sources.state_url)
    for secret in SECRETS:
        assert secret not in state


def test_a_wrong_fragment_token_fails_without_showing_either_token(sources: Sources) -> None:
    config = str(sources.config_file("json"))
    env = _env(FRAGMENT_TOKEN=WRONG_FRAGMENT_TOKEN)

    runs = [
        _cli("run", "--once", "--json", "--connector", "helpdesk", "--config", config, env=env),
        _cli("check", "--config", config, env=env),
    ]

    for done in runs:
        _assert_no_secret(done)
        assert done.returncode == 1
    assert "401" in runs[0].stdout and "fragment.token" in runs[0].stdout
    state = _database_text(sources.state_url)
    assert "fragment.token" in state  # the failed run's error is recorded
    for secret in SECRETS:
        assert secret not in state


@pytest.mark.parametrize("command", [["run", "--once"], ["status"], ["failures", "list"]])
def test_an_unreachable_state_database_hides_its_password(
    sources: Sources, command: list[str]
) -> None:
    state_url = f"postgresql+psycopg://sync:{STATE_PASSWORD}@127.0.0.1:1/state"
    config = str(sources.config_file("json", state_url=state_url))

    done = _cli(*command, "--config", config)

    assert done.returncode == 2, done.stderr
    assert "state" in done.stderr
    assert "Traceback" not in done.stderr
    _assert_no_secret(done)


@pytest.fixture
def config(sources: Sources, monkeypatch: pytest.MonkeyPatch) -> Config:
    """The realistic config, built in this process, its state in PostgreSQL with a password."""
    for name, value in _env().items():
        if "SECRET" in value:
            monkeypatch.setenv(name, value)
    raw = tomllib.loads(sources.config_file("json").read_text())
    raw["state"]["url"] = f"postgresql+psycopg://sync:{STATE_PASSWORD}@db.internal/state"
    return build_config(raw, source="test")


def _assert_hides_secrets(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret} in {text[:300]}"


def test_the_fragment_token_and_the_typed_connector_options_are_masked(config: Config) -> None:
    _assert_hides_secrets(repr(config.fragment) + str(config.fragment))
    for connector in config.connectors.values():
        _assert_hides_secrets(repr(connector.options) + str(connector.options))
    expected = {FRAGMENT_TOKEN, ZENDESK_TOKEN, GITHUB_TOKEN, REDMINE_KEY, SQL_PASSWORD}
    assert set(config.secrets()) >= expected


def test_repr_and_str_of_the_config_show_no_connector_secret(config: Config) -> None:
    _assert_hides_secrets(repr(config) + str(config))


def test_the_state_url_password_is_treated_as_a_secret(config: Config) -> None:
    assert STATE_PASSWORD in config.secrets()
    _assert_hides_secrets(repr(config.state) + str(config.state))


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("Authorization: Bearer eyJhbGciOi.x-y_z", "Authorization: Bearer ***"),
        ("authorization: basic dXNlcjpwYXNzd29yZA==", "authorization: basic ***"),
        ("mysql+pymysql://sync:hunter2@db.internal/x", "mysql+pymysql://sync:***@db.internal/x"),
        ("GET /api?page=2&API_KEY=abc123&x=1", "GET /api?page=2&API_KEY=***&x=1"),
        ("retry with token=abc secret=def", "retry with token=*** secret=***"),
        (
            "ticket 'Basic plan' at https://x.example/a:b",
            "ticket 'Basic plan' at https://x.example/a:b",
        ),
        ("ticket 12, field 'title': no subject", "ticket 12, field 'title': no subject"),
    ],
)
def test_text_shaped_like_a_credential_is_redacted_and_nothing_else(text: str, shown: str) -> None:
    """`redact` looks for the credential shapes only where a quick search finds one of
    their labels; every shape must still be caught, and ordinary text left alone."""
    from sync.logs import redact

    assert redact(text) == shown
