"""End to end through a real gateway: raw charger ⇄ gateway ⇄ simulated cloud, real sockets."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed, InvalidStatus

from edgegw.auth.passwords import hash_password
from edgegw.sim.cloud import SimCloud
from edgegw.store.outbox import LOCAL_ID_BASE
from tests.conftest import GatewayFactory, gateway_url, raw_charger

BOOT = {"chargePointVendor": "Vendor", "chargePointModel": "Model"}


@pytest.fixture
async def cloud() -> AsyncIterator[SimCloud]:
    async with SimCloud(accepted_tags={"GOODTAG"}) as sim:
        yield sim


async def test_charger_calls_reach_the_cloud_byte_for_byte(
    cloud: SimCloud, make_gateway: GatewayFactory
) -> None:
    gateway = await make_gateway(cloud_url=cloud.url)
    async with raw_charger(gateway_url(gateway), "CP1") as cp:
        # Odd but valid spacing: the cloud must see exactly these bytes.
        raw = (
            '[2,  "b-1", "BootNotification", '
            '{"chargePointVendor": "Vendor", "chargePointModel": "Model"}]'
        )
        await cp.send(raw)
        answer = await cp.recv()
        assert answer[:2] == [3, "b-1"] and answer[2]["status"] == "Accepted"
        record = await cloud.wait_for(lambda r: r.message_id == "b-1")
        assert record.raw == raw
        # The cloud's answer reaches the charger unchanged too.
        out = cloud.find(direction="out", message_type=3)[-1]
        assert json.loads(out.raw) == answer


async def test_cloud_calls_reach_the_charger_and_answers_return(
    cloud: SimCloud, make_gateway: GatewayFactory
) -> None:
    gateway = await make_gateway(cloud_url=cloud.url)
    async with raw_charger(gateway_url(gateway), "CP1") as cp:
        await cp.call("BootNotification", BOOT)
        await cloud.wait_connected("CP1")
        task = asyncio.create_task(  # noqa: TID251
            cloud.call("CP1", "ChangeConfiguration", {"key": "HeartbeatInterval", "value": "60"})
        )
        received = await cp.recv()
        assert received[0] == 2 and received[2] == "ChangeConfiguration"
        assert received[3] == {"key": "HeartbeatInterval", "value": "60"}
        await cp.send([3, received[1], {"status": "Accepted"}])
        assert await task == {"status": "Accepted"}


async def test_overlapping_charger_calls_reach_the_cloud_one_at_a_time(
    cloud: SimCloud, make_gateway: GatewayFactory
) -> None:
    cloud.delay_answers = 0.05
    gateway = await make_gateway(cloud_url=cloud.url)
    async with raw_charger(gateway_url(gateway), "CP1") as cp:
        await cp.call("BootNotification", BOOT)
        for i in range(5):  # five calls without waiting for answers
            await cp.send([2, f"hb-{i}", "Heartbeat", {}])
        answers = [await cp.recv() for _ in range(5)]
        assert [a[1] for a in answers] == [f"hb-{i}" for i in range(5)]
    # The cloud never had two calls from CP1 pending at once.
    ins = cloud.find("Heartbeat", direction="in")
    outs = [r for r in cloud.find(direction="out", message_type=3) if r.message_id.startswith("hb")]
    for i in range(1, 5):
        assert ins[i].at >= outs[i - 1].at


async def test_interleaved_cloud_and_gateway_calls(
    cloud: SimCloud, make_gateway: GatewayFactory
) -> None:
    gateway = await make_gateway(cloud_url=cloud.url)
    async with raw_charger(gateway_url(gateway), "CP1") as cp:
        await cp.call("BootNotification", BOOT)
        await cloud.wait_connected("CP1")
        cloud_task = asyncio.create_task(  # noqa: TID251
            cloud.call("CP1", "GetConfiguration", {"key": ["A"]})
        )
        first = await cp.recv()
        gw_task = asyncio.create_task(  # noqa: TID251
            gateway.call("CP1", "GetConfiguration", {"key": ["B"]})
        )
        # Only one call in flight towards the charger: the gateway's waits.
        with pytest.raises(TimeoutError):
            await cp.recv(timeout=0.2)
        await cp.send([3, first[1], {"configurationKey": [{"key": "A", "readonly": True}]}])
        second = await cp.recv()
        assert second[1].startswith("edgegw-") and second[3] == {"key": ["B"]}
        await cp.send([3, second[1], {"unknownKey": ["B"]}])
        assert (await cloud_task)["configurationKey"][0]["key"] == "A"
        assert await gw_task == {"unknownKey": ["B"]}
    # The gateway's exchange never went upstream.
    assert not [r for r in cloud.records if r.message_id.startswith("edgegw-")]


async def test_malformed_charger_frames_get_callerrors_and_nothing_breaks(
    cloud: SimCloud, make_gateway: GatewayFactory
) -> None:
    gateway = await make_gateway(cloud_url=cloud.url)
    url = gateway_url(gateway)
    async with raw_charger(url, "CP1") as cp, raw_charger(url, "CP2") as other:
        await cp.call("BootNotification", BOOT)
        await cp.send("{not json")
        assert (await cp.recv())[:3] == [4, "-1", "FormationViolation"]
        await cp.send(b"\x00\x01binary")
        assert (await cp.recv())[:3] == [4, "-1", "FormationViolation"]
        await cp.send([2, "x1", "Authorize", {"idTag": 42}])
        assert (await cp.recv())[:3] == [4, "x1", "TypeConstraintViolation"]
        await cp.send([2, "x2", "Warp", {}])
        assert (await cp.recv())[:3] == [4, "x2", "NotImplemented"]
        await cp.send([9, "x3", {}])  # unknown message type: ignored (OCPP-J 1.6)
        await cp.send([3, "never-asked", {}])  # answer to nothing: dropped
        # Still served, and the cloud saw none of the junk.
        assert (await cp.call("Heartbeat", {}))[0] == 3
        assert (await other.call("Heartbeat", {}))[0] == 3
    junk = {"x1", "x2", "x3", "never-asked", "-1"}
    assert not [r for r in cloud.records if r.message_id in junk]


async def test_oversized_frame_closes_only_that_charger(
    cloud: SimCloud, make_gateway: GatewayFactory
) -> None:
    gateway = await make_gateway(cloud_url=cloud.url, server={"max_message_size": 4096})
    url = gateway_url(gateway)
    async with raw_charger(url, "CP1") as big, raw_charger(url, "CP2") as other:
        await big.send([2, "big", "DataTransfer", {"vendorId": "V", "data": "x" * 10000}])
        with pytest.raises(ConnectionClosed) as info:
            await big.recv()
        assert info.value.rcvd is not None and info.value.rcvd.code == 1009
        assert (await other.call("Heartbeat", {}))[0] == 3


async def test_unknown_identity_refused_with_404_and_remembered(
    cloud: SimCloud, make_gateway: GatewayFactory
) -> None:
    gateway = await make_gateway(cloud_url=cloud.url)
    with pytest.raises(InvalidStatus) as info:
        async with raw_charger(gateway_url(gateway), "INTRUDER"):
            pass
    assert info.value.response.status_code == 404
    assert gateway.store is not None
    rows = {r.id: r for r in await gateway.store.chargers()}
    assert rows["INTRUDER"].state == "pending"
    # A bad path is a 404 too.
    with pytest.raises(InvalidStatus) as info:
        async with raw_charger(gateway_url(gateway) + "/deeper", "CP1"):
            pass
    assert info.value.response.status_code == 404


async def test_allow_unknown_chargers(cloud: SimCloud, make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway(
        cloud_url=cloud.url, server={"allow_unknown_chargers": True}, chargers=[]
    )
    async with raw_charger(gateway_url(gateway), "ANYONE") as cp:
        assert (await cp.call("BootNotification", BOOT))[0] == 3
    assert cloud.find("BootNotification", charger_id="ANYONE")


async def test_basic_auth(cloud: SimCloud, make_gateway: GatewayFactory) -> None:
    import base64

    def auth(user: str, password: str) -> dict[str, str]:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    stored = hash_password("right-password-123")
    gateway = await make_gateway(
        cloud_url=cloud.url, chargers=[{"id": "CP1", "password_hash": stored}]
    )
    url = gateway_url(gateway)
    for headers in (None, auth("CP1", "wrong-password"), auth("CP9", "right-password-123")):
        with pytest.raises(InvalidStatus) as info:
            async with raw_charger(url, "CP1", headers=headers):
                pass
        assert info.value.response.status_code == 401
        assert "Basic" in info.value.response.headers.get("WWW-Authenticate", "")
    async with raw_charger(url, "CP1", headers=auth("CP1", "right-password-123")) as cp:
        assert (await cp.call("Heartbeat", {}))[0] == 3


async def test_subprotocol_required(cloud: SimCloud, make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway(cloud_url=cloud.url)
    # ocpp2.0.1 and ocpp2.1 are spoken too (tests/v201): an older one is not.
    async with raw_charger(gateway_url(gateway), "CP1", subprotocols=["ocpp1.5"]) as cp:
        assert cp.ws.subprotocol is None  # handshake completed without one...
        with pytest.raises(ConnectionClosed) as info:
            await cp.recv()  # ...then closed at once
    assert info.value.rcvd is not None and info.value.rcvd.code == 1002


async def test_cloud_down_at_connect_then_boot_replayed(make_gateway: GatewayFactory) -> None:
    cloud = SimCloud(accepted_tags={"GOODTAG"})
    await cloud.start()
    url = cloud.url
    await cloud.stop()  # the port is known, nobody listens
    gateway = await make_gateway(cloud_url=url)
    async with raw_charger(gateway_url(gateway), "CP1") as cp:
        boot = await cp.call("BootNotification", BOOT)
        assert boot[2]["status"] == "Accepted"  # answered by the gateway
        assert (await cp.call("Heartbeat", {}))[0] == 3
        status = {"connectorId": 1, "status": "Available", "errorCode": "NoError"}
        assert (await cp.call("StatusNotification", status))[0] == 3
        # A transaction message is committed to the outbox, then answered with a local id.
        start = {
            "connectorId": 1,
            "idTag": "GOODTAG",
            "meterStart": 0,
            "timestamp": "2026-01-01T00:00:00Z",
        }
        answer = await cp.call("StartTransaction", start)
        assert answer[0] == 3 and answer[2]["transactionId"] >= LOCAL_ID_BASE
        assert answer[2]["idTagInfo"]["status"] == "Invalid"  # unknown card, site policy
        await cloud.start()
        record = await cloud.wait_for(lambda r: r.action == "BootNotification", timeout=10)
        assert record.payload == BOOT and record.charger_id == "CP1"
        await cloud.wait_for(lambda r: r.action == "StatusNotification")
        replayed = await cloud.wait_for(lambda r: r.action == "StartTransaction")
        assert replayed.payload == start  # as the charger recorded it
        order = [r.action for r in cloud.records if r.direction == "in"]
        assert order.index("BootNotification") < order.index("StartTransaction")
        # Now online: calls are relayed.
        assert (await cp.call("Heartbeat", {}))[0] == 3
        await cloud.wait_for(lambda r: r.action == "Heartbeat")
    await cloud.stop()


async def test_cloud_restart_while_chargers_stay_connected(
    cloud: SimCloud, make_gateway: GatewayFactory
) -> None:
    gateway = await make_gateway(cloud_url=cloud.url)
    async with raw_charger(gateway_url(gateway), "CP1") as cp:
        await cp.call("BootNotification", BOOT)
        await cloud.wait_connected("CP1")
        await cloud.stop()
        # The charger stays connected and is served locally meanwhile.
        assert (await cp.call("Heartbeat", {}))[0] == 3
        await cloud.start()
        await cloud.wait_connected("CP1", timeout=10)
        answer = await cp.call("Authorize", {"idTag": "GOODTAG"})
        assert answer[2]["idTagInfo"]["status"] == "Accepted"  # the cloud decided
        # Not a new boot: the cloud had the charger's boot before the outage.
        assert len(cloud.find("BootNotification", direction="in")) == 1


async def test_cloud_call_pending_when_charger_leaves_gets_callerror(
    cloud: SimCloud, make_gateway: GatewayFactory
) -> None:
    gateway = await make_gateway(cloud_url=cloud.url)
    async with raw_charger(gateway_url(gateway), "CP1") as cp:
        await cp.call("BootNotification", BOOT)
        await cloud.wait_connected("CP1")
        task = asyncio.create_task(cloud.call("CP1", "Reset", {"type": "Soft"}))  # noqa: TID251
        await cp.recv()  # the charger receives it and never answers
    with pytest.raises(Exception) as info:
        await task
    assert "GenericError" in str(info.value) or isinstance(info.value, ConnectionError)


class RawCloud:
    """A frame-level CSMS: sends exactly what a test writes."""

    def __init__(self) -> None:
        self.connections: asyncio.Queue[ServerConnection] = asyncio.Queue()

    async def handler(self, ws: ServerConnection) -> None:
        await self.connections.put(ws)
        await ws.wait_closed()


async def test_malformed_cloud_frames(make_gateway: GatewayFactory) -> None:
    raw_cloud = RawCloud()
    async with serve(raw_cloud.handler, "127.0.0.1", 0, subprotocols=["ocpp1.6"]) as server:  # type: ignore[list-item]
        port = server.sockets[0].getsockname()[1]
        gateway = await make_gateway(cloud_url=f"ws://127.0.0.1:{port}/ocpp")
        async with raw_charger(gateway_url(gateway), "CP1") as cp:
            await cp.send([2, "c1", "Heartbeat", {}])
            upstream = await raw_cloud.connections.get()

            async def cloud_recv() -> list[Any]:
                async with asyncio.timeout(5):
                    return json.loads(await upstream.recv())  # type: ignore[no-any-return]

            assert (await cloud_recv())[:3] == [2, "c1", "Heartbeat"]
            await upstream.send("garbage")
            assert (await cloud_recv())[:3] == [4, "-1", "FormationViolation"]
            await upstream.send(json.dumps([2, "k1", "Reset", {"type": "Sideways"}]))
            assert (await cloud_recv())[:3] == [4, "k1", "PropertyConstraintViolation"]
            await upstream.send(json.dumps([2, "k2", "BootNotification", BOOT]))
            assert (await cloud_recv())[:3] == [4, "k2", "NotSupported"]
            await upstream.send(json.dumps([3, "unknown", {}]))
            # The real answer still gets through.
            await upstream.send(json.dumps([3, "c1", {"currentTime": "2026-01-01T00:00:00Z"}]))
            assert await cp.recv() == [3, "c1", {"currentTime": "2026-01-01T00:00:00Z"}]
