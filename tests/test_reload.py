"""Reloading the configuration: charger changes go live, anything else waits for a restart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from edgegw.config import load_config, parse_config
from edgegw.control.client import ControlClient, RemoteError
from edgegw.daemon import Gateway, ReloadError
from edgegw.reload import plan_reload
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
    plan = plan_reload(running, relabelled, load_capping=False)
    assert plan.applicable and plan.changed == ["CP2"]

    rewired = parse_config({"chargers": [{"id": "CP1"}, {"id": "CP2", "phases": "L2L3L1"}]})
    plan = plan_reload(running, rewired, load_capping=False)
    assert not plan.applicable and "phases" in plan.needs_restart[0]

    added = parse_config({"chargers": [*base["chargers"], {"id": "CP3"}]})
    assert plan_reload(running, added, load_capping=False).added == ["CP3"]
    assert not plan_reload(running, added, load_capping=True).applicable

    keba = parse_config({"chargers": [*base["chargers"], {"id": "CP3", "model": "keba-p30"}]})
    assert not plan_reload(running, keba, load_capping=False).applicable
    assert plan_reload(running, running, load_capping=False).empty
