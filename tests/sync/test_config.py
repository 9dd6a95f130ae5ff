"""Configuration: bad config fails at start naming the key; env and ${VAR} work."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from connectors.values import parse_duration
from sync.config import load_config
from sync.errors import ConfigError

GOOD = """
[fragment]
url = "http://127.0.0.1:8400/api/v1"
token = "${FRAGMENT_TEST_TOKEN}"

[connectors.helpdesk]
kind = "jsonl"
path = "tickets.jsonl"
lookback = "2m"
schedule = { cron = "*/5 * * * *" }

[connectors.helpdesk.mapping]
title = "{subject}"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sync.toml"
    path.write_text(text)
    return path


def test_a_good_config_loads_with_variables_and_durations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FRAGMENT_TEST_TOKEN", "tok-123456")
    config = load_config(write(tmp_path, GOOD))
    assert config.fragment.token is not None
    assert config.fragment.token.get_secret_value() == "tok-123456"
    helpdesk = config.connectors["helpdesk"]
    assert helpdesk.settings.lookback == dt.timedelta(minutes=2)
    assert helpdesk.uid_namespace == "helpdesk"
    assert "tok-123456" in config.secrets()
    assert "tok-123456" not in repr(config)


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAGMENT_TEST_TOKEN", "tok-123456")
    monkeypatch.setenv("SYNC_FRAGMENT__BATCH_SIZE", "250")
    config = load_config(write(tmp_path, GOOD))
    assert config.fragment.batch_size == 250


@pytest.mark.parametrize(
    ("change", "key", "words"),
    [
        (('lookback = "2m"', 'lookback = "soon"'), "connectors.helpdesk.lookback", "duration"),
        (('kind = "jsonl"', 'kind = "zendeskk"'), "connectors.helpdesk.kind", "unknown"),
        (('path = "tickets.jsonl"', 'pathh = "x"'), "connectors.helpdesk.path", "pathh: unknown"),
        (("[fragment]", "[fragment]\nbatchsize = 5"), "fragment.batchsize", "unknown key"),
        (("[fragment]", "[fragment]\nbatch_size = 5000"), "fragment.batch_size", "less than"),
        (
            ('title = "{subject}"', 'title = "{subject"'),
            "connectors.helpdesk.mapping.title",
            "template",
        ),
        (
            ('title = "{subject}"', 'hook = "nowhere.at_all:fn"'),
            "connectors.helpdesk.mapping.hook",
            "import",
        ),
        (("*/5 * * * *", "every five"), "connectors.helpdesk.schedule.cron", "five fields"),
    ],
)
def test_bad_config_names_the_key(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    change: tuple[str, str],
    key: str,
    words: str,
) -> None:
    monkeypatch.setenv("FRAGMENT_TEST_TOKEN", "tok-123456")
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, GOOD.replace(*change)))
    assert caught.value.key == key
    assert words in str(caught.value)


def test_unset_variable_names_the_key_and_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, GOOD.replace("FRAGMENT_TEST_TOKEN", "SURELY_UNSET_VAR_X")))
    assert caught.value.key == "fragment.token"
    assert "SURELY_UNSET_VAR_X" in str(caught.value)


def test_two_connectors_sharing_a_uid_namespace_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FRAGMENT_TEST_TOKEN", "tok-123456")
    text = GOOD + '\n[connectors.renamed]\nkind = "jsonl"\npath = "x"\nuid_namespace = "helpdesk"\n'
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    assert caught.value.key == "connectors.renamed.uid_namespace"


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("5m", 300), ("1h30m", 5400), ("250ms", 0.25), (12, 12)]
)
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


def test_config_example_loads_and_every_commented_connector_in_it_is_valid(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """config.example.toml documents every key: it must stay loadable, examples included."""
    import re
    import tomllib

    from sync.config import build_config

    root = Path(__file__).resolve().parents[2]
    text = (root / "config.example.toml").read_text()
    for name in set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)\}", text)):
        monkeypatch.setenv(name, f"secret-for-{name.lower()}")
    config = load_config(root / "config.example.toml")
    assert "helpdesk" in config.connectors

    commented = "\n".join(line[2:] if line.startswith("# ") else "" for line in text.splitlines())
    tables = [
        t
        for t in re.split(r"\n(?=\[connectors\.[^.\]]+\]\n)", commented)
        if t.startswith("[connectors.")
    ]
    kinds = set()
    for table in tables:
        raw = tomllib.loads(table)
        built = build_config(raw, source="config.example.toml (commented)")
        kinds.update(c.kind for c in built.connectors.values())
    assert {
        "sql",
        "redmine",
        "zendesk",
        "freshdesk",
        "jira",
        "servicenow",
        "github",
        "rest",
    } <= kinds


def test_secrets_can_come_from_files_the_docker_secrets_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token_file = tmp_path / "fragment_token"
    token_file.write_text("tok-from-a-file\n")
    monkeypatch.delenv("FRAGMENT_TEST_TOKEN", raising=False)
    monkeypatch.setenv("FRAGMENT_TEST_TOKEN_FILE", str(token_file))
    config = load_config(write(tmp_path, GOOD))
    assert config.fragment.token is not None
    assert config.fragment.token.get_secret_value() == "tok-from-a-file"

    monkeypatch.setenv("FRAGMENT_TEST_TOKEN", "direct-wins")
    password_file = tmp_path / "db_password"
    password_file.write_text("sqlite:///from-secret.db")
    monkeypatch.setenv("SYNC_STATE__URL_FILE", str(password_file))
    monkeypatch.delenv("SYNC_STATE__URL", raising=False)
    config = load_config(write(tmp_path, GOOD))
    assert config.state.url == "sqlite:///from-secret.db"
    assert config.fragment.token is not None
    assert config.fragment.token.get_secret_value() == "direct-wins"


def test_an_unreadable_secret_file_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FRAGMENT_TEST_TOKEN", raising=False)
    monkeypatch.setenv("FRAGMENT_TEST_TOKEN_FILE", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="FRAGMENT_TEST_TOKEN_FILE"):
        load_config(write(tmp_path, GOOD))
