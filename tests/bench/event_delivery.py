"""Event layer cost per relayed charger call, with the daemon's own subscribers.

Run:  .venv/bin/python tests/bench/event_delivery.py [--calls 50000]

One charger, connected and charging, as the daemon's hub sees it: each call is interpreted
and its events handed to the commissioning observer, the live state, the list pusher's
readiness and the card learner (the daemon's order; load capping off, as in
``tests/bench/capacity.py``). The calls: a three-phase MeterValues (what meter sampling asks
for), a StatusNotification, a Heartbeat, and a 2.0.1 TransactionEvent ``Updated`` carrying the
same meter values. Prints, per call, µs (best of 5 runs) and the Python calls made (counted
by cProfile: deterministic, unlike the time on a shared box). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edgegw.auth.learn import CardLearner
from edgegw.auth.pushready import PushWhenReady
from edgegw.commission.observer import CommissionObserver
from edgegw.config import Config, parse_config
from edgegw.live.state import LiveState
from edgegw.ocpp.hub import EventHub, EventSubscriber

V16, V201 = "CP16", "CP201"
PHASES = ("L1", "L2", "L3")
METER_VALUES: dict[str, Any] = {
    "connectorId": 1,
    "transactionId": 1234,
    "meterValue": [
        {
            "timestamp": "2026-12-07T12:00:00Z",
            "sampledValue": [
                *(
                    {"value": v, "measurand": "Current.Import", "phase": p, "unit": "A"}
                    for v, p in zip(("15.9", "16.0", "15.8"), PHASES, strict=True)
                ),
                {"value": "16", "measurand": "Current.Offered", "unit": "A"},
                {"value": "11.02", "measurand": "Power.Active.Import", "unit": "kW"},
                {"value": "123456", "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
            ],
        }
    ],
}
STATUS: dict[str, Any] = {"connectorId": 1, "status": "Charging", "errorCode": "NoError"}
TRANSACTION_EVENT: dict[str, Any] = {
    "eventType": "Updated",
    "timestamp": "2026-12-07T12:00:00Z",
    "triggerReason": "MeterValuePeriodic",
    "seqNo": 3,
    "transactionInfo": {"transactionId": "tx-201", "chargingState": "Charging"},
    "meterValue": [
        {
            "timestamp": "2026-12-07T12:00:00Z",
            "sampledValue": [
                *(
                    {"value": v, "measurand": "Current.Import", "phase": p}
                    for v, p in zip((15.9, 16.0, 15.8), PHASES, strict=True)
                ),
                {
                    "value": 11.02,
                    "measurand": "Power.Active.Import",
                    "unitOfMeasure": {"unit": "kW"},
                },
                {"value": 123456, "measurand": "Energy.Active.Import.Register"},
            ],
        }
    ],
}
STARTED_201: dict[str, Any] = {
    "eventType": "Started",
    "timestamp": "2026-12-07T11:00:00Z",
    "triggerReason": "Authorized",
    "seqNo": 0,
    "transactionInfo": {"transactionId": "tx-201", "chargingState": "Charging"},
    "evse": {"id": 1, "connectorId": 1},
    "idToken": {"idToken": "04A1B2C3", "type": "ISO14443"},
}


@dataclass
class Parts:
    """The gateway parts the live state reads (no cloud sessions, no meters, no capping)."""

    config: Config
    sessions: dict[str, Any] = field(default_factory=dict)
    store: Any = None
    meters: Any = None
    controller: Any = None
    authorizer: Any = None


class Pusher:
    def charger_connected(self, charger_id: str, version: str | None = None) -> None:
        return

    def charger_disconnected(self, charger_id: str) -> None:
        return


def hub() -> EventHub:
    """The daemon's subscribers, one 1.6 charger and one 2.0.1 station charging."""
    config = parse_config({"chargers": [{"id": V16}, {"id": V201}]})
    parts: list[EventSubscriber] = [
        CommissionObserver(clock=lambda: 0.0),
        LiveState(Parts(config), owner_lookup=lambda _c, _t: None, clock=lambda: 0.0),
        PushWhenReady(Pusher()),
        CardLearner(lambda: 0.0),
    ]
    versions = {V16: "ocpp1.6", V201: "ocpp2.0.1"}
    built = EventHub(parts, clock=lambda: 0.0, version_of=versions.get)
    accepted = {"idTagInfo": {"status": "Accepted"}}
    for charger_id in versions:
        built.charger_connected(charger_id)
    built.charger_exchanged(V16, "BootNotification", {"chargePointVendor": "V"}, {})
    built.charger_exchanged(V16, "StatusNotification", STATUS, {})
    built.charger_exchanged(
        V16,
        "StartTransaction",
        {"connectorId": 1, "idTag": "04A1B2C3", "meterStart": 0},
        {"transactionId": 1234, **accepted},
    )
    built.charger_exchanged(V201, "TransactionEvent", STARTED_201, {})
    return built


def best(calls: int, run: Callable[[], None]) -> float:
    times = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(calls):
            run()
        times.append(time.perf_counter() - started)
    return min(times) / calls * 1e6


def python_calls(run: Callable[[], None], calls: int = 1000) -> float:
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(calls):
        run()
    profile.disable()
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    total = sum(
        v[1] for k, v in stats.items() if k[2] != "<method 'disable' of '_lsprof.Profiler' objects>"
    )
    return float(total) / calls - 1  # the loop's own call of ``run``


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=50_000)
    calls = parser.parse_args().calls
    events = hub()
    figures: dict[str, Callable[[], None]] = {
        "MeterValues (1.6)": lambda: events.charger_exchanged(V16, "MeterValues", METER_VALUES, {}),
        "StatusNotification (1.6)": lambda: events.charger_exchanged(
            V16, "StatusNotification", STATUS, {}
        ),
        "Heartbeat (1.6)": lambda: events.charger_exchanged(V16, "Heartbeat", {}, {}),
        "TransactionEvent Updated (2.0.1)": lambda: events.charger_exchanged(
            V201, "TransactionEvent", TRANSACTION_EVENT, {}
        ),
    }
    print(f"{'interpret + delivery to 4 parts':34} {'µs/call':>8} {'calls':>6}")
    for name, run in figures.items():
        print(f"{name:34} {best(calls, run):8.2f} {python_calls(run):6.0f}")


if __name__ == "__main__":
    main()
