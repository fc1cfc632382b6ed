"""What a card decision is (:class:`Decision`, the :class:`Layer` that made it) and how an entry
of the cloud's list or the cache becomes one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from edgegw.auth.cache import CacheEntry
from edgegw.auth.idtags import CardId, CardLookup, IdTagFormat, parse_card_id
from edgegw.auth.locallist import AuthStatus, CloudEntry, IdTagInfo, format_datetime, normal_card_id


class Layer(StrEnum):
    """Which layer of the decision order decided."""

    FREE_TAG = "free_tag"
    INSTALLER = "installer"
    CLOUD_LIST = "cloud_list"
    IDTAG = "idtag"
    """The idTag itself: a random UID."""
    CACHE = "cache"
    POLICY = "policy"


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of :meth:`Authorizer.decide`.

    ``id_tag_info`` is the OCPP ``idTagInfo`` to answer with. ``card`` is the canonical card
    the idTag resolved to (None when no list knows it) and ``fmt`` the idTag format that matched
    (None for a token or no match).
    """

    id_tag_info: dict[str, Any]
    layer: Layer
    reason: str
    card: CardId | None = None
    fmt: IdTagFormat | None = None

    @property
    def status(self) -> AuthStatus:
        return AuthStatus(self.id_tag_info["status"])

    @property
    def accepted(self) -> bool:
        return self.status is AuthStatus.ACCEPTED


def _rank(info: IdTagInfo, now: float) -> int:
    if info.status.valid and not info.expired(now):
        return 0
    return 1 if info.status is AuthStatus.BLOCKED else 2


def _resolve(card_id: CardId | str) -> CardId:
    if isinstance(card_id, CardId):
        return normal_card_id(card_id)
    return normal_card_id(parse_card_id(card_id))


def _how(found: CardLookup) -> str:
    if found.fmt is None or found.fmt in (IdTagFormat.HEX, IdTagFormat.HEX_LOWER):
        return ""
    return f" (presented as {found.presented!r}, {found.fmt.value})"


def _ambiguous(found: CardLookup, layer: Layer, charger_id: str) -> Decision:
    return Decision(
        {"status": "Invalid"},
        layer,
        f"{found.describe()}; the cards cannot be told apart, so none is accepted. Set "
        f"{charger_id}'s idtag_format so that it reads one card",
    )


def _cloud_decision(entry: CloudEntry, found: CardLookup, now: float) -> Decision:
    info = entry.info
    who = f"cloud list entry {entry.id_tag}{_how(found)}"
    if not info.status.valid:
        return Decision(
            {"status": info.status.value},
            Layer.CLOUD_LIST,
            f"{who} is {info.status.value}",
            entry.card,
            found.fmt,
        )
    if info.expiry is not None and info.expired(now):
        return Decision(
            {"status": "Expired"},
            Layer.CLOUD_LIST,
            f"{who} expired at {format_datetime(info.expiry)}",
            entry.card,
            found.fmt,
        )
    accepted = IdTagInfo(AuthStatus.ACCEPTED, info.expiry, info.parent_id)
    return Decision(
        accepted.to_ocpp(), Layer.CLOUD_LIST, f"{who} is Accepted", entry.card, found.fmt
    )


def _cache_decision(entry: CacheEntry, id_tag: str, now: float) -> Decision:
    info = entry.info
    said = f"the cloud answered {info.status.value} for {id_tag!r} at {_iso(entry.learned_at)}"
    if not info.status.valid:
        return Decision({"status": info.status.value}, Layer.CACHE, said)
    if info.expiry is not None and info.expired(now):
        return Decision(
            {"status": "Expired"},
            Layer.CACHE,
            f"{said}, valid until {format_datetime(info.expiry)}",
        )
    return Decision(info.to_ocpp(), Layer.CACHE, said)


def _iso(ts: float) -> str:
    return format_datetime(datetime.fromtimestamp(ts, UTC))
