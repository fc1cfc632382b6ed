"""Card persistence: installer cards, cloud list mirror, per-charger format and list state."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from edgegw.auth.idtags import CardId, IdTagFormat
from edgegw.auth.locallist import AuthStatus, Card, CloudList
from edgegw.store.cards import CardStore
from edgegw.store.db import Database

NOW = 1_700_000_000.0


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "edgegw.db"


@asynccontextmanager
async def opened(path: Path, **kwargs: Any) -> AsyncIterator[CardStore]:
    """The database at ``path`` opened for one block, as one run of the daemon would."""
    db = await Database.open(path)
    try:
        yield CardStore(db, **kwargs)
    finally:
        await db.close()


def uid(text: str) -> CardId:
    return CardId.from_uid(bytes.fromhex(text))


async def test_cards_round_trip_every_field(path: Path) -> None:
    full = Card(
        uid("04A1B2C3D4E5F6"),
        owner="Alice",
        label="Bay 12",
        status=AuthStatus.BLOCKED,
        expiry=datetime(2027, 1, 1, tzinfo=UTC),
        chargers=frozenset({"CP12", "CP13"}),
        parent_id="FLEET1",
        created_at=NOW,
        updated_at=NOW + 5,
    )
    token = Card(CardId.from_token("Mobile000001"), created_at=NOW, updated_at=NOW)
    async with opened(path) as store:
        await store.save_cards([full, token])
    async with opened(path) as store:
        loaded = {c.key: c for c in await store.load_cards()}
    assert loaded == {full.key: full, token.key: token}
    assert loaded[full.key].updated_at == NOW + 5
    assert loaded[token.key].id.is_token and loaded[token.key].id.canonical == "Mobile000001"


async def test_bulk_save_replace_and_delete(path: Path) -> None:
    cards = [Card(CardId.from_uid(i.to_bytes(4, "big")), owner=f"o{i}") for i in range(1, 20001)]
    async with opened(path) as store:
        await store.save_cards(cards)
        assert len(await store.load_cards()) == 20000
        await store.save_cards(cards[:3], replace=True)
        assert {c.key for c in await store.load_cards()} == {c.key for c in cards[:3]}
        assert await store.delete_card(cards[0].id)
        assert not await store.delete_card(cards[0].id)
    async with opened(path) as store:
        assert [c.owner for c in await store.load_cards()] == ["o2", "o3"]


async def test_cloud_list_full_and_differential_persist(path: Path) -> None:
    mirror = CloudList()

    async def apply(payload: dict[str, Any]) -> None:
        update = mirror.plan(payload)
        assert update.status == "Accepted"
        async with opened(path) as store:
            await store.apply_cloud_update(update)
        mirror.commit(update)

    info = {"status": "Accepted", "expiryDate": "2027-01-01T00:00:00Z", "parentIdTag": "P"}
    await apply(
        {
            "listVersion": 7,
            "updateType": "Full",
            "localAuthorizationList": [
                {"idTag": "AA11BB22", "idTagInfo": info},
                {"idTag": "Mobile1", "idTagInfo": {"status": "Accepted"}},
                {"idTag": "CC33DD44", "idTagInfo": {"status": "Accepted"}},
            ],
        }
    )
    await apply(
        {
            "listVersion": 8,
            "updateType": "Differential",
            "localAuthorizationList": [
                {"idTag": "MOBILE1", "idTagInfo": {"status": "Blocked"}},  # new spelling
                {"idTag": "CC33DD44"},
            ],
        }
    )
    async with opened(path) as store:
        version, entries = await store.load_cloud_list()
    assert version == 8
    assert sorted((e.id_tag, e.info.to_ocpp()["status"]) for e in entries) == [
        ("AA11BB22", "Accepted"),
        ("MOBILE1", "Blocked"),
    ]
    (first,) = [e for e in entries if e.id_tag == "AA11BB22"]
    assert first.info.to_ocpp() == info
    assert sorted(e.key for e in entries) == sorted(e.key for e in mirror)


async def test_charger_format_and_list_state(path: Path) -> None:
    async with opened(path, clock=lambda: NOW) as store:
        await store.db.conn.execute(
            "INSERT INTO chargers (id, first_seen, last_seen, capabilities) VALUES (?, ?, ?, ?)",
            ("CP1", NOW, NOW, json.dumps({"smart_charging": {"max_profiles": 16}})),
        )
        assert (await store.list_state("CP1")).version is None
        await store.set_detected_format("CP1", IdTagFormat.HEX_REVERSED, NOW + 1)
        await store.set_detected_format("CP9", IdTagFormat.DEC_LE, NOW + 2)  # no row yet
        await store.set_list_capabilities("CP1", {"supported": True, "max_length": 100})
        await store.set_list_version("CP1", 4, {"digest": "abc"})
    async with opened(path) as store:
        formats = await store.detected_formats()
        state = await store.list_state("CP1")
        (raw,) = await store.db.conn.execute_fetchall(
            "SELECT capabilities FROM chargers WHERE id = 'CP1'"
        )
    assert {k: (v.fmt, v.seen_at) for k, v in formats.items()} == {
        "CP1": (IdTagFormat.HEX_REVERSED, NOW + 1),
        "CP9": (IdTagFormat.DEC_LE, NOW + 2),
    }
    assert state.version == 4
    assert state.capabilities == {"supported": True, "max_length": 100}
    assert state.pushed == {"digest": "abc"}
    # other parts' capability members are left alone
    assert json.loads(raw[0])["smart_charging"] == {"max_profiles": 16}
