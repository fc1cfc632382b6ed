"""The OCPP 2.0.1 interpreter: table tests of each action, and never raising on anything."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgegw.ocpp.events import (
    CallExchanged,
    CardAnswered,
    ChargerBooted,
    ConnectorStatus,
    Measured,
    SessionStarted,
    SessionStopped,
)
from edgegw.ocpp.interpret201 import interpret201

AT = 1000.0


def read(action: str, request: Any, response: Any = None) -> tuple[Any, ...]:
    events = interpret201("CP1", action, request, {} if response is None else response, AT)
    assert events[0] == CallExchanged(charger_id="CP1", at=AT, action=action)
    return events[1:]


def sample(value: Any, measurand: str | None = None, **extra: Any) -> dict[str, Any]:
    item: dict[str, Any] = {"value": value, **extra}
    if measurand is not None:
        item["measurand"] = measurand
    return item


def tx(event_type: str, **extra: Any) -> dict[str, Any]:
    return {
        "eventType": event_type,
        "timestamp": "2026-12-07T10:00:00Z",
        "triggerReason": extra.pop("trigger", "Authorized"),
        "seqNo": 0,
        "transactionInfo": {"transactionId": "tx-9f3a", **extra.pop("info", {})},
        **extra,
    }


def test_boot_reads_the_charging_station() -> None:
    request = {
        "reason": "PowerUp",
        "chargingStation": {
            "model": "M1",
            "vendorName": "V",
            "firmwareVersion": "1.2",
            "serialNumber": "S9",
        },
    }
    (booted,) = read("BootNotification", request, {"status": "Pending", "interval": 60})
    assert booted == ChargerBooted(
        charger_id="CP1",
        at=AT,
        accepted=False,
        status="Pending",
        vendor="V",
        model="M1",
        firmware="1.2",
        serial="S9",
    )


@pytest.mark.parametrize(
    ("reported", "expected"),
    [
        ("Available", "Available"),
        ("Occupied", "Preparing"),
        ("Reserved", "Reserved"),
        ("Unavailable", "Unavailable"),
        ("Faulted", "Faulted"),
        ("Charging", None),  # not a 2.0.1 connectorStatus
        (5, None),
    ],
)
def test_status_maps_to_the_16_names(reported: Any, expected: str | None) -> None:
    request = {"timestamp": "t", "connectorStatus": reported, "evseId": 2, "connectorId": 1}
    events = read("StatusNotification", request)
    if expected is None:
        assert events == ()
    else:
        assert events == (ConnectorStatus(charger_id="CP1", at=AT, connector=2, status=expected),)


def test_authorize_carries_the_token_type() -> None:
    request = {"idToken": {"idToken": "04A1B2C3", "type": "ISO14443"}}
    (card,) = read("Authorize", request, {"idTokenInfo": {"status": "Blocked"}})
    assert card == CardAnswered(
        charger_id="CP1",
        at=AT,
        id_tag="04A1B2C3",
        status="Blocked",
        during="Authorize",
        id_type="ISO14443",
    )
    assert read("Authorize", request, {}) == ()  # no status answered: nothing to learn


def test_transaction_started_updated_ended() -> None:
    token = {"idToken": "EMAID1", "type": "eMAID"}
    start = tx(
        "Started",
        evse={"id": 1, "connectorId": 1},
        idToken=token,
        info={"chargingState": "EVConnected"},
        meterValue=[
            {
                "timestamp": "t",
                "sampledValue": [
                    sample(1.5, unitOfMeasure={"unit": "kWh"}, context="Transaction.Begin")
                ],
            }
        ],
    )
    started, card, status = read("TransactionEvent", start, {"idTokenInfo": {"status": "Accepted"}})
    assert started == SessionStarted(
        charger_id="CP1",
        at=AT,
        connector=1,
        transaction_id="tx-9f3a",
        id_tag="EMAID1",
        id_tag_status="Accepted",
        meter_start_wh=1500.0,
        trigger_reason="Authorized",
    )
    assert card.during == "TransactionEvent" and card.connector == 1 and card.id_type == "eMAID"
    assert status == ConnectorStatus(charger_id="CP1", at=AT, connector=1, status="Preparing")

    update = tx(
        "Updated",
        trigger="MeterValuePeriodic",
        evse={"id": 1},
        info={"chargingState": "Charging"},
        meterValue=[
            {
                "timestamp": "t",
                "sampledValue": [
                    sample(16.0, "Current.Import", phase="L1", unitOfMeasure={"unit": "A"}),
                    sample(15.5, "Current.Import", phase="L2"),
                    sample(
                        1.1, "Power.Active.Import", unitOfMeasure={"unit": "W", "multiplier": 4}
                    ),
                    sample(2000, "Energy.Active.Import.Register"),
                    sample(99, "Current.Import", phase="L3", location="Inlet"),
                    sample(400, "Voltage", phase="L1-L2", unitOfMeasure={"unit": "V"}),
                ],
            }
        ],
    )
    status, measured = read("TransactionEvent", update)
    assert status.status == "Charging"
    assert measured == Measured(
        charger_id="CP1",
        at=AT,
        connector=1,
        transaction_id="tx-9f3a",
        current_a=(16.0, 15.5, None),
        power_w=11000.0,
        energy_wh=2000.0,
        measurands=(
            "Current.Import",
            "Power.Active.Import",
            "Energy.Active.Import.Register",
            "Voltage",
        ),
        trigger_reason="MeterValuePeriodic",
    )
    assert measured.currents(3) == (16.0, 15.5, 0.0)

    end = tx(
        "Ended",
        trigger="EVCommunicationLost",
        evse={"id": 1},
        info={"stoppedReason": "EVDisconnected"},
        meterValue=[
            {"timestamp": "t", "sampledValue": [sample(7.25, unitOfMeasure={"unit": "kWh"})]}
        ],
    )
    measured, stopped = read("TransactionEvent", end)
    assert measured.energy_wh == 7250.0
    assert stopped == SessionStopped(
        charger_id="CP1",
        at=AT,
        transaction_id="tx-9f3a",
        connector=1,
        meter_stop_wh=7250.0,
        reason="EVDisconnected",
        trigger_reason="EVCommunicationLost",
    )


def test_ended_without_evse_or_reason() -> None:
    (stopped,) = read("TransactionEvent", tx("Ended"))
    assert stopped.connector is None and stopped.reason == "Local"
    assert stopped.transaction_id == "tx-9f3a"


def test_updated_without_evse_says_nothing_it_cannot_place() -> None:
    update = tx("Updated", meterValue=[{"timestamp": "t", "sampledValue": [sample(5)]}])
    assert read("TransactionEvent", update) == ()


@pytest.mark.parametrize("transaction_id", [5, "", "x" * 37, None, ["a"]])
def test_unusable_transaction_ids_are_none(transaction_id: Any) -> None:
    (stopped,) = read(
        "TransactionEvent", {**tx("Ended"), "transactionInfo": {"transactionId": transaction_id}}
    )
    assert stopped.transaction_id is None


def test_meter_values_by_evse() -> None:
    values = [{"timestamp": "t", "sampledValue": [sample(10, "Current.Import")]}]
    (measured,) = read("MeterValues", {"evseId": 2, "meterValue": values})
    assert measured.connector == 2 and measured.overall_current_a == 10.0
    assert measured.transaction_id is None
    assert read("MeterValues", {"evseId": 0, "meterValue": values}) == ()  # the station


@pytest.mark.parametrize("multiplier", [31, -40, 1.5, True, "3"])
def test_unusable_multipliers_skip_the_sample(multiplier: Any) -> None:
    item = sample(10, "Current.Import", unitOfMeasure={"unit": "A", "multiplier": multiplier})
    (measured,) = read("MeterValues", {"evseId": 1, "meterValue": [{"sampledValue": [item]}]})
    assert measured.overall_current_a is None


@pytest.mark.parametrize("value", [math.nan, math.inf, "1e400", None, True, {}])
def test_unusable_values_are_skipped(value: Any) -> None:
    item = sample(value, "Current.Import")
    (measured,) = read("MeterValues", {"evseId": 1, "meterValue": [{"sampledValue": [item]}]})
    assert measured.overall_current_a is None


def test_huge_value_times_multiplier_is_skipped() -> None:
    item = sample(1e300, "Power.Active.Import", unitOfMeasure={"unit": "W", "multiplier": 30})
    (measured,) = read("MeterValues", {"evseId": 1, "meterValue": [{"sampledValue": [item]}]})
    assert measured.power_w is None


@pytest.mark.parametrize("action", ["Heartbeat", "NotifyEvent", "StartTransaction"])
def test_other_actions_are_only_heard(action: str) -> None:
    assert (
        read(action, {"connectorId": 1, "idTag": "A"}, {"idTagInfo": {"status": "Accepted"}}) == ()
    )


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.just(10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.sampled_from(["Started", "Updated", "Ended", "Occupied", "Charging", "A", "kWh", "L1"]),
)
_keys = st.sampled_from(
    [
        "eventType",
        "transactionInfo",
        "transactionId",
        "chargingState",
        "stoppedReason",
        "evse",
        "id",
        "evseId",
        "connectorStatus",
        "idToken",
        "type",
        "idTokenInfo",
        "status",
        "meterValue",
        "sampledValue",
        "value",
        "measurand",
        "phase",
        "location",
        "unitOfMeasure",
        "unit",
        "multiplier",
        "chargingStation",
        "triggerReason",
    ]
)
_json = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(_keys, inner, max_size=6)),
    max_leaves=30,
)
_actions = st.sampled_from(
    [
        "BootNotification",
        "StatusNotification",
        "Authorize",
        "TransactionEvent",
        "MeterValues",
        "Heartbeat",
    ]
)


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(action=_actions, request_=_json, response=_json)
def test_never_raises(action: str, request_: Any, response: Any) -> None:
    events = interpret201("CP1", action, request_, response, AT)
    assert isinstance(events[0], CallExchanged)
    for event in events[1:]:
        for field in dataclasses.fields(event):
            value = getattr(event, field.name)
            assert not (isinstance(value, float) and not math.isfinite(value))


def test_the_hub_reads_a_2x_charger_with_the_201_interpreter() -> None:
    from edgegw.ocpp.hub import EventHub

    heard: list[Any] = []

    class Part:
        def handle(self, event: Any) -> None:
            heard.append(event)

    versions = {"CP2": "ocpp2.0.1"}
    hub = EventHub([Part()], clock=lambda: AT, version_of=versions.get)
    request = {"evseId": 1, "connectorId": 1, "connectorStatus": "Occupied", "timestamp": "t"}
    hub.charger_exchanged("CP2", "StatusNotification", request, {})
    hub.charger_exchanged("CP1", "StatusNotification", request, {})  # 1.6: no "status" key
    assert [type(e).__name__ for e in heard] == [
        "CallExchanged",
        "ConnectorStatus",
        "CallExchanged",
    ]
    assert heard[1].status == "Preparing"
