"""The daemon's control operations, through the real socket of a real gateway."""

import asyncio

from edgegw.control import ControlClient
from edgegw.sim.cloud import SimCloud
from tests.conftest import GatewayFactory, gateway_url, raw_charger

START = {
    "connectorId": 1,
    "idTag": "04A1B2C3",
    "meterStart": 0,
    "timestamp": "2026-01-01T10:00:00Z",
}


async def test_sync_status_shows_what_waits_for_the_cloud(make_gateway: GatewayFactory) -> None:
    cloud = SimCloud()
    await cloud.start()
    url = cloud.url
    await cloud.stop()
    gateway = await make_gateway(cloud_url=url, auth={"unknown_cards": "accept"})
    socket = gateway.config.control.socket
    async with raw_charger(gateway_url(gateway), "CP1") as cp:
        await cp.call("BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"})
        assert (await cp.call("StartTransaction", START))[0] == 3
        async with await ControlClient.connect(socket) as client:
            status = await client.call("sync.status")
            cp1 = next(c for c in status["chargers"] if c["id"] == "CP1")
            assert status["queued"] == 1 and cp1["queued"] == 1 and cp1["parked"] == 0
            assert cp1["connected"] and cp1["cloud_link"] == "offline"
            assert cp1["oldest_age_s"] is not None and cp1["oldest_age_s"] >= 0
            assert (await client.call("sync.parked")) == []
            assert (await client.call("sync.retry", charger="CP1")) == {"requeued": 0}
            daemon = await client.call("status")
            assert [c["id"] for c in daemon["chargers"]] == ["CP1"]
            assert daemon["chargers"][0]["cloud_link"] == "offline"
            await cloud.start()
            await cloud.wait_for(lambda r: r.action == "StartTransaction" and r.direction == "out")
    async with await ControlClient.connect(socket) as client:
        for _ in range(200):  # the delivery is committed right after the cloud's answer
            if (await client.call("sync.status"))["queued"] == 0:
                break
            await asyncio.sleep(0.01)
        assert (await client.call("sync.status"))["queued"] == 0
    await cloud.stop()
