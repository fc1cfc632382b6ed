"""Chargers that queued sessions in an outage and never come back (issue 16).

"Syncs queued sessions once connectivity returns" means once the *cloud* is reachable: a
charger that lost power (or was taken away) after an outage must not keep its sessions from
the cloud, or the cloud keeps their transactions open and bills nothing. The gateway runs as a
process; four chargers boot with the cloud up, the cloud goes away, each charger runs two
sessions (answered and queued by the gateway), two of them then leave for good, and the cloud
returns. Within a generous wait everything must reach the cloud: the absent chargers' sessions
too, each message once, in order, with the cloud's transaction ids.

No connection to the cloud closes with a CALL outstanding here (the cloud goes down before any
session), so nothing may arrive twice.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from pathlib import Path

from edgegw.sim.cloud import SimCloud
from edgegw.store.outbox import LOCAL_ID_BASE
from tests.sync.exactly_once import (
    HANG_GUARD_S,
    GatewaySite,
    PatientCharger,
    assert_exactly_once,
    everything_arrived,
    gateway_process,
)
from tests.sync.test_outage import BLOCKED, KNOWN, Charger, charge

CHARGERS = ("CP00", "CP01", "CP02", "CP03")
LEAVING = ("CP02", "CP03")  # lose power after the outage's sessions and never return
SESSIONS = 2
ARRIVAL_TIMEOUT = 12.0  # generous: with the fix the backlog drains in about a second


def realistic_cloud() -> SimCloud:
    return SimCloud(
        accepted_tags=set(KNOWN), blocked_tags={BLOCKED}, serial=True, concurrent_tx=True
    )


def site_chargers(gateway: GatewaySite) -> list[Charger]:
    return [
        Charger(
            i,
            PatientCharger(cid, gateway.url, gateway_up=gateway.process.up),
            register_wh=3_000_000 + 100_000 * i,
        )
        for i, cid in enumerate(CHARGERS)
    ]


async def outage_sessions(cloud: SimCloud, gateway: GatewaySite, chargers: list[Charger]) -> None:
    """Boot with the cloud up, lose the cloud, run the sessions (all queued)."""
    await asyncio.gather(*(c.driver.call("Heartbeat", {}) for c in chargers))
    await cloud.stop()
    links = await gateway.settled(
        lambda s: all(c["cloud_link"] == "offline" for c in s["chargers"] if c["id"] in CHARGERS),
        10,
    )
    assert all(c["cloud_link"] == "offline" for c in links["chargers"] if c["id"] in CHARGERS)

    async def sessions(charger: Charger) -> None:
        for s in range(SESSIONS):
            await charge(charger, KNOWN[(charger.index + s) % 3], samples=2)

    await asyncio.gather(*(sessions(c) for c in chargers))
    ids = [s.transaction_id for c in chargers for s in c.sessions]
    assert len(ids) == len(CHARGERS) * SESSIONS and all(t >= LOCAL_ID_BASE for t in ids)


async def leave(gateway: GatewaySite, chargers: Sequence[Charger]) -> None:
    """These chargers lose power: their connections close and they never come back."""
    for charger in chargers:
        await charger.driver.close()
    status = await gateway.settled(
        lambda s: not any(c["connected"] for c in s["chargers"] if c["id"] in LEAVING), 10
    )
    assert not any(c["connected"] for c in status["chargers"] if c["id"] in LEAVING), status


async def cloud_returns(
    cloud: SimCloud, gateway: GatewaySite, chargers: list[Charger], sessions: int
) -> None:
    """The cloud is back: everything must arrive, once, in order, even from absent chargers."""
    await cloud.start()
    drivers = [c.driver for c in chargers]
    with contextlib.suppress(TimeoutError):  # the assertions below say what did not arrive
        await cloud.wait_for(lambda _r: everything_arrived(cloud, drivers), ARRIVAL_TIMEOUT)
    status = await gateway.settled(lambda s: s["queued"] == 0, 5)
    assert assert_exactly_once(cloud, drivers) == sessions
    assert [k for k, t in cloud.transactions.items() if not t.stopped] == []
    assert status["queued"] == 0 and status["parked"] == 0, status


async def test_the_sessions_of_chargers_that_never_return_reach_the_cloud(
    tmp_path: Path,
) -> None:
    cloud = realistic_cloud()
    await cloud.start()
    try:
        async with asyncio.timeout(HANG_GUARD_S), gateway_process(tmp_path, cloud.url) as gateway:
            chargers = site_chargers(gateway)
            try:
                await outage_sessions(cloud, gateway, chargers)
                await leave(gateway, [c for c in chargers if c.id in LEAVING])
                await cloud_returns(cloud, gateway, chargers, len(CHARGERS) * SESSIONS)
            finally:
                for charger in chargers:
                    await charger.driver.close()
    finally:
        await cloud.stop()
    assert gateway.exit_code == 0, gateway.process.log_tail()
    assert "Traceback" not in gateway.process.log_text()


async def test_a_gateway_restarted_while_chargers_are_away_still_delivers_their_backlog(
    tmp_path: Path,
) -> None:
    cloud = realistic_cloud()
    await cloud.start()
    try:
        async with asyncio.timeout(HANG_GUARD_S), gateway_process(tmp_path, cloud.url) as gateway:
            chargers = site_chargers(gateway)
            staying = [c for c in chargers if c.id not in LEAVING]
            try:
                await outage_sessions(cloud, gateway, chargers)
                await leave(gateway, [c for c in chargers if c.id in LEAVING])
                # The gateway dies and comes back while the cloud is still away; the chargers
                # that stayed connect again (and run one more session), the others never do.
                gateway.process.kill()
                await gateway.process.restart_after_kill()
                await asyncio.gather(*(charge(c, KNOWN[c.index % 3], samples=1) for c in staying))
                sessions = len(CHARGERS) * SESSIONS + len(staying)
                await cloud_returns(cloud, gateway, chargers, sessions)
            finally:
                for charger in chargers:
                    await charger.driver.close()
    finally:
        await cloud.stop()
    assert gateway.exit_code == 0, gateway.process.log_tail()
    assert "Traceback" not in gateway.process.log_text()
