"""OCPP 2.0.1 stations and the Security Profiles, over real sockets (and real TLS).

A 2.0.1 station logs in as a 1.6 charger does: Basic auth (profiles 1 and 2) with a password
by the 2.0.1 rules (``SecurityCtrlr.BasicAuthPassword``: a ``passwordString`` of 16 to 40
characters from ``a-zA-Z0-9*-_=:+|~.``, a colon included), or a client certificate (profile 3);
a wrong password is refused (401) and its credentials reach the cloud unchanged, as a 1.6
charger's do. SignCertificate (station -> cloud) and CertificateSigned (cloud -> station) are
relayed byte for byte while the cloud is there; while it is away the gateway, the station's
Local Controller, answers SignCertificate ``Rejected`` and keeps nothing for later.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import InvalidStatus

from edgegw.auth.passwords import hash_password
from edgegw.sim import JsonDict
from edgegw.sim.cloud201 import SimCloud201
from edgegw.tasks import TaskOwner
from tests.conftest import GatewayFactory, RawCharger, gateway_url, raw_charger
from tests.security.conftest import Pki, basic, start_tls_gateway, ws_url, wss_url

V201 = ["ocpp2.0.1"]
BOOT201 = {"reason": "PowerUp", "chargingStation": {"model": "M", "vendorName": "V"}}
PW_40 = ("Aa0*-_=:+|~." * 4)[:40]  # the longest 2.0.1 passwordString, every allowed sign
PW_16 = "Sixteen-chars-16"
PW_HEX40 = "0123456789abcdef0123456789ABCDEF01234567"  # 40 hex digits, typed as such
PW_16_CHARGER = "a-1.6-charger-pw"
CSR = "-----BEGIN CERTIFICATE REQUEST-----\nMIIBfake\n-----END CERTIFICATE REQUEST-----\n"
CHAIN = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"


def _hash(password: str) -> str:
    return hash_password(password, log2_n=10)


class Cloud(SimCloud201):
    """A 2.0.1 CSMS that notes the Authorization each connection brought and signs CSRs."""

    def __init__(self) -> None:
        super().__init__()
        self.authorizations: list[tuple[str, str | None]] = []

    async def handle(self, ws: ServerConnection) -> None:
        request = ws.request
        if request is not None:
            identity = request.path.rsplit("/", 1)[-1]
            self.authorizations.append((identity, request.headers.get("Authorization")))
        await super().handle(ws)

    def respond(self, charger_id: str, action: str, payload: JsonDict) -> JsonDict | None:
        if action == "SignCertificate":
            return {"status": "Accepted"}
        return super().respond(charger_id, action, payload)

    def raw(self, direction: str, message_id: str) -> str:
        return next(
            r.raw for r in self.records if r.direction == direction and r.message_id == message_id
        )


@pytest.fixture
async def cloud() -> AsyncIterator[Cloud]:
    async with Cloud() as sim:
        yield sim


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    root = tmp_path / "pki"
    root.mkdir()
    return Pki(root)


async def _raw_call(cp: RawCharger, text: str) -> str:
    """Send ``text`` (a CALL) and return the exact text of its answer."""
    message_id = json.loads(text)[1]
    await cp.send(text)
    async with asyncio.timeout(20):
        while True:
            answer = await cp.ws.recv()
            assert isinstance(answer, str)
            if json.loads(answer)[1] == message_id:
                return answer


async def _refused(url: str, charger_id: str, **kwargs: Any) -> int:
    with pytest.raises(InvalidStatus) as info:
        async with raw_charger(url, charger_id, subprotocols=V201, **kwargs):
            pass
    return info.value.response.status_code


# ------------------------------------------------------------------ profile 1: Basic auth


@pytest.mark.parametrize("password", [PW_40, PW_16, PW_HEX40])
async def test_a_201_station_logs_in_with_its_basic_auth_password_as_a_16_charger_does(
    password: str, cloud: Cloud, make_gateway: GatewayFactory
) -> None:
    gateway = await make_gateway(
        cloud_url=cloud.url,
        chargers=[
            {"id": "CS201", "password_hash": _hash(password)},
            {"id": "CP16", "password_hash": _hash(PW_16_CHARGER)},
        ],
    )
    url = gateway_url(gateway)
    async with raw_charger(url, "CS201", subprotocols=V201, headers=basic("CS201", password)) as cs:
        assert cs.ws.subprotocol == "ocpp2.0.1"
        answer = await cs.call("BootNotification", BOOT201)
        assert answer[0] == 3 and answer[2]["status"] == "Accepted"
    # The invisible relay: the station's own credentials reach the cloud unchanged (as a 1.6
    # charger's do: tests/proxy/test_handshake_trim.py).
    assert cloud.authorizations == [("CS201", basic("CS201", password)["Authorization"])]

    assert await _refused(url, "CS201", headers=basic("CS201", password[:-1] + "?")) == 401
    assert await _refused(url, "CS201", headers=basic("CS201", password + "x")) == 401
    assert await _refused(url, "CS201") == 401  # no credentials at all
    assert await _refused(url, "CS201", headers=basic("CP16", PW_16_CHARGER)) == 401
    assert gateway.server is not None and gateway.server.login_failures("CS201") >= 3


# ------------------------------------------------------------------ profiles 2 and 3: TLS


async def test_profile_2_a_201_station_over_tls_with_its_password(
    cloud: Cloud, make_gateway: GatewayFactory, pki: Pki
) -> None:
    gateway = await start_tls_gateway(
        make_gateway,
        pki,
        server={"security_profile": 1, "tls_port": 0},  # plain ws:// and wss:// both open
        cloud_url=cloud.url,
        cloud={"security_profile": 1},  # the test's cloud listens on plain ws://
        chargers=[{"id": "CS201", "password_hash": _hash(PW_40), "security_profile": 2}],
    )
    url = wss_url(gateway)
    async with raw_charger(
        url, "CS201", subprotocols=V201, ssl=pki.charger_context(), headers=basic("CS201", PW_40)
    ) as cs:
        assert cs.ws.subprotocol == "ocpp2.0.1"
        assert (await cs.call("BootNotification", BOOT201))[2]["status"] == "Accepted"
    assert cloud.authorizations == [("CS201", basic("CS201", PW_40)["Authorization"])]
    context = pki.charger_context()
    assert await _refused(url, "CS201", ssl=context, headers=basic("CS201", PW_16)) == 401
    assert await _refused(url, "CS201", ssl=context) == 401
    # Profile 2 over plain ws:// is refused, the right password notwithstanding.
    plain = ws_url(gateway)
    assert await _refused(plain, "CS201", headers=basic("CS201", PW_40)) == 403


async def test_profile_3_a_201_station_with_its_client_certificate(
    cloud: Cloud, make_gateway: GatewayFactory, pki: Pki
) -> None:
    gateway = await start_tls_gateway(
        make_gateway,
        pki,
        server={"security_profile": 3},
        cloud_url=cloud.url,
        cloud={"security_profile": 1},
        chargers=[{"id": "CS201"}, {"id": "CS201B"}],
    )
    url = wss_url(gateway)
    async with raw_charger(url, "CS201", subprotocols=V201, ssl=pki.charger_context("CS201")) as cs:
        assert cs.ws.subprotocol == "ocpp2.0.1"
        assert (await cs.call("BootNotification", BOOT201))[2]["status"] == "Accepted"
    await cloud.wait_connected("CS201")
    assert cloud.authorizations == [("CS201", None)]  # the certificate was the credential
    assert await _refused(url, "CS201", ssl=pki.charger_context()) == 403  # no certificate
    assert await _refused(url, "CS201", ssl=pki.charger_context("CS201B")) == 403  # another's


# ------------------------------------------------------------------ certificates relayed


async def test_sign_certificate_and_certificate_signed_relayed_byte_for_byte(
    cloud: Cloud, make_gateway: GatewayFactory
) -> None:
    gateway = await make_gateway(cloud_url=cloud.url, chargers=[{"id": "CS201"}])
    async with raw_charger(gateway_url(gateway), "CS201", subprotocols=V201) as cs:
        assert (await cs.call("BootNotification", BOOT201))[2]["status"] == "Accepted"
        await cloud.wait_connected("CS201")
        # Station -> cloud, with odd spacing and escapes: the cloud must see these bytes.
        sign = (
            '[2, "sign-1" ,"SignCertificate",  {"csr": '
            + json.dumps(CSR)
            + ', "certificateType": "ChargingStationCertificate"}]'
        )
        answer = await _raw_call(cs, sign)
        assert json.loads(answer)[2] == {"status": "Accepted"}
        assert cloud.raw("in", "sign-1") == sign
        assert cloud.raw("out", "sign-1") == answer

        # Cloud -> station: the CertificateSigned call and the station's answer, untouched.
        tasks = TaskOwner("test-certificate-signed")
        signed = tasks.spawn(
            cloud.call(
                "CS201",
                "CertificateSigned",
                {"certificateChain": CHAIN, "certificateType": "ChargingStationCertificate"},
            ),
            "certificate-signed",
        )
        async with asyncio.timeout(10):
            while True:
                text = await cs.ws.recv()
                assert isinstance(text, str)
                frame = json.loads(text)
                if frame[0] == 2 and frame[2] == "CertificateSigned":
                    break
        assert text == cloud.raw("out", frame[1])
        reply = '[3,"' + frame[1] + '", {"status":"Accepted" }]'
        await cs.send(reply)
        assert await signed == {"status": "Accepted"}
        assert cloud.raw("in", frame[1]) == reply
        await tasks.close()


async def test_sign_certificate_offline_is_rejected_and_never_queued(
    cloud: Cloud, make_gateway: GatewayFactory
) -> None:
    gateway = await make_gateway(cloud_url=cloud.url, chargers=[{"id": "CS201"}])
    async with raw_charger(gateway_url(gateway), "CS201", subprotocols=V201) as cs:
        assert (await cs.call("BootNotification", BOOT201))[2]["status"] == "Accepted"
        await cloud.wait_connected("CS201")
        await cloud.stop()
        # The station stays connected; its Local Controller cannot sign: Rejected.
        answer = await _raw_call(cs, json.dumps([2, "sign-away", "SignCertificate", {"csr": CSR}]))
        assert json.loads(answer) == [3, "sign-away", {"status": "Rejected"}]
        await cloud.start()
        await cloud.wait_connected("CS201", timeout=15)
        beat = await _raw_call(cs, json.dumps([2, "beat-back", "Heartbeat", {}]))
        assert json.loads(beat)[0] == 3
        assert cloud.raw("in", "beat-back")  # relayed again: the cloud is back
    assert not [r for r in cloud.records if r.message_id == "sign-away"]  # nothing replayed


# ------------------------------------------------------------------ a new password, relayed


async def test_a_new_basic_auth_password_reaches_the_station_and_is_masked_in_the_log(
    cloud: Cloud, make_gateway: GatewayFactory
) -> None:
    """The cloud sets the station's next password (``SecurityCtrlr.BasicAuthPassword``, the
    2.0.1 form of 1.6's ChangeConfiguration AuthorizationKey): the station gets it byte for
    byte; the gateway's message log keeps the frame with the value masked, as for 1.6."""
    gateway = await make_gateway(cloud_url=cloud.url, chargers=[{"id": "CS201"}])
    assert gateway.store is not None
    new_password = "Next-password:40-chars*_=+|~.abcdefghijk"[:40]
    async with raw_charger(gateway_url(gateway), "CS201", subprotocols=V201) as cs:
        assert (await cs.call("BootNotification", BOOT201))[2]["status"] == "Accepted"
        await cloud.wait_connected("CS201")
        tasks = TaskOwner("test-set-password")
        setting = tasks.spawn(
            cloud.call(
                "CS201",
                "SetVariables",
                {
                    "setVariableData": [
                        {
                            "attributeValue": new_password,
                            "component": {"name": "SecurityCtrlr"},
                            "variable": {"name": "BasicAuthPassword"},
                        }
                    ]
                },
            ),
            "set-variables",
        )
        async with asyncio.timeout(10):
            while True:
                text = await cs.ws.recv()
                assert isinstance(text, str)
                frame = json.loads(text)
                if frame[0] == 2 and frame[2] == "SetVariables":
                    break
        assert text == cloud.raw("out", frame[1])  # the password reaches the station untouched
        result = {
            "attributeStatus": "Accepted",
            "component": {"name": "SecurityCtrlr"},
            "variable": {"name": "BasicAuthPassword"},
        }
        await cs.send([3, frame[1], {"setVariableResult": [result]}])
        assert (await setting)["setVariableResult"][0]["attributeStatus"] == "Accepted"
        await tasks.close()
    logged = [f.frame for f in gateway.store.message_log("CS201", limit=1000)]
    assert any("BasicAuthPassword" in f for f in logged)
    assert not [f for f in logged if new_password in f]
