"""The caretaker's ops through the real control socket of a real gateway: a charger's maximum
current, free charging, the load history, and who may use them (the admin group).

Non-admin peers are simulated with a second ControlServer built with ``admin_uids=frozenset()``
(tests cannot change their uid); admin-group membership is tested with this process's own
primary group.
"""

from __future__ import annotations

import asyncio
import grp
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from edgegw.auth.authority import SiteCards
from edgegw.config import parse_config
from edgegw.control import ControlClient, ControlServer, PermissionDenied, RemoteError
from edgegw.control.caretaker_ops import CaretakerOps
from edgegw.daemon import Gateway
from edgegw.services.caretaker import CaretakerSettings
from edgegw.sim.charger import SimCharger
from edgegw.sim.cloud import SimCloud
from edgegw.sim.meter import SimMeter
from edgegw.store.overrides import ChargerOverrides, TemporaryLimit
from edgegw.store.store import Store
from tests.conftest import GatewayFactory, gateway_url

UNKNOWN = "DEADBEEF"
CHARGERS = [{"id": "CP1", "max_current_a": 16}, {"id": "CP2", "max_current_a": 16}]


async def recorded_events(gateway: Gateway) -> list[tuple[float, str, str | None, str]]:
    """The events recorded so far: the journal's batch written first, when there is one."""
    journal = getattr(gateway, "journal", None)
    if journal is not None:
        await journal.flush()
    assert gateway.store is not None
    return await gateway.store.events()


def site_sections(meter: SimMeter) -> dict[str, Any]:
    """Load capping on a site whose meter reads a steady 5 A building load."""
    return {
        "site": {"limit_a": 40, "margin_a": 2, "ramp_a_per_s": 100, "control_interval": 0.2},
        "buses": {"main": {"transport": "tcp", "host": "127.0.0.1", "port": meter.port}},
        "meters": [{"name": "grid", "profile": "eastron-sdm630", "poll_interval": 0.2}],
    }


async def attach(gateway: Gateway, server: ControlServer | None = None) -> CaretakerOps:
    """The caretaker ops on a started gateway (the daemon's own, unless another server)."""
    if server is None and gateway.caretaker is not None:
        return gateway.caretaker
    cards = gateway._responder.cards if gateway._responder is not None else None
    assert isinstance(cards, SiteCards) and gateway.store is not None
    settings = CaretakerSettings(
        gateway.chargers,
        ChargerOverrides(gateway.store.db),
        gateway.store.event,
        limits=gateway.controller,
        cards=cards,
        clock=time.time,
    )
    ops = CaretakerOps(settings, rounds=gateway.controller, db=gateway.store.db)
    await settings.restore()
    target = server or gateway.control
    assert target is not None
    ops.register(target)
    return ops


@pytest.fixture
async def chargers() -> AsyncIterator[Callable[..., Awaitable[SimCharger]]]:
    made: list[SimCharger] = []

    async def connect(gateway: Gateway, charger_id: str) -> SimCharger:
        cp = SimCharger(charger_id, gateway_url(gateway), connectors=1)
        made.append(cp)
        await cp.connect()
        await cp.boot()
        await cp.status(1, "Available")
        return cp

    yield connect
    for cp in made:
        await cp.close()


@pytest.fixture
async def servers() -> AsyncIterator[list[ControlServer]]:
    made: list[ControlServer] = []
    yield made
    for server in made:
        await server.close()


async def test_set_max_current_gives_the_charger_a_lower_profile(
    make_gateway: GatewayFactory,
    meter: SimMeter,
    chargers: Callable[..., Awaitable[SimCharger]],
) -> None:
    gateway = await make_gateway(
        chargers=CHARGERS, auth={"unknown_cards": "accept"}, **site_sections(meter)
    )
    ops = await attach(gateway)
    controller = gateway.controller
    assert controller is not None and gateway.store is not None
    cp = await chargers(gateway, "CP1")
    assert await cp.tap(UNKNOWN) is not None
    await controller.wait_until(lambda: cp.offered_a(1) == 16)

    async with await ControlClient.connect(gateway.config.control.socket) as client:
        answer = await client.call("chargers.set_max_current", charger="CP1", max_current_a=10)
        assert answer["status"] == "Accepted" and answer["max_current_a"] == 10
        await controller.wait_until(lambda: cp.offered_a(1) == 10)
        assert cp.current_a(1) == 10
        state = await client.call("energy.state")
        cp1 = next(c for c in state["chargers"] if c["id"] == "CP1")
        assert (cp1["max_override_a"], cp1["max_current_a"]) == (10, 10)
        listing = await client.call("chargers.overrides")
        assert listing["chargers"][0] == {
            "charger": "CP1",
            "configured_max_a": 16,
            "max_current_a": 10,
            "free_charging": False,
        }

        with pytest.raises(RemoteError, match="above what CP1 is configured for") as refused:
            await client.call("chargers.set_max_current", charger="CP1", max_current_a=20)
        assert refused.value.code == "bad_args"
        with pytest.raises(RemoteError, match="no charger 'CP9'"):
            await client.call("chargers.set_max_current", charger="CP9", max_current_a=10)

        cleared = await client.call("chargers.set_max_current", charger="CP1", max_current_a=None)
        assert cleared["max_current_a"] is None
        await controller.wait_until(lambda: cp.offered_a(1) == 16)

    events = [e for e in await recorded_events(gateway) if e[1] == "charger.max_current"]
    assert [e[3] for e in reversed(events)] == [
        "maximum current lowered to 10 A",
        "maximum current back to the configured 16 A",
    ]
    assert all(e[2] == "CP1" for e in events)
    ops.close()


async def test_energy_history_returns_per_minute_points(
    make_gateway: GatewayFactory,
    meter: SimMeter,
    chargers: Callable[..., Awaitable[SimCharger]],
) -> None:
    gateway = await make_gateway(
        chargers=CHARGERS, auth={"unknown_cards": "accept"}, **site_sections(meter)
    )
    ops = await attach(gateway)
    controller = gateway.controller
    assert controller is not None
    cp = await chargers(gateway, "CP1")
    await cp.tap(UNKNOWN)
    await controller.wait_until(lambda: cp.offered_a(1) == 16)
    await cp.meter_values(1)  # the car draws its 16 A: the next rounds count it

    def recorded() -> bool:
        newest = ops.recorder.points()[-1]
        return newest.ev_a is not None and newest.ev_a[0] == 16 and newest.grid_a is not None

    await controller.wait_until(recorded)
    async with await ControlClient.connect(gateway.config.control.socket) as client:
        history = await client.call("energy.history", minutes=5)
        with pytest.raises(RemoteError, match="minutes must be between 1 and 1440"):
            await client.call("energy.history", minutes=0)
    assert history["step_s"] == 60 and history["source"] == "load_capping"
    assert 1 <= history["count"] == len(history["points"]) <= 6
    newest = history["points"][-1]
    assert newest["at"] % 60 == 0
    assert newest["grid_a"] == [5.0, 5.0, 5.0]
    assert newest["ev_a"][0] == 16.0
    assert newest["source"] == "live"
    ops.close()


async def test_free_charging_accepts_any_card_offline_at_that_charger_only(
    make_gateway: GatewayFactory, chargers: Callable[..., Awaitable[SimCharger]]
) -> None:
    cloud = SimCloud()
    await cloud.start()
    url = cloud.url
    await cloud.stop()  # the cloud is unreachable: the gateway decides
    gateway = await make_gateway(cloud_url=url, chargers=CHARGERS, auth={"unknown_cards": "reject"})
    await attach(gateway)
    cp1 = await chargers(gateway, "CP1")
    cp2 = await chargers(gateway, "CP2")
    assert (await cp1.authorize(UNKNOWN))["idTagInfo"]["status"] != "Accepted"

    async with await ControlClient.connect(gateway.config.control.socket) as client:
        answer = await client.call("chargers.free_charging", charger="CP1", enabled=True)
        assert answer["status"] == "Accepted" and answer["enabled"] is True
        assert "cloud decides" in answer["message"]
        assert (await cp1.authorize(UNKNOWN))["idTagInfo"]["status"] == "Accepted"
        assert await cp1.tap("0badcafe") is not None  # a session starts (offline, outbox)
        assert (await cp2.authorize(UNKNOWN))["idTagInfo"]["status"] != "Accepted"
        listing = await client.call("chargers.overrides")
        assert [c["free_charging"] for c in listing["chargers"]] == [True, False]

        await client.call("chargers.free_charging", charger="CP1", enabled=False)
        assert (await cp1.authorize(UNKNOWN))["idTagInfo"]["status"] != "Accepted"
        with pytest.raises(RemoteError, match="load capping is not configured") as refused:
            await client.call("chargers.set_max_current", charger="CP1", max_current_a=10)
        assert refused.value.code == "conflict"
    assert gateway.store is not None
    kinds = [(e[1], e[2]) for e in await recorded_events(gateway)]
    assert kinds.count(("charger.free_charging", "CP1")) == 2


async def test_free_charging_online_relays_the_clouds_answer(
    make_gateway: GatewayFactory, chargers: Callable[..., Awaitable[SimCharger]]
) -> None:
    cloud = SimCloud(accepted_tags=[])
    await cloud.start()
    try:
        gateway = await make_gateway(cloud_url=cloud.url, chargers=CHARGERS)
        await attach(gateway)
        cp1 = await chargers(gateway, "CP1")
        await cloud.wait_connected("CP1")
        async with await ControlClient.connect(gateway.config.control.socket) as client:
            await client.call("chargers.free_charging", charger="CP1", enabled=True)
        # The cloud answers: its Invalid reaches the charger unchanged.
        assert (await cp1.authorize(UNKNOWN))["idTagInfo"]["status"] == "Invalid"
    finally:
        await cloud.stop()


async def test_settings_survive_a_daemon_restart(tmp_path: Path, meter: SimMeter) -> None:
    data: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": 0},
        "store": {"path": str(tmp_path / "edgegw.db")},
        "control": {"socket": str(tmp_path / "control.sock"), "group": None},
        "chargers": CHARGERS,
        **site_sections(meter),
    }
    first = Gateway(parse_config(data))
    await first.start()
    try:
        await attach(first)
        async with await ControlClient.connect(first.config.control.socket) as client:
            await client.call("chargers.set_max_current", charger="CP1", max_current_a=8)
            await client.call("chargers.free_charging", charger="CP2", enabled=True)
    finally:
        await first.stop()

    second = Gateway(parse_config(data))
    await second.start()
    try:
        ops = await attach(second)
        assert second.controller is not None
        assert second.controller.charger_max("CP1") == 8
        assert second.controller.state().chargers[0].max_override_a == 8
        cards = second._responder.cards if second._responder is not None else None
        assert isinstance(cards, SiteCards)
        assert cards.free_charging("CP2") and not cards.free_charging("CP1")
        ops.close()
    finally:
        await second.stop()


async def test_admin_ops_need_admin_rights_or_the_admin_group(
    make_gateway: GatewayFactory, tmp_path: Path, servers: list[ControlServer]
) -> None:
    gateway = await make_gateway(chargers=CHARGERS)
    own_group = grp.getgrgid(os.getgid()).gr_name
    others = [g.gr_name for g in grp.getgrall() if g.gr_gid not in {os.getgid(), *os.getgroups()}]

    async def server(name: str, **kwargs: Any) -> Path:
        path = tmp_path / f"{name}.sock"
        made = ControlServer(path, admin_uids=frozenset(), **kwargs)
        servers.append(made)
        await attach(gateway, made)
        await made.start()
        return path

    read_only = await server("ro")
    member = await server("member", admin_group=own_group)
    async with await ControlClient.connect(read_only) as client:
        with pytest.raises(PermissionDenied, match="read-only ops only"):
            await client.call("chargers.free_charging", charger="CP1", enabled=True)
        assert (await client.call("energy.history"))["source"] == "none"
        ops = {o["op"]: o for o in await client.call("ops")}
        assert ops["chargers.set_max_current"]["admin"] is True
        assert ops["chargers.set_max_current"]["allowed"] is False
    async with await ControlClient.connect(member) as client:
        ops = {o["op"]: o for o in await client.call("ops")}
        assert ops["chargers.free_charging"]["allowed"] is True
        answer = await client.call("chargers.free_charging", charger="CP1", enabled=True)
        assert answer["enabled"] is True
    if others:  # a group this process is not in gives no rights
        outsider = await server("outsider", admin_group=others[0])
        async with await ControlClient.connect(outsider) as client:
            with pytest.raises(PermissionDenied, match=f"member of group {others[0]}"):
                await client.call("chargers.free_charging", charger="CP1", enabled=False)
    missing = await server("missing", admin_group="no-such-group-edgegw")
    async with await ControlClient.connect(missing) as client:
        with pytest.raises(PermissionDenied):
            await client.call("chargers.free_charging", charger="CP1", enabled=False)


CHILD = """
import os, sys
from edgegw.control import call_sync
os.setgroups([int(sys.argv[2])])
print(call_sync(sys.argv[1], "chargers.free_charging", {"charger": "CP1", "enabled": True}))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="setting a process's groups needs root")
async def test_a_supplementary_admin_group_is_recognised(
    make_gateway: GatewayFactory, tmp_path: Path, servers: list[ControlServer]
) -> None:
    """The kiosk user is usually in ``edgegw`` as a supplementary group, not its primary one:
    a child process that is in the admin group only as a supplementary group may act."""
    gateway = await make_gateway(chargers=CHARGERS)
    group = next(g for g in grp.getgrall() if g.gr_gid != os.getgid())
    path = tmp_path / "group.sock"
    server = ControlServer(path, admin_uids=frozenset(), admin_group=group.gr_name)
    servers.append(server)
    await attach(gateway, server)
    await server.start()
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        str(path),
        str(group.gr_gid),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(child.communicate(), 20)
    assert child.returncode == 0, err.decode()
    assert "'enabled': True" in out.decode()
    async with await ControlClient.connect(path) as client:
        listing = await client.call("chargers.overrides")
    assert listing["chargers"][0]["free_charging"] is True


async def test_without_load_capping_the_history_follows_the_site_meter(
    make_gateway: GatewayFactory, meter: SimMeter
) -> None:
    gateway = await make_gateway(
        chargers=CHARGERS,
        buses={"main": {"transport": "tcp", "host": "127.0.0.1", "port": meter.port}},
        meters=[{"name": "grid", "profile": "eastron-sdm630", "poll_interval": 0.1}],
    )
    assert gateway.controller is None and gateway.meters is not None
    poller = gateway.meters.site_meter
    assert poller is not None
    ops = await attach(gateway)  # starts recording before the listener below
    sampled = asyncio.Event()
    poller.add_listener(lambda _sample: sampled.set())
    await asyncio.wait_for(sampled.wait(), 10)
    async with await ControlClient.connect(gateway.config.control.socket) as client:
        history = await client.call("energy.history", minutes=2)
    assert history["source"] == "site_meter"
    newest = history["points"][-1]
    assert newest["grid_a"] == [5.0, 5.0, 5.0]
    assert newest["ev_a"] == [0.0, 0.0, 0.0]  # no charger draws
    assert newest["non_ev_a"] == [5.0, 5.0, 5.0]
    ops.close()


async def test_a_temporary_site_limit_outlasts_a_restart_until_its_end(
    tmp_path: Path, meter: SimMeter
) -> None:
    data: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": 0},
        "store": {"path": str(tmp_path / "edgegw.db")},
        "control": {"socket": str(tmp_path / "control.sock"), "group": None},
        "chargers": CHARGERS,
        **site_sections(meter),
    }
    first = Gateway(parse_config(data))
    await first.start()
    try:
        ops = await attach(first)
        ops.settings.site_limits.set_temporary_limit((20.0, 20.0, 20.0), 3600)
        await ops.settings.site_limits.written()
    finally:
        await first.stop()

    second = Gateway(parse_config(data))
    await second.start()
    try:
        ops = await attach(second)
        assert second.controller is not None
        assert second.controller.state().limit_a == (20.0, 20.0, 20.0)
        # Ended: forgotten for the next start.
        ops.settings.site_limits.set_temporary_limit(None, None)
        await ops.settings.site_limits.written()
        assert second.controller.state().limit_a == (40.0, 40.0, 40.0)
    finally:
        await second.stop()

    third = Gateway(parse_config(data))
    await third.start()
    try:
        assert third.controller is not None
        assert third.controller.state().limit_a == (40.0, 40.0, 40.0)
    finally:
        await third.stop()


async def test_a_temporary_limit_that_ended_while_stopped_is_not_put_back(
    tmp_path: Path, meter: SimMeter
) -> None:
    data: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": 0},
        "store": {"path": str(tmp_path / "edgegw.db")},
        "control": {"socket": str(tmp_path / "control.sock"), "group": None},
        "chargers": CHARGERS,
        **site_sections(meter),
    }
    store = await Store.open(tmp_path / "edgegw.db")
    try:
        ended = TemporaryLimit((10.0, 10.0, 10.0), ends_at=time.time() - 1)
        await ChargerOverrides(store.db).set_temporary_limit(ended)
    finally:
        await store.close()
    gateway = Gateway(parse_config(data))
    await gateway.start()
    try:
        assert gateway.controller is not None and gateway.store is not None
        assert gateway.controller.state().limit_a == (40.0, 40.0, 40.0)
        assert await ChargerOverrides(gateway.store.db).temporary_limit() is None
    finally:
        await gateway.stop()
