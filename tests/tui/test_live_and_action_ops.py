"""``live.*`` and the charger action ops through the real control socket of a real gateway."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from edgegw.control import ControlClient, RemoteError
from edgegw.control.action_ops import ActionOps
from edgegw.control.live_ops import LiveOps
from edgegw.control.server import ControlServer
from edgegw.services.charger_actions import ChargerActions, LiveSessions, StoredSessions
from edgegw.services.errors import Unavailable
from edgegw.sim.charger import SimCharger
from tests.conftest import GatewayFactory, gateway_url, raw_charger
from tests.tui.conftest import ALICE, Site

MakeSite = Callable[..., Awaitable[Site]]


async def next_event(client: ControlClient, topic: str, check: Callable[[Any], bool]) -> Any:
    async with asyncio.timeout(10):
        async for event in client.events():
            if event.topic == topic and check(event.data):
                return event.data
    raise AssertionError(f"no {topic} event")


def charger(snapshot: dict[str, Any], charger_id: str) -> dict[str, Any]:
    return next(c for c in snapshot["chargers"] if c["id"] == charger_id)


async def test_live_snapshot_and_pushed_updates(make_site: MakeSite) -> None:
    site = await make_site()
    async with await ControlClient.connect(site.socket) as client:
        await client.call("cards.add", card=ALICE, owner="Alice")
        snapshot = await client.call("live.snapshot")
        assert [c["id"] for c in snapshot["chargers"]] == ["CP1", "CP2"]
        assert charger(snapshot, "CP1")["status"] == "Offline"
        assert snapshot["site"]["chargers_connected"] == 0

        await client.subscribe("live", "live.event")
        cp = await site.charger("CP1")
        pushed = await next_event(
            client, "live", lambda s: charger(s, "CP1")["status"] == "Available"
        )
        assert pushed["site"]["chargers_connected"] == 1
        await cp.tap(ALICE)
        started = await next_event(client, "live.event", lambda e: e["event"] == "session_started")
        assert started["charger"] == "CP1" and started["owner"] == "Alice"
        charging = await next_event(
            client, "live", lambda s: charger(s, "CP1")["status"] == "Charging"
        )
        session = charging["chargers"][0]["connectors"][0]["session"]
        assert session["id_tag"] == ALICE and session["owner"] == "Alice"

        events = await client.call("live.events", limit=10)
        assert events[0]["event"] == "session_started"  # newest first
        assert {"charger_connected", "session_started"} <= {e["event"] for e in events}
        await cp.close()


@asynccontextmanager
async def own_live_ops(
    site: Site, path: Path, min_interval: float
) -> AsyncIterator[tuple[LiveOps, ControlServer]]:
    """LiveOps on a control server of its own (whatever the daemon registers itself)."""
    ops = LiveOps(site.live, min_interval=min_interval)
    server = ControlServer(path, group=None)
    ops.register(server)
    await server.start()
    try:
        yield ops, server
    finally:
        ops.close()
        await server.close()


async def test_pushes_are_coalesced(make_site: MakeSite, tmp_path: Path) -> None:
    site = await make_site()
    path = tmp_path / "live.sock"
    async with (
        own_live_ops(site, path, 0.3) as (ops, _),
        await ControlClient.connect(path) as client,
    ):
        await client.subscribe("live")
        cp = await site.charger("CP1")
        await next_event(client, "live", lambda s: charger(s, "CP1")["status"] == "Available")
        before = ops.pushed
        loop = asyncio.get_running_loop()
        started = loop.time()
        for _ in range(30):
            await cp.meter_values(1)
        elapsed = loop.time() - started
        assert ops.pushed - before <= elapsed / 0.3 + 2, (ops.pushed - before, elapsed)
        await next_event(client, "live", lambda s: True)  # the last change is pushed too
        assert ops.pushed > before
        await cp.close()


async def test_nothing_is_built_without_subscribers(make_site: MakeSite, tmp_path: Path) -> None:
    site = await make_site()
    async with own_live_ops(site, tmp_path / "live.sock", 0.01) as (ops, _):
        cp = await site.charger("CP1")
        for _ in range(5):
            await cp.meter_values(1)
        await site.live.wait_refreshed()
        assert ops.pushed == 0
        await cp.close()


@pytest.fixture
async def running(make_site: MakeSite) -> tuple[Site, SimCharger, ControlClient]:
    site = await make_site()
    async with await ControlClient.connect(site.socket) as client:
        await client.call("cards.add", card=ALICE, owner="Alice")
    cp = await site.charger("CP1")
    return site, cp, await ControlClient.connect(site.socket)


async def test_stop_session_sends_the_charger_side_transaction_id(
    running: tuple[Site, SimCharger, ControlClient],
) -> None:
    _site, cp, client = running
    tx = await cp.tap(ALICE)
    assert tx is not None
    with pytest.raises(RemoteError) as missing:
        await client.call("chargers.stop_session", charger="CP1", connector=2)
    assert missing.value.code == "not_found"
    answer = await client.call("chargers.stop_session", charger="CP1")
    assert answer["status"] == "Accepted"
    assert answer["sessions"] == [{"connector": 1, "transaction_id": tx, "status": "Accepted"}]
    assert (await cp.wait_call("RemoteStopTransaction"))["transactionId"] == tx
    events = await client.call("events")
    assert events[0]["kind"] == "action.RemoteStopTransaction"
    assert events[0]["charger"] == "CP1" and "Accepted" in events[0]["message"]
    await client.close()
    await cp.close()


async def test_stop_session_without_live_state_reads_the_store(
    running: tuple[Site, SimCharger, ControlClient],
) -> None:
    site, cp, client = running
    tx = await cp.tap(ALICE)
    gateway = site.gateway
    assert gateway.store is not None
    record = gateway.journal.event if gateway.journal is not None else None
    # no live state: the running sessions are the store's open ones
    ops = ActionOps(
        ChargerActions(gateway.call, gateway.chargers, StoredSessions(gateway.store), record)
    )
    answer = await ops.stop_session({"charger": "CP1", "transaction_id": tx})
    assert answer["sessions"] == [{"connector": 1, "transaction_id": tx, "status": "Accepted"}]
    await client.close()
    await cp.close()


async def test_unlock_reset_and_availability(
    running: tuple[Site, SimCharger, ControlClient],
) -> None:
    _, cp, client = running
    unlocked = await client.call("chargers.unlock", charger="CP1", connector=1)
    assert unlocked["status"] == "Unlocked"
    assert (await cp.wait_call("UnlockConnector"))["connectorId"] == 1
    off = await client.call("chargers.availability", charger="CP1", available=False)
    assert off["status"] == "Accepted" and off["request"] == {
        "connectorId": 0,
        "type": "Inoperative",
    }
    await cp.wait_call("ChangeAvailability")
    assert not cp.is_free(1)
    reset = await client.call("chargers.reset", charger="CP1", type="hard")
    assert reset["status"] == "Accepted"
    assert (await cp.wait_call("Reset"))["type"] == "Hard"
    kinds = [e["kind"] for e in await client.call("events", limit=3)]
    assert kinds == ["action.Reset", "action.ChangeAvailability", "action.UnlockConnector"]
    with pytest.raises(RemoteError) as bad:
        await client.call("chargers.reset", charger="CP1", type="Sideways")
    assert bad.value.code == "bad_args"
    await client.close()
    await cp.close()


async def test_unknown_and_offline_chargers_are_refused_clearly(
    make_site: MakeSite,
) -> None:
    site = await make_site()
    async with await ControlClient.connect(site.socket) as client:
        with pytest.raises(RemoteError) as unknown:
            await client.call("chargers.unlock", charger="CP7", connector=1)
        assert unknown.value.code == "not_found" and "CP1, CP2" in unknown.value.message
        with pytest.raises(RemoteError) as offline:
            await client.call("chargers.reset", charger="CP2")
        assert offline.value.code == "unavailable" and "not connected" in offline.value.message
        listing = {o["op"]: o for o in await client.call("ops")}
        assert listing["chargers.stop_session"]["admin"] is True
        assert listing["live.snapshot"]["admin"] is False


async def test_a_charger_that_does_not_answer_is_reported(make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway()
    async with raw_charger(gateway_url(gateway), "CP1") as cp:
        await cp.call("BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"})
        assert gateway.live is not None and gateway.journal is not None
        actions = ChargerActions(
            gateway.call,
            gateway.chargers,
            LiveSessions(gateway.live),
            gateway.journal.event,
            timeout=0.2,
        )
        ops = ActionOps(actions)
        with pytest.raises(Unavailable) as failed:  # the raw charger never answers
            await ops.unlock({"charger": "CP1", "connector": 1})
        assert "did not take UnlockConnector" in str(failed.value)  # (socket: "unavailable")
        assert gateway.journal is not None  # operator actions go to the event journal
        (entry,) = await gateway.journal.read(1)
        assert entry.kind == "action.UnlockConnector" and entry.charger_id == "CP1"
        assert "not done" in entry.message
