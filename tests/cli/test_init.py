"""``edgegw init``: the wizard (answers fed on stdin) and the same through flags.

Every written file must load with the gateway's own loader and pass ``edgegw config check``;
secrets must end up in 0600 files or as hashes, never in the configuration or the output.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgegw.auth.passwords import verify_password
from edgegw.cli.main import app
from edgegw.config import load_config

runner = CliRunner()

CLOUD_SECRET = "cloud-secret-for-cp1"
CHARGER_SECRET = "a-long-charger-password"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def check_ok(path: Path) -> None:
    result = runner.invoke(app, ["config", "check", str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["problems"] == []


def flags_init(path: Path, *extra: str) -> list[str]:
    """``init --yes``; standalone unless a cloud is given, the meter measuring the chargers
    too when load capping is asked for (--yes needs both said)."""
    choices = [] if {"--cloud-url", "--standalone"} & set(extra) else ["--standalone"]
    if "--site-limit" in extra and "--meter-role" not in extra:
        choices += ["--meter-role", "grid"]
    return ["init", "-c", str(path), "--yes", *choices, *extra]


def test_flags_write_a_valid_commented_file_and_keep_secrets_out(tmp_path: Path) -> None:
    path = tmp_path / "etc" / "edgegw.toml"
    passwords = tmp_path / "cloud.txt"
    passwords.write_text(f"# from the operator\nCP1={CLOUD_SECRET}\n")
    result = runner.invoke(
        app,
        flags_init(
            path,
            "--charger",
            "CP1",
            "--charger",
            "CP2",
            "--cloud-url",
            "wss://csms.example.com/ocpp/",
            "--cloud-passwords",
            str(passwords),
            "--generate-charger-passwords",
            "--site-limit",
            "63,63,40",
            "--fallback-ev",
            "10",
            "--max-current",
            "32",
            "--meter-profile",
            "eastron_sdm630",
            "--meter-tcp",
            "10.0.0.5:5020",
            "--unit-id",
            "3",
        ),
    )
    assert result.exit_code == 0, result.output
    text = path.read_text()
    assert CLOUD_SECRET not in text and CLOUD_SECRET not in result.output
    assert text.startswith("# edgegw configuration") and "# main fuse per phase" in text
    assert mode(path) == 0o640

    secret = tmp_path / "etc" / "secrets" / "CP1.cloud-password"
    assert mode(secret) == 0o600 and secret.read_text() == CLOUD_SECRET + "\n"
    assert not (tmp_path / "etc" / "secrets" / "CP2.cloud-password").exists()
    generated_file = tmp_path / "etc" / "secrets" / "charger-passwords.txt"
    assert mode(generated_file) == 0o600
    generated = dict(
        line.split("=", 1)
        for line in generated_file.read_text().splitlines()
        if not line.startswith("#")
    )
    assert set(generated) == {"CP1", "CP2"}
    assert all(pw not in text and pw not in result.output for pw in generated.values())

    cfg = load_config(path)
    cp1, cp2 = cfg.chargers
    assert cp1.cloud_password is not None
    assert cp1.cloud_password.get_secret_value() == CLOUD_SECRET
    assert cp2.cloud_password is None
    assert cp1.password_hash and verify_password(cp1.password_hash, generated["CP1"])
    assert cp2.password_hash and verify_password(cp2.password_hash, generated["CP2"])
    assert cp1.max_current_a == 32
    assert cfg.cloud is not None and cfg.cloud.url == "wss://csms.example.com/ocpp"
    assert cfg.site is not None and cfg.site.limits() == (63, 63, 40)
    assert cfg.site.fallback() == (10, 10, 10)
    bus = cfg.buses["main"]
    assert (bus.transport, bus.host, bus.port) == ("tcp", "10.0.0.5", 5020)
    assert [(m.profile, m.unit_id, m.role) for m in cfg.meters] == [("eastron-sdm630", 3, "site")]
    check_ok(path)


def test_rtu_meter_takes_the_profiles_serial_defaults(tmp_path: Path) -> None:
    path = tmp_path / "edgegw.toml"
    result = runner.invoke(
        app,
        flags_init(
            path,
            "--standalone",
            "--charger",
            "CP1",
            "--site-limit",
            "40",
            "--meter-profile",
            "janitza-umg96rm",
            "--meter-rtu",
            "/dev/ttyUSB1",
        ),
    )
    assert result.exit_code == 0, result.output
    cfg = load_config(path)
    bus = cfg.buses["main"]
    assert (bus.device, bus.baudrate, bus.parity, bus.stopbits) == ("/dev/ttyUSB1", 115200, "N", 2)
    assert cfg.cloud is None
    check_ok(path)


def test_json_output(tmp_path: Path) -> None:
    path = tmp_path / "edgegw.toml"
    result = runner.invoke(
        app, ["init", "-c", str(path), "--json", "--standalone", "--charger", "CP1"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["ok"] is True and data["config"] == str(path)
    assert data["next"][0] == f"edgegw config check {path}"
    check_ok(path)


def test_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    path = tmp_path / "edgegw.toml"
    path.write_text("# hand-made\n")
    result = runner.invoke(app, flags_init(path, "--charger", "CP1"))
    assert result.exit_code == 1
    assert "already exists" in result.output and "--force" in result.output
    assert path.read_text() == "# hand-made\n"

    result = runner.invoke(app, flags_init(path, "--charger", "CP1", "--force"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "edgegw.toml.bak").read_text() == "# hand-made\n"
    assert [c.id for c in load_config(path).chargers] == ["CP1"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--charger", "a/b"], "charger id 'a/b'"),
        (["--charger", "CP1", "--charger", "cp1"], "given twice"),
        (["--cloud-url", "http://csms.example.com"], "ws:// or wss://"),
        (["--site-limit", "63"], "needs the building meter"),
        (["--site-limit", "2", "--margin", "2"], "margin_a"),
        (
            ["--meter-profile", "nosuchmeter", "--meter-tcp", "10.0.0.5"],
            "available: abb-b23",
        ),
        (["--meter-profile", "generic", "--meter-tcp", "10.0.0.5"], "template"),
        (["--meter-profile", "eastron-sdm630"], "--meter-tcp HOST[:PORT] or --meter-rtu"),
        (["--unknown-cards", "maybe"], "reject or accept"),
    ],
)
def test_bad_flags_are_usage_errors_and_write_nothing(
    tmp_path: Path, extra: list[str], message: str
) -> None:
    path = tmp_path / "edgegw.toml"
    result = runner.invoke(app, flags_init(path, *extra))
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not path.exists()


def test_password_file_naming_an_unknown_charger(tmp_path: Path) -> None:
    passwords = tmp_path / "pw.txt"
    passwords.write_text("CP9=some-password\n")
    path = tmp_path / "edgegw.toml"
    result = runner.invoke(
        app,
        flags_init(
            path,
            "--charger",
            "CP1",
            "--cloud-url",
            "wss://c.example.com/ocpp",
            "--cloud-passwords",
            str(passwords),
        ),
    )
    assert result.exit_code == 2
    assert "CP9" in result.output and not path.exists()


def test_charger_passwords_from_stdin_are_hashed(tmp_path: Path) -> None:
    path = tmp_path / "edgegw.toml"
    result = runner.invoke(
        app,
        flags_init(path, "--charger", "CP1", "--charger-passwords", "-"),
        input=f"CP1={CHARGER_SECRET}\n",
    )
    assert result.exit_code == 0, result.output
    assert CHARGER_SECRET not in path.read_text()
    (cp1,) = load_config(path).chargers
    assert cp1.password_hash and verify_password(cp1.password_hash, CHARGER_SECRET)


def answers(*lines: str) -> str:
    return "\n".join(lines) + "\n"


def test_wizard_asks_rechecks_bad_answers_and_writes(tmp_path: Path) -> None:
    path = tmp_path / "edgegw.toml"
    result = runner.invoke(
        app,
        ["init", "-c", str(path)],
        input=answers(
            "CP1 bad/id",  # refused: '/' is not allowed in an identity
            "CP1 CP2",
            "http://csms.example.com",  # refused: not ws:// or wss://
            "wss://csms.example.com/ocpp",
            CLOUD_SECRET,  # cloud password CP1, and its confirmation
            CLOUD_SECRET,
            "",  # CP2 has none (confirmed empty)
            "",
            "y",  # the chargers log in with a password
            CHARGER_SECRET,
            CHARGER_SECRET,
            "",  # CP2: generate one
            "",
            "63,63,40",
            "",  # margin: default 2 A
            "90",  # refused: above the fuse minus the margin
            "12",  # while the meter is lost: 12 A for all chargers
            "nosuchmeter",  # refused: no such profile
            "",  # default profile eastron-sdm630
            "",  # rtu (the profile's bus)
            "/dev/ttyUSB7",
            "",  # baud rate: profile default
            "e",  # parity even
            "",  # stop bits default
            "300",  # refused: unit ids end at 247
            "5",
            "n",  # the meter measures only the rest of the building
            "",  # write it: yes
        ),
    )
    assert result.exit_code == 0, result.output
    assert result.output.count("✗") == 5
    assert CLOUD_SECRET not in result.output and CHARGER_SECRET not in result.output
    cfg = load_config(path)
    assert [c.id for c in cfg.chargers] == ["CP1", "CP2"]
    cp1, cp2 = cfg.chargers
    assert cp1.cloud_password is not None
    assert cp1.cloud_password.get_secret_value() == CLOUD_SECRET
    assert cp1.password_hash and verify_password(cp1.password_hash, CHARGER_SECRET)
    assert cp2.password_hash is not None
    assert (tmp_path / "secrets" / "charger-passwords.txt").read_text().count("CP2=") == 1
    bus = cfg.buses["main"]
    assert (bus.device, bus.baudrate, bus.parity) == ("/dev/ttyUSB7", 9600, "E")
    assert cfg.meters[0].unit_id == 5
    assert cfg.site is not None and cfg.site.limits() == (63, 63, 40)
    assert cfg.site.meter_role == "non_ev" and cfg.site.fallback() == (12, 12, 12)
    assert "the meter measures the building without the chargers" in result.output
    assert "12 A for all chargers while the meter is lost" in result.output
    check_ok(path)


def test_yes_needs_the_choices_that_change_what_the_site_does(tmp_path: Path) -> None:
    path = tmp_path / "edgegw.toml"
    bare = runner.invoke(app, ["init", "-c", str(path), "--yes"])
    assert (
        bare.exit_code == 2 and "--cloud-url URL" in bare.output and "--standalone" in bare.output
    )
    assert not path.exists()
    capped = runner.invoke(
        app,
        [
            "init",
            "-c",
            str(path),
            "--yes",
            "--standalone",
            "--site-limit",
            "40",
            "--meter-profile",
            "eastron-sdm630",
            "--meter-tcp",
            "10.0.0.5",
        ],
    )
    assert capped.exit_code == 2 and "--meter-role" in capped.output and not path.exists()
    empty = runner.invoke(app, ["init", "-c", str(path), "--yes", "--standalone"])
    assert empty.exit_code == 0, empty.output
    assert "Warning: no chargers configured" in empty.output
    assert "edgegw chargers add ID" in empty.output


def test_the_generated_password_file_is_what_charger_passwords_reads(tmp_path: Path) -> None:
    first = tmp_path / "one" / "edgegw.toml"
    made = runner.invoke(app, flags_init(first, "--charger", "CP1", "--generate-charger-passwords"))
    assert made.exit_code == 0, made.output
    generated = tmp_path / "one" / "secrets" / "charger-passwords.txt"
    again = tmp_path / "two" / "edgegw.toml"
    reused = runner.invoke(
        app, flags_init(again, "--charger", "CP1", "--charger-passwords", str(generated))
    )
    assert reused.exit_code == 0, reused.output
    (old,) = load_config(first).chargers
    (new,) = load_config(again).chargers
    password = next(
        line.split("=", 1)[1]
        for line in generated.read_text().splitlines()
        if line.startswith("CP1=")
    )
    assert old.password_hash and verify_password(old.password_hash, password)
    assert new.password_hash and verify_password(new.password_hash, password)


def test_wizard_standalone_without_meter(tmp_path: Path) -> None:
    path = tmp_path / "edgegw.toml"
    result = runner.invoke(
        app,
        ["init", "-c", str(path), "--charger", "CP1"],
        input=answers("", "n", "", "n", "y"),  # standalone, no passwords, no capping, no meter
    )
    assert result.exit_code == 0, result.output
    cfg = load_config(path)
    assert cfg.cloud is None and cfg.site is None and cfg.meters == []
    check_ok(path)


def test_wizard_declined_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "edgegw.toml"
    result = runner.invoke(
        app,
        ["init", "-c", str(path), "--charger", "CP1", "--standalone"],
        input=answers("n", "", "n", "n"),
    )
    assert result.exit_code == 1
    assert "nothing was written" in result.output
    assert not path.exists()
