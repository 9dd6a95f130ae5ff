"""Configuration: bad config fails at start naming the key; env and ${VAR} work."""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from pathlib import Path

import pytest

from connectors.values import parse_duration
from sync.config import build_config, load_config
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


def test_a_validators_message_reads_without_pydantics_prefix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FRAGMENT_TEST_TOKEN", "tok-123456")
    text = GOOD.replace('lookback = "2m"', 'lookback = "soon"')
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    assert str(caught.value) == (
        "connectors.helpdesk.lookback: 'soon' is not a duration (use e.g. 30s, 5m, 1h30m)"
    )


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


EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.toml"
_BLOCK = re.compile(r"^# \[connectors\.([^.\]]+)\]$")


def _example_blocks() -> tuple[list[str], dict[str, range]]:
    """config.example.toml's lines, and the lines of each commented connector block by name.

    A block runs from its `# [connectors.NAME]` line, below the banner that says
    how to uncomment them, to the next one.
    """
    lines = EXAMPLE.read_text().splitlines()
    banner = next(i for i, line in enumerate(lines) if line.startswith("## More connectors"))
    starts = [i for i, line in enumerate(lines) if i > banner and _BLOCK.match(line)]
    ends = [*starts[1:], len(lines)]
    return lines, {
        _BLOCK.match(lines[start]).group(1): range(start, end)  # type: ignore[union-attr]
        for start, end in zip(starts, ends, strict=True)
    }


def _uncommented(lines: list[str], blocks: list[range]) -> str:
    """The file with the `# ` of every line of `blocks` removed, as its banner says to."""
    chosen = {index for block in blocks for index in block}
    return "\n".join(
        line[2:] if index in chosen and line.startswith("# ") else line
        for index, line in enumerate(lines)
    )


@pytest.mark.parametrize("variant", ["as-is", *_example_blocks()[1], "all-blocks"])
def test_config_example_loads_as_is_with_any_block_uncommented_and_with_every_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variant: str
) -> None:
    """Uncommented as its banner says, the file gave `Cannot declare ('fragment',) twice`,
    and two blocks were both [connectors.backoffice]."""
    lines, blocks = _example_blocks()
    text = "\n".join(lines)
    for name in set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)\}", text)):
        monkeypatch.setenv(name, f"secret-for-{name.lower()}")
    chosen = {"as-is": [], "all-blocks": list(blocks.values())}.get(variant, [blocks.get(variant)])
    config = load_config(write(tmp_path, _uncommented(lines, [b for b in chosen if b])))

    expected = {"as-is": set(), "all-blocks": set(blocks)}.get(variant, {variant})
    assert set(config.connectors) == {"helpdesk", *expected}
    if variant == "all-blocks":
        kinds = {c.kind for c in config.connectors.values()}
        assert {"csv", "sql", "redmine", "zendesk", "freshdesk", "jira", "servicenow"} <= kinds
        assert {"github", "rest"} <= kinds


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


@pytest.mark.parametrize("variable", ["SYNC_FRAGMENT__TOKEN", "SYNC_FRAGMENT__TOKEN_FILE"])
def test_an_environment_override_wins_over_the_files_variable_even_when_that_is_unset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    """README step 2 and the Dockerfile set SYNC_FRAGMENT__TOKEN(_FILE) over the example's
    `token = "${FRAGMENT_TOKEN}"`: the run used to exit 2, "FRAGMENT_TOKEN is not set"."""
    monkeypatch.delenv("FRAGMENT_TEST_TOKEN", raising=False)
    value = "tok-from-the-environment"
    if variable.endswith("_FILE"):
        secret = tmp_path / "fragment_token"
        secret.write_text(value + "\n")
        value_of_variable = str(secret)
    else:
        value_of_variable = value
    monkeypatch.setenv(variable, value_of_variable)
    config = load_config(write(tmp_path, GOOD))
    assert config.fragment.token is not None
    assert config.fragment.token.get_secret_value() == "tok-from-the-environment"


def test_a_key_an_environment_variable_overrides_is_never_interpolated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file's `${FRAGMENT_TEST_TOKEN}` would read a secret file that is not there."""
    monkeypatch.delenv("FRAGMENT_TEST_TOKEN", raising=False)
    monkeypatch.setenv("FRAGMENT_TEST_TOKEN_FILE", str(tmp_path / "missing"))
    monkeypatch.setenv("SYNC_FRAGMENT__TOKEN", "tok-direct")
    config = load_config(write(tmp_path, GOOD))
    assert config.fragment.token is not None
    assert config.fragment.token.get_secret_value() == "tok-direct"


@pytest.mark.parametrize(
    ("token", "environment", "words"),
    [
        ('""', {}, "empty"),
        ('"  tok-123456 "', {}, "spaces"),
        ('"${FRAGMENT_TEST_TOKEN}"', {"FRAGMENT_TEST_TOKEN": ""}, "empty"),
        ('"tok-123456"', {"SYNC_FRAGMENT__TOKEN": " "}, "empty"),
    ],
)
def test_an_empty_or_space_padded_fragment_token_is_refused_naming_the_key(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    token: str,
    environment: dict[str, str],
    words: str,
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    text = GOOD.replace('"${FRAGMENT_TEST_TOKEN}"', token)
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    assert caught.value.key == "fragment.token"
    assert words in str(caught.value)


@pytest.mark.parametrize(
    ("table", "key"),
    [
        (
            'kind = "redmine"\nbase_url = "https://redmine.example.com"\napi_key = ""',
            "connectors.source.api_key",
        ),
        (
            'kind = "github"\nrepository = "octo/helpdesk"\ntoken = "${EMPTY_SECRET}"',
            "connectors.source.token",
        ),
        (
            'kind = "servicenow"\ninstance = "acme"\nusername = "sync"\npassword = ""',
            "connectors.source.password",
        ),
        (
            'kind = "rest"\nbase_url = "https://api.example.com"\npath = "/t"\n'
            'cursor_path = "modified"\npaginator = { type = "next_url", url_path = "next" }\n'
            'auth = { type = "header", header = "X-Api-Key", value = "" }',
            "connectors.source.auth.value",
        ),
    ],
)
def test_an_empty_secret_of_a_source_is_refused_at_load_naming_its_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, table: str, key: str
) -> None:
    """An empty `api_key` used to load, then fail every pass with a 401 (and a full re-read)."""
    monkeypatch.setenv("FRAGMENT_TEST_TOKEN", "tok-123456")
    monkeypatch.setenv("EMPTY_SECRET", "")
    text = GOOD + f"\n[connectors.source]\n{table}\n[connectors.source.mapping]\ntitle = 'x'\n"
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    assert caught.value.key == key
    assert "empty" in str(caught.value)


def test_relative_paths_in_the_file_resolve_against_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not against the working directory: cron and systemd start us elsewhere."""
    monkeypatch.setenv("FRAGMENT_TEST_TOKEN", "tok-123456")
    folder = tmp_path / "etc"
    folder.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    text = GOOD.replace(
        "[connectors.helpdesk]", '[state]\nurl = "sqlite:///state/x.db"\n\n[connectors.helpdesk]'
    )
    config = load_config(write(folder, text))
    assert config.connectors["helpdesk"].options.path == folder / "tickets.jsonl"  # type: ignore[attr-defined]
    assert config.state.url == f"sqlite:///{folder / 'state' / 'x.db'}"


def test_a_sql_connectors_relative_sqlite_file_resolves_against_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FRAGMENT_TEST_TOKEN", "tok-123456")
    folder = tmp_path / "etc"
    folder.mkdir()
    monkeypatch.chdir(tmp_path)
    text = GOOD + (
        '\n[connectors.backoffice]\nkind = "sql"\nurl = "sqlite:///data/backoffice.db"\n'
        'table = "tickets"\n'
    )
    config = load_config(write(folder, text))
    url = config.connectors["backoffice"].options.url.get_secret_value()  # type: ignore[attr-defined]
    assert url == f"sqlite:///{folder / 'data' / 'backoffice.db'}"


def test_relative_paths_from_the_environment_and_defaults_stay_with_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """They are not written in the file: a path typed at a shell means the shell's folder."""
    monkeypatch.setenv("FRAGMENT_TEST_TOKEN", "tok-123456")
    folder = tmp_path / "etc"
    folder.mkdir()
    config = load_config(write(folder, GOOD))
    assert config.state.url == "sqlite:///.sync/state.db"
    monkeypatch.setenv("SYNC_STATE__URL", "sqlite:///mine.db")
    monkeypatch.setenv("SYNC_CONNECTORS__HELPDESK__PATH", "here.jsonl")
    config = load_config(write(folder, GOOD))
    assert config.state.url == "sqlite:///mine.db"
    assert str(config.connectors["helpdesk"].options.path) == "here.jsonl"  # type: ignore[attr-defined]


def test_http_connectors_set_the_request_timeout_apart_from_the_pass_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`timeout` set the pass timeout, so the per-request one the example promised could not
    be set at all."""
    monkeypatch.setenv("FRAGMENT_TEST_TOKEN", "tok-123456")
    text = GOOD + (
        '\n[connectors.redmine]\nkind = "redmine"\nbase_url = "https://redmine.example.com"\n'
        'api_key = "k-1"\nrequest_timeout = "5s"\ntimeout = "2h"\n'
    )
    redmine = load_config(write(tmp_path, text)).connectors["redmine"]
    assert redmine.options.request_timeout == dt.timedelta(seconds=5)  # type: ignore[attr-defined]
    assert redmine.settings.timeout == dt.timedelta(hours=2)


def test_a_pass_without_a_timeout_gets_a_default_one_of_hours(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FRAGMENT_TEST_TOKEN", "tok-123456")
    helpdesk = load_config(write(tmp_path, GOOD)).connectors["helpdesk"]
    assert helpdesk.settings.pass_timeout >= dt.timedelta(hours=6)


def test_a_config_that_sets_no_new_key_keeps_the_fingerprint_it_had() -> None:
    """A changed fingerprint makes every pass after an upgrade read everything again.

    The value is what the release before issue 19's people and conversation
    computed for this config; a new settings key must leave it as it was while
    unset (`Field(exclude_if=unset)`), or an upgrade re-reads every source.
    """
    raw = tomllib.loads(
        """
        [fragment]
        url = "http://127.0.0.1:1"
        token = "x"
        [connectors.files]
        kind = "jsonl"
        path = "/srv/tickets.jsonl"
        cursor_field = "updated_at"
        [connectors.files.mapping]
        title = "{subject}"
        fields = { priority = "priority" }
        """
    )

    config = build_config(raw, "test")

    assert config.connectors["files"].fingerprint() == "399780d89cd52ebe581181d04a60f194"


def _fleet(connectors: int, **sections: dict[str, object]) -> dict[str, object]:
    raw: dict[str, object] = {
        "fragment": {"url": "http://127.0.0.1:1", "token": "x"},
        "connectors": {
            f"c{i}": {"kind": "jsonl", "path": f"/srv/{i}.jsonl"} for i in range(connectors)
        },
    }
    return {**raw, **sections}


def test_workers_default_to_one_per_connector_at_most_sixteen_and_size_the_pool() -> None:
    assert build_config(_fleet(3), "test").workers == 3
    assert build_config(_fleet(40), "test").workers == 16
    sized = build_config(_fleet(40, daemon={"workers": 4}), "test")
    assert (sized.workers, sized.pool_size) == (4, 8)
    assert build_config(_fleet(3, state={"pool_size": 20}), "test").pool_size == 20


def test_zero_workers_is_refused_naming_the_key() -> None:
    with pytest.raises(ConfigError) as caught:
        build_config(_fleet(1, daemon={"workers": 0}), "test")
    assert caught.value.key == "daemon.workers"
