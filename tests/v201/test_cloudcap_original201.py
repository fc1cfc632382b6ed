"""The cloud's own limit is the one the cloud sent, not the clamped copy the station got.

A cloud profile the gateway clamped under its cap sits on the station below the gateway's
stack level, where it does nothing; what the site model must honour is the limit the cloud
asked for. Through the real daemon (real sockets, a pymodbus meter, the ``ocpp`` library's
v201 CSMS), as in :mod:`tests.v201.test_capping201`.
"""

from __future__ import annotations

from ocpp.v201 import call as call201

from edgegw.sim.meter import SimMeter
from tests.conftest import GatewayFactory, gateway_url
from tests.v201.test_capping201 import (  # noqa: F401
    LIMIT,
    Station201,
    capped_site,
    cloud,
    meter,
    running,
    until,
)
from tests.v201.test_relay201 import Cloud201


def station_max(profile_id: int, stack_level: int, limit: float) -> call201.SetChargingProfile:
    return call201.SetChargingProfile(
        evse_id=0,
        charging_profile={
            "id": profile_id,
            "stack_level": stack_level,
            "charging_profile_purpose": "ChargingStationMaxProfile",
            "charging_profile_kind": "Absolute",
            "charging_schedule": [
                {
                    "id": 1,
                    "start_schedule": "2026-01-01T00:00:00Z",
                    "charging_rate_unit": "A",
                    "charging_schedule_period": [{"start_period": 0, "limit": limit}],
                }
            ],
        },
    )


async def test_a_station_maximum_set_while_idle_does_not_hold_later_cars_at_the_safe_limit(
    cloud: Cloud201,  # noqa: F811
    meter: SimMeter,  # noqa: F811
    make_gateway: GatewayFactory,
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
        await until(
            lambda: any(k[:2] == (0, "ChargingStationMaxProfile") for k in station.profiles), 10
        )
        ours = next(
            p["chargingProfile"]
            for p in station.received
            if p["chargingProfile"]["chargingProfilePurpose"] == "ChargingStationMaxProfile"
        )
        csms = await cloud.station("CS201")
        # Idle: the cloud's 32 A maximum reaches the station clamped to its safe 6 A.
        answer = await csms.call(station_max(77, ours["stackLevel"] + 1, 32.0))
        assert answer.status == "Accepted"
        relayed = next(p for p in station.received if p["chargingProfile"]["id"] == 77)
        assert (
            relayed["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"][0]["limit"]
            <= 6.0
        )
        await station.sim.status(1, "Occupied")
        await station.sim.start(1, "CARD")
        # The cloud allows 32 A, the site 40 - 2 - 10 = 28 A: the car gets the site's room.
        await until(lambda: station.draw() > 20 and controller.state().mode == "normal", 15)
        await station.sim.stop(1)
    assert station.invalid == []


async def test_a_station_maximum_set_while_the_site_is_tight_does_not_freeze_the_car(
    cloud: Cloud201,  # noqa: F811
    meter: SimMeter,  # noqa: F811
    make_gateway: GatewayFactory,
) -> None:
    gateway = await capped_site(make_gateway, cloud, meter, "CS201")
    controller = gateway.controller
    assert controller is not None
    station = Station201.make("CS201", gateway_url(gateway))
    building = [28.0]  # room: 40 - 2 - 28 = 10 A

    def grid() -> float:
        return building[0] + station.draw()

    def follow() -> None:
        amps = grid()
        meter.set_currents(amps, amps, amps)

    async with station.sim, running(follow, station.sample):
        await station.sim.boot()
        await station.sim.status(1, "Occupied")
        await station.sim.start(1, "CARD")
        await until(lambda: 6.0 <= station.draw() <= 10.5 and grid() <= LIMIT, 15)
        gateway_level = max(
            p["chargingProfile"]["stackLevel"]
            for p in station.received
            if p["chargingProfile"]["chargingProfilePurpose"] == "ChargingStationMaxProfile"
        )
        csms = await cloud.station("CS201")
        # The cloud's 32 A maximum reaches the station clamped to the car's current share.
        answer = await csms.call(station_max(77, gateway_level + 1, 32.0))
        assert answer.status == "Accepted"
        relayed = next(p for p in station.received if p["chargingProfile"]["id"] == 77)
        assert (
            relayed["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"][0]["limit"]
            <= 10.5
        )
        # The building's load goes: 40 - 2 - 4 = 34 A of room, the cloud allows 32 A.
        building[0] = 4.0
        await until(lambda: station.draw() >= 30.0, 15)
        await station.sim.stop(1)
    assert station.invalid == []
