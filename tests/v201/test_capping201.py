"""Load capping of OCPP 2.0.1 chargers through the real daemon: a Modbus meter (pymodbus server
over TCP) that measures the building plus what the cars draw, a 2.0.1 station whose car draws
what the gateway's profiles allow (the station obeys the lowest of its ChargingStationMaxProfile
and its Tx part, each at its highest stack level, as OCPP 2.0.1 K01 says), and a CSMS built on
the ``ocpp`` library's v201 (and v16) handlers. Every SetChargingProfile the station gets is
checked against the library's v201 schema. Real sockets on port 0."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from ocpp.messages import get_validator
from ocpp.v201 import call as call201
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from edgegw.daemon import Gateway
from edgegw.energy.sampling import AUTOMATIC
from edgegw.ocpp.versions import OCPP16, OCPP201
from edgegw.proxy.session import CallFailed
from edgegw.sim.charger import SimCharger
from edgegw.sim.charger201 import SimCharger201
from edgegw.sim.meter import SimMeter
from tests.conftest import GatewayFactory, gateway_url, raw_charger
from tests.v201.test_link201 import online
from tests.v201.test_relay201 import Cloud201

LIMIT = 40.0
MARGIN = 2.0
TOLERANCE = 0.5
"""A grid sample right after a car followed a cut may still carry the old draw for one poll."""


async def until(predicate: Callable[[], bool], timeout: float) -> None:
    """Wait for a physical process (cars ramping, meters polled) to reach a state."""
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 - sampling a simulated physical process
            await asyncio.sleep(0.05)


@dataclass
class Station201:
    """A simulated 2.0.1 station (``edgegw.sim.charger201``) with one car on EVSE 1, which
    draws what the station's charging profiles allow (below 6 A: nothing)."""

    sim: SimCharger201
    car_a: float = 32.0
    profiles: dict[tuple[int, str, int], dict[str, Any]] = field(default_factory=dict)
    """Installed, by (evseId, purpose, stackLevel)."""
    received: list[dict[str, Any]] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    energy_wh: float = 0.0

    @classmethod
    def make(cls, charger_id: str, url: str, **variables: str) -> Station201:
        device_model = {
            ("SampledDataCtrlr", "TxUpdatedMeasurands"): "Energy.Active.Import.Register",
            ("SampledDataCtrlr", "TxUpdatedInterval"): "60",
            ("AlignedDataCtrlr", "Measurands"): "Energy.Active.Import.Register",
            ("AlignedDataCtrlr", "Interval"): "900",
        }
        station = cls(SimCharger201(charger_id, url, variables=device_model))
        station.sim.handlers["SetChargingProfile"] = station.set_charging_profile
        station.sim.handlers["ClearChargingProfile"] = lambda _p: {"status": "Accepted"}
        return station

    def set_charging_profile(self, payload: dict[str, Any]) -> dict[str, Any]:
        self.received.append(payload)
        try:
            get_validator(2, "SetChargingProfile", "2.0.1").validate(payload)
        except Exception as exc:  # recorded: the test fails on it
            self.invalid.append(str(exc))
            return {"status": "Rejected"}
        profile = payload["chargingProfile"]
        evse, purpose, level = (
            payload["evseId"],
            profile["chargingProfilePurpose"],
            profile["stackLevel"],
        )
        if purpose == "ChargingStationMaxProfile" and profile["chargingProfileKind"] == "Relative":
            self.invalid.append(f"K01.FR.38: {profile}")
            return {"status": "Rejected"}
        for (e, p, lvl), old in self.profiles.items():
            clash = (e, p, lvl) == (evse, purpose, level) or (
                p == purpose == "TxDefaultProfile" and lvl == level and 0 in (e, evse) and e != evse
            )
            if clash and old["id"] != profile["id"]:  # K01.FR.06, FR.52, FR.53
                self.invalid.append(f"clashes with {old['id']}: {payload}")
                return {"status": "Rejected"}
        for key, old in list(self.profiles.items()):
            if old["id"] == profile["id"]:
                del self.profiles[key]
        self.profiles[evse, purpose, level] = profile
        return {"status": "Accepted"}

    def _top(self, evse: int, purpose: str) -> float | None:
        levels = [k[2] for k in self.profiles if k[0] == evse and k[1] == purpose]
        if not levels:
            return None
        profile = self.profiles[evse, purpose, max(levels)]
        schedule = profile["chargingSchedule"][0]
        assert schedule["chargingRateUnit"] == "A"
        return float(schedule["chargingSchedulePeriod"][0]["limit"])

    def limit(self, evse: int = 1) -> float:
        station = self._top(0, "ChargingStationMaxProfile")
        tx = self._top(evse, "TxProfile")
        if tx is None:
            tx = self._top(evse, "TxDefaultProfile")
        if tx is None:
            tx = self._top(0, "TxDefaultProfile")
        limits = [v for v in (station, tx) if v is not None]
        return min(limits) if limits else self.car_a

    def draw(self, evse: int = 1) -> float:
        if evse not in self.sim.transactions:
            return 0.0
        allowed = self.limit(evse)
        return 0.0 if allowed < 6.0 else min(self.car_a, allowed)

    async def sample(self) -> None:
        """A TransactionEvent Updated with what the car draws now."""
        if 1 in self.sim.transactions:
            self.energy_wh += 10.0
            await self.sim.meter(1, self.draw(), self.energy_wh)


@pytest.fixture
async def cloud() -> AsyncIterator[Cloud201]:
    """One CSMS speaking both versions (the library's v201 and v16 handlers)."""
    csms = Cloud201(subprotocols=("ocpp2.0.1", "ocpp1.6"))
    async with serve(
        csms.handler,
        "127.0.0.1",
        0,
        subprotocols=[Subprotocol(p) for p in csms.subprotocols],
    ) as server:
        csms.url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/csms"
        yield csms


@pytest.fixture
async def meter() -> AsyncIterator[SimMeter]:
    async with SimMeter("eastron-sdm630") as sim:
        yield sim


async def capped_site(
    make_gateway: GatewayFactory, cloud: Cloud201, meter: SimMeter, *ids: str
) -> Gateway:
    return await make_gateway(
        cloud_url=cloud.url,
        chargers=[{"id": i, "max_current_a": 32, "fallback_current_a": 6} for i in ids],
        site={
            "limit_a": LIMIT,
            "margin_a": MARGIN,
            "fallback_ev_a": 12,
            "meter_lost_after": 3,
            "ramp_a_per_s": 50,
        },
        buses={"main": {"transport": "tcp", "host": "127.0.0.1", "port": meter.port}},
        meters=[{"name": "grid", "profile": "eastron-sdm630", "poll_interval": 0.2}],
    )


@contextlib.asynccontextmanager
async def running(*loops: Callable[[], Any]) -> AsyncIterator[None]:
    """Run the physical processes (meter follows the site, stations sample) for a block."""

    async def forever(step: Callable[[], Any], every: float) -> None:
        while True:
            result = step()
            if asyncio.iscoroutine(result):
                with contextlib.suppress(ConnectionError, TimeoutError):
                    await result
            await asyncio.sleep(every)

    tasks = [
        asyncio.create_task(forever(step, 0.05 if i == 0 else 0.5))  # noqa: TID251
        for i, step in enumerate(loops)
    ]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


# ------------------------------------------------------------------ the link


def test_a_2_0_1_link_takes_the_gateway_s_2_0_1_calls_and_refuses_1_6_ones() -> None:
    link = online()  # a 2.0.1 link, charger and cloud up
    message_id, out = link.gateway_call("SetVariables", {"setVariableData": []}, OCPP201)
    assert [type(c).__name__ for c in out] == ["ToCharger"]
    assert json.loads(out[0].frame)[1:3] == [message_id, "SetVariables"]  # type: ignore[union-attr]
    _, out = link.gateway_call("ChangeConfiguration", {"key": "K", "value": "1"})  # 1.6
    assert [type(c).__name__ for c in out] == ["GatewayDone"]
    assert out[0].reason == "charger speaks ocpp2.0.1: ChangeConfiguration not sent"  # type: ignore[union-attr]


# ------------------------------------------------------------------ the site


async def test_a_capped_site_takes_2_0_1_and_still_refuses_2_1(
    cloud: Cloud201, meter: SimMeter, make_gateway: GatewayFactory
) -> None:
    gateway = await capped_site(make_gateway, cloud, meter, "CS201")
    async with raw_charger(gateway_url(gateway), "CS201", subprotocols=["ocpp2.0.1"]) as cs:
        assert cs.ws.subprotocol == "ocpp2.0.1"
    async with raw_charger(gateway_url(gateway), "CS201", subprotocols=["ocpp2.1"]) as cs:
        assert cs.ws.subprotocol is None
        with pytest.raises(ConnectionClosed):
            await cs.ws.recv()
        assert cs.ws.close_code == 1002
        assert cs.ws.close_reason == (
            "subprotocol ocpp1.6 or ocpp2.0.1 required "
            "(this site caps load; ocpp2.1 chargers cannot be capped yet)"
        )


async def test_a_2_0_1_charger_is_capped_under_the_site_limit(
    cloud: Cloud201, meter: SimMeter, make_gateway: GatewayFactory
) -> None:
    gateway = await capped_site(make_gateway, cloud, meter, "CS201")
    controller = gateway.controller
    assert controller is not None
    station = Station201.make("CS201", gateway_url(gateway))
    building = [10.0]

    def grid() -> float:
        return building[0] + station.draw()

    def follow() -> None:
        amps = grid()
        meter.set_currents(amps, amps, amps)

    async with station.sim, running(follow, station.sample):
        await station.sim.boot()
        # Its safe profile first, before any reading: the whole station at its fallback.
        await until(
            lambda: any(k[:2] == (0, "ChargingStationMaxProfile") for k in station.profiles), 10
        )
        assert station.limit() == 6.0
        await station.sim.status(1, "Occupied")
        await station.sim.start(1, "CARD")
        # The car shares what the building leaves: 40 - 2 - 10 = 28 A.
        await until(lambda: station.draw() > 20 and controller.state().mode == "normal", 15)
        await until(lambda: grid() <= LIMIT - MARGIN + TOLERANCE, 10)
        # The building steps up: the car is cut until the site is back under its limit.
        building[0] = 26.0
        await until(lambda: grid() <= LIMIT - MARGIN + TOLERANCE, 10)
        assert station.draw() <= 12.0 + TOLERANCE
        await station.sim.stop(1)
    assert station.invalid == []
    purposes = {p["chargingProfile"]["chargingProfilePurpose"] for p in station.received}
    assert "ChargingStationMaxProfile" in purposes
    assert all(
        p["evseId"] == 0
        for p in station.received
        if p["chargingProfile"]["chargingProfilePurpose"] == "ChargingStationMaxProfile"
    )
    state = {c.id: c for c in controller.state().chargers}
    assert state["CS201"].last_error is None


async def test_a_mixed_site_of_1_6_and_2_0_1_chargers_never_exceeds_its_cap(
    cloud: Cloud201, meter: SimMeter, make_gateway: GatewayFactory
) -> None:
    gateway = await capped_site(make_gateway, cloud, meter, "CS201", "CP16")
    controller = gateway.controller
    assert controller is not None
    url = gateway_url(gateway)
    station = Station201.make("CS201", url)
    cp = SimCharger("CP16", url, connectors=1, car_current_a=32)
    building = [10.0]
    highest = [0.0]
    watching = [False]

    def grid() -> float:
        return building[0] + station.draw() + cp.current_a(1)

    def follow() -> None:
        amps = grid()
        if watching[0]:
            highest[0] = max(highest[0], amps)
        meter.set_currents(amps, amps, amps)

    async def sample16() -> None:
        if cp.session(1) is not None:
            await cp.meter_values(1)

    async with station.sim, cp, running(follow, station.sample, sample16):
        await station.sim.boot()
        await cp.boot()
        watching[0] = True  # from the first car on: the site never goes over its fuse
        await station.sim.status(1, "Occupied")
        await station.sim.start(1, "CARD")
        await cp.status(1, "Preparing")
        await cp.start_transaction(1, "TAG16")
        await cp.status(1, "Charging")
        # Both cars share 40 - 2 - 10 = 28 A, each version capped in its own form.
        await until(lambda: station.draw() >= 6 and cp.current_a(1) >= 6, 15)
        await until(lambda: grid() > 30 and controller.state().mode == "normal", 15)
        await until(lambda: grid() <= LIMIT - MARGIN + TOLERANCE, 10)
        assert highest[0] <= LIMIT
        # The building steps up (that step alone may cross the fuse: not the gateway's doing).
        watching[0] = False
        building[0] = 24.0
        await until(lambda: grid() <= LIMIT - MARGIN + TOLERANCE, 10)
        highest[0] = 0.0
        watching[0] = True
        await asyncio.sleep(3)  # cars and meter go on: the cut holds
        assert highest[0] <= LIMIT - MARGIN + TOLERANCE
        assert station.draw() + cp.current_a(1) <= 14.0 + 2 * TOLERANCE
    assert station.invalid == []
    assert station.received, "the 2.0.1 station got its profiles"
    assert controller.version_of("CS201") == OCPP201
    assert controller.version_of("CP16") == OCPP16


async def test_the_cloud_s_2_0_1_profile_is_clamped_under_the_cap(
    cloud: Cloud201, meter: SimMeter, make_gateway: GatewayFactory
) -> None:
    gateway = await capped_site(make_gateway, cloud, meter, "CS201")
    controller = gateway.controller
    assert controller is not None
    station = Station201.make("CS201", gateway_url(gateway))
    meter.set_currents(10.0, 10.0, 10.0)
    async with station.sim:
        await station.sim.boot()
        await until(lambda: bool(station.received), 10)
        ours = station.received[0]["chargingProfile"]
        csms = await cloud.station("CS201")
        # The cloud lifts the station's maximum to 63 A at a stack level above the gateway's.
        answer = await csms.call(
            call201.SetChargingProfile(
                evse_id=0,
                charging_profile={
                    "id": 77,
                    "stack_level": ours["stackLevel"] + 1,
                    "charging_profile_purpose": "ChargingStationMaxProfile",
                    "charging_profile_kind": "Absolute",
                    "charging_schedule": [
                        {
                            "id": 1,
                            "start_schedule": "2026-01-01T00:00:00Z",
                            "charging_rate_unit": "A",
                            "charging_schedule_period": [{"start_period": 0, "limit": 63.0}],
                        }
                    ],
                },
            )
        )
        assert answer.status == "Accepted"
        relayed = next(p for p in station.received if p["chargingProfile"]["id"] == 77)
        assert relayed["chargingProfile"]["stackLevel"] < ours["stackLevel"]
        assert (
            relayed["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"][0]["limit"]
            <= 6.0
        )
        assert station.limit() == 6.0  # the station's maximum is still the gateway's
        # The cloud's own TxDefaultProfile passes untouched (the station takes the minimum).
        before = len(station.sim.received)
        await csms.call(
            call201.SetChargingProfile(
                evse_id=1,
                charging_profile={
                    "id": 78,
                    "stack_level": 0,
                    "charging_profile_purpose": "TxDefaultProfile",
                    "charging_profile_kind": "Relative",
                    "charging_schedule": [
                        {
                            "id": 1,
                            "charging_rate_unit": "A",
                            "charging_schedule_period": [{"start_period": 0, "limit": 16.0}],
                        }
                    ],
                },
            )
        )
        frame = next(t for t in station.sim.received[before:] if '"SetChargingProfile"' in t)
        assert frame == cloud.raw("CS201", "out", json.loads(frame)[1])  # byte for byte
    assert station.invalid == []


async def test_a_2_0_1_charger_s_meter_values_are_set_through_its_device_model(
    cloud: Cloud201, meter: SimMeter, make_gateway: GatewayFactory
) -> None:
    gateway = await capped_site(make_gateway, cloud, meter, "CS201")
    sampling = gateway.sampling
    assert sampling is not None
    station = Station201.make("CS201", gateway_url(gateway))
    async with station.sim:
        await station.sim.boot()
        result = await sampling.wait_configured("CS201", timeout=10)
    variables = station.sim.variables
    measurands = variables["SampledDataCtrlr", "TxUpdatedMeasurands"].split(",")
    assert measurands == ["Energy.Active.Import.Register", *AUTOMATIC]  # the cloud's kept
    assert variables["SampledDataCtrlr", "TxUpdatedInterval"] == "10"
    assert variables["AlignedDataCtrlr", "Measurands"] == "Energy.Active.Import.Register"
    assert variables["AlignedDataCtrlr", "Interval"] == "900"  # untouched: not needed
    assert result.measurands == tuple(measurands)
    assert result.interval_s == 10
    assert result.refused == {}
    actions = [a for a, _ in station.sim.calls_received]
    assert "ChangeConfiguration" not in actions and "GetConfiguration" not in actions
    assert actions.count("GetVariables") == 1


async def test_a_1_6_call_to_a_2_0_1_charger_still_fails_and_sends_nothing(
    cloud: Cloud201, meter: SimMeter, make_gateway: GatewayFactory
) -> None:
    gateway = await capped_site(make_gateway, cloud, meter, "CS201")
    station = Station201.make("CS201", gateway_url(gateway))
    async with station.sim:
        await station.sim.boot()
        with pytest.raises(CallFailed, match=r"charger speaks ocpp2\.0\.1: Reset not sent"):
            await gateway.call("CS201", "Reset", {"type": "Soft"}, timeout=5)
        answer = await gateway.call(
            "CS201", "Reset", {"type": "Immediate"}, timeout=5, version=OCPP201
        )
        assert answer == {"status": "Accepted"}
