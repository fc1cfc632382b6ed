"""Secrets out of frame logs.

The gateway relays frames byte for byte, and may log them (``logging.frames``) and keep them in
the message log. A few frames carry a charger's password in clear: the cloud setting a new
Basic-auth key with ``ChangeConfiguration(AuthorizationKey, ...)`` and a charger that (against
the spec) returns it in ``GetConfiguration``. :func:`redact_frame` masks those values in the
copy that is logged or stored; the relayed frame itself is never changed.

Keys are matched after JSON decoding: ``"Authorization\\u004bey"`` is the same key to the
charger, so it is the same key here. Text that names a secret key but does not parse is masked
conservatively (every string value after a colon). A masked frame is written back in ASCII
JSON.
"""

from __future__ import annotations

import json
import re
from typing import Any

SECRET_KEYS = frozenset({"authorizationkey", "basicauthpassword"})
MASK = "***"
# A secret key's name, or a \\u escape that could spell one: then the frame is decoded and
# checked (the common frame has neither and costs one scan).
_MAYBE_SECRET = re.compile("|".join([*SECRET_KEYS, r"\\u"]), re.IGNORECASE)
_NAMED = re.compile("|".join(SECRET_KEYS), re.IGNORECASE)
_STRING_VALUE = re.compile(r'(:\s*)"(?:[^"\\]|\\.)*"')


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
        return _STRING_VALUE.sub(rf'\1"{MASK}"', raw) if _NAMED.search(raw) else raw
    masked, changed = _mask(frame)
    # ASCII: a decoded lone surrogate ("\\ud800") must not reach a writer that cannot encode it.
    return json.dumps(masked, separators=(",", ":")) if changed else raw
