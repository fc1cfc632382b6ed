"""The ``cards.*`` and ``chargers.*`` control ops, through the real socket of a real gateway."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from websockets.exceptions import InvalidStatus

from edgegw.control import ControlClient, ControlServer, PermissionDenied, RemoteError
from edgegw.control.card_ops import CardOps, read_csv
from edgegw.control.charger_ops import ChargerOps
from edgegw.daemon import Gateway
from edgegw.sim.charger import SimCharger
from tests.conftest import GatewayFactory, gateway_url, raw_charger

ALICE = "E43AC9D2"  # reversed D2C93AE4, printed (dec_le) 3536403172
BOB = "04A1B2C3D4E5F6"
CHARGERS = [{"id": "CP1"}, {"id": "KEBA", "idtag_format": "hex_reversed"}]


@pytest.fixture
async def gateway(make_gateway: GatewayFactory) -> Gateway:
    return await make_gateway(chargers=CHARGERS)


@pytest.fixture
async def client(gateway: Gateway) -> AsyncIterator[ControlClient]:
    async with await ControlClient.connect(gateway.config.control.socket) as connected:
        yield connected


async def test_add_show_update_and_list(client: ControlClient) -> None:
    added = await client.call(
        "cards.add", card="e4:3a:c9:d2", owner="Alice", label="bay 12", expiry="2030-12-31"
    )
    assert added["action"] == "added"
    assert added["card"]["id"] == ALICE and added["card"]["expiry"] == "2030-12-31"

    shown = await client.call("cards.show", card="d2c93ae4", format="hex_reversed")
    assert shown["id"] == ALICE and shown["owner"] == "Alice"
    forms = {v["format"]: v["idtag"] for v in shown["variants"]}
    assert forms["hex_reversed"] == "D2C93AE4" and forms["dec_le"] == "3536403172"
    at = {a["charger"]: a for a in shown["at_chargers"]}
    assert at["KEBA"]["idtag"] == "D2C93AE4" and at["KEBA"]["format_source"] == "configured"
    assert at["CP1"]["format_source"] == "unknown"

    # The number printed on the card reads as exactly one enrolled card: it is found.
    printed = await client.call("cards.show", card="3536403172")
    assert printed["id"] == ALICE and "dec_le" in printed["read_as"]

    updated = await client.call(
        "cards.update", card=ALICE, chargers=["KEBA"], expiry="", label="bay 14"
    )
    assert updated["action"] == "updated"
    assert updated["card"]["chargers"] == ["KEBA"] and updated["card"]["expiry"] is None
    assert updated["card"]["label"] == "bay 14" and updated["card"]["owner"] == "Alice"

    await client.call("cards.add", card=BOB, owner="Bob", status="Blocked")
    everything = await client.call("cards.list")
    assert [c["id"] for c in everything["cards"]] == [BOB, ALICE]
    assert (await client.call("cards.list", text="alice"))["matched"] == 1
    blocked = await client.call("cards.list", status="blocked")
    assert [c["id"] for c in blocked["cards"]] == [BOB]
    page = await client.call("cards.list", offset=1, limit=1)
    assert page["matched"] == 2 and [c["id"] for c in page["cards"]] == [ALICE]


async def test_block_unblock_remove_change_decisions_at_once(
    gateway: Gateway, client: ControlClient
) -> None:
    auth = gateway.authorizer
    assert auth is not None
    await client.call("cards.add", card=ALICE, owner="Alice")
    assert auth.decide("KEBA", "D2C93AE4", fmt=auth.charger_format("KEBA")).accepted
    blocked = await client.call("cards.block", card="D2C93AE4", format="hex_reversed")
    assert blocked["action"] == "blocked" and blocked["card"]["id"] == ALICE
    decision = auth.decide("KEBA", "D2C93AE4", fmt=auth.charger_format("KEBA"))
    assert decision.status.value == "Blocked"
    assert (await client.call("cards.block", card=ALICE))["action"] == "unchanged"
    assert (await client.call("cards.unblock", card=ALICE))["card"]["status"] == "Accepted"
    assert auth.decide("KEBA", "D2C93AE4", fmt=auth.charger_format("KEBA")).accepted
    removed = await client.call("cards.remove", card=ALICE)
    assert removed["action"] == "removed" and auth.card(ALICE) is None


@pytest.mark.parametrize(
    ("op", "args", "code", "words"),
    [
        ("cards.show", {"card": "0BADC0DE"}, "not_found", "no enrolled card 0BADC0DE"),
        ("cards.block", {"card": "nobody"}, "not_found", "no enrolled card nobody"),
        ("cards.add", {"card": "E43AC9D"}, "bad_args", "odd number"),
        ("cards.add", {"card": "1234"}, "bad_args", "bare number"),
        ("cards.add", {"card": "08112233"}, "bad_args", "random UID"),
        ("cards.add", {"card": ALICE, "expiry": "2026-02-30"}, "bad_args", "not a valid date"),
        ("cards.add", {"card": ALICE, "expiry": "soon"}, "bad_args", "YYYY-MM-DD"),
        ("cards.add", {"card": ALICE, "format": "octal"}, "bad_args", "is not one of"),
        ("cards.add", {"card": ALICE, "status": "Maybe"}, "bad_args", "Accepted, Blocked"),
        ("cards.add", {"card": ALICE, "chargers": "CP1"}, "bad_args", "list of charger ids"),
        ("cards.update", {"card": ALICE}, "not_found", "no enrolled card"),
        ("cards.list", {"limit": 0}, "bad_args", "limit"),
    ],
)
async def test_bad_requests_say_what_is_wrong(
    client: ControlClient, op: str, args: dict[str, object], code: str, words: str
) -> None:
    with pytest.raises(RemoteError) as caught:
        await client.call(op, **args)
    assert caught.value.code == code
    assert words in caught.value.message


async def test_duplicates_and_look_alikes(client: ControlClient) -> None:
    await client.call("cards.add", card=ALICE, owner="Alice")
    with pytest.raises(RemoteError) as caught:
        await client.call("cards.add", card="e4-3a-c9-d2")
    assert caught.value.code == "conflict" and "cards update E43AC9D2" in caught.value.message
    # Alice's card reversed is another valid UID: a charger of unknown format cannot tell.
    other = await client.call("cards.add", card="D2C93AE4", owner="Bob")
    assert any("E43AC9D2 (Alice)" in w for w in other["warnings"])
    with pytest.raises(RemoteError) as caught:
        await client.call("cards.show", card="3536403172")
    assert caught.value.code == "conflict" and "several enrolled cards" in caught.value.message
    with pytest.raises(RemoteError) as caught:
        await client.call("cards.update", card=ALICE)
    assert caught.value.code == "bad_args" and "nothing to change" in caught.value.message


async def test_import_keeps_good_lines_and_reports_each_broken_one(
    gateway: Gateway, client: ControlClient
) -> None:
    text = (
        "id,owner,status,expiry,chargers\n"
        f"{ALICE},Alice,,2030-06-30,KEBA\n"  # line 2
        "E43AC9D,Odd,,,\n"  # line 3: a lost nibble
        f"{BOB},Bob,Blocked,,\n"  # line 4
        "01020304,Carl,,2026-02-30,\n"  # line 5: no such date
        f"{ALICE.lower()},Again,,,\n"  # line 6: repeated
        "01020305,Dora,Lost,,\n"  # line 7: no such status
    )
    done = await client.call("cards.import", csv=text)
    assert done["outcome"] == "imported" and done["added"] == 2
    assert [e["line"] for e in done["errors"]] == [3, 5, 6, 7]
    assert "already on line 2" in done["errors"][2]["message"]
    assert gateway.authorizer is not None
    assert gateway.authorizer.card(BOB) is not None and gateway.authorizer.card("01020304") is None

    # With replace, a broken line would remove the card written on it: nothing happens.
    refused = await client.call("cards.import", csv=text, replace=True)
    assert refused["outcome"] == "refused" and "replace" in refused["reason"]
    assert len(gateway.authorizer.cards()) == 2

    exported = await client.call("cards.export")
    assert exported["total"] == 2 and exported["csv"].startswith("id,format,owner")
    only_bob = exported["csv"].replace(f"{ALICE},", "X,").splitlines()
    only_bob = [only_bob[0], *(line for line in only_bob[1:] if line.startswith(BOB))]
    plan = await client.call("cards.import", csv="\n".join(only_bob), replace=True, dry_run=True)
    assert plan["outcome"] == "dry_run" and (plan["removed"], plan["unchanged"]) == (1, 1)
    assert len(gateway.authorizer.cards()) == 2  # a dry run changes nothing

    bad_header = await client.call("cards.import", csv="uid;name\nE43AC9D2;A\n")
    assert bad_header["outcome"] == "refused" and bad_header["errors"][0]["line"] == 1


def test_read_csv_with_an_unreadable_record_keeps_the_lines_before_it() -> None:
    text = f'id,owner\n{ALICE},Alice\n{BOB},"Bob\n'
    cards, errors, fatal = read_csv(text, now=0.0)
    assert not fatal and [c.id.canonical for c in cards] == [ALICE]
    assert errors and errors[0][0] >= 3


async def test_block_reaches_a_chargers_local_list(make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway(chargers=CHARGERS, auth={"push_local_list": True})
    assert gateway.list_pusher is not None
    async with (
        SimCharger("KEBA", gateway_url(gateway)) as keba,
        await ControlClient.connect(gateway.config.control.socket) as client,
    ):
        await keba.boot()
        added = await client.call("cards.add", card=ALICE, owner="Alice", wait=10)
        assert added["local_lists"] == [
            {"charger": "KEBA", "state": "in_step", "detail": added["local_lists"][0]["detail"]}
        ]
        assert keba.local_list["d2c93ae4"]["status"] == "Accepted"
        blocked = await client.call("cards.block", card=ALICE, wait=10)
        assert [r["state"] for r in blocked["local_lists"]] == ["in_step"]
        assert keba.local_list["d2c93ae4"]["status"] == "Blocked"


async def test_read_only_users_may_look_but_not_change(
    gateway: Gateway, client: ControlClient, tmp_path: Path
) -> None:
    await client.call("cards.add", card=ALICE, owner="Alice")
    server = ControlServer(tmp_path / "ro.sock", admin_uids=frozenset())
    assert gateway.authorizer is not None and gateway.store is not None
    config = lambda: gateway.config  # noqa: E731
    CardOps(gateway.authorizer, config, connected=gateway.chargers.connected_ids).register(server)
    ChargerOps(config, gateway.store, gateway.authorizer, gateway.sessions).register(server)
    await server.start()
    try:
        async with await ControlClient.connect(tmp_path / "ro.sock") as reader:
            assert (await reader.call("cards.show", card=ALICE))["owner"] == "Alice"
            assert (await reader.call("chargers.list"))["chargers"]
            for op in ("cards.block", "cards.remove"):
                with pytest.raises(PermissionDenied) as caught:
                    await reader.call(op, card=ALICE)
                assert "needs root or the edgegw user" in caught.value.message
            with pytest.raises(PermissionDenied):
                await reader.call("cards.import", csv="id\n01020304\n")
    finally:
        await server.close()
    assert gateway.authorizer is not None
    card = gateway.authorizer.card(ALICE)
    assert card is not None and card.status.value == "Accepted"


async def test_chargers_list_show_and_pending(gateway: Gateway, client: ControlClient) -> None:
    await client.call("cards.add", card=ALICE, owner="Alice")
    with pytest.raises(InvalidStatus):
        async with raw_charger(gateway_url(gateway), "STRANGER"):
            pass
    async with SimCharger("CP1", gateway_url(gateway)) as cp1:
        await cp1.boot()
        await cp1.status(1, "Available")
        assert (await cp1.authorize("D2C93AE4"))["idTagInfo"]["status"] == "Accepted"
        listing = await client.call("chargers.list")
        by_id = {c["id"]: c for c in listing["chargers"]}
        assert set(by_id) == {"CP1", "KEBA"} and listing["pending"] == 1
        cp1_row = by_id["CP1"]
        assert cp1_row["connected"] and cp1_row["state"] == "known"
        assert cp1_row["reported_model"] == "SimCharger" and cp1_row["cloud_link"] == "standalone"
        assert cp1_row["detected_format"]["format"] == "hex_reversed"
        assert cp1_row["idtag_format_source"] == "detected"
        assert by_id["KEBA"]["state"] == "never seen" and not by_id["KEBA"]["connected"]
        assert by_id["KEBA"]["idtag_format"] == "hex_reversed"

        shown = await client.call("chargers.show", charger="CP1")
        assert shown["connectors"][0] == {
            "connector": 1,
            "status": "Available",
            "error_code": "NoError",
        }

    pending = await client.call("chargers.pending")
    assert [p["id"] for p in pending] == ["STRANGER"]
    assert pending[0]["reason"] == "unknown identity" and pending[0]["attempts"] == 1
    assert pending[0]["next_step"] == "edgegw chargers approve STRANGER"
    assert (await client.call("chargers.show", charger="STRANGER"))["configured"] is False

    with pytest.raises(RemoteError) as caught:
        await client.call("chargers.show", charger="cp1")
    assert caught.value.code == "not_found" and "Did you mean CP1?" in caught.value.message


async def test_long_listings_come_in_pages_that_fit_the_socket(client: ControlClient) -> None:
    owner = "x" * 300_000  # owners have no length limit; one protocol line holds 1 MiB
    for uid in ("01020304", "01020305", "01020306"):
        await client.call("cards.add", card=uid, owner=owner)
    seen: list[str] = []
    while len(seen) < 3:
        page = await client.call("cards.list", offset=len(seen))
        assert 1 <= len(page["cards"]) < 3 and page["matched"] == 3
        seen += [c["id"] for c in page["cards"]]
    assert seen == ["01020304", "01020305", "01020306"]
    exported = 0
    while exported < 3:
        page = await client.call("cards.export", offset=exported)
        assert 1 <= page["count"] < 3 and page["csv"].startswith("id,format,")
        exported += page["count"]
