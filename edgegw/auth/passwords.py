"""Charger passwords (OCPP Security Profile 1/2 Basic auth), stored only as scrypt hashes.

scrypt is memory-hard and in the standard library. The stored form is
``scrypt$<log2 n>$<r>$<p>$<salt b64>$<hash b64>``.

OCPP 1.6 chargers send their ``AuthorizationKey`` either as typed or as the hex encoding of a
20-byte key; following the OCPP security guide's interop advice we check the password as given
and, if it looks like hex, its decoded bytes too.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re

_SCHEME = "scrypt"
_LOG2_N = 14  # n = 16384: ~16 MiB of memory per check with r=8
_R = 8
_P = 1
_HEX = re.compile(r"^(?:[0-9A-Fa-f]{2})+$")
_MAXMEM = 256 * 1024 * 1024
# A stored hash may not make one check cost more than this (a config could otherwise make every
# login attempt allocate gigabytes on a small box; scrypt needs about 128 * r * n bytes).
_MAX_COST = 128 * 1024 * 1024


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def _derive(secret: bytes, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(secret, salt=salt, n=1 << log2_n, r=r, p=p, maxmem=_MAXMEM, dklen=32)


def hash_password(password: str, *, log2_n: int = _LOG2_N) -> str:
    """Hash ``password`` for the configuration file or the store."""
    if not password:
        raise ValueError("password must not be empty")
    salt = os.urandom(16)
    digest = _derive(password.encode("utf-8"), salt, log2_n, _R, _P)
    return f"{_SCHEME}${log2_n}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def check_hash_format(stored: str) -> None:
    """Raise ``ValueError`` unless ``stored`` is a hash this module produced."""
    parts = stored.split("$")
    try:
        if len(parts) != 6 or parts[0] != _SCHEME:
            raise ValueError
        log2_n, r, p = (int(x) for x in parts[1:4])
        if not (1 <= log2_n <= 20 and 1 <= r <= 32 and 1 <= p <= 16):
            raise ValueError
        if 128 * r * (1 << log2_n) > _MAX_COST:
            raise ValueError
        if len(_unb64(parts[4])) < 8 or len(_unb64(parts[5])) != 32:
            raise ValueError
    except ValueError:
        raise ValueError(
            "is not a password hash; create one with 'edgegw password-hash' "
            "(plain-text passwords are not stored)"
        ) from None


def needs_rehash(stored: str) -> bool:
    """True if ``stored`` uses weaker parameters than :func:`hash_password` does today."""
    check_hash_format(stored)
    _, log2_n, r, p, _, _ = stored.split("$")
    return (int(log2_n), int(r)) < (_LOG2_N, _R) or int(p) < _P


def verify_password(stored: str, presented: str) -> bool:
    """True if ``presented`` (as typed, or hex-decoded) matches the ``stored`` hash."""
    check_hash_format(stored)
    _, log2_n, r, p, salt_b64, digest_b64 = stored.split("$")
    salt, expected = _unb64(salt_b64), _unb64(digest_b64)
    candidates = [presented.encode("utf-8")]
    if _HEX.match(presented):
        candidates.append(bytes.fromhex(presented))
    # A match ends the search: the second form's scrypt would only double the cost of a
    # reconnect. A wrong password still pays for every form (the timing tells a guesser only
    # what the answer does: that the password was wrong).
    for candidate in candidates:
        digest = _derive(candidate, salt, int(log2_n), int(r), int(p))
        if hmac.compare_digest(digest, expected):
            return True
    return False
