"""A card's answer in both OCPP versions: 2.0.1's ``IdTokenType``/``IdTokenInfoType`` beside 1.6's
``idTag``/``idTagInfo``, which the card layers speak (:mod:`edgegw.auth`).

A 1.6 ``idTagInfo`` is written in 2.0.1 form for a 2.x charger (:func:`id_token_info`), and the
cloud's 2.0.1 ``idTokenInfo`` is read in 1.6 form to be learnt (:func:`id_tag_info`). Only the
statuses both versions have are learnt: ``NotAtThisLocation``, ``NotAtThisTime``,
``NotAllowedTypeEVSE`` say nothing about the card elsewhere or later, and ``NoCredit`` or
``Unknown`` are the cloud's to say each time; the gateway keeps no such answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

LEARNT_STATUSES = frozenset({"Accepted", "Blocked", "Expired", "Invalid", "ConcurrentTx"})
"""2.0.1 authorization statuses that are 1.6 ones too: the only ones the card cache keeps."""


def token_text(id_token: object) -> tuple[str, str] | None:
    """``(idToken, type)`` of an IdTokenType; None when it is not one."""
    if not isinstance(id_token, Mapping):
        return None
    token, kind = id_token.get("idToken"), id_token.get("type")
    if not isinstance(token, str) or not isinstance(kind, str):
        return None
    return token, kind


def id_token_info(id_tag_info: Mapping[str, Any]) -> dict[str, Any]:
    """A 1.6 ``idTagInfo`` in 2.0.1 form (``IdTokenInfoType``)."""
    info: dict[str, Any] = {"status": id_tag_info.get("status", "Invalid")}
    expiry = id_tag_info.get("expiryDate")
    if isinstance(expiry, str):
        info["cacheExpiryDateTime"] = expiry
    parent = id_tag_info.get("parentIdTag")
    if isinstance(parent, str) and parent:
        info["groupIdToken"] = {"idToken": parent, "type": "Central"}
    return info


def id_tag_info(id_token_info: object) -> dict[str, Any] | None:
    """The cloud's 2.0.1 ``idTokenInfo`` in 1.6 form, to be learnt; None when it has a status
    1.6 has not (see the module) or is not an object."""
    if not isinstance(id_token_info, Mapping):
        return None
    status = id_token_info.get("status")
    if status not in LEARNT_STATUSES:
        return None
    info: dict[str, Any] = {"status": status}
    expiry = id_token_info.get("cacheExpiryDateTime")
    if isinstance(expiry, str):
        info["expiryDate"] = expiry
    group = token_text(id_token_info.get("groupIdToken"))
    if group is not None and group[0]:
        info["parentIdTag"] = group[0]
    return info
