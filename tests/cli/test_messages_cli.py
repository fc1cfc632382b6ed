"""``edgegw messages show|dump``: from the running daemon's memory, else from the file it left."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from typer.testing import CliRunner, Result

from edgegw.cli.messages import messages_app
from edgegw.config import StoreConfig
from edgegw.sim.charger import SimCharger
from edgegw.store.store import Store
from tests.conftest import GatewayFactory, gateway_url

runner = CliRunner()


def write_config(tmp_path: Path) -> Path:
    path = tmp_path / "edgegw.toml"
    path.write_text(
        f'[store]\npath = "{tmp_path / "gw0.db"}"\n'
        f'[control]\nsocket = "{tmp_path / "gw0.sock"}"\ngroup = ""\n'
    )
    return path


async def cli(config: Path, *args: str) -> Result:
    return await asyncio.to_thread(runner.invoke, messages_app, [*args, "--config", str(config)])


async def test_with_the_daemon_running(tmp_path: Path, make_gateway: GatewayFactory) -> None:
    config = write_config(tmp_path)
    gateway = await make_gateway(chargers=[{"id": "CP1"}, {"id": "CP2"}])
    async with SimCharger("CP1", gateway_url(gateway)) as cp1:
        await cp1.boot()
        await cp1.heartbeat()
    shown = await cli(config, "show", "--json", "--charger", "CP1", "--limit", "2")
    assert shown.exit_code == 0, shown.output
    document = json.loads(shown.stdout)
    assert document["source"] == "daemon"
    frames = [json.loads(f["frame"]) for f in document["frames"]]
    assert [f[0] for f in frames] == [2, 3]  # the Heartbeat and its answer, oldest first
    assert frames[0][2] == "Heartbeat"
    dumped = await cli(config, "dump", str(tmp_path / "log.jsonl"))
    assert dumped.exit_code == 0, dumped.output
    lines = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [line["direction"] for line in lines] == ["charger>", ">charger"] * 2
    assert [line["seq"] for line in lines] == sorted(line["seq"] for line in lines)


async def test_with_the_daemon_stopped_the_file_it_left_is_read(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    store = await Store.open_for_daemon(StoreConfig(path=tmp_path / "gw0.db", message_log_size=100))
    store.log_frame("CP1", "charger>", '[2,"\ud800","Foo",{}]')
    store.log_frame("CP2", "charger>", '[2,"1","Heartbeat",{}]')
    await store.close()
    shown = await cli(config, "show")
    assert shown.exit_code == 0, shown.output
    assert "not running" in shown.stderr
    assert 'CP1 charger>  [2,"\\ud800","Foo",{}]' in shown.stdout
    dumped = await cli(config, "dump", "-", "--charger", "CP2")
    assert [json.loads(line)["charger"] for line in dumped.stdout.splitlines()] == ["CP2"]
