"""The JSON-schema facts the constrained decoder needs: what it supports, `$ref` resolution, number grids."""

from __future__ import annotations

import math
import os
from typing import Any

from pixplan.graph.local.chat_format import format_json


class UnsupportedSchema(ValueError):
    """A JSON schema construct the constrained decoder does not handle (the caller falls back to re-asking)."""


_UNSUPPORTED_KEYS = ("pattern", "patternProperties", "prefixItems", "not", "if", "uniqueItems", "multipleOf")


def check_schema(
    schema: dict[str, Any], defs: dict[str, Any] | None = None, _seen: frozenset = frozenset()
) -> None:
    """Raise `UnsupportedSchema` if the decoder cannot guarantee a valid value for `schema`."""
    defs = schema.get("$defs", {}) if defs is None else defs
    if "$ref" in schema:
        ref = schema["$ref"]
        if ref in _seen:
            raise UnsupportedSchema(f"recursive schema {ref}")
        check_schema(resolve(schema, defs), defs, _seen | {ref})
        return
    for key in _UNSUPPORTED_KEYS:
        if key in schema:
            raise UnsupportedSchema(f"schema keyword {key!r}")
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(key, []):
            check_schema(sub, defs, _seen)
    for sub in schema.get("properties", {}).values():
        check_schema(sub, defs, _seen)
    if isinstance(schema.get("items"), dict):
        check_schema(schema["items"], defs, _seen)


def decodable(schema: dict[str, Any]) -> bool:
    try:
        check_schema(schema)
    except UnsupportedSchema:
        return False
    return True


def resolve(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """`schema` with its ``$ref`` (and a single ``allOf``) replaced by what it points to."""
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        schema = {**defs[name], **rest}
    if "allOf" in schema and len(schema["allOf"]) == 1:
        rest = {k: v for k, v in schema.items() if k != "allOf"}
        schema = {**resolve(schema["allOf"][0], defs), **rest}
    return schema


def opener(schema: dict[str, Any], defs: dict[str, Any]) -> str:
    """The text a value of `schema` starts with, enough to tell ``anyOf`` branches apart.

    Objects whose first property is a constant (a discriminator such as ``"type"``) open with it; values
    without a fixed opening (numbers, booleans) are represented by a typical first character.
    """
    if "const" in schema:
        return format_json(schema["const"])
    if "enum" in schema and len(schema["enum"]) == 1:
        return format_json(schema["enum"][0])
    branches = schema.get("anyOf") or schema.get("oneOf")
    if branches:  # a union inside a union (a discriminated union, or null): what all its branches open with
        openers = [opener(resolve(branch, defs), defs) for branch in branches]
        return os.path.commonprefix(openers) or openers[0][:1]  # noqa: RUF071 (text, not paths)
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        if props:
            key, sub = next(iter(props.items()))
            sub = resolve(sub, defs)
            if "const" in sub or len(sub.get("enum", [])) == 1:
                const = sub["const"] if "const" in sub else sub["enum"][0]
                return "{" + format_json(key) + ": " + format_json(const)
        return "{"
    return {"array": "[", "string": '"', "null": "null", "boolean": "true"}.get(kind, "0")


def grid(low: float, high: float, integer: bool) -> list[float | int]:
    """The values a bounded number chooses among: every integer of a small range, else about 10-25 round steps."""
    span = high - low
    if integer:
        if span > 50:
            return []
        return list(range(math.ceil(low), math.floor(high) + 1))
    if span <= 0:
        return [low]
    step = 10 ** math.floor(math.log10(span / 10))
    if span / step > 25:
        step *= 5
    count = round(span / step)
    values = [round(low + i * step, 6) for i in range(count + 1)]
    return [int(v) if float(v).is_integer() and step >= 1 else v for v in values]


def in_bounds(value: float, schema: dict[str, Any]) -> bool:
    return (
        ("minimum" not in schema or value >= schema["minimum"])
        and ("maximum" not in schema or value <= schema["maximum"])
        and ("exclusiveMinimum" not in schema or value > schema["exclusiveMinimum"])
        and ("exclusiveMaximum" not in schema or value < schema["exclusiveMaximum"])
    )
