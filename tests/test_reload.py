"""Reloading the configuration: charger changes go live, anything else waits for a restart."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from edgegw.config import load_config, parse_config
from edgegw.control.client import ControlClient, RemoteError
from edgegw.daemon import Gateway, ReloadError
from edgegw.reload import plan_reload
from edgegw.sim.charger import SimCharger
from edgegw.sim.meter import SimMeter
from tests.conftest import gateway_url, raw_charger

BOOT = {"chargePointVendor": "V", "chargePointModel": "M"}


def config_text(tmp_path: Path, chargers: list[str], *, heartbeat: int = 300) -> str:
    lines = [
        "[server]",
        'host = "127.0.0.1"',
        "port = 0",
        f"heartbeat_interval = {heartbeat}",
        "[store]",
        f'path = "{tmp_path / "gw.db"}"',
        "[control]",
        f'socket = "{tmp_path / "gw.sock"}"',
        'group = ""',
    ]
    for charger in chargers:
        lines += ["[[chargers]]", f'id = "{charger}"']
    return "\n".join(lines) + "\n"


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    path = tmp_path / "edgegw.toml"
    path.write_text(config_text(tmp_path, ["CP1", "CP2"]))
    gw = Gateway(load_config(path), config_path=path)
    task = asyncio.create_task(gw.run(install_signal_handlers=False))  # noqa: TID251
    await asyncio.wait_for(gw.started.wait(), 10)
    yield gw
    gw.shutdown()
    await asyncio.wait_for(task, 15)


async def test_added_and_removed_chargers_go_live(gateway: Gateway, tmp_path: Path) -> None:
    url = gateway_url(gateway)
    with pytest.raises(InvalidStatus) as refused:
        async with raw_charger(url, "CP3"):
            pass
    assert refused.value.response.status_code == 404

    async with raw_charger(url, "CP1") as cp1:
        await cp1.call("BootNotification", BOOT)
        (tmp_path / "edgegw.toml").write_text(config_text(tmp_path, ["CP2", "CP3"]))
        async with await ControlClient.connect(gateway.config.control.socket) as client:
            answer = await client.call("config.reload")
        assert answer["applied"] is True
        assert (answer["added"], answer["removed"]) == (["CP3"], ["CP1"])
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(5):
                while True:  # the gateway's own calls (list pusher) may come first
                    await cp1.ws.recv()
        assert cp1.ws.close_code == 1008

    async with raw_charger(url, "CP3") as cp3:
        assert (await cp3.call("BootNotification", BOOT))[2]["status"] == "Accepted"
    events = [kind for _, kind, _, _ in await gateway.store.events(10)]  # type: ignore[union-attr]
    assert "config.reloaded" in events


async def test_a_new_chargers_card_settings_apply_on_reload(
    gateway: Gateway, tmp_path: Path
) -> None:
    """Installers add chargers with their model or idTag format: no restart for that."""
    text = config_text(tmp_path, ["CP1", "CP2", "CP3"])
    text += 'idtag_format = "dec_le"\nfree_charging_tag = "FREE"\n'  # CP3's table is the last
    (tmp_path / "edgegw.toml").write_text(text)
    plan = await gateway.reload()
    assert plan.applicable and plan.added == ["CP3"], plan.message()
    assert gateway.authorizer is not None
    assert gateway.authorizer.charger_format("CP3").value == "dec_le"
    async with raw_charger(gateway_url(gateway), "CP3") as cp3:
        assert (await cp3.call("BootNotification", BOOT))[2]["status"] == "Accepted"


async def test_other_changes_are_not_applied_and_say_restart(
    gateway: Gateway, tmp_path: Path
) -> None:
    (tmp_path / "edgegw.toml").write_text(
        config_text(tmp_path, ["CP1", "CP2", "CP3"], heartbeat=60)
    )
    plan = await gateway.reload()
    assert not plan.applicable
    assert any("[server]" in reason for reason in plan.needs_restart)
    assert "systemctl restart" in plan.message()
    assert gateway.config.charger("CP3") is None  # nothing applied, not even the new charger


async def test_a_broken_file_is_refused_with_its_problems(gateway: Gateway, tmp_path: Path) -> None:
    (tmp_path / "edgegw.toml").write_text("[server]\nport = 'nine'\n")
    with pytest.raises(ReloadError, match="port"):
        await gateway.reload()
    async with await ControlClient.connect(gateway.config.control.socket) as client:
        with pytest.raises(RemoteError, match="not reloaded"):
            await client.call("config.reload")
    assert gateway.config.charger("CP1") is not None


def test_plan_reload_sorts_live_and_restart_changes() -> None:
    base = {"chargers": [{"id": "CP1"}, {"id": "CP2", "label": "old"}]}
    running = parse_config(base)
    relabelled = parse_config({"chargers": [{"id": "CP1"}, {"id": "CP2", "label": "new"}]})
    plan = plan_reload(running, relabelled)
    assert plan.applicable and plan.changed == ["CP2"]

    rewired = parse_config({"chargers": [{"id": "CP1"}, {"id": "CP2", "phases": "L2L3L1"}]})
    plan = plan_reload(running, rewired)
    assert not plan.applicable and "phases" in plan.needs_restart[0]

    added = parse_config({"chargers": [*base["chargers"], {"id": "CP3"}]})
    assert plan_reload(running, added).added == ["CP3"]
    assert plan_reload(running, added).applicable  # load-capped or not: the controller takes it
    removed = parse_config({"chargers": base["chargers"][:1]})
    assert (
        plan_reload(running, removed).removed == ["CP2"]
        and plan_reload(running, removed).applicable
    )

    keba = parse_config({"chargers": [*base["chargers"], {"id": "CP3", "model": "keba-p30"}]})
    assert plan_reload(running, keba).applicable  # a new charger's card settings go live too
    remodelled = parse_config(
        {"chargers": [{"id": "CP1", "model": "keba-p30"}, base["chargers"][1]]}
    )
    assert not plan_reload(running, remodelled).applicable
    assert plan_reload(running, running).empty


# --------------------------------------------------------------------------------------------
# A load-capped site: a real pymodbus meter following the simulated chargers' real draw

LIMIT = 40.0
MARGIN = 2.0
BUILDING = 10.0


def capped_config_text(tmp_path: Path, meter_port: int, chargers: list[str]) -> str:
    lines = [
        config_text(tmp_path, []).rstrip("\n"),
        "[auth]",
        'unknown_cards = "accept"',
        "push_local_list = false",
        "[site]",
        f"limit_a = {LIMIT}",
        f"margin_a = {MARGIN}",
        "meter_lost_after = 2",
        "ramp_a_per_s = 50",
        "[buses.main]",
        'transport = "tcp"',
        'host = "127.0.0.1"',
        f"port = {meter_port}",
        "[[meters]]",
        'profile = "eastron-sdm630"',
        "poll_interval = 0.2",
    ]
    for charger in chargers:
        lines += ["[[chargers]]", f'id = "{charger}"', "max_current_a = 32"]
    return "\n".join(lines) + "\n"


class Plant:
    """The site as the meter sees it: the building plus what the simulated cars draw."""

    def __init__(self, meter: SimMeter) -> None:
        self.meter = meter
        self.chargers: list[SimCharger] = []
        self.highest = 0.0
        """The most the site drew at any moment the plant looked (A per phase)."""

    def grid(self) -> float:
        return BUILDING + sum(c.current_a(1) for c in self.chargers)

    async def follow(self) -> None:
        while True:  # the meter measures what the site really draws, as it changes
            amps = self.grid()
            self.highest = max(self.highest, amps)
            self.meter.set_currents(amps, amps, amps)
            await asyncio.sleep(0.05)

    async def sample(self) -> None:
        while True:  # what the gateway asks the chargers for: MeterValues every interval
            await asyncio.sleep(1.0)
            for sim in list(self.chargers):
                if sim.connected and sim.session(1) is not None:
                    await sim.meter_values(1)


async def until(predicate: Callable[[], bool], timeout: float) -> None:
    """Wait for a physical process (cars following profiles, the meter polled) to get there."""
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 - sampling a simulated physical process
            await asyncio.sleep(0.05)


async def test_a_load_capped_site_takes_and_drops_chargers_on_reload(tmp_path: Path) -> None:
    async with SimMeter("eastron-sdm630") as meter:  # live: its voltages move like a real one's
        plant = Plant(meter)
        meter.set_currents(BUILDING, BUILDING, BUILDING)
        path = tmp_path / "edgegw.toml"
        path.write_text(capped_config_text(tmp_path, meter.port, ["CP1", "CP2"]))
        gateway = Gateway(load_config(path), config_path=path)
        task = asyncio.create_task(gateway.run(install_signal_handlers=False))  # noqa: TID251
        follower = asyncio.create_task(plant.follow())  # noqa: TID251
        sampler = asyncio.create_task(plant.sample())  # noqa: TID251
        sims: dict[str, SimCharger] = {}
        try:
            await asyncio.wait_for(gateway.started.wait(), 10)
            controller = gateway.controller
            assert controller is not None
            url = gateway_url(gateway)

            async def plug_in(charger_id: str) -> SimCharger:
                sim = SimCharger(charger_id, url, connectors=1, car_current_a=32)
                await sim.connect()
                await sim.boot()
                sims[charger_id] = sim
                plant.chargers.append(sim)
                return sim

            cp1, cp2 = await plug_in("CP1"), await plug_in("CP2")
            for sim in (cp1, cp2):
                assert await sim.tap("04A1B2C3") is not None
            budget = LIMIT - MARGIN - BUILDING  # 28 A for the cars
            await until(lambda: plant.grid() > LIMIT - MARGIN - 1.5, 20)  # 14 A each

            # A third charger is added and the daemon reloads: applied, no restart.
            path.write_text(capped_config_text(tmp_path, meter.port, ["CP1", "CP2", "CP3"]))
            async with await ControlClient.connect(gateway.config.control.socket) as client:
                answer = await client.call("config.reload")
            assert answer["applied"] is True, answer
            assert answer["added"] == ["CP3"] and not answer["needs_restart"]
            cp3 = await plug_in("CP3")
            first = await cp3.wait_call("SetChargingProfile")  # capped on connect
            assert (
                first["csChargingProfiles"]["chargingSchedule"]["chargingSchedulePeriod"][0][
                    "limit"
                ]
                == 0
            )  # its safe profile: fallback_current_a 0, paused until it has a share
            assert await cp3.tap("04A1B2C3") is not None
            # The three share the same 28 A: CP3 gets its share, the others were cut first.
            await until(lambda: cp3.current_a(1) >= 6, 20)
            await until(lambda: sum(s.offered_a(1) for s in (cp1, cp2, cp3)) > budget - 3, 20)
            assert sum(s.offered_a(1) for s in (cp1, cp2, cp3)) <= budget + 0.01
            assert plant.highest <= LIMIT - MARGIN + 0.01

            # CP1 is removed (and switched off): its connection is closed, its share freed.
            path.write_text(capped_config_text(tmp_path, meter.port, ["CP2", "CP3"]))
            plan = await gateway.reload()
            assert plan.applicable and plan.removed == ["CP1"]
            assert await cp1.wait_closed(5) == 1008
            plant.chargers.remove(cp1)
            await until(lambda: cp2.offered_a(1) + cp3.offered_a(1) > budget - 1, 20)
            assert cp2.offered_a(1) + cp3.offered_a(1) <= budget + 0.01
            assert "CP1" not in {c.id for c in controller.state().chargers}
            assert plant.highest <= LIMIT - MARGIN + 0.01  # never above the limit, at any moment
        finally:
            follower.cancel()
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
            for sim in sims.values():
                await sim.close()
            gateway.shutdown()
            await asyncio.wait_for(task, 15)


async def test_a_removed_charger_on_a_non_ev_meter_site_is_paused_before_it_goes(
    tmp_path: Path,
) -> None:
    """The site meter does not measure the chargers, and a removed charger cannot connect
    again to end its session: it is paused before its connection is closed, so that its car
    draws nothing the gateway does not count, and the others get its share back."""
    async with SimMeter("eastron-sdm630") as meter:
        meter.set_currents(BUILDING, BUILDING, BUILDING)  # it measures the building only

        def text(chargers: list[str]) -> str:
            capped = capped_config_text(tmp_path, meter.port, chargers)
            return capped.replace("[site]\n", '[site]\nmeter_role = "non_ev"\n')

        path = tmp_path / "edgegw.toml"
        path.write_text(text(["CP1", "CP2"]))
        gateway = Gateway(load_config(path), config_path=path)
        task = asyncio.create_task(gateway.run(install_signal_handlers=False))  # noqa: TID251
        sims: list[SimCharger] = []
        try:
            await asyncio.wait_for(gateway.started.wait(), 10)
            controller = gateway.controller
            assert controller is not None
            for charger_id in ("CP1", "CP2"):
                sim = SimCharger(charger_id, gateway_url(gateway), connectors=1, car_current_a=32)
                sims.append(sim)
                await sim.connect()
                await sim.boot()
                assert await sim.tap("04A1B2C3") is not None
            cp1, cp2 = sims
            budget = LIMIT - MARGIN - BUILDING  # 28 A for the cars
            await until(lambda: cp1.offered_a(1) + cp2.offered_a(1) > budget - 3, 20)

            path.write_text(text(["CP1"]))
            plan = await gateway.reload()
            assert plan.applicable and plan.removed == ["CP2"]
            assert cp2.offered_a(1) == 0  # paused before its connection was closed
            assert await cp2.wait_closed(5) == 1008
            await controller.wait_until(
                lambda: "CP2" not in {c.id for c in controller.state().chargers}
            )
            await until(lambda: cp1.offered_a(1) > budget - 1, 20)  # all of it, at once
        finally:
            for sim in sims:
                await sim.close()
            gateway.shutdown()
            await asyncio.wait_for(task, 15)
