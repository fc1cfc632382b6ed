"""The commissioning observer keeps each charger's latest calls as the events they meant."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from edgegw.commission.checklist import sampled
from edgegw.commission.observer import CommissionObserver, Exchange, on_connector
from edgegw.ocpp.events import (
    CardAnswered,
    ChargerBooted,
    ChargerConnected,
    ChargerDisconnected,
    ConnectorStatus,
    Measured,
)
from edgegw.ocpp.interpret import interpret


def exchanged(
    observer: CommissionObserver, charger_id: str, action: str, request: Any, response: Any
) -> None:
    """What the event hub hands the observer for one answered call."""
    for event in interpret(charger_id, action, request, response, 0.0):
        observer.handle(event)


async def test_observer_waits_and_looks_back() -> None:
    now = [100.0]
    observer = CommissionObserver(clock=lambda: now[0])
    observer.handle(ChargerConnected(charger_id="CP1", at=100.0))
    assert observer.connected_since("CP1") == 100.0
    exchanged(observer, "CP1", "Heartbeat", {}, {"currentTime": "x"})
    assert observer.seen("CP1", ["Heartbeat"])[0].at == 100.0

    async def meter_values_later() -> None:
        now[0] = 101.0
        exchanged(observer, "CP1", "MeterValues", {"connectorId": 1, "meterValue": []}, {})

    async with asyncio.TaskGroup() as group:  # tasks start in order: the waiter is first
        waiting = group.create_task(observer.wait("CP1", ["MeterValues"], since=100.5, timeout=2))
        group.create_task(meter_values_later())
    exchange = waiting.result()
    assert isinstance(exchange, Exchange) and exchange.at == 101.0
    assert isinstance(exchange.event, Measured) and exchange.connector == 1
    # an exchange already seen is found without waiting
    again = await observer.wait("CP1", ["MeterValues"], since=100.5, timeout=0.01)
    assert again is exchange

    async def disconnect() -> None:
        observer.handle(ChargerDisconnected(charger_id="CP1", at=102.0))

    with pytest.raises(ExceptionGroup) as gone:
        async with asyncio.TaskGroup() as group:
            group.create_task(observer.wait("CP1", ["Authorize"], since=0, timeout=2))
            group.create_task(disconnect())
    assert gone.group_contains(LookupError)
    assert observer.connected_since("CP1") is None
    with pytest.raises(TimeoutError):
        await observer.wait("CP1", ["Authorize"], since=0, timeout=0.01)


def test_observer_keeps_only_the_latest_call_per_action_and_connector() -> None:
    now = [0.0]
    observer = CommissionObserver(clock=lambda: now[0])
    for i in range(1000):
        now[0] = float(i)
        exchanged(observer, "CP1", "MeterValues", {"connectorId": 1 + i % 2}, {})
    exchanged(observer, "CP1", "Heartbeat", {}, {"currentTime": "x"})
    kept = observer.seen("CP1", ["MeterValues", "Heartbeat"])
    assert [(e.action, e.connector, e.at) for e in kept] == [
        ("MeterValues", 1, 998.0),
        ("MeterValues", 2, 999.0),
        ("Heartbeat", None, 999.0),
    ]


def test_each_call_is_kept_as_the_event_it_meant() -> None:
    observer = CommissionObserver(clock=lambda: 5.0)
    exchanged(
        observer,
        "CP1",
        "BootNotification",
        {"chargePointVendor": "ABB", "chargePointModel": "Terra"},
        {"status": "Pending"},
    )
    exchanged(observer, "CP1", "StatusNotification", {"connectorId": 2, "status": "Faulted"}, {})
    exchanged(
        observer,
        "CP1",
        "StartTransaction",
        {"connectorId": 1, "idTag": "AB", "meterStart": 0},
        {"transactionId": 1, "idTagInfo": {"status": "Accepted"}},
    )
    exchanged(observer, "CP1", "Authorize", {"idTag": "CD"}, {"idTagInfo": {"status": "Invalid"}})
    (boot,) = observer.seen("CP1", ["BootNotification"])
    assert isinstance(boot.event, ChargerBooted) and boot.event.status == "Pending"
    (status,) = observer.seen("CP1", ["StatusNotification"], predicate=on_connector(2))
    assert isinstance(status.event, ConnectorStatus) and status.event.status == "Faulted"
    start, authorize = observer.seen("CP1", ["StartTransaction", "Authorize"])
    assert isinstance(start.event, CardAnswered) and start.connector == 1
    assert isinstance(authorize.event, CardAnswered) and authorize.event.id_tag == "CD"
    assert authorize.connector is None
    # the calls that mean something are not kept twice (as the bare call too)
    assert {e.action for e in observer.seen("CP1", ["BootNotification", "Authorize"])} == {
        "BootNotification",
        "Authorize",
    }
    assert len(observer.seen("CP1", ["BootNotification"])) == 1


def test_sampled_reports_what_load_capping_reads() -> None:
    (_, measured) = interpret(
        "CP1",
        "MeterValues",
        {
            "connectorId": 1,
            "meterValue": [
                {
                    "sampledValue": [
                        {"value": "10.123", "measurand": "Current.Import", "phase": "L1"},
                        {"value": "11", "measurand": "Current.Import", "phase": "L2-N"},
                        {
                            "value": "99",
                            "measurand": "Current.Import",
                            "phase": "L3",
                            "location": "Inlet",
                        },
                        {"value": "400", "measurand": "Voltage", "phase": "L1-L2"},
                        {"value": "16", "measurand": "Current.Import"},
                        {"value": "1000"},
                    ]
                }
            ],
        },
        {},
        0.0,
    )
    assert isinstance(measured, Measured)
    assert sampled(measured) == {
        "measurands": ["Current.Import", "Voltage", "Energy.Active.Import.Register"],
        # the Inlet's L3 is the supply side: load capping does not read it, nor does this step
        "current_import": {"L1": 10.12, "L2": 11.0, "total": 16.0},
    }


def test_a_kept_call_is_the_same_exchange_for_every_asker() -> None:
    """A call is kept cheaply (every call of every charger goes through here) and made an
    :class:`Exchange` when a step asks: the same one for each later question, in call order."""
    now = [5.0]
    observer = CommissionObserver(clock=lambda: now[0])
    exchanged(observer, "CP1", "Heartbeat", {}, {"currentTime": "x"})
    now[0] = 6.0
    exchanged(observer, "CP1", "StatusNotification", {"connectorId": 1, "status": "Charging"}, {})
    first = observer.seen("CP1", ["Heartbeat", "StatusNotification"])
    assert [(e.action, e.at, e.connector) for e in first] == [
        ("Heartbeat", 5.0, None),
        ("StatusNotification", 6.0, 1),
    ]
    assert observer.seen("CP1", ["StatusNotification"], since=5.5)[0] is first[1]
    assert observer.seen("CP1", ["Heartbeat"], since=5.5) == []
    assert observer.seen("CP1", ["Heartbeat"], predicate=lambda e: e.at > 5) == []
