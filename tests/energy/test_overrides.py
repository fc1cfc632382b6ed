"""A caretaker's runtime maximum current per charger: the load controller honours it (never
above the configuration), it is cleared, and it is kept in the database across a restart.

Uses the controller rig of ``test_controller`` (simulated chargers over real websockets, rounds
run by the test on an injected clock).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from edgegw.energy.controller import LoadController, RoundLoad
from edgegw.sim.charger import SimCharger
from edgegw.store.db import Database
from edgegw.store.overrides import ChargerOverride, ChargerOverrides
from tests.energy.test_controller import (
    FAST,
    MODELS,
    TAG,
    Csms,
    Decisions,
    FakeClock,
    Meter,
    Rig,
    site_config,
)

RigFactory = Callable[..., Awaitable[Rig]]


@pytest.fixture
async def rig() -> AsyncIterator[RigFactory]:
    made: list[Rig] = []

    async def make(chargers: list[dict[str, Any]], **site: Any) -> Rig:
        csms = Csms(accepted_tags=[TAG])
        await csms.start()
        clock = FakeClock()
        config = site_config(chargers, **site)
        meter = Meter(clock)
        decisions = Decisions()

        async def call(charger_id: str, action: str, payload: dict[str, Any]) -> dict[str, Any]:
            return await csms.call(charger_id, action, payload, timeout=5)

        controller = LoadController(
            config, MODELS, call, meter, decisions, clock=clock, tuning=FAST
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


async def charging(r: Rig, charger_id: str = "CP1") -> SimCharger:
    cp = await r.connect(charger_id)
    await cp.tap(TAG)
    await r.settle()
    return cp


def profile_limit(payload: dict[str, Any]) -> float:
    periods = payload["csChargingProfiles"]["chargingSchedule"]["chargingSchedulePeriod"]
    return float(periods[0]["limit"])


async def test_a_lower_maximum_is_applied_shown_and_cleared(rig: RigFactory) -> None:
    r = await rig([{"id": "CP1", "max_current_a": 16}, {"id": "CP2"}])
    cp = await charging(r)
    assert cp.offered_a(1) == 16
    state = r.charger_state("CP1")
    assert (state.max_current_a, state.max_override_a) == (16, None)

    r.controller.set_charger_max("CP1", 10)
    assert r.controller.charger_max("CP1") == 10
    await r.round()
    assert cp.offered_a(1) == 10
    assert cp.current_a(1) == 10
    state = r.charger_state("CP1")
    assert (state.max_current_a, state.max_override_a) == (10, 10)
    assert state.sessions[0].limit_a == 10

    r.controller.set_charger_max("CP1", None)
    await r.round()
    assert cp.offered_a(1) == 16
    assert r.charger_state("CP1").max_override_a is None


async def test_the_override_never_raises_the_configured_maximum(rig: RigFactory) -> None:
    r = await rig([{"id": "CP1", "max_current_a": 16}])
    cp = await charging(r)
    with pytest.raises(ValueError, match="above what CP1 is configured for"):
        r.controller.set_charger_max("CP1", 20)
    with pytest.raises(ValueError, match="below CP1's minimum of 6 A"):
        r.controller.set_charger_max("CP1", 3)
    with pytest.raises(ValueError, match="0 or more"):
        r.controller.set_charger_max("CP1", -1)
    with pytest.raises(ValueError, match="no charger 'CP9'"):
        r.controller.set_charger_max("CP9", 10)
    await r.round()
    assert cp.offered_a(1) == 16  # nothing refused was applied
    assert r.controller.charger_max("CP1") is None


async def test_zero_pauses_the_charger_and_its_safe_profile_follows(rig: RigFactory) -> None:
    r = await rig([{"id": "CP1", "fallback_current_a": 16}])
    cp = await r.connect("CP1")
    await r.controller.wait_settled(5)
    assert cp.offered_a(1) == 16  # its safe profile, before any session
    before = len(cp.received)

    r.controller.set_charger_max("CP1", 8)  # no session: the safe profile itself is lowered
    await r.controller.wait_settled(5)
    sent = [p for action, p in cp.received[before:] if action == "SetChargingProfile"]
    assert sent and profile_limit(sent[-1]) == 8
    assert cp.offered_a(1) == 8

    await cp.tap(TAG)
    r.controller.set_charger_max("CP1", 0)
    await r.settle()
    assert cp.offered_a(1) == 0
    session = r.charger_state("CP1").sessions[0]
    assert (session.limit_a, session.reason) == (0, "caretaker_pause")


async def test_each_round_reports_the_load_it_saw(rig: RigFactory) -> None:
    r = await rig([{"id": "CP1"}])
    seen: list[RoundLoad] = []
    remove = r.controller.add_round_listener(seen.append)
    cp = await charging(r)
    await cp.meter_values(1)
    await r.round()
    last = seen[-1]
    assert last.grid_a == (20.0, 20.0, 20.0)  # 4 A building + 16 A car on each phase
    assert last.ev_a == (16.0, 16.0, 16.0)
    assert last.non_ev_a == pytest.approx((4.0, 4.0, 4.0))
    remove()
    count = len(seen)
    await r.round()
    assert len(seen) == count


async def test_overrides_are_kept_in_the_database(tmp_path: Path) -> None:
    path = tmp_path / "edgegw.db"
    db = await Database.open(path)
    overrides = ChargerOverrides(db)
    await overrides.set_max_current("CP1", 10)
    await overrides.set_free_charging("CP2", True)
    await overrides.set_max_current("bay.7", 0)
    await db.close()

    db = await Database.open(path)  # as after a restart
    overrides = ChargerOverrides(db)
    assert await overrides.load() == {
        "CP1": ChargerOverride(10.0, False),
        "CP2": ChargerOverride(None, True),
        "bay.7": ChargerOverride(0.0, False),
    }
    await overrides.set_max_current("CP1", None)
    await overrides.set_free_charging("CP2", False)
    assert await overrides.load() == {"bay.7": ChargerOverride(0.0, False)}
    # A hand-edited row that makes no sense is skipped, not fatal.
    async with db.transaction() as conn:
        await conn.execute(
            "INSERT INTO settings (key, value) VALUES ('charger.CP3.max_current_a', '\"x\"')"
        )
    assert "CP3" not in await overrides.load()
    await db.close()


async def test_a_restarted_controller_honours_the_kept_override(
    rig: RigFactory, tmp_path: Path
) -> None:
    db = await Database.open(tmp_path / "edgegw.db")
    await ChargerOverrides(db).set_max_current("CP1", 10)
    # The daemon restarts: a new controller, the settings read back (as CaretakerOps.restore).
    r = await rig([{"id": "CP1"}])
    for charger_id, override in (await ChargerOverrides(db).load()).items():
        assert override.max_current_a is not None
        r.controller.set_charger_max(charger_id, override.max_current_a)
    await db.close()
    cp = await charging(r)
    assert cp.offered_a(1) == 10
    assert r.charger_state("CP1").max_override_a == 10
