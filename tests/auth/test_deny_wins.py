"""Deny wins: the site's own records refuse a card even when the cloud accepts it.

Real parts: a gateway (real sockets on port 0) between a raw charger and a simulated cloud that
accepts every card used here. The site's cards are changed through the running gateway's card
authority, as the control socket does.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from edgegw.auth.access import CardGroup, Share
from edgegw.auth.authority import SiteCards
from edgegw.auth.idtags import CardId, parse_card_id
from edgegw.auth.locallist import AuthStatus, Card
from edgegw.daemon import Gateway
from edgegw.sim.cloud import SimCloud
from edgegw.store.sessions import parse_time
from tests.conftest import GatewayFactory, RawCharger, gateway_url, raw_charger
from tests.control.test_commission_ops import FAST, install_ops
from tests.control.test_commission_ops import charger as commissioned_charger

BOOT = {"chargePointVendor": "Vendor", "chargePointModel": "Model"}
BLOCKED = "1EA68671"
EXPIRED = "04A1B2C3D4E5F6"
PRIVATE = "E43AC9D2"  # a private bay's card: only on CP2
GOOD = "DEADBEEF"
TOKEN = "TERMINAL-0042"  # a payment terminal's pre-authorised session: unknown to the site
EVERY_CARD = {BLOCKED, EXPIRED, PRIVATE, GOOD, TOKEN}


@pytest.fixture
async def cloud() -> AsyncIterator[SimCloud]:
    async with SimCloud(accepted_tags=EVERY_CARD) as sim:
        yield sim


def uid(text: str) -> CardId:
    return parse_card_id(text)


async def site(
    make_gateway: GatewayFactory, cloud: SimCloud, *, chargers: Any = None, **auth: Any
) -> Gateway:
    gateway = await make_gateway(cloud_url=cloud.url, chargers=chargers, auth=auth)
    assert gateway.authorizer is not None
    past = datetime.now(UTC) - timedelta(days=1)
    for card in (
        Card(uid(BLOCKED), owner="Lost", status=AuthStatus.BLOCKED),
        Card(uid(EXPIRED), owner="Gone", expiry=past),
        Card(uid(PRIVATE), owner="Bay 2", chargers=frozenset({"CP2"})),
        Card(uid(GOOD), owner="Resident"),
    ):
        await gateway.authorizer.add_card(card)
    return gateway


async def authorize(cp: RawCharger, id_tag: str) -> dict[str, Any]:
    answer = await cp.call("Authorize", {"idTag": id_tag})
    return answer[2]["idTagInfo"]  # type: ignore[no-any-return]


async def start(cp: RawCharger, id_tag: str) -> dict[str, Any]:
    payload = {"connectorId": 1, "idTag": id_tag, "meterStart": 1000, "timestamp": _now()}
    answer = await cp.call("StartTransaction", payload)
    return answer[2]  # type: ignore[no-any-return]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def cloud_answer(cloud: SimCloud, message_id: str) -> str:
    (out,) = [r for r in cloud.find(direction="out", message_type=3) if r.message_id == message_id]
    return out.raw


async def override_events(gateway: Gateway, cp: RawCharger) -> list[tuple[str | None, str]]:
    """The override events, once everything before a Heartbeat of ``cp`` is carried out.

    A session's executor carries out the link's commands in order: when the Heartbeat's
    answer reaches the charger, every event the link asked for before it is written.
    """
    await cp.call("Heartbeat", {})
    assert gateway.store is not None
    return [
        (charger, message)
        for _, kind, charger, message in await gateway.store.events(50)
        if kind == "auth.site_override"
    ]


@pytest.mark.parametrize(
    ("card", "status"),
    [(BLOCKED, "Blocked"), (EXPIRED, "Expired"), (PRIVATE, "Invalid")],
    ids=["blocked", "expired", "restricted-elsewhere"],
)
async def test_the_site_refuses_at_authorize_what_the_cloud_accepts(
    cloud: SimCloud, make_gateway: GatewayFactory, card: str, status: str
) -> None:
    gateway = await site(make_gateway, cloud)
    async with raw_charger(gateway_url(gateway), "CP1") as cp:
        await cp.call("BootNotification", BOOT)
        await cp.send([2, "auth-1", "Authorize", {"idTag": card}])
        answer = await cp.recv()
        assert answer[:2] == [3, "auth-1"]  # same message id
        assert answer[2] == {"idTagInfo": {"status": status}}
        # The cloud did answer Accepted: the site overruled it.
        assert json.loads(cloud_answer(cloud, "auth-1"))[2]["idTagInfo"]["status"] == "Accepted"
        events = await override_events(gateway, cp)
    assert events and events[0][0] == "CP1" and card in events[0][1] and status in events[0][1]


async def test_a_refused_start_reaches_the_cloud_as_a_start_and_a_deauthorized_stop(
    cloud: SimCloud, make_gateway: GatewayFactory
) -> None:
    gateway = await site(make_gateway, cloud)
    async with raw_charger(gateway_url(gateway), "CP1") as cp:
        await cp.call("BootNotification", BOOT)
        answer = await start(cp, PRIVATE)  # the private bay's card on another charger
        (cloud_tx,) = [t for t in cloud.transactions.values() if t.id_tag == PRIVATE]
        # The same transaction id as the cloud's, the site's refusal in idTagInfo.
        assert answer == {
            "transactionId": cloud_tx.transaction_id,
            "idTagInfo": {"status": "Invalid"},
        }
        # The charger ends the session (StopTransactionOnInvalidId): the stop goes to the cloud.
        await cp.call(
            "StopTransaction",
            {
                "transactionId": answer["transactionId"],
                "meterStop": 1000,
                "timestamp": _now(),
                "reason": "DeAuthorized",
                "idTag": PRIVATE,
            },
        )
        await cp.call("Heartbeat", {})  # the executor recorded the stop before this answer
    assert cloud_tx.stopped and cloud_tx.reason == "DeAuthorized"
    assert gateway.store is not None
    (row,) = await gateway.store.transactions("CP1")
    assert row.transaction_id == cloud_tx.transaction_id and row.stop_reason == "DeAuthorized"


@pytest.mark.parametrize("card", [BLOCKED, EXPIRED, PRIVATE])
async def test_the_site_refuses_at_start_what_the_cloud_accepts(
    cloud: SimCloud, make_gateway: GatewayFactory, card: str
) -> None:
    gateway = await site(make_gateway, cloud)
    async with raw_charger(gateway_url(gateway), "CP1") as cp:
        await cp.call("BootNotification", BOOT)
        answer = await start(cp, card)
    assert answer["idTagInfo"]["status"] != "Accepted"
    assert cloud.transactions  # the cloud took the start: its record is the charger's


async def test_cards_the_site_accepts_or_does_not_know_get_the_clouds_answer_unchanged(
    cloud: SimCloud, make_gateway: GatewayFactory
) -> None:
    gateway = await site(make_gateway, cloud)
    async with raw_charger(gateway_url(gateway), "CP2") as cp:
        await cp.call("BootNotification", BOOT)
        for n, card in enumerate((PRIVATE, GOOD, TOKEN)):  # PRIVATE is allowed on CP2
            await cp.send([2, f"a-{n}", "Authorize", {"idTag": card}])
            answer = await cp.recv()
            assert answer == json.loads(cloud_answer(cloud, f"a-{n}"))
            assert answer[2]["idTagInfo"]["status"] == "Accepted"
        assert await override_events(gateway, cp) == []


async def test_an_accepted_card_never_overrides_a_refusal_from_the_cloud(
    cloud: SimCloud, make_gateway: GatewayFactory
) -> None:
    cloud.blocked_tags.add(GOOD)
    gateway = await site(make_gateway, cloud)
    async with raw_charger(gateway_url(gateway), "CP1") as cp:
        await cp.call("BootNotification", BOOT)
        assert await authorize(cp, GOOD) == {"status": "Blocked"}
        assert (await start(cp, GOOD))["idTagInfo"] == {"status": "Blocked"}


async def test_a_card_blocked_while_the_charger_is_connected_is_refused_at_its_next_tap(
    cloud: SimCloud, make_gateway: GatewayFactory
) -> None:
    gateway = await site(make_gateway, cloud)
    assert gateway.authorizer is not None
    async with raw_charger(gateway_url(gateway), "CP1") as cp:
        await cp.call("BootNotification", BOOT)
        assert await authorize(cp, GOOD) == {"status": "Accepted"}
        await gateway.authorizer.block(GOOD)
        assert await authorize(cp, GOOD) == {"status": "Blocked"}
        card = gateway.authorizer.card(GOOD)
        assert card is not None
        await gateway.authorizer.update_card(
            dataclasses.replace(card, status=AuthStatus.ACCEPTED, chargers=frozenset({"CP2"}))
        )
        assert await authorize(cp, GOOD) == {"status": "Invalid"}


async def test_a_remote_start_for_a_card_the_site_refuses_here_is_rejected_to_the_cloud(
    cloud: SimCloud, make_gateway: GatewayFactory
) -> None:
    gateway = await site(make_gateway, cloud)
    async with raw_charger(gateway_url(gateway), "CP1") as cp:
        await cp.call("BootNotification", BOOT)
        await cloud.wait_connected("CP1")
        for card in (PRIVATE, BLOCKED):
            answer = await cloud.call("CP1", "RemoteStartTransaction", {"idTag": card})
            assert answer == {"status": "Rejected"}
        # A token the site does not know (a payment terminal's session) reaches the charger.
        remote = asyncio.create_task(  # noqa: TID251
            cloud.call("CP1", "RemoteStartTransaction", {"idTag": TOKEN, "connectorId": 1})
        )
        received = await cp.recv()
        assert received[2:] == ["RemoteStartTransaction", {"idTag": TOKEN, "connectorId": 1}]
        await cp.send([3, received[1], {"status": "Accepted"}])
        assert await remote == {"status": "Accepted"}
        events = await override_events(gateway, cp)
    assert any("RemoteStartTransaction" in m and PRIVATE in m for _, m in events)


async def test_with_the_setting_off_the_cloud_alone_decides(
    cloud: SimCloud, make_gateway: GatewayFactory
) -> None:
    gateway = await site(make_gateway, cloud, site_overrides_cloud=False)
    async with raw_charger(gateway_url(gateway), "CP1") as cp:
        await cp.call("BootNotification", BOOT)
        await cp.send([2, "a-1", "Authorize", {"idTag": BLOCKED}])
        assert await cp.recv() == json.loads(cloud_answer(cloud, "a-1"))
        assert (await start(cp, PRIVATE))["idTagInfo"] == {"status": "Accepted"}
        await cloud.wait_connected("CP1")
        remote = asyncio.create_task(  # noqa: TID251
            cloud.call("CP1", "RemoteStartTransaction", {"idTag": BLOCKED})
        )
        received = await cp.recv()
        assert received[2] == "RemoteStartTransaction"
        await cp.send([3, received[1], {"status": "Accepted"}])
        assert await remote == {"status": "Accepted"}
        assert await override_events(gateway, cp) == []


async def test_commission_tap_reports_the_refusal_the_charger_heard(
    cloud: SimCloud, make_gateway: GatewayFactory
) -> None:
    """`commission CP1 --tap` with a private-bay card of CP2: the step fails and says why."""
    gateway = await site(make_gateway, cloud, chargers=[{"id": "CP1", "idtag_format": "hex"}])
    ops = install_ops(gateway)
    async with commissioned_charger(gateway) as sim:

        async def tap_when_asked() -> None:
            await sim.wait_call("ClearChargingProfile")  # the last call before the card step
            await sim.tap(PRIVATE)

        async with asyncio.TaskGroup() as group:
            group.create_task(tap_when_asked())
            report = await ops.commission({"charger": "CP1", "tap": True, **FAST})
    (card_step,) = [s for s in report["steps"] if s["name"] == "card"]
    assert card_step["status"] == "fail", card_step
    assert "Authorize Invalid" in card_step["detail"]
    assert "works only on CP2, not on CP1" in card_step["detail"]
    assert card_step["hint"] == f"see `edgegw cards show {PRIVATE}`"


async def test_offline_the_gateway_refuses_the_same_cards(
    cloud: SimCloud, make_gateway: GatewayFactory
) -> None:
    gateway = await site(make_gateway, cloud)
    async with raw_charger(gateway_url(gateway), "CP1") as cp:
        await cp.call("BootNotification", BOOT)
        await cloud.stop()
        await cloud.wait_disconnected("CP1")
        assert await authorize(cp, BLOCKED) == {"status": "Blocked"}
        assert await authorize(cp, PRIVATE) == {"status": "Invalid"}
        assert (await start(cp, EXPIRED))["idTagInfo"] == {"status": "Expired"}


async def test_a_remote_start_accepted_before_the_card_was_blocked_is_refused_offline(
    cloud: SimCloud, make_gateway: GatewayFactory
) -> None:
    """The cloud's remote start is honoured offline for a while: not for a card blocked since."""
    gateway = await site(make_gateway, cloud)
    assert gateway.authorizer is not None
    async with raw_charger(gateway_url(gateway), "CP1") as cp:
        await cp.call("BootNotification", BOOT)
        await cloud.wait_connected("CP1")
        remote = asyncio.create_task(  # noqa: TID251
            cloud.call("CP1", "RemoteStartTransaction", {"idTag": GOOD, "connectorId": 1})
        )
        received = await cp.recv()
        await cp.send([3, received[1], {"status": "Accepted"}])
        assert await remote == {"status": "Accepted"}
        await cp.call("Heartbeat", {})  # the remote start is recorded by now
        await gateway.authorizer.block(GOOD)
        await cloud.stop()
        await cloud.wait_disconnected("CP1")
        assert (await start(cp, GOOD))["idTagInfo"] == {"status": "Blocked"}


# ------------------------------------------------------------------ groups and shares

GROUPED = "0A0B0C0D"  # a resident's card: its group works in the garage (CP2) only
GUEST = "0102030405060A"  # a guest's card: its own charger is CP2; its share of CP1 has ended


@pytest.fixture
async def shared_cloud() -> AsyncIterator[SimCloud]:
    async with SimCloud(accepted_tags={GROUPED, GUEST}) as sim:
        yield sim


async def groups_site(make_gateway: GatewayFactory, cloud: SimCloud) -> Gateway:
    gateway = await make_gateway(cloud_url=cloud.url)
    auth = gateway.authorizer
    assert auth is not None
    await auth.add_card(Card(uid(GROUPED), owner="Resident"))
    await auth.add_card(Card(uid(GUEST), owner="Guest", chargers=frozenset({"CP2"})))
    ended = time.time() - 3600
    guest = uid(GUEST).key
    await auth.change_access(
        lambda a: (
            a.with_charger_group("garage", frozenset({"CP2"}))
            .with_card_group(
                CardGroup("residents", frozenset({uid(GROUPED).key}), frozenset({"@garage"}))
            )
            .with_share(Share(1, frozenset({"CP1"}), ended, card=guest, note="weekend"))
        )
    )
    return gateway


@pytest.mark.parametrize(
    ("card", "status"), [(GROUPED, "Invalid"), (GUEST, "Expired")], ids=["group", "share"]
)
async def test_group_restricted_and_expired_share_cards_are_refused_where_the_cloud_accepts(
    shared_cloud: SimCloud, make_gateway: GatewayFactory, card: str, status: str
) -> None:
    gateway = await groups_site(make_gateway, shared_cloud)
    async with raw_charger(gateway_url(gateway), "CP1") as cp:
        await cp.call("BootNotification", BOOT)
        assert await authorize(cp, card) == {"status": status}
        answer = await start(cp, card)
        assert answer["idTagInfo"] == {"status": status}
        (tx,) = shared_cloud.transactions.values()
        assert answer["transactionId"] == tx.transaction_id
        await cp.call(
            "StopTransaction",
            {
                "transactionId": tx.transaction_id,
                "meterStop": 1000,
                "timestamp": _now(),
                "reason": "DeAuthorized",
            },
        )
        events = await override_events(gateway, cp)
    assert tx.stopped and tx.reason == "DeAuthorized"  # the cloud's record: a start and a stop
    assert len(events) == 2
    async with raw_charger(gateway_url(gateway), "CP2") as cp:  # where they belong
        await cp.call("BootNotification", BOOT)
        assert await authorize(cp, card) == {"status": "Accepted"}


async def test_an_active_share_lets_the_card_in_until_it_ends(
    shared_cloud: SimCloud, make_gateway: GatewayFactory
) -> None:
    gateway = await groups_site(make_gateway, shared_cloud)
    auth = gateway.authorizer
    assert auth is not None
    until = time.time() + 3600
    await auth.change_access(
        lambda a: a.with_share(Share(2, frozenset({"CP1"}), until, card=uid(GUEST).key))
    )
    decision = auth.decide("CP1", GUEST, fmt=auth.charger_format("CP1"))
    end = decision.id_tag_info["expiryDate"]  # the share's end
    assert decision.accepted and parse_time(end) == pytest.approx(until, abs=0.001)
    assert end.endswith("Z")  # OCPP's UTC date-time
    async with raw_charger(gateway_url(gateway), "CP1") as cp:
        await cp.call("BootNotification", BOOT)
        # The cloud accepts with no end; the charger, which may cache the answer and use it
        # offline, is told the share's end (same message id, nothing else changed).
        await cp.send([2, "share-1", "Authorize", {"idTag": GUEST}])
        answer = await cp.recv()
        assert answer == [3, "share-1", {"idTagInfo": {"status": "Accepted", "expiryDate": end}}]
        assert json.loads(cloud_answer(shared_cloud, "share-1"))[2] == {
            "idTagInfo": {"status": "Accepted"}
        }
        started = await start(cp, GUEST)
        assert started["idTagInfo"] == {"status": "Accepted", "expiryDate": end}
        (tx,) = shared_cloud.transactions.values()
        assert started["transactionId"] == tx.transaction_id
        events = await override_events(gateway, cp)
    assert len(events) == 2 and all(GUEST in m and end in m for _, m in events)


async def test_the_site_lowers_only_a_later_cloud_end_and_never_accepts_a_refusal(
    shared_cloud: SimCloud, make_gateway: GatewayFactory
) -> None:
    gateway = await groups_site(make_gateway, shared_cloud)
    auth = gateway.authorizer
    assert auth is not None
    until = time.time() + 3600
    await auth.change_access(
        lambda a: a.with_share(Share(2, frozenset({"CP1"}), until, card=uid(GUEST).key))
    )
    cards = SiteCards(auth, gateway.config)
    end = datetime.fromtimestamp(until, UTC)
    request = {"idTag": GUEST}

    def answer(info: dict[str, Any]) -> dict[str, Any] | None:
        override = cards.override_answer("CP1", "Authorize", request, {"idTagInfo": info})
        return None if override is None else override.payload

    later = _iso(end + timedelta(days=30))
    sooner = _iso(end - timedelta(minutes=5))
    shortened = answer({"status": "Accepted", "expiryDate": later, "parentIdTag": "P"})
    assert shortened is not None
    info = shortened["idTagInfo"]
    assert (info["status"], info["parentIdTag"]) == ("Accepted", "P")
    assert parse_time(info["expiryDate"]) == pytest.approx(until, abs=0.001)
    assert answer({"status": "Accepted", "expiryDate": sooner}) is None  # the cloud's is sooner
    for refusal in ("Blocked", "Invalid", "Expired", "ConcurrentTx"):
        assert answer({"status": refusal}) is None
    # On the card's own charger (no share needed) the cloud's answer stands.
    assert (
        cards.override_answer("CP2", "Authorize", request, {"idTagInfo": {"status": "Accepted"}})
        is None
    )


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")
