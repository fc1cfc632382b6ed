"""What an installer sees of chargers that do not get in, and of chargers that do: wrong
URLs in ``chargers pending`` and ``doctor``, the last message as LAST SEEN, a caretaker's cap
as the effective current range (a real gateway on port 0, real WebSocket clients)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Subprotocol

from edgegw.cli.main import app
from edgegw.config import Config
from edgegw.daemon import Gateway
from edgegw.proxy.server import WrongUrls, guess_identity
from edgegw.sim.charger import SimCharger
from edgegw.store.journal import Journal
from edgegw.store.overrides import ChargerOverrides
from edgegw.store.store import Store
from edgegw.tasks import TaskOwner
from tests.conftest import GatewayFactory, gateway_url

runner = CliRunner()


def config_file(tmp_path: Path, gateway: Gateway) -> Path:
    """A file naming the running gateway's socket and store (what `-c` points at)."""
    cfg: Config = gateway.config
    path = tmp_path / "site.toml"
    path.write_text(
        f'[store]\npath = "{cfg.store.path}"\n'
        f'[control]\nsocket = "{cfg.control.socket}"\ngroup = ""\n'
        '[[chargers]]\nid = "CP1"\n[[chargers]]\nid = "CP2"\n'
    )
    return path


async def acli(config: Path, *args: str) -> Result:
    return await asyncio.to_thread(runner.invoke, app, [*args, "--config", str(config)])


async def knock(gateway: Gateway, path: str) -> int:
    """Open a WebSocket to ``path`` on the gateway; returns the HTTP status it was refused with."""
    assert gateway.server is not None
    url = f"ws://127.0.0.1:{gateway.server.port}{path}"
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, subprotocols=[Subprotocol("ocpp1.6")], proxy=None):
            pass
    return refused.value.response.status_code


def test_the_identity_a_wrong_path_meant() -> None:
    configured = {"CP-X"}.__contains__
    assert guess_identity("/ocpp", "/ocpp/", configured) == (
        None,
        "no charger identity after /ocpp/",
    )
    assert guess_identity("/CP-Y", "/ocpp/", configured) == ("CP-Y", "the path is not under /ocpp/")
    meant, why = guess_identity("/ocpp/CP-X/CP-X", "/ocpp/", configured)
    assert meant == "CP-X" and "'CP-X/CP-X' is not a charger identity" in why
    # A configured identity wins over the last part of the path.
    assert guess_identity("/ocpp/CP-X/extra", "/ocpp/", configured)[0] == "CP-X"


async def test_wrong_urls_show_in_pending_and_doctor_with_the_url_to_use(
    tmp_path: Path, make_gateway: GatewayFactory
) -> None:
    gateway = await make_gateway()
    config = config_file(tmp_path, gateway)
    assert gateway.server is not None
    port = gateway.server.port
    for path in ("/ocpp", "/CP2", "/ocpp/CP1/CP1"):
        assert await knock(gateway, path) == 404
    # Retrying puts the source in failed-login back-off: still counted, answered 429.
    tries = 1
    while await knock(gateway, "/ocpp/CP1/CP1") == 404:
        tries += 1
        assert tries < 10
    tries += 1

    result = await acli(config, "chargers", "pending", "--json")
    assert result.exit_code == 0, result.output
    wrong = {w["path"]: w for w in json.loads(result.stdout)["wrong_urls"]}
    assert set(wrong) == {"/ocpp", "/CP2", "/ocpp/CP1/CP1"}
    assert wrong["/ocpp/CP1/CP1"]["url"] == f"ws://127.0.0.1:{port}/ocpp/CP1"
    assert wrong["/ocpp/CP1/CP1"]["attempts"] == tries
    assert wrong["/ocpp/CP1/CP1"]["throttled"] == 1
    assert wrong["/ocpp/CP1/CP1"]["configured"] is True
    assert wrong["/CP2"]["url"] == f"ws://127.0.0.1:{port}/ocpp/CP2"
    assert wrong["/ocpp"]["url"] == f"ws://127.0.0.1:{port}/ocpp/<charger id>"
    assert all(w["address"] == "127.0.0.1" for w in wrong.values())

    text = (await acli(config, "chargers", "pending")).stdout
    assert "refused for a wrong URL" in text and f"ws://127.0.0.1:{port}/ocpp/CP2" in text

    status = await acli(config, "status")
    assert "3 connections refused for a wrong URL" in status.stdout, status.stdout

    doctor = await acli(config, "doctor", "--skip-cloud", "--skip-meters", "--json")
    lines = [c for c in json.loads(doctor.stdout)["checks"] if c["name"] == "wrong_url"]
    assert len(lines) == 3, doctor.stdout
    assert any(
        f"set its OCPP server URL to ws://127.0.0.1:{port}/ocpp/CP1" in c["detail"] for c in lines
    )


async def test_last_seen_is_the_last_message_and_the_range_shows_the_caretakers_cap(
    tmp_path: Path, make_gateway: GatewayFactory
) -> None:
    gateway = await make_gateway(chargers=[{"id": "CP1", "max_current_a": 16}])
    config = config_file(tmp_path, gateway)
    assert gateway.store is not None and gateway.live is not None
    await ChargerOverrides(gateway.store.db).set_max_current("CP1", 10)
    async with SimCharger("CP1", gateway_url(gateway)) as cp1:
        await cp1.boot()
        listed = json.loads((await acli(config, "chargers", "list", "--json")).stdout)
        connected_at = listed["chargers"][0]["last_connected"]
        await cp1.heartbeat()
        message_at = gateway.live.last_message("CP1")
        assert message_at is not None and message_at > connected_at
        listed = json.loads((await acli(config, "chargers", "list", "--json")).stdout)
        assert listed["chargers"][0]["last_seen"] == message_at
        status = json.loads((await acli(config, "status", "--json")).stdout)
        assert status["chargers"][0]["last_seen"] == message_at

        shown = await acli(config, "chargers", "show", "CP1")
        assert "6-10 A (caretaker's maximum; configured 6-16 A)" in shown.stdout, shown.stdout
        data = json.loads((await acli(config, "chargers", "show", "CP1", "--json")).stdout)
        assert data["effective_max_a"] == 10 and data["caretaker_max_a"] == 10


async def test_wrong_urls_are_read_back_from_the_journal_when_the_daemon_is_stopped(
    tmp_path: Path,
) -> None:
    store = await Store.open(tmp_path / "gw.db")
    journal = Journal(store.db)
    tasks = TaskOwner("test")
    wrong = WrongUrls(
        clock=time.monotonic, wall_clock=time.time, record_event=journal.event, tasks=tasks
    )
    for _ in range(3):  # one journal entry per address and path, not one per attempt
        wrong.refused(
            "10.0.0.7",
            "/ocpp/CP1/CP1",
            prefix="/ocpp/",
            scheme="ws",
            reached="gw.site:9000",
            configured={"CP1"}.__contains__,
        )
    await asyncio.gather(*tasks.tasks)  # the journal entry is recorded in a task
    await tasks.close()
    await journal.close()
    await store.close()

    config = tmp_path / "site.toml"
    config.write_text(
        f'[store]\npath = "{tmp_path / "gw.db"}"\n'
        f'[control]\nsocket = "{tmp_path / "none.sock"}"\ngroup = ""\n'
        '[[chargers]]\nid = "CP1"\n'
    )
    result = await acli(config, "chargers", "pending", "--json")
    assert result.exit_code == 0, result.output
    (entry,) = json.loads(result.stdout)["wrong_urls"]
    assert entry["url"] == "ws://gw.site:9000/ocpp/CP1" and entry["from_journal"] is True
    events = json.loads((await acli(config, "events", "--kind", "handshake", "--json")).stdout)
    (event,) = events["events"]
    assert event["charger"] == "CP1"
    assert event["message"] == (
        "refused CP1 from 10.0.0.7: 'CP1/CP1' is not a charger identity (one path part of 1-48 "
        "letters, digits and . _ - * + = | @ ~); set its OCPP server URL to "
        "ws://gw.site:9000/ocpp/CP1"
    )
