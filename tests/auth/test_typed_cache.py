"""The card cache keeps a card UID's answer and a 2.x token's answer apart: the cloud answered
about an RFID card, or about a KeyCode/eMAID/Central token, never about both. A 2.0.1 station's
cloud accepts RFID 12345678 online; offline a KeyCode "12345678" is not accepted from that
answer, nor the RFID from the KeyCode's (issue 23)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edgegw.auth.authorizer import Authorizer, Layer
from edgegw.auth.cache import AuthCache, cache_key
from edgegw.auth.idtags import IdTagFormat
from edgegw.auth.locallist import AuthStatus, IdTagInfo
from edgegw.config import AuthConfig
from edgegw.proxy.rules import card_answer
from edgegw.store.cards import CardStore
from edgegw.store.db import Database
from edgegw.store.schema import MIGRATIONS

NOW = 1_700_000_000.0
ACCEPTED = {"status": "Accepted"}
CODE = "12345678"


class Opened:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.runs: list[tuple[Authorizer, Database]] = []

    async def open(self) -> Authorizer:
        await self.close()
        db = await Database.open(self.path)
        auth = await Authorizer.open(db, AuthConfig(), clock=lambda: NOW)
        self.runs.append((auth, db))
        return auth

    async def close(self) -> None:
        for auth, db in self.runs:
            await auth.close()
            await db.close()
        self.runs.clear()


@pytest.fixture
async def opened(tmp_path: Path) -> AsyncIterator[Opened]:
    o = Opened(tmp_path / "edgegw.db")
    yield o
    await o.close()


def token(kind: str) -> dict[str, object]:
    return {"idToken": {"idToken": CODE, "type": kind}}


def test_card_answer_says_whether_the_token_is_a_card_uid() -> None:
    answer = {"idTokenInfo": {"status": "Accepted"}}
    rfid = card_answer(token("ISO14443"), answer)
    code = card_answer(token("KeyCode"), answer)
    idtag = card_answer({"idTag": CODE}, {"idTagInfo": ACCEPTED})
    assert rfid is not None and not rfid.literal
    assert code is not None and code.literal
    assert idtag is not None and not idtag.literal  # 1.6: a reader's idTag


def test_the_two_key_spaces_do_not_meet() -> None:
    cache = AuthCache(size=10, max_age=86_400.0)
    cache.learn(CODE, IdTagInfo(AuthStatus.ACCEPTED), NOW)
    assert cache.get(CODE, NOW) is not None
    assert cache.get(CODE, NOW, literal=True) is None
    cache.learn(CODE, IdTagInfo(AuthStatus.BLOCKED), NOW, literal=True)
    uid, tok = cache.get(CODE, NOW), cache.get(CODE, NOW, literal=True)
    assert uid is not None and uid.info.status is AuthStatus.ACCEPTED
    assert tok is not None and tok.info.status is AuthStatus.BLOCKED
    assert len(cache) == 2
    assert cache_key(CODE) != cache_key(CODE, literal=True)
    # a control character the strip removes makes no key of the other space
    assert cache_key("\x1f" + CODE) == cache_key(CODE)


@pytest.mark.parametrize("learnt_literal", [False, True])
async def test_one_kind_of_answer_decides_only_that_kind(
    opened: Opened, learnt_literal: bool
) -> None:
    """RFID accepted online -> offline the KeyCode of that text is not Accepted from the cache
    (and the other way round); the learnt kind still is, also after a restart."""
    auth = await opened.open()
    assert await auth.learn(CODE, ACCEPTED, charger_id="ST", literal=learnt_literal)
    for _ in range(2):
        same = auth.decide("ST", CODE, fmt=IdTagFormat.AUTO, literal=learnt_literal)
        other = auth.decide("ST", CODE, fmt=IdTagFormat.AUTO, literal=not learnt_literal)
        assert same.accepted and same.layer is Layer.CACHE
        assert not other.accepted and other.layer is Layer.POLICY
        auth = await opened.open()


async def test_a_refusal_of_one_kind_leaves_the_other_kind_accepted(opened: Opened) -> None:
    auth = await opened.open()
    assert await auth.learn(CODE, ACCEPTED, literal=False)
    assert await auth.learn(CODE, {"status": "Blocked"}, literal=True)
    auth = await opened.open()
    assert auth.decide("ST", CODE, fmt=IdTagFormat.AUTO).accepted
    refused = auth.decide("ST", CODE, fmt=IdTagFormat.AUTO, literal=True)
    assert refused.status is AuthStatus.BLOCKED


async def test_the_rows_of_both_kinds_are_stored_apart(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "edgegw.db")
    try:
        store = CardStore(db)
        cache = AuthCache(size=10, max_age=86_400.0)
        for literal in (False, True):
            learned = cache.learn(CODE, IdTagInfo(AuthStatus.ACCEPTED), NOW, literal=literal)
            assert learned is not None
            await store.cache_put(learned.entry, learned.evicted)
        entries = await store.load_cache()
        assert sorted((e.id_tag, e.literal) for e in entries) == [(CODE, False), (CODE, True)]
        await store.cache_delete([cache_key(CODE, literal=True)])
        assert [(e.id_tag, e.literal) for e in await store.load_cache()] == [(CODE, False)]
    finally:
        await db.close()


async def test_a_schema_7_cache_is_kept_as_card_idtags(tmp_path: Path) -> None:
    """Migration 8: the rows a gateway cached before are answers about idTags."""
    path = tmp_path / "edgegw.db"
    with sqlite3.connect(path) as conn:
        for step in MIGRATIONS[:7]:
            conn.executescript(step)
        conn.execute(
            "INSERT INTO auth_cache (id_tag, status, expiry, parent_id_tag, learned_at)"
            " VALUES (?, 'Accepted', NULL, 'FLEET', ?)",
            (CODE, NOW),
        )
        conn.execute("PRAGMA user_version=7")
    conn.close()
    db = await Database.open(path)
    try:
        entries = await CardStore(db).load_cache()
    finally:
        await db.close()
    assert [(e.id_tag, e.literal, e.info.parent_id, e.learned_at) for e in entries] == [
        (CODE, False, "FLEET", NOW)
    ]
