"""The live state: what chargers say, turned into snapshots, events and change notices."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from edgegw.auth.idtags import parse_card_id
from edgegw.auth.locallist import Card
from edgegw.config import Config, parse_config
from edgegw.daemon import Gateway
from edgegw.energy.controlstate import CircuitState
from edgegw.live.snapshot import snapshot_transaction_id
from edgegw.livestate import EventKind, LiveChange, LiveState, Scope
from edgegw.ocpp.events import (
    ChargerConnected,
    ChargerDisconnected,
    Measured,
    SessionStarted,
    SessionStopped,
)
from edgegw.ocpp.interpret import interpret
from edgegw.sim.charger import SimCharger
from edgegw.sim.cloud import SimCloud
from edgegw.sim.meter import SimMeter
from tests.conftest import GatewayFactory, gateway_url


@dataclass
class Parts:
    """The gateway parts LiveState reads, without a gateway."""

    config: Config
    sessions: dict[str, Any] = field(default_factory=dict)
    store: Any = None
    meters: Any = None
    controller: Any = None
    authorizer: Any = None


def sampled(*values: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"timestamp": "2026-01-01T10:00:00Z", "sampledValue": list(values)}]


NOW = 1_767_261_600.0


def feed(live: LiveState, charger: str, action: str, request: Any, response: Any) -> None:
    """What the event hub does with an answered call: interpret it, hand over each event."""
    for event in interpret(charger, action, request, response, NOW):
        live.handle(event)


def connect(live: LiveState, charger: str) -> None:
    live.handle(ChargerConnected(charger_id=charger, at=NOW))


def disconnect(live: LiveState, charger: str) -> None:
    live.handle(ChargerDisconnected(charger_id=charger, at=NOW))


def test_a_current_without_a_phase_is_the_load_the_controller_sees() -> None:
    """A Current.Import without a phase counts on every phase the charger is wired with (the
    controller's reading, :meth:`Measured.currents`), not on L1 only; the chargers' currents
    add up on the site phases each is wired to."""
    config = parse_config(
        {
            "chargers": [
                {"id": "THREE"},
                {"id": "ONE", "phases": "L2"},
                {"id": "ROT", "phases": "L2L3L1"},
            ]
        }
    )
    live = LiveState(Parts(config))
    for charger, amps in (("THREE", "16"), ("ONE", "10"), ("ROT", "6")):
        connect(live, charger)
        feed(
            live,
            charger,
            "MeterValues",
            {
                "connectorId": 1,
                "meterValue": sampled({"value": amps, "measurand": "Current.Import"}),
            },
            {},
        )
    three, one, rot = (live.charger(c) for c in ("THREE", "ONE", "ROT"))
    assert three is not None and one is not None and rot is not None
    assert three.current_a == (16.0, 16.0, 16.0)
    assert one.current_a == (10.0, None, None)  # its only phase, L1, on the site's L2
    assert rot.current_a == (6.0, 6.0, 6.0)
    assert live.site().ev_current_a == (22.0, 32.0, 22.0)
    # Phased values win; a phase not reported is 0 on a three-phase charger (as the controller
    # counts it); a rotated charger's L1 is the site's L2.
    feed(
        live,
        "ROT",
        "MeterValues",
        {
            "connectorId": 1,
            "meterValue": sampled({"value": "8", "measurand": "Current.Import", "phase": "L1"}),
        },
        {},
    )
    rot = live.charger("ROT")
    assert rot is not None and rot.current_a == (8.0, 0.0, 0.0)
    assert live.site().ev_current_a == (16.0, 34.0, 16.0)
    # Without any current, the power (at 230 V, spread over its phases) stands for it.
    feed(
        live,
        "THREE",
        "MeterValues",
        {
            "connectorId": 1,
            "meterValue": sampled(
                {"value": "6.9", "measurand": "Power.Active.Import", "unit": "kW"}
            ),
        },
        {},
    )
    three = live.charger("THREE")
    assert three is not None and three.current_a == (10.0, 10.0, 10.0)
    assert three.power_w == 6900.0


def test_meter_values_in_every_unit_and_phase_form() -> None:
    """The live state keeps what the event layer read (units scaled, line-to-line and NaN
    skipped, per-phase power added up without a total)."""
    live = LiveState(Parts(parse_config({"chargers": [{"id": "CP1"}]})))
    connect(live, "CP1")
    feed(
        live,
        "CP1",
        "StartTransaction",
        {"connectorId": 1, "idTag": "04A1B2C3", "meterStart": 10000},
        {"transactionId": 5, "idTagInfo": {"status": "Accepted"}},
    )
    feed(
        live,
        "CP1",
        "MeterValues",
        {
            "connectorId": 1,
            "transactionId": 5,
            "meterValue": sampled(
                {"value": "7.2", "measurand": "Power.Active.Import", "unit": "kW"},
                {"value": "12.5", "measurand": "Energy.Active.Import.Register", "unit": "kWh"},
                {"value": "10.0", "measurand": "Current.Import", "phase": "L1-N", "unit": "A"},
                {"value": "11.0", "measurand": "Current.Import", "phase": "L2", "unit": "A"},
                {"value": "99", "measurand": "Current.Import", "phase": "L1-L2", "unit": "A"},
                {"value": "NaN", "measurand": "Current.Import", "phase": "L3", "unit": "A"},
            ),
        },
        {},
    )
    cp1 = live.charger("CP1")
    assert cp1 is not None
    assert (cp1.current_a, cp1.power_w, cp1.energy_wh) == ((10.0, 11.0, 0.0), 7200.0, 2500.0)
    feed(
        live,
        "CP1",
        "MeterValues",
        {
            "connectorId": 1,
            "meterValue": sampled(
                {"value": "1000", "measurand": "Power.Active.Import", "phase": "L1"},
                {"value": "500", "measurand": "Power.Active.Import", "phase": "L2"},
            ),
        },
        {},
    )
    cp1 = live.charger("CP1")  # no current this time: the power stands for it (as above)
    assert cp1 is not None and cp1.power_w == 1500.0 and cp1.current_a == (1500 / 690,) * 3


def test_a_session_from_start_to_stop() -> None:
    config = parse_config({"chargers": [{"id": "CP1", "label": "Bay 1"}, {"id": "CP2"}]})
    owners = {"04A1B2C3": "Alice"}
    live = LiveState(Parts(config), owner_lookup=lambda _cid, tag: owners.get(tag))
    changes: list[LiveChange] = []
    live.on_change(changes.append)

    connect(live, "CP1")
    feed(
        live,
        "CP1",
        "BootNotification",
        {"chargePointVendor": "ACME", "chargePointModel": "Wallbox", "firmwareVersion": "1.2"},
        {"status": "Accepted"},
    )
    feed(
        live,
        "CP1",
        "StatusNotification",
        {"connectorId": 1, "status": "Preparing", "errorCode": "NoError"},
        {},
    )
    feed(
        live,
        "CP1",
        "StartTransaction",
        {"connectorId": 1, "idTag": "04A1B2C3", "meterStart": 1000, "timestamp": "t"},
        {"transactionId": 7, "idTagInfo": {"status": "Accepted"}},
    )
    feed(
        live,
        "CP1",
        "MeterValues",
        {
            "connectorId": 1,
            "transactionId": 7,
            "meterValue": sampled(
                {"value": "1500", "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
                {"value": "16", "measurand": "Current.Import", "phase": "L1"},
                {"value": "3680", "measurand": "Power.Active.Import"},
            ),
        },
        {},
    )
    feed(
        live,
        "CP1",
        "StatusNotification",
        {"connectorId": 1, "status": "Charging", "errorCode": "NoError"},
        {},
    )

    cp1 = live.charger("CP1")
    assert cp1 is not None
    assert (cp1.status, cp1.enabled, cp1.connected) == ("Charging", True, True)
    assert (cp1.vendor, cp1.model, cp1.firmware, cp1.label) == ("ACME", "Wallbox", "1.2", "Bay 1")
    assert cp1.power_w == 3680.0 and cp1.current_a == (16.0, 0.0, 0.0)
    assert cp1.energy_wh == 500.0 and cp1.sessions_active == 1
    session = cp1.connectors[0].session
    assert session is not None
    assert (session.transaction_id, session.id_tag, session.owner) == (7, "04A1B2C3", "Alice")
    assert live.charger("CP2") is not None and live.charger("CP2").status == "Offline"  # type: ignore[union-attr]

    feed(
        live,
        "CP1",
        "StopTransaction",
        {"transactionId": 7, "meterStop": 2000, "timestamp": "t", "reason": "EVDisconnected"},
        {},
    )
    cp1 = live.charger("CP1")
    assert cp1 is not None and cp1.sessions_active == 0 and cp1.power_w == 0.0
    kinds = [e.kind for e in live.events()]
    assert kinds == [
        EventKind.CHARGER_CONNECTED,
        EventKind.SESSION_STARTED,
        EventKind.SESSION_STOPPED,
    ]
    stopped = live.events()[-1]
    assert stopped.data["energy_wh"] == 1000.0 and stopped.data["reason"] == "EVDisconnected"
    assert stopped.data["owner"] == "Alice" and stopped.connector == 1
    # Every charger change was told, with the site where totals moved; events carry themselves.
    assert LiveChange(Scope.CHARGER, "CP1") in changes and LiveChange(Scope.SITE) in changes
    assert [c.event for c in changes if c.scope is Scope.EVENT] == live.events()
    # A repeated StopTransaction changes nothing and raises no event.
    feed(live, "CP1", "StopTransaction", {"transactionId": 7, "meterStop": 2000}, {})
    assert len(live.events()) == 3

    snapshot = live.snapshot()
    data = json.loads(json.dumps(snapshot.as_dict()))
    assert [c["id"] for c in data["chargers"]] == ["CP1", "CP2"]
    assert data["site"]["cloud"] == "standalone" and data["site"]["chargers_connected"] == 1


def test_cards_faults_availability_and_a_listener_that_breaks() -> None:
    live = LiveState(Parts(parse_config({"chargers": [{"id": "CP1"}]})))

    def broken(_change: LiveChange) -> None:
        raise RuntimeError("listener bug")

    seen: list[LiveChange] = []
    live.on_change(broken)
    remove = live.on_change(seen.append)
    connect(live, "CP1")
    feed(live, "CP1", "Authorize", {"idTag": "DEADBEEF"}, {"idTagInfo": {"status": "Blocked"}})
    refused = live.events()[-1]
    assert refused.kind is EventKind.CARD_REFUSED and refused.data["status"] == "Blocked"
    assert refused.data["during"] == "Authorize" and refused.data["owner"] is None

    feed(
        live,
        "CP1",
        "StatusNotification",
        {"connectorId": 1, "status": "Faulted", "errorCode": "GroundFailure", "info": "RCD"},
        {},
    )
    fault = live.events()[-1]
    assert fault.kind is EventKind.CHARGER_FAULT and fault.data["error_code"] == "GroundFailure"
    cp1 = live.charger("CP1")
    assert cp1 is not None and cp1.status == "Faulted"
    assert cp1.faults == ("connector 1: GroundFailure (RCD)",)

    for connector in (0, 1):
        feed(
            live,
            "CP1",
            "StatusNotification",
            {"connectorId": connector, "status": "Unavailable", "errorCode": "NoError"},
            {},
        )
    cp1 = live.charger("CP1")
    assert cp1 is not None and cp1.enabled is False and cp1.status == "Unavailable"
    assert cp1.faults == ()
    # A status the charger made up does not leak into the published set.
    feed(
        live,
        "CP1",
        "StatusNotification",
        {"connectorId": 0, "status": "Available", "errorCode": "NoError"},
        {},
    )
    feed(
        live,
        "CP1",
        "StatusNotification",
        {"connectorId": 1, "status": "Dancing", "errorCode": "NoError"},
        {},
    )
    assert live.charger("CP1").status == "Unknown"  # type: ignore[union-attr]
    # Nonsense payloads are ignored, never raised into the relay path.
    feed(live, "CP1", "StatusNotification", {"status": "Charging"}, {})
    feed(live, "CP1", "MeterValues", {"connectorId": "x"}, {})

    disconnect(live, "CP1")
    cp1 = live.charger("CP1")
    assert cp1 is not None and cp1.status == "Offline" and cp1.power_w is None
    count = len(seen)
    remove()
    connect(live, "CP1")
    assert len(seen) == count


class FakeController:
    """Just the ``state()`` LiveState reads from the load controller."""

    def __init__(self) -> None:
        self.limit_a = (32.0, 32.0, 32.0)
        self.meter = "ok"
        self.circuits: tuple[Any, ...] = ()

    def state(self) -> Any:
        return SimpleNamespace(
            limit_a=self.limit_a,
            mode="normal",
            meter=self.meter,
            chargers=(),
            circuits=self.circuits,
            used_a=None,
            headroom_a=None,
        )


async def test_limit_changes_are_events(tmp_path: Any) -> None:
    config = parse_config({"chargers": [{"id": "CP1"}]})
    controller = FakeController()
    live = LiveState(Parts(config, controller=controller), refresh_interval=0.01)
    live.start()
    try:
        await live.wait_refreshed()
        assert live.site().limit_a == (32.0, 32.0, 32.0) and live.site().mode == "normal"
        controller.limit_a = (20.0, 20.0, 20.0)
        await live.wait_refreshed()
        await live.wait_refreshed()
    finally:
        await live.close()
    changed = [e for e in live.events() if e.kind is EventKind.LIMIT_CHANGED]
    assert len(changed) == 1
    assert changed[0].data == {"limit_a": [20.0, 20.0, 20.0], "previous_limit_a": [32.0] * 3}


async def test_through_a_real_gateway_with_its_cloud_down(make_gateway: GatewayFactory) -> None:
    cloud = SimCloud()
    await cloud.start()
    url = cloud.url
    await cloud.stop()
    gateway = await make_gateway(cloud_url=url, auth={"unknown_cards": "accept"})
    assert gateway.authorizer is not None
    await gateway.authorizer.add_card(Card(parse_card_id("04A1B2C3"), owner="Alice"))
    live = LiveState(gateway, refresh_interval=0.02, backlog_interval=0.02)
    assert gateway.hub is not None
    gateway.hub = gateway.hub.extended(live)  # for the sessions that start after
    live.start()
    try:
        async with SimCharger("CP1", gateway_url(gateway), connectors=2) as cp:
            await cp.boot()
            tx = await cp.tap("04A1B2C3", connector=2)
            assert tx is not None
            await cp.meter_values(2)
            await live.wait_refreshed()
            await live.wait_refreshed()
            snapshot = live.snapshot()
            site = snapshot.site
            cp1 = next(c for c in snapshot.chargers if c.id == "CP1")
            assert cp1.connected and cp1.cloud_link == "offline"
            assert site.cloud == "offline" and site.cloud_online is False
            assert site.links == {"offline": 1} and site.sync_queued == 2  # start, meter values
            assert site.sessions_active == 1 and site.ev_power_w == cp1.power_w
            session = next(c for c in cp1.connectors if c.connector_id == 2).session
            assert session is not None and session.owner == "Alice"
            assert session.transaction_id == tx
    finally:
        await live.close()


async def test_the_site_meter_and_its_loss(make_gateway: GatewayFactory) -> None:
    async with SimMeter("eastron-sdm630") as meter:
        meter.set_currents(10.0, 11.0, 12.0)
        gateway = await make_gateway(
            chargers=[{"id": "CP1"}],
            site={"limit_a": 40, "margin_a": 2, "meter_lost_after": 0.5},
            buses={"main": {"transport": "tcp", "host": "127.0.0.1", "port": meter.port}},
            meters=[{"name": "grid", "profile": "eastron-sdm630", "poll_interval": 0.1}],
        )
        live = LiveState(gateway, refresh_interval=0.05)
        live.start()
        try:
            while live.site().meter is None or not live.site().meter.ok:  # type: ignore[union-attr]
                await live.wait_refreshed()
            site = live.site()
            assert site.current_a == (10.0, 11.0, 12.0)
            assert site.limit_a == (40.0, 40.0, 40.0) and site.margin_a == 2
            assert site.meter is not None and site.meter.name == "grid"
            await meter.stop()
            while not any(e.kind is EventKind.METER_LOST for e in live.events()):
                await live.wait_refreshed()
            assert live.site().meter.ok is False  # type: ignore[union-attr]
            await meter.start()
            while not any(e.kind is EventKind.METER_RESTORED for e in live.events()):
                await live.wait_refreshed()
        finally:
            await live.close()


@pytest.mark.parametrize("status", ["Charging", "SuspendedEV"])
def test_a_session_we_missed_the_start_of(status: str) -> None:
    live = LiveState(Parts(parse_config({})))
    connect(live, "X1")
    feed(
        live,
        "X1",
        "MeterValues",
        {"connectorId": 1, "transactionId": 3, "meterValue": sampled({"value": "9"})},
        {},
    )
    feed(live, "X1", "StatusNotification", {"connectorId": 1, "status": status}, {})
    x1 = live.charger("X1")
    assert x1 is not None and x1.status == status and x1.sessions_active == 1
    session = x1.connectors[0].session
    assert session is not None and session.transaction_id == 3 and session.energy_wh is None
    assert live.charger_ids() == ["X1"]


# ------------------------------------------------------------ the session lifecycle rule

ALFEN_TX = 9223372036854775807
"""Alfen's int64-maximum transaction id (hardware/chargers/alfen-eve.toml)."""


def status(live: LiveState, charger: str, connector: int, name: str) -> None:
    feed(live, charger, "StatusNotification", {"connectorId": connector, "status": name}, {})


def alfen_backlog(live: LiveState, charger: str) -> None:
    """Alfen replays its backlog: MeterValues with the int64-max id and context CurrentMax."""
    values = [
        {"value": "32.000", "context": "CurrentMax", "measurand": "Current.Import", "phase": p}
        for p in ("L1", "L2", "L3")
    ]
    feed(
        live,
        charger,
        "MeterValues",
        {"connectorId": 1, "transactionId": ALFEN_TX, "meterValue": sampled(*values)},
        {},
    )


@pytest.mark.parametrize("idle", ["Available", "Unavailable", "Faulted", "Finishing", "Reserved"])
def test_a_measurement_does_not_open_a_session_on_an_idle_connector(idle: str) -> None:
    live = LiveState(Parts(parse_config({"chargers": [{"id": "ALFEN"}]})))
    connect(live, "ALFEN")
    status(live, "ALFEN", 1, idle)
    alfen_backlog(live, "ALFEN")
    alfen = live.charger("ALFEN")
    assert alfen is not None and alfen.sessions_active == 0
    assert alfen.connectors[0].session is None and alfen.current_a == (0.0, 0.0, 0.0)
    assert live.site().sessions_active == 0


def test_an_idle_status_ends_a_session_its_stop_did_not_match() -> None:
    """Alfen switches to the int64-max id mid-session and stops with it: no session has that
    id, so the stop matches none; the idle status that follows ends the session."""
    live = LiveState(Parts(parse_config({"chargers": [{"id": "ALFEN"}]})))
    connect(live, "ALFEN")
    status(live, "ALFEN", 1, "Charging")
    feed(
        live,
        "ALFEN",
        "StartTransaction",
        {"connectorId": 1, "idTag": "AB", "meterStart": 0, "timestamp": "x"},
        {"transactionId": 1234, "idTagInfo": {"status": "Accepted"}},
    )
    feed(
        live,
        "ALFEN",
        "MeterValues",
        {"connectorId": 1, "transactionId": ALFEN_TX, "meterValue": sampled({"value": "5000"})},
        {},
    )
    feed(live, "ALFEN", "StopTransaction", {"transactionId": ALFEN_TX, "meterStop": 6000}, {})
    alfen = live.charger("ALFEN")
    assert alfen is not None and alfen.sessions_active == 1  # not yet: the stop matched none
    status(live, "ALFEN", 1, "Finishing")
    alfen = live.charger("ALFEN")
    assert alfen is not None and alfen.power_w == 0.0  # nothing flows any more
    assert alfen.sessions_active == 1  # its record waits for a stop (or the next idle status)
    status(live, "ALFEN", 1, "Available")
    alfen = live.charger("ALFEN")
    assert alfen is not None and alfen.sessions_active == 0
    assert alfen.connectors[0].session is None
    assert live.site().sessions_active == 0
    stopped = [e for e in live.events() if e.kind is EventKind.SESSION_STOPPED]
    assert len(stopped) == 1
    assert stopped[0].data["transaction_id"] == 1234 and stopped[0].data["energy_wh"] == 5000.0
    assert stopped[0].data["reason"] == "Available" and stopped[0].connector == 1


def test_a_stop_after_finishing_gives_the_stop_its_reason_and_meter_reading() -> None:
    """The common order: Finishing, then StopTransaction with meterStop and reason."""
    live = LiveState(Parts(parse_config({"chargers": [{"id": "CP"}]})))
    connect(live, "CP")
    status(live, "CP", 1, "Charging")
    feed(
        live,
        "CP",
        "StartTransaction",
        {"connectorId": 1, "idTag": "AB", "meterStart": 1000, "timestamp": "x"},
        {"transactionId": 7, "idTagInfo": {"status": "Accepted"}},
    )
    status(live, "CP", 1, "Finishing")
    feed(
        live,
        "CP",
        "StopTransaction",
        {"transactionId": 7, "meterStop": 8500, "reason": "EVDisconnected", "timestamp": "x"},
        {},
    )
    status(live, "CP", 1, "Available")
    stopped = [e for e in live.events() if e.kind is EventKind.SESSION_STOPPED]
    assert len(stopped) == 1
    assert stopped[0].data["reason"] == "EVDisconnected"
    assert stopped[0].data["energy_wh"] == 7500.0


def test_a_stop_without_a_transaction_id_ends_no_session() -> None:
    """Sessions started without an id would all match "None == None"."""
    live = LiveState(Parts(parse_config({"chargers": [{"id": "CP"}]})))
    connect(live, "CP")
    for connector in (1, 2):
        status(live, "CP", connector, "Charging")
        live.handle(
            SessionStarted(
                charger_id="CP", at=NOW, connector=connector, transaction_id=None, id_tag="T"
            )
        )
    live.handle(SessionStopped(charger_id="CP", at=NOW, transaction_id=None))
    cp = live.charger("CP")
    assert cp is not None and cp.sessions_active == 2
    assert not [e for e in live.events() if e.kind is EventKind.SESSION_STOPPED]


def test_a_stop_ends_only_the_session_with_its_string_id() -> None:
    live = LiveState(Parts(parse_config({"chargers": [{"id": "CP"}]})))
    connect(live, "CP")
    for connector, tx in ((1, "c0ffee-1"), (2, "c0ffee-2")):
        status(live, "CP", connector, "Charging")
        live.handle(
            SessionStarted(
                charger_id="CP", at=NOW, connector=connector, transaction_id=tx, id_tag="T"
            )
        )
    live.handle(SessionStopped(charger_id="CP", at=NOW, transaction_id="c0ffee-1"))
    cp = live.charger("CP")
    assert cp is not None and cp.sessions_active == 1
    assert cp.connectors[1].session is not None
    assert cp.connectors[1].session.transaction_id == "c0ffee-2"


def test_the_snapshot_follows_a_reloaded_configuration() -> None:
    """The daemon's reload replaces ``config`` on the parts the live state reads."""
    parts = Parts(parse_config({"chargers": [{"id": "CP1", "label": "Old"}]}))
    live = LiveState(parts)
    parts.config = parse_config({"chargers": [{"id": "CP2", "label": "Garage"}]})
    connect(live, "CP2")
    chargers = [(c.id, c.label, c.connected) for c in live.snapshot().chargers]
    assert chargers == [("CP2", "Garage", True)]
    assert live.site().chargers_total == 1 and live.charger("CP1") is None
    parts.config = parse_config(
        {"chargers": [{"id": "CP2", "label": "Bay 2"}, {"id": "CP3", "label": "Bay 3"}]}
    )
    chargers = [(c.id, c.label, c.connected) for c in live.snapshot().chargers]
    assert chargers == [("CP2", "Bay 2", True), ("CP3", "Bay 3", False)]
    # A removed charger still connected is still shown (it is there), after the configured.
    parts.config = parse_config({"chargers": [{"id": "CP3", "label": "Bay 3"}]})
    assert live.charger_ids() == ["CP3", "CP2"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("42", 42),
        ("-5", -5),
        ("-0", 0),
        ("--1", "--1"),
        ("-", "-"),
        ("1-2", "1-2"),
        ("c0ffee", "c0ffee"),
    ],
)
def test_snapshot_transaction_ids(text: str, expected: object) -> None:
    assert snapshot_transaction_id(text) == expected


async def test_the_daemons_live_state_runs_on_the_daemons_clock(tmp_path: Any) -> None:
    """Events carry the hub's clock (the daemon's): the live state's own times use it too."""
    ahead = 10_000_000.0
    config = parse_config(
        {
            "server": {"host": "127.0.0.1", "port": 0},
            "store": {"path": str(tmp_path / "gw.db")},
            "control": {"socket": str(tmp_path / "gw.sock"), "group": None},
            "chargers": [{"id": "CP1"}],
        }
    )
    gateway = Gateway(config, clock=lambda: time.time() + ahead)
    task = asyncio.create_task(gateway.run(install_signal_handlers=False))  # noqa: TID251
    try:
        async with asyncio.timeout(20):
            await gateway.started.wait()
        assert gateway.live is not None
        assert gateway.live.site().at > time.time() + ahead / 2
    finally:
        gateway.shutdown()
        await asyncio.wait_for(task, 15)


def test_the_circuit_tree_shows_limits_allocation_and_the_load_under_each_board() -> None:
    """Each board: its limit, the controller's allocation and headroom under it, and what the
    chargers below it measure on the site phases (a sub-board's chargers count on its parent
    too); a charger knows its board and its OCPP version."""
    config = parse_config(
        {
            "site": {"limit_a": 63, "margin_a": 2},
            "buses": {"main": {"transport": "tcp", "host": "127.0.0.1", "port": 502}},
            "meters": [{"name": "grid", "profile": "eastron-sdm630", "role": "site"}],
            "circuits": [
                {"name": "main-board", "limit_a": 40},
                {"name": "row-b", "limit_a": [20, 20, 16], "margin_a": 1, "parent": "main-board"},
            ],
            "chargers": [
                {"id": "A1", "circuit": "main-board"},
                {"id": "B1", "circuit": "row-b", "phases": "L2"},
                {"id": "SITE"},
            ],
        }
    )
    controller = FakeController()
    controller.circuits = (
        CircuitState(
            name="main-board",
            parent=None,
            limit_a=(40.0, 40.0, 40.0),
            margin_a=2.0,
            used_a=(26.0, 26.0, 16.0),
            headroom_a=(12.0,) * 3,
        ),
        CircuitState(
            name="row-b",
            parent="main-board",
            limit_a=(20.0, 20.0, 16.0),
            margin_a=1.0,
            used_a=(0.0, 10.0, 0.0),
            headroom_a=(19.0, 9.0, 15.0),
            measured_a=(3.0, 13.0, 2.5),
            meter="ok",
            meter_hold=True,
            meter_age_s=4.5,
            other_a=(3.0, 3.0, 2.5),
        ),
    )
    live = LiveState(Parts(config, controller=controller))
    live.handle(ChargerConnected(charger_id="A1", at=NOW, version="ocpp1.6"))
    live.handle(ChargerConnected(charger_id="B1", at=NOW, version="ocpp2.0.1"))
    connect(live, "SITE")
    for charger, amps in (("A1", "16"), ("B1", "10"), ("SITE", "32")):
        feed(
            live,
            charger,
            "MeterValues",
            {
                "connectorId": 1,
                "meterValue": sampled({"value": amps, "measurand": "Current.Import"}),
            },
            {},
        )
    snapshot = live.snapshot()
    main, row = snapshot.circuits
    assert (main.name, main.parent, main.chargers) == ("main-board", None, ("A1",))
    assert (row.name, row.parent, row.chargers) == ("row-b", "main-board", ("B1",))
    assert row.limit_a == (20.0, 20.0, 16.0) and row.margin_a == 1.0
    assert main.margin_a == 2.0  # the site's
    assert main.allocated_a == (26.0, 26.0, 16.0) and row.headroom_a == (19.0, 9.0, 15.0)
    assert row.load_a == (None, 10.0, None)  # B1's only phase is the site's L2
    assert main.load_a == (16.0, 26.0, 16.0)  # A1 and B1, not SITE
    assert main.measured_a is None and main.meter is None  # no board meter
    assert row.measured_a == (3.0, 13.0, 2.5) and row.meter == "ok" and not row.fallback
    assert (row.other_a, row.meter_hold, row.meter_age_s) == ((3.0, 3.0, 2.5), True, 4.5)
    assert (main.other_a, main.meter_hold, main.meter_age_s) == (None, False, None)
    a1, b1 = snapshot.charger("A1"), snapshot.charger("B1")
    assert a1 is not None and b1 is not None
    assert (a1.circuit, a1.ocpp_version, a1.version_label) == ("main-board", "ocpp1.6", "1.6")
    assert (b1.circuit, b1.is_v2, b1.version_label) == ("row-b", True, "2.0.1")
    # The document round-trips through the strict reader.
    assert type(snapshot).from_dict(json.loads(json.dumps(snapshot.as_dict()))) == snapshot


def test_a_listener_is_told_only_the_scopes_it_asked_for() -> None:
    """The journal asks for events only: no change of a charger or the site is made for it."""
    live = LiveState(Parts(parse_config({"chargers": [{"id": "CP1"}]})))
    only_events: list[LiveChange] = []
    everything: list[LiveChange] = []
    remove = live.on_change(only_events.append, scopes=(Scope.EVENT,))
    live.on_change(everything.append)
    connect(live, "CP1")
    feed(live, "CP1", "StatusNotification", {"connectorId": 1, "status": "Charging"}, {})
    assert [c.scope for c in only_events] == [Scope.EVENT]  # CHARGER_CONNECTED
    assert [c.scope for c in everything] == [
        Scope.EVENT,
        Scope.CHARGER,
        Scope.SITE,
        Scope.CHARGER,
        Scope.SITE,
    ]
    remove()
    disconnect(live, "CP1")
    assert len(only_events) == 1 and len(everything) == 8


def test_a_garbage_meter_value_loses_nothing_else_of_its_call() -> None:
    """A garbage value among plain sampled values (the fast path) is skipped on its own: the
    call's other values and every measurand it carried still reach the live view, and a later
    call without a current keeps the one before (later values win, missing ones do not)."""
    live = LiveState(Parts(parse_config({"chargers": [{"id": "CP1"}]})))
    connect(live, "CP1")
    feed(live, "CP1", "StatusNotification", {"connectorId": 1, "status": "Charging"}, {})
    good: list[dict[str, Any]] = [
        {"value": "10", "measurand": "Current.Import", "phase": "L1", "unit": "A"},
        {"value": "11", "measurand": "Current.Import", "phase": "L2", "unit": "A"},
        {"value": "1_2", "measurand": "Current.Import", "phase": "L3", "unit": "A"},
        {"value": ["12"], "measurand": "Power.Active.Import", "unit": "W"},
        {"value": "5", "measurand": "Power.Active.Import", "unit": "kW"},
        {"value": "nan", "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
        {"value": "1e306", "measurand": "Energy.Active.Import.Register", "unit": "kWh"},
    ]
    request = {"connectorId": 1, "transactionId": 4, "meterValue": sampled(*good)}
    _heard, event = interpret("CP1", "MeterValues", request, {}, NOW)
    assert isinstance(event, Measured)
    assert event.measurands == (
        "Current.Import",
        "Power.Active.Import",
        "Energy.Active.Import.Register",
    )
    feed(live, "CP1", "MeterValues", request, {})
    cp1 = live.charger("CP1")
    assert cp1 is not None
    assert cp1.connectors[0].current_a == (10.0, 11.0, 0.0) and cp1.connectors[0].power_w == 5000.0
    later = {"connectorId": 1, "meterValue": sampled({"value": "x", "measurand": "Current.Import"})}
    feed(live, "CP1", "MeterValues", later, {})
    cp1 = live.charger("CP1")
    assert cp1 is not None and cp1.connectors[0].current_a == (10.0, 11.0, 0.0)
