"""The mirror of the cloud's local list, kept exactly as OCPP 1.6 §5.15 / §6.41 say a charge
point keeps it (``Full`` and ``Differential`` updates, versions, duplicates), plus one
addition: a repeat of the update that made the current version is ``Accepted``.

An entry read from a 2.x list (:mod:`edgegw.auth.cloudlist201`) carries its ``IdTokenType``
type under :data:`TOKEN_TYPE`: a type that is no card UID (``KeyCode``, ``eMAID``...) makes
the entry a :class:`~edgegw.auth.cardindex.LiteralToken`, never read as a UID.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from edgegw.auth.cardindex import LiteralToken
from edgegw.auth.cardinfo import IdTagInfo, ListStatus
from edgegw.auth.idtags import CardId, CardIdError

TOKEN_TYPE: Final = "idTokenType"  # noqa: S105 - a member name
"""Member of a mirrored entry (next to ``idTag``) holding its 2.x ``IdTokenType`` type."""
UID_TYPES: Final = frozenset({"ISO14443", "ISO15693"})
"""2.x token types whose text is a card UID."""


def listed_card(id_tag: str, kind: object = None) -> CardId:
    """The card of a list entry: a :class:`LiteralToken` for a 2.x token ``kind`` that is no
    card UID, else the idTag read literally (:meth:`CardId.from_idtag`)."""
    if isinstance(kind, str) and kind not in UID_TYPES:
        return LiteralToken.of(id_tag, kind)
    return CardId.from_idtag(id_tag)


@dataclass(frozen=True, slots=True)
class CloudEntry:
    """One entry of the cloud's list: the idTag as the cloud wrote it, and its card."""

    id_tag: str
    card: CardId
    info: IdTagInfo

    @property
    def key(self) -> str:
        return self.card.key


@dataclass(frozen=True, slots=True)
class ListUpdate:
    """The outcome of :meth:`CloudList.plan` for one ``SendLocalList`` request.

    For a Full update ``upserts`` is the whole new list and ``deletes`` every old entry that
    leaves it. For a Differential, ``upserts`` are new or changed entries and ``deletes`` the
    old entries removed or replaced (an idTag re-sent in another letter case replaces the old
    spelling). ``changed`` says whether the entries (not just the version) change.
    """

    status: ListStatus
    version: int
    full: bool
    reason: str = ""
    upserts: tuple[CloudEntry, ...] = ()
    deletes: tuple[CloudEntry, ...] = ()
    skipped: tuple[str, ...] = ()
    """idTags left out because they are random UIDs."""
    changed: bool = False

    def answer(self) -> dict[str, str]:
        """The ``SendLocalList.conf`` payload."""
        return {"status": self.status}


class CloudList:
    """The mirror of the cloud's local authorisation list, keyed case-insensitively.

    Change it only through :meth:`plan` then :meth:`commit`, so that the caller can persist the
    update between the two and the mirror never runs ahead of the disk.
    """

    __slots__ = ("_entries", "_version")

    def __init__(self, entries: Iterable[CloudEntry] = (), version: int = 0) -> None:
        self._entries: dict[str, CloudEntry] = {e.key: e for e in entries}
        self._version = version

    @property
    def version(self) -> int:
        """``GetLocalListVersion``: 0 before the first update (an empty list)."""
        return self._version

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[CloudEntry]:
        return iter(self._entries.values())

    def get(self, key: str) -> CloudEntry | None:
        """The entry for a card key (:attr:`CardId.key`)."""
        return self._entries.get(key)

    def plan(self, payload: Mapping[str, Any]) -> ListUpdate:
        """What ``SendLocalList`` ``payload`` would do, without doing it."""
        try:
            version, full, requested = _read_request(payload)
        except ValueError as exc:
            return ListUpdate("Failed", self._version, full=False, reason=str(exc))
        skipped = tuple(e.id_tag for e in requested if e.card.is_random_uid)
        wanted = [e for e in requested if not e.card.is_random_uid]
        if full:
            missing = [e.id_tag for e in requested if e.info is None]
            if missing:
                return ListUpdate(
                    "Failed",
                    self._version,
                    full=True,
                    reason=f"a Full list needs idTagInfo on every entry; missing for {missing[:5]}",
                )
            return self._plan_full(version, wanted, skipped)
        return self._plan_differential(version, wanted, skipped)

    def _plan_full(
        self, version: int, wanted: list[_Requested], skipped: tuple[str, ...]
    ) -> ListUpdate:
        new = {e.card.key: CloudEntry(e.id_tag, e.card, e.info) for e in wanted if e.info}
        deletes = tuple(old for key, old in self._entries.items() if new.get(key) != old)
        changed = new != self._entries
        return ListUpdate(
            "Accepted",
            version,
            full=True,
            upserts=tuple(new.values()),
            deletes=deletes,
            skipped=skipped,
            changed=changed,
        )

    def _plan_differential(
        self, version: int, wanted: list[_Requested], skipped: tuple[str, ...]
    ) -> ListUpdate:
        upserts: list[CloudEntry] = []
        deletes: list[CloudEntry] = []
        for item in wanted:
            old = self._entries.get(item.card.key)
            if item.info is None:
                if old is not None:
                    deletes.append(old)
                continue
            entry = CloudEntry(item.id_tag, item.card, item.info)
            if entry == old:
                continue
            if old is not None:
                deletes.append(old)
            upserts.append(entry)
        changed = bool(upserts or deletes)
        if version <= self._version and not (version == self._version and not changed):
            return ListUpdate(
                "VersionMismatch",
                self._version,
                full=False,
                reason=f"differential version {version} is not above the current {self._version}",
            )
        return ListUpdate(
            "Accepted",
            version,
            full=False,
            upserts=tuple(upserts),
            deletes=tuple(deletes),
            skipped=skipped,
            changed=changed,
        )

    def commit(self, update: ListUpdate) -> None:
        """Apply an ``Accepted`` update from :meth:`plan` (others change nothing)."""
        if update.status != "Accepted":
            return
        if update.full:
            self._entries = {e.key: e for e in update.upserts}
        else:
            for old in update.deletes:
                self._entries.pop(old.key, None)
            for entry in update.upserts:
                self._entries[entry.key] = entry
        self._version = update.version


@dataclass(frozen=True, slots=True)
class _Requested:
    id_tag: str
    card: CardId
    info: IdTagInfo | None


def _read_request(payload: Mapping[str, Any]) -> tuple[int, bool, list[_Requested]]:
    """Validate a SendLocalList payload; ValueError names the first problem."""
    version = payload.get("listVersion")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ValueError(f"listVersion must be an integer, not {version!r}")
    if version < 0:
        raise ValueError(f"listVersion {version} is negative (-1 only means 'no list support')")
    update_type = payload.get("updateType")
    if update_type not in ("Full", "Differential"):
        raise ValueError(f"updateType must be Full or Differential, not {update_type!r}")
    raw = payload.get("localAuthorizationList") or []
    if not isinstance(raw, list):
        raise ValueError("localAuthorizationList must be an array")
    seen: set[str] = set()
    out: list[_Requested] = []
    for position, item in enumerate(raw):
        if not isinstance(item, Mapping):
            raise ValueError(f"entry {position} is not an object")
        id_tag = item.get("idTag")
        if not isinstance(id_tag, str):
            raise ValueError(f"entry {position} has no idTag string")
        try:
            card = listed_card(id_tag, item.get(TOKEN_TYPE))
        except CardIdError as exc:
            raise ValueError(f"entry {position}: idTag {id_tag!r}: {exc}") from None
        if card.key in seen:
            raise ValueError(f"idTag {id_tag!r} appears twice; idTags must be unique")
        seen.add(card.key)
        info_raw = item.get("idTagInfo")
        try:
            info = None if info_raw is None else IdTagInfo.from_ocpp(info_raw)
        except ValueError as exc:
            raise ValueError(f"entry {position} ({id_tag!r}): {exc}") from None
        out.append(_Requested(id_tag, card, info))
    return version, update_type == "Full", out
