"""Secrets out of frame logs.

The gateway relays frames byte for byte, and may log them (``logging.frames``) and keep them in
the message log. A few frames carry a charger's password in clear: the cloud setting a new
Basic-auth key with ``ChangeConfiguration(AuthorizationKey, ...)`` and a charger that (against
the spec) returns it in ``GetConfiguration``; in OCPP 2.x the cloud setting
``SecurityCtrlr.BasicAuthPassword`` with ``SetVariables`` (and a station returning it in a
GetVariables result or a NotifyReport, also against the spec). :func:`redact_frame` masks
those values in the copy that is logged or stored; the relayed frame itself is never changed.

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
_KEY_A, _KEY_B = sorted(SECRET_KEYS)  # scanned for one by one: see _maybe_secret
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
        if _names_secret_variable(value):
            return _mask_attributes(value), True
        changed = False
        out = {}
        for k, v in value.items():
            out[k], hit = _mask(v)
            changed |= hit
        return out, changed
    return value, False


def _names_secret_variable(value: dict[str, Any]) -> bool:
    """An OCPP 2.x device-model entry (SetVariableData, GetVariableResult, ReportData...)
    whose ``variable`` is a secret one (``SecurityCtrlr.BasicAuthPassword``)."""
    variable = value.get("variable")
    name = variable.get("name") if isinstance(variable, dict) else None
    return isinstance(name, str) and name.casefold() in SECRET_KEYS


def _mask_attributes(value: dict[str, Any]) -> dict[str, Any]:
    """The entry with its values masked: ``attributeValue`` (Set/GetVariables) and each
    ``variableAttribute``'s ``value`` (NotifyReport)."""
    out = dict(value)
    if "attributeValue" in out:
        out["attributeValue"] = MASK
    attributes = out.get("variableAttribute")
    if isinstance(attributes, list):
        out["variableAttribute"] = [
            {**a, "value": MASK} if isinstance(a, dict) and "value" in a else a for a in attributes
        ]
    return out


def _maybe_secret(raw: str) -> bool:
    """Whether ``raw`` could name a secret key once decoded: a ``\\u`` escape (which could
    spell one), or a key's name in the case-folded text. Case folding is per character, so a
    key that folds to a secret one (long s U+017F, Kelvin sign U+212A) is found too.

    Every logged frame pays this, so the usual (ASCII) frame is let go after a few
    one-character scans, without folding a copy of it: no backslash, no ``b`` or ``B`` (for
    ``basicauthpassword``), no ``z`` and no ``Z`` followed by an ``a`` or ``A`` (for
    ``authorizationkey``; a bare ``Z`` ends every UTC timestamp) means no key."""
    if "\\" in raw and "\\u" in raw:
        return True
    if raw.isascii():
        if "z" not in raw and "b" not in raw and "B" not in raw:
            at = raw.find("Z") if "Z" in raw else -1
            while at >= 0 and raw[at + 1 : at + 2] not in ("a", "A"):
                at = raw.find("Z", at + 1)
            if at < 0:
                return False
        folded = raw.lower()
    else:
        folded = raw.casefold()
    return _KEY_A in folded or _KEY_B in folded


def redact_frame(raw: str) -> str:
    """``raw`` with secret configuration values replaced by ``***`` (unchanged if none)."""
    if not _maybe_secret(raw):
        return raw  # the common case: a few scans, no decoding
    try:
        frame = json.loads(raw)
    except (ValueError, RecursionError):
        return _STRING_VALUE.sub(rf'\1"{MASK}"', raw) if _NAMED.search(raw) else raw
    masked, changed = _mask(frame)
    # ASCII: a decoded lone surrogate ("\\ud800") must not reach a writer that cannot encode it.
    return json.dumps(masked, separators=(",", ":")) if changed else raw
