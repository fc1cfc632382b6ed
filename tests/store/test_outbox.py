"""The durable outbox: group commits, order, local ids, re-sent messages, parking."""

import asyncio
from pathlib import Path

import aiosqlite

from edgegw.store.outbox import LOCAL_ID_BASE, GroupWriter, Write
from edgegw.store.store import Store

START = {
    "connectorId": 1,
    "idTag": "AABBCCDD",
    "meterStart": 0,
    "timestamp": "2026-01-01T10:00:00Z",
}


def meter(tx: int, value: int) -> dict[str, object]:
    return {
        "connectorId": 1,
        "transactionId": tx,
        "meterValue": [
            {"timestamp": "2026-01-01T10:00:00Z", "sampledValue": [{"value": str(value)}]}
        ],
    }


async def test_queue_survives_a_crash_in_order_with_local_ids(tmp_path: Path) -> None:
    path = tmp_path / "db"
    store = await Store.open(path)
    first, tx = await store.outbox.enqueue_start("CP1", START)
    assert first is not None and tx >= LOCAL_ID_BASE
    # Many writers at once share commits; each one is answered after its own commit.
    results = await asyncio.gather(
        *(store.outbox.enqueue("CP1", "MeterValues", meter(tx, v)) for v in range(50))
    )
    assert all(r is not None for r in results)
    await store.db.conn.close()  # killed: no clean close

    store = await Store.open(path)
    try:
        messages, more = await store.outbox.load("CP1", limit=20)
        assert (
            more and messages[0].action == "StartTransaction" and messages[0].transaction_id == tx
        )
        rest, more = await store.outbox.load("CP1", after=messages[-1].seq, limit=100)
        assert not more and len(messages) + len(rest) == 51
        values = [
            m.payload["meterValue"][0]["sampledValue"][0]["value"] for m in messages[1:] + rest
        ]
        assert values == [str(v) for v in range(50)]  # commit order is queue order
        assert await store.outbox.transaction_ids("CP1") == {tx: None}
        # The next local id never repeats, even after the crash.
        _, tx2 = await store.outbox.enqueue_start("CP1", {**START, "connectorId": 2})
        assert tx2 == tx + 1
    finally:
        await store.close()


async def test_a_resent_message_is_recognised_before_and_after_delivery(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "db")
    try:
        first, tx = await store.outbox.enqueue_start("CP1", START)
        again, tx_again = await store.outbox.enqueue_start("CP1", dict(START))
        assert first is not None and again is None and tx_again == tx
        assert await store.outbox.enqueue("CP1", "MeterValues", meter(tx, 1)) is not None
        assert await store.outbox.enqueue("CP1", "MeterValues", meter(tx, 1)) is None
        # Another charger may send the very same payload: it is its own message.
        assert await store.outbox.enqueue("CP2", "MeterValues", meter(tx, 1)) is not None
        await store.outbox.delivered(first, 42)
        assert await store.outbox.transaction_ids("CP1") == {tx: 42}
        assert (await store.outbox.enqueue_start("CP1", START))[0] is None  # delivered, known
        messages, _ = await store.outbox.load("CP1")
        assert [m.action for m in messages] == ["MeterValues"]
    finally:
        await store.close()


async def test_parked_messages_are_kept_visible_and_can_be_requeued(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "db")
    try:
        start, tx = await store.outbox.enqueue_start("CP1", START)
        assert start is not None
        stop = await store.outbox.enqueue(
            "CP1", "StopTransaction", {"transactionId": tx, "meterStop": 9, "timestamp": "x"}
        )
        assert stop is not None
        start.attempts = 5
        await store.outbox.failed(start, "InternalError", parked=True)
        (row,) = await store.outbox.status()
        assert (row.charger_id, row.queued, row.parked) == ("CP1", 1, 1)
        (parked,) = await store.outbox.parked()
        assert parked.action == "StartTransaction" and parked.last_error == "InternalError"
        assert await store.outbox.parked_transactions("CP1") == {tx}
        assert await store.outbox.requeue_parked("CP1") == 1
        messages, _ = await store.outbox.load("CP1")
        assert [m.action for m in messages] == ["StartTransaction", "StopTransaction"]
    finally:
        await store.close()


async def test_a_link_loads_only_the_id_mappings_it_may_still_need(tmp_path: Path) -> None:
    now = [1_000_000.0]
    store = await Store.open(tmp_path / "db", clock=lambda: now[0])
    try:
        # Three offline starts long ago: one delivered and closed, one delivered and still
        # open (a car parked for weeks), one the cloud has not accepted yet.
        closed, closed_id = await store.outbox.enqueue_start("CP1", START)
        parked, parked_id = await store.outbox.enqueue_start("CP1", {**START, "connectorId": 2})
        _, waiting_id = await store.outbox.enqueue_start("CP1", {**START, "connectorId": 3})
        assert closed is not None and parked is not None
        await store.outbox.delivered(closed, 41)
        await store.outbox.delivered(parked, 42)
        for local_id, connector in ((closed_id, 1), (parked_id, 2)):
            await store.transaction_started(
                "CP1", {**START, "connectorId": connector}, local_id, origin="gateway"
            )
        await store.transaction_stopped(
            "CP1", {"transactionId": closed_id, "meterStop": 9, "timestamp": START["timestamp"]}
        )
        assert len(await store.outbox.transaction_ids("CP1")) == 3
        now[0] += 31 * 86400  # a month later
        _, recent_id = await store.outbox.enqueue_start("CP1", {**START, "connectorId": 4})
        assert await store.outbox.transaction_ids("CP1") == {
            parked_id: 42,
            waiting_id: None,
            recent_id: None,
        }
    finally:
        await store.close()


async def test_a_failed_write_leaves_nothing_and_the_others_of_its_batch_commit(
    tmp_path: Path,
) -> None:
    """Each queued write runs in its own SAVEPOINT: what a failing write already executed is
    rolled back with it, while the writes sharing its commit are kept."""
    path = tmp_path / "db"
    store = await Store.open(path)
    writer = GroupWriter(store.db, "test")

    def put(name: str) -> Write:
        async def write(conn: aiosqlite.Connection) -> str:
            await conn.execute("INSERT INTO counters (name, value) VALUES (?, 1)", (name,))
            return name

        return write

    async def half_then_fail(conn: aiosqlite.Connection) -> None:
        await conn.execute("INSERT INTO counters (name, value) VALUES ('half', 1)")
        raise ValueError("the write fails after its first statement")

    try:
        # Queued before the writer task runs: all four share one commit.
        results = await asyncio.gather(
            writer.write(put("before")),
            writer.write(half_then_fail),
            writer.write(put("after")),
            return_exceptions=True,
        )
        assert results[0] == "before" and results[2] == "after"
        assert isinstance(results[1], ValueError)
    finally:
        await writer.close()
        await store.close()
    store = await Store.open(path)
    try:
        cursor = await store.db.conn.execute("SELECT name FROM counters ORDER BY name")
        names = [r[0] for r in await cursor.fetchall()]
        assert names == ["after", "before"]  # 'half' was told it failed: it left nothing
    finally:
        await store.close()


async def test_a_lone_failed_write_leaves_nothing(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "db")
    writer = GroupWriter(store.db, "test")

    async def half_then_fail(conn: aiosqlite.Connection) -> None:
        await conn.execute("INSERT INTO counters (name, value) VALUES ('half', 1)")
        raise ValueError("the write fails after its first statement")

    try:
        try:
            await writer.write(half_then_fail)
        except ValueError:
            pass
        else:
            raise AssertionError("the caller must be told its write failed")
        cursor = await store.db.conn.execute("SELECT name FROM counters")
        assert await cursor.fetchall() == []
    finally:
        await writer.close()
        await store.close()


async def test_deliveries_of_many_chargers_share_a_write_and_survive_a_crash(
    tmp_path: Path,
) -> None:
    path = tmp_path / "db"
    store = await Store.open(path)
    queued = []
    for charger in ("CP1", "CP2", "CP3"):
        start, tx = await store.outbox.enqueue_start(charger, START)
        assert start is not None
        queued.append((start, 100 + len(queued)))
        for value in range(20):
            message = await store.outbox.enqueue(charger, "MeterValues", meter(tx, value))
            assert message is not None
            queued.append((message, None))
    deliveries = [
        asyncio.ensure_future(store.outbox.delivered(m, cloud_id))  # noqa: TID251
        for m, cloud_id in queued
    ]
    await asyncio.sleep(0)  # each has joined the shared write
    deliveries[5].cancel()  # a charger's session ending must not cancel the others' write
    await asyncio.gather(*deliveries, return_exceptions=True)
    assert all(
        not d.cancelled() and d.exception() is None for i, d in enumerate(deliveries) if i != 5
    )
    await store.outbox.delivered(queued[-1][0], None)  # the writer still takes deliveries
    await store.db.conn.close()  # killed: no clean close

    store = await Store.open(path)
    try:
        for charger, cloud_id in (("CP1", 100), ("CP2", 121), ("CP3", 142)):
            assert await store.outbox.load(charger) == ([], False)
            assert list((await store.outbox.transaction_ids(charger)).values()) == [cloud_id]
    finally:
        await store.close()
