"""``edgegw config check``: every problem at once, and what the file refers to."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from edgegw.cli.main import app

runner = CliRunner()

METER = """
[buses.main]
transport = "tcp"
host = "10.0.0.5"

[[meters]]
profile = "{profile}"
"""


def check(path: Path, *extra: str) -> tuple[int, Any]:
    result = runner.invoke(app, ["config", "check", str(path), "--json", *extra])
    return result.exit_code, json.loads(result.stdout)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "edgegw.toml"
    path.write_text(text)
    return path


def test_ok_summary_in_text_and_json(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[cloud]\nurl = "wss://csms.example.com/ocpp"\n[site]\nlimit_a = 63\n'
        + METER.format(profile="eastron-sdm630")
        + '[[chargers]]\nid = "CP1"\n',
    )
    result = runner.invoke(app, ["config", "check", str(path)])
    assert result.exit_code == 0, result.output
    assert "OK — 1 charger(s), 1 meter(s)" in result.stdout
    code, data = check(path)
    assert code == 0
    assert data["ok"] is True and data["problems"] == []
    assert data["site_limit_a"] == [63, 63, 63]
    assert data["meters"] == ["site: eastron-sdm630 unit 1"]


def test_every_field_problem_is_listed(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[server]\nport = -1\n[cloud]\nurl = "http://x"\n'
        '[[chargers]]\nid = "a/b"\n[[chargers]]\nid = "CP2"\nmax_current_a = 3\n[extra]\n',
    )
    code, data = check(path)
    assert code == 3
    keys = {str(p).split(":")[0] for p in data["problems"]}
    assert keys == {
        "server.port",
        "cloud.url",
        "chargers[0].id",
        "chargers[1].max_current_a",
        "extra",
    }
    result = runner.invoke(app, ["config", "check", str(path)])
    assert result.exit_code == 3
    assert "5 problem(s)" in result.output and "run `edgegw config check" in result.output


def test_every_cross_section_problem_is_listed(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[site]\nlimit_a = 20\n"
        '[[meters]]\nname = "a"\nbus = "nowhere"\nprofile = "eastron-sdm630"\nrole = "monitor"\n'
        '[[chargers]]\nid = "CP1"\nfallback_current_a = 16\n'
        '[[chargers]]\nid = "CP2"\nfallback_current_a = 16\n',
    )
    code, data = check(path)
    assert code == 3
    text = "\n".join(data["problems"])
    assert "meters[0].bus: no [buses.nowhere] section" in text
    assert "load capping needs a meter with role = 'site'" in text
    assert "fallback_current_a adds up to 32 A on L1" in text


def test_missing_meter_profile_and_charger_model(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        METER.format(profile="nosuchmeter") + '[[chargers]]\nid = "CP1"\nmodel = "nosuchcharger"\n',
    )
    code, data = check(path)
    assert code == 3
    problems = data["problems"]
    assert isinstance(problems, list) and len(problems) == 2
    assert problems[0].startswith("meters[0].profile: no meter profile 'nosuchmeter'")
    assert "available: abb-b23" in problems[0]
    assert problems[1].startswith("chargers[0].model:") and "generic-ocpp16" in problems[1]


def test_template_profile_is_refused(tmp_path: Path) -> None:
    code, data = check(write(tmp_path, METER.format(profile="generic")))
    assert code == 3
    (problem,) = data["problems"]
    assert problem.startswith("meters[0].profile:") and "is a template" in problem


def test_secret_files_missing_and_too_open(tmp_path: Path) -> None:
    secret = tmp_path / "cp1.secret"
    path = write(
        tmp_path,
        f'[cloud]\nurl = "wss://csms.example.com/ocpp"\n'
        f'[[chargers]]\nid = "CP1"\ncloud_password = {{ file = "{secret}" }}\n',
    )
    code, data = check(path)
    assert code == 3
    assert data["problems"] == [
        f"chargers[0].cloud_password: cannot read secret from {secret}: No such file or directory"
    ]

    secret.write_text("s3cret-cloud-password\n")
    secret.chmod(0o644)
    code, data = check(path)
    assert code == 0
    assert any("can be read by other users" in w for w in data["warnings"])
    secret.chmod(0o600)
    code, data = check(path)
    assert code == 0 and not any("other users" in w for w in data["warnings"])


def test_tls_ca_file_must_exist(tmp_path: Path) -> None:
    path = write(
        tmp_path, f'[cloud]\nurl = "wss://csms.example.com/ocpp"\nca_file = "{tmp_path}/ca.pem"\n'
    )
    code, data = check(path)
    assert code == 3
    assert data["problems"] == [f"cloud: ca_file {tmp_path}/ca.pem does not exist"]
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    assert check(path)[0] == 0


def test_systemd_credentials_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    path = write(
        tmp_path,
        '[cloud]\nurl = "wss://csms.example.com/ocpp"\n'
        '[[chargers]]\nid = "CP1"\ncloud_password = { credential = "cp1-cloud" }\n',
    )
    code, data = check(path)
    assert code == 3 and "CREDENTIALS_DIRECTORY" in str(data["problems"])
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "cp1-cloud").write_text("from-a-credential\n")
    code, data = check(path, "--credentials-dir", str(creds))
    assert code == 0, data


def test_file_defaults_to_config_option_and_env(tmp_path: Path) -> None:
    path = write(tmp_path, '[[chargers]]\nid = "CP1"\n')
    result = runner.invoke(app, ["config", "check", "-c", str(path)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["config", "check"], env={"EDGEGW_CONFIG": str(path)})
    assert result.exit_code == 0, result.output
    assert str(path) in result.stdout


def test_missing_file_says_how_to_create_one(tmp_path: Path) -> None:
    code, data = check(tmp_path / "none.toml")
    assert code == 3
    assert data["problems"] == ["file not found (create one with 'edgegw init')"]


def test_cross_section_problems_are_listed_next_to_field_errors(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[server]\nport = -1\n[site]\nlimit_a = 20\n"
        '[[meters]]\nbus = "nowhere"\nprofile = "eastron-sdm630"\n'
        '[[chargers]]\nid = "CP1"\n[[chargers]]\nid = "cp1"\n',
    )
    code, data = check(path)
    assert code == 3
    assert data["problems"] == [
        "server.port: Input should be greater than or equal to 0",
        "chargers: charger id 'cp1' is listed twice",
        "meters[0].bus: no [buses.nowhere] section (defined: none)",
    ]


def test_problems_that_used_to_come_in_rounds_come_at_once(tmp_path: Path) -> None:
    """Field errors hid the sections' own rules, those hid the whole-file checks, and those
    hid the references (a meter profile, a serial adapter): one run now lists them all."""
    path = write(
        tmp_path,
        "[server]\nport = -1\ntls_port = 9443\n"  # a field error, then a section rule
        '[buses.rs485]\ntransport = "rtu"\ndevice = "/dev/ttyEDGEGW-MISSING"\n'
        '[[meters]]\nname = "grid"\nbus = "rs485"\nprofile = "nosuchmeter"\n'
        '[[chargers]]\nid = "CP1"\nlabel = 5\nmax_current_a = 10\nfallback_current_a = 12\n'
        '[[chargers]]\nid = "CP2"\nsecurity_profile = 2\n'  # a whole-file check
        '[[chargers]]\nid = "CP3"\nmodel = "nosuchcharger"\n',
    )
    code, data = check(path)
    assert code == 3
    keys = [p.split(":", 1)[0] for p in data["problems"]]
    assert keys == [
        "server.port",
        "chargers[0].label",
        "server",
        "chargers[0]",
        "chargers[1].security_profile",
        "chargers[1].password_hash",
        "meters[0].profile",
        "chargers[2].model",
    ], data["problems"]
    assert "tls_port needs tls_cert_file" in data["problems"][2]
    assert "fallback_current_a cannot exceed max_current_a" in data["problems"][3]
    assert "profile 2 needs TLS" in data["problems"][4]
    (warning,) = [w for w in data["warnings"] if "ttyEDGEGW-MISSING" in w]
    assert warning.startswith("buses.rs485.device: /dev/ttyEDGEGW-MISSING: no such serial device")
    assert "counts its meters as lost" in warning
