"""Card learn mode: the next idTag a charger reports, captured without changing its answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from edgegw.auth.idtags import CardId, IdTagFormat
from edgegw.auth.learn import CardLearner, read_captured
from edgegw.auth.locallist import Card
from edgegw.control import ControlClient
from edgegw.control.client import RemoteError
from edgegw.control.learn_ops import LearnOps
from edgegw.daemon import Gateway
from edgegw.ocpp.interpret import interpret
from edgegw.sim.charger import SimCharger
from edgegw.tasks import TaskOwner
from tests.conftest import GatewayFactory, gateway_url

AUTHORIZE_ANSWER = {"idTagInfo": {"status": "Invalid"}}


def exchanged(
    learner: CardLearner, charger_id: str, action: str, request: Any, response: Any
) -> None:
    """What the event hub hands the learner for one answered call."""
    for event in interpret(charger_id, action, request, response, 0.0):
        learner.handle(event)


@pytest.fixture
async def tasks() -> AsyncIterator[TaskOwner]:
    owner = TaskOwner("test")
    yield owner
    await owner.close()


# ------------------------------------------------------------------ the subscriber


async def test_captures_the_next_authorize_at_that_charger_only(tasks: TaskOwner) -> None:
    learner = CardLearner(clock=lambda: 42.0)
    waiting = tasks.spawn(learner.capture("CP1", timeout=5), "capture")
    await learner.until_waiting("CP1")
    assert learner.waiting() == {"CP1": 1}
    exchanged(learner, "CP2", "Authorize", {"idTag": "AAAAAAAA"}, AUTHORIZE_ANSWER)
    exchanged(learner, "CP1", "Heartbeat", {}, {"currentTime": "x"})
    exchanged(learner, "CP1", "StopTransaction", {"idTag": "BBBBBBBB"}, {})
    assert not waiting.done()
    exchanged(learner, "CP1", "Authorize", {"idTag": "D2C93AE4"}, AUTHORIZE_ANSWER)
    captured = await waiting
    assert (captured.charger_id, captured.action, captured.id_tag) == (
        "CP1",
        "Authorize",
        "D2C93AE4",
    )
    assert (captured.answered, captured.at) == ("Invalid", 42.0)
    assert learner.waiting() == {}


async def test_one_tap_ends_every_wait_at_the_charger(tasks: TaskOwner) -> None:
    learner = CardLearner()
    first = tasks.spawn(learner.capture("CP1", timeout=5), "first")
    await learner.until_waiting("CP1")
    second = tasks.spawn(learner.capture("CP1", timeout=5), "second")
    await asyncio.wait({second}, timeout=0)  # let it run up to its wait (no I/O involved)
    assert learner.waiting() == {"CP1": 2}
    start = {"connectorId": 1, "idTag": "04A1B2C3D4E5F6", "meterStart": 0, "timestamp": "t"}
    answer = {"transactionId": 1, "idTagInfo": {"status": "Accepted"}}
    exchanged(learner, "CP1", "StartTransaction", start, answer)
    assert (await first).id_tag == (await second).id_tag == "04A1B2C3D4E5F6"
    assert (await first).action == "StartTransaction"
    assert (await first).answered == "Accepted"


async def test_a_wait_times_out_and_is_forgotten() -> None:
    learner = CardLearner()
    with pytest.raises(TimeoutError):
        await learner.capture("CP1", timeout=0.05)
    assert learner.waiting() == {}
    exchanged(learner, "CP1", "Authorize", {"idTag": "D2C93AE4"}, AUTHORIZE_ANSWER)


# ------------------------------------------------------------------ reading the tag


def test_a_configured_format_gives_the_canonical_card() -> None:
    learned = read_captured("D2C93AE4", IdTagFormat.HEX_REVERSED, "configured")
    assert learned.card == CardId.from_uid(bytes.fromhex("E43AC9D2"))
    assert learned.problem is None and learned.alternatives == {}


def test_an_unknown_format_reads_hex_and_lists_the_other_readings() -> None:
    learned = read_captured("D2C93AE4", IdTagFormat.AUTO, "assumed")
    assert learned.card is not None and learned.card.canonical == "D2C93AE4"
    assert learned.fmt is IdTagFormat.HEX
    assert learned.alternatives[IdTagFormat.HEX_REVERSED].canonical == "E43AC9D2"
    assert IdTagFormat.HEX not in learned.alternatives


def test_a_bare_decimal_with_an_unknown_format_is_not_guessed() -> None:
    learned = read_captured("3283263748", IdTagFormat.AUTO, "assumed")
    assert learned.card is None
    assert learned.problem is not None and "--idtag-format" in learned.problem
    assert learned.alternatives[IdTagFormat.DEC_LE].canonical == "04A1B2C3"
    assert learned.alternatives[IdTagFormat.DEC_BE].canonical == "C3B2A104"


def test_a_decimal_whose_last_hex_byte_looks_like_a_check_byte_is_not_guessed() -> None:
    # 3283268017 read as hex is 32 83 26 80 17, and 17 is the check byte of the first four:
    # as hex with its check byte it would be card 32832680; as the printed number, B1B1B2C3.
    learned = read_captured("3283268017", IdTagFormat.AUTO, "assumed")
    assert learned.card is None
    assert learned.problem is not None and "--idtag-format" in learned.problem
    assert learned.alternatives[IdTagFormat.HEX].canonical == "32832680"
    assert learned.alternatives[IdTagFormat.DEC_LE].canonical == "B1B1B2C3"
    # With the format known there is nothing to guess.
    known = read_captured("3283268017", IdTagFormat.DEC_LE, "configured")
    assert known.card is not None and known.card.canonical == "B1B1B2C3"


def test_a_random_uid_is_read_but_flagged() -> None:
    learned = read_captured("08123456", IdTagFormat.HEX, "configured")
    assert learned.card is not None and learned.card.is_random_uid
    assert learned.problem is not None and "random UID" in learned.problem


def test_a_token_stays_a_token() -> None:
    learned = read_captured("Mobile000001", IdTagFormat.AUTO, "assumed")
    assert learned.card == CardId.from_token("Mobile000001")
    assert learned.problem is None


# ------------------------------------------------------------------ the op, on a real gateway


async def _gateway(make_gateway: GatewayFactory) -> tuple[Gateway, LearnOps]:
    gateway = await make_gateway(
        chargers=[{"id": "CP1", "idtag_format": "hex_reversed"}, {"id": "CP2"}]
    )
    assert gateway.control is not None
    ops = gateway.learn_ops  # the daemon registers it before chargers can connect
    assert ops is not None and gateway.hub is not None and ops.learner in gateway.hub.subscribers
    return gateway, ops


async def test_learn_op_captures_a_tap_and_the_charger_is_answered_as_usual(
    make_gateway: GatewayFactory, tasks: TaskOwner
) -> None:
    gateway, ops = await _gateway(make_gateway)
    async with SimCharger("CP1", gateway_url(gateway), connectors=1) as cp:
        await cp.boot()
        async with await ControlClient.connect(gateway.config.control.socket) as client:
            learning = tasks.spawn(client.call("cards.learn", charger="CP1", timeout=10), "learn")
            await ops.learner.until_waiting("CP1")
            answer = await cp.authorize("D2C93AE4")
            result: dict[str, Any] = await learning
    assert answer["idTagInfo"]["status"] == "Invalid"  # not enrolled yet: the policy refuses it
    assert result["captured"] is True
    assert result["id_tag"] == "D2C93AE4" and result["action"] == "Authorize"
    assert result["answered"] == "Invalid"
    assert result["card"] == "E43AC9D2" and result["kind"] == "uid"
    assert (result["format"], result["format_source"]) == ("hex_reversed", "configured")
    assert result["problem"] is None and result["enrolled"] is None


async def test_learn_op_says_when_the_card_is_enrolled(
    make_gateway: GatewayFactory, tasks: TaskOwner
) -> None:
    gateway, ops = await _gateway(make_gateway)
    assert gateway.authorizer is not None
    await gateway.authorizer.add_card(
        Card(CardId.from_uid(bytes.fromhex("04A1B2C3D4E5F6")), owner="Alice")
    )
    async with SimCharger("CP2", gateway_url(gateway), connectors=1) as cp:
        await cp.boot()
        async with await ControlClient.connect(gateway.config.control.socket) as client:
            learning = tasks.spawn(client.call("cards.learn", charger="CP2", timeout=10), "learn")
            await ops.learner.until_waiting("CP2")
            await cp.start_transaction(1, "04A1B2C3D4E5F6")
            result = await learning
    assert result["action"] == "StartTransaction" and result["answered"] == "Accepted"
    # CP2 is "auto": this very tap of an enrolled card told the gateway how CP2 writes cards
    assert (result["format"], result["format_source"]) == ("hex", "detected")
    assert result["card"] == "04A1B2C3D4E5F6" and result["enrolled"]["owner"] == "Alice"


async def test_learn_op_errors(make_gateway: GatewayFactory) -> None:
    gateway, _ = await _gateway(make_gateway)
    async with await ControlClient.connect(gateway.config.control.socket) as client:
        with pytest.raises(RemoteError, match="CP1 is not connected") as offline:
            await client.call("cards.learn", charger="CP1", timeout=5)
        assert offline.value.code == "unavailable"
        with pytest.raises(RemoteError, match=r"no charger 'CP9'.*configured: CP1, CP2"):
            await client.call("cards.learn", charger="CP9")
        with pytest.raises(RemoteError, match="timeout must be between 1 and 600"):
            await client.call("cards.learn", charger="CP1", timeout=0)
        async with SimCharger("CP1", gateway_url(gateway), connectors=1) as cp:
            await cp.boot()
            result = await client.call("cards.learn", charger="CP1", timeout=1)
    assert result == {"captured": False, "charger": "CP1", "timeout": 1.0}
