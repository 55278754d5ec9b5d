"""A small, strict GraphQL parser: one operation of fields, arguments, aliases and variables.

Enough for the documents the app sends; fragments, directives and subscriptions are refused.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

TOKEN = re.compile(
    r"""(?P<skip>[\s,\ufeff]+|\#[^\n]*)
      |(?P<string>"(?:[^"\\\n]|\\.)*")
      |(?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
      |(?P<name>[_A-Za-z][_0-9A-Za-z]*)
      |(?P<punct>\.\.\.|[!$():=@\[\]{}|&])""",
    re.VERBOSE,
)


class GraphQLError(Exception):
    """A document GitHub would refuse; the message becomes `errors[].message`."""


@dataclass(frozen=True)
class Variable:
    name: str


@dataclass
class Field:
    name: str
    alias: str | None = None
    arguments: dict[str, Any] = field(default_factory=dict)
    selections: list[Field] | None = None

    @property
    def key(self) -> str:
        return self.alias or self.name


@dataclass
class Operation:
    kind: str
    """`query` or `mutation`."""
    variables: dict[str, tuple[str, Any]]
    """Declared variables: name → (type as written, default value)."""
    selections: list[Field]


def tokenize(text: str) -> list[tuple[str, str, int]]:
    """(kind, text, offset) of every significant token."""
    tokens, offset = [], 0
    while offset < len(text):
        match = TOKEN.match(text, offset)
        if match is None:
            raise GraphQLError(f"Parse error on {text[offset]!r} at offset {offset}")
        kind = match.lastgroup or "skip"
        if kind != "skip":
            tokens.append((kind, match.group(), offset))
        offset = match.end()
    return tokens


class Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.index = 0

    def peek(self) -> str | None:
        return self.tokens[self.index][1] if self.index < len(self.tokens) else None

    def take(self, expected: str | None = None, kind: str | None = None) -> str:
        if self.index >= len(self.tokens):
            raise GraphQLError("Parse error on end of document: unexpected end of document")
        token_kind, text, offset = self.tokens[self.index]
        if (expected is not None and text != expected) or (kind is not None and token_kind != kind):
            wanted = expected or kind
            raise GraphQLError(f"Parse error on {text!r} at offset {offset}: expected {wanted}")
        self.index += 1
        return text

    def document(self) -> Operation:
        operation = self.operation()
        if self.peek() is not None:
            raise GraphQLError("This emulator accepts one operation per document")
        return operation

    def operation(self) -> Operation:
        if self.peek() == "{":
            return Operation("query", {}, self.selection_set())
        kind = self.take(kind="name")
        if kind not in ("query", "mutation"):
            raise GraphQLError(f"Parse error on {kind!r}: expected query or mutation")
        if self.peek() not in ("(", "{"):
            self.take(kind="name")
        variables = self.variable_definitions() if self.peek() == "(" else {}
        return Operation(kind, variables, self.selection_set())

    def variable_definitions(self) -> dict[str, tuple[str, Any]]:
        self.take("(")
        variables: dict[str, tuple[str, Any]] = {}
        while self.peek() != ")":
            self.take("$")
            name = self.take(kind="name")
            self.take(":")
            written = self.type_reference()
            default = None
            if self.peek() == "=":
                self.take("=")
                default = self.value()
            variables[name] = (written, default)
        self.take(")")
        return variables

    def type_reference(self) -> str:
        if self.peek() == "[":
            self.take("[")
            written = f"[{self.type_reference()}]"
            self.take("]")
        else:
            written = self.take(kind="name")
        if self.peek() == "!":
            self.take("!")
            written += "!"
        return written

    def selection_set(self) -> list[Field]:
        self.take("{")
        selections = []
        while self.peek() != "}":
            if self.peek() in ("...", "@"):
                raise GraphQLError("Fragments and directives are not supported by this emulator")
            selections.append(self.field())
        self.take("}")
        if not selections:
            raise GraphQLError("Parse error on '}': a selection set may not be empty")
        return selections

    def field(self) -> Field:
        name, alias = self.take(kind="name"), None
        if self.peek() == ":":
            self.take(":")
            alias, name = name, self.take(kind="name")
        arguments = self.arguments() if self.peek() == "(" else {}
        selections = self.selection_set() if self.peek() == "{" else None
        return Field(name, alias, arguments, selections)

    def arguments(self) -> dict[str, Any]:
        self.take("(")
        arguments = {}
        while self.peek() != ")":
            name = self.take(kind="name")
            self.take(":")
            arguments[name] = self.value()
        self.take(")")
        return arguments

    def value(self) -> Any:
        token = self.peek()
        if token == "$":
            self.take("$")
            return Variable(self.take(kind="name"))
        if token == "{":
            self.take("{")
            fields = {}
            while self.peek() != "}":
                name = self.take(kind="name")
                self.take(":")
                fields[name] = self.value()
            self.take("}")
            return fields
        if token == "[":
            self.take("[")
            items = []
            while self.peek() != "]":
                items.append(self.value())
            self.take("]")
            return items
        kind = self.tokens[self.index][0] if token is not None else "end"
        text = self.take()
        if kind in ("string", "number"):
            return json.loads(text)
        return {"true": True, "false": False, "null": None}.get(text, text)


def parse(text: str) -> Operation:
    return Parser(text).document()


def substitute(value: Any, variables: dict[str, Any], declared: dict[str, tuple[str, Any]]) -> Any:
    """An argument value with its variables replaced by the request's (or declared defaults)."""
    if isinstance(value, Variable):
        if value.name not in declared:
            raise GraphQLError(f"Variable ${value.name} is used but not declared")
        written, default = declared[value.name]
        found = variables.get(value.name, default)
        if found is None and written.endswith("!"):
            raise GraphQLError(
                f"Variable ${value.name} of type {written} was provided invalid value"
            )
        return found
    if isinstance(value, dict):
        return {key: substitute(item, variables, declared) for key, item in value.items()}
    if isinstance(value, list):
        return [substitute(item, variables, declared) for item in value]
    return value
