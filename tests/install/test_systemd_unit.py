"""The systemd unit: what it lets the daemon open, and which exit code ends its restarts."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from edgegw.cli.output import EXIT_CONFIG

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "edgegw.service"


def settings(name: str) -> list[str]:
    """Every value of ``name`` in the unit (keys may repeat)."""
    values = []
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == name:
            values.append(value.strip())
    return values


def test_the_serial_devices_rs485_adapters_and_hats_use_are_allowed() -> None:
    assert settings("DevicePolicy") == ["closed"]
    allowed = {value.split()[0]: value.split()[1] for value in settings("DeviceAllow")}
    for group in ("ttyS", "ttySC", "ttyAMA", "ttyUSB", "ttyACM"):
        assert allowed.get(f"char-{group}") == "rw", f"/dev/{group}* is refused"
    assert "dialout" in settings("SupplementaryGroups")


def test_the_exit_code_for_a_bad_site_stops_the_restarts() -> None:
    assert settings("Restart") == ["on-failure"]
    assert str(EXIT_CONFIG) in " ".join(settings("RestartPreventExitStatus")).split()
    assert settings("Type") == ["notify"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_accepts_every_line(tmp_path: Path) -> None:
    """systemd ignores a line it cannot parse (a glob in a DeviceAllow= path, say) with only
    a warning: ``verify`` must say nothing at all."""
    unit = tmp_path / "edgegw.service"
    unit.write_text(
        UNIT.read_text(encoding="utf-8").replace("/opt/edgegw/bin/edgegw", "/bin/true"),
        encoding="utf-8",
    )
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0 and result.stderr == "", result.stderr
