"""Stored charger passwords: memory-hard, and a stored hash cannot make a login cost gigabytes."""

from __future__ import annotations

import pytest

from edgegw.auth.passwords import check_hash_format, hash_password, needs_rehash, verify_password


def test_scrypt_with_todays_parameters() -> None:
    stored = hash_password("sixteen-chars-pw!")
    scheme, log2_n, r, _p, _salt, _digest = stored.split("$")
    assert (scheme, int(log2_n), int(r)) == ("scrypt", 14, 8)  # 16 MiB of memory per check
    assert verify_password(stored, "sixteen-chars-pw!")
    assert not needs_rehash(stored)


def test_older_cheaper_hashes_still_verify_but_ask_for_a_rehash() -> None:
    stored = hash_password("weak but quick", log2_n=10)
    assert verify_password(stored, "weak but quick")
    assert needs_rehash(stored)


def test_memory_cost_of_a_stored_hash_is_bounded() -> None:
    # n = 2^20, r = 32 would need 4 GiB per check: refused when the config is loaded.
    too_costly = "scrypt$20$32$1$AAAAAAAAAAAAAAAAAAAAAA$" + "A" * 43
    with pytest.raises(ValueError, match="password-hash"):
        check_hash_format(too_costly)
