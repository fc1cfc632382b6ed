"""A SIGKILL of the gateway process between its local answers to a 2.0.1 station and the
cloud's return loses no TransactionEvent and sends none twice (the durability rule: each was
committed to the outbox before the station had its answer). The gateway runs as a real
process (``tests.sync.gateway_process``), the cloud is made of the ``ocpp`` library's v201
handlers."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from edgegw.sim.charger201 import SimCharger201
from tests.sync.exactly_once import gateway_process
from tests.sync.test_outage import KNOWN
from tests.v201.test_offline201 import _cloud_server, _events, _stop, _until
from tests.v201.test_relay201 import Cloud201


async def test_a_sigkill_after_local_answers_loses_no_transaction_event(tmp_path: Path) -> None:
    cloud = Cloud201()
    server, port = await _cloud_server(cloud)
    try:
        async with asyncio.timeout(90), gateway_process(tmp_path, cloud.url) as gateway:
            cs = SimCharger201("CP00", gateway.url)
            await cs.connect()
            try:
                await cs.boot()
                tx, _ = await cs.start(1, KNOWN[0])  # relayed live
                await _until(lambda: len(_events(cloud, "CP00")) == 1)
                await _stop(server)  # the cloud goes away
                assert await cs.meter(1, 16.0, 1000.0) == {}  # answered by the gateway
                assert await cs.meter(1, 16.0, 2000.0) == {}
                gateway.process.kill()  # no outbox flush, no clean close
                await cs.wait_closed(10)
                await gateway.process.restart_after_kill()
                await cs.connect()
                # The station sends the last event again, as one does whose answer it lost,
                # flagged offline as a station flags what it kept while offline: a copy.
                last = next(
                    json.loads(t)[3]
                    for t in reversed(cs.sent)
                    if json.loads(t)[2] == "TransactionEvent"
                )
                assert await cs.call("TransactionEvent", {**last, "offline": True}) == {}
                answer = await cs.stop(1)  # answered by the new process
                assert answer == {}
                server, _ = await _cloud_server(cloud, port)  # the cloud returns
                await _until(lambda: len(_events(cloud, "CP00")) >= 4, 30)
                status = await gateway.settled(lambda s: s["queued"] == 0, 10)
            finally:
                await cs.close()
    finally:
        await _stop(server)
    events = _events(cloud, "CP00")
    assert [(e["event_type"], e["seq_no"], e.get("offline")) for e in events] == [
        ("Started", 0, None),
        ("Updated", 1, True),
        ("Updated", 2, True),
        ("Ended", 3, True),
    ]
    assert {e["transaction_info"]["transaction_id"] for e in events} == {tx.transaction_id}
    assert status["queued"] == 0 and status["parked"] == 0, status
    assert gateway.exit_code == 0, gateway.process.log_tail()
    assert "Traceback" not in gateway.process.log_text()


async def test_a_201_backlog_is_delivered_as_2_0_1_when_the_charger_never_returns(
    tmp_path: Path,
) -> None:
    """After a SIGKILL the station stays away: the orphan drain delivers its TransactionEvents
    over an ``ocpp2.0.1`` cloud link (the cloud here speaks nothing else), not a 1.6 one."""
    cloud = Cloud201()
    server, port = await _cloud_server(cloud)
    await _stop(server)  # the cloud is away from the start
    async with asyncio.timeout(90), gateway_process(tmp_path, cloud.url) as gateway:
        cs = SimCharger201("CP01", gateway.url)
        await cs.connect()
        try:
            assert (await cs.boot())["status"] == "Accepted"  # answered by the gateway
            tx, _ = await cs.start(1, None, trigger="CablePluggedIn")
            await cs.stop(1)
            gateway.process.kill()
            await cs.wait_closed(10)
        finally:
            await cs.close()
        await gateway.process.restart_after_kill()
        server, _ = await _cloud_server(cloud, port)
        try:
            await _until(lambda: len(_events(cloud, "CP01")) >= 2, 30)
            status = await gateway.settled(lambda s: s["queued"] == 0, 10)
        finally:
            await _stop(server)
    events = _events(cloud, "CP01")
    assert [(e["event_type"], e["seq_no"], e.get("offline")) for e in events] == [
        ("Started", 0, True),
        ("Ended", 1, True),
    ]
    assert {e["transaction_info"]["transaction_id"] for e in events} == {tx.transaction_id}
    assert all(offered == ["ocpp2.0.1"] for offered in cloud.offered), cloud.offered
    assert status["queued"] == 0
    assert "Traceback" not in gateway.process.log_text()
