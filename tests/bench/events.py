"""Event layer cost per charger call: interpret alone, and through the hub to six parts.

Run:  .venv/bin/python tests/bench/events.py [--calls 200000]

A typical three-phase MeterValues (Current.Import L1-L3, Current.Offered, Power.Active.Import,
Energy.Active.Import.Register: what meter sampling asks for) and a StatusNotification, each
interpreted once; then delivered by an EventHub to six subscribers that do nothing, as the
daemon's parts would get them. Prints µs per call (best of 5 runs). Not part of the test suite;
compare with the relay core's ~20 µs per MeterValues round trip.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from edgegw.ocpp.events import Event
from edgegw.ocpp.hub import EventHub
from edgegw.ocpp.interpret import interpret

METER_VALUES: dict[str, Any] = {
    "connectorId": 1,
    "transactionId": 1234,
    "meterValue": [
        {
            "timestamp": "2026-12-07T12:00:00Z",
            "sampledValue": [
                {"value": "15.9", "measurand": "Current.Import", "phase": "L1", "unit": "A"},
                {"value": "16.0", "measurand": "Current.Import", "phase": "L2", "unit": "A"},
                {"value": "15.8", "measurand": "Current.Import", "phase": "L3", "unit": "A"},
                {"value": "16", "measurand": "Current.Offered", "unit": "A"},
                {"value": "11.02", "measurand": "Power.Active.Import", "unit": "kW"},
                {"value": "123456", "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
            ],
        }
    ],
}
STATUS: dict[str, Any] = {"connectorId": 1, "status": "Charging", "errorCode": "NoError"}


class Idle:
    def handle(self, event: Event) -> None:
        return


def best(calls: int, run: Any) -> float:
    times = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(calls):
            run()
        times.append(time.perf_counter() - started)
    return min(times) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200_000)
    calls = parser.parse_args().calls
    hub = EventHub([Idle() for _ in range(6)], clock=lambda: 0.0)
    figures = {
        "interpret MeterValues": lambda: interpret("CP1", "MeterValues", METER_VALUES, {}, 0.0),
        "interpret StatusNotification": lambda: interpret(
            "CP1", "StatusNotification", STATUS, {}, 0.0
        ),
        "hub MeterValues, 6 parts": lambda: hub.charger_exchanged(
            "CP1", "MeterValues", METER_VALUES, {}
        ),
        "hub StatusNotification, 6 parts": lambda: hub.charger_exchanged(
            "CP1", "StatusNotification", STATUS, {}
        ),
    }
    for name, run in figures.items():
        print(f"{name:34} {best(calls, run):6.2f} µs per call")


if __name__ == "__main__":
    main()
