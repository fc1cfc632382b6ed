"""Compile a JSON schema (draft 4, as the OCPP 1.6 and 2.0.1 schemas are read) into a quick
"valid?" check: one generated Python function per schema.

The check is one-sided on purpose: it answers True only when the instance is certainly valid,
and False when it is invalid *or* when it cannot tell (a float where an integer is expected, a
NaN next to a bound, ...). The caller then asks ``jsonschema``, which decides and explains.
So this module never has to reproduce an error message, only never to call an invalid payload
valid. It knows the keywords the OCPP 1.6 and 2.0.1 schemas use; a schema with any other
keyword is not compiled at all (:func:`compile_schema` returns None).

The schema is turned into the source of one function, every check written out in place
(``$ref`` inlined, a loop per array, plain ``in`` and ``type(x) is ...`` tests), which is
compiled once: checking a payload is then a single call plus a ``dict.keys()`` per object
that allows no other members, instead of a call per schema node. The source holds no text of
the schema but property names (as ``repr`` literals) and integer limits; enum sets and float
limits are handed in as named constants.

Draft-4 details kept: a keyword only constrains the instances of its type (``properties`` is
ignored for a string, ``maxLength`` for an object); ``$ref`` replaces its siblings; ``integer``
excludes booleans (and integral floats: jsonschema decides those); ``format`` is an annotation
(no format checker is used).
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
_MAX_NODES = 5000  # schema nodes written out (refs inlined): the largest OCPP schema has ~300

# Exact types: whatever json.loads makes. Anything else is "cannot tell" (False).
_TYPE_TESTS = {
    "string": "type({v}) is str",
    "integer": "type({v}) is int",
    "number": "type({v}) is int or type({v}) is float",
    "boolean": "type({v}) is bool",
    "object": "type({v}) is dict",
    "array": "type({v}) is list",
    "null": "{v} is None",
}
_OBJECT_KEYWORDS = ("properties", "additionalProperties", "required")
_ARRAY_KEYWORDS = ("items", "minItems", "maxItems", "additionalItems")


class _Unsupported(Exception):
    """The schema uses something this compiler does not handle: let jsonschema do it all."""


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


class _Source:
    """The function's source being written: its constants and its variable names."""

    def __init__(self, root: Mapping[str, Any]) -> None:
        self.root = root
        self.constants: dict[str, Any] = {}
        self._variables = 0
        self._nodes = 0

    def visit(self) -> None:
        """Count a node: refs used many times could otherwise make a source without end."""
        self._nodes += 1
        if self._nodes > _MAX_NODES:
            raise _Unsupported("schema too large when written out")

    def constant(self, value: Any) -> str:
        name = f"_k{len(self.constants)}"
        self.constants[name] = value
        return name

    def variable(self) -> str:
        self._variables += 1
        return f"v{self._variables}"

    def number(self, value: Any, keyword: str) -> str:
        if type(value) is int:
            return repr(value)
        if type(value) is float:
            return self.constant(value)
        raise _Unsupported(keyword)


def _indented(lines: list[str]) -> list[str]:
    return ["    " + line for line in lines]


def _node(source: _Source, schema: Any, var: str, depth: int) -> list[str]:
    """Statements that ``return False`` unless ``var`` certainly meets ``schema``."""
    if depth > _MAX_DEPTH or not isinstance(schema, Mapping):
        raise _Unsupported("schema too deep or not an object")
    source.visit()
    if "$ref" in schema:  # draft 4: $ref replaces every sibling keyword
        return _node(source, _resolve(source.root, schema["$ref"]), var, depth + 1)
    unknown = set(schema) - _HANDLED - _IGNORED
    if unknown:
        raise _Unsupported(", ".join(sorted(unknown)))
    lines: list[str] = []

    known = None  # the one type the instance is known to have once the type test passed
    kind = schema.get("type")
    if kind is not None:
        names = [kind] if isinstance(kind, str) else kind
        if not isinstance(names, list) or not names:
            raise _Unsupported("type")
        if not all(isinstance(n, str) and n in _TYPE_TESTS for n in names):
            raise _Unsupported(f"type {kind!r}")
        tests = " or ".join(_TYPE_TESTS[n].format(v=var) for n in names)
        lines.append(f"if not ({tests}): return False")
        if len(names) == 1:
            known = names[0]

    def applies(type_name: str) -> bool:
        return known is None or known == type_name or (known == "integer" == type_name)

    if "enum" in schema:
        members = schema["enum"]
        if not isinstance(members, list) or not all(type(m) is str for m in members):
            raise _Unsupported("enum of non-strings")
        allowed = source.constant(frozenset(members))
        test = f"{var} in {allowed}"
        if known != "string":
            test = f"type({var}) is str and {test}"
        lines.append(f"if not ({test}): return False")

    if "maxLength" in schema:
        limit = schema["maxLength"]
        if type(limit) is not int:
            raise _Unsupported("maxLength")
        if known == "string":
            lines.append(f"if len({var}) > {limit}: return False")
        elif known is None:
            lines.append(f"if type({var}) is str and len({var}) > {limit}: return False")

    for keyword, passes in (("minimum", ">="), ("maximum", "<=")):
        if keyword in schema:
            # Inclusive (no exclusive* keyword is handled); numbers only. Written as
            # "not (v >= limit)" so that a NaN is "cannot tell": jsonschema decides it.
            limit_text = source.number(schema[keyword], keyword)
            test = f"not ({var} {passes} {limit_text})"
            if known not in ("integer", "number"):
                test = f"(type({var}) is int or type({var}) is float) and {test}"
            lines.append(f"if {test}: return False")

    if any(k in schema for k in _OBJECT_KEYWORDS) and applies("object"):
        body = _object(source, schema, var, depth)
        lines += body if known == "object" else _guarded(f"type({var}) is dict", body)

    if any(k in schema for k in _ARRAY_KEYWORDS) and applies("array"):
        body = _array(source, schema, var, depth)
        lines += body if known == "array" else _guarded(f"type({var}) is list", body)

    return lines


def _guarded(test: str, body: list[str]) -> list[str]:
    return [f"if {test}:", *_indented(body)] if body else []


def _object(source: _Source, schema: Mapping[str, Any], var: str, depth: int) -> list[str]:
    properties = schema.get("properties", {})
    if not isinstance(properties, Mapping) or not all(type(k) is str for k in properties):
        raise _Unsupported("properties")
    additional = schema.get("additionalProperties", True)
    if type(additional) is not bool:
        raise _Unsupported("additionalProperties as a schema")
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(type(r) is str for r in required):
        raise _Unsupported("required")
    lines: list[str] = []
    if required:
        missing = " or ".join(f"{name!r} not in {var}" for name in dict.fromkeys(required))
        lines.append(f"if {missing}: return False")
    if not additional:
        if properties:
            allowed = source.constant(frozenset(properties))
            lines.append(f"if not {var}.keys() <= {allowed}: return False")
        else:
            lines.append(f"if {var}: return False")
    for name, sub in properties.items():
        member = source.variable()
        body = _node(source, sub, member, depth + 1)
        if not body:
            continue
        fetch = f"{member} = {var}[{name!r}]"
        if name in required:
            lines += [fetch, *body]
        else:
            lines += [f"if {name!r} in {var}:", *_indented([fetch, *body])]
    return lines


def _array(source: _Source, schema: Mapping[str, Any], var: str, depth: int) -> list[str]:
    items = schema.get("items")
    if items is not None and not isinstance(items, Mapping):
        raise _Unsupported("items as a list of schemas")
    least = schema.get("minItems", 0)
    most = schema.get("maxItems")
    if type(least) is not int or (most is not None and type(most) is not int):
        raise _Unsupported("minItems or maxItems")
    lines: list[str] = []
    if least == 1:
        lines.append(f"if not {var}: return False")
    elif least > 1:
        lines.append(f"if len({var}) < {least}: return False")
    if most is not None:
        lines.append(f"if len({var}) > {most}: return False")
    if items is not None:
        item = source.variable()
        body = _node(source, items, item, depth + 1)
        if body:
            lines += [f"for {item} in {var}:", *_indented(body)]
    return lines


def compile_source(schema: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The generated function's source and the constants it names (raises _Unsupported)."""
    source = _Source(schema)
    body = _node(source, schema, "v0", 0)
    text = "\n".join(["def certainly_valid(v0):", *_indented([*body, "return True"])])
    return text + "\n", source.constants


def compile_schema(schema: Mapping[str, Any], name: str = "schema") -> Check | None:
    """A function that is True only for instances ``schema`` certainly accepts; None if the
    schema uses something this module does not handle (then always ask jsonschema).

    ``name`` labels the function's code (``<fastschema name>``), so that profilers and
    tracebacks tell one schema's check from another's."""
    try:
        text, constants = compile_source(schema)
        namespace: dict[str, Any] = dict(constants)
        code = compile(text, f"<fastschema {name}>", "exec")
        exec(code, namespace)  # noqa: S102 - our own source
    except (_Unsupported, SyntaxError, RecursionError, MemoryError):
        return None
    check: Check = namespace["certainly_valid"]
    return check
