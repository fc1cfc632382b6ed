"""A 2.0.1 Started without an energy register leaves the session's meter start missing; the
first later reading fills it. Which sessions still wait for it must survive the station
reconnecting and the gateway restarting between Started and that reading: otherwise the
session ends with its energy unknown although the station reported every reading (a reviewer's
repro: the gateway kept it only in the connection's memory).

Real gateway, real sockets on port 0; a cloud of the ``ocpp`` library's v201 handlers where
the events are relayed.
"""

from __future__ import annotations

from pathlib import Path

from edgegw.sim.charger201 import SimCharger201, Transaction201
from edgegw.store import sessions201
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
from tests.v201.test_sessions201 import _sessions


async def test_the_meter_start_is_the_first_reading_after_a_reconnect(
    make_gateway: GatewayFactory,
) -> None:
    gateway = await make_gateway(chargers=CHARGERS)  # cloudless: answered by the gateway
    await _enrol(gateway)
    async with SimCharger201("CS201", gateway_url(gateway)) as cs:
        await cs.boot()
        tx, _ = await cs.start(1, REVERSED)  # no meter value in Started
    async with SimCharger201("CS201", gateway_url(gateway)) as again:
        await again.boot()
        again.transactions[1] = tx
        again.seq_no = 1
        await again.meter(1, 16.0, 1000.0)  # the first reading: the meter start
        await again.meter(1, 16.0, 4000.0)
        await again.stop(1)
    [session] = await _sessions(gateway.config, gateway.store)
    assert session.transaction_id == tx.transaction_id
    assert (session.meter_start, session.meter_stop, session.energy_wh) == (1000, 4000, 3000)


async def test_a_relayed_sessions_meter_start_after_a_reconnect(
    make_gateway: GatewayFactory,
) -> None:
    cloud = Cloud201()
    server, _ = await _cloud_server(cloud)
    gateway = await make_gateway(cloud_url=cloud.url, chargers=CHARGERS)
    await _enrol(gateway)
    try:
        async with SimCharger201("CS201", gateway_url(gateway)) as cs:
            await cs.boot()
            tx, _ = await cs.start(2, REVERSED)
        async with SimCharger201("CS201", gateway_url(gateway)) as again:
            await again.boot()
            again.transactions[2] = tx
            again.seq_no = 1
            await again.meter(2, 16.0, 1500.0)
            await again.meter(2, 16.0, 2250.0)
            await again.stop(2)
        await _until(lambda: len(_events(cloud)) == 4)
    finally:
        await _stop(server)
    [session] = await _sessions(gateway.config, gateway.store)
    assert (session.meter_start, session.meter_stop, session.energy_wh) == (1500, 2250, 750)


async def test_the_meter_start_is_the_first_reading_after_a_gateway_restart(
    make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    """The last run recorded the Started (no register) and stopped before any reading."""
    path = tmp_path / "site.db"
    store = await Store.open(path)
    start = sessions201.Start201("tx-9", 1, REVERSED, None, "2026-12-07T10:00:00Z", False)
    assert await sessions201.write_start(store, "CS201", start, 1_700_000_000.0)
    await store.close()

    gateway = await make_gateway(chargers=CHARGERS, store={"path": str(path)})
    async with SimCharger201("CS201", gateway_url(gateway)) as cs:
        await cs.boot()
        cs.transactions[1] = Transaction201("tx-9", 1)  # running since before the restart
        cs.seq_no = 1
        await cs.meter(1, 16.0, 2000.0)
        await cs.meter(1, 16.0, 2600.0)
        await cs.stop(1)
    [session] = await _sessions(gateway.config, gateway.store)
    assert session.transaction_id == "tx-9"
    assert (session.meter_start, session.meter_stop, session.energy_wh) == (2000, 2600, 600)


async def test_a_reading_never_replaces_a_meter_start_the_record_has(
    make_gateway: GatewayFactory,
) -> None:
    """After a reconnect the gateway asks the record once: a session whose Started had its
    register keeps it (the first reading after is not its start)."""
    gateway = await make_gateway(chargers=CHARGERS)
    await _enrol(gateway)
    async with SimCharger201("CS201", gateway_url(gateway)) as cs:
        await cs.boot()
        tx, _ = await cs.start(1, REVERSED)
        await cs.meter(1, 16.0, 1000.0)  # its meter start
    async with SimCharger201("CS201", gateway_url(gateway)) as again:
        await again.boot()
        again.transactions[1] = tx
        again.seq_no = 2
        await again.meter(1, 16.0, 2500.0)
        await again.meter(1, 16.0, 4000.0)
        await again.stop(1)
    [session] = await _sessions(gateway.config, gateway.store)
    assert (session.meter_start, session.meter_stop, session.energy_wh) == (1000, 4000, 3000)
