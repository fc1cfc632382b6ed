"""``edgegw cards enroll`` on a real pcscd with vpcd virtual readers, and ``cards learn`` on a
real gateway, all through typer's runner."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from edgegw.auth.authorizer import Authorizer
from edgegw.cli.main import app
from edgegw.config import AuthConfig
from edgegw.daemon import Gateway
from edgegw.sim.charger import SimCharger
from edgegw.store.db import Database
from edgegw.tasks import TaskOwner
from tests.conftest import GatewayFactory, gateway_url
from tests.pcsc import fixtures
from tests.pcsc.fixtures import READER_NAME, Taps
from tests.pcsc.pcscd import Pcscd, unavailable
from tests.pcsc.vcard import Behaviour

UID7 = "04A1B2C3D4E5F6"
CHARGERS: list[dict[str, Any]] = [
    {"id": "CP1", "idtag_format": "hex"},
    {"id": "CP2", "idtag_format": "hex_reversed", "model": "keba-p30"},
    {"id": "CP3"},
]
SLOT0, SLOT1 = f"{READER_NAME} 00 00", f"{READER_NAME} 00 01"

runner = CliRunner()

pcscd = fixtures.pcscd  # the session's private pcscd
taps = fixtures.taps  # cards to tap on its readers


def _cli(*args: str) -> list[str]:
    """A command line running ``edgegw cards ARGS`` in a new Python process."""
    return [sys.executable, "-m", "edgegw", "cards", *args]


def write_config(path: Path, store: Path, socket: Path, chargers: list[dict[str, Any]]) -> Path:
    lines = [
        f'[store]\npath = "{store}"',
        f'[control]\nsocket = "{socket}"\ngroup = ""',
    ]
    for charger in chargers:
        fields = "\n".join(f'{k} = "{v}"' for k, v in charger.items())
        lines.append(f"[[chargers]]\n{fields}")
    path.write_text("\n\n".join(lines) + "\n")
    return path


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A site whose daemon is not running: the CLI works on the store itself."""
    return write_config(
        tmp_path / "edgegw.toml", tmp_path / "edgegw.db", tmp_path / "control.sock", CHARGERS
    )


def enroll(config: Path, *args: str, stdin: str | None = None) -> Result:
    return runner.invoke(app, ["cards", "enroll", "--config", str(config), *args], input=stdin)


def stored_cards(config: Path) -> dict[str, tuple[str, str]]:
    """Canonical id → (owner, label) of the cards in the site's store."""

    async def read() -> dict[str, tuple[str, str]]:
        db = await Database.open(config.parent / "edgegw.db")
        auth = await Authorizer.open(db, AuthConfig())
        try:
            return {c.id.canonical: (c.owner, c.label) for c in auth.cards()}
        finally:
            await auth.close()
            await db.close()

    return asyncio.run(read())


@pytest.fixture
async def tasks() -> AsyncIterator[TaskOwner]:
    owner = TaskOwner("test")
    yield owner
    await owner.close()


@pytest.fixture
def tapper() -> Iterator[list[threading.Thread]]:
    """Threads that tap cards while the command runs; joined at the end of the test."""
    threads: list[threading.Thread] = []
    yield threads
    for thread in threads:
        thread.join(15)


# ------------------------------------------------------------------ enroll, daemon not running


def test_enroll_one_card_shows_how_each_charger_reports_it(config: Path, taps: Taps) -> None:
    card = taps.card(UID7).insert()
    result = enroll(config, "--reader", SLOT0, "--owner", "Alice", "--label", "Flat 3")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"{UID7} added (Alice, Flat 3)" in out
    assert f"CP1 (hex): {UID7}" in out
    assert "CP2 (KEBA KeContact P30) (reversed hex): F6E5D4C3B2A104" in out
    assert "CP3 (format not known yet): recognised in any format" in out
    assert "working on its store" in result.stderr and "Tap the card" in result.stderr
    assert stored_cards(config) == {UID7: ("Alice", "Flat 3")}
    assert card.reads == 1


def test_enroll_json(config: Path, taps: Taps) -> None:
    taps.card("E43AC9D2").insert()
    result = enroll(config, "--reader", "1", "--json", "--charger", "CP2")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["ok"], data["action"], data["source"]) == (True, "added", "store")
    assert (data["card"], data["uid"], data["reader"]) == ("E43AC9D2", "E43AC9D2", SLOT0)
    assert data["record"]["chargers"] == ["CP2"]
    by_format = {v["format"]: v for v in data["variants"]}
    assert by_format["hex_reversed"]["idtag"] == "D2C93AE4"
    assert by_format["hex_reversed"]["chargers"] == ["CP2"]
    assert by_format["hex_reversed"]["models"] == ["KEBA KeContact P30"]
    assert by_format["auto"]["chargers"] == ["CP3"]


def test_bulk_enrolment_adds_each_card_once(
    config: Path,
    taps: Taps,
    tapper: list[threading.Thread],
) -> None:
    uids = ["E43AC9D2", UID7, "7186A61E"]
    cards = [taps.card(uid) for uid in uids]

    def tap_one_after_another() -> None:
        for card in cards:
            card.insert()
            card.wait_read()
            card.wait_polls(2)  # it lies on the reader a while after its read...
            card.remove()  # ...and is counted once

    tapper.append(threading.Thread(target=tap_one_after_another))
    tapper[0].start()
    # The timeout is the wait for the next card: the tapper needs two polls (0.4 s each) to
    # lift a card and one to lay the next; 1.5 s, then 4 s, were too short on a loaded CI
    # machine (the bulk run ends one timeout after the last card, so this costs 8 s a run).
    result = enroll(config, "--reader", SLOT0, "--bulk", "--timeout", "8", "--label", "Tag {n}")
    assert result.exit_code == 0, result.output
    assert [card.reads for card in cards] == [1, 1, 1]
    assert "[1] E43AC9D2 added (Tag 1)" in result.stdout
    assert "[3] 7186A61E added (Tag 3)" in result.stdout
    assert "Enrolment ended (no further card): 3 added." in result.stdout
    assert stored_cards(config) == {
        "E43AC9D2": ("", "Tag 1"),
        UID7: ("", "Tag 2"),
        "7186A61E": ("", "Tag 3"),
    }


def test_no_card_within_the_timeout(config: Path, taps: Taps) -> None:
    result = enroll(config, "--reader", SLOT0, "--timeout", "1")
    assert result.exit_code == 1
    assert f"no card was presented on {SLOT0} within 1 s" in result.stderr
    assert "--timeout" in result.stderr  # what to do next


def test_pick_the_reader_by_name_or_when_asked(config: Path, taps: Taps) -> None:
    taps.card("E43AC9D2", slot=0).insert()
    taps.card(UID7, slot=1).insert()
    by_name = enroll(config, "--reader", "test reader 00 01", "--json")
    assert by_name.exit_code == 0, by_name.output
    assert (json.loads(by_name.stdout)["reader"], json.loads(by_name.stdout)["card"]) == (
        SLOT1,
        UID7,
    )
    asked = enroll(config, stdin="1\n")
    assert asked.exit_code == 0, asked.output
    assert "Several card readers are connected" in asked.stderr
    assert f"1) {SLOT0}" in asked.stderr and f"2) {SLOT1}" in asked.stderr
    assert "E43AC9D2 added" in asked.stdout
    unanswered = enroll(config)
    assert unanswered.exit_code == 1
    assert "choose one with --reader" in unanswered.stderr


def test_unknown_reader_lists_the_connected_ones(config: Path, pcscd: Pcscd) -> None:
    result = enroll(config, "--reader", "omnikey")
    assert result.exit_code == 1
    assert "no reader matches 'omnikey'" in result.stderr and SLOT1 in result.stderr
    listed = runner.invoke(app, ["cards", "enroll", "--list-readers", "--json"])
    assert json.loads(listed.stdout)["readers"] == [SLOT0, SLOT1]


def test_random_uid_is_refused_with_the_reason(config: Path, taps: Taps) -> None:
    taps.card("08A1B2C3").insert()
    result = enroll(config, "--reader", SLOT0)
    assert result.exit_code == 1
    assert "08A1B2C3: not added" in result.stdout and "random UID" in result.stdout
    assert stored_cards(config) == {}


def test_an_enrolled_card_is_said_to_be(config: Path, taps: Taps) -> None:
    card = taps.card(UID7).insert()
    assert enroll(config, "--reader", SLOT0, "--owner", "Alice").exit_code == 0
    taps.take_away(card)
    taps.card(UID7).insert()
    again = enroll(config, "--reader", SLOT0, "--owner", "Bob")
    assert again.exit_code == 1, again.output
    assert f"{UID7} is already enrolled (Alice)" in again.stdout, again.output
    assert stored_cards(config) == {UID7: ("Alice", "")}


def test_a_card_pulled_away_too_soon(config: Path, taps: Taps) -> None:
    taps.card(UID7, behaviour=Behaviour.VANISH).insert()
    result = enroll(config, "--reader", SLOT0)
    assert result.exit_code == 1
    assert "taken away" in result.stderr and "hold the card still" in result.stderr
    assert stored_cards(config) == {}


async def test_enroll_goes_through_the_running_daemon(
    make_gateway: GatewayFactory,
    taps: Taps,
    tmp_path: Path,
) -> None:
    gateway = await make_gateway(chargers=CHARGERS)
    cfg = _config_of(gateway, tmp_path)
    taps.card(UID7).insert()
    result = await asyncio.to_thread(enroll, cfg, "--reader", SLOT0, "--json", "--owner", "Eve")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["source"], data["action"]) == ("daemon", "added")
    assert gateway.authorizer is not None
    card = gateway.authorizer.card(UID7)
    assert card is not None and card.owner == "Eve"  # in effect at once, no restart


# ------------------------------------------------------------------ pcscd down


def test_pcscd_not_running(config: Path, tmp_path: Path) -> None:
    """libpcsclite reads its socket path once per process, so this runs the CLI in another."""
    env = {"PCSCLITE_CSOCK_NAME": str(tmp_path / "none" / "pcscd.comm"), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        _cli("enroll", "--config", str(config)),
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1, out.stderr
    assert "the PC/SC service pcscd is not running" in out.stderr
    assert "systemctl start pcscd" in out.stderr


def test_pcscd_stopping_while_waiting(config: Path, tmp_path: Path) -> None:
    reason = unavailable()
    if reason is not None:
        pytest.skip(reason)
    with Pcscd(tmp_path / "pcscd", "Lonely Reader") as daemon:
        process = subprocess.Popen(
            [*_cli("enroll", "--config", str(config), "--reader", "1", "--timeout", "30")],
            env=daemon.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert process.stderr is not None
            for line in process.stderr:
                if "Tap the card" in line:
                    break
            daemon.stop()
            _, err = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert process.returncode == 1
    assert "pcscd stopped while waiting" in err


# ------------------------------------------------------------------ learn


def _config_of(gateway: Gateway, tmp_path: Path) -> Path:
    """A configuration file for the CLI that names the running gateway's store and socket."""
    cfg = gateway.config
    chargers = [
        {k: v for k, v in (("id", c.id), ("idtag_format", c.idtag_format), ("model", c.model)) if v}
        for c in cfg.chargers
    ]
    return write_config(tmp_path / "site.toml", cfg.store.path, cfg.control.socket, chargers)


def learn(config: Path, *args: str) -> Result:
    return runner.invoke(app, ["cards", "learn", "--config", str(config), *args])


async def test_learn_adds_the_card_tapped_at_the_charger(
    make_gateway: GatewayFactory, tmp_path: Path, tasks: TaskOwner
) -> None:
    gateway = await make_gateway(chargers=CHARGERS)
    assert gateway.control is not None and gateway.authorizer is not None
    ops = gateway.learn_ops
    assert ops is not None
    cfg = _config_of(gateway, tmp_path)
    async with SimCharger("CP2", gateway_url(gateway), connectors=1) as keba:
        await keba.boot()
        command = tasks.spawn(
            asyncio.to_thread(learn, cfg, "--charger", "CP2", "--owner", "Bob", "--timeout", "10"),
            "cli",
        )
        await ops.learner.until_waiting("CP2")
        first = await keba.authorize("D2C93AE4")  # a KEBA writes E4 3A C9 D2 reversed
        result = await command
        again = await keba.authorize("D2C93AE4")
    assert result.exit_code == 0, result.output
    assert first["idTagInfo"]["status"] == "Invalid"  # the tap itself was answered as usual
    assert again["idTagInfo"]["status"] == "Accepted"  # and the card works from now on
    assert "CP2 reported 'D2C93AE4' (Authorize, answered Invalid)" in result.stdout
    assert "read as hex_reversed (configured)" in result.stdout
    assert "E43AC9D2 added (Bob)" in result.stdout
    assert "CP2 (KEBA KeContact P30) (reversed hex): D2C93AE4" in result.stdout
    card = gateway.authorizer.card("E43AC9D2")
    assert card is not None and card.owner == "Bob"


async def test_learn_refuses_a_random_uid(
    make_gateway: GatewayFactory, tmp_path: Path, tasks: TaskOwner
) -> None:
    gateway = await make_gateway(chargers=CHARGERS)
    assert gateway.control is not None and gateway.authorizer is not None
    ops = gateway.learn_ops
    assert ops is not None
    cfg = _config_of(gateway, tmp_path)
    async with SimCharger("CP1", gateway_url(gateway), connectors=1) as cp:
        await cp.boot()
        command = tasks.spawn(
            asyncio.to_thread(learn, cfg, "--charger", "CP1", "--json", "--timeout", "10"), "cli"
        )
        await ops.learner.until_waiting("CP1")
        await cp.authorize("08A1B2C3")
        result = await command
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["action"] == "refused" and "random UID" in data["reason"]
    assert gateway.authorizer.cards() == []


def test_learn_needs_the_daemon(config: Path) -> None:
    result = learn(config, "--charger", "CP1")
    assert result.exit_code == 4
    assert "edgegw is not running" in result.stderr
    assert "`cards learn` needs the daemon" in result.stderr
    assert "edgegw cards enroll" in result.stderr
