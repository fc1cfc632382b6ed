"""Card groups in the card CSV: exported, imported round trip, unknown groups said clearly.

The pure parts (``csv_card_groups``, ``with_csv_groups``) and the ``cards.import`` and
``cards.export`` ops through the control socket of a real gateway.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from edgegw.auth.access import Access, CardGroup
from edgegw.auth.cardcsv import cards_to_csv, csv_card_groups, with_csv_groups
from edgegw.auth.locallist import CsvImportError, parse_cards_csv
from edgegw.control import ControlClient
from edgegw.daemon import Gateway
from tests.conftest import GatewayFactory

NOW = 1_700_000_000.0
ALICE = "E43AC9D2"
BOB = "04A1B2C3D4E5F6"
CAROL = "AABBCCDD"


def test_groups_column_round_trips_through_export() -> None:
    text = f"id,owner,groups\n{ALICE},Alice,residents;staff\n{BOB},Bob,residents\n{CAROL},Carol,\n"
    cards = parse_cards_csv(text, now=NOW)
    groups = csv_card_groups(text)
    assert groups == {
        ALICE: frozenset({"residents", "staff"}),
        BOB: frozenset({"residents"}),
        CAROL: frozenset(),
    }
    access = Access(card_groups={"residents": CardGroup("residents"), "staff": CardGroup("staff")})
    access, warnings, changed = with_csv_groups(access, groups)
    assert warnings == [] and changed == 2
    assert access.card_groups["residents"].members == {ALICE, BOB}
    assert access.card_groups["staff"].members == {ALICE}

    exported = cards_to_csv(cards, access)
    assert exported.splitlines()[0].endswith(",parent,groups")
    assert csv_card_groups(exported) == groups
    # Read back onto the same groups: nothing changes.
    again, _, changed = with_csv_groups(access, csv_card_groups(exported) or {})
    assert changed == 0 and again == access


def test_without_a_groups_column_groups_are_left_alone() -> None:
    assert csv_card_groups(f"id,owner\n{ALICE},Alice\n") is None
    # Without the groups of the site, the column is written empty (and reads back as "in none").
    (card,) = parse_cards_csv(f"id\n{ALICE}\n", now=NOW)
    assert cards_to_csv([card]).splitlines()[1].endswith(",")


def test_an_empty_cell_takes_the_card_out_of_its_groups() -> None:
    access = Access(card_groups={"staff": CardGroup("staff", frozenset({ALICE, BOB}))})
    access, warnings, changed = with_csv_groups(access, {ALICE: frozenset()})
    assert warnings == [] and changed == 1
    assert access.card_groups["staff"].members == {BOB}


def test_an_unknown_group_is_a_warning_naming_the_cards_and_the_fix() -> None:
    access = Access(card_groups={"residents": CardGroup("residents")})
    groups = {ALICE: frozenset({"residnets"}), BOB: frozenset({"residnets", "residents"})}
    access, warnings, changed = with_csv_groups(access, groups)
    (warning,) = warnings
    assert "card group 'residnets' does not exist" in warning
    assert f"cards {BOB}, {ALICE} are imported without it" in warning
    assert "edgegw cards group residnets" in warning
    assert changed == 1 and access.card_groups["residents"].members == {BOB}
    assert "residnets" not in access.card_groups


def test_a_group_name_no_group_can_have_is_a_line_error() -> None:
    text = f"id,groups\n{ALICE},residents\n{BOB},bad name!\n"
    with pytest.raises(CsvImportError) as caught:
        parse_cards_csv(text, now=NOW)
    ((line, message),) = caught.value.errors
    assert line == 3 and message.startswith("groups: card group name 'name!'")
    assert csv_card_groups(text) == {ALICE: frozenset({"residents"})}


# ------------------------------------------------------------------ through the ops


@pytest.fixture
async def gateway(make_gateway: GatewayFactory) -> Gateway:
    return await make_gateway(chargers=[{"id": "CP1"}, {"id": "CP2"}])


@pytest.fixture
async def client(gateway: Gateway) -> AsyncIterator[ControlClient]:
    async with await ControlClient.connect(gateway.config.control.socket) as connected:
        yield connected


async def test_import_puts_cards_in_groups_and_export_writes_them(
    gateway: Gateway, client: ControlClient
) -> None:
    await client.call("cards.group", name="residents", chargers=["CP1"])
    await client.call("cards.group", name="staff", chargers=["CP2"])
    text = f"id,owner,groups\n{ALICE},Alice,residents;staff\n{BOB},Bob,residnets\n"

    plan = await client.call("cards.import", csv=text, dry_run=True)
    assert plan["outcome"] == "dry_run" and plan["regrouped"] == 1
    assert any("'residnets' does not exist" in w for w in plan["warnings"])
    assert (await client.call("cards.groups"))["card_groups"][0]["cards"] == []

    done = await client.call("cards.import", csv=text)
    assert done["outcome"] == "imported" and done["added"] == 2 and done["regrouped"] == 1
    assert any(f"card {BOB} is imported without it" in w for w in done["warnings"])
    groups = {g["name"]: g for g in (await client.call("cards.groups"))["card_groups"]}
    assert [c.startswith(ALICE) for c in groups["residents"]["cards"]] == [True]
    assert [c.startswith(ALICE) for c in groups["staff"]["cards"]] == [True]
    assert allowed(gateway, "CP1") and allowed(gateway, "CP2")

    exported = (await client.call("cards.export"))["csv"]
    rows = {line.split(",")[0]: line.split(",")[-1] for line in exported.splitlines()[1:]}
    assert rows == {ALICE: "residents staff", BOB: ""}

    # Only the groups change: the card moves, and counts as regrouped, not updated.
    moved = await client.call("cards.import", csv=f"id,owner,groups\n{ALICE},Alice,staff\n")
    assert moved["updated"] == 0 and moved["unchanged"] == 1 and moved["regrouped"] == 1
    assert allowed(gateway, "CP2") and not allowed(gateway, "CP1")
    groups = {g["name"]: g for g in (await client.call("cards.groups"))["card_groups"]}
    assert groups["residents"]["cards"] == []


def allowed(gateway: Gateway, charger: str) -> bool:
    auth = gateway.authorizer
    assert auth is not None
    return auth.decide(charger, ALICE, fmt=auth.charger_format(charger)).accepted
