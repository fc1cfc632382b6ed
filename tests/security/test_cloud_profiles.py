"""Gateway -> cloud: Security Profiles 2 and 3 against a SimCloud served over TLS."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest
import trustme

from edgegw.security.tls import TlsSetupError
from edgegw.sim.cloud import SimCloud
from tests.conftest import GatewayFactory, gateway_url, raw_charger
from tests.security.conftest import BOOT, LogWatcher, Pki, issue


def cloud_context(
    pki: Pki, *, client_ca: trustme.CA | None = None, expired: bool = False
) -> ssl.SSLContext:
    """The CSMS's server context; with ``client_ca`` it demands client certificates (SP3)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    issue(pki.site_ca, "localhost", expired=expired).configure_cert(context)
    if client_ca is not None:
        client_ca.configure_trust(context)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def cloud_section(pki: Pki, **extra: Any) -> dict[str, Any]:
    return {"ca_file": str(pki.write(pki.site_ca.cert_pem, "csms-ca.pem"))} | extra


def client_cert(pki: Pki, ca: trustme.CA, name: str) -> dict[str, str]:
    cert, key = pki.leaf_files(issue(ca, f"{name.lower()}.gw.test", cn=name), name)
    return {"cert": str(cert), "key": str(key)}


async def boot_reaches_cloud(gateway_ws: str, cloud: SimCloud, charger_id: str) -> None:
    async with raw_charger(gateway_ws, charger_id) as cp:
        await cp.call("BootNotification", BOOT)
        record = await cloud.wait_for(
            lambda r: r.action == "BootNotification" and r.charger_id == charger_id
        )
        assert record.direction == "in"


async def test_sp2_pinned_ca_and_basic_auth_per_charger(
    make_gateway: GatewayFactory, pki: Pki
) -> None:
    async with SimCloud(ssl=cloud_context(pki), passwords={"CP1": "cloud-secret-1"}) as cloud:
        gateway = await make_gateway(
            cloud_url=f"wss://localhost:{cloud.port}/ocpp",
            cloud=cloud_section(pki),
            chargers=[{"id": "CP1", "cloud_password": "cloud-secret-1"}],
        )
        assert gateway.config.cloud_profile("CP1") == 2
        await boot_reaches_cloud(gateway_url(gateway), cloud, "CP1")


async def test_sp2_expired_cloud_certificate_is_not_trusted(
    make_gateway: GatewayFactory, pki: Pki, logs: LogWatcher
) -> None:
    async with SimCloud(ssl=cloud_context(pki, expired=True)) as cloud:
        gateway = await make_gateway(
            cloud_url=f"wss://localhost:{cloud.port}/ocpp", cloud=cloud_section(pki)
        )
        async with raw_charger(gateway_url(gateway), "CP1") as cp:
            answer = await cp.call("BootNotification", BOOT)
            assert answer[2]["status"] == "Accepted"  # answered by the gateway itself
            await logs.wait_for("certificate has expired")
        assert not cloud.records and not cloud.connected


async def test_never_falls_back_to_plaintext(
    make_gateway: GatewayFactory, pki: Pki, logs: LogWatcher
) -> None:
    """A cloud that only speaks ws:// is never reached through a wss:// url."""
    async with SimCloud() as cloud:  # plain ws:// on this port
        gateway = await make_gateway(
            cloud_url=f"wss://localhost:{cloud.port}/ocpp", cloud=cloud_section(pki)
        )
        async with raw_charger(gateway_url(gateway), "CP1") as cp:
            await cp.call("BootNotification", BOOT)
            await logs.wait_for("cloud unreachable at wss://")
            # Let it retry a few times (reconnect delays are 0.05-0.2 s in tests).
            for _ in range(3):
                await cp.call("Heartbeat", {})
        assert not cloud.records and not cloud.connected
        assert all("ws://localhost" not in line for line in logs.lines)


async def test_sp3_gateway_client_certificate(make_gateway: GatewayFactory, pki: Pki) -> None:
    gateway_ca = trustme.CA(organization_name="gateways")
    cert = client_cert(pki, gateway_ca, "GW-1")
    async with SimCloud(ssl=cloud_context(pki, client_ca=gateway_ca)) as cloud:
        gateway = await make_gateway(
            cloud_url=f"wss://localhost:{cloud.port}/ocpp",
            cloud=cloud_section(pki, tls_cert_file=cert["cert"], tls_key_file=cert["key"]),
        )
        assert gateway.config.cloud_profile("CP1") == 3
        await boot_reaches_cloud(gateway_url(gateway), cloud, "CP1")


async def test_sp3_per_charger_certificate_takes_precedence(
    make_gateway: GatewayFactory, pki: Pki, logs: LogWatcher
) -> None:
    trusted = trustme.CA(organization_name="trusted by the CSMS")
    other = trustme.CA(organization_name="not trusted by the CSMS")
    own = client_cert(pki, trusted, "CP1")
    shared = client_cert(pki, other, "GW-1")
    async with SimCloud(ssl=cloud_context(pki, client_ca=trusted)) as cloud:
        gateway = await make_gateway(
            cloud_url=f"wss://localhost:{cloud.port}/ocpp",
            cloud=cloud_section(pki, tls_cert_file=shared["cert"], tls_key_file=shared["key"]),
            chargers=[
                {"id": "CP1", "cloud_tls_cert_file": own["cert"], "cloud_tls_key_file": own["key"]},
                {"id": "CP2"},
            ],
        )
        await boot_reaches_cloud(gateway_url(gateway), cloud, "CP1")
        async with raw_charger(gateway_url(gateway), "CP2") as cp:
            await cp.call("BootNotification", BOOT)
            await logs.wait_for("cloud unreachable at wss://")
        assert cloud.connected <= {"CP1"} and not cloud.find(charger_id="CP2")


async def test_sp3_without_a_client_certificate_is_refused_by_the_cloud(
    make_gateway: GatewayFactory, pki: Pki, logs: LogWatcher
) -> None:
    async with SimCloud(ssl=cloud_context(pki, client_ca=trustme.CA())) as cloud:
        gateway = await make_gateway(
            cloud_url=f"wss://localhost:{cloud.port}/ocpp", cloud=cloud_section(pki)
        )
        async with raw_charger(gateway_url(gateway), "CP1") as cp:
            await cp.call("BootNotification", BOOT)
            await logs.wait_for("cloud unreachable at wss://")
        assert not cloud.records


async def test_unloadable_client_key_fails_the_start_naming_the_file(
    make_gateway: GatewayFactory, pki: Pki, tmp_path: Path
) -> None:
    bad_key = tmp_path / "bad.key"
    bad_key.write_text("not a key\n")
    cert = client_cert(pki, trustme.CA(), "GW-1")
    async with SimCloud() as cloud:
        with pytest.raises(TlsSetupError, match=r"bad\.key"):
            await make_gateway(
                cloud_url=f"wss://localhost:{cloud.port}/ocpp",
                cloud=cloud_section(pki, tls_cert_file=cert["cert"], tls_key_file=str(bad_key)),
            )
        assert not cloud.records
