"""The configuration reference, the JSON Schema of sync.toml and the command-line reference.

They are generated from the settings models and the CLI's parser (`sync.shell.schema`,
`sync.shell.reference`). These tests walk the models on their own, so a key added to
any of them without a description, or missing from the reference or the schema, fails.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import subprocess
import sys
import tomllib
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import jsonschema
import pytest
from pydantic import BaseModel, ConfigDict

from connectors.base import Connector
from connectors.registry import available
from sync.config import ConnectorSettings, FragmentSettings, Settings, load_config
from sync.shell import cli, reference, schema

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config.example.toml"


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if get_origin(annotation) in (Union, types.UnionType) or get_args(annotation):
        return [model for argument in get_args(annotation) for model in _models_in(argument)]
    return []


def _dotted_keys(model: type[BaseModel], prefix: str) -> Iterator[tuple[str, Any]]:
    """Every key of `model`'s table and of the tables nested in it: (dotted key, field)."""
    for name, field in model.model_fields.items():
        key = f"{prefix}.{name}" if prefix else name
        yield key, field
        for nested in _models_in(field.annotation):
            if nested is not ConnectorSettings:  # the connectors' own walk covers them
                yield from _dotted_keys(nested, key)


def _every_key() -> Iterator[tuple[str, str, Any]]:
    """(kind or "", dotted key, field) for all of sync.toml: Settings, then each kind."""
    for key, field in _dotted_keys(Settings, ""):
        yield "", key, field
    for key, field in _dotted_keys(ConnectorSettings, "connectors.NAME"):
        yield "", key, field
    for kind, cls in available().items():
        for key, field in _dotted_keys(cls.Options, "connectors.NAME"):
            yield kind, key, field


def _undocumented(model: type[BaseModel], prefix: str = "") -> list[str]:
    """The dotted keys under `model` whose field has no description."""
    return [key for key, field in _dotted_keys(model, prefix) if not field.description]


def _documented_keys(markdown: str) -> set[tuple[str, str]]:
    """(kind or "", dotted key) of each row of the configuration reference.

    The dotted key is read off the row's environment variable; rows under a
    `kind = "…"` heading belong to that kind.
    """
    found, kind = set(), ""
    for line in markdown.splitlines():
        if line.startswith("## "):
            kind = ""
        if match := re.match(r'^### `kind = "([\w-]+)"`', line):
            kind = match.group(1)
        if match := re.match(r"^#+ `\[([\w.]+)\]`", line):  # a table's heading
            found.add((kind, match.group(1)))
            found.add((kind, match.group(1).removesuffix(".NAME")))
        if match := re.match(r"^\| `[^`]+` \|.*\| `SYNC_([A-Z0-9_]+)` \|", line):
            found.add((kind, re.sub(r"^connectors\.name\.", "connectors.NAME.", _dotted(match[1]))))
    return found


def _dotted(variable: str) -> str:
    return variable.lower().replace("__", ".")


def _in_schema(node: dict[str, Any], parts: list[str], kind: str) -> bool:
    """Whether the schema describes the key `parts` (the connector's branch of `kind`)."""
    if not parts:
        return True
    for branches in ("oneOf", "anyOf"):
        for branch in node.get(branches, []):
            chosen = branch.get("properties", {}).get("kind", {}).get("enum")
            if (not kind or chosen in (None, [kind])) and _in_schema(branch, parts, kind):
                return True
    for rule in node.get("allOf", []):  # `if kind = K then {...}`: the connector's kinds
        chosen = rule.get("if", {}).get("properties", {}).get("kind", {}).get("const")
        if "then" in rule and chosen == kind and _in_schema(rule["then"], parts, kind):
            return True
    head, rest = parts[0], parts[1:]
    if head == "NAME" and "additionalProperties" in node:
        return _in_schema(node["additionalProperties"], rest, kind)
    child = node.get("properties", {}).get(head)
    return child is not None and _in_schema(child, rest, kind)


def _missing(markdown: str, sync_schema: dict[str, Any], keys: list[tuple[str, str]]) -> list[str]:
    documented = _documented_keys(markdown)
    missing = []
    for kind, key in keys:
        where = f"{key} (kind {kind})" if kind else key
        if (kind, key) not in documented:
            missing.append(f"{where}: not in the reference")
        if not _in_schema(sync_schema, key.split("."), kind):
            missing.append(f"{where}: not in the schema")
    return missing


def test_every_key_of_every_settings_model_and_connector_has_a_description() -> None:
    undocumented = [
        f"{kind or 'Settings'}: {key}" for kind, key, field in _every_key() if not field.description
    ]
    assert undocumented == []


def test_every_key_appears_in_the_reference_and_the_schema() -> None:
    keys = [(kind, key) for kind, key, _ in _every_key()]
    assert len(keys) > 200
    assert _missing(reference.config_reference(), schema.sync_toml_schema(), keys) == []


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    documented: int = 1
    """A key with a description."""
    forgotten: int = 2


class _ThrowawaySettings(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    newsection: _Section = _Section()
    """A section nobody documented in the reference."""


def test_the_checks_report_an_undocumented_key_and_a_key_the_reference_lacks() -> None:
    assert _undocumented(_ThrowawaySettings) == ["newsection.forgotten"]
    keys = [("", key) for key, _ in _dotted_keys(_ThrowawaySettings, "")]
    assert _missing(reference.config_reference(), schema.sync_toml_schema(), keys) == [
        f"{key}: not in {where}"
        for key in ("newsection", "newsection.documented", "newsection.forgotten")
        for where in ("the reference", "the schema")
    ]


def test_a_key_added_to_a_settings_model_is_generated_into_the_reference_and_the_schema() -> None:
    class Extended(FragmentSettings):
        brand_new: int = 3
        """A key added after the reference was written."""

    row = "| `brand_new` | integer | `3` | `SYNC_FRAGMENT__BRAND_NEW` | A key added after"
    assert row in reference.fields_table(Extended, table=("fragment",))
    assert schema.model_schema(Extended)["properties"]["brand_new"] == {
        "description": "A key added after the reference was written.",
        "type": "integer",
        "default": 3,
    }


def test_no_connector_option_is_shadowed_by_a_common_connector_key() -> None:
    common = set(ConnectorSettings.model_fields)
    shadowed = {kind: common & set(cls.Options.model_fields) for kind, cls in available().items()}
    assert {kind: names for kind, names in shadowed.items() if names} == {}


# The schema against real files


def _json_ready(value: Any) -> Any:
    """A TOML document as JSON sees it: editors hand TOML date-times to schemas as strings."""
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_ready(v) for v in value]
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return value


def _errors(document: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(json.loads(schema.SCHEMA_FILE.read_text()))
    return [error.message for error in validator.iter_errors(_json_ready(document))]


def _example(uncomment_blocks: bool = False) -> dict[str, Any]:
    """config.example.toml, with its commented connector blocks uncommented if asked.

    Below its "More connectors" banner, lines starting "# " are configuration.
    """
    lines = EXAMPLE.read_text().splitlines()
    banner = next(i for i, line in enumerate(lines) if line.startswith("## More connectors"))
    if uncomment_blocks:
        lines = [
            line[2:] if i > banner and line.startswith("# ") else line
            for i, line in enumerate(lines)
        ]
    return tomllib.loads("\n".join(lines))


def test_the_schema_is_valid_draft_7() -> None:
    jsonschema.Draft7Validator.check_schema(json.loads(schema.SCHEMA_FILE.read_text()))


def test_config_example_validates_against_the_schema_with_every_connector_block() -> None:
    assert _errors(_example()) == []
    every_block = _example(uncomment_blocks=True)
    kinds = {table["kind"] for table in every_block["connectors"].values()}
    assert kinds == set(available())
    assert _errors(every_block) == []


def test_config_example_points_editors_at_the_shipped_schema() -> None:
    directive = EXAMPLE.read_text().splitlines()[0]
    assert directive == "#:schema ./sync/sync-toml.schema.json"
    assert (EXAMPLE.parent / directive.split()[1]).resolve() == schema.SCHEMA_FILE


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (lambda d: d["fragment"].update(batchsize=5), "'batchsize' was unexpected"),
        (lambda d: d["fragment"].update(batch_size="many"), "'many' is not of type 'integer'"),
        (lambda d: d["fragment"].update(batch_size=5000), "5000 is greater than the maximum"),
        (lambda d: d["fragment"].update(timeout="soon"), "'soon' is not valid under any"),
        (lambda d: d["logging"].update(level="loud"), "'loud' is not one of"),
        (lambda d: d["connectors"]["helpdesk"].update(kind="nosuch"), "'nosuch' is not one of"),
    ],
)
def test_the_schema_rejects_what_the_loader_rejects(change: Any, error: str) -> None:
    document = _example()
    change(document)
    assert any(error in message for message in _errors(document)), _errors(document)


def test_a_key_of_another_connector_kind_is_rejected() -> None:
    document = _example()
    document["connectors"]["helpdesk"]["api_token"] = "${TOKEN}"  # a zendesk key, on jsonl
    validator = jsonschema.Draft7Validator(json.loads(schema.SCHEMA_FILE.read_text()))
    [error] = validator.iter_errors(document)
    assert list(error.absolute_path) == ["connectors", "helpdesk"]  # the table, then the key:
    assert error.message == "Additional properties are not allowed ('api_token' was unexpected)"


def test_durations_and_sizes_take_the_forms_the_loader_reads() -> None:
    document = _example()
    document["fragment"].update(timeout="1h30m", max_retry_wait=90, max_response_size="64MiB")
    document["locking"].update(lease_ttl="250ms", wait_timeout="2 m")
    assert _errors(document) == []


# The shipped file and the command


def test_the_shipped_schema_is_what_the_code_generates() -> None:
    assert schema.SCHEMA_FILE.read_text() == schema.schema_text(), (
        f"sync/sync-toml.schema.json is stale: regenerate it with `{schema.REGENERATE}`"
    )


def test_the_schema_is_package_data() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    package_data = pyproject["tool"]["setuptools"]["package-data"]["sync"]
    assert schema.SCHEMA_FILE.name in package_data


def test_config_schema_command_prints_the_shipped_schema() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sync", "config", "schema"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == json.loads(schema.SCHEMA_FILE.read_text())


# The environment variables the reference names


def test_the_variables_the_reference_names_set_their_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_file = tmp_path / "sync.toml"
    config_file.write_text(
        '[connectors.helpdesk]\nkind = "zendesk"\nsubdomain = "acme"\nemail = "a@acme.example"\n'
        'api_token = "from-the-file"\n\n'
        '[connectors.api]\nkind = "rest"\nbase_url = "https://api.example.com"\npath = "/t"\n'
        'auth = { type = "bearer", token = "from-the-file" }\n'
        'paginator = { type = "link_header" }\n'
    )
    markdown = reference.config_reference()
    for variable, value in [
        ("SYNC_FRAGMENT__BATCH_SIZE", "7"),
        ("SYNC_CONNECTORS__HELPDESK__API_TOKEN", "from-the-environment"),
        ("SYNC_CONNECTORS__HELPDESK__SCHEDULE__INTERVAL", "1m"),
        ("SYNC_CONNECTORS__API__AUTH__TOKEN", "bearer-from-the-environment"),
    ]:
        documented = re.sub(
            r"^SYNC_CONNECTORS__(HELPDESK|API)__", "SYNC_CONNECTORS__NAME__", variable
        )
        assert f"`{documented}`" in markdown
        monkeypatch.setenv(variable, value)

    config = load_config(config_file)

    helpdesk, api = config.connectors["helpdesk"], config.connectors["api"]
    assert config.fragment.batch_size == 7
    assert helpdesk.options.api_token.get_secret_value() == "from-the-environment"  # type: ignore[attr-defined]
    assert helpdesk.settings.schedule.interval == dt.timedelta(minutes=1)
    assert api.options.auth.token.get_secret_value() == "bearer-from-the-environment"  # type: ignore[attr-defined]


# The command-line reference


def test_the_cli_reference_has_every_command_and_argument() -> None:
    markdown = reference.cli_reference()
    parser = cli._parser()
    [commands] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for name, command in commands.choices.items():
        assert f"## `{name}`" in markdown
        for action in command._actions:
            for flag in action.option_strings:
                assert flag in markdown, f"{name} {flag}"
    for code, meaning in cli.EXIT_CODES.items():
        assert f"| {code} | {meaning} |" in markdown
    assert "| `--port PORT` |" in markdown  # the emulator's own flags


@pytest.mark.parametrize("server", ["fragment", "source"])
def test_a_retry_table_page_shows_every_answer_of_the_table_the_client_applies(
    server: str,
) -> None:
    from sync.ship_policy import RETRY_POLICY
    from sync_http.policy import SOURCE_POLICY

    policy = {"fragment": RETRY_POLICY, "source": SOURCE_POLICY}[server]
    rows = [line for line in reference.retry_policy(server).splitlines() if line.startswith("| ")]

    assert len(rows) == 2 + len(policy) + 2  # header, rule line, one per answer, the unlisted
    for (answer, rule), row in zip(policy.items(), rows[2:], strict=False):
        assert row.endswith(f" | {reference.ACTION_WORDS[rule.action]} | {rule.meaning} |")
        if isinstance(answer, int):
            assert row.startswith(f"| {answer} |")


def test_the_failed_item_table_shows_each_rule_and_where_it_starts() -> None:
    from sync.failures import FAILED_ITEM_POLICY

    text = reference.failed_item_policy()

    for since, rule in FAILED_ITEM_POLICY.items():
        assert rule.meaning in text
        if since:
            assert schema.duration_text(since) in text


def test_the_capabilities_table_says_yes_only_where_the_connector_implements_it() -> None:
    table = reference.connector_capabilities()
    rows = {
        row.split("|")[1].strip(): [cell.strip() for cell in row.split("|")[2:-1]]
        for row in table.splitlines()[2:]
    }

    assert len(rows) == len(available())
    for kind, cls in available().items():
        census, people, conversation, writes = rows[f"[`{kind}`]({kind}.md)"]
        assert (census == "yes") == (cls.scope_ids is not Connector.scope_ids), kind
        assert (people == "yes") == (cls.people is not Connector.people), kind
        assert (conversation == "no") == (cls.comments is None), kind
        assert (writes == "no") == (cls.write is Connector.write), kind
    # Redmine's deletions vanish, so it takes a census; Zendesk's export reports them.
    assert rows["[`redmine`](redmine.md)"][0] == "yes"
    assert rows["[`zendesk`](zendesk.md)"][0] == "no"
    assert rows["[`redmine`](redmine.md)"][3] == "assignee, status"
