"""The gateway as a 2.x charger's OCPP 2.1 Local Controller (Part 4 §6.3, Edition 2): the
charger stays connected while the cloud is away, is answered locally, and its TransactionEvents
reach the cloud once it is back, each once, in order, ``seqNo`` kept, ``offline: true`` on the
ones the gateway answered. Real sockets on port 0; the cloud is made of the ``ocpp`` library's
v201 handlers (``Cloud201``) or of raw frames where a test must hold an answer."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

from ocpp.v201 import ChargePoint, call
from websockets.asyncio.client import connect
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from edgegw.auth.cardid import CardId
from edgegw.auth.cardinfo import AuthStatus, Card
from edgegw.sim.charger201 import SimCharger201
from edgegw.tasks import TaskOwner
from tests.conftest import GatewayFactory, gateway_url
from tests.v201.test_relay201 import Cloud201

UID = "04A1B2C3D4E5F6"
"""An enrolled card (7-byte UID, canonical hex)."""
REVERSED = bytes.fromhex(UID)[::-1].hex().upper()
"""The same card as this charger writes it (bytes reversed: ``hex_reversed``)."""
BLOCKED = "04B0B0B0B0B0B0"
UNKNOWN = "04C1C2C3C4C5C6"
CHARGERS = [{"id": "CS201", "idtag_format": "hex_reversed"}]


async def _cloud_server(cloud: Cloud201, port: int = 0) -> tuple[Server, int]:
    protocols = [Subprotocol(p) for p in cloud.subprotocols]
    server = await serve(cloud.handler, "127.0.0.1", port, subprotocols=protocols)
    port = server.sockets[0].getsockname()[1]
    cloud.url = f"ws://127.0.0.1:{port}/csms"
    return server, port


async def _stop(server: Server) -> None:
    server.close()
    await server.wait_closed()


async def _enrol(gateway: Any) -> None:
    authorizer = gateway.authorizer
    assert authorizer is not None
    await authorizer.add_card(Card(CardId.from_uid(bytes.fromhex(UID)), owner="tenant"))
    await authorizer.add_card(
        Card(CardId.from_uid(bytes.fromhex(BLOCKED)), owner="lost", status=AuthStatus.BLOCKED)
    )


async def _until(done: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while True:
            if done():
                return
            await asyncio.sleep(0.02)  # polling the cloud's record, not a timed assertion


def _events(cloud: Cloud201, identity: str = "CS201") -> list[dict[str, Any]]:
    return [kw for action, kw in cloud.heard.get(identity, []) if action == "TransactionEvent"]


async def test_a_201_charger_stays_connected_is_answered_and_its_events_follow(
    make_gateway: GatewayFactory,
) -> None:
    cloud = Cloud201()
    server, port = await _cloud_server(cloud)
    gateway = await make_gateway(cloud_url=cloud.url, chargers=CHARGERS)
    await _enrol(gateway)
    cs = SimCharger201("CS201", gateway_url(gateway))
    await cs.connect()
    try:
        await cs.boot()
        tx, started = await cs.start(1, REVERSED)  # online: the cloud's answer
        assert started == {"idTokenInfo": {"status": "Accepted"}}
        await _until(lambda: len(_events(cloud)) == 1)
        await _stop(server)  # the cloud goes away
        # The charger stays connected and the gateway answers it.
        assert (await cs.boot("PowerUp"))["status"] == "Accepted"
        assert "currentTime" in await cs.heartbeat()
        assert await cs.status(1, "Occupied") == {}
        assert (await cs.authorize(REVERSED))["idTokenInfo"]["status"] == "Accepted"
        assert (await cs.authorize(UNKNOWN))["idTokenInfo"]["status"] == "Invalid"
        assert (await cs.authorize(BLOCKED))["idTokenInfo"]["status"] == "Blocked"
        central = await cs.authorize("APP-4711", "Central")  # a token, not a card's UID
        assert central["idTokenInfo"]["status"] == "Invalid"
        assert await cs.meter(1, 16.0, 1200.0) == {}  # no idToken: no idTokenInfo
        assert await cs.stop(1) == {}
        second, answer = await cs.start(2, REVERSED)
        assert answer == {"idTokenInfo": {"status": "Accepted"}}
        assert cs.connected
        # The cloud returns: the replayed boot first, then the events in order.
        server, _ = await _cloud_server(cloud, port)
        await _until(lambda: len(_events(cloud)) == 4)
        assert cs.connected
    finally:
        await cs.close()
        await _stop(server)
    events = _events(cloud)
    assert [(e["event_type"], e["seq_no"], e.get("offline")) for e in events] == [
        ("Started", 0, None),  # relayed live: as the charger sent it
        ("Updated", 1, True),
        ("Ended", 2, True),
        ("Started", 3, True),
    ]
    assert [e["transaction_info"]["transaction_id"] for e in events] == [
        tx.transaction_id,
        tx.transaction_id,
        tx.transaction_id,
        second.transaction_id,
    ]
    heard = [action for action, _ in cloud.heard["CS201"]]
    first = heard.index("TransactionEvent")
    back = heard.index("TransactionEvent", first + 1)  # the first event after the outage
    assert heard[first + 1 : back] == ["BootNotification", "StatusNotification"]  # replayed
    assert "Authorize" not in heard  # answered locally, not replayed
    # Each event the charger sent once reached the cloud once: compare with the charger's own.
    sent = [json.loads(t)[3] for t in cs.sent if json.loads(t)[2] == "TransactionEvent"]
    assert [s["seqNo"] for s in sent] == [e["seq_no"] for e in events]


async def test_a_cloud_call_for_a_201_charger_that_is_away_is_refused_clearly(
    make_gateway: GatewayFactory,
) -> None:
    """The charger queued a session offline and left; the cloud, back, asks it to stop that
    session while its events are still being delivered: a CALLERROR says the charger is not
    connected (nothing is queued for a charger that is away)."""
    server = await serve(lambda ws: ws.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    await _stop(server)  # a known port, nobody listens
    gateway = await make_gateway(cloud_url=f"ws://127.0.0.1:{port}/csms", chargers=CHARGERS)
    cs = SimCharger201("CS201", gateway_url(gateway))
    await cs.connect()
    tx, answer = await cs.start(1, None, trigger="CablePluggedIn")
    assert answer == {}  # answered locally, no idToken: no idTokenInfo
    await cs.close()

    heard: list[Any] = []
    refused: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    async def cloud(ws: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for text in ws:
                frame = json.loads(text)
                heard.append(frame)
                if frame[0] == 2 and frame[2] == "TransactionEvent" and not refused.done():
                    stop = {"transactionId": tx.transaction_id}
                    await ws.send(json.dumps([2, "rs1", "RequestStopTransaction", stop]))
                elif frame[0] == 4 and frame[1] == "rs1":
                    refused.set_result(frame)
                    for held in heard:  # now answer what was held
                        if held[0] == 2 and held[2] == "TransactionEvent":
                            await ws.send(json.dumps([3, held[1], {}]))
                elif frame[0] == 2 and frame[2] != "TransactionEvent":
                    await ws.send(json.dumps([3, frame[1], {}]))

    protocols = [Subprotocol("ocpp2.0.1")]
    server = await serve(cloud, "127.0.0.1", port, subprotocols=protocols)
    try:
        async with asyncio.timeout(10):
            error = await refused
    finally:
        await _stop(server)
    assert error[:4] == [4, "rs1", "GenericError", "charge point is not connected"]
    events = [f[3] for f in heard if f[0] == 2 and f[2] == "TransactionEvent"]
    assert [(e["seqNo"], e["offline"]) for e in events] == [(0, True)]


async def test_a_site_without_a_cloud_takes_and_answers_a_201_charger(
    make_gateway: GatewayFactory,
) -> None:
    """Standalone: the handshake takes ``ocpp2.0.1`` and the gateway is the station's CSMS."""
    gateway = await make_gateway(chargers=CHARGERS)
    await _enrol(gateway)
    async with SimCharger201("CS201", gateway_url(gateway)) as cs:
        assert cs.subprotocol == "ocpp2.0.1"
        assert (await cs.boot())["status"] == "Accepted"
        assert (await cs.authorize(REVERSED))["idTokenInfo"]["status"] == "Accepted"
        _, answer = await cs.start(1, UNKNOWN)
        assert answer == {"idTokenInfo": {"status": "Invalid"}}
        assert await cs.stop(1) == {}
        assert cs.connected


class _Station(ChargePoint):  # type: ignore[misc]  # ocpp ships no type information
    """A 2.0.1 station made of the ``ocpp`` library alone: it checks every answer against the
    2.0.1 schemas, and its ``call`` returns None for a CALLERROR."""


async def test_a_station_of_the_ocpp_library_gets_valid_local_answers(
    make_gateway: GatewayFactory,
) -> None:
    server = await serve(lambda ws: ws.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    await _stop(server)  # the cloud cannot be reached
    gateway = await make_gateway(cloud_url=f"ws://127.0.0.1:{port}/csms", chargers=CHARGERS)
    await _enrol(gateway)
    now = "2026-12-07T10:00:00Z"
    token = {"id_token": REVERSED, "type": "ISO14443"}
    tasks = TaskOwner("ocpp-station")
    async with connect(
        f"{gateway_url(gateway)}/CS201", subprotocols=[Subprotocol("ocpp2.0.1")]
    ) as ws:
        station = _Station("CS201", ws)
        tasks.spawn(station.start(), "station")
        try:
            boot = await station.call(
                call.BootNotification(
                    charging_station={"model": "M", "vendor_name": "V"}, reason="PowerUp"
                )
            )
            assert boot.status == "Accepted" and boot.interval > 0
            assert (await station.call(call.Heartbeat())).current_time
            authorized = await station.call(call.Authorize(id_token=token))
            assert authorized.id_token_info == {"status": "Accepted"}
            assert None is not await station.call(
                call.StatusNotification(
                    timestamp=now, connector_status="Occupied", evse_id=1, connector_id=1
                )
            )
            started = await station.call(
                call.TransactionEvent(
                    event_type="Started",
                    timestamp=now,
                    trigger_reason="Authorized",
                    seq_no=0,
                    transaction_info={"transaction_id": "lib-1"},
                    id_token=token,
                    evse={"id": 1, "connector_id": 1},
                )
            )
            assert started.id_token_info == {"status": "Accepted"}
            assert None is not await station.call(
                call.MeterValues(
                    evse_id=1,
                    meter_value=[{"timestamp": now, "sampled_value": [{"value": 230.0}]}],
                )
            )
            assert None is not await station.call(
                call.SecurityEventNotification(type="StartupOfTheDevice", timestamp=now)
            )
            assert None is not await station.call(
                call.NotifyEvent(
                    generated_at=now,
                    seq_no=0,
                    event_data=[
                        {
                            "event_id": 1,
                            "timestamp": now,
                            "trigger": "Alerting",
                            "actual_value": "true",
                            "event_notification_type": "HardWiredNotification",
                            "component": {"name": "EVSE"},
                            "variable": {"name": "Problem"},
                        }
                    ],
                )
            )
            assert None is not await station.call(
                call.NotifyReport(request_id=1, generated_at=now, seq_no=0, tbc=False)
            )
        finally:
            await tasks.close("test over")


async def test_what_the_cloud_answered_for_a_201_token_decides_offline(
    make_gateway: GatewayFactory,
) -> None:
    """The card cache learns the cloud's ``idTokenInfo``: a token the cloud accepted is
    accepted offline, one it refused is refused, although the site accepts unknown cards."""
    cloud = Cloud201()  # Accepted for "GOOD", Invalid for anything else
    server, _ = await _cloud_server(cloud)
    gateway = await make_gateway(
        cloud_url=cloud.url, chargers=CHARGERS, auth={"unknown_cards": "accept"}
    )
    async with SimCharger201("CS201", gateway_url(gateway)) as cs:
        try:
            await cs.boot()
            assert (await cs.authorize("GOOD", "Central"))["idTokenInfo"]["status"] == "Accepted"
            assert (await cs.authorize("BAD", "Central"))["idTokenInfo"]["status"] == "Invalid"
        finally:
            await _stop(server)
        assert (await cs.authorize("GOOD", "Central"))["idTokenInfo"]["status"] == "Accepted"
        assert (await cs.authorize("BAD", "Central"))["idTokenInfo"]["status"] == "Invalid"
        assert (await cs.authorize("NEW", "Central"))["idTokenInfo"]["status"] == "Accepted"
    heard = [token["id_token"] for action, token in cloud.heard["CS201"] if action == "Authorize"]
    assert heard == ["GOOD", "BAD"]  # the last three were answered by the gateway
