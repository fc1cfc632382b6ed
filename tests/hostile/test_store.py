"""Hostile databases and values headed for the database.

A database damaged on disk or by hand must stop the daemon with a clear message before it
reports ready (never a traceback, never a daemon that answers every charger with 1011), and a
number SQLite cannot hold must be refused before anything is stored.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from pathlib import Path

import pytest

from edgegw.store.db import Database, StoreError, StoreSchemaError
from edgegw.store.store import Store
from tests.conftest import GatewayFactory, gateway_url, raw_charger

BOOT = {"chargePointVendor": "Vendor", "chargePointModel": "Model"}


async def fresh_database(path: Path) -> None:
    store = await Store.open(path)
    await store.charger_seen("CP1", "10.0.0.5", connected=True)
    await store.close()


async def run_to_exit(tmp_path: Path, db: Path) -> tuple[int | None, str]:
    """Run `edgegw run` on ``db`` until it exits by itself: its exit code and stderr."""
    config = tmp_path / "edgegw.toml"
    config.write_text(
        f'[server]\nhost = "127.0.0.1"\nport = 0\n[store]\npath = "{db}"\n'
        f'[control]\nsocket = "{tmp_path / "ctl.sock"}"\ngroup = ""\n'
        '[[chargers]]\nid = "CP1"\n'
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "edgegw", "run", "--config", str(config),
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(30):
        _, err = await proc.communicate()
    return proc.returncode, err.decode(errors="replace")


# ----------------------------------------------------------------- flipped bytes (item 13)


def break_schema_text(path: Path) -> None:
    """Flip one byte inside the schema's SQL text: SQLite's error then quotes invalid UTF-8."""
    data = bytearray(path.read_bytes())
    at = data.index(b"CREATE TABLE")
    data[at + len(b"CREATE T")] ^= 0xEB  # 'A' -> 0xAA, not UTF-8
    path.write_bytes(bytes(data))


async def test_flipped_bytes_in_the_schema_are_a_clear_store_error(tmp_path: Path) -> None:
    path = tmp_path / "edgegw.db"
    await fresh_database(path)
    break_schema_text(path)
    with pytest.raises(StoreError, match="move it aside") as caught:
        await Database.open(path)
    assert str(path) in str(caught.value)


async def test_daemon_on_flipped_bytes_exits_with_the_message_not_a_traceback(
    tmp_path: Path,
) -> None:
    path = tmp_path / "edgegw.db"
    await fresh_database(path)
    break_schema_text(path)
    code, err = await run_to_exit(tmp_path, path)
    assert code == 1
    assert "move it aside" in err
    assert "Traceback" not in err and "UnicodeDecodeError" not in err


async def test_a_column_name_with_flipped_bytes_is_a_clear_store_error(tmp_path: Path) -> None:
    path = tmp_path / "edgegw.db"
    await fresh_database(path)
    data = bytearray(path.read_bytes())
    at = data.index(b"refused_reason TEXT")
    data[at + 1] ^= 0xCF  # 'e' -> 0xAA: the schema still parses, the name is not UTF-8
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match=r"chargers\.refused_reason") as caught:
        await Database.open(path)
    assert "restore a backup" in str(caught.value)


# -------------------------------------------------------- tables or columns missing (12b)


def damage(path: Path, statement: str) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute(statement)
    conn.close()


@pytest.mark.parametrize(
    ("statement", "named"),
    [
        ("DROP TABLE outbox", "outbox"),
        ("ALTER TABLE transactions DROP COLUMN stop_reason", "transactions.stop_reason"),
        ("DROP INDEX outbox_by_digest", "outbox_by_digest"),
    ],
)
async def test_a_database_missing_part_of_its_schema_is_refused(
    tmp_path: Path, statement: str, named: str
) -> None:
    path = tmp_path / "edgegw.db"
    await fresh_database(path)
    damage(path, statement)
    with pytest.raises(StoreSchemaError) as caught:
        await Database.open(path)
    message = str(caught.value)
    assert named in message and str(path) in message
    assert "restore a backup" in message


async def test_the_gateway_does_not_start_on_a_database_without_its_outbox(
    tmp_path: Path, make_gateway: GatewayFactory
) -> None:
    path = tmp_path / "gw0.db"  # the first database make_gateway uses
    await fresh_database(path)
    damage(path, "DROP TABLE outbox")
    with pytest.raises(StoreSchemaError, match="outbox"):
        await make_gateway()


async def test_daemon_on_a_database_without_its_outbox_exits_3(tmp_path: Path) -> None:
    path = tmp_path / "edgegw.db"
    await fresh_database(path)
    damage(path, "DROP TABLE outbox")
    code, err = await run_to_exit(tmp_path, path)
    assert "outbox" in err and "Traceback" not in err
    assert code == 3  # restarting cannot help (RestartPreventExitStatus=3)


async def test_extra_tables_of_a_newer_tool_are_tolerated(tmp_path: Path) -> None:
    path = tmp_path / "edgegw.db"
    await fresh_database(path)
    damage(path, "CREATE TABLE notes (text TEXT)")
    db = await Database.open(path)
    await db.close()


# --------------------------------------------------- numbers SQLite cannot hold (item 15)


@pytest.mark.parametrize("meter_start", [2**63, -(2**63) - 1, 10**30])
async def test_a_start_with_an_integer_beyond_int64_is_refused_not_queued(
    tmp_path: Path, make_gateway: GatewayFactory, meter_start: int
) -> None:
    # The cloud is down: a valid StartTransaction would be queued and answered locally.
    gateway = await make_gateway(cloud_url="ws://127.0.0.1:9/ocpp")
    async with raw_charger(gateway_url(gateway), "CP1") as cp:
        await cp.call("BootNotification", BOOT)
        start = {"connectorId": 1, "idTag": "TAG1", "timestamp": "2026-11-21T10:00:00Z"}
        await cp.send(
            f'[2,"big","StartTransaction",{{"connectorId":1,"idTag":"TAG1",'
            f'"meterStart":{meter_start},"timestamp":"2026-11-21T10:00:00Z"}}]'
        )
        answer = await cp.recv()
        assert answer[:3] == [4, "big", "TypeConstraintViolation"], answer
        assert "out of range" in answer[3]
        # The charger is still served, and a valid start is queued as usual.
        good = await cp.call("StartTransaction", {**start, "meterStart": 2**63 - 1})
        assert good[0] == 3 and good[2]["idTagInfo"]["status"] in ("Accepted", "Invalid")
    with sqlite3.connect(tmp_path / "gw0.db") as conn:
        queued = conn.execute("SELECT payload FROM outbox").fetchall()
    conn.close()
    assert len(queued) == 1 and str(2**63 - 1) in queued[0][0]
