"""``edgegw sessions`` against a real gateway (daemon running, then stopped) and raw chargers.

The CLI is blocking (it talks to the daemon with a blocking socket), so each invocation runs in
a thread while the gateway keeps serving on the test's event loop.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner, Result

from edgegw.auth.idtags import IdTagFormat, parse_card_id, render
from edgegw.auth.locallist import Card
from edgegw.cli.main import app
from edgegw.cli.output import EXIT_DAEMON_DOWN, DaemonClient, control_client, control_errors
from edgegw.config import Config, load_config, parse_config
from edgegw.control.client import DaemonNotRunning, RemoteError
from edgegw.daemon import Gateway
from edgegw.sim.cloud import SimCloud
from edgegw.store.outbox import LOCAL_ID_BASE
from tests.conftest import GatewayFactory, RawCharger, gateway_url, raw_charger

ALICE = parse_card_id("E43AC9D2")
BOB = parse_card_id("11223344")
runner = CliRunner()


@dataclass
class Site:
    """A gateway started from a configuration file the CLI reads too."""

    path: Path
    config: Config
    gateway: Gateway
    task: asyncio.Task[None]

    async def stop(self) -> None:
        self.gateway.shutdown()
        await asyncio.wait_for(self.task, 15)

    async def cli(self, *args: str) -> Result:
        return await asyncio.to_thread(runner.invoke, app, [*args, "-c", str(self.path)])


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    path = tmp_path / "edgegw.toml"
    path.write_text(
        f"""
[server]
host = "127.0.0.1"
port = 0
[store]
path = "{tmp_path / "gw.db"}"
[control]
socket = "{tmp_path / "gw.sock"}"
group = ""
[auth]
push_local_list = false
unknown_cards = "accept"
[[chargers]]
id = "CP1"
idtag_format = "dec_le"
[[chargers]]
id = "CP2"
"""
    )
    config = load_config(path)
    gateway = Gateway(config)
    task = asyncio.create_task(gateway.run(install_signal_handlers=False))  # noqa: TID251
    started = asyncio.create_task(gateway.started.wait())  # noqa: TID251
    await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        started.cancel()
        task.result()
    try:
        yield Site(path, config, gateway, task)
    finally:
        gateway.shutdown()
        await asyncio.wait_for(task, 15)


async def session(
    cp: RawCharger,
    tag: str,
    start: str,
    stop: str | None,
    meter: tuple[int, int],
    *,
    connector: int = 1,
) -> int:
    answer = await cp.call(
        "StartTransaction",
        {"connectorId": connector, "idTag": tag, "meterStart": meter[0], "timestamp": start},
    )
    assert answer[0] == 3, answer
    tx = int(answer[2]["transactionId"])
    if stop is not None:
        payload = {"transactionId": tx, "meterStop": meter[1], "timestamp": stop}
        assert (await cp.call("StopTransaction", payload))[0] == 3
    return tx


async def january(site: Site) -> None:
    """Alice at CP1 (which reports cards as decimal) and CP2; Bob; an unknown card."""
    assert site.gateway.authorizer is not None
    await site.gateway.authorizer.add_card(Card(ALICE, owner="Flat 1", label="blue fob"))
    await site.gateway.authorizer.add_card(Card(BOB, owner="Flat 2"))
    url = gateway_url(site.gateway)
    async with raw_charger(url, "CP1") as cp1, raw_charger(url, "CP2") as cp2:
        for cp in (cp1, cp2):
            await cp.call("BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"})
        alice_dec = render(ALICE, IdTagFormat.DEC_LE)
        await session(cp1, alice_dec, "2026-01-05T08:00:00Z", "2026-01-05T10:00:00Z", (1000, 8500))
        await session(cp2, "11223344", "2026-01-06T18:00:00Z", "2026-01-06T19:30:00Z", (0, 4000))
        await session(cp2, "CAFEBABE", "2026-01-07T12:00:00Z", "2026-01-07T12:30:00Z", (0, 250))
        # Still charging at the month's end.
        await session(cp2, "E43AC9D2", "2026-01-31T23:00:00Z", None, (0, 0), connector=2)


def ok(result: Result) -> Any:
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(result.stdout)


def check_january_sessions(sessions: list[dict[str, Any]]) -> None:
    by_tag = {s["card"] or s["id_tag"]: s for s in sessions if s["charger"] == "CP1"}
    alice_cp1 = by_tag["E43AC9D2"]
    assert (alice_cp1["owner"], alice_cp1["label"]) == ("Flat 1", "blue fob")
    assert alice_cp1["energy_wh"] == 7500 and alice_cp1["duration_s"] == 7200
    assert alice_cp1["id_tag"] == render(ALICE, IdTagFormat.DEC_LE)
    assert alice_cp1["mode"] == "standalone" and alice_cp1["state"] == "finished"
    assert alice_cp1["started_at"] == "2026-01-05T08:00:00Z"
    assert [s["state"] for s in sessions].count("open") == 1


def check_january_report(report: dict[str, Any]) -> None:
    cards = {c["card"] or c["id_tag"]: c for c in report["cards"]}
    assert cards["E43AC9D2"]["energy_kwh"] == 7.5 and cards["E43AC9D2"]["owner"] == "Flat 1"
    assert cards["E43AC9D2"]["hours"] == 2.0 and cards["E43AC9D2"]["sessions"] == 1
    assert cards["11223344"]["energy_wh"] == 4000 and cards["11223344"]["owner"] == "Flat 2"
    assert cards["CAFEBABE"]["energy_wh"] == 250
    assert report["totals"] == {
        "sessions": 3,
        "energy_wh": 11750,
        "energy_kwh": 11.75,
        "hours": 4.0,
    }
    (still_open,) = report["open_at_month_end"]
    assert (still_open["charger"], still_open["owner"]) == ("CP2", "Flat 1")


async def test_sessions_through_the_running_daemon(site: Site, tmp_path: Path) -> None:
    await january(site)

    listed = ok(await site.cli("sessions", "list", "--json"))
    assert listed["source"] == "daemon" and len(listed["sessions"]) == 4
    assert listed["sessions"][0]["started_at"] == "2026-01-31T23:00:00Z"  # newest first
    check_january_sessions(listed["sessions"])
    assert len(ok(await site.cli("sessions", "list", "--limit", "2", "--json"))["sessions"]) == 2

    # Alice's card as the installer types it, whichever format each charger reported it in.
    alice = ok(await site.cli("sessions", "list", "--card", "e4:3a:c9:d2", "--json"))
    assert sorted(s["charger"] for s in alice["sessions"]) == ["CP1", "CP2"]
    window = ok(
        await site.cli(
            "sessions", "list", "--charger", "CP2", "--since", "2026-01-07T12:15:00Z", "--json"
        )
    )
    assert [s["id_tag"] for s in window["sessions"]] == ["E43AC9D2", "CAFEBABE"]

    # A card enrolled now names its past sessions at once.
    assert site.gateway.authorizer is not None
    await site.gateway.authorizer.add_card(Card(parse_card_id("CAFEBABE"), owner="Guest"))
    text = await site.cli("sessions", "list")
    assert text.exit_code == 0 and "E43AC9D2 (Flat 1, blue fob)" in text.stdout
    assert "CAFEBABE (Guest)" in text.stdout
    assert "4 session(s)" in text.stdout and "not running" not in text.output

    out = tmp_path / "january.csv"
    exported = await site.cli(
        "sessions", "export", "--format", "csv", "-o", str(out), "--until", "2026-02-01"
    )
    assert exported.exit_code == 0, exported.output
    assert f"wrote 4 session(s) to {out} (from the daemon)" in exported.stderr
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [r["started_at"] for r in rows] == sorted(r["started_at"] for r in rows)
    assert rows[0]["owner"] == "Flat 1" and rows[0]["energy_wh"] == "7500"
    assert rows[-1]["state"] == "open" and rows[-1]["energy_wh"] == ""

    document = ok(await site.cli("sessions", "export", "--format", "json", "--charger", "CP1"))
    assert document["source"] == "daemon" and document["filters"] == {"charger": "CP1"}
    assert [s["energy_wh"] for s in document["sessions"]] == [7500]

    report = ok(await site.cli("sessions", "report", "--month", "2026-01", "--json"))
    check_january_report(report)
    assert [o["owner"] for o in report["owners"]] == ["Flat 1", "Flat 2", "Guest"]
    text = await site.cli("sessions", "report", "--month", "2026-01")
    assert text.exit_code == 0, text.output
    assert "Flat 1" in text.stdout and "11.750" in text.stdout
    assert "Still open at the month's end (not counted here): 1" in text.stdout
    table = await site.cli("sessions", "report", "--month", "2026-01", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(table.stdout)))
    assert rows[-1]["owner"] == "TOTAL" and rows[-1]["energy_kwh"] == "11.750"
    assert {r["owner"] for r in rows[:-1]} == {"Flat 1", "Flat 2", "Guest"}
    assert "1 session(s) not counted" in table.stderr


async def test_sessions_read_the_database_when_the_daemon_is_stopped(site: Site) -> None:
    await january(site)
    running = ok(await site.cli("sessions", "report", "--month", "2026-01", "--json"))
    await site.stop()

    listed = await site.cli("sessions", "list", "--json")
    assert "edgegw is not running: reading its database" in listed.stderr
    data = ok(listed)
    assert data["source"] == "database" and len(data["sessions"]) == 4
    check_january_sessions(data["sessions"])
    alice = ok(await site.cli("sessions", "list", "--card", "E43AC9D2", "--json"))
    assert len(alice["sessions"]) == 2

    report = ok(await site.cli("sessions", "report", "--month", "2026-01", "--json"))
    check_january_report(report)
    assert report["source"] == "database"
    assert report["cards"] == running["cards"] and report["totals"] == running["totals"]
    text = await site.cli("sessions", "report", "--month", "2026-01")
    assert "(read from the database file: the daemon is not running)" in text.stdout

    exported = await site.cli("sessions", "export", "--format", "csv")
    assert exported.exit_code == 0 and len(exported.stdout.splitlines()) == 5


async def owners_listed(site: Site, source: str) -> None:
    """The owner filters, the same whether the daemon answers or its database file does."""

    async def listed(*args: str) -> list[dict[str, Any]]:
        data = ok(await site.cli("sessions", "list", *args, "--json"))
        assert data["source"] == source
        sessions: list[dict[str, Any]] = data["sessions"]
        return sessions

    flat1 = await listed("--owner", "flat 1")  # any case, both chargers' formats
    assert [(s["charger"], s["owner"]) for s in flat1] == [("CP2", "Flat 1"), ("CP1", "Flat 1")]
    assert [s["id_tag"] for s in await listed("--owner", "FLAT 2")] == ["11223344"]
    assert [s["id_tag"] for s in await listed("--no-owner")] == ["CAFEBABE"]
    assert [s["charger"] for s in await listed("--owner", "Flat 1", "--charger", "CP1")] == ["CP1"]
    assert await listed("--owner", "Flat 1", "--until", "2026-01-05T08:00:00Z") == []

    text = await site.cli("sessions", "list", "--owner", "Flat 2")
    assert text.exit_code == 0 and "11223344 (Flat 2)" in text.stdout
    assert "1 session(s)" in text.stdout

    document = ok(await site.cli("sessions", "export", "--format", "json", "--owner", " Flat 1 "))
    assert document["source"] == source and document["filters"] == {"owner": "Flat 1"}
    assert [s["started_at"] for s in document["sessions"]] == [
        "2026-01-05T08:00:00Z",
        "2026-01-31T23:00:00Z",
    ]
    unowned = ok(await site.cli("sessions", "export", "--format", "json", "--no-owner"))
    assert unowned["filters"] == {"no_owner": True}
    assert [s["id_tag"] for s in unowned["sessions"]] == ["CAFEBABE"]
    table = await site.cli("sessions", "export", "--owner", "flat 2")
    rows = list(csv.DictReader(io.StringIO(table.stdout)))
    assert [(r["owner"], r["energy_wh"]) for r in rows] == [("Flat 2", "4000")]

    # An owner no card has is an error, not an empty bill; in --json too.
    typo = await site.cli("sessions", "list", "--owner", "Flat 3", "--json")
    assert typo.exit_code == 2, typo.output
    assert "no enrolled card has the owner 'Flat 3'; did you mean" in typo.stderr
    assert json.loads(typo.stdout)["exit_code"] == 2
    export_typo = await site.cli("sessions", "export", "--owner", "Nobody")
    assert export_typo.exit_code == 2 and "no enrolled card has the owner" in export_typo.stderr
    assert export_typo.stdout == ""


async def test_sessions_by_owner_with_the_daemon_running_and_stopped(site: Site) -> None:
    await january(site)
    await owners_listed(site, "daemon")
    await site.stop()
    await owners_listed(site, "database")


async def test_session_started_offline_appears_once_with_both_ids(
    make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    cloud = SimCloud(accepted_tags={"11223344"})
    await cloud.start()
    gateway = await make_gateway(
        cloud_url=cloud.url,
        chargers=[{"id": "CP1"}],
        sync={"retry_interval": 0.05, "max_retry_interval": 0.2},
    )
    path = tmp_path / "cloud.toml"
    path.write_text(
        f'[store]\npath = "{gateway.config.store.path}"\n'
        f'[control]\nsocket = "{gateway.config.control.socket}"\n'
    )
    async with raw_charger(gateway_url(gateway), "CP1") as cp:
        await cloud.wait_connected("CP1")
        await cp.call("BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"})
        online = await session(
            cp, "11223344", "2026-02-01T08:00:00Z", "2026-02-01T09:00:00Z", (0, 1000)
        )
        await cloud.stop()
        offline = await session(
            cp, "11223344", "2026-02-02T08:00:00Z", "2026-02-02T09:00:00Z", (1000, 3000)
        )
        assert online == 1 and offline >= LOCAL_ID_BASE
        await cloud.start()
        # The start's cloud id is committed before the outbox sends the stop that follows it.
        await cloud.wait_for(
            lambda r: (
                r.action == "StopTransaction"
                and r.direction == "in"
                and r.payload["transactionId"] == 2
            )
        )

    result = await asyncio.to_thread(
        runner.invoke, app, ["sessions", "list", "--json", "-c", str(path)]
    )
    sessions = ok(result)["sessions"]
    assert [(s["transaction_id"], s["cloud_transaction_id"], s["mode"]) for s in sessions] == [
        (offline, 2, "offline"),
        (1, 1, "cloud"),
    ]
    assert [s["energy_wh"] for s in sessions] == [2000, 1000]
    assert sorted(cloud.transactions) == [("CP1", 1), ("CP1", 2)]
    await cloud.stop()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["report", "--month", "2026-13"], "is not a month"),
        (["report", "--month", "01-2026"], "is not a month"),
        (["report", "--month", "2026-01", "--tz", "Mars/Olympus"], "unknown time zone"),
        (["report", "--month", "2026-01", "--format", "xml"], "xml"),
        (["export", "--format", "xlsx"], "xlsx"),
        (["list", "--since", "2026-02-01", "--until", "2026-01-01"], "is after --until"),
        (["list", "--since", "last tuesday"], "is not a date"),
        (["list", "--owner", ""], "--no-owner for the sessions of unknown cards"),
        (["export", "--owner", "  "], "the name is empty"),
        (["list", "--owner", "Flat 1", "--no-owner"], "together match nothing"),
        (["export", "--no-owner", "--owner", "Flat 1"], "together match nothing"),
    ],
)
async def test_bad_input_is_a_usage_error(site: Site, args: list[str], message: str) -> None:
    result = await site.cli("sessions", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output


async def test_bad_card_is_refused_by_the_daemon_and_the_database(site: Site) -> None:
    running = await site.cli("sessions", "list", "--card", "ABC", "--json")
    assert running.exit_code == 2, running.output
    assert "odd number" in running.stderr and json.loads(running.stdout)["exit_code"] == 2
    await site.stop()
    stopped = await site.cli("sessions", "list", "--card", "ABC")
    assert stopped.exit_code == 2 and "odd number" in stopped.stderr


async def test_missing_config_and_missing_database(tmp_path: Path) -> None:
    missing = await asyncio.to_thread(
        runner.invoke, app, ["sessions", "list", "-c", str(tmp_path / "none.toml")]
    )
    assert missing.exit_code == 3 and "config check" in missing.stderr
    path = tmp_path / "edgegw.toml"
    path.write_text(
        f'[store]\npath = "{tmp_path / "gw.db"}"\n[control]\nsocket = "{tmp_path / "gw.sock"}"\n'
    )
    empty = await asyncio.to_thread(
        runner.invoke, app, ["sessions", "report", "--month", "2026-01", "-c", str(path)]
    )
    assert empty.exit_code == 1 and "there is no database" in empty.stderr
    assert not (tmp_path / "gw.db").exists()


def test_control_client_says_how_to_start_the_daemon(tmp_path: Path) -> None:
    config = parse_config({"control": {"socket": str(tmp_path / "none.sock")}})
    with pytest.raises(DaemonNotRunning, match="systemctl start edgegw"):
        control_client(config)
    with pytest.raises(typer.Exit) as exit_info, control_errors():
        control_client(config)
    assert exit_info.value.exit_code == EXIT_DAEMON_DOWN


async def test_session_ops_page_and_check_their_arguments(site: Site) -> None:
    await january(site)
    client = DaemonClient(site.config.control.socket)

    def call(op: str, **args: Any) -> Any:
        return client.call(op, **args)

    first = await asyncio.to_thread(call, "sessions.list", limit=3, order="oldest")
    assert [s["started_at"][:10] for s in first["sessions"]] == [
        "2026-01-05",
        "2026-01-06",
        "2026-01-07",
    ]
    rest = await asyncio.to_thread(
        call, "sessions.list", limit=3, order="oldest", after=first["next"]
    )
    assert [s["state"] for s in rest["sessions"]] == ["open"] and rest["next"] is None
    # The owner filter pages too: the cursor skips the sessions it left out.
    page = await asyncio.to_thread(call, "sessions.list", owner="FLAT 1", limit=1, order="oldest")
    assert [s["charger"] for s in page["sessions"]] == ["CP1"] and page["next"] is not None
    page = await asyncio.to_thread(
        call, "sessions.list", owner="FLAT 1", limit=1, order="oldest", after=page["next"]
    )
    assert [s["state"] for s in page["sessions"]] == ["open"]
    unowned = await asyncio.to_thread(call, "sessions.list", no_owner=True)
    assert [s["id_tag"] for s in unowned["sessions"]] == ["CAFEBABE"]
    refusals: list[tuple[str, dict[str, Any], str]] = [
        ("sessions.list", {"limit": 0}, "limit must be between"),
        ("sessions.list", {"order": "random"}, "order must be"),
        ("sessions.list", {"since": 10.0, "until": 5.0}, "is after"),
        ("sessions.list", {"since": "yesterday"}, "must be float"),
        ("sessions.list", {"owner": ""}, "'owner' is empty.*no_owner=true"),
        ("sessions.list", {"owner": "Flat 1", "no_owner": True}, "not both"),
        ("sessions.list", {"no_owner": 1}, "must be bool"),
        ("sessions.list", {"owner": "Flat 9"}, "no enrolled card has the owner 'Flat 9'"),
        ("sessions.report", {"month": "2026-1"}, "YYYY-MM"),
        ("sessions.report", {}, "missing argument 'month'"),
        ("sessions.report", {"month": "2026-01", "tz": "Nowhere/Land"}, "unknown time zone"),
    ]
    for op, args, message in refusals:
        with pytest.raises(RemoteError, match=message) as refused:
            await asyncio.to_thread(call, op, **args)
        assert refused.value.code == "bad_args"
