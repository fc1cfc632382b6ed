"""Compile a JSON schema (draft 4, as the OCPP 1.6 and 2.0.1 schemas are read) into a quick
"valid?" check.

The check is one-sided on purpose: it answers True only when the instance is certainly valid,
and False when it is invalid *or* when it cannot tell (a float where an integer is expected, a
keyword it does not know, ...). The caller then asks ``jsonschema``, which decides and explains.
So this module never has to reproduce an error message, only never to call an invalid payload
valid. It knows the keywords the OCPP 1.6 and 2.0.1 schemas use; a schema with any other
keyword is not compiled at all (:func:`compile_schema` returns None).

Draft-4 details kept: a keyword only constrains the instances of its type (``properties`` is
ignored for a string, ``maxLength`` for an object); ``$ref`` replaces its siblings; ``integer``
excludes booleans; ``format`` is an annotation (no format checker is used).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Check = Callable[[Any], bool]

# Keywords that never constrain an instance here (annotations; additionalItems only applies
# next to an array of item schemas, which is refused below).
_IGNORED = frozenset(
    {
        "$schema",
        "$id",
        "id",
        "title",
        "description",
        "comment",
        "default",
        "definitions",
        "javaType",
        "format",
    }
)
_HANDLED = frozenset(
    {
        "$ref",
        "type",
        "properties",
        "additionalProperties",
        "required",
        "enum",
        "maxLength",
        "items",
        "additionalItems",
        "minItems",
        "maxItems",
        "minimum",
        "maximum",
    }
)
_MAX_DEPTH = 32


class _Unsupported(Exception):
    """The schema uses something this compiler does not handle: let jsonschema do it all."""


def _is_type(name: str) -> Check:
    # Exact types: whatever json.loads makes. Anything else is "cannot tell" (False).
    if name == "string":
        return lambda v: type(v) is str
    if name == "integer":
        return lambda v: type(v) is int
    if name == "number":
        return lambda v: type(v) is int or type(v) is float
    if name == "boolean":
        return lambda v: type(v) is bool
    if name == "object":
        return lambda v: type(v) is dict
    if name == "array":
        return lambda v: type(v) is list
    if name == "null":
        return lambda v: v is None
    raise _Unsupported(f"type {name!r}")


def _resolve(root: Mapping[str, Any], ref: str) -> Mapping[str, Any]:
    if not ref.startswith("#/"):
        raise _Unsupported(f"$ref {ref!r}")
    node: Any = root
    for part in ref[2:].split("/"):
        if not isinstance(node, Mapping) or part not in node:
            raise _Unsupported(f"$ref {ref!r}")
        node = node[part]
    if not isinstance(node, Mapping):
        raise _Unsupported(f"$ref {ref!r}")
    return node


def _compile(schema: Any, root: Mapping[str, Any], depth: int) -> Check:
    if depth > _MAX_DEPTH or not isinstance(schema, Mapping):
        raise _Unsupported("schema too deep or not an object")
    if "$ref" in schema:  # draft 4: $ref replaces every sibling keyword
        return _compile(_resolve(root, schema["$ref"]), root, depth + 1)
    unknown = set(schema) - _HANDLED - _IGNORED
    if unknown:
        raise _Unsupported(", ".join(sorted(unknown)))
    checks: list[Check] = []

    kind = schema.get("type")
    if kind is not None:
        names = [kind] if isinstance(kind, str) else kind
        if not isinstance(names, list) or not names:
            raise _Unsupported("type")
        type_checks = [_is_type(n) for n in names]
        if len(type_checks) == 1:
            checks.append(type_checks[0])
        else:
            checks.append(lambda v: any(c(v) for c in type_checks))

    if "enum" in schema:
        members = schema["enum"]
        if not isinstance(members, list) or not all(type(m) is str for m in members):
            raise _Unsupported("enum of non-strings")
        allowed = frozenset(members)
        checks.append(lambda v: type(v) is str and v in allowed)

    if "maxLength" in schema:
        limit = schema["maxLength"]
        if type(limit) is not int:
            raise _Unsupported("maxLength")
        checks.append(lambda v: type(v) is not str or len(v) <= limit)

    for keyword in ("minimum", "maximum"):
        if keyword in schema:
            checks.append(_bound_check(keyword, schema[keyword]))

    if any(k in schema for k in ("properties", "additionalProperties", "required")):
        checks.append(_object_check(schema, root, depth))

    if any(k in schema for k in ("items", "minItems", "maxItems", "additionalItems")):
        checks.append(_array_check(schema, root, depth))

    return _all_of(checks)


def _all_of(checks: list[Check]) -> Check:
    """One check that passes when every one of ``checks`` does (no generator per call)."""
    if not checks:
        return lambda v: True
    if len(checks) == 1:
        return checks[0]
    first, rest = checks[0], _all_of(checks[1:])
    return lambda v: first(v) and rest(v)


def _bound_check(keyword: str, limit: Any) -> Check:
    """``minimum`` / ``maximum`` (inclusive: no ``exclusive*`` keyword is handled): numbers
    only; anything else is for the other keywords to decide (NaN compares False: jsonschema
    decides it)."""
    if type(limit) is not int and type(limit) is not float:
        raise _Unsupported(keyword)
    if keyword == "minimum":
        return lambda v: (type(v) is not int and type(v) is not float) or v >= limit
    return lambda v: (type(v) is not int and type(v) is not float) or v <= limit


def _object_check(schema: Mapping[str, Any], root: Mapping[str, Any], depth: int) -> Check:
    properties = schema.get("properties", {})
    if not isinstance(properties, Mapping):
        raise _Unsupported("properties")
    members = {k: _compile(v, root, depth + 1) for k, v in properties.items()}
    additional = schema.get("additionalProperties", True)
    if type(additional) is not bool:
        raise _Unsupported("additionalProperties as a schema")
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(type(r) is str for r in required):
        raise _Unsupported("required")
    needed = frozenset(required)

    def check(value: Any) -> bool:
        if type(value) is not dict:
            return True  # other keywords (type) decide about non-objects
        for key, item in value.items():
            member = members.get(key)
            if member is None:
                if not additional:
                    return False
            elif not member(item):
                return False
        return value.keys() >= needed

    return check


def _array_check(schema: Mapping[str, Any], root: Mapping[str, Any], depth: int) -> Check:
    items = schema.get("items")
    if items is not None and not isinstance(items, Mapping):
        raise _Unsupported("items as a list of schemas")
    item_check = None if items is None else _compile(items, root, depth + 1)
    least = schema.get("minItems", 0)
    most = schema.get("maxItems", 2**63)
    if type(least) is not int or type(most) is not int:
        raise _Unsupported("minItems or maxItems")

    def check(value: Any) -> bool:
        if type(value) is not list:
            return True
        if not least <= len(value) <= most:
            return False
        if item_check is not None:
            for item in value:
                if not item_check(item):
                    return False
        return True

    return check


def compile_schema(schema: Mapping[str, Any]) -> Check | None:
    """A function that is True only for instances ``schema`` certainly accepts; None if the
    schema uses something this module does not handle (then always ask jsonschema)."""
    try:
        return _compile(schema, schema, 0)
    except _Unsupported:
        return None
