"""A link that gets through to the cloud makes the links waiting out their backoff retry now."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable

import pytest

from edgegw.proxy.cloudreturn import LINKS_PER_SECOND, MIN_SPREAD_S, CloudReturn
from edgegw.sim.charger import SimCharger
from edgegw.sim.cloud import SimCloud
from tests.conftest import GatewayFactory, gateway_url


class Link:
    def __init__(self, *, takes_probes: bool = True, probed: asyncio.Event | None = None) -> None:
        self.hints: list[float] = []
        self.probes = 0
        self.takes_probes = takes_probes
        self.probed = probed or asyncio.Event()  # set when a probe is taken

    def hint(self, delay: float) -> None:
        self.hints.append(delay)

    def probe(self) -> bool:
        if self.takes_probes:
            self.probes += 1
            self.probed.set()
        return self.takes_probes


async def test_waiting_links_are_hinted_once_spread_by_their_number() -> None:
    hub = CloudReturn(random.Random(1), probe_interval=3600)
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
    assert len(hub) == 298  # still waiting until they connect, but hinted
    for link in links[2:]:
        hub.waiting(link)  # the hinted attempt failed too
    hub.got_through(Link())  # another link gets through: none of them is hinted again
    assert all(len(link.hints) <= 1 for link in links)
    hub.got_through(links[2])  # it connected: the next time it waits it may be hinted again
    hub.waiting(links[2])
    hub.got_through(Link())
    assert len(links[2].hints) == 2
    await hub.close()


async def next_probed(links: list[Link], probed: asyncio.Event) -> Link:
    """The link the hub probes next (the hub's interval is short; the wait is bounded)."""
    before = [link.probes for link in links]
    probed.clear()
    async with asyncio.timeout(10):
        await probed.wait()
    (link,) = [link for link, n in zip(links, before, strict=True) if link.probes != n]
    return link


async def test_one_probe_at_a_time_in_turns_never_a_link_the_cloud_refused() -> None:
    hub = CloudReturn(random.Random(1), probe_interval=0.01)
    probed_one = asyncio.Event()
    a, b, refused = (Link(probed=probed_one) for _ in range(3))
    busy = Link(takes_probes=False)
    links = [a, busy, b, refused]
    for link in links[:3]:
        hub.waiting(link)
    hub.waiting(refused, probe=False)  # an HTTP 404, say: the cloud is up and said no
    probed = []
    for _ in range(4):
        link = await next_probed(links, probed_one)
        probed.append(link)
        for _ in range(5):  # no other probe until this one's outcome
            await asyncio.sleep(0.01)
        assert sum(link.probes for link in links) == len(probed)
        hub.waiting(link)  # it failed: the cloud is still away
    assert probed == [a, b, a, b]  # in turns; the busy link let its turn go, refused has none
    hub.waiting(refused)  # failed on the network this time: it takes turns again, last
    for expected in (a, b, refused):
        link = await next_probed(links, probed_one)
        assert link is expected
        if link is not refused:
            hub.waiting(link)
    hub.got_through(refused)  # the cloud is back: the others are nudged
    assert all(len(link.hints) == 1 for link in (a, busy, b))
    for link in (a, busy, b):
        hub.got_through(link)
    assert len(hub) == 0
    await hub.close()


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


PASSWORD = "cloud-password-0123"


class Logged(logging.Handler):
    """The gateway's log records, and a wait for one that makes a condition true."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._changed = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self._changed.set()

    def lines(self, text: str, level: int = logging.WARNING) -> list[str]:
        messages = (r.getMessage() for r in self.records if r.levelno == level)
        return [m for m in messages if text in m]

    def links(self, text: str, level: int = logging.DEBUG) -> set[str]:
        """The chargers with a line saying ``text``."""
        return {line.split(":")[0] for line in self.lines(text, level)}

    async def until(self, predicate: Callable[[], bool], timeout: float = 10) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()


async def test_an_outage_is_one_warning_for_the_site_a_refused_link_warns_on_its_own(
    make_gateway: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """20 chargers, the cloud away: one site warning, each link's failures at debug; when the
    cloud is back one line says so, and the one charger it refuses (404) warns itself."""
    caplog.set_level(logging.DEBUG, logger="edgegw")
    log = Logged()
    logging.getLogger("edgegw").addHandler(log)
    cloud = SimCloud()
    await cloud.start()
    url, port = cloud.url, cloud.port
    await cloud.stop()
    ids = [f"CP{i:02}" for i in range(1, 21)]
    gateway = await make_gateway(
        cloud_url=url, chargers=[{"id": i, "cloud_password": PASSWORD} for i in ids]
    )
    try:
        async with contextlib.AsyncExitStack() as stack:
            chargers = [
                await stack.enter_async_context(SimCharger(i, gateway_url(gateway), connectors=1))
                for i in ids
            ]
            await asyncio.gather(*(c.boot() for c in chargers))  # answered by the gateway
            # Every link fails (a back-off of 0.05-0.2 s here: several times each), at debug.
            await log.until(lambda: log.links("cloud still unreachable") >= set(ids))
            await log.until(lambda: bool(log.lines("cloud unreachable")))
            (site,) = log.lines("cloud unreachable")
            assert site.startswith(f"cloud unreachable at {url}: ")
            assert "charger link(s) waiting (ConnectionRefusedError" in site
            assert log.links("cloud unreachable at") == set(ids)

            # Back, knowing every charger but CP20 (its URL answers 404).
            cloud = SimCloud(port=port, passwords=dict.fromkeys(ids[:-1], PASSWORD))
            await cloud.start()
            try:
                for i in ids[:-1]:
                    await cloud.wait_connected(i, timeout=10)
                await log.until(lambda: bool(log.lines("CP20: cloud unreachable")))
                assert log.lines("cloud reachable again")
                (refused,) = log.lines("CP20: cloud unreachable")
                assert refused.endswith("HTTP 404 (identity unknown to the CSMS?)")
                assert log.lines("cloud unreachable") == [site, refused]  # no other warning
            finally:
                await cloud.stop()
    finally:
        logging.getLogger("edgegw").removeHandler(log)


async def test_a_failure_is_a_link_s_own_when_others_are_connected_and_none_shares_it() -> None:
    hub = CloudReturn(random.Random(1), probe_interval=3600)
    up, a, b, c = Link(), Link(), Link(), Link()
    assert not hub.waiting(a, reason="ConnectionRefusedError")  # nobody connected: the site's
    assert hub.waiting(b, probe=False, reason="HTTP 401")  # refused: always its own
    hub.got_through(up)
    assert hub.waiting(c, reason="SSLError: bad certificate")  # others are up, no one shares it
    assert not hub.waiting(c, reason="ConnectionRefusedError")  # a's reason: the site's
    hub.disconnected(up)
    assert not hub.waiting(b, reason="SSLError: bad certificate")  # nobody connected now
    await hub.close()


async def test_links_failing_alike_while_others_are_still_connected_are_the_site_s() -> None:
    """A network cut: the links notice one by one; the first warns, the next are the site's."""
    hub = CloudReturn(random.Random(1), probe_interval=3600)
    links = [Link() for _ in range(5)]
    for link in links:
        hub.got_through(link)
    hub.disconnected(links[0])
    assert hub.waiting(links[0], reason="TimeoutError")  # the others look connected still
    hub.disconnected(links[1])
    assert not hub.waiting(links[1], reason="TimeoutError")
    hub.disconnected(links[2])
    assert not hub.waiting(links[2], reason="TimeoutError")
    await hub.close()
