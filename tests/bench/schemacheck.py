"""Schema-check microbenchmark: µs and function calls per check of typical OCPP frames.

Run:  .venv/bin/python tests/bench/schemacheck.py [--rounds 20000]

For each frame (1.6 MeterValues with 10 sampled values, StatusNotification, Heartbeat,
StartTransaction and their CallResults; 2.0.1 TransactionEvent Updated with 5 values and a
NotifyReport) it prints the cost of

* ``fast``: the compiled "certainly valid" check the gateway asks first (``schemas._fast``),
* ``check``: the whole public check (``check_call`` / ``check_result`` / ``check_call_201``),
* ``jsonschema``: the library validator alone (what every check cost without the fast path),

as µs per check (best of 5 timing runs) and as function calls per check (cProfile: Python
and builtin calls, deterministic whatever the box's load). Also the time to compile every
schema once (what a gateway pays at most, lazily, over its life). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time
from collections.abc import Callable
from typing import Any

from edgegw.proxy import schemas

TIME = "2026-12-07T10:00:00Z"


def _meter_values() -> dict[str, Any]:
    measurands = [
        ("Energy.Active.Import.Register", "Wh", None),
        ("Power.Active.Import", "W", None),
        ("Current.Import", "A", "L1"),
        ("Current.Import", "A", "L2"),
        ("Current.Import", "A", "L3"),
    ]
    values = []
    for value, (measurand, unit, phase) in enumerate(measurands * 2):
        sample: dict[str, Any] = {
            "value": f"{value * 10.5:.1f}",
            "context": "Sample.Periodic",
            "measurand": measurand,
            "location": "Outlet",
            "unit": unit,
        }
        if phase is not None:
            sample["phase"] = phase
        values.append(sample)
    return {
        "connectorId": 1,
        "transactionId": 1234,
        "meterValue": [
            {"timestamp": TIME, "sampledValue": values[:5]},
            {"timestamp": TIME, "sampledValue": values[5:]},
        ],
    }


def _transaction_event() -> dict[str, Any]:
    sampled: list[dict[str, Any]] = [
        {
            "value": 16.0,
            "measurand": "Current.Import",
            "phase": phase,
            "unitOfMeasure": {"unit": "A"},
        }
        for phase in ("L1", "L2", "L3")
    ]
    sampled.append({"value": 11000, "measurand": "Power.Active.Import"})
    sampled.append(
        {
            "value": 12.345,
            "measurand": "Energy.Active.Import.Register",
            "unitOfMeasure": {"unit": "kWh"},
        }
    )
    return {
        "eventType": "Updated",
        "timestamp": TIME,
        "triggerReason": "MeterValuePeriodic",
        "seqNo": 17,
        "transactionInfo": {"transactionId": "9a1e0f36-5d4f-4c1e-9d7b-1f1c0e2a3b4c"},
        "evse": {"id": 1, "connectorId": 1},
        "meterValue": [{"timestamp": TIME, "sampledValue": sampled}],
    }


def _notify_report() -> dict[str, Any]:
    return {
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
            },
            {
                "component": {"name": "OCPPCommCtrlr"},
                "variable": {"name": "HeartbeatInterval"},
                "variableAttribute": [
                    {"type": "Actual", "value": "300", "mutability": "ReadWrite"}
                ],
            },
        ],
    }


# (label, version, kind, action, payload): kind 2 a call, 3 its CallResult.
FRAMES: list[tuple[str, str, int, str, dict[str, Any]]] = [
    ("MeterValues (10 values)", "1.6", 2, "MeterValues", _meter_values()),
    ("MeterValues result", "1.6", 3, "MeterValues", {}),
    (
        "StatusNotification",
        "1.6",
        2,
        "StatusNotification",
        {"connectorId": 1, "errorCode": "NoError", "status": "Charging", "timestamp": TIME},
    ),
    ("StatusNotification result", "1.6", 3, "StatusNotification", {}),
    ("Heartbeat", "1.6", 2, "Heartbeat", {}),
    ("Heartbeat result", "1.6", 3, "Heartbeat", {"currentTime": TIME}),
    (
        "StartTransaction",
        "1.6",
        2,
        "StartTransaction",
        {"connectorId": 1, "idTag": "04A1B2C3D4E5F6", "meterStart": 123456, "timestamp": TIME},
    ),
    (
        "StartTransaction result",
        "1.6",
        3,
        "StartTransaction",
        {"transactionId": 1234, "idTagInfo": {"status": "Accepted", "expiryDate": TIME}},
    ),
    ("TransactionEvent Updated (5 values)", "2.0.1", 2, "TransactionEvent", _transaction_event()),
    ("NotifyReport (2 entries)", "2.0.1", 2, "NotifyReport", _notify_report()),
]


def _fast(version: str, kind: int, action: str) -> Callable[[Any], bool] | None:
    if version == "1.6":
        return schemas._fast(kind, action)
    return schemas._fast_201(kind, action)


def _validator(version: str, kind: int, action: str) -> Any:
    if version == "1.6":
        return schemas._validator(kind, action, False)
    return schemas._validator_201(kind, action)


def _check(version: str, kind: int, action: str) -> Callable[[dict[str, Any]], None]:
    if version == "2.0.1":
        return lambda payload: schemas.check_call_201(action, payload)
    if kind == 2:
        return lambda payload: schemas.check_call(action, payload)
    return lambda payload: schemas.check_result(action, payload)


def per_call_us(fn: Callable[[], object], rounds: int) -> float:
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(rounds):
            fn()
        best = min(best, time.perf_counter() - start)
    return best / rounds * 1e6


def calls_per(fn: Callable[[], object], rounds: int = 200) -> float:
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(rounds):
        fn()
    profile.disable()
    stats = pstats.Stats(profile)
    return float(stats.total_calls) / rounds  # type: ignore[attr-defined]


def compile_all() -> tuple[float, int]:
    """Seconds to build every 1.6 and 2.0.1 fast check once, and how many were built."""
    schemas._fast.cache_clear()
    schemas._fast_201.cache_clear()
    for version, kind, action in _every_schema():  # the jsonschema validators, made first
        _validator(version, kind, action)
    start = time.perf_counter()
    built = 0
    for version, kind, action in _every_schema():
        built += _fast(version, kind, action) is not None
    return time.perf_counter() - start, built


def _every_schema() -> list[tuple[str, int, str]]:
    out = [("1.6", k, a) for k in (2, 3) for a in sorted(schemas.ALL_ACTIONS)]
    return out + [("2.0.1", k, a) for k in (2, 3) for a in sorted(schemas.ACTIONS_201)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20000)
    args = parser.parse_args()
    seconds, built = compile_all()
    print(f"compile every schema's fast check: {seconds * 1000:.0f} ms ({built} built)")
    head = f"{'frame':<38}{'fast µs':>9}{'check µs':>10}{'jsonschema µs':>15}"
    print(head + f"{'fast calls':>12}{'check calls':>13}{'jsonschema calls':>18}")
    for frame in FRAMES:
        print(measure(frame, args.rounds))


def measure(frame: tuple[str, str, int, str, dict[str, Any]], rounds: int) -> str:
    """One line of the table: µs and calls per check of ``frame``."""
    label, version, kind, action, payload = frame
    validator = _validator(version, kind, action)
    assert validator.is_valid(payload), f"{label}: the bench frame must be valid"
    fast = _fast(version, kind, action)
    assert fast is not None and fast(payload), f"{label}: not taken the fast way"
    check = _check(version, kind, action)
    check(payload)
    runs: list[tuple[Callable[[], object], int]] = [
        (lambda: fast(payload), rounds),
        (lambda: check(payload), rounds),
        (lambda: validator.is_valid(payload), max(1, rounds // 10)),
    ]
    figures = [per_call_us(fn, n) for fn, n in runs]
    counts = [calls_per(fn) for fn, _ in runs]
    line = f"{label:<38}{figures[0]:>9.2f}{figures[1]:>10.2f}{figures[2]:>15.1f}"
    return line + f"{counts[0]:>12.1f}{counts[1]:>13.1f}{counts[2]:>18.1f}"


if __name__ == "__main__":
    main()
