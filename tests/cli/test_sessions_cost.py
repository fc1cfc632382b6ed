"""``sessions report`` and ``sessions export`` with ``[[tariffs]]``: each resident's cost.

A real standalone gateway records the sessions from a raw charger; the report is read from
the database the stopped daemon left, as a building's caretaker does at the month's end.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
from datetime import datetime
from pathlib import Path

from typer.testing import CliRunner

from edgegw.auth.access import CardGroup
from edgegw.auth.idtags import parse_card_id
from edgegw.auth.locallist import Card
from edgegw.cli.main import app
from edgegw.config import load_config
from edgegw.daemon import Gateway
from tests.conftest import gateway_url, raw_charger

ALICE = parse_card_id("E43AC9D2")
BOB = parse_card_id("11223344")
runner = CliRunner()

CONFIG = """
[server]
host = "127.0.0.1"
port = 0
[store]
path = "{db}"
[control]
socket = "{sock}"
group = ""
[auth]
push_local_list = false
[[chargers]]
id = "CP1"

[[tariffs]]
name = "residents"
timezone = "Europe/Brussels"
per_kwh = 0.30
card_groups = ["residents"]
[[tariffs.bands]]
start = "22:00"
end = "06:00"
per_kwh = 0.20

[[tariffs]]
name = "visitors"
per_session = 1.0
per_kwh = 0.40
"""


async def test_the_monthly_report_gives_each_residents_kwh_and_cost(tmp_path: Path) -> None:
    path = tmp_path / "edgegw.toml"
    path.write_text(CONFIG.format(db=tmp_path / "gw.db", sock=tmp_path / "gw.sock"))
    # The gateway's clock is moved to each message's own time as the charger sends it, as a
    # January gateway would have received them: costs are fixed at the stop, over times the
    # gateway vouches for (a charger clock far off is priced over the gateway's).
    shift = [0.0]
    gateway = Gateway(load_config(path), clock=lambda: time.time() + shift[0])
    task = asyncio.create_task(gateway.run(install_signal_handlers=False))  # noqa: TID251
    await gateway.started.wait()
    try:
        auth = gateway.authorizer
        assert auth is not None
        await auth.add_card(Card(ALICE, owner="Flat 1"))
        await auth.add_card(Card(BOB, owner="Visitor"))
        await auth.change_access(
            lambda a: a.with_card_group(CardGroup("residents", frozenset({ALICE.key})))
        )
        async with raw_charger(gateway_url(gateway), "CP1") as cp:
            await cp.call("BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"})
            # Alice 22:00-24:00 Brussels time (the night band): 10 kWh at 0.20.
            # Bob 11:00-13:00: the visitors' tariff, 1.00 + 20 kWh at 0.40.
            for tag, start, stop, meter in (
                ("E43AC9D2", "2026-01-10T21:00:00Z", "2026-01-10T23:00:00Z", (0, 10_000)),
                ("11223344", "2026-01-11T10:00:00Z", "2026-01-11T12:00:00Z", (10_000, 30_000)),
            ):
                shift[0] = _at(start) - time.time()
                started = await cp.call(
                    "StartTransaction",
                    {"connectorId": 1, "idTag": tag, "meterStart": meter[0], "timestamp": start},
                )
                tx = started[2]["transactionId"]
                stopped = {"transactionId": tx, "meterStop": meter[1], "timestamp": stop}
                shift[0] = _at(stop) - time.time()
                await cp.call("StopTransaction", stopped)
                shift[0] = 0.0
    finally:
        gateway.shutdown()
        await asyncio.wait_for(task, 15)

    async def cli(*args: str) -> str:
        # In a thread: the CLI runs its own event loop.
        result = await asyncio.to_thread(runner.invoke, app, [*args, "-c", str(path)])
        assert result.exit_code == 0, result.output
        return result.stdout

    report = json.loads(
        await cli("sessions", "report", "--month", "2026-01", "--tz", "Europe/Brussels", "--json")
    )
    assert report["currency"] == "EUR"
    costs = {c["owner"]: c["cost"] for c in report["cards"]}
    assert costs == {"Flat 1": 2.0, "Visitor": 9.0}
    assert {o["owner"]: o["cost"] for o in report["owners"]} == costs
    assert report["totals"]["cost"] == 11.0
    assert [(g["group"], g["energy_kwh"], g["cost"]) for g in report["groups"]] == [
        ("residents", 10.0, 2.0)
    ]
    text = await cli("sessions", "report", "--month", "2026-01", "--tz", "Europe/Brussels")
    assert "EUR" in text and "11.00" in text and "Per card group:" in text
    rows = list(csv.DictReader(io.StringIO(await cli("sessions", "export"))))
    assert [(r["owner"], r["tariff"], r["cost"]) for r in rows] == [
        ("Flat 1", "residents", "2.00"),
        ("Visitor", "visitors", "9.00"),
    ]
    assert [r["cost_times"] for r in rows] == ["charger", "charger"]
    assert [(r["meter_start_wh"], r["meter_stop_wh"]) for r in rows] == [
        ("0", "10000"),
        ("10000", "30000"),
    ]
    csv_report = await cli(
        "sessions", "report", "--month", "2026-01", "--tz", "Europe/Brussels", "--format", "csv"
    )
    assert csv_report.splitlines()[0].endswith(",cost_EUR")


def _at(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
