"""The cloud's local list in OCPP 2.0.1 form, read into the same mirror as 1.6's.

A 2.0.1 cloud keeps a station's list with ``SendLocalList`` (``versionNumber``, ``updateType``
``Full``/``Differential``, ``localAuthorizationList`` of ``{idToken: {idToken, type},
idTokenInfo}``) and asks ``GetLocalListVersion`` (answered ``versionNumber``). The gateway
answers both itself, as for 1.6 (it owns every charger's own list, :mod:`edgegw.auth.listpush`),
from the one mirror of the cloud's list (:mod:`edgegw.auth.cloudlist`), whatever version the
cloud speaks to each charger. The request is read here into the mirror's 1.6 terms:

* ``ISO14443`` and ``ISO15693`` tokens are card UIDs: their text goes through the canonical UID
  logic (:meth:`~edgegw.auth.cardid.CardId.from_idtag`: hex of a 4-, 7- or 10-byte UID is that
  UID, in either case), so the cloud's card matches however a charger writes it. Every other
  type (``Central``, ``eMAID``, ``KeyCode``, ``Local``, ``MacAddress``) is kept as a token, its
  text verbatim, *with its type* (:data:`~edgegw.auth.cloudlist.TOKEN_TYPE`): a
  :class:`~edgegw.auth.cardindex.LiteralToken`, matched only by a 2.x token presented as such,
  never read as a UID however hex-shaped (a KeyCode ``12345678`` is not the card with UID
  12345678), left out of 1.6 chargers' lists. A 2.0.1 charger gets UIDs back as ``ISO14443`` in
  its format, tokens with their own type (a 1.6 cloud's tokens as ``Central``,
  :func:`token_type`).
* ``idTokenInfo`` becomes 1.6's ``idTagInfo``: ``cacheExpiryDateTime`` the expiry,
  ``groupIdToken`` the parent. The statuses 1.6 has are kept; ``NoCredit``,
  ``NotAllowedTypeEVSE``, ``NotAtThisLocation``, ``NotAtThisTime`` and ``Unknown`` refuse the
  token everywhere, so they are mirrored as ``Invalid`` (a list entry that refuses stays one).
* Entries 1.6's card layers cannot hold are left out with a warning and the rest is mirrored:
  a token over 20 characters (2.0.1 allows 36, a 1.6 idTag 20), a ``NoAuthorization`` token
  (not a card), a group token over 20 characters (the parent is dropped, the entry kept).

The rules of the mirror (versions, ``VersionMismatch``, ``Failed``, duplicates, the repeat of
the current version answered ``Accepted``) are the 1.6 ones, unchanged. Pure: no I/O.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

from edgegw.auth.cloudlist import TOKEN_TYPE
from edgegw.auth.idtags import IDTAG_MAX_LEN
from edgegw.ocpp.versions import OCPP201
from edgegw.proxy.idtokens import LEARNT_STATUSES, id_tag_info, id_token_info, token_text

log = logging.getLogger(__name__)

JsonDict = dict[str, Any]

MIRRORED_VERSIONS: Final = frozenset({OCPP201})
"""2.x versions whose cloud list calls the gateway answers (2.1's are relayed to the charger)."""

REFUSING: Final = "Invalid"
"""The 1.6 status a 2.0.1-only refusal (NoCredit, NotAtThisLocation...) is mirrored as."""


def request_in_16(payload: Mapping[str, Any]) -> tuple[JsonDict, list[str]]:
    """A 2.0.1 ``SendLocalList`` request in 1.6 form, and what was left out (one line each).

    Fields the mirror checks (version, update type, duplicates) are passed on as they are, so
    its refusals read the same; a malformed entry is passed on for the mirror to refuse.
    """
    left_out: list[str] = []
    entries: list[Any] = []
    raw = payload.get("localAuthorizationList")
    for item in raw if isinstance(raw, list) else ():
        entry = _entry_in_16(item, left_out)
        if entry is not None:
            entries.append(entry)
    out: JsonDict = {
        "listVersion": payload.get("versionNumber"),
        "updateType": payload.get("updateType"),
    }
    if raw is not None and not isinstance(raw, list):
        out["localAuthorizationList"] = raw  # refused by the mirror, in its words
    elif entries or raw is not None:
        out["localAuthorizationList"] = entries
    return out, left_out


def _entry_in_16(item: object, left_out: list[str]) -> object:
    if not isinstance(item, Mapping):
        return item
    token = token_text(item.get("idToken"))
    if token is None:
        return {"idTag": None}  # the mirror says which entry has no idTag
    text, kind = token
    if kind == "NoAuthorization":
        left_out.append(f"a NoAuthorization token ({text!r}) is not a card")
        return None
    if len(text) > IDTAG_MAX_LEN:
        left_out.append(
            f"{kind} token {text!r} has {len(text)} characters; the card layers hold 20 at most"
        )
        return None
    entry: JsonDict = {"idTag": text, TOKEN_TYPE: kind}
    info = item.get("idTokenInfo")
    if info is not None:
        entry["idTagInfo"] = info_in_16(info, text, left_out)
    return entry


def info_in_16(info: object, text: str = "", left_out: list[str] | None = None) -> object:
    """A 2.0.1 ``idTokenInfo`` as 1.6's ``idTagInfo`` (see the module); a malformed one is
    passed on for the mirror to refuse."""
    if not isinstance(info, Mapping) or not isinstance(info.get("status"), str):
        return info
    status = info["status"]
    mirrored = status if status in LEARNT_STATUSES else REFUSING
    out = id_tag_info({**info, "status": mirrored})
    assert out is not None
    parent = out.get("parentIdTag")
    if isinstance(parent, str) and len(parent) > IDTAG_MAX_LEN:
        del out["parentIdTag"]
        if left_out is not None:
            left_out.append(f"the group of {text!r} ({parent!r}) is over 20 characters: dropped")
    return out


def answer_in_201(action: str, answer: Mapping[str, Any]) -> JsonDict:
    """The mirror's 1.6 answer to ``action`` in 2.0.1 form."""
    if action == "GetLocalListVersion":
        return {"versionNumber": answer.get("listVersion", 0)}
    return {"status": answer.get("status", "Failed")}


AnswerCloud = Callable[[str, JsonDict], Awaitable[JsonDict]]
"""``answer_cloud(action, payload)`` of the card authority: answers in 1.6 form."""


async def answer_cloud_in(
    version: str | None, answer_cloud: AnswerCloud, action: str, payload: JsonDict
) -> JsonDict:
    """The card authority's answer to the cloud's list call, in the link's ``version``: a 2.0.1
    call is read into 1.6 form, answered from the one mirror, and the answer written back."""
    if version not in MIRRORED_VERSIONS:
        return await answer_cloud(action, payload)
    request: JsonDict = {}
    if action == "SendLocalList":
        request, left_out = request_in_16(payload)
        for line in left_out:
            log.warning("cloud SendLocalList (2.0.1) entry left out of the mirror: %s", line)
    return answer_in_201(action, await answer_cloud(action, request))


def token_type(kind: str | None) -> str:
    """The IdTokenType ``type`` a 2.0.1 charger gets for an entry of its list whose own type
    is ``kind`` (``ISO14443`` for a UID, a 2.x token's type); None (a 1.6 token): ``Central``."""
    return kind or "Central"


def entry_201(tag: str, info: Mapping[str, Any] | None, kind: str | None) -> JsonDict:
    """One ``AuthorizationData`` of a 2.0.1 ``SendLocalList``: ``tag`` as the charger writes
    it, ``kind`` its type (None: ``Central``), ``info`` the 1.6 ``idTagInfo`` (None: a
    Differential's deletion)."""
    entry: JsonDict = {"idToken": {"idToken": tag, "type": token_type(kind)}}
    if info is not None:
        entry["idTokenInfo"] = id_token_info(info)
    return entry
