"""`edgegw chargers list | show` show a 2.0.1 charger as well as a 1.6 one: its OCPP version,
its EVSEs' statuses. A real daemon relaying to a CSMS written on the ``ocpp`` library's v201
package, a simulated 2.0.1 station and a simulated 1.6 charger over real sockets."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from typer.testing import CliRunner, Result

from edgegw.cli.main import app
from edgegw.sim.charger import SimCharger
from edgegw.sim.charger201 import SimCharger201
from tests.conftest import GatewayFactory, gateway_url
from tests.v201.test_relay201 import CHARGERS, Cloud201, cloud201  # noqa: F401

runner = CliRunner()


def write_config(tmp_path: Path, socket: Path) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(
        f'[store]\npath = "{tmp_path / "unused.db"}"\n'
        f'[control]\nsocket = "{socket}"\ngroup = ""\n'
        '[[chargers]]\nid = "CS201"\n'
    )
    return path


async def cli(config: Path, *args: str) -> Result:
    return await asyncio.to_thread(runner.invoke, app, [*args, "--config", str(config)])


async def test_a_201_charger_shows_its_version_and_evses(
    cloud201: Cloud201,  # noqa: F811
    make_gateway: GatewayFactory,
    tmp_path: Path,
) -> None:
    gateway = await make_gateway(cloud_url=cloud201.url, chargers=CHARGERS)
    config = write_config(tmp_path, gateway.config.control.socket)
    async with (
        SimCharger201("CS201", gateway_url(gateway)) as cs,
        SimCharger("CP16", gateway_url(gateway), connectors=1) as cp,
    ):
        await cs.boot()
        await cs.status(2, "Occupied")
        await cs.heartbeat()  # a round trip: the status is recorded before it is answered
        await cp.boot()
        listed = await cli(config, "chargers", "list")
        as_json = json.loads((await cli(config, "chargers", "list", "--json")).stdout)
        shown = await cli(config, "chargers", "show", "CS201")
        shown16 = await cli(config, "chargers", "show", "CP16")
    assert listed.exit_code == 0, listed.output
    header, *rows = listed.stdout.splitlines()
    assert header.split()[:3] == ["CHARGER", "STATE", "OCPP"]
    by_id = {row.split()[0]: row.split() for row in rows if row.strip()}
    assert by_id["CS201"][1:3] == ["connected", "2.0.1"]
    assert by_id["CP16"][1:3] == ["connected", "1.6"]
    assert by_id["CS201B"][1:4] == ["never", "connected", "-"]  # no version known
    versions = {c["id"]: c["ocpp_version"] for c in as_json["chargers"]}
    assert versions == {"CS201": "ocpp2.0.1", "CS201B": None, "CP16": "ocpp1.6"}
    assert shown.exit_code == 0, shown.output
    assert "  OCPP           2.0.1 (connectors are its EVSEs)" in shown.stdout
    assert "  EVSE 2         Occupied" in shown.stdout
    assert "reported       edgegw Sim201" in shown.stdout
    assert "  OCPP           1.6\n" in shown16.stdout and "EVSE" not in shown16.stdout
