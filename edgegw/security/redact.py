"""Secrets out of frame logs.

The gateway relays frames byte for byte, and may log them (``logging.frames``) and keep them in
the message log. A few frames carry a charger's password in clear: the cloud setting a new
Basic-auth key with ``ChangeConfiguration(AuthorizationKey, ...)`` and a charger that (against
the spec) returns it in ``GetConfiguration``. :func:`redact_frame` masks those values in the
copy that is logged or stored; the relayed frame itself is never changed.
"""

from __future__ import annotations

import json
import re
from typing import Any

SECRET_KEYS = frozenset({"authorizationkey", "basicauthpassword"})
MASK = "***"
_MAYBE_SECRET = re.compile("|".join(SECRET_KEYS), re.IGNORECASE)


def _mask(value: Any) -> tuple[Any, bool]:
    if isinstance(value, list):
        changed = False
        items = []
        for item in value:
            masked, hit = _mask(item)
            items.append(masked)
            changed |= hit
        return items, changed
    if isinstance(value, dict):
        key = value.get("key")
        if isinstance(key, str) and key.casefold() in SECRET_KEYS and "value" in value:
            return {**value, "value": MASK}, True
        changed = False
        out = {}
        for k, v in value.items():
            out[k], hit = _mask(v)
            changed |= hit
        return out, changed
    return value, False


def redact_frame(raw: str) -> str:
    """``raw`` with secret configuration values replaced by ``***`` (unchanged if none)."""
    if _MAYBE_SECRET.search(raw) is None:
        return raw  # the common case costs one scan, no copy
    try:
        frame = json.loads(raw)
    except (ValueError, RecursionError):
        return raw
    masked, changed = _mask(frame)
    return json.dumps(masked, separators=(",", ":"), ensure_ascii=False) if changed else raw
