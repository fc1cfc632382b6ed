"""The load controller against real simulated chargers over real OCPP websockets.

The test plays the site's CSMS: a :class:`SimCloud` on port 0 that the :class:`SimCharger`s
connect to, which hands every answered charger call to the controller as events (as the daemon's
event hub does) and carries the controller's own calls (``call``) to the chargers. The site meter is
a closed loop: its grid current is the building load plus what the simulated chargers really
draw, so "within the limit" is checked against what the chargers did, not what was decided.

Control rounds are run by the test (``run_round``) with an injected monotonic clock, except
where the point is that an event starts a round by itself.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from edgegw.config import Config, parse_config
from edgegw.energy.chargermodels import ChargerModel, load_models
from edgegw.energy.controller import ControllerState, Flag, LoadController, Tuning
from edgegw.energy.registers import Reading
from edgegw.ocpp.events import ChargerConnected, ChargerDisconnected
from edgegw.ocpp.interpret import interpret
from edgegw.services.caretaker import LoadLimits
from edgegw.sim.charger import SimCharger
from edgegw.sim.cloud import SimCloud

MODELS = load_models(Path(__file__).resolve().parents[2] / "hardware" / "chargers")
TAG = "AA11BB22"
FAST = Tuning(retry_delays_s=(0.05,), ignore_grace_s=5.0, ignore_after_s=5.0)


def exchanged(
    controller: LoadController,
    charger_id: str,
    action: str,
    request: dict[str, Any],
    response: dict[str, Any],
) -> None:
    """An answered charger call, as the event hub hands it to the controller."""
    for event in interpret(charger_id, action, request, response, 0.0):
        controller.handle(event)


def connected(controller: LoadController, charger_id: str) -> None:
    controller.handle(ChargerConnected(charger_id=charger_id, at=0.0))


def disconnected(controller: LoadController, charger_id: str) -> None:
    controller.handle(ChargerDisconnected(charger_id=charger_id, at=0.0))


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass(frozen=True)
class Sample:
    reading: Reading
    at: float


@dataclass
class Meter:
    """The site meter: building load + the simulated chargers' real draw, per phase."""

    clock: FakeClock
    chargers: list[SimCharger] = field(default_factory=list)
    wiring: dict[str, tuple[int, ...]] = field(default_factory=dict)
    building: tuple[float, float, float] = (4.0, 4.0, 4.0)
    role: str = "grid"
    frozen: bool = False
    started: bool = True
    last: Sample | None = None

    def grid(self) -> tuple[float, float, float]:
        load = list(self.building)
        if self.role == "grid":
            for charger in self.chargers:
                wired = self.wiring.get(charger.charger_id, (0, 1, 2))
                for connector in range(1, charger.connectors + 1):
                    for phase in wired[: charger.phases]:
                        load[phase] += charger.current_a(connector)
        return (load[0], load[1], load[2])

    def __call__(self) -> Sample | None:
        if not self.started:
            return None
        if self.frozen:
            return self.last
        l1, l2, l3 = self.grid()
        reading = Reading(current_l1_a=l1, current_l2_a=l2, current_l3_a=l3)
        self.last = Sample(reading, self.clock())
        return self.last


class Csms(SimCloud):
    """The site's CSMS: answers chargers and reports every exchange to the controller."""

    controller: LoadController | None = None

    def respond(self, charger_id: str, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        answer = super().respond(charger_id, action, payload)
        if self.controller is not None:
            exchanged(self.controller, charger_id, action, payload, answer)
        return answer


class Decisions:
    def __init__(self) -> None:
        self.rows: list[tuple[float, str, dict[str, Any], dict[str, Any]]] = []

    def record(self, at: float, mode: str, inputs: Any, outputs: Any) -> None:
        self.rows.append((at, mode, dict(inputs), dict(outputs)))


def site_config(
    chargers: list[dict[str, Any]], circuits: list[dict[str, Any]] | None = None, **site: Any
) -> Config:
    return parse_config(
        {
            "site": {"limit_a": 40, "margin_a": 2, "ramp_a_per_s": 100, **site},
            "buses": {"main": {"transport": "tcp", "host": "127.0.0.1"}},
            "meters": [{"profile": "eastron-sdm630"}],
            "chargers": chargers,
            "circuits": circuits or [],
        }
    )


@dataclass
class Rig:
    csms: Csms
    clock: FakeClock
    meter: Meter
    decisions: Decisions
    controller: LoadController
    chargers: dict[str, SimCharger]

    async def connect(self, charger_id: str, **kwargs: Any) -> SimCharger:
        charger = SimCharger(charger_id, self.csms.url, connectors=1, **kwargs)
        await charger.connect()
        await self.csms.wait_connected(charger_id)
        self.chargers[charger_id] = charger
        self.meter.chargers.append(charger)
        connected(self.controller, charger_id)
        await charger.boot()
        await charger.status(1, "Available")
        return charger

    async def round(self, advance: float = 1.0, *, meter_values: bool = True) -> None:
        """One control round ``advance`` seconds after the last, then wait for the profiles.

        Before it, every charger with a session sends MeterValues (real ones do every few
        seconds), unless ``meter_values`` is false.
        """
        self.clock.advance(advance)
        if meter_values:
            for charger in self.chargers.values():
                if charger.session(1) is not None:
                    await charger.meter_values(1)
        self.controller.run_round()
        await self.controller.wait_settled(5)

    async def settle(self) -> None:
        """The first rounds: the first one has no time to ramp in (dt = 0), so two."""
        await self.round()
        await self.round()

    def state(self) -> ControllerState:
        return self.controller.state()

    def charger_state(self, charger_id: str) -> Any:
        return next(c for c in self.state().chargers if c.id == charger_id)


RigFactory = Callable[..., Awaitable[Rig]]


@pytest.fixture
async def rig() -> AsyncIterator[RigFactory]:
    made: list[Rig] = []

    async def make(
        chargers: list[dict[str, Any]],
        *,
        models: dict[str, ChargerModel] | None = None,
        tuning: Tuning = FAST,
        circuits: list[dict[str, Any]] | None = None,
        **site: Any,
    ) -> Rig:
        csms = Csms(accepted_tags=[TAG])
        await csms.start()
        clock = FakeClock()
        config = site_config(chargers, circuits, **site)
        assert config.site is not None
        meter = Meter(clock, role=config.site.meter_role)
        decisions = Decisions()

        async def call(charger_id: str, action: str, payload: dict[str, Any]) -> dict[str, Any]:
            return await csms.call(charger_id, action, payload, timeout=5)

        controller = LoadController(
            config, models or MODELS, call, meter, decisions, clock=clock, tuning=tuning
        )
        csms.controller = controller
        made.append(Rig(csms, clock, meter, decisions, controller, {}))
        return made[-1]

    yield make
    for r in made:
        await r.controller.close()
        for charger in r.chargers.values():
            await charger.close()
        await r.csms.stop()


def draws(charger: SimCharger) -> float:
    return charger.current_a(1)


async def send_meter_values(*chargers: SimCharger) -> None:
    for charger in chargers:
        await charger.meter_values(1)


# --------------------------------------------------------------------------------------------


async def test_starts_safe_before_the_first_reading(rig: RigFactory) -> None:
    r = await rig(
        [{"id": "CP1"}, {"id": "CP2", "fallback_current_a": 8}],
        fallback_ev_a=20,
    )
    r.meter.started = False  # the meter has not answered yet
    cp1 = await r.connect("CP1")
    cp2 = await r.connect("CP2")
    # On connect, before any reading or round: CP1 paused (fallback 0), CP2 at its 8 A.
    first = await cp1.wait_call("SetChargingProfile")
    assert first["connectorId"] == 0
    assert first["csChargingProfiles"]["chargingProfilePurpose"] == "ChargePointMaxProfile"
    assert first["csChargingProfiles"]["chargingSchedule"]["chargingSchedulePeriod"][0] == {
        "startPeriod": 0,
        "limit": 0.0,
    }
    await r.controller.wait_settled(5)
    assert cp1.offered_a(1) == 0
    assert cp2.offered_a(1) == 8

    # Cars arrive: they start at the safe limit at once, and a round keeps it that way.
    await cp1.tap(TAG)
    await cp2.tap(TAG)
    assert (draws(cp1), draws(cp2)) == (0, 8)
    await r.round()
    state = r.state()
    assert state.mode == "fallback"
    assert state.meter == "waiting"
    assert (draws(cp1), draws(cp2)) == (0, 8)
    assert r.decisions.rows[-1][1] == "fallback"


async def test_building_load_step_is_cut_at_once_and_steady_state_is_within_limit(
    rig: RigFactory,
) -> None:
    r = await rig([{"id": "CP1"}, {"id": "CP2"}], control_interval=60)
    cp1 = await r.connect("CP1")
    cp2 = await r.connect("CP2")
    await cp1.tap(TAG)
    await cp2.tap(TAG)
    await r.settle()
    assert (draws(cp1), draws(cp2)) == (16, 16)  # 4 A building + 32 A <= 40 - 2
    await send_meter_values(cp1, cp2)

    # The loop runs on a 60 s timer: only the meter event can make it react within the test.
    r.controller.start()
    sent_before = len([a for a, _ in cp1.received if a == "SetChargingProfile"])
    r.meter.building = (20.0, 20.0, 20.0)
    r.controller.meter_event()
    await r.controller.wait_until(lambda: draws(cp1) + draws(cp2) <= 18 + 1e-9, timeout=5)
    # One cut each, straight to the fair share: 38 - 20 = 18 A for two cars.
    assert (draws(cp1), draws(cp2)) == (9, 9)
    assert len([a for a, _ in cp1.received if a == "SetChargingProfile"]) == sent_before + 1
    assert all(g <= 38 + 1e-9 for g in r.meter.grid())

    # Steady state: later rounds keep it there.
    await send_meter_values(cp1, cp2)
    for _ in range(3):
        await r.round()
    assert all(g <= 38 + 1e-9 for g in r.meter.grid())
    state = r.state()
    assert state.mode == "normal"
    assert state.used_a == (18.0, 18.0, 18.0)


async def test_meter_loss_falls_back_and_recovers(rig: RigFactory) -> None:
    r = await rig(
        [{"id": "CP1", "fallback_current_a": 10}, {"id": "CP2", "fallback_current_a": 10}],
        fallback_ev_a=20,
        meter_lost_after=5,
    )
    cp1 = await r.connect("CP1")
    cp2 = await r.connect("CP2")
    await cp1.tap(TAG)
    await cp2.tap(TAG)
    await r.settle()
    assert (draws(cp1), draws(cp2)) == (16, 16)

    r.meter.frozen = True  # the meter stops answering; its last sample ages
    await r.round(advance=4)
    assert r.state().mode == "normal"
    await r.round(advance=2)  # now 6 s old
    state = r.state()
    assert (state.mode, state.meter) == ("fallback", "lost")
    assert (draws(cp1), draws(cp2)) == (10, 10)

    r.meter.frozen = False
    await r.round()
    assert (r.state().mode, r.state().meter) == ("normal", "ok")
    assert (draws(cp1), draws(cp2)) == (16, 16)


async def test_charger_ignoring_its_limit_is_flagged_once(
    rig: RigFactory, caplog: pytest.LogCaptureFixture
) -> None:
    r = await rig([{"id": "CP1"}, {"id": "CP2"}], limit_a=50)
    good = await r.connect("CP1")
    stubborn = await r.connect("CP2", ignore_profiles=True, max_current_a=32, car_current_a=32)
    await good.tap(TAG)
    await stubborn.tap(TAG)
    caplog.set_level(logging.WARNING, logger="edgegw.energy.controller")
    await r.settle()
    assert draws(stubborn) == 32  # whatever its limit says
    assert Flag.IGNORES_LIMIT.value not in r.charger_state("CP2").flags

    for _ in range(4):  # > ignore_grace_s + ignore_after_s of the fake clock
        await r.round(advance=3)
    flagged = r.charger_state("CP2")
    assert Flag.IGNORES_LIMIT.value in flagged.flags
    assert flagged.sessions[0].flags == (Flag.IGNORES_LIMIT.value,)
    assert Flag.IGNORES_LIMIT.value not in r.charger_state("CP1").flags

    # Its draw now counts as load the gateway does not control: the other car gets what is
    # really left (50 - 2 - 4 - 32 = 12 A), and the grid stays within the limit.
    await r.round()
    assert draws(good) == 12
    assert all(g <= 48 + 1e-9 for g in r.meter.grid())
    await r.round()
    assert len([m for m in caplog.messages if "ignores its charging profile" in m]) == 1


async def test_cloud_profiles_are_clamped_below_the_cap(rig: RigFactory) -> None:
    r = await rig([{"id": "CP1"}, {"id": "CP2", "model": "evbox-elvi"}], limit_a=26)
    cp1 = await r.connect("CP1")  # generic: cap in ChargePointMaxProfile, stack level 1
    cp2 = await r.connect("CP2")  # EVBox Elvi: cap in TxDefaultProfile, stack level 6
    tx1 = await cp1.tap(TAG)
    tx2 = await cp2.tap(TAG)
    await r.settle()
    assert (draws(cp1), draws(cp2)) == (10, 10)  # 26 - 2 - 4 = 20 A for two

    async def from_cloud(charger_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        relayed = r.controller.filter_cloud_call(charger_id, "SetChargingProfile", payload)
        answer = await r.csms.call(charger_id, "SetChargingProfile", relayed)
        r.controller.cloud_call_answered(charger_id, "SetChargingProfile", relayed, answer)
        return relayed

    def cloud_profile(purpose: str, limit: float, stack: int, **extra: Any) -> dict[str, Any]:
        return {
            "chargingProfileId": 7,
            "stackLevel": stack,
            "chargingProfilePurpose": purpose,
            "chargingProfileKind": "Relative",
            "chargingSchedule": {
                "chargingRateUnit": "A",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}],
            },
            **extra,
        }

    # A cloud ChargePointMaxProfile at the gateway's stack level would replace its cap.
    relayed = await from_cloud(
        "CP1",
        {"connectorId": 0, "csChargingProfiles": cloud_profile("ChargePointMaxProfile", 32, 1)},
    )
    assert relayed["csChargingProfiles"]["stackLevel"] == 0
    assert (
        relayed["csChargingProfiles"]["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"]
        == 10
    )
    assert draws(cp1) == 10

    # A cloud TxProfile outranks a TxDefaultProfile cap whatever its stack level: clamped.
    relayed = await from_cloud(
        "CP2",
        {
            "connectorId": 1,
            "csChargingProfiles": cloud_profile("TxProfile", 32, 6, transactionId=tx2),
        },
    )
    assert relayed["csChargingProfiles"]["stackLevel"] == 5
    assert draws(cp2) == 10

    # The site tightens: the gateway's next cut for CP2 is a TxProfile above the cloud's.
    r.meter.building = (10.0, 10.0, 10.0)
    await send_meter_values(cp1, cp2)
    await r.round()
    assert (draws(cp1), draws(cp2)) == (7, 7)
    last = await cp2.wait_call(
        "SetChargingProfile",
        lambda p: (
            p["csChargingProfiles"]["chargingProfilePurpose"] == "TxProfile"
            and p["csChargingProfiles"]["stackLevel"] == 6
        ),
    )
    assert last["csChargingProfiles"]["transactionId"] == tx2
    assert tx1 is not None

    # A cloud limit below the cap is honoured, and the freed current goes to the other car.
    await from_cloud(
        "CP1",
        {
            "connectorId": 1,
            "csChargingProfiles": cloud_profile("TxProfile", 6, 3, transactionId=tx1),
        },
    )
    await send_meter_values(cp1, cp2)
    await r.round()
    assert draws(cp1) == 6
    assert draws(cp2) == 8


async def test_cloud_clear_charging_profile_makes_the_gateway_reassert_its_cap(
    rig: RigFactory,
) -> None:
    r = await rig([{"id": "CP1"}], limit_a=16)
    cp1 = await r.connect("CP1")
    await cp1.tap(TAG)
    await r.settle()
    assert draws(cp1) == 10  # 16 - 2 - 4
    sets = len([a for a, _ in cp1.received if a == "SetChargingProfile"])

    clear: dict[str, Any] = {}  # "clear every profile"
    relayed = r.controller.filter_cloud_call("CP1", "ClearChargingProfile", clear)
    answer = await r.csms.call("CP1", "ClearChargingProfile", relayed)
    assert answer == {"status": "Accepted"}
    assert draws(cp1) == 16  # the charger is unconstrained now...
    r.controller.cloud_call_answered("CP1", "ClearChargingProfile", relayed, answer)
    await r.controller.wait_settled(5)
    # ... until the gateway re-asserted its cap, without waiting for a round.
    assert draws(cp1) == 10
    assert len([a for a, _ in cp1.received if a == "SetChargingProfile"]) == sets + 1

    # A clear aimed at the cloud's own profile by id never touches the gateway's.
    by_id = r.controller.filter_cloud_call("CP1", "ClearChargingProfile", {"id": 1_900_000_000})
    assert by_id == {"id": 1_900_000_000 - 1000}


async def test_only_meaningful_changes_are_sent(rig: RigFactory) -> None:
    r = await rig([{"id": "CP1", "max_current_a": 32}], limit_a=20, meter_role="non_ev")
    cp1 = await r.connect("CP1")
    await cp1.tap(TAG)
    await r.settle()
    assert draws(cp1) == 14  # 20 - 2 - 4

    def sent() -> int:
        return len([a for a, _ in cp1.received if a == "SetChargingProfile"])

    base = sent()
    for building in (3.8, 3.6):  # raises of 0.2 and 0.4 A: below min_change_a (0.5 A)
        r.meter.building = (building,) * 3
        await r.round()
    assert sent() == base
    assert draws(cp1) == 14
    # What the controller counts as in force is what the charger has, not the unsent 14.4 A:
    # counting more would hide 0.4 A of the car's draw from the estimate of the other loads.
    (session,) = r.charger_state("CP1").sessions
    assert session.offered_a == 14 and session.limit_a == 14.4
    r.meter.building = (3.4,) * 3  # 0.6 A above what the charger has: sent
    await r.round()
    assert sent() == base + 1
    assert draws(cp1) == 14.6
    r.meter.building = (3.5,) * 3  # a cut of 0.1 A: always sent
    await r.round()
    assert sent() == base + 2
    assert draws(cp1) == 14.5
    await r.round()
    await r.round()
    assert sent() == base + 2


async def test_refused_profile_is_shown_and_retried(rig: RigFactory) -> None:
    r = await rig([{"id": "CP1"}], limit_a=16)
    cp1 = SimCharger("CP1", r.csms.url, connectors=1)
    cp1.config["ChargeProfileMaxStackLevel"].value = "0"  # below the model's stack level 1
    await cp1.connect()
    await r.csms.wait_connected("CP1")
    r.chargers["CP1"] = cp1
    connected(r.controller, "CP1")

    def rejected() -> bool:
        return Flag.PROFILE_REJECTED.value in r.charger_state("CP1").flags

    await r.controller.wait_until(rejected, timeout=5)
    assert "Rejected" in (r.charger_state("CP1").last_error or "")
    assert r.charger_state("CP1").pending_profiles == 1
    cp1.config["ChargeProfileMaxStackLevel"].value = "8"  # the installer fixes the charger
    await r.controller.wait_settled(5)
    assert r.charger_state("CP1").flags == ()
    assert cp1.offered_a(1) == 0


async def test_charger_that_cannot_pause_is_held_at_its_minimum(rig: RigFactory) -> None:
    generic = MODELS["generic-ocpp16"]
    stubborn = generic.model_copy(
        update={
            "id": "no-pause",
            "smart_charging": generic.smart_charging.model_copy(update={"zero_current": "ignored"}),
        }
    )
    models = {**MODELS, "no-pause": stubborn}
    r = await rig(
        [{"id": "CP1", "model": "no-pause"}, {"id": "CP2"}],
        models=models,
        limit_a=16,
    )
    cp1 = await r.connect("CP1")
    cp2 = await r.connect("CP2")
    await r.controller.wait_settled(5)
    assert cp1.offered_a(1) == 6  # its safe profile cannot be 0 A
    assert cp2.offered_a(1) == 0
    await cp1.tap(TAG)
    await cp2.tap(TAG)
    await r.settle()
    # 16 - 2 - 4 = 10 A: room for one car only (two minimums are 12 A).
    assert sorted((draws(cp1), draws(cp2))) == [0, 10]

    # The building alone leaves less than a minimum: everyone must pause, but CP1 cannot.
    r.meter.building = (12.0, 12.0, 12.0)
    await r.round()
    assert draws(cp2) == 0
    assert draws(cp1) == 6  # never 0 A, which this charger would ignore
    state = r.charger_state("CP1")
    assert Flag.CANNOT_PAUSE.value in state.flags
    assert state.sessions[0].reason == "cannot_pause"
    assert Flag.CANNOT_PAUSE.value not in r.charger_state("CP2").flags


async def test_reconnected_charger_gets_its_profiles_again(rig: RigFactory) -> None:
    r = await rig([{"id": "CP1"}], limit_a=16)
    cp1 = await r.connect("CP1")
    await cp1.tap(TAG)
    await r.settle()
    assert draws(cp1) == 10

    def sets() -> int:
        return len([a for a, _ in cp1.received if a == "SetChargingProfile"])

    before = sets()
    await cp1.close()
    disconnected(r.controller, "CP1")
    await r.round(meter_values=False)  # its session is held at its last limit meanwhile
    assert r.charger_state("CP1").sessions[0].reason == "charger_offline"
    await cp1.connect()
    await r.csms.wait_connected("CP1")
    connected(r.controller, "CP1")
    await r.controller.wait_settled(5)
    assert sets() == before + 1
    assert (
        cp1.received[-1][1]["csChargingProfiles"]["chargingSchedule"]["chargingSchedulePeriod"][0][
            "limit"
        ]
        == 10
    )


async def test_state_reports_limits_sessions_and_decisions(rig: RigFactory) -> None:
    r = await rig([{"id": "CP1", "phases": "L2"}], limit_a=20)
    r.meter.wiring["CP1"] = (1,)
    cp1 = await r.connect("CP1", phases=1)
    await cp1.tap(TAG)
    await send_meter_values(cp1)
    await r.settle()
    state = r.state()
    assert state.limit_a == (20.0, 20.0, 20.0)
    assert state.budget_a == (14.0, 14.0, 14.0)
    charger = state.chargers[0]
    assert (charger.id, charger.connected, charger.model) == ("CP1", True, "generic-ocpp16")
    session = charger.sessions[0]
    assert session.phases == ("L2",)  # the charger's L1 is wired to the site's L2
    assert session.limit_a == 14
    assert session.offered_a == 14
    assert state.as_dict()["chargers"][0]["sessions"][0]["limit_a"] == 14
    _at, mode, inputs, outputs = r.decisions.rows[-1]
    assert mode == "normal"
    assert inputs["sessions"][0]["charger"] == "CP1"
    assert outputs["allocations"][0]["limit_a"] == 14


async def test_temporary_limit_lowers_the_cap_until_it_expires(rig: RigFactory) -> None:
    r = await rig([{"id": "CP1"}, {"id": "CP2"}], control_interval=60)
    cp1 = await r.connect("CP1")
    cp2 = await r.connect("CP2")
    await cp1.tap(TAG)
    await cp2.tap(TAG)
    await r.settle()
    assert (draws(cp1), draws(cp2)) == (16, 16)

    limits: LoadLimits = r.controller  # what MQTT's site limit command needs (type-checked)
    assert limits is r.controller
    with pytest.raises(ValueError, match="finite"):
        r.controller.set_temporary_limit((20.0, float("nan"), 20.0), 60)
    # Above the configured 40 A it changes nothing: the main fuse does not change.
    r.controller.set_temporary_limit((50.0, 50.0, 50.0), None)
    assert r.state().limit_a == (40.0, 40.0, 40.0)

    r.controller.set_temporary_limit((24.0, 24.0, 24.0), 600)
    await r.round()
    assert r.state().limit_a == (24.0, 24.0, 24.0)
    # 24 - 2 margin - 4 A building = 18 A for two cars, cut at once.
    assert (draws(cp1), draws(cp2)) == (9, 9)
    assert all(g <= 22 + 1e-9 for g in r.meter.grid())

    await r.round(advance=601)
    assert r.state().limit_a == (40.0, 40.0, 40.0)  # expired: raises ramp back up
    for _ in range(30):
        await r.round()
    assert (draws(cp1), draws(cp2)) == (16, 16)


@pytest.mark.parametrize("role", ["grid", "non_ev"])
async def test_a_removed_charger_gives_its_share_back_once_it_cannot_draw(
    rig: RigFactory, role: str
) -> None:
    chargers = [{"id": "CP1", "max_current_a": 32}, {"id": "CP2", "max_current_a": 32}]
    r = await rig(chargers, meter_role=role)
    cp1 = await r.connect("CP1", car_current_a=32)
    cp2 = await r.connect("CP2", car_current_a=32)
    await cp1.tap(TAG)
    await cp2.tap(TAG)
    await r.settle()
    await r.round()
    assert (draws(cp1), draws(cp2)) == (17, 17)  # 40 - 2 - 4 shared

    site = {"limit_a": 40, "margin_a": 2, "ramp_a_per_s": 100, "meter_role": role}
    r.controller.use_config(site_config(chargers[:1], **site))
    if role == "non_ev":
        # The meter does not see the chargers: CP2's car may still draw its 17 A, so they
        # stay counted until its session ends.
        await r.round()
        assert draws(cp1) == 17
        assert r.charger_state("CP2").sessions[0].reason == "removed"
        await cp2.end_session(1)
        await r.round()
    else:
        # The grid meter measures what CP2's car still draws, as building load, until it stops.
        await r.round()
        assert draws(cp1) == 17
        await cp2.end_session(1)
        await r.round()
    assert "CP2" not in {c.id for c in r.state().chargers}
    await r.round()
    assert draws(cp1) == 32  # all of it, within 40 - 2 - 4
    await cp2.meter_values(1)  # a late message from the removed charger changes nothing
    assert "CP2" not in {c.id for c in r.state().chargers}


async def test_a_charger_removed_while_the_meter_is_lost_stays_in_the_fallback_budget(
    rig: RigFactory,
) -> None:
    """In fallback nothing measures the removed charger's car: it stays counted at its limit
    in force until its session ends, or until the grid meter reads again once it has gone."""
    chargers = [
        {"id": "CP1", "max_current_a": 32, "fallback_current_a": 19},
        {"id": "CP2", "max_current_a": 32, "fallback_current_a": 19},
    ]
    site = {"fallback_ev_a": 20, "meter_lost_after": 5}
    r = await rig(chargers, **site)
    cp1 = await r.connect("CP1")
    cp2 = await r.connect("CP2")
    await cp1.tap(TAG)
    await cp2.tap(TAG)
    await r.settle()
    r.meter.frozen = True
    await r.round(advance=6)
    assert r.state().mode == "fallback"
    assert (draws(cp1), draws(cp2)) == (10, 10)

    r.controller.use_config(site_config(chargers[:1], **site))
    await r.round()
    assert draws(cp1) + draws(cp2) <= 20  # CP2's car still draws its 10 A
    assert r.charger_state("CP2").sessions[0].reason == "removed"
    await cp2.close()  # the daemon closes a removed charger's connection
    del r.chargers["CP2"]  # it sends nothing more; the meter still sees its car
    disconnected(r.controller, "CP2")
    await r.round()
    assert draws(cp1) <= 10  # still nothing measures CP2's car
    # The grid meter reads again: from now on it measures CP2's car as building load.
    r.meter.frozen = False
    await r.round()
    assert "CP2" not in {c.id for c in r.state().chargers}
    for _ in range(5):
        await r.round()
    assert draws(cp1) == 16  # its car's all: 40 - 2 - 4 building - 10 of CP2's car is room


@pytest.mark.parametrize("model", ["generic-ocpp16", "no-pause"])
async def test_a_removed_charger_is_paused_before_it_goes_and_counted_so(
    rig: RigFactory, model: str
) -> None:
    """A removed charger's StopTransaction may never come (it cannot connect again): it is
    sent its pause profile before its connection is closed, counts at that from then on, and
    no more once it has gone paused at 0 A."""
    generic = MODELS["generic-ocpp16"]
    stubborn = generic.model_copy(
        update={
            "id": "no-pause",
            "smart_charging": generic.smart_charging.model_copy(update={"zero_current": "ignored"}),
        }
    )
    chargers = [
        {"id": "CP1", "max_current_a": 32},
        {"id": "CP2", "max_current_a": 32, "model": model},
    ]
    site = {"limit_a": 40, "margin_a": 2, "ramp_a_per_s": 100, "meter_role": "non_ev"}
    r = await rig(chargers, models={**MODELS, "no-pause": stubborn}, meter_role="non_ev")
    cp1 = await r.connect("CP1", car_current_a=32)
    cp2 = await r.connect("CP2", car_current_a=32)
    await cp1.tap(TAG)
    await cp2.tap(TAG)
    await r.settle()
    await r.round()
    assert (draws(cp1), draws(cp2)) == (17, 17)  # 40 - 2 - 4 shared

    r.controller.use_config(site_config(chargers[:1], **site))
    await r.controller.pause_removed(["CP2"])
    paused = 0 if model == "generic-ocpp16" else 6
    assert draws(cp2) == paused
    assert r.charger_state("CP2").sessions[0].offered_a == paused
    await r.round()
    assert draws(cp1) == 34 - paused if paused else 32  # counted at its pause, no more
    await r.round()
    assert r.charger_state("CP2").sessions[0].reason == "removed"

    await cp2.close()  # the gateway closes its connection: it never ends its session
    del r.chargers["CP2"]
    disconnected(r.controller, "CP2")
    await r.round()
    gone = "CP2" not in {c.id for c in r.state().chargers}
    assert gone == (paused == 0)  # a car it cannot pause may still draw its minimum
    assert draws(cp1) == 34 - paused if paused else 32


async def test_a_removed_charger_does_not_pause_the_others_before_they_measure(
    rig: RigFactory,
) -> None:
    """With a grid meter a removed charger's car becomes building load, at most its limit in
    force: the estimate of the building load takes it so, and the others keep their share
    even when none of them has measured yet (MeterValues come every few seconds to a minute)."""
    chargers = [{"id": "CP1", "max_current_a": 32}, {"id": "CP2", "max_current_a": 32}]
    r = await rig(chargers)
    cp1 = await r.connect("CP1", car_current_a=32)
    cp2 = await r.connect("CP2", car_current_a=32)
    await cp1.tap(TAG)
    await cp2.tap(TAG)
    await r.round(meter_values=False)
    await r.round(meter_values=False)
    await r.round(meter_values=False)
    assert (draws(cp1), draws(cp2)) == (17, 17)  # 40 - 2 - 4 shared

    site = {"limit_a": 40, "margin_a": 2, "ramp_a_per_s": 100}
    r.controller.use_config(site_config(chargers[:1], **site))
    await r.round(meter_values=False)
    assert draws(cp1) == 17  # not paused: CP2's car counts at its 17 A, no more
    assert r.meter.grid()[0] <= 40 - 2
