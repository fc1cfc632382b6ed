"""Store-and-forward end to end: real gateway, simulated chargers and cloud, the cloud flapping."""

from __future__ import annotations

import asyncio
import random

from edgegw.control import ControlClient
from edgegw.sim.charger import SimCharger
from edgegw.sim.cloud import SimCloud
from edgegw.store.outbox import LOCAL_ID_BASE
from tests.conftest import GatewayFactory, gateway_url
from tests.proxy.test_cloud_probe import links
from tests.sync.record import charger_record, check_cloud_has

TAG = "04A1B2C3"
FAST_RETRY = {"retry_interval": 0.05, "max_retry_interval": 0.2}


async def test_cloud_flapping_during_sessions_loses_and_invents_nothing(
    make_gateway: GatewayFactory,
) -> None:
    """Six sessions a charger: one with the cloud up, four while it flaps, one while it is away.

    The first and the last round make both paths certain whatever the flaps' timing under load
    (sessions the cloud numbered, sessions started offline and replayed); the flaps in between
    land wherever they land. Nothing may be lost or invented either way.
    """
    cloud = SimCloud(accepted_tags={TAG})
    await cloud.start()
    ids = [f"CP{i}" for i in range(5)]
    gateway = await make_gateway(
        cloud_url=cloud.url,
        chargers=[{"id": i} for i in ids],
        auth={"unknown_cards": "accept", "online_timeout": 0.5},
        sync=FAST_RETRY,
    )
    chargers = [SimCharger(i, gateway_url(gateway), connectors=1) for i in ids]
    rng = random.Random(7)
    stop_flapping = asyncio.Event()

    async def flap() -> None:
        while not stop_flapping.is_set():
            await asyncio.sleep(rng.uniform(0.1, 0.4))  # simulated outage rhythm
            if cloud.running:
                await cloud.stop()
            else:
                await cloud.start()

    async def sessions(charger: SimCharger, n: int) -> list[int | None]:
        return [await charger.run_session(TAG, meter_interval=0.03, samples=3) for _ in range(n)]

    async def round_of(n: int) -> list[int | None]:
        done = await asyncio.gather(*(sessions(c, n) for c in chargers))
        return [tx for txs in done for tx in txs]

    for charger in chargers:
        await charger.connect()
        await charger.boot()
    await links(gateway, *ids)  # nothing queued, every link up: the cloud numbers these
    online = await round_of(1)
    assert all(tx is not None and tx < LOCAL_ID_BASE for tx in online), online
    flapper = asyncio.create_task(flap())  # noqa: TID251
    try:
        flapping = await round_of(4)
    finally:
        stop_flapping.set()
        await flapper
    if cloud.running:
        await cloud.stop()
    await links(gateway, *ids, up=False)  # every link down: these are started offline
    offline = await round_of(1)
    assert all(tx is not None and tx >= LOCAL_ID_BASE for tx in offline), offline
    await cloud.start()
    started = [tx is not None for tx in online + flapping + offline]
    assert sum(started) == 30
    expected_stops = sum(started)
    await cloud.wait_for(
        lambda _r: (
            len(
                [
                    r
                    for r in cloud.records
                    if r.action == "StopTransaction"
                    and r.direction == "out"
                    and r.message_type == 3
                    # An answer lost when the cloud went down is redelivered: count it once.
                    and r.message_id not in cloud.unsent
                ]
            )
            >= expected_stops
        ),
        timeout=30,
    )
    for charger in chargers:
        assert check_cloud_has(cloud, charger.charger_id, charger.sent) == 6
        await charger.close()
    await cloud.stop()
    # Both paths were exercised: sessions the cloud numbered and sessions started offline.
    tx_ids = [
        p["transactionId"]
        for c in chargers
        for a, p in charger_record(c.sent)
        if a == "StopTransaction"
    ]
    assert any(t >= LOCAL_ID_BASE for t in tx_ids) and any(t < LOCAL_ID_BASE for t in tx_ids)


async def cloud_that_blocks(tag: str) -> tuple[SimCloud, str]:
    """A cloud that will answer Blocked for ``tag``; down for now, but its URL is known."""
    cloud = SimCloud(blocked_tags={tag})
    await cloud.start()
    url = cloud.url
    await cloud.stop()
    return cloud, url


async def test_cloud_refusing_a_card_accepted_offline_stops_the_running_session(
    make_gateway: GatewayFactory,
) -> None:
    cloud, url = await cloud_that_blocks("LOSTCARD")
    gateway = await make_gateway(cloud_url=url, auth={"unknown_cards": "accept"}, sync=FAST_RETRY)
    async with SimCharger("CP1", gateway_url(gateway), connectors=1) as charger:
        await charger.boot()
        tx = await charger.tap("LOSTCARD")
        assert tx is not None and tx >= LOCAL_ID_BASE  # accepted offline, local id
        await charger.meter_values(1)
        await cloud.start()
        # The replayed start is answered Blocked while the car still charges: the gateway
        # stops the session (StopTransactionOnInvalidId), with the charger's own id.
        await charger.wait_call("RemoteStopTransaction", timeout=10)
        stop = await cloud.wait_for(lambda r: r.action == "StopTransaction", timeout=10)
        start_answer = cloud.find("StartTransaction", direction="out")[0]
        assert start_answer.payload["idTagInfo"]["status"] == "Blocked"
        assert stop.payload["transactionId"] == start_answer.payload["transactionId"]
        assert stop.payload["reason"] == "Remote"
        assert gateway.store is not None
        message = next(m for _a, k, _c, m in await gateway.store.events() if k.startswith("auth."))
        assert "Blocked" in message and "stopping it" in message
    await cloud.stop()


async def test_cloud_refusing_a_card_can_let_the_session_finish(
    make_gateway: GatewayFactory,
) -> None:
    cloud, url = await cloud_that_blocks("LOSTCARD")
    gateway = await make_gateway(
        cloud_url=url,
        auth={"unknown_cards": "accept", "stop_transaction_on_invalid_id": False},
        sync=FAST_RETRY,
    )
    async with SimCharger("CP1", gateway_url(gateway), connectors=1) as charger:
        await charger.boot()
        assert await charger.tap("LOSTCARD") is not None
        await cloud.start()
        await cloud.wait_for(lambda r: r.action == "StartTransaction" and r.direction == "out")
        assert gateway.store is not None
        await charger.meter_values(1)
        await charger.end_session(1)
        await cloud.wait_for(lambda r: r.action == "StopTransaction" and r.direction == "out")
        assert not [a for a, _ in charger.received if a == "RemoteStopTransaction"]
        assert check_cloud_has(cloud, "CP1", charger.sent) == 1
    await cloud.stop()


async def test_a_session_under_free_charging_is_not_stopped_when_the_cloud_refuses_its_card(
    make_gateway: GatewayFactory,
) -> None:
    cloud, url = await cloud_that_blocks("LOSTCARD")
    gateway = await make_gateway(cloud_url=url, auth={"unknown_cards": "reject"}, sync=FAST_RETRY)
    async with SimCharger("CP1", gateway_url(gateway), connectors=1) as charger:
        await charger.boot()
        async with await ControlClient.connect(gateway.config.control.socket) as client:
            await client.call("chargers.free_charging", charger="CP1", enabled=True)
        assert await charger.tap("LOSTCARD") is not None  # accepted offline: free charging
        await cloud.start()
        await cloud.wait_for(lambda r: r.action == "StartTransaction" and r.direction == "out")
        assert gateway.store is not None
        for _ in range(100):  # the event follows the cloud's answer to the replayed start
            events = await gateway.store.events()
            kinds = {k: m for _a, k, _c, m in events}
            if "auth.refused_after_offline_start" in kinds:
                break
            await asyncio.sleep(0.05)
        assert "it may finish (free charging is on)" in kinds["auth.refused_after_offline_start"]
        await charger.end_session(1)
        await cloud.wait_for(lambda r: r.action == "StopTransaction" and r.direction == "out")
        assert not [a for a, _ in charger.received if a == "RemoteStopTransaction"]
    await cloud.stop()


async def test_a_copy_of_a_queued_message_is_answered_as_before_after_the_drain(
    make_gateway: GatewayFactory,
) -> None:
    """The gateway died after queueing but before answering: the charger re-sends it later.

    By then the outbox has been delivered and the cloud is up, so the copy would be relayed live;
    it must be recognised instead, answered as the first time, and never reach the cloud twice.
    """
    cloud = SimCloud(accepted_tags={TAG})
    await cloud.start()
    gateway = await make_gateway(
        cloud_url=cloud.url, chargers=[{"id": "CP1"}], auth={"online_timeout": 0.5}, sync=FAST_RETRY
    )
    charger = SimCharger("CP1", gateway_url(gateway), connectors=1)
    await charger.connect()
    await charger.boot()
    await cloud.stop()
    await cloud.wait_disconnected("CP1")
    start = {"connectorId": 1, "idTag": TAG, "meterStart": 0, "timestamp": "2026-11-21T10:00:00Z"}
    local_id = (await charger.call("StartTransaction", start))["transactionId"]
    assert local_id >= LOCAL_ID_BASE
    meter = {
        "connectorId": 1,
        "transactionId": local_id,
        "meterValue": [{"timestamp": "2026-11-21T10:05:00Z", "sampledValue": [{"value": "250"}]}],
    }
    assert await charger.call("MeterValues", meter) == {}
    await cloud.start()
    await cloud.wait_for(lambda r: len(cloud.find("MeterValues", direction="out")) == 1)

    # The charger comes back and re-sends both, as if it had never had their answers.
    await charger.close()
    charger = SimCharger("CP1", gateway_url(gateway), connectors=1)
    await charger.connect()
    again = await charger.call("StartTransaction", start)
    assert again["transactionId"] == local_id  # the id it was given the first time
    assert await charger.call("MeterValues", meter) == {}
    # The next new message goes live, with the cloud's transaction id.
    later = {
        **meter,
        "meterValue": [{**meter["meterValue"][0], "timestamp": "2026-11-21T10:10:00Z"}],
    }
    assert await charger.call("MeterValues", later) == {}
    await cloud.wait_for(lambda r: len(cloud.find("MeterValues", direction="out")) == 2)
    assert len(cloud.find("StartTransaction", direction="in")) == 1
    values = [r.payload for r in cloud.find("MeterValues", direction="in")]
    cloud_id = cloud.find("StartTransaction", direction="out")[0].payload["transactionId"]
    assert [v["meterValue"][0]["timestamp"] for v in values] == [
        "2026-11-21T10:05:00Z",
        "2026-11-21T10:10:00Z",
    ]
    assert {v["transactionId"] for v in values} == {cloud_id}
    await charger.close()
    await cloud.stop()


async def test_standalone_a_copy_of_a_start_gets_the_same_id_and_no_second_session(
    make_gateway: GatewayFactory,
) -> None:
    gateway = await make_gateway(chargers=[{"id": "CP1"}], auth={"unknown_cards": "accept"})
    charger = SimCharger("CP1", gateway_url(gateway), connectors=2)
    await charger.connect()
    await charger.boot()
    start = {"connectorId": 1, "idTag": TAG, "meterStart": 7, "timestamp": "2026-11-21T10:00:00Z"}
    first = (await charger.call("StartTransaction", start))["transactionId"]
    assert (await charger.call("StartTransaction", start))["transactionId"] == first
    # A new session (another reading, another time) is numbered anew.
    other = {**start, "connectorId": 2, "meterStart": 9, "timestamp": "2026-11-21T10:01:00Z"}
    assert (await charger.call("StartTransaction", other))["transactionId"] != first
    assert gateway.store is not None
    cursor = await gateway.store.db.conn.execute(
        "SELECT transaction_id FROM transactions WHERE charger_id = 'CP1' ORDER BY id"
    )
    assert [row[0] for row in await cursor.fetchall()] == [first, first + 1]
    await charger.close()
