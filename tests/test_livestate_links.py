"""The live state's refresh round: one walk of the chargers finds each changed cloud link and
counts the links for the site, and the views show what the round told."""

from __future__ import annotations

import asyncio
from typing import Any

from edgegw.livestate import LiveChange, LiveState, Scope
from edgegw.sim.charger import SimCharger
from edgegw.sim.cloud import SimCloud
from tests.conftest import GatewayFactory, gateway_url


def told_links(live: LiveState) -> dict[str, int]:
    """The link counts the last refresh round told the site's listeners about."""
    signature = live._site_signature
    assert signature is not None
    return dict(signature.links)


async def settle(live: LiveState) -> None:
    for _ in range(3):
        await live.wait_refreshed()


async def until(live: LiveState, done: Any) -> None:
    async with asyncio.timeout(10):
        while not done():
            await live.wait_refreshed()


async def test_connects_disconnects_and_cloud_loss_show_the_same_counts(
    make_gateway: GatewayFactory,
) -> None:
    cloud = SimCloud()
    await cloud.start()
    gateway = await make_gateway(
        cloud_url=cloud.url, chargers=[{"id": "CP1"}, {"id": "CP2"}, {"id": "CP3"}]
    )
    live = LiveState(gateway, refresh_interval=0.02, backlog_interval=0.02)
    assert gateway.hub is not None
    gateway.hub = gateway.hub.extended(live)
    changes: list[LiveChange] = []
    live.on_change(changes.append)
    live.start()
    try:
        async with (
            SimCharger("CP1", gateway_url(gateway)) as cp1,
            SimCharger("CP2", gateway_url(gateway)) as cp2,
        ):
            await cp1.boot()
            await cp2.boot()
            await until(live, lambda: live.site().links == {"online": 2})
            await settle(live)
            assert told_links(live) == {"online": 2}
            assert [c.cloud_link for c in live.snapshot().chargers] == [
                "online",
                "online",
                "charger offline",
            ]

            await cloud.stop()  # the cloud goes: every connected charger's link with it
            await until(live, lambda: "online" not in live.site().links)
            changes.clear()
            await settle(live)
            links = live.site().links
            assert set(links) <= {"offline", "connecting"} and sum(links.values()) == 2
            assert told_links(live) == links
            cp1_live = live.charger("CP1")
            assert cp1_live is not None and cp1_live.cloud_link in ("offline", "connecting")

            await cp2.close()
            await until(live, lambda: sum(live.site().links.values()) == 1)
            await settle(live)
            assert told_links(live) == live.site().links
            cp2_live = live.charger("CP2")
            assert cp2_live is not None and cp2_live.cloud_link == "charger offline"
            assert live.site().chargers_connected == 1

            await cloud.start()  # back: the one still connected goes online again
            await until(live, lambda: live.site().links == {"online": 1})
            changes.clear()
            await settle(live)
            assert told_links(live) == {"online": 1}
            assert not [c for c in changes if c.scope is Scope.SITE], "told again, unchanged"
    finally:
        await live.close()
        await cloud.stop()


async def test_a_changed_link_is_told_once_per_charger(make_gateway: GatewayFactory) -> None:
    cloud = SimCloud()
    await cloud.start()
    gateway = await make_gateway(cloud_url=cloud.url, chargers=[{"id": "CP1"}, {"id": "CP2"}])
    live = LiveState(gateway, refresh_interval=0.02, backlog_interval=0.02)
    assert gateway.hub is not None
    gateway.hub = gateway.hub.extended(live)
    charger_changes: list[str | None] = []
    live.on_change(lambda c: charger_changes.append(c.charger_id), scopes=(Scope.CHARGER,))
    live.start()
    try:
        async with SimCharger("CP1", gateway_url(gateway)) as cp1:
            await cp1.boot()
            await until(live, lambda: live.site().links == {"online": 1})
            await settle(live)
            charger_changes.clear()
            await settle(live)
            assert charger_changes == []  # nothing changed: nothing told
            await cloud.stop()
            await until(live, lambda: "online" not in live.site().links)
            await settle(live)
            assert "CP1" in charger_changes and "CP2" not in charger_changes
    finally:
        await live.close()
        await cloud.stop()
