"""A running 2.0.1 transaction found again after a gateway restart or a station reconnect.

A running transaction sends no second Started, and its Updated events carry no ``evse``. The
gateway keeps each transaction's EVSE across reconnects, puts back the ones the store recorded
as running after a restart, and places a transaction it never heard start by what the station
said of its EVSEs (a station that named no EVSE but 1: EVSE 1), so the running car keeps a
session and its share instead of being paused at the safe limit.
"""

from __future__ import annotations

from typing import Any

from edgegw.ocpp.events import Event, Measured, SessionStopped
from edgegw.ocpp.hub import EventHub
from edgegw.ocpp.interpret201 import TransactionEvses
from tests.energy.test_planner import Site, connected

AT = 1_700_000_000.0


def updated(tx: str, amps: float, seq: int = 3, **more: Any) -> dict[str, Any]:
    return {
        "eventType": "Updated",
        "timestamp": "2026-03-10T10:00:00Z",
        "triggerReason": "MeterValuePeriodic",
        "seqNo": seq,
        "transactionInfo": {"transactionId": tx, "chargingState": "Charging"},
        "meterValue": [
            {
                "timestamp": "2026-03-10T10:00:00Z",
                "sampledValue": [
                    {"value": amps, "measurand": "Current.Import", "phase": p}
                    for p in ("L1", "L2", "L3")
                ],
            }
        ],
        **more,
    }


def status(evse: int, state: str = "Occupied") -> dict[str, Any]:
    return {
        "timestamp": "2026-03-10T10:00:00Z",
        "connectorStatus": state,
        "evseId": evse,
        "connectorId": 1,
    }


class Heard:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def handle(self, event: Event) -> None:
        self.events.append(event)

    def measured_on(self) -> list[int]:
        return [e.connector for e in self.events if isinstance(e, Measured)]


def hub() -> tuple[EventHub, Heard]:
    heard = Heard()
    return EventHub([heard], clock=lambda: AT, version_of=lambda _c: "ocpp2.0.1"), heard


def test_a_running_transaction_keeps_its_car_charging_after_a_gateway_restart() -> None:
    site = Site([{"id": "CS1", "max_current_a": 32}])  # a fresh gateway: fresh model and reader
    reader = TransactionEvses()
    connected(site, "CS1")
    for seq in range(3, 8):
        site.send(*reader("CS1", "TransactionEvent", updated("tx-abc", 16.0, seq), {}, AT))
        site.round()
        site.ack_all()
    ch = site.model.chargers["CS1"]
    assert list(ch.sessions) == [1]
    assert ch.sessions[1].transaction_id == "tx-abc"
    assert (site.limits()["CS1/1"] or 0.0) >= 16.0  # not paused at the safe 0 A


def test_a_reconnect_keeps_each_transaction_on_its_evse() -> None:
    events, heard = hub()
    events.charger_exchanged("CS1", "StatusNotification", status(1), {})
    events.charger_exchanged("CS1", "StatusNotification", status(2), {})
    events.charger_exchanged(
        "CS1",
        "TransactionEvent",
        {**updated("tx-2", 10.0), "eventType": "Started", "evse": {"id": 2, "connectorId": 1}},
        {},
    )
    events.charger_disconnected("CS1")
    events.charger_connected("CS1")
    heard.events.clear()
    events.charger_exchanged("CS1", "TransactionEvent", updated("tx-2", 10.0), {})
    assert heard.measured_on() == [2]


def test_transactions_the_store_recorded_as_running_are_read_on_their_evse() -> None:
    events, heard = hub()
    events.running201("CS1", "tx-9", 2)  # the daemon, at start
    events.charger_exchanged("CS1", "TransactionEvent", updated("tx-9", 12.0), {})
    assert heard.measured_on() == [2]
    # A transaction it never heard of is not placed: the station named EVSE 2 only, which
    # runs tx-9, and whether it has an EVSE 1 is not known.
    heard.events.clear()
    events.charger_exchanged("CS1", "TransactionEvent", updated("tx-new", 12.0), {})
    assert heard.measured_on() == []
    # An extended hub (a tool following the chargers) reads them alike.
    more = Heard()
    events.extended(more).charger_exchanged("CS1", "TransactionEvent", updated("tx-9", 1.0), {})
    assert more.measured_on() == [2]


def test_an_unknown_transaction_goes_on_the_one_evse_that_is_free() -> None:
    events, heard = hub()
    for evse in (1, 2):
        events.charger_exchanged("CS1", "StatusNotification", status(evse), {})
    events.running201("CS1", "tx-a", 1)
    events.charger_exchanged("CS1", "TransactionEvent", updated("tx-b", 8.0), {})
    assert heard.measured_on() == [2]
    heard.events.clear()
    events.charger_exchanged("CS1", "TransactionEvent", updated("tx-b", 9.0, seq=4), {})
    assert heard.measured_on() == [2]  # it stays there


def test_an_unknown_transaction_is_not_placed_when_the_evse_is_uncertain() -> None:
    events, heard = hub()
    for evse in (1, 2, 3):
        events.charger_exchanged("CS1", "StatusNotification", status(evse), {})
    events.running201("CS1", "tx-a", 1)
    events.charger_exchanged("CS1", "TransactionEvent", updated("tx-b", 8.0), {})
    assert heard.measured_on() == []  # EVSE 2 or 3: not guessed
    # A single-EVSE station whose EVSE 1 runs a known transaction: not on EVSE 1 twice.
    events.running201("CS2", "tx-c", 1)
    events.charger_exchanged("CS2", "TransactionEvent", updated("tx-d", 8.0), {})
    assert heard.measured_on() == []


def test_an_ended_transaction_is_never_placed_again() -> None:
    events, heard = hub()
    events.charger_exchanged("CS1", "TransactionEvent", updated("tx-1", 8.0), {})
    ended = {**updated("tx-1", 0.0, seq=9), "eventType": "Ended"}
    events.charger_exchanged("CS1", "TransactionEvent", ended, {})
    assert [e.connector for e in heard.events if isinstance(e, SessionStopped)] == [1]
    heard.events.clear()
    events.charger_exchanged("CS1", "TransactionEvent", updated("tx-1", 8.0, seq=10), {})
    events.running201("CS1", "tx-1", 1)  # a record not closed yet changes nothing
    events.charger_exchanged("CS1", "TransactionEvent", updated("tx-1", 8.0, seq=11), {})
    assert heard.measured_on() == []


def test_what_the_reader_keeps_per_charger_is_bounded() -> None:
    reader = TransactionEvses(per_charger=4)
    for n in range(10):
        reader.running("CS1", f"tx-{n}", n + 1)
        reader(
            "CS1", "TransactionEvent", {**updated(f"old-{n}", 1.0), "eventType": "Ended"}, {}, AT
        )
    assert reader.size("CS1") == 4
    assert reader.evse_of("CS1", "tx-9") == 10
    assert reader.evse_of("CS1", "tx-0") is None
