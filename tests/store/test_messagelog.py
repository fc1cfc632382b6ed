"""The message log in memory: bounded by frames and bytes, unbreakable, dumped and read back."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
from pathlib import Path

from edgegw.config import StoreConfig
from edgegw.control.message_ops import MessageOps
from edgegw.store.messagelog import BLOCK_FRAMES, MessageLog, dump_path, read_dump
from edgegw.store.schema import MIGRATIONS
from edgegw.store.store import Store

LONE = '[2,"\ud800","Foo",{}]'  # what json.loads makes of the valid JSON [2,"\ud800","Foo",{}]


def clock() -> float:
    return 1_767_225_600.0


def test_the_ring_keeps_the_newest_frames_newest_first() -> None:
    log = MessageLog(size=3, max_bytes=2**20, clock=clock)
    for i in range(5):
        log.append("CP1" if i % 2 else "CP2", "charger>", f'[2,"{i}","Heartbeat",{{}}]')
    assert [f.frame for f in log.newest()] == [
        '[2,"4","Heartbeat",{}]',
        '[2,"3","Heartbeat",{}]',
        '[2,"2","Heartbeat",{}]',
    ]
    assert [f.seq for f in log.newest(charger_id="CP1")] == [4]
    assert [f.seq for f in log.newest(limit=1, before=5)] == [4]
    assert [f.seq for f in log.newest(before=4)] == [3]


def test_big_frames_are_bounded_by_bytes_not_just_by_count() -> None:
    log = MessageLog(size=20_000, max_bytes=1_000_000, clock=clock)
    for _ in range(200):  # 13 MB of frames that do not compress (random text)
        data = base64.b64encode(os.urandom(48_750)).decode()
        log.append("CP1", "charger>", '[2,"x","DataTransfer",{"data":"' + data + '"}]')
    assert log.bytes <= 1_000_000
    assert 15 <= len(log) <= 25
    assert log.dropped_for_bytes == 200 - len(log)
    log.append("CP1", "charger>", "B" * 3_000_000)  # bigger than the whole budget: cut to fit
    (kept,) = log.newest(limit=1)
    assert kept.frame.startswith("BBB") and kept.frame.endswith("cut to fit the log]")
    assert log.bytes <= 1_000_000


def meter_values(i: int) -> str:
    sampled = [
        {"value": str(1000 + i * 7), "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
        *({"value": "16.0", "measurand": "Current.Import", "phase": p, "unit": "A"} for p in "123"),
    ]
    payload = {
        "connectorId": 1 + i % 2,
        "transactionId": i % 2_000,
        "meterValue": [{"timestamp": "2026-01-01T00:00:00Z", "sampledValue": sampled}],
    }
    return json.dumps([2, f"m{i}", "MeterValues", payload])


def test_a_full_ring_at_a_large_site_is_kept_compressed_and_read_back_exactly() -> None:
    """20,000 frames of 2,000 chargers: about a megabyte, not the 12 MB of their text."""
    log = MessageLog(size=20_000, max_bytes=16 * 2**20, clock=clock)
    sent = []
    for i in range(25_000):
        frame = meter_values(i) if i % 2 == 0 else f'[3,"m{i - 1}",{{}}]'
        charger = f"CP{i % 2_000}"
        log.append(charger, "charger>" if i % 2 == 0 else "cloud>", frame)
        sent.append((i + 1, charger, frame))
    assert len(log) == 20_000
    assert log.bytes < 2 * 2**20
    assert log.dropped_for_bytes == 0
    kept = [(f.seq, f.charger_id, f.frame) for f in log.oldest_first()]
    assert kept == sent[-20_000:]
    assert [(f.seq, f.charger_id, f.frame) for f in log.newest(limit=20_000)] == kept[::-1]
    assert [f.seq for f in log.newest(charger_id="CP7", limit=3)] == [24_008, 22_008, 20_008]
    assert [f.seq for f in log.newest(limit=3, before=5_002)] == [5_001]  # the oldest kept
    assert [f.seq for f in log.newest(limit=2, before=12_345)] == [12_344, 12_343]


def test_the_ring_counts_frames_one_by_one_across_blocks(tmp_path: Path) -> None:
    log = MessageLog(size=300, max_bytes=2**20, clock=clock)
    for i in range(1_000):
        log.append(f"CP{i % 3}", "charger>", f'[2,"{i}","Heartbeat",{{}}]')
        assert len(log) == min(i + 1, 300)
        assert log.newest(limit=1)[0].seq == i + 1
    assert [f.seq for f in log.oldest_first()] == list(range(701, 1_001))
    assert [f.seq for f in log.newest(charger_id="CP0", limit=1_000)] == list(range(1_000, 700, -3))
    path = tmp_path / "log.jsonl"
    assert log.dump(path) == 300
    again = MessageLog(size=300, max_bytes=2**20, clock=clock)
    assert again.load(path) == 300
    assert [(f.seq, f.frame) for f in again.oldest_first()] == [
        (i - 700, f'[2,"{i - 1}","Heartbeat",{{}}]') for i in range(701, 1_001)
    ]


def test_a_burst_keeps_both_bounds_and_shows_exactly_the_newest() -> None:
    """Frames are hidden one by one but freed a block at a time: memory stays bounded."""
    log = MessageLog(size=1_000, max_bytes=2**20, clock=clock)
    for i in range(20_000):
        log.append(f"CP{i % 7}", "charger>", meter_values(i))
        assert len(log) == min(i + 1, 1_000)
        assert log.held <= 1_000 + 2 * BLOCK_FRAMES
    assert [f.seq for f in log.oldest_first()] == list(range(19_001, 20_001))
    assert [f.frame for f in log.newest(limit=2)] == [meter_values(19_999), meter_values(19_998)]
    tight = MessageLog(size=20_000, max_bytes=60_000, clock=clock)  # the byte bound rules
    for i in range(5_000):
        tight.append("CP1", "charger>", meter_values(i))
        assert tight.bytes <= 60_000
        shown = [f.seq for f in tight.oldest_first()]
        assert shown == list(range(i + 2 - len(tight), i + 2)) and len(tight) >= 1
    assert tight.dropped_for_bytes == 5_000 - len(tight)


def test_a_ring_smaller_than_a_block_shows_only_its_size() -> None:
    log = MessageLog(size=5, max_bytes=2**20, clock=clock)
    for i in range(3 * BLOCK_FRAMES + 3):
        log.append("CP1", "charger>", f'[2,"{i}","Heartbeat",{{}}]')
        assert [f.seq for f in log.oldest_first()] == list(range(max(1, i - 3), i + 2))
        assert [f.seq for f in log.newest(limit=3)] == [i + 1, i, i - 1][: min(3, i + 1)]
        assert log.held <= 5 + 2 * BLOCK_FRAMES


def test_frames_holding_the_column_separator_are_kept_exactly() -> None:
    log = MessageLog(size=1_000, max_bytes=2**20, clock=clock)
    sent = [("CP\x00", f'[2,"{i}","DataTransfer",{{"data":"a\x00b"}}]') for i in range(300)]
    for charger, frame in sent:
        log.append(charger, "charger>", frame, at=1.5)
    assert [(f.charger_id, f.frame, f.at) for f in log.oldest_first()] == [
        (c, f, 1.5) for c, f in sent
    ]


def test_a_frame_that_cannot_be_encoded_is_kept_escaped(tmp_path: Path) -> None:
    log = MessageLog(size=10, max_bytes=2**20, clock=clock)
    log.append("CP1", "charger>", LONE)
    log.append("CP\udc80", ">cloud", '[2,"é","Foo",{}]')
    frames = log.newest()
    assert frames[1].frame == '[2,"\\ud800","Foo",{}]'
    assert frames[0].frame == '[2,"é","Foo",{}]'  # encodable text is left alone
    assert frames[0].charger_id == "CP\\udc80"
    for frame in frames:
        frame.frame.encode("utf-8")
    path = tmp_path / "log.jsonl"
    assert log.dump(path) == 2
    path.read_bytes().decode("ascii")
    assert [f.frame for f in read_dump(path)] == [frames[1].frame, frames[0].frame]


async def test_the_store_dumps_on_close_and_reads_back_on_open(tmp_path: Path) -> None:
    config = StoreConfig(path=tmp_path / "edgegw.db", message_log_size=100)
    store = await Store.open_for_daemon(config)
    try:
        store.log_frame("CP1", "charger>", LONE)
        store.log_frame("CP1", "charger>", '[2,"1","Heartbeat",{}]')
    finally:
        await store.close()
    dumped = dump_path(config.path)
    assert dumped.stat().st_mode & 0o777 == 0o600  # frames carry card ids
    store = await Store.open_for_daemon(config)
    try:
        assert [f.frame for f in store.message_log()] == [
            '[2,"1","Heartbeat",{}]',
            '[2,"\\ud800","Foo",{}]',
        ]
        store.log_frame("CP2", ">charger", '[3,"2",{}]')
    finally:
        await store.close()
    lines = [json.loads(line) for line in dumped.read_text().splitlines()]
    assert [line["charger"] for line in lines] == ["CP1", "CP1", "CP2"]


async def test_a_store_opened_without_a_log_keeps_and_writes_none(tmp_path: Path) -> None:
    """What the CLI opens: it must not overwrite the daemon's dump with an empty log."""
    store = await Store.open(tmp_path / "edgegw.db", message_log_file=tmp_path / "x.jsonl")
    store.log_frame("CP1", "charger>", '[2,"1","Heartbeat",{}]')
    await store.close()
    assert store.message_log() == []
    assert not (tmp_path / "x.jsonl").exists()


async def test_the_old_message_log_table_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "edgegw.db"
    with sqlite3.connect(path) as conn:
        for step in MIGRATIONS[:2]:
            conn.executescript(step)
        conn.execute(
            "INSERT INTO message_log (at, charger_id, direction, frame) VALUES (1, 'CP1', 'x', 'y')"
        )
        conn.execute("PRAGMA user_version=2")
    conn.close()
    store = await Store.open(path)
    try:
        rows = await store.db.conn.execute_fetchall(
            "SELECT name FROM sqlite_master WHERE name = 'message_log'"
        )
        assert list(rows) == []
    finally:
        await store.close()


async def test_the_messages_op_pages_back_through_the_log(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "edgegw.db", message_log_size=1000)
    try:
        for i in range(250):
            store.log_frame(f"CP{i % 2}", "charger>", f'[2,"{i}","Heartbeat",{{}}]')
        ops = MessageOps(store.messages)
        seen: list[int] = []
        before = None
        while True:
            args: dict[str, object] = {"limit": 40, "charger": "CP1"}
            if before is not None:
                args["before"] = before
            answer = await ops.messages(args)
            seen += [json.loads(f["frame"])[1] for f in answer["frames"]]
            before = answer["next_before"]
            if before is None:
                break
        assert [int(s) for s in seen] == list(range(249, 0, -2))
        assert answer["kept"] == 250
    finally:
        await store.close()
