"""Pushing each charger's local list, against simulated chargers over real WebSockets.

The CSMS end of the chargers' sockets is :class:`~edgegw.sim.cloud.SimCloud` (it plays the
gateway's role here); the pusher reaches the chargers through its ``call``, exactly as it
reaches them through the proxy in the daemon.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from edgegw.auth.authorizer import Authorizer
from edgegw.auth.cloudlist201 import request_in_16
from edgegw.auth.idtags import CardId, IdTagFormat, render
from edgegw.auth.listpush import CallFn, ListPusher
from edgegw.auth.locallist import AuthStatus, Card
from edgegw.config import AuthConfig
from edgegw.sim.charger import ConfigKey, SimCharger
from edgegw.sim.cloud import SimCloud
from edgegw.store.cards import CardStore
from edgegw.store.db import Database

F = IdTagFormat
ALICE = CardId.from_uid(bytes.fromhex("E43AC9D2"))
BOB = CardId.from_uid(bytes.fromhex("04A1B2C3D4E5F6"))
CAROL = CardId.from_uid(bytes.fromhex("11223344"))
JsonDict = dict[str, Any]


class Site:
    """A database, an authorizer, a pusher and the chargers it keeps in step."""

    def __init__(self, path: Path, cloud: SimCloud) -> None:
        self.path = path
        self.cloud = cloud
        self.chargers: list[SimCharger] = []
        self.db: Database | None = None
        self.auth: Authorizer | None = None
        self.pusher: ListPusher | None = None

    async def start(
        self,
        *,
        formats: dict[str, IdTagFormat] | None = None,
        settle: float = 0.02,
        call: CallFn | None = None,
    ) -> tuple[Authorizer, ListPusher]:
        await self.stop_gateway()
        self.db = await Database.open(self.path)
        self.auth = await Authorizer.open(self.db, AuthConfig(), formats=formats)
        self.pusher = ListPusher(
            CardStore(self.db),
            self.auth.local_list,
            self.auth.charger_format,
            call or self.cloud.call,
            settle=settle,
            call_timeout=5,
        )
        self.auth.on_change(self.pusher.list_changed)
        return self.auth, self.pusher

    async def stop_gateway(self) -> None:
        if self.pusher is not None:
            await self.pusher.close()
        if self.auth is not None:
            await self.auth.close()
        if self.db is not None:
            await self.db.close()
        self.db = self.auth = self.pusher = None

    async def plug(self, charger_id: str, **config: str) -> SimCharger:
        """Connect a sim charger (with these config key values), tell the pusher, wait."""
        charger = SimCharger(charger_id, self.cloud.url)
        for key, value in config.items():
            charger.config[key] = ConfigKey(value, readonly=True)
        self.chargers.append(charger)
        await charger.connect()
        await self.reconnected(charger)
        return charger

    async def reconnected(self, charger: SimCharger) -> None:
        assert self.pusher is not None
        await self.cloud.wait_connected(charger.charger_id)
        self.pusher.charger_connected(charger.charger_id)
        await self.pusher.wait_idle(charger.charger_id)


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    async with SimCloud() as cloud:
        site = Site(tmp_path / "edgegw.db", cloud)
        try:
            yield site
        finally:
            await site.stop_gateway()
            for charger in site.chargers:
                await charger.close()


def pushes(charger: SimCharger) -> list[JsonDict]:
    return [p for action, p in charger.received if action == "SendLocalList"]


def held(charger: SimCharger) -> dict[str, str]:
    """The charger's own list: idTag (as the charger keys it) -> status."""
    return {tag: info["status"] for tag, info in charger.local_list.items()}


def tag(card: CardId, fmt: IdTagFormat = F.HEX) -> str:
    return render(card, fmt).casefold()


async def test_full_list_in_each_chargers_format(site: Site) -> None:
    auth, pusher = await site.start(formats={"KEBA": F.HEX_REVERSED})
    await auth.add_card(Card(ALICE))
    await auth.add_card(Card(BOB, chargers=frozenset({"CP1"})))
    await auth.add_card(Card(CAROL, status=AuthStatus.BLOCKED))
    await auth.send_local_list(
        {
            "listVersion": 5,
            "updateType": "Full",
            "localAuthorizationList": [{"idTag": "AA11BB22", "idTagInfo": {"status": "Accepted"}}],
        }
    )
    cp1 = await site.plug("CP1")
    keba = await site.plug("KEBA")

    assert held(cp1) == {
        tag(ALICE): "Accepted",
        tag(BOB): "Accepted",
        "aa11bb22": "Accepted",
        tag(CAROL): "Blocked",
    }
    assert held(keba) == {
        tag(ALICE, F.HEX_REVERSED): "Accepted",
        "22bb11aa": "Accepted",
        tag(CAROL, F.HEX_REVERSED): "Blocked",
        tag(BOB, F.HEX_REVERSED): "Invalid",  # CP1's own card: refused by the KEBA's own list
    }
    assert [p["updateType"] for p in pushes(keba)] == ["Full"]
    status = pusher.status("CP1")
    assert status is not None and (status.synced, status.version, status.entries) == (True, 1, 4)
    assert site.db is not None
    state = await CardStore(site.db).list_state("CP1")
    assert state.version == 1 and state.capabilities["supported"] is True
    assert state.capabilities["max_length"] == 100


async def test_a_burst_of_changes_is_one_differential(site: Site) -> None:
    auth, pusher = await site.start(settle=0.3)
    cards = [CardId.from_uid(bytes([0x10 + i, 1, 2, 3])) for i in range(12)]
    await auth.import_csv("id\n" + "\n".join(c.canonical for c in cards) + "\n")
    charger = await site.plug("CP1")
    assert len(pushes(charger)) == 1

    for card in cards[:10]:
        await auth.block(card)
    await pusher.wait_idle("CP1")

    (diff,) = pushes(charger)[1:]
    assert diff["updateType"] == "Differential" and diff["listVersion"] == 2
    assert sorted(e["idTag"] for e in diff["localAuthorizationList"]) == sorted(
        c.canonical for c in cards[:10]
    )
    assert {e["idTagInfo"]["status"] for e in diff["localAuthorizationList"]} == {"Blocked"}
    assert sorted(held(charger).values()) == ["Accepted"] * 2 + ["Blocked"] * 10


async def test_a_long_list_goes_in_chunks(site: Site) -> None:
    auth, _ = await site.start()
    cards = [CardId.from_uid(bytes([0x10 + i, 1, 2, 3])) for i in range(8)]
    await auth.import_csv("id\n" + "\n".join(c.canonical for c in cards) + "\n")
    charger = await site.plug("CP1", SendLocalListMaxLength="3")
    sent = [
        (p["updateType"], p["listVersion"], len(p["localAuthorizationList"]))
        for p in pushes(charger)
    ]
    assert sent == [("Full", 1, 3), ("Differential", 2, 3), ("Differential", 3, 2)]
    assert set(held(charger)) == {tag(c) for c in cards}
    assert charger.local_list_version == 3


async def test_what_does_not_fit_is_left_out_and_logged(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    auth, pusher = await site.start()
    valid = [CardId.from_uid(bytes([0x20 + i, 1, 2, 3])) for i in range(3)]
    blocked = [CardId.from_uid(bytes([0x30 + i, 1, 2, 3])) for i in range(3)]
    rows = [f"{c.canonical},Accepted" for c in valid] + [f"{c.canonical},Blocked" for c in blocked]
    await auth.import_csv("id,status\n" + "\n".join(rows) + "\n")
    with caplog.at_level(logging.WARNING, logger="edgegw.auth.listpush"):
        charger = await site.plug("CP1", LocalAuthListMaxLength="4")
    assert held(charger) == {**{tag(c): "Accepted" for c in valid}, tag(blocked[0]): "Blocked"}
    assert "did not fit" not in caplog.text  # every valid card is there: nothing to warn of
    status = pusher.status("CP1")
    assert status is not None and (status.left_out, status.refused_left_out) == (0, 2)

    charger = await site.plug("CP2", LocalAuthListMaxLength="2")
    assert held(charger) == {tag(c): "Accepted" for c in valid[:2]}
    assert "so 1 of 3 valid card(s) did not fit" in caplog.text
    status = pusher.status("CP2")
    assert status is not None and (status.left_out, status.refused_left_out) == (1, 3)


async def test_refusals_cut_from_a_short_list_are_not_valid_cards_left_out(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    auth, pusher = await site.start()
    await auth.add_card(Card(ALICE))
    await auth.add_card(Card(BOB, chargers=frozenset({"CP9"})))  # Invalid on CP1's list
    await auth.add_card(Card(CAROL, status=AuthStatus.BLOCKED))
    with caplog.at_level(logging.INFO, logger="edgegw.auth.listpush"):
        charger = await site.plug("CP1", LocalAuthListMaxLength="2")
    assert held(charger) == {tag(ALICE): "Accepted", tag(CAROL): "Blocked"}
    status = pusher.status("CP1")
    assert status is not None and (status.left_out, status.refused_left_out) == (0, 1)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "1 refused card(s) did not fit" in caplog.text


async def test_cards_that_look_alike_keep_the_refusal(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    auth, _ = await site.start(formats={"DBT": F.HEX_4})
    await auth.add_card(Card(CardId.from_uid(bytes.fromhex("04A1B2C3D4E5F6"))))
    await auth.add_card(
        Card(CardId.from_uid(bytes.fromhex("04A1B2C3AABBCC")), status=AuthStatus.BLOCKED)
    )
    with caplog.at_level(logging.WARNING, logger="edgegw.auth.listpush"):
        charger = await site.plug("DBT")
    assert held(charger) == {"04a1b2c3": "Blocked"}
    assert "look like another card" in caplog.text


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        ({"SupportedFeatureProfiles": "Core,SmartCharging"}, "LocalAuthListManagement"),
        ({"LocalAuthListEnabled": "false"}, "LocalAuthListEnabled is false"),
    ],
)
async def test_chargers_without_a_list_are_skipped(
    site: Site, config: dict[str, str], reason: str
) -> None:
    auth, pusher = await site.start()
    await auth.add_card(Card(ALICE))
    charger = await site.plug("CP1", **config)
    assert pushes(charger) == []
    status = pusher.status("CP1")
    assert status is not None and status.capabilities is not None
    assert not status.capabilities.supported and reason in status.capabilities.reason
    await auth.add_card(Card(BOB))  # later changes do not wake it either
    await pusher.wait_idle("CP1")
    assert pushes(charger) == []
    assert site.db is not None
    stored = await CardStore(site.db).list_state("CP1")
    assert stored.capabilities["supported"] is False


async def test_version_mismatch_is_followed_by_a_full_list(site: Site) -> None:
    auth, pusher = await site.start()
    await auth.add_card(Card(ALICE))
    charger = await site.plug("CP1")
    charger.local_list_version = 50  # someone else wrote to its list meanwhile
    await auth.add_card(Card(BOB))
    await pusher.wait_idle("CP1")
    assert [p["updateType"] for p in pushes(charger)] == ["Full", "Differential", "Full"]
    assert set(held(charger)) == {tag(ALICE), tag(BOB)}


async def test_reconnect_sends_only_what_changed(site: Site) -> None:
    auth, pusher = await site.start()
    await auth.add_card(Card(ALICE))
    await auth.add_card(Card(CAROL))
    charger = await site.plug("CP1")
    await charger.close()
    await site.cloud.wait_disconnected("CP1")
    pusher.charger_disconnected("CP1")
    await auth.add_card(Card(BOB))
    await auth.block(ALICE)

    await charger.connect()
    await site.reconnected(charger)
    after = pushes(charger)[1:]
    assert [(p["updateType"], len(p["localAuthorizationList"])) for p in after] == [
        ("Differential", 2)
    ]
    assert held(charger) == {tag(ALICE): "Blocked", tag(BOB): "Accepted", tag(CAROL): "Accepted"}


async def test_after_a_restart_a_charger_in_step_gets_nothing(site: Site) -> None:
    auth, _ = await site.start()
    await auth.add_card(Card(ALICE))
    charger = await site.plug("CP1")
    assert len(pushes(charger)) == 1

    auth, pusher = await site.start()  # the gateway restarts, the charger kept its list
    await site.reconnected(charger)
    assert len(pushes(charger)) == 1
    await auth.add_card(Card(BOB))  # and later changes are differentials again
    await pusher.wait_idle("CP1")
    assert [p["updateType"] for p in pushes(charger)] == ["Full", "Differential"]


async def test_detected_format_rewrites_the_list(site: Site) -> None:
    auth, pusher = await site.start(formats={"CP2": F.AUTO})
    await auth.add_card(Card(ALICE))
    charger = await site.plug("CP2")
    assert held(charger) == {tag(ALICE): "Accepted"}  # canonical until known
    decision = auth.decide("CP2", render(ALICE, F.HEX_REVERSED), fmt=F.AUTO)
    assert decision.accepted
    await pusher.wait_idle("CP2")
    assert held(charger) == {tag(ALICE, F.HEX_REVERSED): "Accepted"}


async def test_a_slow_charger_holds_up_nobody(site: Site) -> None:
    gate = asyncio.Event()

    async def call(charger_id: str, action: str, payload: JsonDict) -> JsonDict:
        if charger_id == "SLOW":
            await gate.wait()  # its answers take as long as the test wants
        return await site.cloud.call(charger_id, action, payload)

    auth, pusher = await site.start(call=call)
    await auth.add_card(Card(ALICE))
    slow = SimCharger("SLOW", site.cloud.url)
    site.chargers.append(slow)
    await slow.connect()
    await site.cloud.wait_connected("SLOW")
    pusher.charger_connected("SLOW")
    fast = await site.plug("FAST")
    assert held(fast) == {tag(ALICE): "Accepted"}
    assert slow.received == []
    gate.set()
    await pusher.wait_idle("SLOW")
    assert held(slow) == {tag(ALICE): "Accepted"}


async def test_a_2x_token_of_the_clouds_list_stays_off_a_16_chargers_list(site: Site) -> None:
    """A KeyCode on the cloud's 2.0.1 list is no idTag a 1.6 charger could hold: written there
    it would read as the card with that UID (hex-shaped text), so it is left out."""
    auth, _ = await site.start(formats={"KEBA": F.HEX_REVERSED})
    request, _ = request_in_16(
        {
            "versionNumber": 2,
            "updateType": "Full",
            "localAuthorizationList": [
                {"idToken": {"idToken": t, "type": k}, "idTokenInfo": {"status": "Accepted"}}
                for t, k in (("12345678", "KeyCode"), ("AA11BB22", "ISO14443"))
            ],
        }
    )
    await auth.send_local_list(request)
    cp1 = await site.plug("CP1")
    keba = await site.plug("KEBA")
    assert held(cp1) == {"aa11bb22": "Accepted"}
    assert held(keba) == {"22bb11aa": "Accepted"}


def push_workers() -> list[str]:
    return sorted(t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith("listpush/"))


async def test_an_idle_charger_has_no_worker_and_still_gets_updates(site: Site) -> None:
    auth, pusher = await site.start()
    await auth.add_card(Card(ALICE))
    cp1 = await site.plug("CP1")
    cp2 = await site.plug("CP2")
    assert held(cp1) == held(cp2) == {tag(ALICE): "Accepted"}
    assert push_workers() == []  # in step: nothing waits per connected charger

    await auth.add_card(Card(BOB))
    assert push_workers() == ["listpush/CP1", "listpush/CP2"]
    await pusher.wait_idle("CP1")
    await pusher.wait_idle("CP2")

    for charger in (cp1, cp2):
        (diff,) = pushes(charger)[1:]
        assert diff["updateType"] == "Differential" and diff["listVersion"] == 2
        assert held(charger) == {tag(ALICE): "Accepted", tag(BOB): "Accepted"}
    status = pusher.status("CP1")
    assert status is not None and status.synced and status.version == 2
    assert push_workers() == []

    await auth.block(ALICE)  # and again, by a worker started anew
    await pusher.wait_idle("CP1")
    assert held(cp1) == {tag(ALICE): "Blocked", tag(BOB): "Accepted"}
    assert push_workers() in ([], ["listpush/CP2"])
