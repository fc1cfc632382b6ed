"""The cloud link over wss:// with a configured CA bundle (certificates made in the test)."""

from __future__ import annotations

import ssl
from pathlib import Path

import trustme

from edgegw.sim.cloud import SimCloud
from tests.conftest import GatewayFactory, gateway_url, raw_charger

BOOT = {"chargePointVendor": "Vendor", "chargePointModel": "Model"}


def server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    return context


async def test_wss_with_ca_bundle(tmp_path: Path, make_gateway: GatewayFactory) -> None:
    ca = trustme.CA()
    ca_file = tmp_path / "csms-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    async with SimCloud(ssl=server_context(ca)) as cloud:
        url = f"wss://localhost:{cloud.port}/ocpp"
        gateway = await make_gateway(cloud_url=url, cloud={"ca_file": str(ca_file)})
        async with raw_charger(gateway_url(gateway), "CP1") as cp:
            await cp.call("BootNotification", BOOT)
            record = await cloud.wait_for(lambda r: r.action == "BootNotification")
            assert record.charger_id == "CP1"


async def test_wss_with_wrong_ca_is_not_trusted(
    tmp_path: Path, make_gateway: GatewayFactory
) -> None:
    ca_file = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(ca_file))  # not the CA that signed the cloud's cert
    async with SimCloud(ssl=server_context(trustme.CA())) as cloud:
        url = f"wss://localhost:{cloud.port}/ocpp"
        gateway = await make_gateway(cloud_url=url, cloud={"ca_file": str(ca_file)})
        async with raw_charger(gateway_url(gateway), "CP1") as cp:
            # The cloud is unreachable for the gateway: it answers the boot itself.
            answer = await cp.call("BootNotification", BOOT)
            assert answer[2]["status"] == "Accepted"
        assert not cloud.records
