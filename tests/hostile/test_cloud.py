"""A malicious (or merely careless) cloud: frames a real CSMS may send, through a real gateway.

The cloud is a real websockets server on port 0 that sends exactly what each test writes; the
charger is a frame-level simulated charger. Whatever the cloud sends, the link to it must
survive (same connection, no reconnect), the cloud must get a CALLERROR for what is invalid,
nothing that is not JSON may reach the charger, and the charger must keep being relayed.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from edgegw.auth.chargerformats import charger_models
from edgegw.energy.profiles import GatewayCap, clamp_cloud_profile, profile_limit_a
from tests.conftest import GatewayFactory, RawCharger, gateway_url, raw_charger

BOOT = {"chargePointVendor": "Vendor", "chargePointModel": "Model"}
FLOAT_MAX = "3.4028235E38"  # Java's Float.MAX_VALUE: a real CSMS's "no limit"


def profile_with_limit(limit: str) -> str:
    """A ChargingProfile whose limit is the literal JSON text ``limit``."""
    return (
        '{"chargingProfileId":7,"stackLevel":1,"chargingProfilePurpose":"TxDefaultProfile",'
        '"chargingProfileKind":"Absolute","chargingSchedule":{"chargingRateUnit":"A",'
        f'"chargingSchedulePeriod":[{{"startPeriod":0,"limit":{limit}}}]}}}}'
    )


def set_profile(message_id: str, limit: str) -> str:
    return (
        f'[2,"{message_id}","SetChargingProfile",'
        f'{{"connectorId":1,"csChargingProfiles":{profile_with_limit(limit)}}}]'
    )


def remote_start(message_id: str, limit: str) -> str:
    return (
        f'[2,"{message_id}","RemoteStartTransaction",'
        f'{{"connectorId":1,"idTag":"TAG1","chargingProfile":{profile_with_limit(limit)}}}]'
    )


class RawCloud:
    """A frame-level CSMS: every connection the gateway opens, to send and read raw frames."""

    def __init__(self) -> None:
        self.connections: asyncio.Queue[ServerConnection] = asyncio.Queue()

    async def handler(self, ws: ServerConnection) -> None:
        await self.connections.put(ws)
        await ws.wait_closed()


@dataclass
class Site:
    cloud: RawCloud
    upstream: ServerConnection
    charger: RawCharger

    async def from_gateway(self) -> list[Any]:
        async with asyncio.timeout(5):
            return json.loads(await self.upstream.recv())  # type: ignore[no-any-return]

    async def cloud_call(self, raw: str) -> list[Any]:
        """Send a raw frame as the cloud; the next frame the gateway sends up."""
        await self.upstream.send(raw)
        return await self.from_gateway()

    async def still_linked(self, message_id: str) -> None:
        """The same cloud connection still relays both ways, and the charger got no junk."""
        await self.upstream.send(json.dumps([2, message_id, "Reset", {"type": "Soft"}]))
        relayed = await self.charger.recv()
        assert relayed == [2, message_id, "Reset", {"type": "Soft"}]  # nothing came before it
        await self.charger.send([3, message_id, {"status": "Accepted"}])
        assert await self.from_gateway() == [3, message_id, {"status": "Accepted"}]
        await self.charger.send([2, f"hb-{message_id}", "Heartbeat", {}])
        assert (await self.from_gateway())[:3] == [2, f"hb-{message_id}", "Heartbeat"]
        answer = {"currentTime": "2026-01-01T00:00:00Z"}
        await self.upstream.send(json.dumps([3, f"hb-{message_id}", answer]))
        assert await self.charger.recv() == [3, f"hb-{message_id}", answer]
        assert self.cloud.connections.empty(), "the gateway reconnected to the cloud"


@asynccontextmanager
async def site(make_gateway: GatewayFactory, **sections: Any) -> AsyncIterator[Site]:
    cloud = RawCloud()
    async with serve(cloud.handler, "127.0.0.1", 0, subprotocols=["ocpp1.6"]) as server:  # type: ignore[list-item]
        port = server.sockets[0].getsockname()[1]
        gateway = await make_gateway(cloud_url=f"ws://127.0.0.1:{port}/ocpp", **sections)
        async with raw_charger(gateway_url(gateway), "CP1") as cp:
            await cp.send([2, "boot", "BootNotification", BOOT])
            upstream = await cloud.connections.get()
            linked = Site(cloud, upstream, cp)
            assert (await linked.from_gateway())[:3] == [2, "boot", "BootNotification"]
            boot = {"status": "Accepted", "currentTime": "2026-01-01T00:00:00Z", "interval": 300}
            await upstream.send(json.dumps([3, "boot", boot]))
            assert (await cp.recv())[:2] == [3, "boot"]
            yield linked


NOT_JSON = ["NaN", "Infinity", "-Infinity"]


@pytest.mark.parametrize("validate", [True, False], ids=["validated", "unvalidated"])
@pytest.mark.parametrize("make_frame", [set_profile, remote_start])
@pytest.mark.parametrize("limit", NOT_JSON)
async def test_a_limit_that_is_not_a_json_number_gets_a_callerror(
    make_gateway: GatewayFactory, make_frame: Any, limit: str, validate: bool
) -> None:
    async with site(make_gateway, server={"validate_schemas": validate}) as linked:
        answer = await linked.cloud_call(make_frame("bad1", limit))
        assert answer[:3] == [4, "bad1", "FormationViolation"], answer
        assert "number" in answer[3]
        await linked.still_linked("after1")


@pytest.mark.parametrize("validate", [True, False], ids=["validated", "unvalidated"])
@pytest.mark.parametrize("limit", ["1e400", "-1e999", "1" * 400 + ".5"])
async def test_a_limit_beyond_any_float_gets_a_callerror(
    make_gateway: GatewayFactory, limit: str, validate: bool
) -> None:
    async with site(make_gateway, server={"validate_schemas": validate}) as linked:
        answer = await linked.cloud_call(set_profile("huge1", limit))
        assert answer[:3] == [4, "huge1", "TypeConstraintViolation"], answer
        assert len(answer[3]) < 200  # the number is not echoed whole
        await linked.still_linked("after6")


@pytest.mark.parametrize("make_frame", [set_profile, remote_start])
@pytest.mark.parametrize("limit", ["1e308", FLOAT_MAX, "1.7976931348623157e308", "16.0"])
async def test_a_huge_finite_limit_is_relayed_as_no_limit(
    make_gateway: GatewayFactory, make_frame: Any, limit: str
) -> None:
    async with site(make_gateway) as linked:
        await linked.upstream.send(make_frame("big1", limit))
        relayed = await linked.charger.recv()
        assert relayed[:3] == [2, "big1", json.loads(make_frame("big1", limit))[2]]
        profile = relayed[3].get("csChargingProfiles") or relayed[3]["chargingProfile"]
        sent = profile["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"]
        assert sent == float(limit)
        await linked.charger.send([3, "big1", {"status": "Accepted"}])
        assert await linked.from_gateway() == [3, "big1", {"status": "Accepted"}]
        await linked.still_linked("after2")


async def test_a_limit_with_two_decimals_is_still_refused(make_gateway: GatewayFactory) -> None:
    async with site(make_gateway) as linked:
        for limit in ("16.05", "1e-300", "3.4028235E-38"):
            answer = await linked.cloud_call(set_profile(f"frac-{limit}", limit))
            assert answer[:3] == [4, f"frac-{limit}", "PropertyConstraintViolation"], answer
        await linked.still_linked("after3")


@pytest.mark.parametrize(
    "frame",
    [
        '[2,"int1","RemoteStopTransaction",{"transactionId":9223372036854775808}]',
        '[2,"int1","RemoteStopTransaction",{"transactionId":-9223372036854775809}]',
        '[2,"int1","ChangeAvailability",{"connectorId":' + "9" * 5000 + ',"type":"Operative"}]',
        '[2,"int1","SetChargingProfile",{"connectorId":1,"csChargingProfiles":'
        + profile_with_limit("16").replace(
            '"chargingProfileId":7', '"chargingProfileId":1' + "0" * 30
        )
        + "}]",
    ],
    ids=["2^63", "-2^63-1", "5000-digits", "profile-id"],
)
async def test_an_integer_out_of_range_gets_a_callerror(
    make_gateway: GatewayFactory, frame: str
) -> None:
    async with site(make_gateway, server={"validate_schemas": False}) as linked:
        answer = await linked.cloud_call(frame)
        assert answer[:3] == [4, "int1", "TypeConstraintViolation"], answer
        assert len(answer[3]) < 200  # the number is not echoed whole
        await linked.still_linked("after4")


async def test_the_largest_int64_is_relayed(make_gateway: GatewayFactory) -> None:
    async with site(make_gateway) as linked:
        await linked.upstream.send(
            '[2,"max","RemoteStopTransaction",{"transactionId":9223372036854775807}]'
        )
        assert await linked.charger.recv() == [
            2,
            "max",
            "RemoteStopTransaction",
            {"transactionId": 2**63 - 1},
        ]
        await linked.charger.send([3, "max", {"status": "Rejected"}])
        assert await linked.from_gateway() == [3, "max", {"status": "Rejected"}]
        await linked.still_linked("after5")


@pytest.mark.parametrize("limit", [3.4028235e38, 1e308, 1.7976931348623157e308])
@pytest.mark.parametrize("unit", ["A", "W"])
def test_a_no_limit_profile_is_clamped_to_the_site_cap(limit: float, unit: str) -> None:
    # What the energy controller does with such a profile when the gateway caps the charger.
    generic = charger_models()["generic-ocpp16"]
    payload = json.loads(set_profile("x", repr(limit)))[3]
    payload["csChargingProfiles"]["chargingProfilePurpose"] = "ChargePointMaxProfile"
    payload["csChargingProfiles"]["chargingSchedule"]["chargingRateUnit"] = unit
    cap = GatewayCap.for_model(generic, 10.0)
    clamped = clamp_cloud_profile(payload, cap)["csChargingProfiles"]
    sent = clamped["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"]
    assert sent == (10.0 if unit == "A" else 6900.0)  # 10 A x 230 V x 3 phases
    # Unclamped, it still reads as a finite (if enormous) allowance, never inf or NaN.
    allowed = profile_limit_a(payload["csChargingProfiles"], 0.0, anchor=0.0, phases=3)
    assert allowed is not None and math.isfinite(allowed) and allowed > 1e30
