"""A link that gets through to the cloud makes the links waiting out their backoff retry now."""

from __future__ import annotations

import random
import time

from edgegw.proxy.cloudreturn import LINKS_PER_SECOND, MIN_SPREAD_S, CloudReturn
from edgegw.sim.charger import SimCharger
from edgegw.sim.cloud import SimCloud
from tests.conftest import GatewayFactory, gateway_url


class Link:
    def __init__(self) -> None:
        self.hints: list[float] = []

    def hint(self, delay: float) -> None:
        self.hints.append(delay)


def test_waiting_links_are_hinted_once_spread_by_their_number() -> None:
    hub = CloudReturn(random.Random(1))
    links = [Link() for _ in range(300)]
    for link in links:
        hub.waiting(link)
        hub.waiting(link)  # failing again while waiting: still one entry
    assert len(hub) == 300
    hub.discard(links[0])  # its charger left
    hub.got_through(links[1])  # it connected itself: not hinted
    assert not links[0].hints and not links[1].hints
    spread = max(MIN_SPREAD_S, 298 / LINKS_PER_SECOND)
    delays = [d for link in links[2:] for d in link.hints]
    assert len(delays) == 298 and all(0 <= d <= spread for d in delays)
    assert max(delays) > spread / 2  # spread out, not all at once
    assert len(hub) == 0
    hub.got_through(Link())  # nobody waits: nothing happens
    assert all(len(link.hints) <= 1 for link in links)


async def test_a_waiting_link_retries_soon_when_another_charger_gets_through(
    make_gateway: GatewayFactory,
) -> None:
    cloud = SimCloud()
    await cloud.start()
    url = cloud.url
    await cloud.stop()
    # A backoff of 10-20 s for the first retry: far longer than this test waits.
    gateway = await make_gateway(
        cloud_url=url,
        chargers=[{"id": "CP1"}, {"id": "CP2"}],
        cloud={"reconnect_min_delay": 20, "reconnect_max_delay": 60},
    )
    async with SimCharger("CP1", gateway_url(gateway), connectors=1) as first:
        await first.boot()  # answered by the gateway: its cloud link has failed once
        session = gateway.sessions["CP1"]
        assert session.upstream is not None and not session.upstream.connected
        await cloud.start()
        started = time.monotonic()
        # A charger connecting now gets through at once, and tells the waiting link.
        async with SimCharger("CP2", gateway_url(gateway), connectors=1):
            await cloud.wait_connected("CP2", timeout=5)
            await cloud.wait_connected("CP1", timeout=5)
            assert time.monotonic() - started < 5  # its own backoff had 10 s at least left
            # The boot it answered offline reaches the cloud with the link.
            await cloud.wait_for(
                lambda r: r.charger_id == "CP1" and r.action == "BootNotification", timeout=5
            )
    await cloud.stop()
