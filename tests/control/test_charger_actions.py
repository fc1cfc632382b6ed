"""The charger actions service on a real gateway, and how the control socket words its refusals.

The transports are covered where they are (tests/tui for the control ops, tests/mqtt for the
MQTT commands); here the service itself: the one place a RemoteStopTransaction is built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edgegw.control import ControlClient, ControlServer, RemoteError
from edgegw.services.charger_actions import ChargerActions, LiveSessions, TransactionId
from edgegw.services.errors import (
    BadRequest,
    Conflict,
    Failed,
    NotConnected,
    NotFound,
    ServiceError,
    Unavailable,
)
from edgegw.services.ports import VIA_MQTT
from edgegw.sim.charger import SimCharger
from edgegw.store.journal import EventFilter
from tests.conftest import GatewayFactory, gateway_url

CARD = "04A1B2C3"


class _TextIds:
    """The live state's sessions with their transaction ids as text (as an OCPP 2.0.1 charger
    gives them, and as the live state may keep every id)."""

    def __init__(self, live: LiveSessions, replace: dict[str, str] | None = None) -> None:
        self._live = live
        self._replace = replace or {}

    async def running(self, charger_id: str) -> list[tuple[int, TransactionId]]:
        found = await self._live.running(charger_id)
        return [(c, self._replace.get(str(tx), str(tx))) for c, tx in found]


async def test_a_stop_sends_the_integer_ocpp_16_wants_and_records_it(
    make_gateway: GatewayFactory,
) -> None:
    gateway = await make_gateway(auth={"unknown_cards": "accept"})
    assert gateway.live is not None and gateway.journal is not None
    async with SimCharger("CP1", gateway_url(gateway), connectors=1) as cp:
        await cp.boot()
        await cp.status(1, "Available")
        tx = await cp.tap(CARD)
        assert tx is not None
        await gateway.live.wait_refreshed()
        actions = ChargerActions(
            gateway.call,
            gateway.chargers,
            _TextIds(LiveSessions(gateway.live)),
            gateway.journal.event,
        )
        with pytest.raises(NotFound, match="no session runs on CP1 on connector 2"):
            await actions.stop_sessions("CP1", connector=2)
        (stopped,) = await actions.stop_sessions("CP1", transaction_id=tx, via=VIA_MQTT)
        assert (stopped.connector, stopped.transaction_id, stopped.status) == (
            1,
            str(tx),
            "Accepted",
        )
        assert (await cp.wait_call("RemoteStopTransaction"))["transactionId"] == tx
    (entry,) = await gateway.journal.read(5, EventFilter(kinds=("action.RemoteStopTransaction",)))
    assert entry.data["request"] == {"transactionId": tx} and entry.data["via"] == "MQTT"


async def test_a_transaction_id_that_is_no_integer_is_refused_and_nothing_is_sent(
    make_gateway: GatewayFactory,
) -> None:
    gateway = await make_gateway(auth={"unknown_cards": "accept"})
    assert gateway.live is not None
    async with SimCharger("CP1", gateway_url(gateway), connectors=1) as cp:
        await cp.boot()
        tx = await cp.tap(CARD)
        await gateway.live.wait_refreshed()
        sessions = _TextIds(LiveSessions(gateway.live), {str(tx): "a1b2-c3"})
        actions = ChargerActions(gateway.call, gateway.chargers, sessions, None)
        with pytest.raises(Conflict, match=r"not an OCPP 1\.6 transaction id"):
            await actions.stop_sessions("CP1")
        assert not [a for a, _p in cp.received if a == "RemoteStopTransaction"]


async def test_unknown_offline_and_bad_requests_are_told_apart(
    make_gateway: GatewayFactory,
) -> None:
    gateway = await make_gateway()
    assert gateway.actions is not None
    actions = gateway.actions
    with pytest.raises(NotFound, match=r"no charger 'CP9' is configured \(configured: CP1, CP2\)"):
        await actions.reset("CP9", "Soft")
    with pytest.raises(NotConnected, match="CP2 is not connected to the gateway") as away:
        await actions.unlock("CP2", 1)
    assert away.value.charger_id == "CP2"
    async with SimCharger("CP1", gateway_url(gateway), connectors=1) as cp:
        await cp.boot()
        with pytest.raises(BadRequest, match="type must be 'Soft' or 'Hard'"):
            await actions.reset("CP1", "Sideways")
        with pytest.raises(BadRequest, match="connector must be 1 or more"):
            await actions.unlock("CP1", 0)
        assert (await actions.reset("CP1", " hard ")).request == {"type": "Hard"}


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (BadRequest("bad"), "bad_args"),
        (NotFound("none"), "not_found"),
        (Conflict("no"), "conflict"),
        (Unavailable("later"), "unavailable"),
        (NotConnected("CP1"), "unavailable"),
        (Failed("could not save"), "internal"),
    ],
)
async def test_the_control_socket_answers_a_refusal_with_its_code_and_words(
    tmp_path: Path, error: ServiceError, code: str
) -> None:
    async def refuse(args: dict[str, Any]) -> Any:
        raise error

    server = ControlServer(tmp_path / "c.sock")
    server.register("refuse", refuse)
    async with server, await ControlClient.connect(tmp_path / "c.sock") as client:
        with pytest.raises(RemoteError) as refused:
            await client.call("refuse")
    assert refused.value.code == code and refused.value.message == str(error)
