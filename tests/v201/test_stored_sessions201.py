"""The charger actions without live state read the running sessions from the store
(:class:`~edgegw.services.charger_actions.StoredSessions`): a 2.x charger's sessions, kept
by their string id in ``tx_ref``, are among them (they were skipped: stopping a 2.x charger's
session said no session runs). Real gateway, real sockets, a simulated 2.0.1 station."""

from __future__ import annotations

from edgegw.services.charger_actions import ChargerActions, Stopped, StoredSessions
from edgegw.sim.charger201 import SimCharger201
from edgegw.store import sessions201
from tests.conftest import GatewayFactory, gateway_url
from tests.v201.test_offline201 import CHARGERS, REVERSED, _enrol


async def test_a_201_stations_running_sessions_are_read_from_the_store(
    make_gateway: GatewayFactory,
) -> None:
    gateway = await make_gateway(chargers=CHARGERS)
    await _enrol(gateway)
    assert gateway.store is not None
    stored = StoredSessions(gateway.store)
    actions = ChargerActions(gateway.call, gateway.chargers, stored, None)
    async with SimCharger201("CS201", gateway_url(gateway)) as cs:
        await cs.boot()
        await cs.start(1, REVERSED)
        await cs.stop(1)  # ended: not running
        tx, _ = await cs.start(2, REVERSED)
        assert await stored.running("CS201") == [(2, tx.transaction_id)]
        assert await stored.running("CP-other") == []
        stopped = await actions.stop_sessions("CS201")
    assert stopped == [Stopped(2, tx.transaction_id, "Accepted", "RequestStopTransaction")]
    assert await sessions201.running_201(gateway.store, "CS201") == [
        ("CS201", tx.transaction_id, 2)
    ]
