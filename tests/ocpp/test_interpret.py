"""OCPP 1.6 interpret: each call's events, table-driven; and it never raises on hostile input."""

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
    Event,
    Measured,
    SessionStarted,
    SessionStopped,
)
from edgegw.ocpp.interpret import interpret

AT = 1000.0
C = "cp-1"


def events(action: str, request: Any, response: Any = None) -> tuple[Event, ...]:
    got = interpret(C, action, request, {} if response is None else response, AT)
    assert got[0] == CallExchanged(charger_id=C, at=AT, action=action)
    return got[1:]


def sv(value: Any, measurand: str | None = None, **extra: Any) -> dict[str, Any]:
    item: dict[str, Any] = {"value": value, **extra}
    if measurand is not None:
        item["measurand"] = measurand
    return item


def measured(*values: dict[str, Any], tx: Any = None, connector: Any = 1) -> Measured:
    request: dict[str, Any] = {
        "connectorId": connector,
        "meterValue": [{"sampledValue": list(values)}],
    }
    if tx is not None:
        request["transactionId"] = tx
    (event,) = events("MeterValues", request)
    assert isinstance(event, Measured)
    return event


CUR = "Current.Import"
PWR = "Power.Active.Import"
NRG = "Energy.Active.Import.Register"


# ------------------------------------------------------------------ every call is heard


@pytest.mark.parametrize("action", ["Heartbeat", "DataTransfer", "FirmwareStatusNotification"])
def test_a_call_no_event_describes_is_still_heard(action: str) -> None:
    assert events(action, {}) == ()


# ------------------------------------------------------------------ BootNotification


@pytest.mark.parametrize(
    ("request_", "response", "expected"),
    [
        (
            {
                "chargePointVendor": "ABB",
                "chargePointModel": "Terra AC",
                "firmwareVersion": "1.6.3",
                "chargePointSerialNumber": "S1",
            },
            {"status": "Accepted", "interval": 60},
            ChargerBooted(
                charger_id=C,
                at=AT,
                accepted=True,
                status="Accepted",
                vendor="ABB",
                model="Terra AC",
                firmware="1.6.3",
                serial="S1",
            ),
        ),
        (
            {"chargePointVendor": "X", "chargePointModel": 5},
            {"status": "Pending"},
            ChargerBooted(charger_id=C, at=AT, accepted=False, status="Pending", vendor="X"),
        ),
        ({}, {}, ChargerBooted(charger_id=C, at=AT, accepted=False)),
    ],
)
def test_boot(request_: dict[str, Any], response: dict[str, Any], expected: Event) -> None:
    assert events("BootNotification", request_, response) == (expected,)


# ------------------------------------------------------------------ StatusNotification


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        (
            {"connectorId": 1, "status": "Charging", "errorCode": "NoError"},
            (
                ConnectorStatus(
                    charger_id=C, at=AT, connector=1, status="Charging", error_code="NoError"
                ),
            ),
        ),
        (
            {
                "connectorId": 0,
                "status": "Faulted",
                "errorCode": "GroundFailure",
                "info": "rcd",
                "vendorErrorCode": "E12",
            },
            (
                ConnectorStatus(
                    charger_id=C,
                    at=AT,
                    connector=0,
                    status="Faulted",
                    error_code="GroundFailure",
                    info="rcd",
                    vendor_error_code="E12",
                ),
            ),
        ),
        ({"connectorId": 2.0, "status": "Available"}, None),  # a float holding an integer
        ({"connectorId": -1, "status": "Available"}, ()),
        ({"connectorId": True, "status": "Available"}, ()),
        ({"connectorId": "1", "status": "Available"}, ()),
        ({"connectorId": 1}, ()),
        ({"connectorId": 1, "status": 3}, ()),
        ({"status": "Available"}, ()),
    ],
)
def test_status(request_: dict[str, Any], expected: tuple[Event, ...] | None) -> None:
    got = events("StatusNotification", request_)
    if expected is None:
        assert got == (ConnectorStatus(charger_id=C, at=AT, connector=2, status="Available"),)
    else:
        assert got == expected


# ------------------------------------------------------------------ Authorize


@pytest.mark.parametrize(
    ("request_", "response", "expected"),
    [
        (
            {"idTag": "04A2"},
            {"idTagInfo": {"status": "Accepted"}},
            (
                CardAnswered(
                    charger_id=C, at=AT, id_tag="04A2", status="Accepted", during="Authorize"
                ),
            ),
        ),
        (
            {"idTag": "04A2"},
            {"idTagInfo": {"status": "Blocked", "expiryDate": "2030-01-01T00:00:00Z"}},
            (
                CardAnswered(
                    charger_id=C, at=AT, id_tag="04A2", status="Blocked", during="Authorize"
                ),
            ),
        ),
        ({"idTag": "04A2"}, {}, ()),
        ({"idTag": "04A2"}, {"idTagInfo": "Accepted"}, ()),
        ({}, {"idTagInfo": {"status": "Accepted"}}, ()),
        ({"idTag": 42}, {"idTagInfo": {"status": "Accepted"}}, ()),
    ],
)
def test_authorize(
    request_: dict[str, Any], response: dict[str, Any], expected: tuple[Event, ...]
) -> None:
    assert events("Authorize", request_, response) == expected


# ------------------------------------------------------------------ StartTransaction


def test_start_accepted_gives_the_session_then_the_card() -> None:
    got = events(
        "StartTransaction",
        {"connectorId": 2, "idTag": "AB", "meterStart": 1500, "timestamp": "x"},
        {"transactionId": 77, "idTagInfo": {"status": "Accepted"}},
    )
    assert got == (
        SessionStarted(
            charger_id=C,
            at=AT,
            connector=2,
            transaction_id="77",
            id_tag="AB",
            id_tag_status="Accepted",
            meter_start_wh=1500.0,
        ),
        CardAnswered(
            charger_id=C,
            at=AT,
            id_tag="AB",
            status="Accepted",
            during="StartTransaction",
            connector=2,
        ),
    )


def test_start_refused_still_starts_a_session() -> None:
    """The charger decides whether it charges (StopTransactionOnInvalidId): both see it."""
    started, card = events(
        "StartTransaction",
        {"connectorId": 1, "idTag": "AB", "meterStart": 0},
        {"transactionId": 3, "idTagInfo": {"status": "Invalid"}},
    )
    assert isinstance(started, SessionStarted) and started.transaction_id == "3"
    assert isinstance(card, CardAnswered) and not card.accepted and card.connector == 1


@pytest.mark.parametrize(
    ("tx", "expected"),
    [
        (0, "0"),
        (2**31 - 1, "2147483647"),
        (-5, "-5"),
        (12.0, "12"),
        ("42", "42"),
        (" 42 ", "42"),
        ("0042", "42"),
        (None, None),
        (True, None),
        (1.5, None),
        (math.nan, None),
        (math.inf, None),
        ("abc", None),
        ("", None),
        ("4" * 25, None),
        pytest.param(
            10**4400, None, id="huge-int"
        ),  # str() of it would raise: beyond Python's digit limit
        ([1], None),
        ("٣", None),  # a digit, but not an ASCII one
    ],
)
def test_transaction_ids_are_decimal_strings(tx: Any, expected: str | None) -> None:
    (started, _card) = events(
        "StartTransaction",
        {"connectorId": 1, "idTag": "AB", "meterStart": 0},
        {"transactionId": tx, "idTagInfo": {"status": "Accepted"}},
    )
    assert isinstance(started, SessionStarted)
    assert started.transaction_id == expected
    (stopped,) = events("StopTransaction", {"transactionId": tx, "meterStop": 1})
    assert isinstance(stopped, SessionStopped)
    assert stopped.transaction_id == expected


def test_start_without_answer_fields() -> None:
    (started,) = events("StartTransaction", {"connectorId": 1, "idTag": "AB"}, {})
    assert started == SessionStarted(
        charger_id=C, at=AT, connector=1, transaction_id=None, id_tag="AB"
    )


@pytest.mark.parametrize("meter_start", ["nan", math.nan, math.inf, "1e400", 10**400, True, {}])
def test_start_meter_not_a_finite_number_is_none(meter_start: Any) -> None:
    (started, _card) = events(
        "StartTransaction",
        {"connectorId": 1, "idTag": "AB", "meterStart": meter_start},
        {"transactionId": 1, "idTagInfo": {"status": "Accepted"}},
    )
    assert isinstance(started, SessionStarted) and started.meter_start_wh is None


def test_start_without_a_connector_gives_nothing() -> None:
    assert events("StartTransaction", {"idTag": "AB"}, {"transactionId": 1}) == ()


# ------------------------------------------------------------------ StopTransaction


def test_stop() -> None:
    got = events(
        "StopTransaction",
        {
            "transactionId": 77,
            "idTag": "AB",
            "meterStop": 9000,
            "reason": "EVDisconnected",
            "timestamp": "x",
        },
        {"idTagInfo": {"status": "Accepted"}},
    )
    assert got == (
        SessionStopped(
            charger_id=C,
            at=AT,
            transaction_id="77",
            id_tag="AB",
            meter_stop_wh=9000.0,
            reason="EVDisconnected",
        ),
    )


def test_stop_reason_defaults_to_local() -> None:
    (stopped,) = events("StopTransaction", {"transactionId": 1, "meterStop": 1})
    assert isinstance(stopped, SessionStopped) and stopped.reason == "Local"


def test_stop_transaction_data_is_not_a_measurement_of_now() -> None:
    got = events(
        "StopTransaction",
        {
            "transactionId": 1,
            "meterStop": 100,
            "transactionData": [
                {"sampledValue": [sv("32", CUR, phase="L1"), sv("5000", NRG)]},
            ],
        },
    )
    assert len(got) == 1 and isinstance(got[0], SessionStopped)


# ------------------------------------------------------------------ MeterValues


@pytest.mark.parametrize(
    ("values", "current", "overall", "power", "energy"),
    [
        # phases L1..L3 and L1-N..L3-N count; a phase not reported is None
        (
            [sv("10", CUR, phase="L1"), sv("11", CUR, phase="L2-N")],
            (10.0, 11.0, None),
            None,
            None,
            None,
        ),
        # line-to-line and N do not count
        ([sv("10", CUR, phase="L1-L2"), sv("3", CUR, phase="N")], None, None, None, None),
        # a current without a phase is kept apart
        ([sv("16", CUR)], None, 16.0, None, None),
        ([sv("16", CUR, unit="A")], None, 16.0, None, None),
        # an unknown unit: not a number we can use
        ([sv("16000", CUR, unit="mA")], None, None, None, None),
        ([sv("7", PWR, unit="kW")], None, None, 7000.0, None),
        ([sv("700", PWR, unit="W")], None, None, 700.0, None),
        ([sv("700", PWR)], None, None, 700.0, None),
        ([sv("700", PWR, unit="kWh")], None, None, None, None),
        # the default measurand is the energy register, in Wh unless told
        ([sv("12.5", unit="kWh")], None, None, None, 12500.0),
        ([sv("12", NRG)], None, None, None, 12.0),
        ([sv("12", NRG, unit="W")], None, None, None, None),
        # per-phase power and energy are added up only when no total is given
        (
            [
                sv("1", PWR, phase="L1", unit="kW"),
                sv("2000", PWR, phase="L2"),
                sv("9", NRG, phase="L3"),
            ],
            None,
            None,
            3000.0,
            9.0,
        ),
        (
            [sv("1000", PWR, phase="L1"), sv("5000", PWR), sv("2000", PWR, phase="L2")],
            None,
            None,
            5000.0,
            None,
        ),
        # locations: Outlet (default), Body, Cable, EV; not Inlet nor anything else
        ([sv("5", CUR, location="Body")], None, 5.0, None, None),
        ([sv("5", CUR, location="Cable")], None, 5.0, None, None),
        ([sv("5", CUR, location="EV")], None, 5.0, None, None),
        ([sv("5", CUR, location="Inlet")], None, None, None, None),
        ([sv("5", CUR, location="Roof")], None, None, None, None),
        # negative values are kept as reported (currents() clamps them)
        ([sv("-2", CUR, phase="L1")], (-2.0, None, None), None, None, None),
        # values that are not finite numbers give nothing
        (
            [sv("nan", CUR), sv("inf", PWR), sv("1e400", NRG), sv("x", CUR, phase="L1")],
            None,
            None,
            None,
            None,
        ),
        ([sv(None, CUR), sv(True, PWR), sv([1], NRG)], None, None, None, None),
        # finite as written, infinite once scaled (kW, kWh): not a number we can use either
        ([sv("1e306", PWR, unit="kW"), sv("1e306", NRG, unit="kWh")], None, None, None, None),
        ([sv("1e306", PWR, unit="kW", phase="L1")], None, None, None, None),
        # phases each finite, their sum not: no total
        (
            [sv("1.7e308", PWR, phase="L1"), sv("1.7e308", PWR, phase="L2")],
            None,
            None,
            None,
            None,
        ),
        # Python's float() reads "1_6" as 16; OCPP's decimal does not
        ([sv("1_6", CUR)], None, None, None, None),
        # a value given as a JSON number still counts
        ([sv(6, CUR)], None, 6.0, None, None),
        # later values win
        ([sv("6", CUR), sv("7", CUR)], None, 7.0, None, None),
    ],
)
def test_meter_values(
    values: list[dict[str, Any]],
    current: tuple[float | None, ...] | None,
    overall: float | None,
    power: float | None,
    energy: float | None,
) -> None:
    event = measured(*values)
    assert event.current_a == current
    assert event.overall_current_a == overall
    assert event.power_w == power
    assert event.energy_wh == energy


@pytest.mark.parametrize(
    "context",
    [
        "Interruption.Begin",
        "Interruption.End",
        "Other",
        "Sample.Clock",
        "Sample.Periodic",
        "Transaction.Begin",
        "Transaction.End",
        "Trigger",
    ],
)
def test_meter_values_every_reading_context_is_a_measurement(context: str) -> None:
    assert measured(sv("16", CUR, context=context)).overall_current_a == 16.0


@pytest.mark.parametrize("context", ["CurrentMax", "sample.periodic", "", 3, None, ["Trigger"]])
def test_meter_values_outside_the_reading_contexts_are_skipped(context: Any) -> None:
    """Alfen replays its backlog with context "CurrentMax" (hardware/chargers/alfen-eve.toml):
    not an OCPP 1.6 ReadingContext, so not a value we can read as the load of now."""
    event = measured(
        sv("32", CUR, phase="L1", context=context), sv("7", CUR, phase="L2"), tx=9223372036854775807
    )
    assert event.current_a == (None, 7.0, None)


def test_alfens_replayed_backlog_gives_no_current() -> None:
    values = [
        sv("32.000", CUR, phase=p, unit="A", context="CurrentMax") for p in ("L1", "L2", "L3")
    ]
    event = measured(*values, tx=9223372036854775807)
    assert event.currents(3) is None
    assert event.measurands == (CUR,)


def test_meter_values_signed_data_is_not_a_number() -> None:
    event = measured(sv("12345", CUR, format="SignedData"), sv("6", CUR, phase="L1", format="Raw"))
    assert event.overall_current_a is None
    assert event.current_a == (6.0, None, None)


def test_meter_values_later_entries_win_and_earlier_ones_fill_in() -> None:
    request = {
        "connectorId": 1,
        "meterValue": [
            {"sampledValue": [sv("10", CUR, phase="L1"), sv("100", NRG)]},
            {"sampledValue": [sv("12", CUR, phase="L1"), sv("13", CUR, phase="L2")]},
        ],
    }
    (event,) = events("MeterValues", request)
    assert isinstance(event, Measured)
    assert event.current_a == (12.0, 13.0, None)
    assert event.energy_wh == 100.0


def test_meter_values_measurands_are_listed_at_any_location_once() -> None:
    event = measured(
        sv("1", CUR, phase="L1"),
        sv("2", CUR, phase="L2"),
        sv("3", "Voltage", location="Inlet"),
        sv("4"),
        sv("5", "SoC", location="EV"),
    )
    assert event.measurands == (CUR, "Voltage", NRG, "SoC")


def test_meter_values_offered_current() -> None:
    assert measured(sv("16", "Current.Offered")).offered_a == 16.0
    assert (
        measured(
            sv("10", "Current.Offered", phase="L1"), sv("13", "Current.Offered", phase="L3")
        ).offered_a
        == 13.0
    )


def test_meter_values_transaction_without_values_is_still_measured() -> None:
    """Both consumers learnt a session they missed the start of from it."""
    (event,) = events("MeterValues", {"connectorId": 2, "transactionId": 9, "meterValue": []})
    assert event == Measured(charger_id=C, at=AT, connector=2, transaction_id="9")


@pytest.mark.parametrize("connector", [0, -1, None, "1", True, 1.5])
def test_meter_values_of_no_connector_give_nothing(connector: Any) -> None:
    request = {"connectorId": connector, "meterValue": [{"sampledValue": [sv("16", CUR)]}]}
    assert events("MeterValues", request) == ()


@pytest.mark.parametrize(
    "meter_value",
    [None, "x", 5, {"sampledValue": []}, [None, 5, "x", {"sampledValue": "x"}, {"nope": 1}]],
)
def test_meter_values_malformed_structure_gives_an_empty_measurement(meter_value: Any) -> None:
    (event,) = events("MeterValues", {"connectorId": 1, "meterValue": meter_value})
    assert event == Measured(charger_id=C, at=AT, connector=1)


def test_meter_values_skip_bad_items_keep_good_ones() -> None:
    event = measured(
        None,  # type: ignore[arg-type]
        {"value": "5", "measurand": 7},
        {"value": "5", "measurand": CUR, "phase": 1},
        {"value": "5", "measurand": CUR, "unit": ["A"]},
        {"value": "5", "measurand": CUR, "location": None},
        sv("8", CUR, phase="L3"),
    )
    assert event.current_a == (None, None, 8.0)


@pytest.mark.parametrize("key", ["measurand", "location", "unit", "phase", "value"])
@pytest.mark.parametrize("bad", [[], ["Outlet"], {}, {"a": 1}])
def test_meter_values_unhashable_fields_are_skipped(key: str, bad: Any) -> None:
    """A list or object where a name belongs (not hashable: a set lookup would raise)."""
    event = measured({**sv("5", CUR, phase="L1"), key: bad}, sv("7", CUR, phase="L2"))
    assert event.current_a == (None, 7.0, None)


def test_meter_values_feed_the_one_phase_rule() -> None:
    """The event carries what was reported; Measured.currents() is the rule consumers use."""
    assert measured(sv("16", CUR)).currents(3) == (16.0, 16.0, 16.0)
    assert measured(sv("10", CUR, phase="L1"), sv("16", CUR)).currents(3) == (10.0, 0.0, 0.0)
    assert measured(sv("6900", PWR)).currents(3) == (10.0, 10.0, 10.0)
    assert measured(sv("-3", CUR, phase="L1")).currents(1) == (0.0,)


@pytest.mark.parametrize(
    ("phase", "expected"),
    [("L2", (9.0,)), ("L3", (9.0,)), ("L1", (9.0,))],
)
def test_a_single_phase_charger_reporting_on_another_phase_counts_it(
    phase: str, expected: tuple[float, ...]
) -> None:
    """A single-phase charger wired to its L1 that names its phase L2 or L3 still draws it."""
    assert measured(sv("9", CUR, phase=phase)).currents(1) == expected


def test_phases_beyond_the_count_count_only_when_none_within_it_was_reported() -> None:
    event = measured(sv("4", CUR, phase="L1"), sv("9", CUR, phase="L3"))
    assert event.currents(1) == (4.0,)
    assert event.currents(2) == (4.0, 0.0)
    assert measured(sv("5", CUR, phase="L2"), sv("9", CUR, phase="L3")).currents(1) == (9.0,)
    assert measured(sv("5", CUR, phase="L3")).currents(2) == (5.0, 5.0)


def test_a_huge_list_is_read_whole() -> None:
    values = [sv(str(i), CUR, phase="L1") for i in range(20_000)]
    assert measured(*values).current_a == (19_999.0, None, None)


def test_many_distinct_measurands_are_listed_up_to_a_bound() -> None:
    values = [sv("1", f"Vendor.{i}") for i in range(1000)]
    assert len(measured(*values).measurands) == 64


# ------------------------------------------------------------------ never raises


def test_an_action_that_is_not_a_string_is_only_heard() -> None:
    """The hub hands what the frame held; a list there must not raise (not hashable)."""
    got = interpret(C, ["MeterValues"], {}, {}, AT)  # type: ignore[arg-type]
    assert got == (CallExchanged(charger_id=C, at=AT, action="['MeterValues']"),)


@pytest.mark.parametrize(
    ("action", "request_"),
    [
        (
            "MeterValues",
            {"connectorId": 1, "meterValue": [{"sampledValue": [sv("1e306", PWR, unit="kW")]}]},
        ),
        ("StartTransaction", {"connectorId": 1, "meterStart": "1e306"}),
    ],
)
def test_a_huge_decimal_gives_only_finite_numbers(action: str, request_: Any) -> None:
    for event in interpret(C, action, request_, {}, AT):
        assert_every_number_finite(event)


@pytest.mark.parametrize(
    "action",
    [
        "BootNotification",
        "StatusNotification",
        "Authorize",
        "StartTransaction",
        "StopTransaction",
        "MeterValues",
    ],
)
@pytest.mark.parametrize("payload", [None, [], "x", 5, 1.5])
def test_payloads_that_are_not_objects_give_only_the_call(action: str, payload: Any) -> None:
    assert interpret(C, action, payload, {}, AT) == (
        CallExchanged(charger_id=C, at=AT, action=action),
    )
    assert interpret(C, action, {}, payload, AT) == (
        CallExchanged(charger_id=C, at=AT, action=action),
    )


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.just(10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    # decimals with large exponents: finite as written, maybe not once scaled or added up
    st.builds(
        "{}e{}".format,
        st.floats(min_value=-9.9, max_value=9.9, allow_nan=False),
        st.integers(min_value=290, max_value=310),
    ),
    st.sampled_from(
        [
            "L1",
            "L2-N",
            "L1-L2",
            "N",
            "A",
            "kW",
            "W",
            "Wh",
            "kWh",
            "Inlet",
            "EV",
            "1e400",
            "nan",
            CUR,
            PWR,
            NRG,
            "Current.Offered",
            "Accepted",
            "-0",
            "12",
            "1e306",
            "1.7e308",
            "-1.7e308",
            "CurrentMax",
            "Sample.Periodic",
            "SignedData",
            "Raw",
        ]
    ),
)
_keys = st.sampled_from(
    [
        "connectorId",
        "transactionId",
        "meterValue",
        "sampledValue",
        "value",
        "measurand",
        "phase",
        "unit",
        "location",
        "idTag",
        "idTagInfo",
        "status",
        "meterStart",
        "meterStop",
        "reason",
        "chargePointVendor",
        "errorCode",
        "transactionData",
        "context",
        "format",
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
        "StartTransaction",
        "StopTransaction",
        "MeterValues",
        "Heartbeat",
    ]
)


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(action=_actions, request_=_json, response=_json)
def test_interpret_never_raises(action: str, request_: Any, response: Any) -> None:
    got = interpret(C, action, request_, response, AT)
    assert got[0] == CallExchanged(charger_id=C, at=AT, action=action)
    for event in got:
        assert event.charger_id == C and event.at == AT
        assert_every_number_finite(event)


def assert_every_number_finite(event: Event) -> None:
    """Every number an event carries, and every current :meth:`Measured.currents` derives."""
    numbers: list[float] = []
    for item in dataclasses.fields(event):
        value = getattr(event, item.name)
        for one in value if isinstance(value, tuple) else (value,):
            if isinstance(one, (int, float)) and not isinstance(one, bool):
                numbers.append(one)
    if isinstance(event, Measured):
        for phases in (1, 2, 3):
            for from_power in (True, False):
                numbers.extend(event.currents(phases, from_power=from_power) or ())
    assert all(math.isfinite(n) for n in numbers), event


_sample = st.fixed_dictionaries(
    {"value": _json},
    optional={
        "measurand": _json,
        "phase": _json,
        "unit": _json,
        "location": _json,
        "context": _json,
        "format": _json,
    },
)


@settings(max_examples=400)
@given(
    connector=_scalars,
    tx=_scalars,
    entries=st.lists(
        st.one_of(_scalars, st.fixed_dictionaries({"sampledValue": st.lists(_sample, max_size=8)})),
        max_size=4,
    ),
)
def test_meter_values_never_raise(connector: Any, tx: Any, entries: list[Any]) -> None:
    request = {"connectorId": connector, "transactionId": tx, "meterValue": entries}
    got = interpret(C, "MeterValues", request, {}, AT)
    for event in got[1:]:
        assert isinstance(event, Measured) and event.connector >= 1
        assert_every_number_finite(event)


_big_decimal = st.builds(
    "{}e{}".format,
    st.floats(min_value=-9.99, max_value=9.99, allow_nan=False),
    st.integers(min_value=300, max_value=308),
)
_readable_sample = st.fixed_dictionaries(
    {
        "value": st.one_of(_big_decimal, st.sampled_from(["16", "-3", "1.7e308"])),
        "measurand": st.sampled_from([CUR, PWR, NRG, "Current.Offered"]),
        "unit": st.sampled_from(["A", "W", "kW", "Wh", "kWh"]),
    },
    optional={"phase": st.sampled_from(["L1", "L2", "L3", "L1-N"])},
)


@settings(max_examples=300)
@given(samples=st.lists(_readable_sample, min_size=1, max_size=8))
def test_readable_values_with_large_exponents_give_finite_numbers(
    samples: list[dict[str, Any]],
) -> None:
    """Values every filter lets through, scaled (kW, kWh) and added up (phases): still finite."""
    assert_every_number_finite(measured(*samples))


_near_plain_value = st.one_of(
    st.sampled_from(["16", "1_6", " 7.5 ", "nan", "-inf", "1e306", "x", "", "0x10", "1e-400"]),
    st.floats(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=2),
)
_near_plain_sample = st.fixed_dictionaries(
    {"value": _near_plain_value},
    optional={
        "measurand": st.one_of(
            st.sampled_from([CUR, PWR, NRG, "Current.Offered", "Voltage"]), _json
        ),
        "unit": st.one_of(st.sampled_from(["A", "W", "kW", "Wh", "kWh", "V"]), _json),
        "phase": st.one_of(st.sampled_from(["L1", "L2", "L3", "L1-N", "L1-L2", "N"]), _json),
        "location": st.sampled_from(["Outlet", "Inlet", "Body"]),
        "context": st.sampled_from(["Sample.Periodic", "CurrentMax"]),
        "format": st.sampled_from(["Raw", "SignedData"]),
        "timestamp": _json,  # a key no rule reads
    },
)


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(samples=st.lists(st.one_of(_near_plain_sample, _json), max_size=10))
def test_the_plain_fast_path_reads_as_the_full_rule(samples: list[dict[str, Any]]) -> None:
    """Sampled values of the common form are read by one table look-up (the hot path); every
    sampled value, plain or not, must read exactly as the full rule reads it on its own."""
    from edgegw.ocpp.interpret import _sample, _samples

    want_measurands: dict[str, None] = {}
    want_values: dict[tuple[str, int], float] = {}
    for item in samples:
        _sample(item, want_measurands, want_values)
    got_measurands, got_values = _samples([{"sampledValue": samples}])
    assert list(got_measurands) == list(want_measurands)
    assert got_values == want_values


def _currents_as_written(event: Measured, phases: int) -> tuple[float, ...] | None:
    """:meth:`Measured.currents` as its rule reads in words (the oracle for its fast form)."""
    count = max(1, min(3, phases))
    if event.current_a is not None and any(c is not None for c in event.current_a):
        within = event.current_a[:count]
        if all(c is None for c in within):
            beyond = max(c for c in event.current_a[count:] if c is not None)
            return (max(0.0, beyond),) * count
        return tuple(max(0.0, c or 0.0) for c in within)
    if event.overall_current_a is not None:
        return (max(0.0, event.overall_current_a),) * count
    if event.power_w is not None:
        return (max(0.0, event.power_w / (230.0 * count)),) * count
    return None


_amps = st.one_of(st.none(), st.floats(-50, 50), st.integers(-5, 5), st.just(-0.0))


@settings(max_examples=500)
@given(
    current=st.one_of(st.none(), st.tuples(_amps, _amps, _amps)),
    overall=st.one_of(st.none(), st.floats(-50, 50)),
    power=st.one_of(st.none(), st.floats(-1e5, 1e5)),
    phases=st.integers(-1, 5),
)
def test_currents_follow_the_rule_as_written(
    current: Any, overall: float | None, power: float | None, phases: int
) -> None:
    event = Measured(
        charger_id=C,
        at=AT,
        connector=1,
        current_a=current,
        overall_current_a=overall,
        power_w=power,
    )
    got, want = event.currents(phases), _currents_as_written(event, phases)
    assert got == want and [type(x) for x in got or ()] == [type(x) for x in want or ()]
