"""The card authority: decision order, refusals that beat everything, formats, persistence."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from edgegw.auth.access import CardGroup, Share
from edgegw.auth.authorizer import Authorizer, Decision, Layer
from edgegw.auth.cache import REWRITE_AFTER
from edgegw.auth.cloudlist201 import request_in_16
from edgegw.auth.idtags import CardId, IdTagFormat, render
from edgegw.auth.locallist import (
    AuthStatus,
    Card,
    CsvImportError,
    DuplicateCardError,
    ListSource,
    UnknownCardError,
)
from edgegw.config import AuthConfig
from edgegw.store.db import Database

F = IdTagFormat
NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z
ALICE = CardId.from_uid(bytes.fromhex("E43AC9D2"))
BOB = CardId.from_uid(bytes.fromhex("04A1B2C3D4E5F6"))
CAROL = CardId.from_uid(bytes.fromhex("11223344"))


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


Opener = Callable[..., Awaitable[Authorizer]]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def open_auth(tmp_path: Path, clock: Clock) -> AsyncIterator[Opener]:
    """Open an Authorizer on one database file; ``reopen`` semantics: call again after close."""
    opened: list[tuple[Authorizer, Database]] = []

    async def open_(formats: dict[str, IdTagFormat] | None = None, **config: Any) -> Authorizer:
        for auth, db in opened:  # the previous run ends before the next starts
            await auth.close()
            await db.close()
        opened.clear()
        db = await Database.open(tmp_path / "edgegw.db")
        auth = await Authorizer.open(db, AuthConfig(**config), formats=formats, clock=clock)
        opened.append((auth, db))
        return auth

    yield open_
    for auth, db in opened:
        await auth.close()
        await db.close()


def full_list(version: int, *entries: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "listVersion": version,
        "updateType": "Full",
        "localAuthorizationList": [{"idTag": t, "idTagInfo": i} for t, i in entries],
    }


# --------------------------------------------------------------------------------------------
# Decision order


async def test_free_tag_is_accepted_first(open_auth: Opener) -> None:
    auth = await open_auth()
    await auth.add_card(Card(CardId.from_token("FREEVEND"), status=AuthStatus.BLOCKED))
    decision = auth.decide("CP1", "freevend", fmt=F.AUTO, free_tag="FREEVEND")
    assert (decision.status, decision.layer) == (AuthStatus.ACCEPTED, Layer.FREE_TAG)
    # without the charger's free tag it is just a blocked card
    assert auth.decide("CP1", "FREEVEND", fmt=F.AUTO).status is AuthStatus.BLOCKED


async def test_installer_card_accepted_with_details(open_auth: Opener) -> None:
    auth = await open_auth()
    expiry = datetime(2030, 1, 1, tzinfo=UTC)
    await auth.add_card(Card(ALICE, owner="Alice", expiry=expiry, parent_id="FLEET"))
    decision = auth.decide("CP1", "E43AC9D2", fmt=F.HEX)
    assert decision.id_tag_info == {
        "status": "Accepted",
        "expiryDate": "2030-01-01T00:00:00Z",
        "parentIdTag": "FLEET",
    }
    assert (decision.layer, decision.card, decision.fmt) == (Layer.INSTALLER, ALICE, F.HEX)
    assert "Alice" in decision.reason


async def test_blocked_expired_and_invalid_cards_are_refused_whatever_the_policy(
    open_auth: Opener, clock: Clock
) -> None:
    auth = await open_auth(unknown_cards="accept")
    await auth.add_card(Card(ALICE, status=AuthStatus.BLOCKED))
    await auth.add_card(Card(BOB, expiry=datetime.fromtimestamp(NOW + 60, UTC)))
    await auth.add_card(Card(CAROL, status=AuthStatus.INVALID))
    assert auth.decide("CP1", ALICE.canonical, fmt=F.AUTO).status is AuthStatus.BLOCKED
    assert auth.decide("CP1", CAROL.canonical, fmt=F.AUTO).status is AuthStatus.INVALID
    assert auth.decide("CP1", BOB.canonical, fmt=F.AUTO).status is AuthStatus.ACCEPTED
    clock.now = NOW + 60
    expired = auth.decide("CP1", BOB.canonical, fmt=F.AUTO)
    assert (expired.status, expired.layer) == (AuthStatus.EXPIRED, Layer.INSTALLER)
    assert "expired at" in expired.reason
    assert auth.decide("CP1", "DEADBEEF", fmt=F.AUTO).status is AuthStatus.ACCEPTED  # policy


async def test_private_card_works_only_on_its_own_charger(open_auth: Opener) -> None:
    auth = await open_auth(unknown_cards="accept")
    await auth.add_card(Card(ALICE, owner="Alice", chargers=frozenset({"CP12"})))
    assert auth.decide("CP12", "E43AC9D2", fmt=F.AUTO).accepted
    refused = auth.decide("CP1", "E43AC9D2", fmt=F.AUTO)
    assert (refused.status, refused.layer) == (AuthStatus.INVALID, Layer.INSTALLER)
    assert "works only on CP12, not on CP1" in refused.reason


async def test_cloud_list_then_cache_then_policy(open_auth: Opener, clock: Clock) -> None:
    auth = await open_auth(unknown_cards="reject", cache_days=10)
    answer = await auth.send_local_list(
        full_list(
            3,
            ("AA11BB22", {"status": "Accepted", "parentIdTag": "P"}),
            ("CC33DD44", {"status": "Blocked"}),
            ("Mobile1", {"status": "Accepted", "expiryDate": iso(NOW + 60)}),
        )
    )
    assert answer == {"status": "Accepted"} and auth.local_list_version() == 3
    listed = auth.decide("CP1", "aa11bb22", fmt=F.AUTO)
    assert (listed.layer, listed.id_tag_info) == (
        Layer.CLOUD_LIST,
        {"status": "Accepted", "parentIdTag": "P"},
    )
    assert auth.decide("CP1", "CC33DD44", fmt=F.AUTO).status is AuthStatus.BLOCKED

    assert await auth.learn("55667788", {"status": "Accepted"})
    cached = auth.decide("CP1", "55667788", fmt=F.AUTO)
    assert (cached.status, cached.layer) == (AuthStatus.ACCEPTED, Layer.CACHE)
    unknown = auth.decide("CP1", "99AABBCC", fmt=F.AUTO)
    assert (unknown.status, unknown.layer) == (AuthStatus.INVALID, Layer.POLICY)

    clock.now = NOW + 60
    assert auth.decide("CP1", "MOBILE1", fmt=F.AUTO).status is AuthStatus.EXPIRED
    clock.now = NOW + 10 * 86_400  # the cached answer is too old to trust now
    assert auth.decide("CP1", "55667788", fmt=F.AUTO).layer is Layer.POLICY


async def test_lists_beat_the_cache_and_list_tags_are_never_cached(open_auth: Opener) -> None:
    auth = await open_auth(unknown_cards="accept")
    # learned while nobody listed them
    assert await auth.learn(ALICE.canonical, {"status": "Accepted"})
    assert await auth.learn("AA11BB22", {"status": "Blocked"})
    await auth.add_card(Card(ALICE, status=AuthStatus.BLOCKED))
    await auth.send_local_list(full_list(1, ("AA11BB22", {"status": "Accepted"})))
    blocked = auth.decide("CP1", ALICE.canonical, fmt=F.AUTO)
    assert (blocked.status, blocked.layer) == (AuthStatus.BLOCKED, Layer.INSTALLER)
    listed = auth.decide("CP1", "AA11BB22", fmt=F.AUTO)
    assert (listed.status, listed.layer) == (AuthStatus.ACCEPTED, Layer.CLOUD_LIST)
    # the cloud's answers for listed tags are not cached, and drop what was cached
    assert not await auth.learn(ALICE.canonical, {"status": "Accepted"})
    assert auth.cached(ALICE.canonical) is None
    assert not await auth.learn(render(ALICE, F.HEX_REVERSED), {"status": "Accepted"})


async def test_an_answer_the_cloud_repeats_is_not_written_again_for_a_while(
    open_auth: Opener, clock: Clock
) -> None:
    """Memory always has the cloud's latest answer; the disk gets a repeat only once per
    REWRITE_AFTER (an SD card's writes), and every change at once."""
    auth = await open_auth(unknown_cards="reject", cache_days=10)
    first = auth.learn_now("55667788", {"status": "Accepted"})[1]
    assert first is not None
    await first
    clock.now = NOW + 60
    cached, write = auth.learn_now("55667788", {"status": "Accepted"})
    assert cached and write is None  # nothing to write
    entry = auth.cached("55667788")
    assert entry is not None and entry.learned_at == NOW + 60  # memory refreshed
    clock.now = NOW + 120
    assert await auth.learn("AA11BB22", {"status": "Accepted"})
    await auth.learn("AA11BB22", {"status": "Blocked"})  # a change: written
    clock.now = NOW + 120 + REWRITE_AFTER
    await auth.learn("AA11BB22", {"status": "Blocked"})  # unchanged, but long ago: written

    auth = await open_auth(unknown_cards="reject", cache_days=10)  # what the disk kept
    repeated, changed = auth.cached("55667788"), auth.cached("AA11BB22")
    assert repeated is not None and repeated.learned_at == NOW
    assert changed is not None and changed.info.status is AuthStatus.BLOCKED
    assert changed.learned_at == NOW + 120 + REWRITE_AFTER


async def test_cached_refusal_and_cloud_expiry(open_auth: Opener, clock: Clock) -> None:
    auth = await open_auth(unknown_cards="accept")
    await auth.learn("AA11BB22", {"status": "Blocked"})
    await auth.learn("CC33DD44", {"status": "Accepted", "expiryDate": iso(NOW + 30)})
    await auth.learn("55667788", {"status": "ConcurrentTx"})
    assert auth.decide("CP1", "AA11BB22", fmt=F.AUTO).status is AuthStatus.BLOCKED
    assert auth.decide("CP1", "55667788", fmt=F.AUTO).status is AuthStatus.ACCEPTED
    clock.now = NOW + 30
    expired = auth.decide("CP1", "CC33DD44", fmt=F.AUTO)
    assert (expired.status, expired.layer) == (AuthStatus.EXPIRED, Layer.CACHE)


async def test_unknown_policy_accept_and_random_uids(open_auth: Opener) -> None:
    auth = await open_auth(unknown_cards="accept")
    accepted = auth.decide("CP1", "Mobile000001", fmt=F.AUTO)
    assert (accepted.status, accepted.layer) == (AuthStatus.ACCEPTED, Layer.POLICY)
    random_uid = auth.decide("CP1", "08A1B2C3", fmt=F.AUTO)
    assert (random_uid.status, random_uid.layer) == (AuthStatus.INVALID, Layer.IDTAG)
    assert "random UID" in random_uid.reason


async def test_cards_two_readings_apart_are_refused(open_auth: Opener) -> None:
    auth = await open_auth(unknown_cards="accept")
    # two 7-byte cards with the same first 4 bytes: a 4-byte charger cannot tell them apart
    await auth.add_card(Card(CardId.from_uid(bytes.fromhex("04A1B2C3D4E5F6"))))
    await auth.add_card(Card(CardId.from_uid(bytes.fromhex("04A1B2C3AABBCC"))))
    decision = auth.decide("CP1", "04A1B2C3", fmt=F.HEX_4)
    assert decision.status is AuthStatus.INVALID and "cannot be told apart" in decision.reason


# --------------------------------------------------------------------------------------------
# Formats


async def test_formats_are_matched_and_auto_detection_persists(open_auth: Opener) -> None:
    auth = await open_auth(formats={"KEBA": F.HEX_REVERSED, "CP2": F.AUTO})
    await auth.add_card(Card(ALICE))
    reversed_tag = render(ALICE, F.HEX_REVERSED)
    keba = auth.decide("KEBA", reversed_tag, fmt=auth.charger_format("KEBA"))
    assert (keba.accepted, keba.card, keba.fmt) == (True, ALICE, F.HEX_REVERSED)
    assert auth.decide("CP1", render(ALICE, F.DEC_LE), fmt=F.DEC_LE).accepted

    assert auth.charger_format("CP2") is F.AUTO
    decision = auth.decide("CP2", reversed_tag, fmt=F.AUTO)
    assert (decision.accepted, decision.fmt) == (True, F.HEX_REVERSED)
    assert auth.charger_format("CP2") is F.HEX_REVERSED
    assert auth.charger_format("KEBA") is F.HEX_REVERSED  # configured, never detected
    assert auth.detected_format("KEBA") is None

    auth = await open_auth(formats={"CP2": F.AUTO})  # a restart
    detected = auth.detected_format("CP2")
    assert detected is not None and (detected.fmt, detected.seen_at) == (F.HEX_REVERSED, NOW)
    assert auth.charger_format("CP2") is F.HEX_REVERSED


async def test_a_detection_is_never_a_lock_out(open_auth: Opener) -> None:
    auth = await open_auth(formats={"CP2": F.AUTO})
    await auth.add_card(Card(ALICE))
    await auth.add_card(Card(BOB))

    def tap(presented: str) -> Decision:
        return auth.decide("CP2", presented, fmt=auth.charger_format("CP2"))

    assert tap(render(ALICE, F.HEX_REVERSED)).accepted
    assert auth.charger_format("CP2") is F.HEX_REVERSED
    # a remote start's idTag echoed in canonical hex: accepted, and no evidence of a new format
    assert tap(ALICE.canonical).accepted
    assert auth.charger_format("CP2") is F.HEX_REVERSED
    # new firmware writes decimal: cards work at once, the detection follows after three taps
    for expected in (F.HEX_REVERSED, F.HEX_REVERSED, F.DEC_LE):
        decision = tap(render(BOB, F.DEC_LE))
        assert (decision.accepted, decision.fmt) == (True, F.DEC_LE)
        assert auth.charger_format("CP2") is expected


async def test_detection_ignores_truncated_matches(open_auth: Opener) -> None:
    auth = await open_auth()
    await auth.add_card(Card(BOB))
    decision = auth.decide("CP3", "04A1B2C3", fmt=F.AUTO)  # first 4 of 7 bytes
    assert decision.accepted and decision.fmt is F.HEX_4
    assert auth.detected_format("CP3") is None


# --------------------------------------------------------------------------------------------
# Installer card management


async def test_card_management(open_auth: Opener, clock: Clock) -> None:
    auth = await open_auth()
    changes: list[int] = []
    auth.on_change(lambda: changes.append(1))
    added = await auth.add_card(Card(ALICE, owner="Alice"))
    assert added.created_at == NOW
    with pytest.raises(DuplicateCardError):
        await auth.add_card(Card(ALICE))
    clock.now = NOW + 5
    assert (await auth.block("e4:3a:c9:d2")).status is AuthStatus.BLOCKED
    card = auth.card(ALICE)
    assert card is not None and card.status is AuthStatus.BLOCKED
    assert (card.created_at, card.updated_at) == (NOW, NOW + 5)
    assert (await auth.unblock(ALICE)).status is AuthStatus.ACCEPTED
    await auth.update_card(Card(ALICE, owner="Alice B.", label="Bay 3"))
    assert [c.owner for c in auth.cards()] == ["Alice B."]
    await auth.remove("E43AC9D2")
    assert auth.cards() == []
    with pytest.raises(UnknownCardError):
        await auth.remove(ALICE)
    with pytest.raises(UnknownCardError):
        await auth.update_card(Card(BOB))
    assert len(changes) == 5  # add, block, unblock, update, remove


async def test_csv_import_is_all_or_nothing(open_auth: Opener) -> None:
    auth = await open_auth()
    await auth.add_card(Card(ALICE, owner="Alice"))
    bad = "id,owner\nAABBCCDD,Fine\n08AABBCC,Random\nE43AC9D,Odd\n"
    with pytest.raises(CsvImportError) as caught:
        await auth.import_csv(bad)
    assert [line for line, _ in caught.value.errors] == [3, 4]
    assert [c.id for c in auth.cards()] == [ALICE]  # nothing half-imported

    result = await auth.import_csv("id,owner,status\nE43AC9D2,Alice,Blocked\nAABBCCDD,Dan,\n")
    assert (result.added, result.updated, result.unchanged, result.removed) == (1, 1, 0, 0)
    text = auth.export_csv()
    result = await auth.import_csv("id,owner\nAABBCCDD,Dan\n", replace=True)
    assert (result.added, result.updated, result.unchanged, result.removed) == (0, 0, 1, 1)
    assert [c.owner for c in auth.cards()] == ["Dan"]
    await auth.import_csv(text, replace=True)
    assert {(c.id.canonical, c.owner, c.status.value) for c in auth.cards()} == {
        ("E43AC9D2", "Alice", "Blocked"),
        ("AABBCCDD", "Dan", "Accepted"),
    }


async def test_everything_survives_a_restart(open_auth: Opener) -> None:
    auth = await open_auth()
    await auth.add_card(Card(ALICE, owner="Alice", chargers=frozenset({"CP1"})))
    await auth.send_local_list(full_list(9, ("AA11BB22", {"status": "Blocked"})))
    await auth.learn("CC33DD44", {"status": "Accepted"})

    auth = await open_auth()
    assert auth.decide("CP1", ALICE.canonical, fmt=F.AUTO).accepted
    assert not auth.decide("CP2", ALICE.canonical, fmt=F.AUTO).accepted
    assert auth.local_list_version() == 9
    assert auth.decide("CP1", "AA11BB22", fmt=F.AUTO).status is AuthStatus.BLOCKED
    assert auth.decide("CP1", "CC33DD44", fmt=F.AUTO).layer is Layer.CACHE


# --------------------------------------------------------------------------------------------
# The cloud's list calls and what chargers' lists should hold


async def test_send_local_list_answers(open_auth: Opener, caplog: pytest.LogCaptureFixture) -> None:
    auth = await open_auth()
    changes: list[int] = []
    auth.on_change(lambda: changes.append(1))
    with caplog.at_level(logging.WARNING):
        answer = await auth.send_local_list(
            full_list(2, ("08AABBCC", {"status": "Accepted"}), ("AA11BB22", {"status": "Accepted"}))
        )
    assert answer == {"status": "Accepted"}
    assert "08AABBCC" in caplog.text and "random UID" in caplog.text
    stale = {
        "listVersion": 2,
        "updateType": "Differential",
        "localAuthorizationList": [{"idTag": "CC33DD44", "idTagInfo": {"status": "Accepted"}}],
    }
    assert await auth.send_local_list(stale) == {"status": "VersionMismatch"}
    assert await auth.send_local_list({"listVersion": 3}) == {"status": "Failed"}
    assert await auth.send_local_list(full_list(2, ("AA11BB22", {"status": "Accepted"}))) == {
        "status": "Accepted"
    }
    assert len(changes) == 1  # the repeat changed nothing
    assert [e.id_tag for e in auth.cloud_list()] == ["AA11BB22"]


async def test_local_list_order_and_scope(open_auth: Opener) -> None:
    auth = await open_auth()
    await auth.send_local_list(
        full_list(
            1,
            ("AA11BB22", {"status": "Accepted"}),
            ("CC33DD44", {"status": "Blocked"}),
            (ALICE.canonical, {"status": "Blocked"}),  # the installer's card wins
        )
    )
    await auth.add_card(Card(ALICE))
    await auth.add_card(Card(BOB, chargers=frozenset({"CP12"})))
    await auth.add_card(Card(CAROL, status=AuthStatus.BLOCKED))
    entries = [(e.card.canonical, e.info.status.value, e.source) for e in auth.local_list("CP12")]
    assert entries == [
        (BOB.canonical, "Accepted", ListSource.INSTALLER),  # the bay's own card first
        (ALICE.canonical, "Accepted", ListSource.INSTALLER),
        ("AA11BB22", "Accepted", ListSource.CLOUD),
        (CAROL.canonical, "Blocked", ListSource.INSTALLER),
        ("CC33DD44", "Blocked", ListSource.CLOUD),
    ]
    elsewhere = [(e.card.canonical, e.info.status.value) for e in auth.local_list("CP1")]
    assert elsewhere[-1] == (BOB.canonical, "Invalid")  # the bay's card, refused elsewhere
    assert elsewhere.count((BOB.canonical, "Invalid")) == 1


# ------------------------------------------------------------------ groups and shares


async def test_groups_and_shares_decide_fill_local_lists_and_survive_a_restart(
    open_auth: Opener, clock: Clock
) -> None:
    auth = await open_auth()
    await auth.add_card(Card(ALICE, owner="Alice"))
    await auth.add_card(Card(BOB, owner="Bob", chargers=frozenset({"CP9"})))
    await auth.change_access(
        lambda a: (
            a.with_charger_group("garage", frozenset({"CP1", "CP2"}))
            .with_card_group(CardGroup("residents", frozenset({ALICE.key}), frozenset({"@garage"})))
            .with_share(Share(1, frozenset({"@garage"}), NOW + 3600, card=BOB.key))
        )
    )
    assert auth.decide("CP1", "E43AC9D2", fmt=IdTagFormat.HEX).accepted
    refused = auth.decide("CP9", "E43AC9D2", fmt=IdTagFormat.HEX)
    assert refused.status is AuthStatus.INVALID and "residents" in refused.reason
    shared = auth.decide("CP2", "04A1B2C3D4E5F6", fmt=IdTagFormat.HEX)
    assert shared.accepted and shared.id_tag_info["expiryDate"] == iso(NOW + 3600)

    def listed(charger_id: str) -> dict[str, Any]:
        return {e.card.canonical: e.info for e in auth.local_list(charger_id)}

    assert set(listed("CP1")) == {"E43AC9D2", "04A1B2C3D4E5F6"}
    assert listed("CP1")["04A1B2C3D4E5F6"].expiry == datetime.fromtimestamp(NOW + 3600, UTC)
    assert listed("CP1")["04A1B2C3D4E5F6"].status is AuthStatus.ACCEPTED
    # Where a card may not charge, the charger's own list refuses it.
    assert listed("CP9")["04A1B2C3D4E5F6"].status is AuthStatus.ACCEPTED
    assert listed("CP9")["E43AC9D2"].status is AuthStatus.INVALID
    assert {k: v.status for k, v in listed("CP5").items()} == {
        "E43AC9D2": AuthStatus.INVALID,
        "04A1B2C3D4E5F6": AuthStatus.INVALID,
    }

    clock.now = NOW + 3600  # the share has ended
    ended = auth.decide("CP2", "04A1B2C3D4E5F6", fmt=IdTagFormat.HEX)
    assert ended.status is AuthStatus.EXPIRED and "ended" in ended.reason
    assert auth.site_refusal("CP2", "04A1B2C3D4E5F6") is not None

    auth = await open_auth()  # everything was written
    assert auth.access.charger_groups == {"garage": frozenset({"CP1", "CP2"})}
    assert not auth.decide("CP9", "E43AC9D2", fmt=IdTagFormat.HEX).accepted
    await auth.remove(ALICE)
    assert ALICE.key not in auth.access.card_groups["residents"].members


async def test_a_list_says_what_the_gateway_answers_where_a_share_ended(
    open_auth: Opener, clock: Clock
) -> None:
    auth = await open_auth()
    await auth.add_card(Card(BOB, owner="Bob", chargers=frozenset({"CP9"})))
    await auth.change_access(
        lambda a: a.with_share(Share(1, frozenset({"CP2"}), NOW + 3600, card=BOB.key))
    )
    clock.now = NOW + 3600  # the share has ended
    auth = await open_auth()  # the list as built after its end

    def listed(charger_id: str) -> AuthStatus:
        (status,) = [e.info.status for e in auth.local_list(charger_id) if e.card == BOB]
        return status

    answered = auth.decide("CP2", BOB.canonical, fmt=IdTagFormat.HEX).status
    assert answered is AuthStatus.EXPIRED
    assert listed("CP2") is answered  # was Invalid
    assert listed("CP5") is AuthStatus.INVALID  # no share there: Invalid, as answered
    assert auth.decide("CP5", BOB.canonical, fmt=IdTagFormat.HEX).status is AuthStatus.INVALID
    assert listed("CP9") is AuthStatus.ACCEPTED


async def test_a_card_removed_by_a_replacing_import_leaves_its_groups_and_shares(
    open_auth: Opener,
) -> None:
    auth = await open_auth()
    await auth.add_card(Card(ALICE, owner="Alice"))
    await auth.add_card(Card(BOB, owner="Bob"))
    alice = auth.card(ALICE)
    assert alice is not None
    await auth.change_access(
        lambda a: a.with_card_group(CardGroup("residents", frozenset({alice.key}), None))
    )
    await auth.import_csv(f"id,owner\n{BOB.canonical},Bob\n", replace=True)
    assert auth.card(ALICE) is None
    assert auth.access.card_groups["residents"].members == frozenset()

    auth = await open_auth()  # and so it stays after a restart
    assert auth.access.card_groups["residents"].members == frozenset()


# ------------------------------------------------------------------ 2.x tokens of the cloud's list


def list_201(version: int, *entries: tuple[str, str, str]) -> dict[str, Any]:
    """A 2.0.1 Full SendLocalList of (token, type, status), read into the mirror's form."""
    request, left_out = request_in_16(
        {
            "versionNumber": version,
            "updateType": "Full",
            "localAuthorizationList": [
                {"idToken": {"idToken": t, "type": k}, "idTokenInfo": {"status": s}}
                for t, k, s in entries
            ],
        }
    )
    assert not left_out
    return request


async def test_a_listed_keycode_is_never_a_card_uid(open_auth: Opener) -> None:
    """A hex-shaped KeyCode on the cloud's 2.0.1 list matches only a KeyCode-like token
    presented as such, never a reader's idTag (the card with UID 12345678, in any format),
    not even through the cloud's cached answer about the code; it survives a restart so."""
    auth = await open_auth({"HEX": F.HEX, "REV": F.HEX_REVERSED})
    answer = await auth.send_local_list(
        list_201(3, ("12345678", "KeyCode", "Accepted"), ("E43AC9D2", "ISO14443", "Accepted"))
    )
    assert answer == {"status": "Accepted"}
    await auth.learn("12345678", {"status": "Accepted"})  # the cloud's Authorize of the code
    for _ in range(2):
        assert auth.decide("REV", "12345678", fmt=F.HEX_REVERSED, literal=True).accepted
        assert not auth.decide("HEX", "12345678", fmt=F.HEX).accepted  # card UID 12345678
        assert not auth.decide("REV", "78563412", fmt=F.HEX_REVERSED).accepted  # the same
        assert not auth.decide("AUTO", "305419896", fmt=F.AUTO).accepted  # decimal of it
        assert auth.decide("REV", "D2C93AE4", fmt=F.HEX_REVERSED).accepted  # the listed card
        kinds = {e.card.canonical: type(e.card).__name__ for e in auth.local_list("REV")}
        assert kinds == {"12345678": "LiteralToken", "E43AC9D2": "CardId"}
        auth = await open_auth({"HEX": F.HEX, "REV": F.HEX_REVERSED})  # and after a restart
