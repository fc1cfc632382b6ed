"""``edgegw chargers`` through typer's runner: the configuration file is edited in place with
its comments kept, and the daemon's view is shown when it runs."""

from __future__ import annotations

import asyncio
import json
import stat
import tomllib
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result
from websockets.exceptions import InvalidStatus

from edgegw.auth.passwords import verify_password
from edgegw.cli.main import app
from edgegw.sim.charger import SimCharger
from tests.conftest import GatewayFactory, gateway_url, raw_charger

PASSWORD = "a-long-charger-password"
CHARGERS = [{"id": "CP1"}, {"id": "KEBA", "idtag_format": "hex_reversed"}]

runner = CliRunner()


def site_file(tmp_path: Path) -> Path:
    """An installer's file, with comments everywhere a comment can go."""
    path = tmp_path / "edgegw.toml"
    path.write_text(
        "# Garage Nord, commissioned 2026-03\n"
        "[server]\n"
        "port = 9000  # the chargers are set to this\n"
        "\n"
        f'[store]\npath = "{tmp_path / "gw0.db"}"\n'
        "\n"
        "[control]\n"
        f'socket = "{tmp_path / "gw0.sock"}"\n'
        'group = ""\n'
        "\n"
        "# --- chargers ---\n"
        "[[chargers]]\n"
        'id = "CP1"  # bay 1, sub-panel B\n'
        "\n"
        "# the KEBA by the door writes card ids backwards\n"
        "[[chargers]]\n"
        'id = "KEBA"\n'
        'idtag_format = "hex_reversed"\n'
        "\n"
        "# keep this comment above [auth]\n"
        "[auth]\n"
        'unknown_cards = "reject"\n'
    )
    path.chmod(0o640)
    return path


def cli(config: Path, *args: str, stdin: str | None = None) -> Result:
    return runner.invoke(app, [*args, "--config", str(config)], input=stdin)


async def acli(config: Path, *args: str, stdin: str | None = None) -> Result:
    return await asyncio.to_thread(cli, config, *args, stdin=stdin)


def password_file(tmp_path: Path, password: str = PASSWORD) -> Path:
    path = tmp_path / "password"
    path.write_text(password + "\n")
    return path


def chargers_in(path: Path) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in tomllib.loads(path.read_text())["chargers"]}


def is_subsequence(lines: list[str], within: list[str]) -> bool:
    rest = iter(within)
    return all(any(line == other for other in rest) for line in lines)


def test_add_keeps_every_comment_and_the_files_mode(tmp_path: Path) -> None:
    config = site_file(tmp_path)
    before = config.read_text()
    result = cli(
        config,
        "chargers",
        "add",
        "CP3",
        "--password-file",
        str(password_file(tmp_path)),
        "--model",
        "keba-p30",
        "--max-current",
        "20",
        "--label",
        "Bay 3",
    )
    assert result.exit_code == 0, result.output
    assert "Added charger CP3" in result.stdout and "password set" in result.stdout
    assert "edgegw is not running; it uses the change when it starts" in result.stdout
    assert PASSWORD not in result.output
    after = config.read_text()
    assert is_subsequence(before.splitlines(), after.splitlines())
    # The new section sits with the other chargers, above the comment that belongs to [auth].
    assert after.index('id = "CP3"') < after.index("# keep this comment above [auth]")
    added = chargers_in(config)["CP3"]
    assert added["model"] == "keba-p30" and added["max_current_a"] == 20.0
    assert verify_password(added["password_hash"], PASSWORD)
    assert PASSWORD not in after
    assert stat.S_IMODE(config.stat().st_mode) == 0o640
    assert not list(tmp_path.glob(".edgegw.toml.*"))  # no temporary file left behind


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (("add", "CP1"), 1, "CP1 is already configured"),
        (("add", "cp1"), 1, "CP1 is already configured"),
        (("add", "a/b"), 2, "cannot be a charger identity"),
        (("add", "CP4", "--max-current", "900"), 2, "chargers[CP4].max_current_a"),
        (("add", "CP4", "--phases", "L4"), 2, "chargers[CP4].phases"),
        (("add", "CP4", "--idtag-format", "octal"), 2, "is not an idTag format"),
        (("add", "CP4", "--model", "teapot"), 2, "known models:"),
        (("remove", "CP9"), 1, "CP9 is not configured"),
        (("remove", "cp1"), 1, "did you mean CP1?"),
        (("set-password", "CP9", "--password-file", "PW"), 1, "CP9 is not configured"),
    ],
)
def test_refused_edits_leave_the_file_as_it_was(
    tmp_path: Path, args: tuple[str, ...], code: int, words: str
) -> None:
    config = site_file(tmp_path)
    before = config.read_bytes()
    pw = str(password_file(tmp_path))
    result = cli(config, "chargers", *(pw if a == "PW" else a for a in args))
    assert result.exit_code == code, result.output
    assert words in result.stderr
    assert config.read_bytes() == before


def test_short_password_is_refused_and_never_echoed(tmp_path: Path) -> None:
    config = site_file(tmp_path)
    before = config.read_bytes()
    short = cli(
        config,
        "chargers",
        "set-password",
        "CP1",
        "--password-file",
        str(password_file(tmp_path, "tiny")),
    )
    assert short.exit_code == 2 and "shorter than 8" in short.stderr
    assert config.read_bytes() == before
    prompted = cli(config, "chargers", "set-password", "KEBA", stdin=f"{PASSWORD}\n{PASSWORD}\n")
    assert prompted.exit_code == 0, prompted.output
    assert PASSWORD not in prompted.output
    assert verify_password(chargers_in(config)["KEBA"]["password_hash"], PASSWORD)
    assert "# the KEBA by the door writes card ids backwards" in config.read_text()


def test_remove_keeps_the_comments_around_the_section(tmp_path: Path) -> None:
    config = site_file(tmp_path)
    result = cli(config, "chargers", "remove", "KEBA", "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["action"] == "removed" and document["daemon"]["state"] == "not_running"
    assert list(chargers_in(config)) == ["CP1"]
    text = config.read_text()
    assert "# keep this comment above [auth]\n[auth]" in text
    assert 'id = "CP1"  # bay 1, sub-panel B' in text
    removed_all = cli(config, "chargers", "remove", "CP1")
    assert removed_all.exit_code == 0, removed_all.output
    assert "chargers" not in tomllib.loads(config.read_text())
    assert "# Garage Nord, commissioned 2026-03" in config.read_text()


def test_list_and_show_without_the_daemon(tmp_path: Path) -> None:
    config = site_file(tmp_path)
    listed = cli(config, "chargers", "list")
    assert listed.exit_code == 0, listed.output
    assert "CP1" in listed.stdout and "never connected" in listed.stdout
    assert "reading its store" in listed.stderr
    shown = cli(config, "chargers", "show", "KEBA", "--json")
    assert json.loads(shown.stdout)["idtag_format"] == "hex_reversed"
    unknown = cli(config, "chargers", "show", "CP9")
    assert unknown.exit_code == 1 and "no charger 'CP9'" in unknown.stderr
    assert not (tmp_path / "gw0.db").exists()
    missing = cli(tmp_path / "none.toml", "chargers", "list")
    assert missing.exit_code == 3 and "edgegw init" in missing.stderr


async def test_approve_a_charger_that_knocked(tmp_path: Path, make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway(chargers=CHARGERS)
    config = site_file(tmp_path)
    gateway.config_path = config  # as if `edgegw run --config` had started it
    with pytest.raises(InvalidStatus):
        async with raw_charger(gateway_url(gateway), "NEWCP"):
            pass
    async with SimCharger("CP1", gateway_url(gateway)) as cp1:
        await cp1.boot()
        listed = await acli(config, "chargers", "list", "--json")
        assert listed.exit_code == 0, listed.output
        rows = {c["id"]: c for c in json.loads(listed.stdout)["chargers"]}
        assert rows["CP1"]["connected"] and json.loads(listed.stdout)["source"] == "daemon"
        text = (await acli(config, "chargers", "list")).stdout
        assert "connected" in text and "tried to connect and were refused" in text

    pending = await acli(config, "chargers", "pending")
    assert "NEWCP" in pending.stdout and "edgegw chargers approve NEWCP" in pending.stdout

    nobody = await acli(config, "chargers", "approve", "GHOST")
    assert nobody.exit_code == 1 and "GHOST has not tried to connect" in nobody.stderr

    approved = await acli(
        config, "chargers", "approve", "NEWCP", "--password-file", str(password_file(tmp_path))
    )
    assert approved.exit_code == 0, approved.output
    assert "Approved NEWCP" in approved.stdout
    # The file differs from what the daemon runs outside [[chargers]] too ([server] port), so
    # the reload applies nothing and says a restart is needed (tests/test_reload.py covers the
    # live path).
    assert "not applied: [server] changed" in approved.stdout
    assert "systemctl restart edgegw" in approved.stdout
    assert verify_password(chargers_in(config)["NEWCP"]["password_hash"], PASSWORD)


def test_set_changes_settings_keeps_comments_and_names_what_changed(tmp_path: Path) -> None:
    config = site_file(tmp_path)
    before = config.read_text()
    result = cli(
        config,
        "chargers",
        "set",
        "KEBA",
        "--max-current",
        "20",
        "--label",
        "By the door",
        "--unset",
        "idtag-format",
        "--json",
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["action"] == "changed" and data["unset"] == ["idtag_format"]
    assert data["changed"]["max_current_a"] == {"from": None, "to": 20.0}
    after = config.read_text()
    kept = [line for line in before.splitlines() if "idtag_format" not in line]
    assert is_subsequence(kept, after.splitlines())
    assert "# the KEBA by the door writes card ids backwards" in after
    keba = chargers_in(config)["KEBA"]
    assert keba["max_current_a"] == 20.0 and keba["label"] == "By the door"
    assert "idtag_format" not in keba

    text = cli(config, "chargers", "set", "KEBA", "--idtag-format", "hex_reversed")
    assert text.exit_code == 0, text.output
    assert "Changed charger KEBA" in text.stdout
    assert "idtag_format (default) -> hex_reversed" in text.stdout


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("set", "KEBA"), "nothing to change"),
        (("set", "KEBA", "--max-current", "900"), "chargers[KEBA].max_current_a"),
        (("set", "KEBA", "--unset", "colour"), "not a charger setting"),
        (("set", "KEBA", "--label", "x", "--unset", "label"), "both set and unset"),
        (("set", "KEBA", "--model", "teapot"), "known models:"),
    ],
)
def test_set_refuses_bad_changes_and_writes_nothing(
    tmp_path: Path, args: tuple[str, ...], words: str
) -> None:
    config = site_file(tmp_path)
    before = config.read_text()
    result = cli(config, "chargers", *args)
    assert result.exit_code == 2, result.output
    assert words in result.output
    assert config.read_text() == before
    missing = cli(config, "chargers", "set", "CP9", "--label", "x")
    assert missing.exit_code == 1 and "CP9 is not configured" in missing.output


async def test_set_is_taken_by_the_running_daemon(
    tmp_path: Path, make_gateway: GatewayFactory
) -> None:
    socket = tmp_path / "live.sock"
    gateway = await make_gateway(
        chargers=[{"id": "CP1"}], control={"socket": str(socket), "group": ""}
    )
    config = tmp_path / "live.toml"
    config.write_text(
        '[server]\nhost = "127.0.0.1"\nport = 0\n'
        f'[store]\npath = "{gateway.config.store.path}"\n'
        f'[control]\nsocket = "{socket}"\ngroup = ""\n'
        "[auth]\npush_local_list = false\n"
        '# bay 1\n[[chargers]]\nid = "CP1"\n'
    )
    gateway.config_path = config
    result = await acli(config, "chargers", "set", "CP1", "--label", "Bay 1", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["daemon"]["state"] == "reloaded", result.stdout
    live = gateway.config.charger("CP1")
    assert live is not None and live.label == "Bay 1"
    # What the daemon cannot take live is said, with the command that applies it.
    capped = await acli(config, "chargers", "set", "CP1", "--max-current", "10")
    assert capped.exit_code == 0, capped.output
    assert "max_current_a changed" in capped.stdout and "systemctl restart" in capped.stdout
