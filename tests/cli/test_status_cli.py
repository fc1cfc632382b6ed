"""``edgegw status``, ``sync`` and ``events`` through typer's runner, with the daemon running
and with it stopped (then the store is read directly)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from typer.testing import CliRunner, Result

from edgegw.cli.main import app
from edgegw.sim.charger import SimCharger
from edgegw.store.store import Store
from tests.conftest import GatewayFactory, gateway_url

runner = CliRunner()

START = {
    "connectorId": 1,
    "idTag": "04A1B2C3",
    "meterStart": 0,
    "timestamp": "2026-01-01T10:00:00Z",
}
STOP = {"transactionId": 7, "meterStop": 500, "timestamp": "2026-01-01T11:00:00Z"}


def write_config(tmp_path: Path) -> Path:
    path = tmp_path / "edgegw.toml"
    path.write_text(
        f'[store]\npath = "{tmp_path / "gw0.db"}"\n'
        f'[control]\nsocket = "{tmp_path / "gw0.sock"}"\ngroup = ""\n'
        '[cloud]\nurl = "ws://127.0.0.1:9/ocpp"\n'
        '[[chargers]]\nid = "CP1"\n[[chargers]]\nid = "CP2"\n'
    )
    return path


def cli(config: Path, *args: str) -> Result:
    return runner.invoke(app, [*args, "--config", str(config)])


async def acli(config: Path, *args: str) -> Result:
    return await asyncio.to_thread(cli, config, *args)


async def fill_store(path: Path) -> None:
    """What a gateway leaves behind after the cloud refused one message and another waits."""
    store = await Store.open(path)
    try:
        queued = await store.outbox.enqueue("CP1", "StartTransaction", START)
        refused = await store.outbox.enqueue("CP2", "StopTransaction", STOP)
        assert queued is not None and refused is not None
        await store.outbox.failed(refused, "CALLERROR FormationViolation", parked=True)
        await store.event("cloud", "the cloud refused StopTransaction", charger_id="CP2")
    finally:
        await store.close()


async def test_with_the_daemon_stopped_the_store_is_read(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    await fill_store(tmp_path / "gw0.db")

    status = await acli(config, "status")
    assert status.exit_code == 4, status.output
    assert "edgegw is NOT running" in status.stdout and "systemctl start edgegw" in status.stdout
    assert "1 message(s) for the cloud and 1 parked" in status.stdout
    document = json.loads((await acli(config, "status", "--json")).stdout)
    assert document["running"] is False and document["sync"] == {"queued": 1, "parked": 1}

    sync = await acli(config, "sync", "status", "--json")
    assert sync.exit_code == 0, sync.output
    rows = {c["id"]: c for c in json.loads(sync.stdout)["chargers"]}
    assert (rows["CP1"]["queued"], rows["CP2"]["parked"]) == (1, 1)
    assert rows["CP1"]["cloud_link"] == "charger offline"
    assert "reading its store" in sync.stderr
    text = (await acli(config, "sync", "status")).stdout
    assert "edgegw sync retry" in text and "sent when it starts" in text

    parked = await acli(config, "sync", "parked")
    assert "CP2 StopTransaction" in parked.stdout and "FormationViolation" in parked.stdout
    assert (await acli(config, "sync", "parked", "--charger", "CP1")).stdout.startswith("No parked")

    retried = await acli(config, "sync", "retry", "--charger", "CP2")
    assert retried.exit_code == 0 and "Put 1 parked message(s) of CP2 back" in retried.stdout
    after = json.loads((await acli(config, "sync", "status", "--json")).stdout)
    assert (after["queued"], after["parked"]) == (2, 0)

    events = await acli(config, "events")
    assert "the cloud refused StopTransaction" in events.stdout and "CP2" in events.stdout


def test_status_without_a_store_or_daemon(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    result = cli(config, "status")
    assert result.exit_code == 4 and "NOT running" in result.stdout
    assert not (tmp_path / "gw0.db").exists()
    assert cli(config, "events").stdout.startswith("No events recorded yet")
    bad = cli(config, "events", "--limit", "0")
    assert bad.exit_code == 2 and "limit must be between 1 and 10000" in bad.stderr


async def test_with_the_daemon_running(tmp_path: Path, make_gateway: GatewayFactory) -> None:
    config = write_config(tmp_path)
    await fill_store(tmp_path / "gw0.db")
    gateway = await make_gateway(
        chargers=[{"id": "CP1"}, {"id": "CP2"}],
        cloud_url="ws://127.0.0.1:9/ocpp",
        auth={"unknown_cards": "accept"},
    )
    async with SimCharger("CP1", gateway_url(gateway)) as cp1:
        await cp1.boot()
        status = await acli(config, "status")
        assert status.exit_code == 0, status.output
        assert (
            "running for" in status.stdout and "relaying to ws://127.0.0.1:9/ocpp" in status.stdout
        )
        assert "CP1" in status.stdout and "Waiting for the cloud" in status.stdout
        document = json.loads((await acli(config, "status", "--json")).stdout)
        assert document["running"] is True and document["pending_chargers"] == 0
        assert [c["connected"] for c in document["chargers"] if c["id"] == "CP1"] == [True]

        sync = json.loads((await acli(config, "sync", "status", "--json")).stdout)
        assert sync["source"] == "daemon" and sync["parked"] == 1
        retried = await acli(config, "sync", "retry")
        assert "being sent now" in retried.stdout
        assert json.loads((await acli(config, "sync", "status", "--json")).stdout)["parked"] == 0

        events = await acli(config, "events", "--json")
        assert events.exit_code == 0
        assert any(
            "refused StopTransaction" in e["message"] for e in json.loads(events.stdout)["events"]
        )
