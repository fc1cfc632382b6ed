"""A 2.0.1 transaction may start before the driver is identified (TxStartPoint EVConnected or
ParkingBayOccupancy: the Started has no idToken); the token comes with a later event
(triggerReason Authorized, or an Ended's StopAuthorized). That token is the session's card in
the records (sessions list, reports, pricing by card group), matched to the installer's cards
as a Started's token is. A session that has a card keeps it (a reviewer's repro: the card was
lost).

Real gateway, real sockets on port 0; a cloud of the ``ocpp`` library's v201 handlers where
the events are relayed.
"""

from __future__ import annotations

from typing import Any

from edgegw.auth.access import CardGroup
from edgegw.auth.cardid import CardId
from edgegw.proxy.rules import RecordMeter201, RecordStop201, transaction_records
from edgegw.sim.charger201 import SimCharger201, Transaction201
from edgegw.store.sessions import SessionState
from edgegw.store.sessions201 import Stop201
from tests.conftest import GatewayFactory, gateway_url
from tests.v201.test_offline201 import (
    CHARGERS,
    REVERSED,
    UID,
    _cloud_server,
    _enrol,
    _events,
    _stop,
    _until,
)
from tests.v201.test_relay201 import Cloud201
from tests.v201.test_sessions201 import _sessions


async def _authorized(
    cs: SimCharger201, tx: Transaction201, token: dict[str, Any], trigger: str = "Authorized"
) -> dict[str, Any]:
    """An Updated event carrying ``token`` (the sim sends a token only on Started)."""
    payload = {
        "eventType": "Updated",
        "timestamp": cs.now(),
        "triggerReason": trigger,
        "seqNo": cs.seq_no,
        "transactionInfo": {"transactionId": tx.transaction_id, "chargingState": "Charging"},
        "idToken": token,
    }
    cs.seq_no += 1
    return await cs.call("TransactionEvent", payload)


async def _ended(
    cs: SimCharger201, tx: Transaction201, token: dict[str, Any], energy_wh: float | None = None
) -> None:
    """An Ended event carrying the token that stopped it (StopAuthorized)."""
    cs.transactions.pop(tx.evse)
    payload: dict[str, Any] = {
        "eventType": "Ended",
        "timestamp": cs.now(),
        "triggerReason": "StopAuthorized",
        "seqNo": cs.seq_no,
        "transactionInfo": {"transactionId": tx.transaction_id, "stoppedReason": "Local"},
        "idToken": token,
    }
    if energy_wh is not None:
        register = {"value": energy_wh, "context": "Transaction.End"}
        payload["meterValue"] = [{"timestamp": cs.now(), "sampledValue": [register]}]
    cs.seq_no += 1
    await cs.call("TransactionEvent", payload)


CARD = {"idToken": REVERSED, "type": "ISO14443"}


async def test_a_token_given_after_started_is_the_sessions_card(
    make_gateway: GatewayFactory,
) -> None:
    gateway = await make_gateway(chargers=CHARGERS)  # cloudless: answered by the gateway
    await _enrol(gateway)
    async with SimCharger201("CS201", gateway_url(gateway)) as cs:
        await cs.boot()
        tx, _ = await cs.start(1, None, trigger="EVDetected")  # no idToken yet
        answer = await _authorized(cs, tx, CARD)
        assert answer["idTokenInfo"]["status"] == "Accepted"
        await cs.meter(1, 16.0, 1000.0)
        await cs.meter(1, 16.0, 4000.0)
        await cs.stop(1)
    [session] = await _sessions(gateway.config, gateway.store)
    assert session.transaction_id == tx.transaction_id
    assert session.id_tag == REVERSED  # as a Started's token is kept
    assert session.card is not None and session.card.owner == "tenant"  # the enrolled UID
    assert session.energy_wh == 3000


async def test_a_relayed_sessions_card_from_a_later_event(make_gateway: GatewayFactory) -> None:
    cloud = Cloud201()
    server, _ = await _cloud_server(cloud)
    gateway = await make_gateway(cloud_url=cloud.url, chargers=CHARGERS)
    await _enrol(gateway)
    try:
        async with SimCharger201("CS201", gateway_url(gateway)) as cs:
            await cs.boot()
            tx, _ = await cs.start(2, None, trigger="EVDetected")
            await _authorized(cs, tx, CARD)
            await cs.stop(2)
        await _until(lambda: len(_events(cloud)) == 3)
    finally:
        await _stop(server)
    [session] = await _sessions(gateway.config, gateway.store)
    assert session.id_tag == REVERSED
    assert session.card is not None and session.card.owner == "tenant"


async def test_an_ended_events_token_is_the_card_its_stop_is_priced_by(
    make_gateway: GatewayFactory,
) -> None:
    """The card is recorded before the stop: the stop is priced by the card's group."""
    residents = {"name": "residents", "per_kwh": 0.30, "card_groups": ["residents"]}
    visitors = {"name": "visitors", "per_kwh": 0.50}
    gateway = await make_gateway(chargers=CHARGERS, tariffs=[residents, visitors])
    await _enrol(gateway)
    authorizer = gateway.authorizer
    assert authorizer is not None
    card = CardId.from_uid(bytes.fromhex(UID))
    await authorizer.change_access(
        lambda a: a.with_card_group(CardGroup("residents", frozenset({card.key})))
    )
    async with SimCharger201("CS201", gateway_url(gateway)) as cs:
        await cs.boot()
        tx, _ = await cs.start(1, None, trigger="EVDetected")
        await cs.meter(1, 16.0, 1000.0)
        await _ended(cs, tx, CARD, 11000.0)
    [session] = await _sessions(gateway.config, gateway.store)
    assert session.id_tag == REVERSED
    assert session.state == SessionState.FINISHED
    assert (session.tariff, session.cost) == ("residents", 3.0)


async def test_a_session_keeps_the_card_it_has(make_gateway: GatewayFactory) -> None:
    """The card of the Started (or the first named) stays: a later token (a group member
    stopping it, NoAuthorization) changes nothing."""
    gateway = await make_gateway(chargers=CHARGERS)
    await _enrol(gateway)
    async with SimCharger201("CS201", gateway_url(gateway)) as cs:
        await cs.boot()
        first, _ = await cs.start(1, REVERSED)
        await _authorized(cs, first, {"idToken": "APP-7", "type": "Central"})
        await _ended(cs, first, {"idToken": "0A0B0C0D", "type": "ISO14443"})
        second, _ = await cs.start(2, None, trigger="EVDetected")
        await _authorized(cs, second, {"idToken": "", "type": "NoAuthorization"})
        await _authorized(cs, second, CARD)
        await _ended(cs, second, {"idToken": "0A0B0C0D", "type": "ISO14443"})
    sessions = {s.transaction_id: s for s in await _sessions(gateway.config, gateway.store)}
    assert sessions[first.transaction_id].id_tag == REVERSED
    assert sessions[second.transaction_id].id_tag == REVERSED


def test_which_later_events_name_the_sessions_card() -> None:
    """An Updated names it with or without a reading; an Ended names it before its stop (the
    stop is priced by it); NoAuthorization names none."""
    base = {"timestamp": "2026-12-07T10:00:00Z", "transactionInfo": {"transactionId": "tx-1"}}
    token = {"idToken": {"idToken": "04A1B2C3", "type": "ISO14443"}}
    assert transaction_records({**base, "eventType": "Updated", **token}, queued=False) == [
        RecordMeter201("tx-1", None, "04A1B2C3")
    ]
    free = {"idToken": {"idToken": "", "type": "NoAuthorization"}}
    assert transaction_records({**base, "eventType": "Updated", **free}, queued=False) == []
    ended = transaction_records({**base, "eventType": "Ended", **token}, queued=False)
    assert ended == [
        RecordMeter201("tx-1", None, "04A1B2C3"),
        RecordStop201(Stop201("tx-1", None, "2026-12-07T10:00:00Z", "Local")),
    ]
