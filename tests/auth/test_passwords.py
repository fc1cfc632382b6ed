import pytest

from edgegw.auth.passwords import check_hash_format, hash_password, verify_password


def test_round_trip_and_wrong_password() -> None:
    stored = hash_password("correct horse battery")
    assert stored.startswith("scrypt$")
    assert verify_password(stored, "correct horse battery")
    assert not verify_password(stored, "correct horse battery ")
    assert not verify_password(stored, "")


def test_hex_authorization_key_interop() -> None:
    # OCPP 1.6 AuthorizationKey: a 20-byte key sent as 40 hex digits.
    key = bytes(range(1, 21))
    stored = hash_password(key.decode("latin-1").encode("latin-1").decode("utf-8"))
    assert verify_password(stored, key.hex())
    assert verify_password(stored, key.hex().upper())


def test_salted() -> None:
    assert hash_password("same password") != hash_password("same password")


@pytest.mark.parametrize("bad", ["", "plain", "scrypt$1$2$3$abc", "bcrypt$14$8$1$AAAAAAAAAAA$x"])
def test_bad_hash_format(bad: str) -> None:
    with pytest.raises(ValueError, match="password-hash"):
        check_hash_format(bad)
