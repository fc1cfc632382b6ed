"""Live state cost: an event handled, a snapshot built and sent, and read back by the TUI.

Run:  .venv/bin/python tests/bench/live_snapshot.py [--chargers 300]

A live state of ``--chargers`` three-phase chargers, each booted, Charging a session and
reporting a MeterValues (interpreted once, as the event hub does). Prints, best of 5 runs:
µs per MeterValues event handled (the hub's call into the live state, on the relay path), ms
to build the snapshot and turn it into JSON (what ``live.snapshot`` and the ``live`` topic
do), and ms for the TUI to read that JSON back with the daemon's strict definition
(``LiveSnapshot.from_dict``, twice a second at most). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edgegw.config import Config, parse_config
from edgegw.live.snapshot import LiveSnapshot
from edgegw.live.state import LiveState
from edgegw.ocpp.events import ChargerConnected, Event
from edgegw.ocpp.interpret import interpret

NOW = 1_767_261_600.0


@dataclass
class Parts:
    config: Config
    sessions: dict[str, Any] = field(default_factory=dict)
    store: Any = None
    meters: Any = None
    controller: Any = None
    authorizer: Any = None


def meter_values(tx: int) -> dict[str, Any]:
    values = [
        {"value": "15.9", "measurand": "Current.Import", "phase": f"L{p}", "unit": "A"}
        for p in (1, 2, 3)
    ]
    values += [
        {"value": "11.0", "measurand": "Power.Active.Import", "unit": "kW"},
        {"value": "12345", "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
    ]
    return {
        "connectorId": 1,
        "transactionId": tx,
        "meterValue": [{"timestamp": "2026-12-07T12:00:00Z", "sampledValue": values}],
    }


def site(chargers: int) -> tuple[LiveState, list[Event]]:
    ids = [f"CP-{n:03d}" for n in range(chargers)]
    live = LiveState(Parts(parse_config({"chargers": [{"id": i} for i in ids]})))
    samples: list[Event] = []
    for n, cid in enumerate(ids):
        calls: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
            ("BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}, {}),
            ("StatusNotification", {"connectorId": 1, "status": "Charging"}, {}),
            (
                "StartTransaction",
                {"connectorId": 1, "idTag": "04A1B2C3", "meterStart": 0},
                {"transactionId": n, "idTagInfo": {"status": "Accepted"}},
            ),
            ("MeterValues", meter_values(n), {}),
        ]
        live.handle(ChargerConnected(charger_id=cid, at=NOW))
        for action, request, response in calls:
            events = interpret(cid, action, request, response, NOW)
            for event in events:
                live.handle(event)
            if action == "MeterValues":
                samples.extend(events)
    return live, samples


def best(runs: int, work: Callable[[], Any]) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chargers", type=int, default=300)
    args = parser.parse_args()
    live, samples = site(args.chargers)

    def handle_all() -> None:
        for event in samples:
            live.handle(event)

    handled = best(5, handle_all) / len(samples)
    document = json.dumps(live.snapshot().as_dict())
    built = best(5, lambda: json.dumps(live.snapshot().as_dict()))
    read = best(5, lambda: LiveSnapshot.from_dict(json.loads(document)))
    print(f"{args.chargers} chargers, snapshot {len(document) / 1000:.0f} kB of JSON")
    print(
        f"  MeterValues events handled:   {handled * 1e6:7.1f} µs each (CallExchanged + Measured)"
    )
    print(f"  snapshot built + JSON:        {built * 1e3:7.1f} ms")
    print(f"  read back by the TUI (strict): {read * 1e3:7.1f} ms")


if __name__ == "__main__":
    main()
