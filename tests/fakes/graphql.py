"""Reading GraphQL queries, for the fakes that serve a GraphQL API (GitHub's `/graphql`).

A small parser of the query language's executable subset the connectors send: an
operation with variable definitions, fields with aliases, arguments (variables,
numbers, strings, enums, lists, input objects) and selection sets. No fragments,
no directives: a fake that meets one answers a syntax error, as a server would
for what it can't parse. Each fake executes the `Field` tree against its data.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

_TOKEN = re.compile(
    r'\s+|,|#[^\n]*|(?P<tok>\.\.\.|[!$():=@\[\]{}|]|-?\d+(?:\.\d+)?|"(?:[^"\\]|\\.)*"'
    r"|[_A-Za-z][_0-9A-Za-z]*)"
)


class QueryError(Exception):
    """A query the fake can't read: a GraphQL syntax error, answered as GitHub does."""


@dataclass(frozen=True)
class Enum:
    """An enum value written bare in the query (`CREATED_AT`, `OPEN`)."""

    name: str


@dataclass
class Field:
    name: str
    alias: str | None = None
    args: dict[str, Any] = field(default_factory=dict)
    selections: list[Field] = field(default_factory=list)

    @property
    def key(self) -> str:
        """The key of this field in the answer's `data`."""
        return self.alias or self.name


def parse(query: str, variables: dict[str, Any]) -> list[Field]:
    """The top-level fields of the query's one operation, with variables put in place."""
    tokens = _tokens(query)
    reader = _Reader(tokens, variables)
    return reader.document()


def _tokens(query: str) -> list[str]:
    tokens, position = [], 0
    while position < len(query):
        match = _TOKEN.match(query, position)
        if match is None:
            raise QueryError(f"Parse error on {query[position : position + 10]!r}")
        if match["tok"]:
            tokens.append(match["tok"])
        position = match.end()
    return tokens


class _Reader:
    def __init__(self, tokens: list[str], variables: dict[str, Any]) -> None:
        self.tokens, self.at, self.variables = tokens, 0, variables

    def peek(self) -> str | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise QueryError(f"Parse error on {token!r} (expected {expected or 'more'})")
        self.at += 1
        return token

    def document(self) -> list[Field]:
        if self.peek() == "query":
            self.take()
            if self.peek() not in ("(", "{"):
                self.take()  # the operation's name
            if self.peek() == "(":
                self.variable_definitions()
        fields = self.selection_set()
        if self.peek() is not None:
            raise QueryError(f"Parse error on {self.peek()!r}: one operation only")
        return fields

    def variable_definitions(self) -> None:
        self.take("(")
        while self.peek() != ")":
            self.take("$")
            name = self.take()
            self.take(":")
            self.type_reference()
            if self.peek() == "=":
                self.take()
                default = self.value()
                self.variables.setdefault(name, default)
        self.take(")")

    def type_reference(self) -> None:
        if self.peek() == "[":
            self.take()
            self.type_reference()
            self.take("]")
        else:
            self.take()
        if self.peek() == "!":
            self.take()

    def selection_set(self) -> list[Field]:
        self.take("{")
        fields = []
        while self.peek() != "}":
            fields.append(self.field())
        self.take("}")
        return fields

    def field(self) -> Field:
        name = self.take()
        alias = None
        if self.peek() == ":":
            self.take()
            alias, name = name, self.take()
        args: dict[str, Any] = {}
        if self.peek() == "(":
            self.take()
            while self.peek() != ")":
                key = self.take()
                self.take(":")
                args[key] = self.value()
            self.take(")")
        selections = self.selection_set() if self.peek() == "{" else []
        return Field(name, alias, args, selections)

    def value(self) -> Any:
        token = self.take()
        if token == "$":
            return self.variables.get(self.take())
        if token == "[":
            items = []
            while self.peek() != "]":
                items.append(self.value())
            self.take("]")
            return items
        if token == "{":
            entries = {}
            while self.peek() != "}":
                key = self.take()
                self.take(":")
                entries[key] = self.value()
            self.take("}")
            return entries
        if token.startswith('"'):
            return json.loads(token)
        if token in ("true", "false"):
            return token == "true"
        if token == "null":
            return None
        if re.fullmatch(r"-?\d+", token):
            return int(token)
        if re.fullmatch(r"-?\d+\.\d+", token):
            return float(token)
        return Enum(token)
