"""The daemon keeps every capable charger's local list in step with the site's cards."""

from __future__ import annotations

from edgegw.auth.idtags import CardId, IdTagFormat, render
from edgegw.auth.locallist import Card
from edgegw.sim.charger import SimCharger
from tests.conftest import GatewayFactory, gateway_url

ALICE = CardId.from_uid(bytes.fromhex("E43AC9D2"))
BOB = CardId.from_uid(bytes.fromhex("04A1B2C3D4E5F6"))


def held(charger: SimCharger) -> dict[str, str]:
    return {tag: info["status"] for tag, info in charger.local_list.items()}


async def test_cards_reach_the_chargers_list_and_a_block_follows(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway(
        chargers=[{"id": "CP1"}, {"id": "KEBA", "idtag_format": "hex_reversed"}],
        auth={"push_local_list": True},
    )
    assert gw.authorizer is not None and gw.list_pusher is not None
    await gw.authorizer.add_card(Card(ALICE, owner="Alice"))
    async with (
        SimCharger("CP1", gateway_url(gw)) as cp1,
        SimCharger("KEBA", gateway_url(gw)) as keba,
    ):
        await cp1.boot()
        await keba.boot()
        await gw.list_pusher.wait_idle("CP1")
        await gw.list_pusher.wait_idle("KEBA")
        assert held(cp1) == {render(ALICE, IdTagFormat.HEX).casefold(): "Accepted"}
        assert held(keba) == {render(ALICE, IdTagFormat.HEX_REVERSED).casefold(): "Accepted"}

        await gw.authorizer.add_card(Card(BOB))
        await gw.authorizer.block(ALICE)
        for charger in (cp1, keba):
            await gw.list_pusher.wait_idle(charger.charger_id)
        assert held(cp1) == {
            render(ALICE, IdTagFormat.HEX).casefold(): "Blocked",
            render(BOB, IdTagFormat.HEX).casefold(): "Accepted",
        }
        assert cp1.local_list_version > 1


async def test_nothing_is_pushed_before_the_boot_is_accepted(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(auth={"push_local_list": True})
    assert gw.list_pusher is not None
    async with SimCharger("CP1", gateway_url(gw)) as cp1:
        await gw.wait_charger("CP1")
        assert gw.list_pusher.status("CP1") is None
        assert not [a for a, _ in cp1.received if a == "GetConfiguration"]
        await cp1.boot()
        status = await gw.list_pusher.wait_idle("CP1")
        assert status.synced
