"""``edgegw cards`` through typer's runner: on the store before the first start, then through
the control socket of a real gateway; bad input and a refused admin op."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from edgegw.cli.main import app
from edgegw.control import ControlServer
from edgegw.control.card_ops import CardOps
from tests.conftest import GatewayFactory

ALICE = "E43AC9D2"
CHARGERS = [{"id": "CP1"}, {"id": "KEBA", "idtag_format": "hex_reversed"}]

runner = CliRunner()


def write_config(tmp_path: Path, number: int = 0, socket: Path | None = None) -> Path:
    """A configuration file for the CLI naming what ``make_gateway`` gives gateway ``number``."""
    path = tmp_path / "edgegw.toml"
    path.write_text(
        "# test site\n"
        f'[store]\npath = "{tmp_path / f"gw{number}.db"}"\n\n'
        f'[control]\nsocket = "{socket or tmp_path / f"gw{number}.sock"}"\ngroup = ""\n\n'
        '[[chargers]]\nid = "CP1"\n\n'
        '[[chargers]]\nid = "KEBA"\nidtag_format = "hex_reversed"\n'
    )
    return path


def cli(config: Path, *args: str, stdin: str | None = None) -> Result:
    return runner.invoke(app, [*args, "--config", str(config)], input=stdin)


async def acli(config: Path, *args: str, stdin: str | None = None) -> Result:
    """The CLI from an async test: in a thread, because the gateway runs on this loop."""
    return await asyncio.to_thread(cli, config, *args, stdin=stdin)


def as_json(result: Result) -> Any:
    return json.loads(result.stdout)


async def test_cards_prepared_before_the_first_start_are_used_by_the_daemon(
    tmp_path: Path, make_gateway: GatewayFactory
) -> None:
    config = write_config(tmp_path)
    added = await acli(
        config, "cards", "add", "e4:3a:c9:d2", "--owner", "Alice", "--charger", "KEBA", "--json"
    )
    assert added.exit_code == 0, added.output
    assert as_json(added)["source"] == "store" and as_json(added)["card"]["id"] == ALICE
    assert "edgegw is not running" in added.stderr and "store" in added.stderr
    shown = await acli(config, "cards", "show", ALICE)
    assert shown.exit_code == 0
    assert "D2C93AE4  (hex_reversed, configured)" in shown.stdout
    assert "not allowed on this charger" in shown.stdout  # CP1: the card is for KEBA only

    gateway = await make_gateway(chargers=CHARGERS)
    assert gateway.authorizer is not None and gateway.authorizer.card(ALICE) is not None
    listed = await acli(config, "cards", "list", "--json")
    assert listed.exit_code == 0 and as_json(listed)["source"] == "daemon"
    assert [c["owner"] for c in as_json(listed)["cards"]] == ["Alice"]
    assert "not running" not in listed.stderr


async def test_block_through_the_daemon_takes_effect_at_once(
    tmp_path: Path, make_gateway: GatewayFactory
) -> None:
    gateway = await make_gateway(chargers=CHARGERS)
    config = write_config(tmp_path)
    assert (await acli(config, "cards", "add", ALICE, "--owner", "Alice")).exit_code == 0
    blocked = await acli(config, "cards", "block", "D2C93AE4", "--format", "hex_reversed")
    assert blocked.exit_code == 0, blocked.output
    assert "Blocked card E43AC9D2 (Alice) in the running daemon" in blocked.stdout
    assert "refused as Blocked from its next tap, whatever the cloud answers" in blocked.stdout
    auth = gateway.authorizer
    assert auth is not None
    assert auth.decide("CP1", ALICE, fmt=auth.charger_format("CP1")).status.value == "Blocked"
    listed = await acli(config, "cards", "list", "--status", "Blocked")
    assert ALICE in listed.stdout and "1 of 1 card(s)" in listed.stdout

    updated = await acli(
        config, "cards", "update", ALICE, "--expiry", "2031-03-31", "--label", "van", "--json"
    )
    assert as_json(updated)["card"]["expiry"] == "2031-03-31"  # the last valid day, as typed
    contradicting = await acli(
        config, "cards", "update", ALICE, "--expiry", "2031-01-01", "--no-expiry"
    )
    assert contradicting.exit_code == 2 and "--no-expiry" in contradicting.stderr

    removed = await acli(config, "cards", "remove", ALICE)
    assert removed.exit_code == 0 and "block it" in removed.stdout
    assert auth.card(ALICE) is None


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (("cards", "show", "0BADC0DE"), 1, "no enrolled card 0BADC0DE"),
        (("cards", "block", "0BADC0DE"), 1, "no enrolled card 0BADC0DE"),
        (("cards", "add", "E43AC9D"), 2, "an odd number"),
        (("cards", "add", "12345"), 2, "bare number"),
        (("cards", "add", ALICE, "--expiry", "2026-02-30"), 2, "not a valid date"),
        (("cards", "add", ALICE, "--expiry", "next week"), 2, "YYYY-MM-DD"),
        (("cards", "add", ALICE, "--format", "octal"), 2, "is not one of"),
        # A typo in a hex UID is not silently enrolled as a token.
        (("cards", "add", "04A1B2C3D4E5FG"), 2, "'G' (character 14) is not a hex digit"),
        (("cards", "add", "AB:CD:EF:01Kim"), 2, "'K' (character 12) is not a hex digit"),
        (("cards", "add", "Mobile000001"), 2, "--format token"),
    ],
)
def test_bad_input_in_store_mode(
    tmp_path: Path, args: tuple[str, ...], code: int, words: str
) -> None:
    config = write_config(tmp_path)
    result = cli(config, *args)
    assert result.exit_code == code, result.output
    assert words in result.stderr
    document = json.loads(cli(config, *args, "--json").stdout)
    assert document["ok"] is False and document["exit_code"] == code


def test_reading_cards_does_not_create_the_store(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    result = cli(config, "cards", "list")
    assert result.exit_code == 0 and "No cards enrolled yet" in result.stdout
    assert not (tmp_path / "gw0.db").exists()


def test_missing_configuration(tmp_path: Path) -> None:
    result = cli(tmp_path / "nowhere.toml", "cards", "list")
    assert result.exit_code == 3 and "file not found" in result.stderr


async def test_import_reports_broken_lines_and_imports_the_rest(
    tmp_path: Path, make_gateway: GatewayFactory
) -> None:
    gateway = await make_gateway(chargers=CHARGERS)
    config = write_config(tmp_path)
    csv_file = tmp_path / "cards.csv"
    csv_file.write_text(
        "id;owner;label;status;expiry;chargers\n"
        f"{ALICE};Alice;bay 12;;2030-12-31;KEBA\n"
        "not a card at all, far too long;X;;;;\n"
        "04A1B2C3D4E5F6;Bob;;Blocked;;\n"
        "01020304;Carl;;;31.12.2030;\n"
    )
    result = await acli(config, "cards", "import", str(csv_file))
    assert result.exit_code == 1, result.output
    assert "Imported" in result.stdout and "2 added" in result.stdout
    assert "line 3:" in result.stdout and "line 5:" in result.stdout
    assert "line 2:" not in result.stdout and "line 4:" not in result.stdout
    assert gateway.authorizer is not None and len(gateway.authorizer.cards()) == 2

    exported = await acli(config, "cards", "export", "--output", str(tmp_path / "out.csv"))
    assert exported.exit_code == 0 and "exported 2 card(s) from the daemon" in exported.stderr
    text = (tmp_path / "out.csv").read_text()
    assert text.splitlines()[0] == "id,format,owner,label,status,expiry,chargers,parent,groups"
    again = await acli(config, "cards", "import", "-", "--replace", "--json", stdin=text)
    assert again.exit_code == 0, again.output
    summary = as_json(again)
    assert (summary["unchanged"], summary["added"], summary["removed"]) == (2, 0, 0)

    bad = await acli(config, "cards", "import", str(tmp_path / "missing.csv"))
    assert bad.exit_code == 2 and "no file" in bad.stderr


async def test_read_only_user_is_refused_changes(
    tmp_path: Path, make_gateway: GatewayFactory
) -> None:
    gateway = await make_gateway(chargers=CHARGERS)
    readonly = tmp_path / "ro.sock"
    server = ControlServer(readonly, admin_uids=frozenset())
    assert gateway.authorizer is not None
    CardOps(gateway.authorizer, lambda: gateway.config).register(server)
    await server.start()
    try:
        config = write_config(tmp_path, socket=readonly)
        refused = await acli(config, "cards", "add", ALICE, "--owner", "Alice")
        assert refused.exit_code == 1
        assert "needs root or the edgegw user" in refused.stderr and "sudo" in refused.stderr
        assert gateway.authorizer is not None and gateway.authorizer.card(ALICE) is None
        looked = await acli(config, "cards", "list")
        assert looked.exit_code == 0 and "No cards enrolled yet" in looked.stdout
    finally:
        await server.close()


async def test_list_and_export_page_through_the_daemon(
    tmp_path: Path, make_gateway: GatewayFactory
) -> None:
    await make_gateway(chargers=CHARGERS)
    config = write_config(tmp_path)
    owner = "y" * 300_000
    for uid in ("01020304", "01020305", "01020306"):
        assert (await acli(config, "cards", "add", uid, "--owner", owner)).exit_code == 0
    listed = await acli(config, "cards", "list", "--json")
    assert listed.exit_code == 0, listed.stderr
    assert [c["id"] for c in as_json(listed)["cards"]] == ["01020304", "01020305", "01020306"]
    exported = await acli(config, "cards", "export")
    assert exported.exit_code == 0
    lines = exported.stdout.splitlines()
    assert lines[0].startswith("id,") and len(lines) == 4


def test_a_token_is_enrolled_with_format_token(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    added = cli(config, "cards", "add", "Mobile000001", "--format", "token", "--json")
    assert added.exit_code == 0, added.output
    assert as_json(added)["card"]["kind"] == "token"


def test_an_expiry_date_is_shown_and_exported_as_the_last_valid_day(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    assert cli(config, "cards", "add", ALICE, "--expiry", "2027-12-31").exit_code == 0
    listed = cli(config, "cards", "list", "--json")
    (card,) = as_json(listed)["cards"]
    assert card["expiry"] == "2027-12-31" and card["expires_at"] == "2028-01-01T00:00:00Z"
    assert "2027-12-31" in cli(config, "cards", "list").stdout
    exported = cli(config, "cards", "export").stdout
    assert exported.splitlines()[1].split(",")[5] == "2027-12-31"
    # Imported again (three times over), the card keeps its last day.
    for _ in range(3):
        again = cli(config, "cards", "import", "-", "--json", stdin=exported)
        assert as_json(again)["unchanged"] == 1, again.output
        exported = cli(config, "cards", "export").stdout
    assert exported.splitlines()[1].split(",")[5] == "2027-12-31"
    # A time other than midnight UTC stays a time.
    cli(config, "cards", "update", ALICE, "--expiry", "2027-12-31T18:00:00+01:00")
    (card,) = as_json(cli(config, "cards", "list", "--json"))["cards"]
    assert card["expiry"] == "2027-12-31T17:00:00Z"


async def test_the_change_messages_say_what_chargers_do_from_the_next_tap(
    tmp_path: Path, make_gateway: GatewayFactory
) -> None:
    await make_gateway(chargers=CHARGERS)
    config = write_config(tmp_path)
    added = await acli(config, "cards", "add", ALICE, "--charger", "KEBA")
    assert added.exit_code == 0, added.output
    assert (
        "refused on chargers other than KEBA from its next tap, whatever the cloud answers"
        in added.stdout
    )
    blocked = await acli(config, "cards", "block", ALICE)
    assert "It is refused as Blocked from its next tap, whatever the cloud answers." in (
        blocked.stdout
    )


async def test_with_the_cloud_deciding_alone_the_message_says_so(
    tmp_path: Path, make_gateway: GatewayFactory
) -> None:
    await make_gateway(
        chargers=CHARGERS,
        cloud_url="ws://127.0.0.1:9/ocpp",
        auth={"site_overrides_cloud": False},
    )
    config = write_config(tmp_path)
    assert (await acli(config, "cards", "add", ALICE)).exit_code == 0
    blocked = await acli(config, "cards", "block", ALICE)
    assert "when the gateway decides (cloud unreachable)" in blocked.stdout
    assert "whatever the cloud answers" not in blocked.stdout


def test_groups_and_shares_in_store_mode(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    bob = "04A1B2C3D4E5F6"
    assert cli(config, "cards", "add", ALICE, "--owner", "Alice").exit_code == 0
    assert cli(config, "cards", "add", bob, "--owner", "Bob", "--charger", "KEBA").exit_code == 0
    made = cli(config, "cards", "charger-group", "garage", "CP1", "KEBA")
    assert made.exit_code == 0, made.output
    grouped = cli(
        config, "cards", "group", "residents", "--add", ALICE, "--charger-group", "garage"
    )
    assert grouped.exit_code == 0, grouped.output
    assert "residents" in grouped.stdout and "1 card(s), on @garage" in grouped.stdout
    shared = cli(
        config, "cards", "share", bob, "--charger", "CP1", "--until", "sunday 18:00",
        "--note", "weekend", "--json",
    )  # fmt: skip
    assert shared.exit_code == 0, shared.output
    assert as_json(shared)["share"]["active"] and as_json(shared)["share"]["chargers"] == ["CP1"]
    listed = as_json(cli(config, "cards", "groups", "--json"))
    assert listed["charger_groups"] == {"garage": ["CP1", "KEBA"]}
    assert listed["card_groups"][0]["cards"] == ["E43AC9D2 (Alice)"]
    shown = cli(config, "cards", "show", ALICE).stdout
    assert "groups    residents" in shown
    assert "#1 04A1B2C3D4E5F6 (Bob) on CP1, until" in cli(config, "cards", "show", bob).stdout

    in_use = cli(config, "cards", "charger-group", "garage", "--delete")
    assert in_use.exit_code == 1 and "still used by card group residents" in in_use.stderr
    unknown = cli(config, "cards", "add", "11223344", "--charger-group", "roof")
    assert unknown.exit_code == 2 and "no charger group 'roof'" in unknown.stderr
    past = cli(config, "cards", "share", bob, "--charger", "CP1", "--until", "2020-01-01")
    assert past.exit_code == 2 and "already past" in past.stderr
    assert cli(config, "cards", "unshare", "1").exit_code == 0
    assert as_json(cli(config, "cards", "groups", "--json"))["shares"] == []


async def test_a_group_limit_and_a_share_take_effect_in_the_running_daemon(
    tmp_path: Path, make_gateway: GatewayFactory
) -> None:
    gateway = await make_gateway(chargers=CHARGERS)
    auth = gateway.authorizer
    assert auth is not None
    config = write_config(tmp_path)
    assert (await acli(config, "cards", "add", ALICE)).exit_code == 0
    assert (await acli(config, "cards", "charger-group", "bay", "KEBA")).exit_code == 0
    result = await acli(
        config, "cards", "group", "private", "--add", ALICE, "--charger-group", "bay"
    )
    assert result.exit_code == 0, result.output
    assert not auth.decide("CP1", ALICE, fmt=auth.charger_format("CP1")).accepted
    shared = await acli(
        config, "cards", "share", ALICE, "--charger", "CP1", "--until", "2099-01-01"
    )
    assert shared.exit_code == 0, shared.output
    assert "whatever the cloud answers" in shared.stdout
    assert auth.decide("CP1", ALICE, fmt=auth.charger_format("CP1")).accepted


def test_an_import_naming_a_charger_group_that_does_not_exist_warns(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    imported = cli(config, "cards", "import", "-", stdin=f"id,chargers\n{ALICE},@roof CP1\n")
    assert imported.exit_code == 0, imported.output
    assert "names @roof, which is no charger group yet" in imported.stdout
