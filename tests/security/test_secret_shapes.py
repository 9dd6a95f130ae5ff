"""Every secret is registered, and text shaped like one is redacted even when it isn't.

The config registers the credentials of every URL it holds, secret or not:
`user:password@` and `?password=` (or any secret-named parameter) of the state
URL, a SQL source's URL, a connector's `base_url`, Fragment's URL. What no
config names (a signed URL a source hands back, a header a library logs) is
caught by its shape; the tests list each shape, and text that must stay as it is.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from sync.config import build_config
from sync.shell.logs import redact

STATE_PASSWORD = "st@te/pw-Q1 x"
SQL_PASSWORD = "sql&pw=Q2/@"
PORTAL_PASSWORD = "p@ss/w:rd-Q3"
FRAGMENT_PASSWORD = "frag:pw@Q4"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (
            "GET https://acct.blob.core.windows.net/c/b?sv=2022-11-02&sig=abc%2Bdef&se=2026",
            "GET https://acct.blob.core.windows.net/c/b?sv=2022-11-02&sig=***&se=2026",
        ),
        (
            "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4&X-Amz-Signature=deadbeef&X-Amz-Date=1",
            "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4&X-Amz-Signature=***&X-Amz-Date=1",
        ),
        ("Server=db;Uid=sa;Pwd=hunter2;Database=x", "Server=db;Uid=sa;Pwd=***;Database=x"),
        ("https://x.example/cb?jwt=eyJhbGciOi.x.y&state=1", "https://x.example/cb?jwt=***&state=1"),
        ("Authorization: token ghp_abcdef123456", "Authorization: token ***"),
        ("Authorization: 7f3a9c0d1e2b", "Authorization: ***"),
        ("{'Authorization': 'token ghp_abc'}", "{'Authorization': 'token ***'}"),
        (
            "postgresql://sync:p/ss@w0rd@db.internal:5432/x",
            "postgresql://sync:***@db.internal:5432/x",
        ),
        ("mysql://u:a@b@host/db", "mysql://u:***@host/db"),
        ('{"password": "hunter2", "user": "bob"}', '{"password": "***", "user": "bob"}'),
        ('{"password": "a\\"b", "n": 1}', '{"password": "***", "n": 1}'),
        (
            '{"token": "t0k", "client_secret": "cs", "api_key": 12345, "secret": "s"}',
            '{"token": "***", "client_secret": "***", "api_key": "***", "secret": "***"}',
        ),
        ("{'password': 'hunter2', 'user': 'bob'}", "{'password': '***', 'user': 'bob'}"),
        ("GET /x?X-Api-Key=k3y&page=2", "GET /x?X-Api-Key=***&page=2"),
    ],
)
def test_each_credential_shape_is_redacted(text: str, shown: str) -> None:
    assert redact(text) == shown


@pytest.mark.parametrize(
    "text",
    [
        "the token has expired; ask your admin for a new one",
        "design=modern&signal=TERM&cwd=/tmp",
        "max_tokens=5, tokens: 5",
        '{"token_type": "bearer", "tokens": 3}',
        "Authorization failed for this user",
        "GET http://127.0.0.1:8400/users/@me answered 404",
        "https://h.example:443/search?q=requester:a@b.example",
        "ticket 'Basic plan' at https://x.example/a:b",
        "connector 'helpdesk', ticket '12', field 'title': no subject",
    ],
)
def test_ordinary_text_near_those_shapes_is_left_alone(text: str) -> None:
    assert redact(text) == text


def _config_text(dead_port: int, tmp: Path, state_url: str | None = None) -> str:
    state_url = state_url or (
        f"postgresql+psycopg://sync@127.0.0.1:{dead_port}/state?password={quote(STATE_PASSWORD)}"
    )
    return f"""
[fragment]
url = "http://sync:{quote(FRAGMENT_PASSWORD, safe="")}@127.0.0.1:{dead_port}/api/v1"
token = "frag-token-shapes-0001"
max_attempts = 1

[state]
url = "{state_url}"

[connectors.warehouse]
kind = "sql"
url = "postgresql+psycopg://reader@127.0.0.1:{dead_port}/t?password={quote(SQL_PASSWORD, safe="")}"
table = "tickets"

[connectors.portal]
kind = "redmine"
base_url = "https://bot:{quote(PORTAL_PASSWORD, safe="")}@127.0.0.1:{dead_port}"
api_key = "redmine-key-shapes-0002"
max_attempts = 1

[connectors.helpdesk]
kind = "jsonl"
path = "{tmp / "tickets.jsonl"}"
"""


def test_every_credential_in_a_url_of_the_config_is_registered(tmp_path: Path) -> None:
    import tomllib

    config = build_config(tomllib.loads(_config_text(1, tmp_path)), source="test")

    registered = set(config.secrets())

    for password in (STATE_PASSWORD, SQL_PASSWORD, PORTAL_PASSWORD, FRAGMENT_PASSWORD):
        assert password in registered
    assert {"frag-token-shapes-0001", "redmine-key-shapes-0002"} <= registered
    assert not any("127.0.0.1" in value for value in registered)  # the rest of a URL shows


@pytest.mark.parametrize(
    ("command", "state", "exit_code"),
    [
        (["check"], "unreachable", 1),
        (["status", "--json"], "unreachable", 2),
        (["run", "--once", "--json"], "sqlite", 1),
        (["status", "--json"], "sqlite", 0),
    ],
)
def test_url_passwords_stay_out_of_the_commands_output(
    tmp_path: Path, command: list[str], state: str, exit_code: int
) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    path = tmp_path / "sync.toml"
    state_url = f"sqlite:///{tmp_path}/state.db" if state == "sqlite" else None
    path.write_text(_config_text(dead_port, tmp_path, state_url))
    (tmp_path / "tickets.jsonl").write_text(
        '{"id": 1, "subject": "Hello", "updated_at": "2026-11-02T09:00:00Z"}\n'
    )
    if state == "sqlite" and command[0] == "status":  # the failed runs it reports on
        _sync(["run", "--once"], path)

    done = _sync(command, path)

    shown = done.stdout + done.stderr
    assert done.returncode == exit_code, shown
    assert "Traceback" not in shown
    for password in (STATE_PASSWORD, SQL_PASSWORD, PORTAL_PASSWORD, FRAGMENT_PASSWORD):
        for form in (password, quote(password), quote(password, safe="")):
            assert form not in shown, (form, shown)


def _sync(command: list[str], config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sync", *command, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if not k.startswith("SYNC_")},
        check=False,
    )
