"""The compiled schema checks never call an invalid payload valid, and do the work when valid.

Payloads are generated from every OCPP 1.6 and 2.0.1 schema: mostly well-formed, with random
damage (a wrong type, a missing required member, an unknown member, a string over its
maxLength, an integral float where an integer is expected, an empty array, a number out of its
bounds, an array over its maxItems). ``jsonschema`` is the judge.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgegw.proxy import schemas
from edgegw.proxy.fastschema import compile_schema

CASES = [(kind, action) for kind in (2, 3) for action in sorted(schemas.ALL_ACTIONS)]
CASES_201 = [(kind, action) for kind in (2, 3) for action in sorted(schemas.ACTIONS_201)]

_ANY_SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.text(max_size=3),
)


def _wrong() -> st.SearchStrategy[Any]:
    return st.one_of(_ANY_SCALAR, st.just([]), st.just({}), st.just(1.0))


def instances(schema: Mapping[str, Any], root: Mapping[str, Any]) -> st.SearchStrategy[Any]:
    """Instances of ``schema``, about one in eight of them damaged somewhere."""
    if "$ref" in schema:
        node: Any = root
        for part in str(schema["$ref"])[2:].split("/"):
            node = node[part]
        return instances(node, root)
    good = _valid(schema, root)
    return st.one_of(good, good, good, good, good, good, good, _wrong())


def _valid(schema: Mapping[str, Any], root: Mapping[str, Any]) -> st.SearchStrategy[Any]:
    kind = schema.get("type")
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if kind == "string":
        limit = schema.get("maxLength", 8)
        return st.text(min_size=0, max_size=limit + 1)  # maxLength + 1 is damage
    if kind == "integer":
        return st.one_of(_near_bounds(schema), st.integers(-3, 1000), st.just(2.0), st.just(True))
    if kind == "number":
        return st.one_of(
            _near_bounds(schema), st.integers(-3, 10), st.floats(-10, 10), st.just(False)
        )
    if kind == "boolean":
        return st.one_of(st.booleans(), st.just(0))
    if kind == "array":
        items = schema.get("items", {})
        least = schema.get("minItems", 0)
        most = min(schema.get("maxItems", 3), 3)  # maxItems + 1 is damage
        return st.lists(instances(items, root), min_size=max(0, least - 1), max_size=most + 1)
    if kind == "object" or "properties" in schema:
        return _object(schema, root)
    return _ANY_SCALAR


def _near_bounds(schema: Mapping[str, Any]) -> st.SearchStrategy[Any]:
    """Numbers at and just beyond ``minimum`` / ``maximum`` (or small ones, without)."""
    edges = [schema[k] for k in ("minimum", "maximum") if k in schema] or [0]
    return st.sampled_from(edges).flatmap(
        lambda edge: st.sampled_from([edge - 1, edge - 0.5, edge, edge + 0.5, edge + 1])
    )


def _object(schema: Mapping[str, Any], root: Mapping[str, Any]) -> st.SearchStrategy[Any]:
    properties: Mapping[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", []))

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, sub in properties.items():
            if name in required:
                if draw(st.integers(0, 30)) == 0:
                    continue  # damage: a required member missing
            elif not draw(st.booleans()):
                continue
            out[name] = draw(instances(sub, root))
        if draw(st.integers(0, 30)) == 0:
            out["unexpectedMember"] = 1  # damage unless additionalProperties allows it
        return out

    return build()


@pytest.mark.parametrize(("kind", "action"), CASES)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_never_valid_when_jsonschema_says_invalid(
    kind: int, action: str, data: st.DataObject
) -> None:
    validator = schemas._validator(kind, action, action in schemas._DECIMAL_CALLS)
    fast = compile_schema(validator.schema)
    if fast is None:  # the decimal schemas (multipleOf): jsonschema only
        assert action in schemas._DECIMAL_CALLS | schemas._DECIMAL_RESULTS
        return
    payload = data.draw(instances(validator.schema, validator.schema))
    valid = validator.is_valid(payload)
    if fast(payload):
        assert valid, f"{action}: fast check accepted {payload!r}"
    elif valid:
        # It may only hand over what it cannot tell: an integral float or a bool somewhere.
        assert _has_float_or_bool(payload), f"{action}: fast check refused valid {payload!r}"


@pytest.mark.parametrize(("kind", "action"), CASES_201)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_never_valid_when_jsonschema_says_invalid_201(
    kind: int, action: str, data: st.DataObject
) -> None:
    validator = schemas._validator_201(kind, action)
    fast = schemas._fast_201(kind, action)
    assert fast is not None, f"{action}: every 2.0.1 schema compiles"
    payload = data.draw(instances(validator.schema, validator.schema))
    valid = validator.is_valid(payload)
    if fast(payload):
        assert valid, f"{action}: fast check accepted {payload!r}"
    elif valid:
        assert _has_float_or_bool(payload), f"{action}: fast check refused valid {payload!r}"


def test_bounds_and_max_items() -> None:
    check = compile_schema(
        {
            "type": "object",
            "properties": {
                "n": {"type": "number", "minimum": 0, "maximum": 1.5},
                "a": {"type": "array", "items": {"type": "integer"}, "maxItems": 2},
            },
        }
    )
    assert check is not None
    assert check({"n": 0}) and check({"n": 1.5}) and check({"a": [1, 2]})
    assert not check({"n": -1}) and not check({"n": 1.6}) and not check({"a": [1, 2, 3]})
    assert not check({"n": float("nan")})  # left to jsonschema
    assert compile_schema({"minimum": "0"}) is None


def _has_float_or_bool(value: Any) -> bool:
    if isinstance(value, float | bool):
        return True
    if isinstance(value, dict):
        return any(_has_float_or_bool(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_float_or_bool(v) for v in value)
    return False


def test_meter_values_goes_the_fast_way() -> None:
    fast = schemas._fast(2, "MeterValues")
    assert fast is not None
    payload = {
        "connectorId": 1,
        "transactionId": 7,
        "meterValue": [
            {
                "timestamp": "2026-01-01T00:00:00Z",
                "sampledValue": [
                    {"value": "1", "measurand": "Energy.Active.Import.Register", "unit": "Wh"}
                ],
            }
        ],
    }
    assert fast(payload)
    assert not fast({**payload, "meterValue": []})  # minItems 1
    with pytest.raises(schemas.SchemaViolation) as caught:
        schemas.check_call("MeterValues", {**payload, "meterValue": []})
    assert caught.value.code == "OccurenceConstraintViolation"


def test_unknown_keywords_are_left_to_jsonschema() -> None:
    assert compile_schema({"type": "string", "pattern": "^a"}) is None
    assert compile_schema({"type": "object", "additionalProperties": {"type": "string"}}) is None
    assert compile_schema({"$ref": "http://elsewhere/schema"}) is None
    check = compile_schema({"properties": {"a": {"type": "integer"}}, "required": ["a"]})
    assert check is not None
    assert check({"a": 1}) and not check({"a": "1"}) and not check({})
    assert check("not an object")  # draft 4: properties only constrain objects
