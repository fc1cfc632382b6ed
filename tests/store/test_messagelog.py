"""The message log in memory: bounded by frames and bytes, unbreakable, dumped and read back."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from edgegw.config import StoreConfig
from edgegw.control.message_ops import MessageOps
from edgegw.store.messagelog import MessageLog, dump_path, read_dump
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
    big = '[2,"x","DataTransfer",{"data":"' + "A" * 65_000 + '"}]'
    log = MessageLog(size=20_000, max_bytes=1_000_000, clock=clock)
    for _ in range(200):  # 13 MB of frames
        log.append("CP1", "charger>", big)
    assert log.bytes <= 1_000_000
    assert 10 <= len(log) <= 15
    assert log.dropped_for_bytes == 200 - len(log)
    log.append("CP1", "charger>", "B" * 3_000_000)  # bigger than the whole budget: cut to fit
    (kept,) = log.newest(limit=1)
    assert kept.frame.startswith("BBB") and kept.frame.endswith("cut to fit the log]")
    assert log.bytes <= 1_000_000


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
