"""The troubleshooting page quotes messages the code really prints.

docs/operations/troubleshooting.md is keyed by error messages: each heading quotes one
in a code span, with `{...}` for the parts filled in at run time. A message reworded in
the code would leave the page pointing at text nobody sees any more, so every quoted
message must still occur in the string literals of the code under `sync/`,
`connectors/` and `sync_http/`: implicitly concatenated literals are read as one, and
an f-string's replacement fields are holes that only a `{...}` of the quote may span.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "operations" / "troubleshooting.md"
SOURCES = ("sync", "connectors", "sync_http")
HOLE = "\x00"
"""Stands for an f-string's replacement field in the literal's text."""
PLACEHOLDER = "{...}"
HEADING = re.compile(r"^#{2,6} (.+)$", re.MULTILINE)
CODE_SPAN = re.compile(r"`([^`]+)`")


def quoted_messages(markdown: str) -> list[str]:
    """The code spans of the page's headings: each is a message as the code prints it."""
    return [span for heading in HEADING.findall(markdown) for span in CODE_SPAN.findall(heading)]


def literal_texts(tree: ast.AST) -> Iterator[str]:
    """The text of every string (or bytes) literal in `tree`, an f-string's fields as `HOLE`.

    Bytes count: the daemon's endpoint answers with bytes literals.
    """
    in_fstrings: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            parts = []
            for value in node.values:
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    parts.append(value.value)
                    in_fstrings.add(id(value))
                else:
                    parts.append(HOLE)
            yield "".join(parts)
        elif isinstance(node, ast.Constant) and id(node) not in in_fstrings:
            if isinstance(node.value, str):
                yield node.value
            elif isinstance(node.value, bytes):
                yield node.value.decode("utf-8", "replace")


@cache
def code_literals() -> tuple[str, ...]:
    """Every string literal of the code a user's messages come from."""
    texts: list[str] = []
    for package in SOURCES:
        for path in sorted((ROOT / package).rglob("*.py")):
            texts.extend(literal_texts(ast.parse(path.read_text(encoding="utf-8"))))
    return tuple(texts)


def message_pattern(message: str) -> re.Pattern[str]:
    """`message` as a regular expression: its text literally, each `{...}` as anything."""
    return re.compile(".*?".join(re.escape(chunk) for chunk in message.split(PLACEHOLDER)), re.S)


def occurs_in_code(message: str) -> bool:
    """Whether `message` matches within one string literal of the code."""
    pattern = message_pattern(message)
    return any(pattern.search(text) for text in code_literals())


MESSAGES = quoted_messages(PAGE.read_text(encoding="utf-8"))


def test_the_page_quotes_messages() -> None:
    assert len(MESSAGES) >= 20, "the headings of troubleshooting.md should quote the messages"


@pytest.mark.parametrize("message", MESSAGES)
def test_every_quoted_message_occurs_in_the_code(message: str) -> None:
    assert occurs_in_code(message), (
        f"troubleshooting.md quotes {message!r}, which no string literal under "
        f"{', '.join(SOURCES)} holds: update the page to the message the code prints"
    )


@pytest.mark.parametrize(
    "invented",
    [
        "the frobnicator is out of {...}",
        "the token is missing or expired (fragment.token)",
        "no connector called {...}",
    ],
)
def test_a_message_the_code_does_not_print_is_caught(invented: str) -> None:
    assert not occurs_in_code(invented)


def test_a_placeholder_stands_for_a_replacement_field() -> None:
    # `f"no connector named {name!r} in {config.source}"` in sync/shell/cli.py
    assert occurs_in_code("no connector named {...} in {...}")
    # Literals concatenated across lines read as one.
    assert occurs_in_code("not set: put Fragment's API token in the environment (FRAGMENT_TOKEN,")
