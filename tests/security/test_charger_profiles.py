"""Chargers -> gateway: OCPP Security Profiles 2 and 3, accepted and refused, over real TLS."""

from __future__ import annotations

import ssl
from typing import Any

import pytest
from websockets.exceptions import InvalidHandshake, InvalidStatus

from edgegw.auth.passwords import hash_password
from edgegw.sim.charger import SimCharger
from tests.conftest import GatewayFactory, raw_charger
from tests.security.conftest import (
    BOOT,
    LogWatcher,
    Pki,
    basic,
    start_tls_gateway,
    ws_url,
    wss_url,
)

PASSWORD = "sixteen-chars-pw!"
HASH = hash_password(PASSWORD, log2_n=10)
SP2_CHARGERS: list[dict[str, Any]] = [{"id": "CP1", "password_hash": HASH}]
SP3_CHARGERS: list[dict[str, Any]] = [{"id": "CP1"}, {"id": "CP2"}]


async def expect_status(url: str, charger_id: str, status: int, **kwargs: Any) -> None:
    with pytest.raises(InvalidStatus) as info:
        async with raw_charger(url, charger_id, **kwargs):
            pass
    assert info.value.response.status_code == status


async def expect_tls_failure(url: str, charger_id: str, **kwargs: Any) -> None:
    """The connection fails at the TLS layer (either side may be the one to give up)."""
    with pytest.raises((OSError, InvalidHandshake)) as info:
        async with raw_charger(url, charger_id, **kwargs):
            pass
    assert not isinstance(info.value, InvalidStatus)  # never got as far as HTTP


# ------------------------------------------------------------------ profile 2


async def test_sp2_accepted_with_the_right_ca(make_gateway: GatewayFactory, pki: Pki) -> None:
    gateway = await start_tls_gateway(
        make_gateway, pki, server={"security_profile": 2}, chargers=SP2_CHARGERS
    )
    charger = SimCharger("CP1", wss_url(gateway), password=PASSWORD, ssl=pki.charger_context())
    async with charger:
        assert (await charger.boot())["status"] == "Accepted"
    cipher = None
    async with raw_charger(
        wss_url(gateway), "CP1", ssl=pki.charger_context(), headers=basic("CP1", PASSWORD)
    ) as cp:
        assert (await cp.call("Heartbeat", {}))[0] == 3
        tls = cp.ws.transport.get_extra_info("ssl_object")
        cipher = tls.version()
    assert cipher in ("TLSv1.2", "TLSv1.3")


async def test_sp2_still_needs_the_password(make_gateway: GatewayFactory, pki: Pki) -> None:
    gateway = await start_tls_gateway(
        make_gateway, pki, server={"security_profile": 2}, chargers=SP2_CHARGERS
    )
    url, context = wss_url(gateway), pki.charger_context()
    await expect_status(url, "CP1", 401, ssl=context)
    await expect_status(url, "CP1", 401, ssl=context, headers=basic("CP1", "wrong-password-123"))


async def test_sp2_refused_with_a_wrong_ca(make_gateway: GatewayFactory, pki: Pki) -> None:
    import trustme

    gateway = await start_tls_gateway(
        make_gateway, pki, server={"security_profile": 2}, chargers=SP2_CHARGERS
    )
    stranger = pki.charger_context(trust=trustme.CA())  # does not trust the site CA
    with pytest.raises(ssl.SSLCertVerificationError):
        async with raw_charger(wss_url(gateway), "CP1", ssl=stranger):
            pass


async def test_sp2_refused_with_an_expired_server_certificate(
    make_gateway: GatewayFactory, pki: Pki
) -> None:
    gateway = await start_tls_gateway(
        make_gateway, pki, server={"security_profile": 2, "expired": True}, chargers=SP2_CHARGERS
    )
    with pytest.raises(ssl.SSLCertVerificationError, match="expired"):
        async with raw_charger(wss_url(gateway), "CP1", ssl=pki.charger_context()):
            pass


async def test_plaintext_to_the_tls_port_is_refused_and_logged(
    make_gateway: GatewayFactory, pki: Pki, logs: LogWatcher
) -> None:
    gateway = await start_tls_gateway(
        make_gateway, pki, server={"security_profile": 2}, chargers=SP2_CHARGERS
    )
    plain = wss_url(gateway).replace("wss://", "ws://")
    with pytest.raises((OSError, InvalidHandshake)):
        async with raw_charger(plain, "CP1", headers=basic("CP1", PASSWORD)):
            pass
    line = await logs.wait_for("TLS handshake with 127.0.0.1 failed")
    assert "wss://" in line
    assert gateway.server is not None and gateway.server.port == gateway.server.tls_port


def test_server_context_requires_tls_1_2(pki: Pki) -> None:
    from pathlib import Path

    from edgegw.security.tls import server_context

    section = pki.server_section()
    context = server_context(
        Path(section["tls_cert_file"]),
        Path(section["tls_key_file"]),
        Path(section["tls_client_ca_file"]),
    )
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_OPTIONAL  # the per-charger check is at the upgrade
    names = {c["name"] for c in context.get_ciphers() if c["protocol"] == "TLSv1.2"}
    # The suites the OCPP 1.6 security white paper makes mandatory for a CSMS.
    assert {"ECDHE-ECDSA-AES128-GCM-SHA256", "AES128-GCM-SHA256"} <= names


# ------------------------------------------------------------------ profile 3


async def test_sp3_accepted_with_its_client_certificate(
    make_gateway: GatewayFactory, pki: Pki
) -> None:
    gateway = await start_tls_gateway(
        make_gateway, pki, server={"security_profile": 3}, chargers=SP3_CHARGERS
    )
    charger = SimCharger("CP1", wss_url(gateway), ssl=pki.charger_context("CP1"))
    async with charger:  # no Basic auth: the certificate is the credential
        assert (await charger.boot())["status"] == "Accepted"
        assert "CP1" in gateway.sessions


async def test_sp3_refused_with_a_certificate_for_another_identity(
    make_gateway: GatewayFactory, pki: Pki, logs: LogWatcher
) -> None:
    gateway = await start_tls_gateway(
        make_gateway, pki, server={"security_profile": 3}, chargers=SP3_CHARGERS
    )
    await expect_status(wss_url(gateway), "CP1", 403, ssl=pki.charger_context("CP2"))
    line = await logs.wait_for("refused CP1 from 127.0.0.1: its client certificate is for CN")
    assert "'CP2'" in line


async def test_sp3_refused_without_a_client_certificate(
    make_gateway: GatewayFactory, pki: Pki, logs: LogWatcher
) -> None:
    gateway = await start_tls_gateway(
        make_gateway, pki, server={"security_profile": 3}, chargers=SP3_CHARGERS
    )
    await expect_status(wss_url(gateway), "CP1", 403, ssl=pki.charger_context())
    await logs.wait_for("security profile 3 requires a client certificate and it presented none")


async def test_sp3_refused_with_a_certificate_from_another_ca(
    make_gateway: GatewayFactory, pki: Pki, logs: LogWatcher
) -> None:
    import trustme

    gateway = await start_tls_gateway(
        make_gateway, pki, server={"security_profile": 3}, chargers=SP3_CHARGERS
    )
    forged = pki.charger_context("CP1", issuer=trustme.CA())
    await expect_tls_failure(wss_url(gateway), "CP1", ssl=forged)
    await logs.wait_for("TLS handshake with 127.0.0.1 failed: certificate verify failed")
    assert "CP1" not in gateway.sessions


async def test_sp3_refused_with_an_expired_client_certificate(
    make_gateway: GatewayFactory, pki: Pki, logs: LogWatcher
) -> None:
    gateway = await start_tls_gateway(
        make_gateway, pki, server={"security_profile": 3}, chargers=SP3_CHARGERS
    )
    expired = pki.charger_context("CP1", expired=True)
    await expect_tls_failure(wss_url(gateway), "CP1", ssl=expired)
    await logs.wait_for("certificate has expired")


async def test_sp3_certificate_cn_may_be_the_serial_number(
    make_gateway: GatewayFactory, pki: Pki
) -> None:
    chargers = [{"id": "CP1", "certificate_cn": "SN-0042"}]
    gateway = await start_tls_gateway(
        make_gateway, pki, server={"security_profile": 3}, chargers=chargers
    )
    async with raw_charger(wss_url(gateway), "CP1", ssl=pki.charger_context("SN-0042")) as cp:
        assert (await cp.call("BootNotification", BOOT))[0] == 3
    await expect_status(wss_url(gateway), "CP1", 403, ssl=pki.charger_context("CP1"))


# ------------------------------------------------------------------ a mixed site


async def test_mixed_site_profiles_are_raised_per_charger_never_lowered(
    make_gateway: GatewayFactory, pki: Pki, logs: LogWatcher
) -> None:
    chargers = [
        {"id": "OLD1", "password_hash": HASH},  # site profile 1
        {"id": "NEW2", "password_hash": HASH, "security_profile": 2},
        {"id": "NEW3", "security_profile": 3},
    ]
    gateway = await start_tls_gateway(
        make_gateway, pki, server={"security_profile": 1, "tls_port": 0}, chargers=chargers
    )
    plain, tls = ws_url(gateway), wss_url(gateway)
    assert plain.rsplit(":", 1)[1] != tls.rsplit(":", 1)[1]
    auth = basic("OLD1", PASSWORD)
    async with raw_charger(plain, "OLD1", headers=auth) as cp:
        assert (await cp.call("BootNotification", BOOT))[0] == 3
    # A profile-2 charger on the plain port is refused, with the reason in the log.
    await expect_status(plain, "NEW2", 403, headers=basic("NEW2", PASSWORD))
    await logs.wait_for("refused NEW2 from 127.0.0.1: security profile 2 requires TLS (wss://)")
    async with raw_charger(tls, "NEW2", ssl=pki.charger_context(), headers=basic("NEW2", PASSWORD)):
        pass
    # Profile 3: a certificate is needed even on the TLS port.
    await expect_status(tls, "NEW3", 403, ssl=pki.charger_context())
    async with raw_charger(tls, "NEW3", ssl=pki.charger_context("NEW3")):
        pass
    # A profile-1 charger may connect with more security than it needs (raising is fine).
    async with raw_charger(tls, "OLD1", ssl=pki.charger_context(), headers=auth):
        pass
