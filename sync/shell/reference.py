"""Reference text generated from the code, for the documentation site (docs/hooks.py).

Each function returns Markdown; the docs include it at build time, so a key, a default
mapping or a command documented there is the one the code has. The keys, their TOML
types and defaults come from `sync.shell.schema`, the commands from the CLI's parser.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any, get_args

from pydantic import BaseModel

from connectors.base import Connector
from connectors.registry import available, connector_class
from sync.config import Settings
from sync.failures import FAILED_ITEM_POLICY
from sync.shell import cli
from sync.shell.schema import (
    Key,
    common_connector_keys,
    duration_text,
    environment_variable,
    keys,
    kind_keys,
    sections,
    toml_value,
)
from sync_http.policy import SOURCE_POLICY, Action

CONNECTOR = ("connectors", "NAME")
"""The dotted key of a connector's table, NAME standing for the connector's name."""


def default_mapping(kind: str) -> str:
    """A connector's default mapping, as the TOML a user would write to get it."""
    mapping = connector_class(kind).default_mapping
    if not mapping:
        return (
            f"The `{kind}` connector has no mapping of its own, since its records' fields "
            "are yours: write one. Keys you leave out take the "
            "[mapping](../configuration/mapping.md)'s defaults (a title of "
            "`Ticket {source_id}`, status `TODO`).\n"
        )
    lines = ["```toml", f"[connectors.NAME.mapping]  # kind = {_toml(kind)}"]
    tables = {key: value for key, value in mapping.items() if isinstance(value, dict)}
    lines += [f"{key} = {_toml(value)}" for key, value in mapping.items() if key not in tables]
    for key, table in tables.items():
        lines += ["", f"[connectors.NAME.mapping.{key}]"]
        lines += [f"{_toml_key(name)} = {_toml(value)}" for name, value in table.items()]
    return "\n".join([*lines, "```", ""])


def connector_capabilities() -> str:
    """What each installed connector can do beyond reading tickets, read off its class.

    A census (`scope_ids`), people (`people`), the conversation (`comments`), write-back
    (`writes`): a table a reader can trust, since a connector gains a column's yes only
    by implementing it.
    """
    rows = [
        "| kind | census | people lookup | conversation | write-back |",
        "| --- | --- | --- | --- | --- |",
    ]
    comments = {"listing": "with the tickets", "requests": "extra requests", None: "no"}
    for kind, cls in available().items():
        census = "yes" if cls.scope_ids is not Connector.scope_ids else "no"
        people = "yes" if cls.people is not Connector.people else "no"
        page = f"[`{kind}`]({kind}.md)" if kind in _DOCUMENTED_KINDS else f"`{kind}`"
        writes = ", ".join(sorted(cls.writes)) or "no"
        rows.append(f"| {page} | {census} | {people} | {comments[cls.comments]} | {writes} |")
    return "\n".join([*rows, ""])


_DOCUMENTED_KINDS = frozenset({"csv", "freshdesk", "github", "jira", "jsonl", "redmine"}) | {
    "gitlab", "hubspot", "intercom", "linear", "rest", "salesforce", "servicenow", "sql",
    "zendesk",
}  # fmt: skip
"""The kinds with a page of their own beside the connectors' index (a plugin has none)."""


def connector_options(kind: str) -> str:
    """The keys of a connector's own options, one table row each, then its nested tables."""
    return _tables(kind_keys(kind), CONNECTOR, level=4)


def fields_table(model: type[BaseModel], prefix: str = "", table: Sequence[str] = ()) -> str:
    """A Markdown table of `model`'s keys: key, type, default, environment variable, description.

    `prefix` goes before each key's name; `table` is the dotted key of the model's table
    (`("fragment",)`), which names the environment variables.
    """
    return _rows(keys(model), table, prefix)


def config_reference() -> str:
    """Every key of sync.toml: the top-level tables, a connector's common keys, each kind's."""
    parts = []
    for name, key, model in sections():
        parts += [f"## `[{name}]`", "", key.description, "", fields_table(model, table=(name,))]
    connector = next(key for key in keys(Settings) if key.name == "connectors")
    parts += [
        "## `[connectors.NAME]`",
        "",
        f"{connector.description} The keys every connector takes, whatever its `kind`; the "
        "kind's own keys (below) go in the same table.",
        "",
        _tables(common_connector_keys(), CONNECTOR, level=3),
        "## Connector kinds",
        "",
        "Each kind's own keys, beside the common ones in its `[connectors.NAME]` table. "
        "`python -m sync connectors` lists the installed kinds.",
        "",
    ]
    for kind, cls in available().items():
        parts += [f'### `kind = "{kind}"`', "", f"{cls.summary[:1].upper()}{cls.summary[1:]}."]
        parts += ["", connector_options(kind)]
    return "\n".join(parts)


def cli_reference() -> str:
    """Every command of `python -m sync`, its arguments and their help, then the exit codes."""
    parser = cli._parser()
    parts = [f"`python -m sync` and the `{parser.prog}` script are the same command line."]
    parts += ["", "| command | what it does |", "| --- | --- |"]
    commands = _commands(parser)
    parts += [f"| [`{name}`](#{name}) | {_cell(help_)} |" for name, (_, help_) in commands.items()]
    parts.append("")
    for name, (command, help_) in commands.items():
        if name == "emulator":  # its own parser: `python -m sync emulator` hands it the flags
            from fragment_emulator.__main__ import build_parser

            command = build_parser("python -m sync emulator")
            command.prog = f"{parser.prog} emulator"
        parts += [f"## `{name}`", "", f"{help_[:1].upper()}{help_[1:]}.", ""]
        parts += ["```text", _usage(command), "```", "", _arguments(command)]
    parts += ["## Exit codes", "", "| code | meaning |", "| --- | --- |"]
    parts += [f"| {code} | {_cell(meaning)} |" for code, meaning in cli.EXIT_CODES.items()]
    return "\n".join([*parts, ""])


def _tables(table_keys: list[Key], table: Sequence[str], level: int) -> str:
    """The rows of `table_keys`, then a section for each key whose value is a table."""
    parts = [_rows(table_keys, table)]
    for key in table_keys:
        models = key.tables()
        dotted = ".".join((*table, key.name))
        for model in models:
            title = f"`[{dotted}]`"
            chosen = model.model_fields.get("type")
            if len(models) > 1 and chosen is not None:
                title += f" with `type = {json.dumps(_choice(chosen.annotation))}`"
            parts += [f"{'#' * level} {title}", ""]
            if len(models) == 1 and key.description:
                parts += [key.description, ""]
            parts.append(_tables(keys(model), (*table, key.name), level + 1))
    return "\n".join(parts)


def _rows(table_keys: list[Key], table: Sequence[str], prefix: str = "") -> str:
    rows = [
        "| key | type | default | environment variable | description |",
        "| --- | --- | --- | --- | --- |",
    ]
    for key in table_keys:
        default = key.default()
        if key.required:
            shown = "required"
        elif key.filled_by:
            shown = f"required, or set `{key.filled_by}`"
        elif default is None or default == "":
            shown = "" if default is None else '`""`'
        else:
            shown = f"`{_toml(default)}`"
        variable = environment_variable(*table, key.name)
        rows.append(
            f"| `{prefix}{key.name}` | {_cell(key.toml_type())} | {shown} | `{variable}` "
            f"| {_cell(key.description)} |"
        )
    return "\n".join([*rows, ""])


def _commands(parser: argparse.ArgumentParser) -> dict[str, tuple[argparse.ArgumentParser, str]]:
    """The subcommands of `parser`: name, its parser and its one-line help."""
    found: dict[str, tuple[argparse.ArgumentParser, str]] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            for name, command in action.choices.items():
                found[name] = (command, helps.get(name, ""))
    return found


def _usage(command: argparse.ArgumentParser) -> str:
    """The usage line, wrapped at a fixed width whatever the terminal's."""
    formatter = argparse.HelpFormatter(command.prog, width=88)
    formatter.add_usage(command.usage, command._actions, command._mutually_exclusive_groups)
    return formatter.format_help().strip()


def _arguments(command: argparse.ArgumentParser) -> str:
    rows = ["| argument | what it does | default |", "| --- | --- | --- |"]
    for action in command._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        metavar = action.metavar if isinstance(action.metavar, str) else action.dest.upper()
        if action.option_strings:
            name = ", ".join(action.option_strings)
            if action.nargs != 0:
                name += f" {metavar}"
        else:
            name = metavar
        help_ = action.help or ""
        if action.choices is not None and not help_:
            help_ = f"one of {', '.join(map(str, action.choices))}"
        default = action.default
        shown = "" if default is None or default is False else f"`{default}`"
        rows.append(f"| `{name}` | {_cell(help_)} | {shown} |")
    return "\n".join([*rows, ""]) if len(rows) > 2 else "No arguments.\n"


def _choice(annotation: Any) -> Any:
    return get_args(annotation)[0]


def _cell(text: str) -> str:
    """`text` for a Markdown table cell: one line, its pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def _toml(value: Any) -> str:
    value = toml_value(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "(unset)"
    if isinstance(value, dict):
        inner = ", ".join(f"{_toml_key(key)} = {_toml(item)}" for key, item in value.items())
        return "{ " + inner + " }" if inner else "{}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(str(value), ensure_ascii=False)


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)


ACTION_WORDS = {
    Action.ACCEPT: "accepted",
    Action.RETRY: "retried, backing off",
    Action.RATE_LIMITED: "waits for the rate limit, then sends again",
    Action.REJECT: "the items are refused: the bad ones are set aside, the rest sent again",
    Action.FAIL_AUTH: "the pass fails: the credentials must be fixed",
    Action.FAIL: "the pass fails, its checkpoint intact",
}
"""What each action of a retry table means to the user reading it."""


def retry_policy(server: str) -> str:
    """A retry table as the client applies it: `fragment` (RETRY_POLICY) or `source`."""
    from sync.ship_policy import RETRY_POLICY  # loads httpx: only for the page that asks

    policy = {"fragment": RETRY_POLICY, "source": SOURCE_POLICY}[server]
    rows = ["| answer | what happens | meaning |", "| --- | --- | --- |"]
    for answer, rule in policy.items():
        shown = str(answer) if isinstance(answer, int) else _exception_words(answer)
        rows.append(f"| {shown} | {ACTION_WORDS[rule.action]} | {rule.meaning} |")
    rows.append("| any other 5xx | retried, backing off | server error |")
    rows.append("| any other status (3xx, 4xx) | the pass fails, its checkpoint intact | |")
    if server == "source":
        rows += [
            "",
            "Before this table is read, a 400 or 403 that says it is a rate limit (a",
            "`Retry-After`, an `X-RateLimit-Remaining` of 0, a body saying so) waits like a 429.",
        ]
    return "\n".join([*rows, ""])


def failed_item_policy() -> str:
    """When a failed item is tried again (`FAILED_ITEM_POLICY`), one row per rule."""
    limits = sorted(FAILED_ITEM_POLICY)
    rows = ["| failing for | tried again |", "| --- | --- |"]
    for since, until in zip(limits, [*limits[1:], None], strict=True):
        if until is None:
            span = f"{duration_text(since)} or more"
        elif since:
            span = f"{duration_text(since)} to {duration_text(until)}"
        else:
            span = f"under {duration_text(until)}"
        rows.append(f"| {span} | {FAILED_ITEM_POLICY[since].meaning} |")
    return "\n".join([*rows, ""])


def _exception_words(kind: type[Exception]) -> str:
    """An exception type as an answer: a timeout, a dropped connection, an oversized answer."""
    words = {
        "TimeoutException": "a timeout",
        "TransportError": "a failed or dropped connection",
        "ResponseTooLarge": "an answer larger than `max_response_size`",
        "TokenEndpointFailed": "the OAuth token endpoint failing",
        "TokenRefused": "the OAuth token endpoint refusing the credentials",
    }
    return words.get(kind.__name__, f"`{kind.__name__}`")
