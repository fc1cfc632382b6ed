"""A charger whose session is still owed to the cloud connects again with another OCPP version:
refused until the session's messages are through (the cloud link speaks the old version), and
a 1.6 backlog never goes over a 2.x cloud link. Real sockets on port 0."""

from __future__ import annotations

from edgegw.ocpp.events import Event
from edgegw.proxy.link import ToCloud
from edgegw.sim.charger import SimCharger
from edgegw.sim.charger201 import SimCharger201
from edgegw.store.outbox import QueuedMessage
from tests.conftest import GatewayFactory, gateway_url
from tests.v201.test_link201 import make_link
from tests.v201.test_relay201 import CHARGERS

START16 = {"connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": "2026-12-07T10:00:00Z"}


async def test_a_201_connection_is_refused_while_16_messages_are_owed(
    make_gateway: GatewayFactory,
) -> None:
    gateway = await make_gateway(cloud_url="ws://127.0.0.1:9/csms", chargers=CHARGERS)
    url = gateway_url(gateway)
    async with SimCharger("CS201", url) as cp:  # first as a 1.6 charger, the cloud away
        await cp.boot()
        await cp.start_transaction(1, "T")  # answered by the gateway, queued for the cloud
    session = gateway.sessions.get("CS201") or gateway.relays.get("CS201")
    assert session is not None and session.owes_cloud  # kept for its queued StartTransaction
    cs = SimCharger201("CS201", url)
    await cs.connect()
    try:
        assert await cs.wait_closed(timeout=10) == 1002
        assert cs.close_reason == "subprotocol ocpp1.6 required: its ocpp1.6 messages are owed"
    finally:
        await cs.close()
    assert session.upstream is not None and session.upstream.subprotocol == "ocpp1.6"
    assert session.link.version == "ocpp1.6"
    async with SimCharger("CS201", url) as cp:  # the same version is served as before
        assert (await cp.boot())["status"] == "Accepted"


def test_a_2_x_link_never_sends_a_16_backlog_nor_is_kept_for_it() -> None:
    link = make_link("ocpp2.0.1")
    queued = QueuedMessage(1, "CS1", "StartTransaction", START16, 0.0, transaction_id=1)
    link.outbox_loaded([queued], more=False)
    out = link.cloud_connected()
    assert not [c for c in out if isinstance(c, ToCloud)]
    assert not link.owes_cloud  # its cloud link is not held open for a backlog it cannot send


async def test_a_connection_refused_for_its_version_is_never_seen_as_connected(
    make_gateway: GatewayFactory,
) -> None:
    gateway = await make_gateway(cloud_url="ws://127.0.0.1:9/csms", chargers=CHARGERS)
    url = gateway_url(gateway)
    async with SimCharger("CS201", url) as cp:  # a 1.6 charger, the cloud away: owed messages
        await cp.boot()
        await cp.start_transaction(1, "T")
    await gateway.wait_charger("CS201", connected=False)
    heard: list[Event] = []
    assert gateway.hub is not None
    gateway.hub = gateway.hub.extended(_Heard(heard))
    cs = SimCharger201("CS201", url)
    await cs.connect()
    try:
        assert await cs.wait_closed(timeout=10) == 1002
    finally:
        await cs.close()
    assert heard == []  # never announced (nor recorded: charger_seen goes with the event)
    async with SimCharger("CS201", url) as cp:  # served again: its events are heard
        await cp.heartbeat()
    await gateway.wait_charger("CS201", connected=False)
    kinds = [type(e).__name__ for e in heard if e.charger_id == "CS201"]
    assert kinds == ["ChargerConnected", "ChargerDisconnected"]  # the session's own hub hears
    # its calls; the one replaced here hears connections only


class _Heard:
    def __init__(self, into: list[Event]) -> None:
        self._into = into

    def handle(self, event: Event) -> None:
        self._into.append(event)
