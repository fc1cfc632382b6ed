"""The hardware catalogue: shipped device files through importlib.resources, and the site's own
folder that adds devices or replaces a shipped file."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgegw.config import Config
from edgegw.energy.chargermodels import model_to_toml
from edgegw.hardware_catalogue import (
    HardwareCatalogue,
    HardwareError,
    Kind,
    TemplateProfileError,
    shipped_files,
)

HARDWARE = Path(__file__).resolve().parents[2] / "hardware"


def site_with(tmp_path: Path, kind: str, name: str, text: str) -> Path:
    folder = tmp_path / "site" / kind
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.toml").write_text(text, encoding="utf-8")
    return tmp_path / "site"


def renamed_meter(source: str, new_id: str, new_name: str) -> str:
    text = (HARDWARE / "meters" / f"{source}.toml").read_text(encoding="utf-8")
    old_name = next(line for line in text.splitlines() if line.startswith("name = "))
    return text.replace(f'id = "{source}"', f'id = "{new_id}"').replace(
        old_name, f'name = "{new_name}"'
    )


@pytest.mark.parametrize("kind", ["meters", "chargers"])
def test_the_shipped_files_are_the_hardware_folder(kind: Kind) -> None:
    catalogue = HardwareCatalogue(None)
    assert set(catalogue.files(kind)) == {p.stem for p in (HARDWARE / kind).glob("*.toml")}
    assert not any(f.site for f in catalogue.files(kind).values())
    assert (shipped_files() / "README.md").is_file()


def test_every_shipped_file_loads() -> None:
    catalogue = HardwareCatalogue(None)
    loaded, broken = catalogue.meter_profiles()
    assert broken == {}
    assert set(loaded) == {p.stem for p in (HARDWARE / "meters").glob("*.toml")}
    assert set(catalogue.charger_models()) == {
        p.stem for p in (HARDWARE / "chargers").glob("*.toml")
    }


def test_a_site_meter_profile_overrides_a_shipped_one_and_adds_a_new_one(tmp_path: Path) -> None:
    site = site_with(
        tmp_path, "meters", "abb-b23", renamed_meter("abb-b23", "abb-b23", "ABB B23 as wired here")
    )
    site_with(tmp_path, "meters", "acme-9000", renamed_meter("abb-b23", "acme-9000", "ACME 9000"))
    catalogue = HardwareCatalogue(site)

    assert catalogue.meter_profile("abb-b23").name == "ABB B23 as wired here"
    assert catalogue.meter_profile("acme-9000").name == "ACME 9000"
    assert catalogue.meter_profile("eastron-sdm630").id == "eastron-sdm630"  # still shipped
    files = catalogue.files("meters")
    assert files["abb-b23"].site and files["acme-9000"].site and not files["generic"].site
    loaded, broken = catalogue.meter_profiles()
    assert broken == {}
    assert loaded["abb-b23"].name == "ABB B23 as wired here" and "acme-9000" in loaded
    # The shipped catalogue alone does not see them.
    assert HardwareCatalogue(None).meter_profile("abb-b23").name != "ABB B23 as wired here"


def test_a_site_charger_model_overrides_a_shipped_one_and_adds_a_new_one(tmp_path: Path) -> None:
    shipped = HardwareCatalogue(None)
    keba = shipped.charger_model("keba-p30")
    override = keba.model_copy(update={"min_current_a": 8.0})
    new = keba.model_copy(update={"id": "acme-home", "name": "ACME Home"})
    site = site_with(tmp_path, "chargers", "keba-p30", model_to_toml(override))
    site_with(tmp_path, "chargers", "acme-home", model_to_toml(new))
    catalogue = HardwareCatalogue(site)

    assert keba.min_current_a != 8.0
    assert catalogue.charger_model("keba-p30").min_current_a == 8.0
    assert catalogue.charger_model("acme-home").name == "ACME Home"
    models = catalogue.charger_models()
    assert models["keba-p30"].min_current_a == 8.0
    assert set(models) == set(shipped.charger_models()) | {"acme-home"}


def test_an_unknown_device_names_what_there_is(tmp_path: Path) -> None:
    catalogue = HardwareCatalogue(tmp_path / "site")
    with pytest.raises(HardwareError) as meter:
        catalogue.meter_profile("acme-9000")
    message = str(meter.value)
    assert "no meter profile 'acme-9000'" in message
    assert str(tmp_path / "site" / "meters") in message and "eastron-sdm630" in message
    with pytest.raises(HardwareError, match=r"no charger model 'teapot'.*known models: .*keba-p30"):
        catalogue.charger_model("teapot")


def test_a_template_is_refused_for_a_real_meter_and_says_where_to_copy_it(tmp_path: Path) -> None:
    catalogue = HardwareCatalogue(tmp_path / "site")
    assert catalogue.meter_profile("generic").template
    with pytest.raises(TemplateProfileError, match="is a template") as info:
        catalogue.meter_profile("generic", allow_template=False)
    assert f"Copy it to {tmp_path / 'site' / 'meters'}/<vendor>-<model>.toml" in str(info.value)


def test_a_broken_site_file_is_named(tmp_path: Path) -> None:
    site = site_with(tmp_path, "meters", "broken", 'format = 1\nid = "broken"\nnmae = "typo"\n')
    site_with(tmp_path, "chargers", "keba-p30", "not toml [")
    catalogue = HardwareCatalogue(site)
    with pytest.raises(HardwareError, match="meter profile 'broken' is invalid") as meter:
        catalogue.meter_profile("broken")
    assert any("nmae: unknown key" in p for p in meter.value.problems)
    _, broken = catalogue.meter_profiles()
    assert list(broken) == [str(site / "meters" / "broken.toml")]
    with pytest.raises(HardwareError, match=r"keba-p30\.toml: not valid TOML"):
        catalogue.charger_models()
    with pytest.raises(HardwareError, match=r"keba-p30\.toml: not valid TOML"):
        catalogue.charger_model("keba-p30")


def test_the_configuration_names_the_site_folder(tmp_path: Path) -> None:
    site = site_with(tmp_path, "meters", "acme-9000", renamed_meter("abb-b23", "acme-9000", "A"))
    config = Config.model_validate(
        {
            "daemon": {"hardware_dir": str(site)},
            "buses": {"main": {"transport": "tcp", "host": "10.0.0.5"}},
            "meters": [{"profile": "acme-9000"}],
            "chargers": [{"id": "CP1", "model": "keba-p30"}, {"id": "CP2", "model": "teapot"}],
        }
    )
    assert Config().daemon.hardware_dir == Path("/etc/edgegw/hardware")
    catalogue = HardwareCatalogue.for_config(config)
    assert catalogue.site_folder("chargers") == site / "chargers"
    (problem,) = catalogue.check_config(config)
    assert problem.startswith("chargers[1].model: no charger model 'teapot'")

    path = tmp_path / "edgegw.toml"
    path.write_text(f'[daemon]\nhardware_dir = "{site}"\n[[chargers]]\nid = "CP1"\n')
    assert HardwareCatalogue.for_config_file(path).site_dir == site
    assert HardwareCatalogue.for_config_file(tmp_path / "none.toml").site_dir == Path(
        "/etc/edgegw/hardware"
    )


def test_only_one_folder_for_tools_given_a_directory(tmp_path: Path) -> None:
    folder = tmp_path / "profiles"
    folder.mkdir()
    (folder / "acme-9000.toml").write_text(renamed_meter("abb-b23", "acme-9000", "ACME"))
    catalogue = HardwareCatalogue.of_folder("meters", folder)
    assert list(catalogue.files("meters")) == ["acme-9000"]
    with pytest.raises(HardwareError, match=rf"no meter profile 'abb-b23' in {folder} "):
        catalogue.meter_profile("abb-b23")
