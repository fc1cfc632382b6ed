"""A cloudless site (the gateway is the CSMS): a 2.0.1 TransactionEvent the gateway answered is
on disk before the station has the answer (the durability rule, as for 1.6 standalone). A
SIGKILL the instant the station has its answer loses no session: the Started is recorded, the
Ended closes it. The gateway runs as a real process (``tests.sync.gateway_process``)."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from edgegw.proxy.frames import CallError, make_call, make_result
from edgegw.proxy.session_records import Sessions201
from edgegw.sim.charger201 import SimCharger201
from edgegw.store.sessions201 import open_201
from edgegw.store.store import Store
from tests.sync.gateway_process import GatewayProcess, NotifySocket, free_port
from tests.sync.test_outage import KNOWN, enrol_cards, write_config


@asynccontextmanager
async def standalone_gateway(tmp_path: Path) -> AsyncIterator[tuple[GatewayProcess, str]]:
    """``edgegw run`` with the outage test's configuration less its ``[cloud]``, started."""
    await enrol_cards(tmp_path / "edgegw.db")
    port = free_port()
    config = write_config(tmp_path, port, "ws://127.0.0.1:9/unused")
    text, cut = re.subn(r"\[cloud\]\n(?:[^\[\n][^\n]*\n)*\n", "", config.read_text())
    assert cut == 1 and "[cloud]" not in text
    config.write_text(text)
    notify = NotifySocket(tmp_path / "notify.sock")
    process = GatewayProcess(config, notify=notify, log_path=tmp_path / "edgegw.log")
    try:
        await process.start()
        yield process, f"ws://127.0.0.1:{port}/ocpp"
    finally:
        try:
            await process.stop()
        finally:
            notify.close()


def _session(db: Path, charger_id: str, tx_ref: str) -> tuple[str, int, str | None] | None:
    """(id_tag, meter_start, stopped_at) of the recorded 2.x session, None if it is not."""
    conn = sqlite3.connect(db)
    try:
        row = conn.execute(
            "SELECT id_tag, meter_start, stopped_at FROM transactions"
            " WHERE charger_id = ? AND tx_ref = ?",
            (charger_id, tx_ref),
        ).fetchone()
    finally:
        conn.close()
    return None if row is None else (str(row[0]), int(row[1]), row[2])


async def test_a_kill_right_after_a_standalone_answer_loses_no_201_session(
    tmp_path: Path,
) -> None:
    db = tmp_path / "edgegw.db"
    async with asyncio.timeout(90), standalone_gateway(tmp_path) as (process, url):
        cs = SimCharger201("CP00", url)
        try:
            await cs.connect()
            await cs.boot()
            tx, started = await cs.start(1, KNOWN[0])
            process.kill()  # the instant the station has its answer
            assert started["idTokenInfo"]["status"] == "Accepted"
            await cs.wait_closed(10)
            await process.restart_after_kill()
            assert _session(db, "CP00", tx.transaction_id) == (KNOWN[0], 0, None)

            await cs.connect()
            cs.transactions[1].energy_wh = 4200.0
            assert await cs.stop(1) == {}
            process.kill()
            await cs.wait_closed(10)
            await process.restart_after_kill()
            recorded = _session(db, "CP00", tx.transaction_id)
            assert recorded is not None and recorded[2] is not None, recorded
        finally:
            await cs.close()
    assert "Traceback" not in process.log_text()


STARTED = {
    "eventType": "Started",
    "timestamp": "2026-12-07T10:00:00.000Z",
    "triggerReason": "Authorized",
    "seqNo": 0,
    "transactionInfo": {"transactionId": "tx-1"},
    "evse": {"id": 1, "connectorId": 1},
    "idToken": {"idToken": KNOWN[0], "type": "ISO14443"},
}


async def test_the_standalone_answer_waits_for_the_record_and_a_failed_one_is_an_error(
    tmp_path: Path,
) -> None:
    store = await Store.open(tmp_path / "s.db")
    try:
        sessions = Sessions201("CP00", store, time.time)
        call = make_call("m1", "TransactionEvent", STARTED)
        answer = make_result("m1", {"idTokenInfo": {"status": "Accepted"}})
        assert await sessions.answered_standalone(call, answer) is answer
        assert await open_201(store, "CP00", "tx-1")  # on disk when the answer is returned
        heartbeat = make_result("m2", {"currentTime": STARTED["timestamp"]})
        assert await sessions.answered_standalone(make_call("m2", "Heartbeat", {}), heartbeat) is (
            heartbeat
        )
        await store.db.conn.execute("DROP TABLE transactions")  # a write that cannot succeed
        again = make_call(
            "m3", "TransactionEvent", {**STARTED, "transactionInfo": {"transactionId": "tx-2"}}
        )
        failed = await sessions.answered_standalone(again, make_result("m3", {}))
        assert isinstance(failed, CallError) and failed.code == "InternalError", failed
    finally:
        await store.close()
