"""The meter service reads the site's hardware catalogue: a site-local profile serves a meter,
in the daemon and in ``config check``, and the shipped ones are found in an installed wheel."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgegw.cli.main import app
from edgegw.config import Config
from edgegw.energy.meters import (
    MeterConfigError,
    MeterService,
    TemplateProfileError,
    default_profiles_dir,
    find_profile,
)

HARDWARE = Path(__file__).resolve().parents[2] / "hardware"


def site_profile(tmp_path: Path) -> Path:
    folder = tmp_path / "hardware" / "meters"
    folder.mkdir(parents=True)
    text = (HARDWARE / "meters" / "eastron-sdm630.toml").read_text(encoding="utf-8")
    (folder / "acme-9000.toml").write_text(
        text.replace('id = "eastron-sdm630"', 'id = "acme-9000"'), encoding="utf-8"
    )
    return tmp_path / "hardware"


def config(hardware: Path, profile: str) -> Config:
    return Config.model_validate(
        {
            "daemon": {"hardware_dir": str(hardware)},
            "buses": {"main": {"transport": "tcp", "host": "127.0.0.1"}},
            "meters": [{"profile": profile}],
        }
    )


def test_the_meter_service_reads_a_site_profile(tmp_path: Path) -> None:
    hardware = site_profile(tmp_path)
    service = MeterService(config(hardware, "acme-9000"))
    assert service.pollers["site"].profile.id == "acme-9000"
    with pytest.raises(MeterConfigError, match=r"no meter profile 'acme-9000'"):
        MeterService(config(tmp_path / "elsewhere", "acme-9000"))


def test_find_profile_defaults_to_the_shipped_files() -> None:
    assert default_profiles_dir().is_dir()
    assert find_profile("eastron-sdm630").id == "eastron-sdm630"
    with pytest.raises(TemplateProfileError, match="is a template"):
        find_profile("generic", allow_template=False)


def test_config_check_accepts_a_site_meter_profile(tmp_path: Path) -> None:
    hardware = site_profile(tmp_path)
    path = tmp_path / "edgegw.toml"
    path.write_text(
        f'[daemon]\nhardware_dir = "{hardware}"\n'
        '[buses.main]\ntransport = "tcp"\nhost = "10.0.0.5"\n'
        '[[meters]]\nprofile = "acme-9000"\n',
        encoding="utf-8",
    )
    result = CliRunner().invoke(app, ["config", "check", str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["problems"] == []
