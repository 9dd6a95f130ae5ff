"""No secret of the renewing auths shows: not the configured ones, not the tokens obtained.

ServiceNow over OAuth (password grant), GitHub as an App (its key from a
`_FILE`), a REST source over OAuth 2 client credentials and one with its key in
the query (its next links echo it) run in subprocesses with debug logging,
through a good pass, then a refused token renewal and a failing page. Neither
a configured secret (client secrets, password, private key, query key) nor a
token the sources issued (access and refresh tokens, installation tokens) may
appear in stdout, stderr or the state database.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from fakes import Reply
from fakes.backoffice import PATH, FakeBackOffice, OAuthServer
from fakes.github import AppInstallation, FakeGitHub
from fakes.servicenow import FakeServiceNow, OAuthClient
from fragment_emulator import Emulator
from sync.config import load_config

FRAGMENT_TOKEN = "frag-SECRET-tok-0a71c9d2"
SNOW_PASSWORD = "snow-SECRET-pw-61be"
SNOW_CLIENT_SECRET = "snow-SECRET-client-93d0"
BO_CLIENT_SECRET = "bo-SECRET-client-4f2a"
BO_KEY = "bo-SECRET-key-c81e77"
CONFIGURED = [FRAGMENT_TOKEN, SNOW_PASSWORD, SNOW_CLIENT_SECRET, BO_CLIENT_SECRET, BO_KEY]
ENVIRONMENT = {
    "FRAGMENT_TOKEN": FRAGMENT_TOKEN,
    "SNOW_PASSWORD": SNOW_PASSWORD,
    "SNOW_CLIENT_SECRET": SNOW_CLIENT_SECRET,
    "BO_CLIENT_SECRET": BO_CLIENT_SECRET,
    "BO_KEY": BO_KEY,
}
"""Where the config's `${VAR}`s come from; the app's key comes from `GITHUB_APP_KEY_FILE`."""
T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)
MAPPING = '{ title = "{headline}", status = "state", external_updated_at = "modified" }'

CONFIG = """
[fragment]
url = "{fragment_url}"
token = "${{FRAGMENT_TOKEN}}"
requests_per_minute = 100000

[state]
url = "{state_url}"

[logging]
level = "debug"
format = "json"

[connectors.snow]
kind = "servicenow"
base_url = "{snow_url}"
client_id = "snow-client"
client_secret = "${{SNOW_CLIENT_SECRET}}"
username = "fragment.sync"
password = "${{SNOW_PASSWORD}}"
page_size = 2
max_attempts = 2

[connectors.github]
kind = "github"
base_url = "{github_url}"
repository = "octo-org/helpdesk"
app_id = "Iv23liSECRETLESS"
installation_id = 4242
private_key = "${{GITHUB_APP_KEY}}"
page_size = 2
max_attempts = 2

[connectors.backoffice]
kind = "rest"
base_url = "{oauth_url}"
path = "{path}"
paginator = {{ type = "next_token", token_path = "paging.next_cursor", param = "cursor" }}
page_size_param = "per_page"
page_size = 2
records_path = "data.tickets"
id_path = "ref"
cursor_path = "modified"
max_attempts = 2
mapping = {mapping}

[connectors.backoffice.auth]
type = "oauth2"
token_url = "/oauth/token"
client_id = "sync"
client_secret = "${{BO_CLIENT_SECRET}}"

[connectors.keyed]
kind = "rest"
base_url = "{keyed_url}"
path = "{path}"
auth = {{ type = "query", param = "key", value = "${{BO_KEY}}" }}
paginator = {{ type = "next_url", url_path = "paging.next" }}
page_size_param = "per_page"
page_size = 2
records_path = "data.tickets"
id_path = "ref"
cursor_path = "modified"
max_attempts = 2
mapping = {mapping}
"""


class Sources:
    def __init__(self, tmp: Path, key_file: Path, emulator: Emulator, **fakes: Any) -> None:
        self.tmp, self.key_file, self.emulator = tmp, key_file, emulator
        self.snow: FakeServiceNow = fakes["snow"]
        self.github: FakeGitHub = fakes["github"]
        self.backoffice: FakeBackOffice = fakes["backoffice"]
        self.keyed: FakeBackOffice = fakes["keyed"]
        self.state_url = f"sqlite:///{tmp / 'state.db'}"
        self.config = tmp / "sync.toml"
        self.config.write_text(
            CONFIG.format(
                fragment_url=emulator.base_url,
                state_url=self.state_url,
                snow_url=self.snow.base_url,
                github_url=self.github.base_url,
                oauth_url=self.backoffice.base_url,
                keyed_url=self.keyed.base_url,
                path=PATH,
                mapping=MAPPING,
            )
        )

    def obtained(self) -> list[str]:
        """Every token the sources issued so far."""
        assert self.github.app is not None and self.backoffice.oauth is not None
        snow = [t.access_token for t in self.snow.issued] + sorted(self.snow.refresh_tokens)
        return [*snow, *self.github.app.tokens, *self.backoffice.oauth.access]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        [done] = self.cli_together(list(args))
        return done

    def cli_together(self, *commands: list[str]) -> list[subprocess.CompletedProcess[str]]:
        """Run commands side by side (each is a fresh interpreter: this saves seconds)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("SYNC_")}
        env.update(ENVIRONMENT, NO_COLOR="1", GITHUB_APP_KEY_FILE=str(self.key_file))
        started = [
            subprocess.Popen(
                [sys.executable, "-m", "sync", *args, "--config", str(self.config)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
            for args in commands
        ]
        done = []
        for args, process in zip(commands, started, strict=True):
            stdout, stderr = process.communicate(timeout=90)
            done.append(subprocess.CompletedProcess(args, process.returncode, stdout, stderr))
        return done


@pytest.fixture
def sources(tmp_path: Path) -> Iterator[Sources]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file = tmp_path / "app.pem"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with (
        Emulator(db_path=":memory:", tokens=[FRAGMENT_TOKEN]) as emulator,
        FakeServiceNow("fragment.sync", SNOW_PASSWORD, "unused-static-token") as snow,
        FakeGitHub("unused-personal-token") as github,
        FakeBackOffice("unused-key", "next_token") as backoffice,
        FakeBackOffice(BO_KEY, "next_url") as keyed,
    ):
        snow.oauth_client = OAuthClient("snow-client", SNOW_CLIENT_SECRET)
        github.install_app(AppInstallation(1, "Iv23liSECRETLESS", 4242, public.decode()))
        backoffice.oauth = OAuthServer("sync", BO_CLIENT_SECRET)
        for n in range(1, 6):
            at = T0 + dt.timedelta(minutes=n)
            snow.add(n, at)
            github.add(n, at)
            backoffice.add(n, at)
            keyed.add(n, at)
        yield Sources(
            tmp_path,
            key_file,
            emulator,
            snow=snow,
            github=github,
            backoffice=backoffice,
            keyed=keyed,
        )


def _state_text(url: str) -> str:
    engine = sa.create_engine(url)
    tables = sa.MetaData()
    tables.reflect(engine)
    with engine.connect() as conn:
        text = "\n".join(
            str(value)
            for table in tables.sorted_tables
            for row in conn.execute(sa.select(table))
            for value in row
        )
    engine.dispose()
    return text


def _assert_hidden(secrets: list[str], done: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in done.stderr, done.stderr
    for secret in secrets:
        assert secret not in done.stdout, f"{secret} in stdout of {done.args}"
        assert secret not in done.stderr, f"{secret} in stderr of {done.args}"


def test_renewing_auths_show_no_secret_through_good_and_failing_passes(sources: Sources) -> None:
    good = sources.cli("run", "--once", "--json")
    assert good.returncode == 0, good.stdout + good.stderr
    assert {s["name"]: s["pushed"] for s in json.loads(good.stdout)["connectors"]} == {
        "snow": 5,
        "github": 5,
        "backoffice": 5,
        "keyed": 5,
    }

    # The instance refuses every token, and the keyed API's second page is broken.
    sources.snow.revoke_access_tokens()
    sources.snow.revoke_refresh_tokens()
    sources.snow.password = "changed-by-an-admin"
    sources.keyed.fail_next(
        Reply(200, raw=b"<html>maintenance</html>"),
        times=10,
        when=lambda request: request.param("page") == "2",  # reached by a link echoing the key
    )
    for n in range(6, 9):
        sources.snow.add(n, T0 + dt.timedelta(hours=1, minutes=n))
        sources.keyed.add(n, T0 + dt.timedelta(hours=1, minutes=n))
    failing = [sources.cli("run", "--once"), sources.cli("run", "--once", "--json")]
    reports = sources.cli_together(
        ["status"], ["status", "--json"], ["check"], ["failures", "list", "--json"]
    )

    assert failing[0].returncode == 1
    assert "oauth_token.do refused the password grant: 401" in failing[0].stdout
    assert "page=2" in failing[0].stdout  # the keyed source's error shows the link, keyless
    secrets = CONFIGURED + sources.obtained()
    assert len(secrets) > len(CONFIGURED) + 3  # tokens of every kind were issued
    assert sources.key_file.read_text().splitlines()[1] not in good.stderr  # the key's body
    for done in [good, *failing, *reports]:
        _assert_hidden(secrets, done)
    state = _state_text(sources.state_url)
    assert "oauth_token.do" in state  # the failed run's error is recorded
    for secret in secrets:
        assert secret not in state


def test_every_new_secret_is_registered_for_redaction(
    sources: Sources, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("GITHUB_APP_KEY_FILE", str(sources.key_file))

    config = load_config(sources.config)

    registered = config.secrets()
    assert set(CONFIGURED) <= set(registered)
    key = sources.key_file.read_text().strip()
    assert key in registered  # the private key, whole
    for options in (c.options for c in config.connectors.values()):
        assert SNOW_CLIENT_SECRET not in repr(options) and BO_KEY not in repr(options)
        assert "PRIVATE KEY" not in repr(options)
