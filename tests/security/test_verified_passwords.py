"""Verified-password cache: a reconnect skips scrypt, a guess never does.

Against a real gateway on port 0 where it matters (the throttle, a password change); the cache
itself directly.
"""

from __future__ import annotations

import asyncio
from typing import Any

from websockets.exceptions import InvalidStatus

from edgegw.auth.passwords import hash_password
from edgegw.config import parse_config
from edgegw.daemon import Gateway
from edgegw.security.admission import ConnectionGuard
from edgegw.security.verified import MAX_PASSWORD_CHECKS, VerifiedPasswords, password_check_slots
from tests.conftest import GatewayFactory, gateway_url, raw_charger
from tests.security.conftest import basic

PASSWORD = "sixteen-chars-pw!"
HASH = hash_password(PASSWORD, log2_n=10)
NEW_PASSWORD = "another-16-chars!"
NEW_HASH = hash_password(NEW_PASSWORD, log2_n=10)


def source(n: int) -> dict[str, Any]:
    return {"local_addr": (f"127.0.0.{n}", 0)}


async def status_of(url: str, charger_id: str, password: str, src: int) -> int:
    try:
        async with raw_charger(url, charger_id, headers=basic(charger_id, password), **source(src)):
            return 101
    except InvalidStatus as exc:
        return exc.response.status_code


def test_the_cache_accepts_only_what_was_verified() -> None:
    cache = VerifiedPasswords()
    assert not cache.matches("CP1", HASH, PASSWORD)  # nothing before a verified login
    cache.remember("CP1", HASH, PASSWORD)
    assert cache.matches("CP1", HASH, PASSWORD)
    for wrong in ("", PASSWORD[:-1], PASSWORD + "x", PASSWORD.upper(), NEW_PASSWORD):
        assert not cache.matches("CP1", HASH, wrong)
    assert not cache.matches("CP2", HASH, PASSWORD)  # another identity, same password
    assert not cache.matches("CP1", NEW_HASH, PASSWORD)  # the hash changed under it
    assert not VerifiedPasswords().matches("CP1", HASH, PASSWORD)  # a new process: empty


def test_keep_only_drops_removed_chargers_and_changed_hashes() -> None:
    cache = VerifiedPasswords()
    for identity in ("CP1", "CP2", "CP3"):
        cache.remember(identity, HASH, PASSWORD)
    cache.keep_only({"CP1": HASH, "CP2": NEW_HASH}.get)
    assert len(cache) == 1
    assert cache.matches("CP1", HASH, PASSWORD)
    assert not cache.matches("CP2", HASH, PASSWORD)


def test_password_checks_run_one_per_core_within_bounds() -> None:
    assert 2 <= password_check_slots() <= MAX_PASSWORD_CHECKS


def test_a_handshake_being_checked_is_not_dropped_for_a_newcomer() -> None:
    guard = ConnectionGuard(max_pending=2, max_pending_per_address=2)
    checking = guard.admit("10.0.0.1")
    checking.checking = True
    slow = guard.admit("10.0.0.2")
    guard.admit("10.0.0.3")  # the budget is full: the oldest not being checked goes
    assert slow.closed and not checking.closed
    slow_too = guard.admit("10.0.0.4")
    assert not slow_too.closed


async def test_a_cached_password_never_lets_a_wrong_one_in_and_guesses_still_count(
    make_gateway: GatewayFactory,
) -> None:
    gateway = await make_gateway(
        server={"failed_logins_before_backoff": 5},
        chargers=[{"id": "CP1", "password_hash": HASH}],
    )
    server = gateway.server
    assert server is not None
    url = gateway_url(gateway)
    assert await status_of(url, "CP1", PASSWORD, 4) == 101  # verified once: cached
    # Guesses from the charger's own address and from others: refused and counted.
    assert [await status_of(url, "CP1", f"guess-{i}", 4 + i) for i in range(3)] == [401] * 3
    assert server.login_failures("CP1") == 3
    # The right password gets in from the cache, from a new address...
    assert await status_of(url, "CP1", PASSWORD, 8) == 101
    # ...and leaves the guesses' count as it was: the next guesses go on towards back-off.
    assert server.login_failures("CP1") == 3
    assert [await status_of(url, "CP1", f"guess-{i}", 9 + i) for i in range(3)] == [401] * 3
    assert server.login_failures("CP1") == 6
    assert await status_of(url, "CP1", "guess-x", 12) == 429
    # In back-off, the right password still gets in (a guesser cannot lock the charger out).
    assert await status_of(url, "CP1", PASSWORD, 13) == 101
    assert server.login_failures("CP1") == 6


async def test_a_changed_password_refuses_the_old_one_at_once(
    make_gateway: GatewayFactory,
) -> None:
    gateway = await make_gateway(chargers=[{"id": "CP1", "password_hash": HASH}])
    url = gateway_url(gateway)
    assert await status_of(url, "CP1", PASSWORD, 4) == 101  # cached now
    reload(gateway, NEW_HASH)
    assert await status_of(url, "CP1", PASSWORD, 4) == 401
    assert await status_of(url, "CP1", NEW_PASSWORD, 4) == 101
    reload(gateway, None)  # the password dropped: the charger connects without one
    async with raw_charger(url, "CP1", **source(4)):
        pass


def reload(gateway: Gateway, password_hash: str | None) -> None:
    data = gateway.config.model_dump(mode="json", exclude_none=True)
    data["chargers"] = [
        {"id": "CP1", **({"password_hash": password_hash} if password_hash else {})}
    ]
    assert gateway.server is not None
    gateway.server.use_config(parse_config(data))


async def test_a_check_outlives_its_handshake_and_is_shared_while_it_runs(
    make_gateway: GatewayFactory,
) -> None:
    """A reconnect storm: the handshake that asked may time out, the check still counts."""
    gateway = await make_gateway(chargers=[{"id": "CP1", "password_hash": HASH}])
    server = gateway.server
    assert server is not None
    check = server._verify("CP1", HASH, PASSWORD)
    assert server._verify("CP1", HASH, PASSWORD) is check  # a retry shares the running check
    assert server._verify("CP1", HASH, "wrong-password!!") is not check
    waiter = asyncio.ensure_future(asyncio.shield(check))  # noqa: TID251
    waiter.cancel()  # the handshake timed out
    assert await check
    assert server._verified.matches("CP1", HASH, PASSWORD)
    assert await status_of(gateway_url(gateway), "CP1", PASSWORD, 4) == 101
