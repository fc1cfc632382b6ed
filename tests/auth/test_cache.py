"""The authorisation cache: expiry, max age, bound and eviction order, persistence."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from edgegw.auth.cache import DAY, AuthCache
from edgegw.auth.locallist import AuthStatus, IdTagInfo
from edgegw.store.cards import CardStore
from edgegw.store.db import Database

NOW = 1_700_000_000.0
ACCEPTED = IdTagInfo(AuthStatus.ACCEPTED)
BLOCKED = IdTagInfo(AuthStatus.BLOCKED)
INVALID = IdTagInfo(AuthStatus.INVALID)


def at(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def test_get_is_case_insensitive_and_bounded_by_max_age() -> None:
    cache = AuthCache(size=10, max_age=30 * DAY)
    cache.learn("aa11bb22", ACCEPTED, NOW)
    entry = cache.get(" AA11BB22 ", NOW + 29 * DAY)
    assert entry is not None and entry.info.status is AuthStatus.ACCEPTED
    assert cache.get("AA11BB22", NOW + 30 * DAY) is None  # too old to trust


def test_concurrent_tx_is_cached_as_accepted() -> None:
    cache = AuthCache(size=10, max_age=DAY)
    cache.learn("T1", IdTagInfo(AuthStatus.CONCURRENT_TX, parent_id="P"), NOW)
    entry = cache.get("T1", NOW)
    assert entry is not None and entry.info == IdTagInfo(AuthStatus.ACCEPTED, parent_id="P")


def test_latest_answer_wins() -> None:
    cache = AuthCache(size=10, max_age=DAY)
    cache.learn("T1", ACCEPTED, NOW)
    cache.learn("T1", BLOCKED, NOW + 1)
    entry = cache.get("T1", NOW + 2)
    assert len(cache) == 1 and entry is not None and entry.info.status is AuthStatus.BLOCKED


def test_eviction_takes_not_valid_first_then_oldest() -> None:
    cache = AuthCache(size=3, max_age=100 * DAY)
    cache.learn("VALID-OLD", ACCEPTED, NOW)
    cache.learn("BLOCKED", BLOCKED, NOW + 1)
    cache.learn("VALID-MID", ACCEPTED, NOW + 2)
    learned = cache.learn("VALID-NEW", ACCEPTED, NOW + 3)
    assert learned is not None and learned.evicted == (("BLOCKED", False),)
    learned = cache.learn("INVALID", INVALID, NOW + 4)
    assert learned is not None and learned.evicted == (("VALID-OLD", False),)
    learned = cache.learn("ANOTHER", ACCEPTED, NOW + 5)
    assert learned is not None and learned.evicted == (("INVALID", False),)
    assert [e.id_tag for e in cache] == ["VALID-MID", "VALID-NEW", "ANOTHER"]


def test_entries_past_their_expiry_are_evicted_before_valid_ones() -> None:
    cache = AuthCache(size=2, max_age=100 * DAY)
    cache.learn("OLD-BUT-VALID", ACCEPTED, NOW)
    cache.learn("EXPIRES", IdTagInfo(AuthStatus.ACCEPTED, expiry=at(NOW + 60)), NOW + 1)
    learned = cache.learn("NEW", ACCEPTED, NOW + 120)
    assert learned is not None and learned.evicted == (("EXPIRES", False),)


def test_size_zero_disables_the_cache() -> None:
    cache = AuthCache(size=0, max_age=DAY)
    assert cache.learn("T1", ACCEPTED, NOW) is None
    assert cache.get("T1", NOW) is None


def test_load_keeps_learned_order_and_shrinks_to_size() -> None:
    source = AuthCache(size=10, max_age=100 * DAY)
    for i, info in enumerate([ACCEPTED, BLOCKED, ACCEPTED, ACCEPTED]):
        source.learn(f"T{i}", info, NOW + i)
    smaller = AuthCache(size=2, max_age=100 * DAY)
    evicted = smaller.load(reversed(list(source)), NOW + 10)
    assert evicted == [("T1", False), ("T0", False)]
    assert [e.id_tag for e in smaller] == ["T2", "T3"]


async def test_entries_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "edgegw.db"
    db = await Database.open(path)
    store = CardStore(db)
    cache = AuthCache(size=2, max_age=100 * DAY)
    expiry = IdTagInfo(AuthStatus.ACCEPTED, expiry=at(NOW + DAY), parent_id="FLEET")
    for tag, info, t in [("A", expiry, NOW), ("B", BLOCKED, NOW + 1), ("C", ACCEPTED, NOW + 2)]:
        learned = cache.learn(tag, info, t)
        assert learned is not None
        await store.cache_put(learned.entry, learned.evicted)
    await db.close()

    db = await Database.open(path)
    try:
        entries = await CardStore(db).load_cache()
    finally:
        await db.close()
    assert [(e.id_tag, e.info, e.learned_at) for e in entries] == [
        ("A", expiry, NOW),
        ("C", ACCEPTED, NOW + 2),
    ]
