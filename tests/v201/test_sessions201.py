"""A 2.x charger's sessions in the site's records (``sessions list``, reports, the TUI), and
StopTransactionOnInvalidId for a 2.x transaction the gateway answered offline.

Real gateway, real sockets on port 0: the simulated 2.0.1 station, a cloud made of the ``ocpp``
library's v201 handlers (``Cloud201``) or of raw frames where it must refuse a token.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from edgegw.config import Config
from edgegw.sim.charger201 import SimCharger201
from edgegw.store.sessions import CardResolver, Session, SessionMode, SessionQueries, SessionState
from edgegw.store.sessions201 import Start201, Stop201, write_start, write_stop
from edgegw.store.store import Store
from tests.conftest import GatewayFactory, gateway_url
from tests.v201.test_offline201 import (
    CHARGERS,
    REVERSED,
    _cloud_server,
    _enrol,
    _events,
    _stop,
    _until,
)
from tests.v201.test_relay201 import Cloud201


async def _sessions(config: Config, store: Store | None) -> list[Session]:
    from edgegw.store.sessions import open_read_only

    assert store is not None
    await store.bookkeeping.settled()
    async with open_read_only(config.store.path) as conn:
        queries = SessionQueries(conn, await CardResolver.load(conn, config))
        return await queries.sessions()


async def _unreachable_port() -> int:
    server = await serve(lambda ws: ws.close(), "127.0.0.1", 0)
    port = int(server.sockets[0].getsockname()[1])
    await _stop(server)  # a known port, nobody listens
    return port


async def test_a_relayed_201_session_is_recorded_with_its_string_id_and_energy(
    make_gateway: GatewayFactory,
) -> None:
    cloud = Cloud201()
    server, _ = await _cloud_server(cloud)
    gateway = await make_gateway(cloud_url=cloud.url, chargers=CHARGERS)
    await _enrol(gateway)
    try:
        async with SimCharger201("CS201", gateway_url(gateway)) as cs:
            await cs.boot()
            tx, _ = await cs.start(2, REVERSED)  # its Started carries no meter value
            await cs.meter(2, 16.0, 1500.0)  # the first reading: the meter start
            await cs.meter(2, 16.0, 2250.0)
            open_now = await _sessions(gateway.config, gateway.store)
            assert [(s.transaction_id, s.state) for s in open_now] == [
                (tx.transaction_id, SessionState.OPEN)
            ]
            await cs.stop(2, "EVDisconnected")
            await _until(lambda: len(_events(cloud)) == 4)
    finally:
        await _stop(server)
    [session] = await _sessions(gateway.config, gateway.store)
    assert session.charger_id == "CS201"
    assert session.connector_id == 2  # the EVSE
    assert session.transaction_id == tx.transaction_id
    assert session.cloud_transaction_id == tx.transaction_id  # never remapped
    assert session.mode is SessionMode.CLOUD
    assert session.id_tag == REVERSED
    assert session.card is not None and session.card.owner == "tenant"
    assert (session.meter_start, session.meter_stop, session.energy_wh) == (1500, 2250, 750)
    assert session.state is SessionState.FINISHED
    assert session.stop_reason == "EVDisconnected"
    assert session.to_json()["transaction_id"] == tx.transaction_id


async def test_a_201_session_answered_offline_is_recorded_once_as_offline(
    make_gateway: GatewayFactory,
) -> None:
    cloud = Cloud201()
    port = await _unreachable_port()
    gateway = await make_gateway(cloud_url=f"ws://127.0.0.1:{port}/csms", chargers=CHARGERS)
    await _enrol(gateway)
    async with SimCharger201("CS201", gateway_url(gateway)) as cs:
        await cs.boot()
        tx, answer = await cs.start(1, REVERSED)
        assert answer == {"idTokenInfo": {"status": "Accepted"}}  # the gateway's
        await cs.meter(1, 10.0, 100.0)
        await cs.stop(1)
        offline = await _sessions(gateway.config, gateway.store)
        assert [(s.transaction_id, s.mode, s.energy_wh) for s in offline] == [
            (tx.transaction_id, SessionMode.OFFLINE, 0)
        ]
        # The cloud returns: the events are delivered, and recorded nothing twice.
        server, _ = await _cloud_server(cloud, port)
        try:
            await _until(lambda: len(_events(cloud)) == 3)
        finally:
            await _stop(server)
    after = await _sessions(gateway.config, gateway.store)
    assert [(s.transaction_id, s.mode, s.state) for s in after] == [
        (tx.transaction_id, SessionMode.OFFLINE, SessionState.FINISHED)
    ]


async def test_a_cloudless_site_records_201_sessions_as_standalone(
    make_gateway: GatewayFactory,
) -> None:
    gateway = await make_gateway(chargers=CHARGERS)
    await _enrol(gateway)
    async with SimCharger201("CS201", gateway_url(gateway)) as cs:
        await cs.boot()
        tx, _ = await cs.start(1, REVERSED)
        await cs.stop(1)  # no reading at all: the energy is unknown, never the register
    [session] = await _sessions(gateway.config, gateway.store)
    assert (session.transaction_id, session.mode) == (tx.transaction_id, SessionMode.STANDALONE)
    assert session.state is SessionState.FINISHED
    assert session.energy_wh is None


async def test_the_201_writes_are_idempotent(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "s.db")
    try:
        start = Start201("tx-1", 1, "CARD", 10, "2026-12-07T10:00:00Z", queued=True)
        assert await write_start(store, "CS", start, 1.0)
        assert not await write_start(store, "CS", start, 2.0)  # a copy
        assert await write_start(store, "CS2", start, 2.0)  # another charger's own tx-1
        stop = Stop201("tx-1", 30, "2026-12-07T11:00:00Z", "Local")
        assert await write_stop(store, "CS", stop, 3.0)
        assert not await write_stop(store, "CS", stop, 4.0)  # stopped already
        rows = await store.db.conn.execute_fetchall(
            "SELECT charger_id, transaction_id, tx_ref, meter_start, meter_stop FROM transactions"
        )
        assert sorted(map(tuple, rows)) == [
            ("CS", None, "tx-1", 10, 30),
            ("CS2", None, "tx-1", 10, None),
        ]
    finally:
        await store.close()


# ------------------------------------------------------------------ StopTxOnInvalidId


async def _refusing_cloud(port: int, heard: list[Any]) -> Any:
    """A 2.0.1 cloud that refuses every idToken of a TransactionEvent (Invalid)."""

    async def handler(ws: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for text in ws:
                frame = json.loads(text)
                heard.append(frame)
                if frame[0] != 2:
                    continue
                answer: dict[str, Any] = {}
                if frame[2] == "BootNotification":
                    answer = {"currentTime": "2026-12-07T10:00:00Z", "interval": 300}
                    answer["status"] = "Accepted"
                elif frame[2] == "TransactionEvent" and "idToken" in frame[3]:
                    answer = {"idTokenInfo": {"status": "Invalid"}}
                await ws.send(json.dumps([3, frame[1], answer]))

    protocols = [Subprotocol("ocpp2.0.1")]
    return await serve(handler, "127.0.0.1", port, subprotocols=protocols)


def _replayed(heard: list[Any]) -> int:
    return sum(1 for f in heard if f[0] == 2 and f[2] == "TransactionEvent")


async def test_a_token_the_cloud_refuses_later_stops_the_running_201_transaction(
    make_gateway: GatewayFactory,
) -> None:
    port = await _unreachable_port()
    gateway = await make_gateway(cloud_url=f"ws://127.0.0.1:{port}/csms", chargers=CHARGERS)
    await _enrol(gateway)
    heard: list[Any] = []
    async with SimCharger201("CS201", gateway_url(gateway)) as cs:
        await cs.boot()
        tx, answer = await cs.start(1, REVERSED)
        assert answer["idTokenInfo"]["status"] == "Accepted"  # offline: the gateway's word
        ended, _ = await cs.start(2, REVERSED)
        await cs.stop(2)  # this one ended before the cloud could refuse it
        server = await _refusing_cloud(port, heard)
        try:
            await _until(lambda: any(a == "RequestStopTransaction" for a, _ in cs.calls_received))
            await _until(lambda: _replayed(heard) == 3)
        finally:
            await _stop(server)
    stops = [p for a, p in cs.calls_received if a == "RequestStopTransaction"]
    assert stops == [{"transactionId": tx.transaction_id}]  # the running one only
    assert gateway.store is not None
    await gateway.store.bookkeeping.settled()
    rows = await gateway.store.db.conn.execute_fetchall(
        "SELECT message FROM events WHERE kind = 'auth.refused_after_offline_start' ORDER BY id"
    )
    messages = [r[0] for r in rows]
    assert len(messages) == 2
    assert tx.transaction_id in messages[0] and messages[0].endswith("stopping it")
    assert ended.transaction_id in messages[1] and messages[1].endswith("it had ended")


async def test_the_site_setting_off_lets_a_refused_201_transaction_finish(
    make_gateway: GatewayFactory,
) -> None:
    port = await _unreachable_port()
    gateway = await make_gateway(
        cloud_url=f"ws://127.0.0.1:{port}/csms",
        chargers=CHARGERS,
        auth={"stop_transaction_on_invalid_id": False},
    )
    await _enrol(gateway)
    heard: list[Any] = []
    async with SimCharger201("CS201", gateway_url(gateway)) as cs:
        await cs.boot()
        await cs.start(1, REVERSED)
        server = await _refusing_cloud(port, heard)
        try:
            await _until(lambda: _replayed(heard) == 1)
            assert gateway.store is not None
            store = gateway.store

            async def said() -> list[Any]:
                await store.bookkeeping.settled()
                return list(
                    await store.db.conn.execute_fetchall(
                        "SELECT message FROM events WHERE kind = 'auth.refused_after_offline_start'"
                    )
                )

            for _ in range(500):  # polling the records (up to 10 s), not a timed assertion
                rows = await said()
                if rows:
                    break
                await asyncio.sleep(0.02)
        finally:
            await _stop(server)
    assert rows[0][0].endswith("it may finish")
    assert not [a for a, _ in cs.calls_received if a == "RequestStopTransaction"]


async def test_a_delivered_event_records_its_session_if_the_answer_did_not(
    tmp_path: Path,
) -> None:
    """The gateway stopped between answering (and queuing) an event and recording it: the
    outbox's delivery after the restart records the session, once."""
    from edgegw.proxy.session_records import Sessions201

    store = await Store.open(tmp_path / "s.db")
    try:
        sessions = Sessions201("CS", store, lambda: 5.0)
        started = {
            "eventType": "Started",
            "timestamp": "2026-12-07T10:00:00Z",
            "triggerReason": "Authorized",
            "seqNo": 0,
            "transactionInfo": {"transactionId": "tx-9"},
            "evse": {"id": 1, "connectorId": 1},
            "idToken": {"idToken": "CARD", "type": "ISO14443"},
            "offline": True,
        }
        ended = {**started, "eventType": "Ended", "seqNo": 1}
        del ended["idToken"]
        for payload in (started, started, ended, ended):  # copies change nothing
            sessions.delivered("TransactionEvent", payload)
        await store.bookkeeping.settled()
        rows = await store.db.conn.execute_fetchall(
            "SELECT tx_ref, origin, queued, id_tag, stopped_at FROM transactions"
        )
        assert [tuple(r) for r in rows] == [("tx-9", "gateway", 1, "CARD", "2026-12-07T10:00:00Z")]
    finally:
        await store.close()
