"""``edgegw energy para14a export``, ``energy peak`` and ``energy limits``."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sqlite3
from pathlib import Path

from typer.testing import CliRunner, Result

from edgegw.cli.main import app
from edgegw.sim.meter import SimMeter
from edgegw.store.db import Database
from edgegw.store.limitlog import CSV_COLUMNS, LimitLog
from edgegw.store.schema import MIGRATIONS
from tests.conftest import GatewayFactory

runner = CliRunner()
DEC_1 = 1_796_083_200.0  # 2026-12-01T00:00:00Z


def write_config(tmp_path: Path, db: Path, socket: Path | None = None) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(
        f'[store]\npath = "{db}"\n'
        f'[control]\nsocket = "{socket or tmp_path / "none.sock"}"\ngroup = ""\n'
        '[[chargers]]\nid = "CP1"\n'
    )
    return path


async def cli(config: Path, *args: str) -> Result:
    return await asyncio.to_thread(runner.invoke, app, [*args, "--config", str(config)])


async def _logged(path: Path) -> None:
    db = await Database.open(path)
    log = LimitLog(db)
    first = await log.started(
        "dso",
        para14a=True,
        node="steuve",
        at=DEC_1 + 3600,
        limit_a=(15.21,) * 3,
        granted_kw=10.495,
        chargers=3,
    )
    await log.ended(first, DEC_1 + 3600 + 1800)
    await log.started(
        "relay",
        para14a=False,
        node="site",
        at=DEC_1 + 7200,
        limit_a=(40.0,) * 3,
        granted_kw=None,
        chargers=None,
    )
    await log.started(
        "dso",
        para14a=True,
        node="steuve",
        at=DEC_1 + 86_400,
        limit_a=(15.21,) * 3,
        granted_kw=10.495,
        chargers=3,
    )
    await db.close()


async def test_the_para14a_export_lists_each_activation_with_the_power_granted(
    tmp_path: Path,
) -> None:
    db = tmp_path / "gw.db"
    await _logged(db)
    config = write_config(tmp_path, db)

    result = await cli(config, "energy", "para14a", "export")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [(r["source"], r["started_at"], r["ended_at"]) for r in rows] == [
        ("dso", "2026-12-01T01:00:00Z", "2026-12-01T01:30:00Z"),
        ("dso", "2026-12-02T00:00:00Z", ""),  # still in force
    ]
    assert rows[0]["duration_s"] == "1800"
    assert rows[0]["granted_kw"] == "10.495"
    assert rows[0]["chargers"] == "3"

    every = await cli(config, "energy", "para14a", "export", "--all", "--json")
    assert [r["source"] for r in json.loads(every.stdout)] == ["dso", "relay", "dso"]

    later = await cli(config, "energy", "para14a", "export", "--since", "2026-12-01T12:00Z")
    assert len(list(csv.DictReader(io.StringIO(later.stdout)))) == 1

    out = tmp_path / "para14a.csv"
    written = await cli(config, "energy", "para14a", "export", "-o", str(out))
    assert written.exit_code == 0 and "wrote 2 activation(s)" in written.output
    assert out.read_text() == result.stdout


async def test_a_database_from_before_the_log_is_refused_with_the_fix(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    with sqlite3.connect(db) as conn:
        for step in MIGRATIONS[:4]:
            conn.executescript(step)
        conn.execute("PRAGMA user_version=4")
    conn.close()
    result = await cli(write_config(tmp_path, db), "energy", "para14a", "export")
    assert result.exit_code != 0
    assert "start the daemon once" in result.output


async def test_peak_and_limits_from_the_running_daemon(
    make_gateway: GatewayFactory, meter: SimMeter, tmp_path: Path
) -> None:
    gateway = await make_gateway(
        site={"limit_a": 32, "margin_a": 2},
        buses={"main": {"transport": "tcp", "host": "127.0.0.1", "port": meter.port}},
        meters=[{"name": "grid", "profile": "eastron-sdm630", "poll_interval": 0.2}],
        peak={"target_kw": 25, "timezone": "Europe/Brussels"},
        limits=[{"name": "relay", "source": "gpio", "path": str(tmp_path / "v"), "limit_a": 20}],
    )
    config = write_config(tmp_path, tmp_path / "unused.db", gateway.config.control.socket)
    shown = await cli(config, "energy", "peak")
    assert shown.exit_code == 0, shown.output
    assert "target 25 kW" in shown.output
    as_json = await cli(config, "energy", "peak", "--json")
    assert json.loads(as_json.stdout)["target_kw"] == 25
    listed = await cli(config, "energy", "limits")
    assert listed.exit_code == 0, listed.output
    assert "relay" in listed.output and "cannot read" in listed.output
