"""The commands that name devices read the site's hardware catalogue: the shipped files, and
the site's folder (``[daemon] hardware_dir``) that adds devices or replaces shipped ones."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from typer.testing import CliRunner

from edgegw.cli.main import app
from edgegw.energy.chargermodels import model_to_toml
from edgegw.hardware_catalogue import HardwareCatalogue

runner = CliRunner()
HARDWARE = Path(__file__).resolve().parents[2] / "hardware"


def site(tmp_path: Path) -> tuple[Path, Path]:
    """A configuration whose hardware folder has one new meter, one new charger model and an
    override of a shipped meter profile."""
    folder = tmp_path / "hardware"
    (folder / "meters").mkdir(parents=True)
    (folder / "chargers").mkdir()
    sdm = (HARDWARE / "meters" / "eastron-sdm630.toml").read_text(encoding="utf-8")
    name = next(line for line in sdm.splitlines() if line.startswith("name = "))
    (folder / "meters" / "eastron-sdm630.toml").write_text(
        sdm.replace(name, 'name = "SDM630 as wired here"'), encoding="utf-8"
    )
    (folder / "meters" / "acme-9000.toml").write_text(
        sdm.replace('id = "eastron-sdm630"', 'id = "acme-9000"').replace(name, 'name = "ACME"'),
        encoding="utf-8",
    )
    keba = HardwareCatalogue(None).charger_model("keba-p30")
    new = keba.model_copy(update={"id": "acme-home", "name": "ACME Home"})
    (folder / "chargers" / "acme-home.toml").write_text(model_to_toml(new), encoding="utf-8")
    config = tmp_path / "edgegw.toml"
    config.write_text(
        f'[daemon]\nhardware_dir = "{folder}"\n'
        f'[store]\npath = "{tmp_path / "gw.db"}"\n'
        '[[chargers]]\nid = "CP1"\nmodel = "acme-home"\n',
        encoding="utf-8",
    )
    return config, folder


def test_meter_profiles_lists_the_sites_own_over_the_shipped_ones(tmp_path: Path) -> None:
    config, folder = site(tmp_path)
    result = runner.invoke(app, ["meter", "profiles", "--config", str(config), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    rows = {row["id"]: row for row in data["profiles"]}
    assert set(rows) == {p.stem for p in (HARDWARE / "meters").glob("*.toml")} | {"acme-9000"}
    assert (
        rows["eastron-sdm630"]["name"] == "SDM630 as wired here" and rows["eastron-sdm630"]["site"]
    )
    assert rows["acme-9000"]["site"] and not rows["abb-b23"]["site"]
    assert str(folder / "meters") in data["directory"]

    text = runner.invoke(app, ["meter", "profiles", "--config", str(config)]).stdout
    assert "acme-9000" in text and "ACME  (site)" in text


def test_meter_profiles_without_a_configuration_lists_the_shipped_ones(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["meter", "profiles", "--config", str(tmp_path / "none.toml"), "--json"]
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["profiles"]
    assert {r["id"] for r in rows} >= {p.stem for p in (HARDWARE / "meters").glob("*.toml")}


def test_chargers_add_takes_a_site_model_and_refuses_an_unknown_one(tmp_path: Path) -> None:
    config, folder = site(tmp_path)
    result = runner.invoke(
        app, ["chargers", "add", "CP2", "--model", "acme-home", "--config", str(config)]
    )
    assert result.exit_code == 0, result.output
    chargers = tomllib.loads(config.read_text())["chargers"]
    assert {"id": "CP2", "model": "acme-home"} in chargers

    result = runner.invoke(
        app, ["chargers", "add", "CP3", "--model", "teapot", "--config", str(config)]
    )
    assert result.exit_code == 2
    assert "no charger model 'teapot'" in result.output and "acme-home" in result.output
    assert str(folder / "chargers") in result.output


def test_config_check_knows_the_sites_charger_models(tmp_path: Path) -> None:
    config, _ = site(tmp_path)
    result = runner.invoke(app, ["config", "check", str(config), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["problems"] == []

    config.write_text(config.read_text().replace("acme-home", "acme-away"))
    result = runner.invoke(app, ["config", "check", str(config), "--json"])
    assert result.exit_code == 3
    (problem,) = json.loads(result.stdout)["problems"]
    assert problem.startswith("chargers[0].model: no charger model 'acme-away'")
    assert "acme-home" in problem


def test_config_check_warns_of_a_missing_serial_device(tmp_path: Path) -> None:
    config = tmp_path / "edgegw.toml"
    device = tmp_path / "ttySC0"
    config.write_text(
        f'[store]\npath = "{tmp_path / "gw.db"}"\n'
        f'[buses.hat]\ntransport = "rtu"\ndevice = "{device}"\n'
        '[[meters]]\nbus = "hat"\nprofile = "eastron-sdm630"\n',
        encoding="utf-8",
    )
    data = json.loads(runner.invoke(app, ["config", "check", str(config), "--json"]).stdout)
    assert data["problems"] == []
    assert any(
        w.startswith(f"buses.hat.device: {device}: no such serial device") for w in data["warnings"]
    )
