"""A 2.0.1 transaction's EVSE followed across its events (only its first must carry ``evse``).

The hub keeps, per charger, which EVSE each running transaction is on (from the first event
that named it), so later Updated/Ended events without ``evse`` are read as that EVSE's load and
status; the map forgets a transaction when it ends, not when its charger disconnects.
"""

from __future__ import annotations

from typing import Any

from edgegw.ocpp.events import ConnectorStatus, Event, Measured, SessionStopped
from edgegw.ocpp.hub import EventHub
from edgegw.ocpp.interpret201 import TransactionEvses, interpret201

AT = 1_700_000_000.0


def _event(
    kind: str, tx: str, *, evse: int | None = None, amps: float | None = None, seq: int = 0
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "eventType": kind,
        "timestamp": "2026-12-07T10:00:00Z",
        "triggerReason": "MeterValuePeriodic" if kind == "Updated" else "CablePluggedIn",
        "seqNo": seq,
        "transactionInfo": {"transactionId": tx, "chargingState": "Charging"},
    }
    if evse is not None:
        payload["evse"] = {"id": evse, "connectorId": 1}
    if amps is not None:
        payload["meterValue"] = [
            {
                "timestamp": "2026-12-07T10:00:00Z",
                "sampledValue": [
                    {"value": amps, "measurand": "Current.Import", "phase": "L1"},
                    {"value": 1234.0, "measurand": "Energy.Active.Import.Register"},
                ],
            }
        ]
    return payload


class _Heard:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def handle(self, event: Event) -> None:
        self.events.append(event)


def _hub() -> tuple[EventHub, _Heard]:
    heard = _Heard()
    return EventHub([heard], clock=lambda: AT, version_of=lambda _c: "ocpp2.0.1"), heard


def test_the_pure_reading_still_cannot_say_where_an_updated_without_evse_is() -> None:
    events = interpret201("CP1", "TransactionEvent", _event("Updated", "tx-1", amps=16), {}, AT)
    assert not [e for e in events if isinstance(e, Measured)]


def test_later_events_without_evse_are_read_on_the_evse_of_their_start() -> None:
    hub, heard = _hub()
    hub.charger_exchanged("CP1", "TransactionEvent", _event("Started", "tx-1", evse=2), {})
    hub.charger_exchanged("CP1", "TransactionEvent", _event("Updated", "tx-1", amps=16), {})
    measured = [e for e in heard.events if isinstance(e, Measured)]
    assert len(measured) == 1
    assert measured[0].connector == 2
    assert measured[0].transaction_id == "tx-1"
    assert measured[0].current_a == (16.0, None, None)
    statuses = [e for e in heard.events if isinstance(e, ConnectorStatus)]
    assert [s.connector for s in statuses] == [2, 2]
    hub.charger_exchanged("CP1", "TransactionEvent", _event("Ended", "tx-1", amps=0), {})
    stopped = [e for e in heard.events if isinstance(e, SessionStopped)]
    assert stopped[0].connector == 2


def test_the_map_forgets_an_ended_transaction_not_a_disconnected_charger() -> None:
    hub, heard = _hub()
    hub.charger_exchanged("CP1", "TransactionEvent", _event("Started", "tx-1", evse=1), {})
    hub.charger_exchanged("CP1", "TransactionEvent", _event("Ended", "tx-1"), {})
    heard.events.clear()
    hub.charger_exchanged("CP1", "TransactionEvent", _event("Updated", "tx-1", amps=9), {})
    assert not [e for e in heard.events if isinstance(e, Measured)]

    hub.charger_exchanged("CP1", "TransactionEvent", _event("Started", "tx-2", evse=1), {})
    hub.charger_disconnected("CP1")
    heard.events.clear()
    hub.charger_exchanged("CP1", "TransactionEvent", _event("Updated", "tx-2", amps=9), {})
    # A running transaction sends no second Started after a reconnect: still on its EVSE.
    assert [e.connector for e in heard.events if isinstance(e, Measured)] == [1]


def test_the_evse_of_the_first_event_that_names_one_counts_and_chargers_are_apart() -> None:
    evses = TransactionEvses()
    evses.note("CP1", "TransactionEvent", _event("Updated", "tx-1", evse=3))
    assert evses.evse_of("CP1", "tx-1") == 3
    assert evses.evse_of("CP2", "tx-1") is None
    evses.note("CP1", "TransactionEvent", _event("Updated", "tx-1", evse=1))
    assert evses.evse_of("CP1", "tx-1") == 3  # a transaction stays on its EVSE
    evses.note("CP1", "Heartbeat", {})
    assert evses.evse_of("CP1", "tx-1") == 3


def test_the_map_of_one_charger_is_bounded() -> None:
    evses = TransactionEvses(per_charger=4)
    for n in range(10):
        evses.note("CP1", "TransactionEvent", _event("Started", f"tx-{n}", evse=1))
    assert evses.evse_of("CP1", "tx-9") == 1
    assert evses.evse_of("CP1", "tx-0") is None
    assert evses.size("CP1") == 4
