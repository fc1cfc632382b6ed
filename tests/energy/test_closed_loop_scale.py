"""Load capping at scale, end to end: 20 simulated chargers through the real gateway, with the
site meter on Modbus RTU through a ``socat`` pty pair.

The meter is a closed loop: at the moment each Modbus request arrives it measures the
building load plus what every simulated charger really draws, on the site phase each
charger is wired to. The chargers sample per-phase currents only because the gateway's
meter-sampling observer asked them to (they start with the OCPP default: energy only, no
periodic samples). A watcher records the physical truth every 50 ms (building load plus
the current each charger offers, per phase) and the controller's own view, so the safety
rules are checked along the whole run, not just at the end:

* once the controller has reacted to a step (within ``REACTION_S``), building load + what
  the chargers offer stays within limit - margin on every phase, and it never leaves it
  except right after the building load steps up;
* a building step up cuts every charger; raises are ramped;
* losing the meter puts every charger on its fallback current within 5 s.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from edgegw.daemon import Gateway
from edgegw.energy.chargermodels import load_models
from edgegw.energy.controller import LoadController
from edgegw.energy.meters import default_profiles_dir
from edgegw.energy.sampling import (
    SAMPLE_INTERVAL,
    SAMPLED_DATA,
    MeterSampling,
    sample_interval_for,
)
from edgegw.sim.charger import SimCharger
from edgegw.sim.meter import SimMeter, virtual_serial_pair
from edgegw.tasks import TaskOwner
from tests.conftest import GatewayFactory, gateway_url

pytestmark = pytest.mark.skipif(
    shutil.which("socat") is None, reason="socat not installed (apt install socat)"
)

CHARGERS = 20
LIMIT = 250.0
MARGIN = 5.0
USABLE = LIMIT - MARGIN
RAMP = 3.0  # A/s
CONTROL_INTERVAL = 0.5
MIN_CHANGE = 0.5
FALLBACK_EACH = 6.0
FALLBACK_EV = 120.0
METER_LOST_AFTER = 1.5
REACTION_S = 2.0
"""Longest a building step up may keep the site above limit - margin (target p99 <= 2 s)."""
SAMPLE_SCALE = 0.1
"""One second of the chargers' MeterValueSampleInterval lasts this long here."""
TAG = "04A1B2C3"
EPS = 0.05

WIRING = {  # config phases per charger: two rotated, two single-phase cars on L1
    "CP16": "L2L3L1",
    "CP17": "L3L1L2",
    "CP18": "L1",
    "CP19": "L1",
}


def charger_ids() -> list[str]:
    return [f"CP{i:02d}" for i in range(CHARGERS)]


def site_phases(config_phases: str) -> tuple[int, ...]:
    return tuple(int(config_phases[i + 1]) - 1 for i in range(0, len(config_phases), 2))


@dataclass
class Plant:
    """The physical site: building load per phase and the chargers' real draw."""

    building: list[float]
    sims: dict[str, SimCharger] = field(default_factory=dict)
    wiring: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def per_phase(self, amps: Callable[[SimCharger], float]) -> list[float]:
        load = [0.0, 0.0, 0.0]
        for cid, sim in self.sims.items():
            for phase in self.wiring[cid][: sim.phases]:
                load[phase] += amps(sim)
        return load

    def grid(self) -> tuple[float, float, float]:
        draw = self.per_phase(lambda s: s.current_a(1))
        return (
            self.building[0] + draw[0],
            self.building[1] + draw[1],
            self.building[2] + draw[2],
        )

    def committed(self) -> list[float]:
        """Building load plus what every charger allows its car, per phase."""
        offered = self.per_phase(lambda s: s.offered_a(1) if s.session(1) else 0.0)
        return [b + o for b, o in zip(self.building, offered, strict=True)]


@dataclass
class Watcher:
    """Samples the plant and the controller every 50 ms (a physical observer, not a wait)."""

    plant: Plant
    controller: LoadController
    step_ups: list[float] = field(default_factory=list)
    over: list[tuple[float, list[float]]] = field(default_factory=list)
    offered: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    controller_breaches: list[str] = field(default_factory=list)
    events: list[tuple[float, str]] = field(default_factory=list)

    def mark(self, what: str) -> None:
        self.events.append((time.monotonic(), what))

    async def run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(0.05)

    def sample(self) -> None:
        now = time.monotonic()
        committed = self.plant.committed()
        if any(c > USABLE + EPS for c in committed):
            self.over.append((now, committed))
        for cid, sim in self.plant.sims.items():
            if sim.session(1) is not None:
                self.offered.setdefault(cid, []).append((now, sim.offered_a(1)))
        state = self.controller.state()
        if state.mode == "normal" and state.used_a is not None and state.non_ev_a is not None:
            for p in range(3):
                if state.used_a[p] + state.non_ev_a[p] > state.limit_a[p] - MARGIN + 1e-6:
                    self.controller_breaches.append(
                        f"L{p + 1}: allocated {state.used_a[p]:.1f} + non-EV "
                        f"{state.non_ev_a[p]:.1f} > {state.limit_a[p] - MARGIN}"
                    )

    def unexplained_overloads(self) -> list[tuple[float, list[float]]]:
        """Over limit - margin at a moment that is not within REACTION_S of a step up."""
        return [
            (t, load)
            for t, load in self.over
            if not any(0 <= t - step <= REACTION_S for step in self.step_ups)
        ]

    def ramp_violations(self) -> tuple[list[str], float]:
        """Raises faster than the ramp allows, and the biggest raise seen between samples
        of a running session (to show the check had something to check)."""
        slack = RAMP * CONTROL_INTERVAL + MIN_CHANGE + 0.1
        problems: list[str] = []
        biggest = 0.0
        for cid, samples in self.offered.items():
            for j, (tj, aj) in enumerate(samples):
                for ti, ai in samples[max(0, j - 80) : j]:
                    if ai <= 0:
                        continue  # a start from a pause goes straight to the minimum
                    biggest = max(biggest, aj - ai)
                    if aj - ai > RAMP * (tj - ti) + slack:
                        problems.append(f"{cid}: {ai:.1f} -> {aj:.1f} A in {tj - ti:.2f} s")
        return problems, biggest


async def drive_meter_values(sim: SimCharger) -> None:
    """What a charger does with MeterValueSampleInterval: sample its running session."""
    while True:
        interval = int(sim.config[SAMPLE_INTERVAL].value)
        # Simulated time between samples; 0 = the charger sends none (look again later).
        await asyncio.sleep((interval or 10) * SAMPLE_SCALE)
        if interval and sim.session(1) is not None and sim.connected:
            await sim.meter_values(1)


async def settle_all(
    controller: LoadController, plant: Plant, ok: Callable[[float], bool], timeout: float
) -> float:
    """Wait until every running charger offers an amount ``ok`` accepts; return the time."""
    started = time.monotonic()
    try:
        await controller.wait_until(
            lambda: all(ok(s.offered_a(1)) for s in plant.sims.values() if s.session(1)), timeout
        )
    except TimeoutError:
        state = controller.state()
        offered = {cid: s.offered_a(1) for cid, s in plant.sims.items() if s.session(1)}
        reasons = {c.id: [x.reason for x in c.sessions] for c in state.chargers}
        raise AssertionError(
            f"not settled in {timeout} s: offered {offered}; mode {state.mode}, meter "
            f"{state.meter}, grid {state.grid_a}, non-EV {state.non_ev_a}, budget "
            f"{state.budget_a}, used {state.used_a}, building {plant.building}, "
            f"reasons {reasons}"
        ) from None
    return time.monotonic() - started


async def steady(controller: LoadController, timeout: float = 5) -> None:
    """Wait until every car's own MeterValues show it drawing its limit in force: the
    controller then knows the cars' draw exactly (a step right after a raise, before the
    next MeterValues, is met with a safe overestimate of the building load instead)."""

    def measured_at_limit() -> bool:
        for charger in controller.state().chargers:
            for session in charger.sessions:
                if session.offered_a <= 0:
                    continue
                if session.measured_a is None or max(session.measured_a) < session.offered_a - 0.15:
                    return False
        return controller.settled()

    await controller.wait_until(measured_at_limit, timeout)


async def test_twenty_chargers_rtu_meter_cuts_ramps_and_falls_back(
    make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    plant = Plant(building=[45.0, 30.0, 25.0])
    ids = charger_ids()
    for cid in ids:
        plant.wiring[cid] = site_phases(WIRING.get(cid, "L1L2L3"))
    owner = TaskOwner("closed-loop-test")
    async with virtual_serial_pair(tmp_path) as (meter_end, gateway_end):
        meter = SimMeter("eastron-sdm630", transport="rtu", device=meter_end, baudrate=9600)
        # The meter measures at the moment it is asked, like a real one.
        meter.add_request_listener(lambda *_: meter.set_currents(*plant.grid()))
        await meter.start()
        gateway: Gateway = await make_gateway(
            chargers=[
                {
                    "id": cid,
                    "max_current_a": 16,
                    "fallback_current_a": FALLBACK_EACH,
                    "phases": WIRING.get(cid, "L1L2L3"),
                }
                for cid in ids
            ],
            site={
                "limit_a": LIMIT,
                "margin_a": MARGIN,
                "fallback_ev_a": FALLBACK_EV,
                "meter_lost_after": METER_LOST_AFTER,
                "ramp_a_per_s": RAMP,
                "control_interval": CONTROL_INTERVAL,
                "min_change_a": MIN_CHANGE,
            },
            buses={
                "rs485": {
                    "transport": "rtu",
                    "device": gateway_end,
                    "baudrate": 9600,
                    "timeout": 0.3,
                    "retries": 0,
                }
            },
            meters=[
                {"name": "grid", "bus": "rs485", "profile": "eastron-sdm630", "poll_interval": 0.2}
            ],
            auth={"unknown_cards": "accept"},
            server={  # all from 127.0.0.1, all at once
                "max_connections_per_address": CHARGERS,
                "max_pending_per_address": CHARGERS,
            },
        )
        controller = gateway.controller
        assert controller is not None and gateway.store is not None
        models = load_models(default_profiles_dir().parent / "chargers")
        sampling = MeterSampling(
            gateway.config, models, gateway.call, record_event=gateway.store.event
        )
        assert gateway.hub is not None  # after the controller: safe profiles go first
        gateway.hub = gateway.hub.extended(sampling)
        watcher = Watcher(plant, controller)
        try:
            # -- 20 chargers connect: each gets its safe profile and is asked for currents.
            for cid in ids:
                sim = SimCharger(
                    cid,
                    gateway_url(gateway),
                    connectors=1,
                    phases=1 if len(WIRING.get(cid, "L1L2L3")) == 2 else 3,
                    car_current_a=16,
                    history=50,
                )
                sim.config[SAMPLED_DATA].value = "Energy.Active.Import.Register"
                sim.config[SAMPLE_INTERVAL].value = "0"
                plant.sims[cid] = sim
            await asyncio.gather(*(s.connect() for s in plant.sims.values()))
            await asyncio.gather(*(s.boot() for s in plant.sims.values()))
            results = await asyncio.gather(*(sampling.wait_configured(cid) for cid in ids))
            interval = sample_interval_for(gateway.config.site, models["generic-ocpp16"])
            assert all(r.samples_currents and r.interval_s == interval for r in results)
            assert all(
                "Current.Import" in s.config[SAMPLED_DATA].value for s in plant.sims.values()
            )
            await controller.wait_settled()
            assert {s.offered_a(1) for s in plant.sims.values()} == {FALLBACK_EACH}

            owner.spawn(watcher.run(), "watcher")
            for cid, sim in plant.sims.items():
                owner.spawn(drive_meter_values(sim), f"meter-values/{cid}")

            # -- Everybody plugs in: L1 has 245 - 45 = 200 A for 20 cars, 10 A each.
            watcher.mark("tap")
            taps = await asyncio.gather(*(s.tap(TAG) for s in plant.sims.values()))
            assert all(tx is not None for tx in taps)
            await settle_all(controller, plant, lambda a: a >= 10.0 - MIN_CHANGE - EPS, 10)
            await steady(controller)

            # -- The building load steps up: 245 - 120 = 125 A for 20 cars, 6.2 A each.
            before = {cid: s.offered_a(1) for cid, s in plant.sims.items()}
            plant.building[:] = [120.0, 100.0, 90.0]
            watcher.step_ups.append(time.monotonic())
            watcher.mark("step up")
            reaction = await settle_all(controller, plant, lambda a: 6.0 <= a <= 6.2 + EPS, 5)
            assert reaction <= REACTION_S, f"cuts took {reaction:.2f} s"
            after = {cid: s.offered_a(1) for cid, s in plant.sims.items()}
            assert all(after[cid] < before[cid] - 3 for cid in ids), (before, after)  # all cut
            await steady(controller)

            # -- It steps down again: 220 A for 20 cars, 11 A each, reached by ramping.
            plant.building[:] = [25.0, 20.0, 15.0]
            watcher.mark("step down")
            rise = await settle_all(controller, plant, lambda a: a >= 11.0 - MIN_CHANGE - EPS, 10)
            assert rise >= (11.0 - MIN_CHANGE - 6.2 - RAMP * CONTROL_INTERVAL) / RAMP - 0.1
            await steady(controller)

            # -- Five drivers leave: 220 A for 15 cars, 14.6 A each.
            watcher.mark("leave")
            await asyncio.gather(*(plant.sims[cid].end_session(1) for cid in ids[:5]))
            await settle_all(controller, plant, lambda a: a >= 14.6 - MIN_CHANGE - EPS, 10)
            await steady(controller)

            # -- The meter dies: every charger falls back to its fallback current in 5 s.
            watcher.mark("meter lost")
            lost_at = time.monotonic()
            await meter.stop()
            await controller.wait_until(
                lambda: (
                    controller.state().mode == "fallback"
                    and all(abs(s.offered_a(1) - FALLBACK_EACH) < EPS for s in plant.sims.values())
                ),
                5,
            )
            assert time.monotonic() - lost_at <= 5.0
            watcher.sample()
        finally:
            await owner.close()
            await sampling.close()
            for sim in plant.sims.values():
                await sim.close()
            await meter.stop()

    overloads = watcher.unexplained_overloads()
    assert overloads == [], (watcher.step_ups, overloads[:5], watcher.events)
    assert watcher.controller_breaches == []
    problems, biggest = watcher.ramp_violations()
    assert problems == []
    assert biggest >= 4.0  # raises happened (6 -> 11 A and 11 -> 14.6 A), ramped
