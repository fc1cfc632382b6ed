"""Shell completion: the scripts install, and Tab suggests the site's charger ids and more."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgegw.cli.main import app

runner = CliRunner()


@pytest.fixture
def site(tmp_path: Path) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(
        '[[chargers]]\nid = "CP1"\nlabel = "Bay 1"\n'
        '[[chargers]]\nid = "CP2"\n'
        '[[chargers]]\nid = "Garage-3"\n'
        '[buses.main]\ntransport = "tcp"\nhost = "127.0.0.1"\n'
        '[[meters]]\nprofile = "eastron-sdm630"\n'
        '[[meters]]\nname = "pv"\nrole = "monitor"\nprofile = "abb-b23"\n'
    )
    return path


def zsh(line: str, config: Path | None = None) -> list[str]:
    """What zsh would offer for ``line`` (the values, without their help texts)."""
    env = {"_EDGEGW_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": line}
    env["EDGEGW_CONFIG"] = str(config) if config is not None else "/nonexistent/edgegw.toml"
    result = runner.invoke(app, [], env=env)
    assert result.exit_code == 0, result.output
    assert not result.stderr
    inside = result.stdout.partition("(")[2].rpartition(")")[0].strip("()")
    return [item.split('":"')[0].strip('"') for item in inside.split("\n") if item]


def test_charger_ids_from_the_configuration(site: Path) -> None:
    assert zsh("edgegw chargers show ", site) == ["CP1", "CP2", "Garage-3"]
    assert zsh("edgegw chargers show C", site) == ["CP1", "CP2"]
    assert zsh("edgegw commission G", site) == ["Garage-3"]
    assert zsh("edgegw sessions list --charger CP", site) == ["CP1", "CP2"]
    assert zsh("edgegw cards add 04A1B2C3 --charger ", site) == ["CP1", "CP2", "Garage-3"]
    assert zsh("edgegw cloud check --charger Ga", site) == ["Garage-3"]
    assert zsh("edgegw doctor --charger ", site) == ["CP1", "CP2", "Garage-3"]
    assert zsh("edgegw cards learn --charger CP2", site) == ["CP2"]


def test_labels_are_the_help_text_in_zsh(site: Path) -> None:
    env = {
        "_EDGEGW_COMPLETE": "complete_zsh",
        "_TYPER_COMPLETE_ARGS": "edgegw chargers show CP1",
        "EDGEGW_CONFIG": str(site),
    }
    assert '"CP1":"Bay 1"' in runner.invoke(app, [], env=env).stdout


def test_the_config_named_on_the_command_line_wins(site: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.toml"
    other.write_text('[[chargers]]\nid = "ELSEWHERE"\n')
    assert zsh(f"edgegw chargers show --config {other} ", site) == ["ELSEWHERE"]
    assert zsh(f"edgegw chargers remove -c {other} E", site) == ["ELSEWHERE"]


def test_bash_completion(site: Path) -> None:
    env = {
        "_EDGEGW_COMPLETE": "complete_bash",
        "COMP_WORDS": "edgegw chargers set-password ",
        "COMP_CWORD": "3",
        "EDGEGW_CONFIG": str(site),
    }
    result = runner.invoke(app, [], env=env)
    assert result.exit_code == 0
    assert result.stdout.split() == ["CP1", "CP2", "Garage-3"]


def test_new_ids_are_not_suggested_from_the_configured_ones(site: Path) -> None:
    assert zsh("edgegw chargers add ", site) == []
    assert zsh("edgegw chargers approve ", site) == []


def test_no_or_broken_configuration_means_no_suggestions(tmp_path: Path) -> None:
    assert zsh("edgegw chargers show ") == []
    broken = tmp_path / "broken.toml"
    broken.write_text("[[chargers]\nid = ")
    assert zsh("edgegw chargers show ", broken) == []
    odd = tmp_path / "odd.toml"
    odd.write_text('chargers = "not a list"\n[[meters]]\nname = 3\n')
    assert zsh("edgegw chargers show ", odd) == []
    assert zsh("edgegw meter probe --meter ", odd) == []


def test_meters_profiles_and_card_formats(site: Path) -> None:
    assert zsh("edgegw meter probe --meter ", site) == ["site", "pv"]
    assert zsh("edgegw meter probe --profile eastron", site) == [
        "eastron-sdm120",
        "eastron-sdm630",
        "eastron-sdm72dm-v2",
    ]
    assert zsh("edgegw meter scan --profile abb", site) == ["abb-b23"]
    assert zsh("edgegw init --meter-profile janitza", site) == [
        "janitza-b23",
        "janitza-umg96rm",
    ]
    assert zsh("edgegw cards add 04A1B2C3 --format dec_", site) == ["dec_le", "dec_be"]


def test_show_and_install_completion(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Without shell detection the options take the shell's name (the help shows the choices).
    monkeypatch.setenv("_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION", "1")
    monkeypatch.setenv("HOME", str(tmp_path))
    shown = runner.invoke(app, ["--show-completion", "bash"])
    assert shown.exit_code == 0
    assert "_EDGEGW_COMPLETE=complete_bash" in shown.stdout
    installed = runner.invoke(app, ["--install-completion", "bash"])
    assert installed.exit_code == 0, installed.output
    script = tmp_path / ".bash_completions" / "edgegw.sh"
    assert "_EDGEGW_COMPLETE=complete_bash" in script.read_text()
    assert str(script) in (tmp_path / ".bashrc").read_text()
