import itertools
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from edgegw.auth.passwords import verify_password
from edgegw.cli.main import app

runner = CliRunner()


def test_config_check_ok(tmp_path: Path) -> None:
    path = tmp_path / "edgegw.toml"
    path.write_text('[cloud]\nurl = "ws://csms.example.com/ocpp"\n[[chargers]]\nid = "CP1"\n')
    result = runner.invoke(app, ["config", "check", str(path)])
    assert result.exit_code == 0, result.output
    assert "OK" in result.output and "1 charger(s)" in result.output
    result = runner.invoke(app, ["config", "check", str(path), "--json"])
    assert json.loads(result.output)["ok"] is True


def test_config_check_lists_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "edgegw.toml"
    path.write_text('[server]\nport = -1\n[[chargers]]\nid = "a/b"\n[extra]\n')
    result = runner.invoke(app, ["config", "check", str(path), "--json"])
    assert result.exit_code == 3
    problems = json.loads(result.output)["problems"]
    assert {p.split(":")[0] for p in problems} == {"server.port", "chargers[0].id", "extra"}


def test_config_check_missing_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["config", "check", str(tmp_path / "none.toml")])
    assert result.exit_code == 3
    assert "file not found" in result.output


def test_password_hash_from_stdin() -> None:
    result = runner.invoke(app, ["password-hash", "--stdin"], input="a-long-password-1\n")
    assert result.exit_code == 0
    assert verify_password(result.output.strip(), "a-long-password-1")


def test_password_hash_refuses_short() -> None:
    result = runner.invoke(app, ["password-hash", "--stdin"], input="short\n")
    assert result.exit_code == 1
    assert "shorter than 8" in result.output


def edgegw(*args: str) -> subprocess.CompletedProcess[str]:
    """The installed command in a real process (what a script or a person runs)."""
    return subprocess.run(
        [sys.executable, "-m", "edgegw", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "COLUMNS": "120"},
    )


def test_json_usage_errors_are_json() -> None:
    bad = edgegw("status", "--json", "--bogus")
    assert bad.returncode == 2
    assert json.loads(bad.stdout) == {
        "ok": False,
        "error": "No such option: --bogus",
        "hint": "see `edgegw status --help`",
        "exit_code": 2,
    }
    assert "╭" not in bad.stderr and "No such option: --bogus" in bad.stderr
    plain = edgegw("status", "--bogus")
    assert plain.returncode == 2 and plain.stdout == ""


def test_help_shows_no_bool_type_on_flags() -> None:
    shown = edgegw("events", "--help")
    assert shown.returncode == 0
    assert "--follow" in shown.stdout and "--json" in shown.stdout
    assert "<bool>" not in shown.stdout
    assert "<bool>" not in edgegw("init", "--help").stdout


def test_the_systemd_units_point_to_readme_sections_that_exist() -> None:
    root = Path(__file__).resolve().parents[2]
    headings = {
        line.lstrip("#").strip()
        for line in (root / "README.md").read_text().splitlines()
        if line.startswith("#")
    }
    for unit in ("edgegw.service", "edgegw-tui@.service"):
        lines = (root / "systemd" / unit).read_text().splitlines()
        head = "\n".join(itertools.takewhile(lambda line: line.startswith("#"), lines))
        named = re.findall(r'"([^"]+)"', head)
        assert named, unit
        assert all(name in headings for name in named), (unit, named)
    assert "edgegw-tui@.service" in (root / "README.md").read_text()
