"""Mapping paths: how a mapping names a value inside a ticket's raw record.

Owns the path syntax of `[connectors.NAME.mapping]` keys and template
placeholders, parsed once into a `MappingPath` whose `read` runs per ticket:

- a dotted path, `requester.email`, `tags.0` (`connectors.records.FieldPath`'s rules);
- a list element chosen by a key, `custom_fields[name=Severity].value`;
- a default after `|`, a JSON value standing in when the path leads nowhere, to
  null or to empty text: `custom_fields[name=Severity].value | "none"`;
- a JMESPath expression after `jmespath:`, for anything richer.

It reads records only: turning values into task values is `sync.mapping`'s job.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from connectors.records import MISSING, FieldPath

JMESPATH_PREFIX = "jmespath:"
"""What starts a JMESPath expression in place of a path."""

Read = Callable[[Any], Any]
"""A path's reader: the value at that path in a record, or `MISSING`."""


class PathNotReadable(Exception):
    """A record the path can't be read from: its selector matched no element, or its
    JMESPath expression failed on the record's types. The mapping fails that ticket."""


@dataclass(frozen=True)
class MappingPath:
    """A mapping path parsed once, to read from many records."""

    path: str
    """The path as the configuration writes it."""
    read: Read
    """The value at the path in a record, `MISSING` when absent (never with a default); raises
    `PathNotReadable` when `may_fail`."""
    may_fail: bool
    """Whether `read` can raise `PathNotReadable`: a selector without a default, or JMESPath."""


def parse_path(text: str) -> MappingPath:
    """`text` parsed into a reader; raises `ValueError` saying what is wrong with its syntax."""
    if text.startswith(JMESPATH_PREFIX):
        return _jmespath(text)
    body, default = _split_default(text)
    # Spaces around `|` are layout; without a default the text is a key as written.
    steps = _steps(body if default is MISSING else body.strip())
    if len(steps) == 1 and isinstance(steps[0], FieldPath):
        read: Read = steps[0].read  # a plain dotted path: FieldPath's reader, untouched
        may_fail = False
    else:
        read, may_fail = _chain(steps), True
    if default is not MISSING:
        read, may_fail = _with_default(read, default), False
    return MappingPath(text, read, may_fail)


class _Selector:
    """`[key=value]`: the first element of a list whose `key` is `value` (compared as text)."""

    __slots__ = ("_key", "_value", "where")

    def __init__(self, key: str, value: str, where: str) -> None:
        self._key = FieldPath(key)
        self._value = value
        self.where = where  # the path up to and including this selector, for messages

    def __call__(self, node: Any) -> Any:
        if isinstance(node, Sequence) and not isinstance(node, str | bytes):
            for element in node:
                found = self._key.read(element)
                if found == self._value or (
                    isinstance(found, int | float)
                    and not isinstance(found, bool)
                    and str(found) == self._value
                ):
                    return element
        raise PathNotReadable(
            f"no element matches {self.where!r} (a default after '|' would stand in: | null)"
        )


Step = FieldPath | _Selector


def _chain(steps: Sequence[Step]) -> Read:
    readers: tuple[Read, ...] = tuple(
        step.read if isinstance(step, FieldPath) else step for step in steps
    )

    def read(record: Any) -> Any:
        # No early return on MISSING: a selector after an absent list fails like one
        # matching nothing, and a dotted path reads MISSING from MISSING.
        node = record
        for reader in readers:
            node = reader(node)
        return node

    return read


def _with_default(read: Read, default: Any) -> Read:
    def read_or_default(record: Any) -> Any:
        try:
            value = read(record)
        except PathNotReadable:
            return default
        return default if value is MISSING or value is None or value == "" else value

    return read_or_default


def _jmespath(text: str) -> MappingPath:
    # Imported here: only a mapping that uses JMESPath pays for it (19 ms of every
    # command's start-up otherwise: python -X importtime).
    import jmespath
    import jmespath.exceptions

    source = text[len(JMESPATH_PREFIX) :].strip()
    if not source:
        raise ValueError("empty JMESPath expression after 'jmespath:'")
    try:
        expression = jmespath.compile(source)
    except jmespath.exceptions.JMESPathError as exc:
        raise ValueError(f"invalid JMESPath expression {source!r}: {_one_line(exc)}") from None

    def read(record: Any) -> Any:
        try:
            return expression.search(record)
        except jmespath.exceptions.JMESPathError as exc:
            raise PathNotReadable(f"JMESPath {source!r}: {_one_line(exc)}") from None

    return MappingPath(text, read, True)


def _split_default(text: str) -> tuple[str, Any]:
    """The path and its default (`MISSING` for none): what follows the first `|` outside
    brackets, as JSON."""
    depth = 0
    index = -1
    while index + 1 < len(text):
        index += 1
        char = text[index]
        if char == '"' and depth:
            index = _after_string(text, index) - 1
        elif char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        elif char == "|" and not depth:
            literal = text[index + 1 :].strip()
            try:
                return text[:index], json.loads(literal)
            except ValueError:
                raise ValueError(
                    f'default {literal!r} is not a JSON value (write text quoted: "none")'
                ) from None
    return text, MISSING


def _steps(path: str) -> list[Step]:
    """`path` as dotted paths and selectors, in the order they are read."""
    if not path:
        raise ValueError("empty path")
    steps: list[Step] = []
    rest = path
    while rest:
        start = _selector_start(rest)
        if start < 0:
            steps.append(FieldPath(rest))
            break
        if start:
            steps.append(FieldPath(rest[:start]))
        end = _selector_end(rest, start)
        key, value = _selector_terms(rest[start + 1 : end])
        consumed = len(path) - len(rest) + end + 1
        steps.append(_Selector(key, value, path[:consumed]))
        rest = rest[end + 1 :]
        if rest.startswith("."):
            rest = rest[1:]
            if not rest:
                raise ValueError(f"{path!r} ends with a dot")
        elif rest and not rest.startswith("["):
            raise ValueError(f"{path!r}: expected '.' or '[' after a selector, got {rest[0]!r}")
    return steps


def _selector_start(text: str) -> int:
    """Where the first selector of `text` starts: a `[` whose brackets hold an `=`.

    Other brackets are part of a key (a CSV column `Amount [EUR]`), as they always were.
    """
    start = text.find("[")
    while start >= 0:
        end = text.find("]", start)
        if end < 0:
            if "=" in text[start:]:
                raise ValueError(f"{text!r}: '[' without a closing ']'")
            return -1  # a lone `[` is part of a key
        if "=" in text[start:end]:
            return start
        start = text.find("[", end)
    return -1


def _selector_end(text: str, start: int) -> int:
    index = start + 1
    while index < len(text):
        if text[index] == '"':
            index = _after_string(text, index)
        elif text[index] == "]":
            return index
        else:
            index += 1
    raise ValueError(f"{text!r}: '[' without a closing ']'")


def _after_string(text: str, start: int) -> int:
    """The index just past the JSON string that opens at `text[start]`."""
    try:
        return json.decoder.scanstring(text, start + 1)[1]  # type: ignore[attr-defined,no-any-return]
    except ValueError:
        raise ValueError(f"{text!r}: a quoted string without its closing quote") from None


def _selector_terms(inside: str) -> tuple[str, str]:
    """The key and the value of a selector's `key=value`; the value may be JSON-quoted."""
    key, _, value = inside.partition("=")
    key, value = key.strip(), value.strip()
    if not key:
        raise ValueError(f"selector [{inside}] names no key (write [name=Severity])")
    if not value:
        raise ValueError(f'selector [{inside}] has no value (write [{key}=""] for empty text)')
    if not value.startswith('"'):
        return key, value
    try:
        text = json.loads(value)
    except ValueError:
        raise ValueError(f"selector [{inside}]: {value} is not a quoted string") from None
    if not isinstance(text, str):
        raise ValueError(f"selector [{inside}]: {value} is not a quoted string")
    return key, text


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())
