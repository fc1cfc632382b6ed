"""``edgegw chargers probe | configure`` and ``edgegw commission`` through typer's runner,
against a real gateway with a simulated charger, and with the daemon stopped."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from edgegw.cli.main import app
from edgegw.daemon import Gateway
from edgegw.energy.chargermodels import load_models
from edgegw.sim.charger import ConfigKey, SimCharger
from tests.conftest import GatewayFactory, gateway_url
from tests.control.test_commission_ops import install_ops

runner = CliRunner()
CHARGERS_DIR = Path(__file__).resolve().parents[2] / "hardware" / "chargers"
FAST = ("--step-timeout", "3")


def write_config(tmp_path: Path) -> Path:
    """The CLI's view of the gateway ``make_gateway`` starts first (gw0)."""
    path = tmp_path / "edgegw.toml"
    path.write_text(
        f'[store]\npath = "{tmp_path / "gw0.db"}"\n'
        f'[control]\nsocket = "{tmp_path / "gw0.sock"}"\ngroup = ""\n'
        '[[chargers]]\nid = "CP1"\nidtag_format = "hex"\n'
    )
    return path


def cli(config: Path, *args: str) -> Result:
    return runner.invoke(app, [*args, "--config", str(config)])


async def acli(config: Path, *args: str) -> Result:
    return await asyncio.to_thread(cli, config, *args)


async def start(make_gateway: GatewayFactory, **sections: Any) -> Gateway:
    gateway = await make_gateway(chargers=[{"id": "CP1", "idtag_format": "hex"}], **sections)
    install_ops(gateway)
    return gateway


@asynccontextmanager
async def charger(gateway: Gateway, **kwargs: Any) -> AsyncIterator[SimCharger]:
    config = kwargs.pop("config", {})
    sim = SimCharger("CP1", gateway_url(gateway), connectors=1, **kwargs)
    sim.config.update(config)
    await sim.connect()
    try:
        await gateway.wait_charger("CP1")
        await sim.boot()
        yield sim
    finally:
        await sim.close()


async def test_commission_passes_and_files_the_report(
    tmp_path: Path, make_gateway: GatewayFactory
) -> None:
    config = write_config(tmp_path)
    gateway = await start(make_gateway, auth={"unknown_cards": "accept"})
    async with charger(gateway):
        result = await acli(config, "commission", "CP1", "--card", "04 A1 B2 C3", *FAST)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Commissioning of CP1" in out and "Result: PASSED — 9 passed, 0 failed" in out
    assert "[PASS] meter values per phase" in out and "[PASS] test card accepted" in out
    files = sorted((tmp_path / "commissioning").iterdir())
    assert [f.suffix for f in files] == [".json", ".txt"]
    assert files[0].stem.startswith("CP1-20") and files[0].stem == files[1].stem
    saved = json.loads(files[0].read_text())
    assert saved["passed"] is True and saved["card"] == "04A1B2C3"
    assert "Result: PASSED" in files[1].read_text()
    assert f"Saved: {files[1]}" in out


async def test_a_charger_ignoring_profiles_fails_with_exit_1(
    tmp_path: Path, make_gateway: GatewayFactory
) -> None:
    config = write_config(tmp_path)
    gateway = await start(make_gateway)
    records = tmp_path / "records"
    async with charger(gateway, ignore_profiles=True):
        result = await acli(config, "commission", "CP1", "--json", "--output", str(records), *FAST)
        text = await acli(config, "commission", "CP1", "--output", str(records), *FAST)
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["passed"] is False
    honoured = next(s for s in report["steps"] if s["name"] == "profile_honoured")
    assert honoured["status"] == "fail" and "does not apply it" in honoured["detail"]
    assert len(report["files"]) == 2 and all(Path(f).parent == records for f in report["files"])
    assert text.exit_code == 1
    assert "[FAIL] charging profile honoured" in text.stdout and "→ " in text.stdout
    assert "Result: FAILED — 7 passed, 1 failed, 1 skipped" in text.stdout


async def test_commission_of_a_charger_that_is_not_connected(
    tmp_path: Path, make_gateway: GatewayFactory
) -> None:
    config = write_config(tmp_path)
    await start(make_gateway)
    result = await acli(config, "commission", "CP1", *FAST)
    assert result.exit_code == 1
    assert "[FAIL] connected" in result.stdout and "never connected" in result.stdout
    assert "not checked: the charger is not connected" in result.stdout
    unknown = await acli(config, "commission", "NOPE")
    assert unknown.exit_code == 1 and "no charger 'NOPE'" in unknown.stderr
    bad_card = await acli(config, "commission", "CP1", "--card", "12345")
    assert bad_card.exit_code == 2 and "card '12345'" in bad_card.stderr


def test_every_command_says_the_daemon_is_not_running(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    for args in (
        ("commission", "CP1"),
        ("chargers", "probe", "CP1"),
        ("chargers", "configure", "CP1"),
    ):
        result = cli(config, *args)
        assert result.exit_code == 4, (args, result.output)
        assert "not running" in result.stderr
        as_json = cli(config, *args, "--json")
        assert as_json.exit_code == 4 and json.loads(as_json.stdout)["exit_code"] == 4
    assert not (tmp_path / "commissioning").exists()


async def test_probe_writes_a_profile_that_loads(
    tmp_path: Path, make_gateway: GatewayFactory
) -> None:
    config = write_config(tmp_path)
    gateway = await start(make_gateway)
    models = tmp_path / "chargers"
    models.mkdir()
    shutil.copy(CHARGERS_DIR / "generic-ocpp16.toml", models)
    async with charger(gateway):
        into_dir = await acli(config, "chargers", "probe", "CP1", "--write-profile", str(models))
        named = models / "acme-wallbox.toml"
        into_file = await acli(
            config, "chargers", "probe", "CP1", "--json", "--write-profile", str(named)
        )
        again = await acli(config, "chargers", "probe", "CP1", "--write-profile", str(named))
    assert into_dir.exit_code == 0, into_dir.output
    assert "none fits" in into_dir.stdout and "Smart charging:   yes" in into_dir.stdout
    assert "Wrote " in into_dir.stdout
    assert into_file.exit_code == 0, into_file.output
    assert json.loads(into_file.stdout)["written"] == str(named)
    loaded = load_models(models)
    assert set(loaded) == {"generic-ocpp16", "edgegw-sim-simcharger", "acme-wallbox"}
    assert loaded["acme-wallbox"].smart_charging.max_stack_level == 8
    assert again.exit_code == 2 and "exists" in again.stderr
    bad_name = cli(config, "chargers", "probe", "CP1", "--write-profile", "Bad Name.toml")
    assert bad_name.exit_code == 2 and "profile id" in bad_name.stderr


async def test_probe_names_the_fitting_profile(
    tmp_path: Path, make_gateway: GatewayFactory
) -> None:
    config = write_config(tmp_path)
    gateway = await start(make_gateway)
    async with charger(gateway, vendor="KEBA AG", model="KC-P30-ES240022"):
        result = await acli(config, "chargers", "probe", "CP1")
    assert result.exit_code == 0, result.output
    assert "Hardware profile: keba-p30 fits (vendor and product)" in result.stdout


async def test_configure_reports_refusals_with_exit_1(
    tmp_path: Path, make_gateway: GatewayFactory
) -> None:
    config = write_config(tmp_path)
    gateway = await start(make_gateway)
    readonly = {
        "MeterValuesSampledData": ConfigKey(
            "Energy.Active.Import.Register", readonly=True, kind="measurands"
        )
    }
    async with charger(gateway, config=readonly) as sim:
        refused = await acli(config, "chargers", "configure", "CP1", "--interval", "20")
        assert sim.config["MeterValueSampleInterval"].value == "20"
    assert refused.exit_code == 1, refused.output
    assert "MeterValuesSampledData" in refused.stdout and "Rejected" in refused.stdout
    assert "MeterValueSampleInterval" in refused.stdout and "Accepted" in refused.stdout
    assert "without Current.Import load capping counts its cars" in refused.stdout

    async with charger(gateway) as sim:
        done = await acli(config, "chargers", "configure", "CP1", "--json")
    assert done.exit_code == 0, done.output
    document = json.loads(done.stdout)
    assert document["ok"] and document["interval_s"] == 10
    assert sim.config["MeterValueSampleInterval"].value == "10"
    bad = cli(config, "chargers", "configure", "CP1", "--interval", "0")
    assert bad.exit_code == 2


async def test_probe_and_configure_of_an_offline_charger(
    tmp_path: Path, make_gateway: GatewayFactory
) -> None:
    config = write_config(tmp_path)
    await start(make_gateway)
    for args in (("chargers", "probe", "CP1"), ("chargers", "configure", "CP1")):
        result = await acli(config, *args)
        assert result.exit_code == 1 and "CP1 is not connected" in result.stderr, result.output
