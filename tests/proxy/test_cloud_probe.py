"""The cloud returns while every cloud link waits out a long backoff: a probe finds it.

Real sockets: an in-process gateway with two chargers and a backoff of 30-60 s, a cloud that
goes away and comes back on the same port. Each link records what started the attempt that
got it through (its own backoff, a probe, a nudge from a link that got through); the queued
message reaching the cloud through a probed or nudged link is the proof that it did not wait
for the backoff (no wall-clock assertion; the waits below only bound the test).
"""

from __future__ import annotations

import asyncio
import itertools

from edgegw.daemon import Gateway
from edgegw.proxy.upstream import Upstream
from edgegw.sim.charger import SimCharger
from edgegw.sim.cloud import SimCloud
from edgegw.store.outbox import LOCAL_ID_BASE
from tests.conftest import GatewayFactory, gateway_url

TAG = "04A1B2C3"
LONG_BACKOFF = {"reconnect_min_delay": 60, "reconnect_max_delay": 60}  # retries after 30-60 s
BOUND = 25  # seconds: the test gives up long before any link's own backoff retries


async def cloud_away() -> SimCloud:
    """A cloud whose port is known and closed."""
    cloud = SimCloud(accepted_tags={TAG})
    await cloud.start()
    await cloud.stop()
    return cloud


def upstream(gateway: Gateway, charger_id: str) -> Upstream:
    link = gateway.sessions[charger_id].upstream
    assert link is not None
    return link


async def links(gateway: Gateway, *charger_ids: str, up: bool = True) -> None:
    """Until the gateway's side of each link is up (or down); the cloud sees it a moment earlier."""
    async with asyncio.timeout(BOUND):
        while any(upstream(gateway, c).connected != up for c in charger_ids):  # noqa: ASYNC110
            await asyncio.sleep(0.01)  # (the links have no event to wait on)


async def test_the_queued_message_leaves_by_a_probe_not_after_the_backoff(
    make_gateway: GatewayFactory,
) -> None:
    cloud = await cloud_away()
    gateway = await make_gateway(
        cloud_url=cloud.url,
        chargers=[{"id": "CP1"}, {"id": "CP2"}],
        auth={"unknown_cards": "accept"},
        cloud=LONG_BACKOFF,
    )
    url = gateway_url(gateway)
    async with SimCharger("CP1", url, connectors=1) as one, SimCharger("CP2", url) as two:
        await one.boot()  # answered by the gateway: both links have failed once
        await two.boot()
        tx = await one.tap(TAG)
        assert tx is not None and tx >= LOCAL_ID_BASE  # queued
        await cloud.start()  # the same port
        async with asyncio.timeout(BOUND):
            await cloud.wait_for(
                lambda r: r.action == "StartTransaction" and r.direction == "in", timeout=BOUND
            )
        await links(gateway, "CP1", "CP2")
        # One link was probed and got through; it nudged the other. Neither used its backoff.
        assert sorted(upstream(gateway, c).reconnected_by for c in ("CP1", "CP2")) == [
            "nudge",
            "probe",
        ]
    await cloud.stop()


async def test_a_cloud_that_accepts_tcp_but_refuses_handshakes_is_not_back(
    make_gateway: GatewayFactory,
) -> None:
    cloud = await cloud_away()
    gateway = await make_gateway(
        cloud_url=cloud.url, chargers=[{"id": "CP1"}, {"id": "CP2"}], cloud=LONG_BACKOFF
    )
    attempts: list[str] = []  # the charger each handshake was for
    open_now = most_open = 0
    four = asyncio.Event()

    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal open_now, most_open
        open_now += 1
        most_open = max(most_open, open_now)
        try:
            request_line = await reader.readline()
            attempts.append(request_line.split()[1].decode().rsplit("/", 1)[-1])
            if len(attempts) >= 4:
                four.set()
            writer.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
        finally:
            open_now -= 1
            writer.close()

    url = gateway_url(gateway)
    async with SimCharger("CP1", url) as one, SimCharger("CP2", url) as two:
        await one.boot()
        await two.boot()
        server = await asyncio.start_server(refuse, "127.0.0.1", cloud.port)
        async with server, asyncio.timeout(BOUND):
            await four.wait()
        # The probes went on (a refused handshake is not the cloud back), one at a time, the
        # links taking turns; nobody was nudged, nobody connected.
        assert most_open == 1
        assert all(a != b for a, b in itertools.pairwise(attempts)), attempts
        assert not any(upstream(gateway, c).connected for c in ("CP1", "CP2"))
        await cloud.start()  # now a real CSMS on that port
        await links(gateway, "CP1", "CP2")
        assert {upstream(gateway, c).reconnected_by for c in ("CP1", "CP2")} <= {"probe", "nudge"}
    await cloud.stop()
