"""OCPP 2.0.1 through a real gateway, against a CSMS built only on the ``ocpp`` library's v201.

charger (edgegw.sim.charger201, raw frames) ⇄ gateway ⇄ a cloud written here with
``ocpp.v201.ChargePoint`` handlers (no edgegw code on the cloud side). Real sockets on port 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call_result as result16
from ocpp.v201 import ChargePoint, call, call_result
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from edgegw.ocpp.events import Event
from edgegw.sim.charger import SimCharger
from edgegw.sim.charger201 import SimCharger201
from edgegw.sim.cloud import SimCloud
from tests.conftest import GatewayFactory, gateway_url, raw_charger

CHARGERS = [{"id": "CS201"}, {"id": "CS201B"}, {"id": "CP16"}]


class _Recording:
    """The cloud's end of the socket, recording every raw frame in both directions."""

    def __init__(self, ws: ServerConnection, log: list[tuple[str, str]]) -> None:
        self._ws = ws
        self._log = log

    async def recv(self) -> str:
        text = await self._ws.recv()
        assert isinstance(text, str)
        self._log.append(("in", text))
        return text

    async def send(self, text: str) -> None:
        self._log.append(("out", text))
        await self._ws.send(text)


class Csms201(ChargePoint):  # type: ignore[misc]  # ocpp ships no type information
    """A 2.0.1 CSMS from the library's handlers: accepts everything, records what it heard."""

    def __init__(self, charger_id: str, connection: Any, heard: list[tuple[str, Any]]) -> None:
        super().__init__(charger_id, connection)
        self.heard = heard
        self.transaction_seen = asyncio.Event()

    @on("BootNotification")
    def on_boot(self, charging_station: dict[str, Any], reason: str, **_: Any) -> Any:
        self.heard.append(("BootNotification", charging_station))
        return call_result.BootNotification(
            current_time="2026-12-07T10:00:00Z", interval=300, status="Accepted"
        )

    @on("Heartbeat")
    def on_heartbeat(self) -> Any:
        return call_result.Heartbeat(current_time="2026-12-07T10:00:00Z")

    @on("StatusNotification")
    def on_status(self, **kwargs: Any) -> Any:
        self.heard.append(("StatusNotification", kwargs))
        return call_result.StatusNotification()

    @on("Authorize")
    def on_authorize(self, id_token: dict[str, Any], **_: Any) -> Any:
        self.heard.append(("Authorize", id_token))
        status = "Accepted" if id_token["id_token"] == "GOOD" else "Invalid"
        return call_result.Authorize(id_token_info={"status": status})

    @on("TransactionEvent")
    def on_transaction_event(self, **kwargs: Any) -> Any:
        self.heard.append(("TransactionEvent", kwargs))
        self.transaction_seen.set()
        if kwargs["event_type"] == "Started":
            return call_result.TransactionEvent(id_token_info={"status": "Accepted"})
        return call_result.TransactionEvent()


class Csms16(ChargePoint16):  # type: ignore[misc]  # ocpp ships no type information
    """A 1.6 CSMS from the library's v16 handlers (for the mixed-site test)."""

    def __init__(self, charger_id: str, connection: Any, heard: list[tuple[str, Any]]) -> None:
        super().__init__(charger_id, connection)
        self.heard = heard

    @on("BootNotification")
    def on_boot(self, **_: Any) -> Any:
        self.heard.append(("BootNotification", _))
        return result16.BootNotification(
            current_time="2026-12-07T10:00:00Z", interval=300, status="Accepted"
        )

    @on("StatusNotification")
    def on_status(self, **_: Any) -> Any:
        return result16.StatusNotification()

    @on("StartTransaction")
    def on_start(self, **kwargs: Any) -> Any:
        self.heard.append(("StartTransaction", kwargs))
        return result16.StartTransaction(transaction_id=16, id_tag_info={"status": "Accepted"})

    @on("MeterValues")
    def on_meter_values(self, **kwargs: Any) -> Any:
        self.heard.append(("MeterValues", kwargs))
        return result16.MeterValues()

    @on("StopTransaction")
    def on_stop(self, **kwargs: Any) -> Any:
        self.heard.append(("StopTransaction", kwargs))
        return result16.StopTransaction()


@dataclass
class Cloud201:
    """A 2.0.1 CSMS on port 0; ``stations`` by identity once connected."""

    subprotocols: tuple[str, ...] = ("ocpp2.0.1",)
    stations: dict[str, Csms201] = field(default_factory=dict)
    frames: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    heard: dict[str, list[tuple[str, Any]]] = field(default_factory=dict)
    offered: list[list[str]] = field(default_factory=list)
    url: str = ""
    connected: asyncio.Event = field(default_factory=asyncio.Event)

    async def handler(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        identity = ws.request.path.rsplit("/", 1)[-1]
        self.offered.append(list(ws.request.headers.get_all("Sec-WebSocket-Protocol")))
        if ws.subprotocol is None:
            await ws.close(1002, "no subprotocol")
            return
        log = self.frames.setdefault(identity, [])
        heard = self.heard.setdefault(identity, [])
        peer: Csms16 | Csms201
        if ws.subprotocol == "ocpp1.6":
            peer = Csms16(identity, _Recording(ws, log), heard)
        else:
            peer = self.stations[identity] = Csms201(identity, _Recording(ws, log), heard)
            self.connected.set()
        with contextlib.suppress(ConnectionClosed):
            await peer.start()

    async def station(self, identity: str) -> Csms201:
        async with asyncio.timeout(5):
            while identity not in self.stations:
                self.connected.clear()
                await self.connected.wait()
        return self.stations[identity]

    def raw(self, identity: str, direction: str, message_id: str) -> str:
        for where, text in self.frames.get(identity, []):
            if where == direction and json.loads(text)[1] == message_id:
                return text
        raise AssertionError(f"no {direction} frame {message_id} for {identity}")


@pytest.fixture
async def cloud201() -> AsyncIterator[Cloud201]:
    cloud = Cloud201()
    async with serve(
        cloud.handler,
        "127.0.0.1",
        0,
        subprotocols=[Subprotocol(p) for p in cloud.subprotocols],
    ) as server:
        port = server.sockets[0].getsockname()[1]
        cloud.url = f"ws://127.0.0.1:{port}/csms"
        yield cloud


def _sent_raw(charger: SimCharger201, message_id: str) -> str:
    return next(t for t in charger.sent if json.loads(t)[1] == message_id)


def _received_raw(charger: SimCharger201, message_id: str) -> str:
    return next(t for t in charger.received if json.loads(t)[1] == message_id)


async def test_a_201_charger_relayed_byte_for_byte_both_ways(
    cloud201: Cloud201, make_gateway: GatewayFactory
) -> None:
    gateway = await make_gateway(cloud_url=cloud201.url, chargers=CHARGERS)
    heard: list[Event] = []

    class Part:
        def handle(self, event: Event) -> None:
            heard.append(event)

    assert gateway.hub is not None
    gateway.hub = gateway.hub.extended(Part())
    async with SimCharger201("CS201", gateway_url(gateway)) as cs:
        assert cs.subprotocol == "ocpp2.0.1"
        # Odd spacing: the cloud must see exactly these bytes.
        boot_id = cs.next_id()
        raw_boot = (
            f'[2, "{boot_id}" ,"BootNotification",  {{"reason": "PowerUp", '
            '"chargingStation": {"model": "M", "vendorName": "V"}}]'
        )
        assert (await cs.call("BootNotification", {}, raw=raw_boot))["status"] == "Accepted"
        assert cloud201.raw("CS201", "in", boot_id) == raw_boot
        assert _received_raw(cs, boot_id) == cloud201.raw("CS201", "out", boot_id)
        assert cloud201.offered[-1] == ["ocpp2.0.1"]  # the version the charger negotiated

        await cs.status(1, "Occupied")
        assert (await cs.authorize("GOOD"))["idTokenInfo"]["status"] == "Accepted"
        assert (await cs.authorize("BAD"))["idTokenInfo"]["status"] == "Invalid"
        tx, started = await cs.start(1, "GOOD")
        assert started["idTokenInfo"]["status"] == "Accepted"
        await cs.meter(1, 16.0, 1200.0)
        await cs.stop(1)

        # Every charger call reached the cloud as sent, and every answer came back as sent.
        calls = [t for t in cs.sent if json.loads(t)[0] == 2]
        assert len(calls) == 7  # boot, status, 2 x authorize, 3 x TransactionEvent
        for text in calls:
            message_id = json.loads(text)[1]
            assert cloud201.raw("CS201", "in", message_id) == text
            assert _received_raw(cs, message_id) == cloud201.raw("CS201", "out", message_id)
        events = [kw for action, kw in cloud201.heard["CS201"] if action == "TransactionEvent"]
        assert [e["event_type"] for e in events] == ["Started", "Updated", "Ended"]
        assert [e["seq_no"] for e in events] == [0, 1, 2]
        assert {e["transaction_info"]["transaction_id"] for e in events} == {tx.transaction_id}

        # The cloud's own calls reach the station and their answers the cloud, byte for byte.
        station = await cloud201.station("CS201")
        answer = await station.call(
            call.GetVariables(
                get_variable_data=[
                    {
                        "component": {"name": "OCPPCommCtrlr"},
                        "variable": {"name": "HeartbeatInterval"},
                    }
                ]
            )
        )
        assert answer.get_variable_result[0]["attribute_value"] == "300"
        started_remote = await station.call(
            call.RequestStartTransaction(
                id_token={"id_token": "REMOTE1", "type": "Central"}, remote_start_id=7, evse_id=2
            )
        )
        assert started_remote.status == "Accepted"
        for action in ("GetVariables", "RequestStartTransaction"):
            sent_by_cloud = next(
                t for d, t in cloud201.frames["CS201"] if d == "out" and f'"{action}"' in t
            )
            message_id = json.loads(sent_by_cloud)[1]
            assert _received_raw(cs, message_id) == sent_by_cloud  # the call, untouched
            assert cloud201.raw("CS201", "in", message_id) == _sent_raw(cs, message_id)
        async with asyncio.timeout(5):  # the remote start's own TransactionEvent gets through
            while not any(
                a == "TransactionEvent" and kw.get("trigger_reason") == "RemoteStart"
                for a, kw in cloud201.heard["CS201"]
            ):
                station.transaction_seen.clear()
                await station.transaction_seen.wait()

    # The hub read the 2.0.1 calls with the 2.0.1 interpreter.
    kinds = [type(e).__name__ for e in heard if e.charger_id == "CS201"]
    for kind in ("ChargerBooted", "ConnectorStatus", "CardAnswered", "SessionStarted", "Measured"):
        assert kind in kinds, kind
    stopped = next(e for e in heard if type(e).__name__ == "SessionStopped")
    assert stopped.transaction_id == tx.transaction_id  # type: ignore[union-attr]


async def test_a_201_call_with_an_invalid_payload_gets_a_201_error(
    cloud201: Cloud201, make_gateway: GatewayFactory
) -> None:
    gateway = await make_gateway(cloud_url=cloud201.url, chargers=CHARGERS)
    async with SimCharger201("CS201", gateway_url(gateway)) as cs:
        await cs.boot()
        with pytest.raises(Exception) as refused:
            await cs.call("BootNotification", {"reason": "PowerUp"})  # no chargingStation
        assert getattr(refused.value, "code", None) == "OccurrenceConstraintViolation"
        with pytest.raises(Exception) as unknown:
            await cs.call("StartTransaction", {"connectorId": 1})  # a 1.6 action
        assert getattr(unknown.value, "code", None) == "NotImplemented"
    assert not [t for d, t in cloud201.frames["CS201"] if "StartTransaction" in t]


async def test_a_16_and_a_201_charger_on_one_gateway_at_once(
    make_gateway: GatewayFactory,
) -> None:
    """One CSMS speaking both versions (the library's v16 and v201 handlers behind one port):
    each charger's cloud link offers the charger's own version, and each is relayed as such."""
    cloud = Cloud201(subprotocols=("ocpp2.0.1", "ocpp1.6"))
    async with serve(
        cloud.handler,
        "127.0.0.1",
        0,
        subprotocols=[Subprotocol(p) for p in cloud.subprotocols],
    ) as server:
        port = server.sockets[0].getsockname()[1]
        cloud.url = f"ws://127.0.0.1:{port}/csms"
        gateway = await make_gateway(cloud_url=cloud.url, chargers=CHARGERS)
        url = gateway_url(gateway)
        async with (
            SimCharger201("CS201", url, subprotocols=("ocpp2.0.1",)) as cs,
            SimCharger("CP16", url) as cp,
        ):
            assert cs.subprotocol == "ocpp2.0.1"
            assert (await cs.boot())["status"] == "Accepted"
            assert (await cp.boot())["status"] == "Accepted"
            await cs.start(1, "GOOD")
            assert await cp.start_transaction(1, "TAG16") == 16  # the 1.6 CSMS's id
            await cs.meter(1, 10.0, 500.0)
            await cp.meter_values(1)
            await cs.stop(1)
            await cp.stop_transaction(1)
            await cs.heartbeat()
        offered = {tuple(o) for o in cloud.offered}
        assert offered == {("ocpp2.0.1",), ("ocpp1.6",)}
        events = [kw for a, kw in cloud.heard["CS201"] if a == "TransactionEvent"]
        assert [e["event_type"] for e in events] == ["Started", "Updated", "Ended"]
        assert [a for a, _ in cloud.heard["CP16"]] == [
            "BootNotification",
            "StartTransaction",
            "MeterValues",
            "StopTransaction",
        ]


async def test_a_cloud_that_only_speaks_16_is_told_to_a_201_charger(
    make_gateway: GatewayFactory,
) -> None:
    async with SimCloud() as cloud16:
        gateway = await make_gateway(cloud_url=cloud16.url, chargers=CHARGERS)
        cs = SimCharger201("CS201", gateway_url(gateway))
        await cs.connect()
        try:
            assert cs.subprotocol == "ocpp2.0.1"  # the gateway speaks it...
            code = await cs.wait_closed(timeout=10)  # ...the cloud does not: told at once
            assert code == 1002
            assert cs.close_reason == "the cloud does not accept ocpp2.0.1"
        finally:
            await cs.close()
        assert cloud16.records == []  # nothing of the 2.0.1 charger reached the 1.6 cloud


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [
        (["ocpp1.6", "ocpp2.0.1"], "ocpp1.6"),
        (["ocpp2.0.1", "ocpp1.6"], "ocpp1.6"),  # the version served in full wins
        (["ocpp2.1", "ocpp2.0.1"], "ocpp2.1"),  # no 1.6: the charger's first choice
        (["ocpp2.0", "ocpp2.0.1"], "ocpp2.0.1"),
    ],
)
async def test_a_charger_offering_1_6_gets_it_else_its_first_supported_choice(
    offered: list[str], chosen: str, make_gateway: GatewayFactory
) -> None:
    # A cloud that is not there: the handshake with the charger is the point.
    gateway = await make_gateway(chargers=CHARGERS, cloud_url="ws://127.0.0.1:9/csms")
    async with raw_charger(gateway_url(gateway), "CS201", subprotocols=offered) as cp:
        assert cp.ws.subprotocol == chosen


async def test_a_site_without_a_cloud_takes_2_x_chargers_and_1_6_still_wins(
    make_gateway: GatewayFactory,
) -> None:
    """The gateway answers a 2.x charger itself (tests.v201.test_offline201); a charger that
    offers 1.6 as well still gets the version served in full."""
    gateway = await make_gateway(chargers=CHARGERS)
    async with raw_charger(gateway_url(gateway), "CS201", subprotocols=["ocpp2.0.1"]) as cp:
        assert cp.ws.subprotocol == "ocpp2.0.1"
    async with raw_charger(
        gateway_url(gateway), "CS201", subprotocols=["ocpp2.0.1", "ocpp1.6"]
    ) as cp:
        assert cp.ws.subprotocol == "ocpp1.6"
