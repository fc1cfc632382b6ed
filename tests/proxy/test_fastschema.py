"""The compiled schema checks never call an invalid payload valid, and do the work when valid.

Payloads are generated from every OCPP 1.6 and 2.0.1 schema: mostly well-formed, with random
damage (a wrong type, a missing required member, an unknown member, a string over its
maxLength, an integral float where an integer is expected, an empty array, a number out of its
bounds, an array over its maxItems). ``jsonschema`` is the judge.
"""

from __future__ import annotations

import copy
import math
import sys
from collections.abc import Callable, Mapping
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


# ------------------------------------------------------------------ mutations of real frames

TIME = "2026-12-07T10:00:00Z"
_SAMPLE_16 = {
    "value": "1234.5",
    "context": "Sample.Periodic",
    "measurand": "Energy.Active.Import.Register",
    "location": "Outlet",
    "unit": "Wh",
}
_SAMPLE_201 = {
    "value": 16.5,
    "measurand": "Current.Import",
    "phase": "L1",
    "unitOfMeasure": {"unit": "A", "multiplier": 0},
}
# (version, kind, action, payload): frames as chargers and clouds send them, each valid.
REAL_FRAMES: list[tuple[str, int, str, dict[str, Any]]] = [
    (
        "1.6",
        2,
        "MeterValues",
        {
            "connectorId": 1,
            "transactionId": 7,
            "meterValue": [
                {"timestamp": TIME, "sampledValue": [_SAMPLE_16, {**_SAMPLE_16, "phase": "L1"}]}
            ],
        },
    ),
    (
        "1.6",
        2,
        "StatusNotification",
        {"connectorId": 1, "errorCode": "NoError", "status": "Charging", "timestamp": TIME},
    ),
    (
        "1.6",
        2,
        "BootNotification",
        {"chargePointVendor": "Alfen", "chargePointModel": "NG9", "firmwareVersion": "6.1"},
    ),
    (
        "1.6",
        2,
        "StartTransaction",
        {"connectorId": 1, "idTag": "04A1B2C3", "meterStart": 100, "timestamp": TIME},
    ),
    (
        "1.6",
        2,
        "StopTransaction",
        {
            "meterStop": 5000,
            "timestamp": TIME,
            "transactionId": 7,
            "reason": "Local",
            "transactionData": [{"timestamp": TIME, "sampledValue": [_SAMPLE_16]}],
        },
    ),
    ("1.6", 2, "DataTransfer", {"vendorId": "Alfen", "messageId": "x", "data": "{}"}),
    ("1.6", 2, "Heartbeat", {}),
    (
        "1.6",
        3,
        "StartTransaction",
        {"transactionId": 7, "idTagInfo": {"status": "Accepted", "parentIdTag": "P1"}},
    ),
    (
        "1.6",
        3,
        "GetConfiguration",
        {
            "configurationKey": [{"key": "HeartbeatInterval", "readonly": False, "value": "300"}],
            "unknownKey": ["Foo"],
        },
    ),
    ("1.6", 2, "ChangeConfiguration", {"key": "MeterValueSampleInterval", "value": "60"}),
    (
        "2.0.1",
        2,
        "TransactionEvent",
        {
            "eventType": "Started",
            "timestamp": TIME,
            "triggerReason": "Authorized",
            "seqNo": 0,
            "offline": False,
            "transactionInfo": {"transactionId": "t-1", "chargingState": "EVConnected"},
            "idToken": {"idToken": "04A1B2C3", "type": "ISO14443"},
            "evse": {"id": 1, "connectorId": 1},
            "meterValue": [{"timestamp": TIME, "sampledValue": [_SAMPLE_201]}],
            "customData": {"vendorId": "com.example", "extra": 1},
        },
    ),
    (
        "2.0.1",
        2,
        "NotifyReport",
        {
            "requestId": 3,
            "generatedAt": TIME,
            "seqNo": 0,
            "tbc": False,
            "reportData": [
                {
                    "component": {"name": "EVSE", "evse": {"id": 1}},
                    "variable": {"name": "Power"},
                    "variableAttribute": [{"type": "Actual", "value": "22000"}],
                    "variableCharacteristics": {"dataType": "decimal", "supportsMonitoring": True},
                }
            ],
        },
    ),
    (
        "2.0.1",
        2,
        "BootNotification",
        {"reason": "PowerUp", "chargingStation": {"model": "NG9", "vendorName": "Alfen"}},
    ),
    (
        "2.0.1",
        2,
        "SetVariables",
        {
            "setVariableData": [
                {
                    "attributeValue": "300",
                    "component": {"name": "OCPPCommCtrlr"},
                    "variable": {"name": "HeartbeatInterval"},
                }
            ]
        },
    ),
    (
        "2.0.1",
        2,
        "SetChargingProfile",
        {
            "evseId": 1,
            "chargingProfile": {
                "id": 1,
                "stackLevel": 0,
                "chargingProfilePurpose": "TxDefaultProfile",
                "chargingProfileKind": "Absolute",
                "chargingSchedule": [
                    {
                        "id": 1,
                        "chargingRateUnit": "A",
                        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0}],
                    }
                ],
            },
        },
    ),
]

# Replacements tried at every place of a frame: wrong types, booleans where integers go (and
# integers where booleans go), integral floats, non-finite numbers (Python's json reads NaN and
# Infinity), bounds' neighbours, strings of every length that matters, unknown enum values.
_REPLACEMENTS: list[Any] = [
    None,
    True,
    False,
    0,
    1,
    -1,
    2**63,
    1.0,
    0.5,
    -0.5,
    math.nan,
    math.inf,
    -math.inf,
    "",
    "NotAMember",
    "x" * 21,
    "x" * 256,
    "x" * 2000,
    [],
    [{}],
    {},
    {"vendorId": "x"},
]


def _places(value: Any) -> list[tuple[Any, ...]]:
    """The path of every member and element inside ``value`` (the root is the empty path)."""
    out: list[tuple[Any, ...]] = [()]
    if isinstance(value, dict):
        for key, item in value.items():
            out += [(key, *rest) for rest in _places(item)]
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out += [(index, *rest) for rest in _places(item)]
    return out


def _with(value: Any, path: tuple[Any, ...], change: Callable[[Any], Any]) -> Any:
    """A deep copy of ``value`` with the thing at ``path`` replaced by ``change(thing)``."""
    if not path:
        return change(copy.deepcopy(value))
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {
            k: (_with(v, rest, change) if k == head else copy.deepcopy(v)) for k, v in value.items()
        }
    return [
        (_with(v, rest, change) if i == head else copy.deepcopy(v)) for i, v in enumerate(value)
    ]


def _without_member(value: Any, path: tuple[Any, ...]) -> Any:
    """``value`` with the member at ``path`` left out (an element of an array: removed)."""
    parent, last = path[:-1], path[-1]

    def drop(container: Any) -> Any:
        if isinstance(container, dict):
            return {k: v for k, v in container.items() if k != last}
        return [v for i, v in enumerate(container) if i != last]

    return _with(value, parent, drop)


def mutations(payload: dict[str, Any]) -> list[Any]:
    out: list[Any] = []
    for path in _places(payload):
        original: Any = payload
        for part in path:
            original = original[part]
        out += [_with(payload, path, lambda _old, new=new: new) for new in _REPLACEMENTS]
        if path:
            out.append(_without_member(payload, path))
        if isinstance(original, dict):
            out.append(_with(payload, path, lambda d: {**d, "unexpectedMember": 1}))
            out.append(_with(payload, path, lambda d: {**d, "customData": {"vendorId": 1}}))
        if isinstance(original, list):
            out.append(_with(payload, path, lambda items: items * 5))
            out.append(_with(payload, path, lambda _items: []))
        if isinstance(original, str):
            out.append(_with(payload, path, lambda s: s + "x" * 300))
            out.append(_with(payload, path, lambda s: s.lower()))
        if type(original) is int:
            out.append(_with(payload, path, float))
            out.append(_with(payload, path, lambda n: -n - 1))
        if type(original) is float:
            out.append(_with(payload, path, lambda n: n + 1e-9))
        if type(original) is bool:
            out.append(_with(payload, path, int))
    return out


def _judge(version: str, kind: int, action: str) -> Any:
    if version == "1.6":
        return schemas._validator(kind, action, False)
    return schemas._validator_201(kind, action)


def _public(version: str, kind: int, action: str) -> Callable[[dict[str, Any]], None]:
    if version == "2.0.1":
        return lambda payload: schemas.check_call_201(action, payload)
    if kind == 2:
        return lambda payload: schemas.check_call(action, payload)
    return lambda payload: schemas.check_result(action, payload)


@pytest.mark.parametrize(
    ("version", "kind", "action", "payload"), REAL_FRAMES, ids=lambda x: str(x)[:24]
)
def test_mutated_real_frames_are_never_called_valid(
    version: str, kind: int, action: str, payload: dict[str, Any]
) -> None:
    """Every mutation of a real frame: the compiled check says valid only where jsonschema
    does, and the public check raises exactly where jsonschema finds an error."""
    judge = _judge(version, kind, action)
    fast = compile_schema(judge.schema)
    assert fast is not None
    assert judge.is_valid(payload) and fast(payload), f"{action}: the frame itself goes fast"
    check = _public(version, kind, action)
    seen = invalid = 0
    for mutated in mutations(payload):
        seen += 1
        valid = judge.is_valid(mutated)
        invalid += not valid
        if fast(mutated):
            assert valid, f"{action}: fast check accepted {mutated!r}"
        try:
            check(mutated)
        except schemas.SchemaViolation:
            assert not valid, f"{action}: valid payload refused: {mutated!r}"
        else:
            assert valid, f"{action}: invalid payload passed: {mutated!r}"
    assert invalid > seen // 3, "the mutations must damage most frames"


def test_a_check_is_one_call_whatever_the_frame() -> None:
    """The compiled check is a single generated function: checking a MeterValues of ten
    sampled values calls no other Python function (builtins only: a dict.keys() per object
    that allows no other members)."""
    _version, kind, action, payload = REAL_FRAMES[0]
    meter = dict(payload)
    meter["meterValue"] = [
        {"timestamp": TIME, "sampledValue": [_SAMPLE_16] * 5},
        {"timestamp": TIME, "sampledValue": [_SAMPLE_16] * 5},
    ]
    fast = schemas._fast(kind, action)
    assert fast is not None
    python_calls: list[str] = []
    builtin_calls: list[str] = []

    def watch(frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            python_calls.append(frame.f_code.co_name)
        elif event == "c_call":
            builtin_calls.append(arg.__name__)

    sys.setprofile(watch)
    try:
        verdict = fast(meter)
    finally:
        sys.setprofile(None)
    assert verdict
    assert python_calls == [fast.__name__]
    assert fast.__code__.co_filename == "<fastschema 1.6 MeterValuesRequest>"  # for profiles
    # keys(): the payload, each meterValue, each sample (all closed objects); nothing else.
    assert [name for name in builtin_calls if name != "setprofile"] == ["keys"] * (1 + 2 + 10)


def test_generated_source_names_members_only_as_literals() -> None:
    """Member names go into the source as repr literals: a name with quotes, a newline or
    code in it is just a name."""
    odd = "x'] or __import__('os').system('false') or v0['\n"
    check = compile_schema(
        {
            "type": "object",
            "properties": {odd: {"type": "integer", "maximum": 2.5}},
            "required": [odd],
            "additionalProperties": False,
        }
    )
    assert check is not None
    assert check({odd: 2}) and not check({odd: 3}) and not check({"x": 1}) and not check({})


def test_what_cannot_compile_is_left_to_jsonschema() -> None:
    deep: dict[str, Any] = {"type": "integer"}
    for _ in range(40):
        deep = {"type": "array", "items": deep}
    assert compile_schema(deep) is None  # deeper than any OCPP schema
    assert compile_schema({"$ref": "#/definitions/a", "definitions": {"a": {"$ref": "#"}}}) is None
    assert compile_schema({"type": "integer", "minimum": True}) is None
    assert compile_schema({"type": "nothing"}) is None
    doubling: dict[str, Any] = {"d0": {"type": "integer"}}
    for level in range(1, 16):  # each definition uses the one before twice: 2**16 nodes
        ref = {"$ref": f"#/definitions/d{level - 1}"}
        doubling[f"d{level}"] = {"properties": {"a": ref, "b": ref}}
    # Written out, that is 5 s of compiling and a 200,000-line function: refused instead.
    assert compile_schema({"$ref": "#/definitions/d15", "definitions": doubling}) is None
