"""``edgegw run`` refuses, with one line and exit 3, what a restart cannot fix: systemd then
stops restarting it (``RestartPreventExitStatus=3``) instead of looping on a traceback. A missing
serial device is reported, and the gateway runs capped at its fallback limits."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edgegw.config import Config
from edgegw.startcheck import serial_problems

EXIT_CONFIG = 3


def config_text(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "edgegw.toml"
    path.write_text(
        f"""
[server]
port = 0
[store]
path = "{tmp_path / "edgegw.db"}"
[control]
socket = "{tmp_path / "control.sock"}"
group = ""
[daemon]
hardware_dir = "{tmp_path / "hardware"}"
{extra}
""",
        encoding="utf-8",
    )
    return path


def run(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgegw", "run", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            '[[chargers]]\nid = "CP1"\nmodel = "teapot"\n',
            "edgegw: cannot start: chargers[0].model: no charger model 'teapot'",
        ),
        (
            '[buses.main]\ntransport = "tcp"\nhost = "127.0.0.1"\n'
            '[[meters]]\nprofile = "acme-9000"\n',
            "edgegw: cannot start: meters[0].profile: no meter profile 'acme-9000'",
        ),
        (
            '[buses.main]\ntransport = "tcp"\nhost = "127.0.0.1"\n'
            '[[meters]]\nprofile = "generic"\n',
            "edgegw: cannot start: meters[0].profile: meter profile 'generic'",
        ),
    ],
    ids=["unknown-charger-model", "unknown-meter-profile", "template-meter-profile"],
)
def test_a_bad_device_file_exits_3_in_one_line(tmp_path: Path, extra: str, expected: str) -> None:
    result = run(config_text(tmp_path, extra))
    assert result.returncode == EXIT_CONFIG, result.stderr
    assert "Traceback" not in result.stderr
    first = result.stderr.splitlines()[0]
    assert first.startswith(expected), result.stderr
    assert not (tmp_path / "edgegw.db").exists()  # nothing was started


def test_a_broken_site_charger_model_exits_3(tmp_path: Path) -> None:
    chargers = tmp_path / "hardware" / "chargers"
    chargers.mkdir(parents=True)
    (chargers / "keba-p30.toml").write_text("not toml [", encoding="utf-8")
    result = run(config_text(tmp_path, '[[chargers]]\nid = "CP1"\n'))
    assert result.returncode == EXIT_CONFIG, result.stderr
    assert "Traceback" not in result.stderr
    assert f"cannot start: {chargers / 'keba-p30.toml'}: not valid TOML" in result.stderr


def test_a_missing_serial_device_is_reported_and_the_gateway_runs_capped_safe(
    tmp_path: Path,
) -> None:
    """Without its RS-485 adapter the gateway still serves the chargers (at the fallback
    limits); stopping would leave them with no server and no cap at all."""
    device = tmp_path / "ttyS9"
    extra = (
        f'[buses.hat]\ntransport = "rtu"\ndevice = "{device}"\n'
        '[[meters]]\nbus = "hat"\nprofile = "eastron-sdm630"\n'
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "edgegw", "run", "--config", str(config_text(tmp_path, extra))],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stderr is not None
        lines = []
        for line in process.stderr:
            lines.append(line)
            if "edgegw ready" in line:
                break
        assert any(
            line.startswith(f"edgegw: buses.hat.device: {device}: no such serial device")
            and "fallback" in line
            for line in lines
        ), lines
        assert process.poll() is None, lines  # running, not exited
    finally:
        process.terminate()
        rest = process.communicate(timeout=30)[1]
    assert process.returncode == 0, rest
    assert "Traceback" not in "".join(lines) + rest


def test_a_serial_device_that_appears_during_the_grace_is_fine(tmp_path: Path) -> None:
    device = tmp_path / "ttyUSB0"
    config = Config.model_validate({"buses": {"b": {"transport": "rtu", "device": str(device)}}})
    now = [0.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds
        if len(waits) == 3:
            device.write_text("")  # the adapter shows up

    assert serial_problems(config, grace=5, sleep=sleep, clock=lambda: now[0]) == []
    assert len(waits) == 3
    device.unlink()
    (problem,) = serial_problems(config, grace=0)
    assert problem.startswith(f"buses.b.device: {device}: no such serial device")
