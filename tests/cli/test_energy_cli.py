"""`edgegw energy state` and `edgegw energy decisions` against a real load-capping gateway."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path

from typer.testing import CliRunner, Result

from edgegw.cli.energy import CSV_COLUMNS
from edgegw.cli.main import app
from edgegw.sim.charger import SimCharger
from edgegw.sim.meter import SimMeter
from tests.conftest import GatewayFactory, gateway_url

runner = CliRunner()


def write_config(tmp_path: Path, socket: Path) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(
        f'[store]\npath = "{tmp_path / "unused.db"}"\n'
        f'[control]\nsocket = "{socket}"\ngroup = ""\n'
        '[[chargers]]\nid = "CP1"\n'
    )
    return path


async def cli(config: Path, *args: str) -> Result:
    return await asyncio.to_thread(runner.invoke, app, [*args, "--config", str(config)])


async def test_state_and_decision_export(make_gateway: GatewayFactory, tmp_path: Path) -> None:
    meter = SimMeter("eastron-sdm630")
    await meter.start()
    gateway = await make_gateway(
        chargers=[{"id": "CP1", "fallback_current_a": 8}],
        site={"limit_a": 32},
        auth={"unknown_cards": "accept"},
        buses={"main": {"transport": "tcp", "host": "127.0.0.1", "port": meter.port}},
        meters=[{"profile": "eastron-sdm630", "poll_interval": 0.2}],
    )
    assert gateway.controller is not None
    config = write_config(tmp_path, gateway.config.control.socket)
    async with SimCharger("CP1", gateway_url(gateway), connectors=1) as cp:
        await cp.boot()
        await cp.start_transaction(1, "04A1B2C3")
        async with asyncio.timeout(10):
            while not any(  # noqa: ASYNC110 - waiting for control rounds to be logged
                s.limit_a is not None
                for c in gateway.controller.state().chargers
                for s in c.sessions
            ):
                await asyncio.sleep(0.05)

        shown = await cli(config, "energy", "state")
        assert shown.exit_code == 0, shown.output
        assert "limit per phase   32.0 / 32.0 / 32.0 A" in shown.stdout
        assert "CP1" in shown.stdout and "connector 1" in shown.stdout
        as_json = json.loads((await cli(config, "energy", "state", "--json")).stdout)
        assert as_json["meter"] == "ok" and as_json["chargers"][0]["id"] == "CP1"
        assert as_json["meters"][0]["health"] == "ok"

        exported = await cli(config, "energy", "decisions", "--limit", "50")
        assert exported.exit_code == 0, exported.output
        rows = list(csv.DictReader(io.StringIO(exported.stdout)))
        assert rows and tuple(rows[0]) == CSV_COLUMNS
        cp1 = [r for r in rows if r["charger"] == "CP1"]
        assert cp1 and all(0 <= float(r["limit_a"]) <= 32 for r in cp1)
        assert all(r["at"].endswith("Z") for r in rows)

        out = tmp_path / "log.json"
        written = await cli(config, "energy", "decisions", "--format", "json", "-o", str(out))
        assert written.exit_code == 0 and "round(s)" in written.stderr
        rounds = json.loads(out.read_text())
        assert rounds and {"at", "mode", "inputs", "outputs"} <= set(rounds[0])
    await meter.stop()


async def test_bad_input_and_no_site(make_gateway: GatewayFactory, tmp_path: Path) -> None:
    gateway = await make_gateway()
    config = write_config(tmp_path, gateway.config.control.socket)
    bad_format = await cli(config, "energy", "decisions", "--format", "xml")
    assert bad_format.exit_code == 2 and "unknown format" in bad_format.stderr
    bad_time = await cli(config, "energy", "decisions", "--since", "yesterday")
    assert bad_time.exit_code == 2 and "ISO 8601" in bad_time.stderr
    no_site = await cli(config, "energy", "state")
    assert no_site.exit_code == 1 and "no [site] section" in no_site.stderr

    down = write_config(tmp_path, tmp_path / "nobody.sock")
    gone = await cli(down, "energy", "state")
    assert gone.exit_code == 4


async def test_state_shows_the_circuit_tree(make_gateway: GatewayFactory, tmp_path: Path) -> None:
    """`energy state` on a site with boards: each board under its parent with its limit,
    allocation and headroom, and its chargers under it; chargers on the site itself last."""
    meter = SimMeter("eastron-sdm630")
    await meter.start()
    gateway = await make_gateway(
        chargers=[
            {"id": "CP1", "circuit": "row-a"},
            {"id": "CP2", "circuit": "level-1"},
            {"id": "CP3"},
        ],
        site={"limit_a": 40},
        circuits=[
            {"name": "level-1", "limit_a": 32},
            {"name": "row-a", "limit_a": 20, "margin_a": 1, "parent": "level-1"},
        ],
        auth={"unknown_cards": "accept"},
        buses={"main": {"transport": "tcp", "host": "127.0.0.1", "port": meter.port}},
        meters=[{"profile": "eastron-sdm630", "poll_interval": 0.2}],
    )
    assert gateway.controller is not None
    config = write_config(tmp_path, gateway.config.control.socket)
    async with SimCharger("CP1", gateway_url(gateway), connectors=1) as cp:
        await cp.boot()
        await cp.start_transaction(1, "04A1B2C3")
        async with asyncio.timeout(10):
            while not any(  # noqa: ASYNC110 - waiting for a round that allocated the board
                c.used_a is not None and c.used_a[0] > 0
                for c in gateway.controller.state().circuits
            ):
                await asyncio.sleep(0.05)
        await cp.meter_values(1)
        shown = await cli(config, "energy", "state")
        as_json = json.loads((await cli(config, "energy", "state", "--json")).stdout)
    await meter.stop()
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    level = next(i for i, line in enumerate(lines) if line.startswith("circuit level-1 "))
    assert "(under site): limit 32.0 / 32.0 / 32.0 A" in lines[level]
    assert lines[level + 1].startswith("  its chargers draw")
    assert lines[level + 2].startswith("  circuit row-a (under level-1): limit 20.0")
    assert "allocated " in lines[level + 2] and "headroom " in lines[level + 2]
    assert lines[level + 3].startswith("    its chargers draw")
    assert lines[level + 4].startswith("    CP1 ") and "online" in lines[level + 4]
    assert lines[level + 5].startswith("      connector 1: ")
    assert lines[level + 6].startswith("  CP2 ")  # on level-1, after its sub-board
    assert "on the site itself:" in lines and "  CP3" in shown.stdout
    row = next(c for c in as_json["circuits"] if c["name"] == "row-a")
    assert row["chargers"] == ["CP1"] and row["parent"] == "level-1"
    assert row["headroom_a"] == [20 - 1 - a for a in row["used_a"]]
