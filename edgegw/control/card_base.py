"""The shared part of the card service: state, lookups and push reports (see
:mod:`edgegw.control.card_service`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection
from typing import Any

from edgegw.auth.access import GROUP_PREFIX, Access, AccessError, group_ref
from edgegw.auth.authorizer import Authorizer
from edgegw.auth.chargerformats import configured_formats
from edgegw.auth.idtags import (
    CardId,
    CardIdError,
    CardIndex,
    IdTagFormat,
    interpretations,
    parse_card_id,
    variants,
)
from edgegw.auth.listpush import ListPusher
from edgegw.auth.locallist import Card
from edgegw.config import Config
from edgegw.control.card_text import (
    MAX_WAIT,
    by_key,
    card_json,
    enrolled_readings,
    names_arg,
    not_found,
    parse_text,
)
from edgegw.control.protocol import ControlError, ErrorCode, get_arg


class CardBase:
    """What every ``cards.*`` op shares: the authorizer and configuration it works on, how a
    charger writes card ids, finding a card from what an installer typed, and reporting the
    local-list pushes a change started. :class:`~edgegw.control.card_service.CardService`
    adds the ops."""

    def __init__(
        self,
        authorizer: Authorizer,
        config: Config,
        *,
        pusher: ListPusher | None = None,
        connected: Callable[[], Collection[str]] = tuple,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._auth = authorizer
        self._config = config
        self._formats = configured_formats(config)
        self._pusher = pusher
        self._connected = connected
        self._clock = clock

    def _at_charger(self, card: Card, charger_id: str) -> dict[str, Any]:
        fmt, source = self.format_of(charger_id)
        shown = variants(card.id).get(fmt) if fmt is not IdTagFormat.AUTO else card.id.canonical
        return {
            "charger": charger_id,
            "format": fmt.value,
            "format_source": source,
            "idtag": shown,
            "allowed": self._auth.access.verdict(
                card.key, card.chargers, charger_id, self._clock()
            ).allowed,
        }

    def format_of(self, charger_id: str) -> tuple[IdTagFormat, str]:
        """How the charger writes card ids, and whether that is configured, detected or unknown."""
        configured = self._formats.get(charger_id)
        if configured is not None:
            return configured, "configured"
        detected = self._auth.detected_format(charger_id)
        if detected is not None:
            return detected.fmt, "detected"
        return IdTagFormat.AUTO, "unknown"

    async def _changed(
        self,
        card: Card,
        action: str,
        args: dict[str, Any],
        warnings: list[str],
        *,
        push: bool = True,
    ) -> dict[str, Any]:
        cfg = self._config
        return {
            "action": action,
            "card": card_json(card, self._clock()),
            "warnings": warnings,
            "local_lists": await self._push_report(args) if push else [],
            # The site's refusal holds also while the cloud answers (see edgegw.auth.authority).
            "site_decides": cfg.cloud is None or cfg.auth.site_overrides_cloud,
        }

    async def _push_report(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        """Per connected charger holding a local list: is the change on it yet?

        Waits up to ``args["wait"]`` seconds (0: report without waiting) for every charger's
        pusher to finish, all chargers at once.
        """
        wait = get_arg(args, "wait", float, 0.0)
        if not 0 <= wait <= MAX_WAIT:
            raise ControlError(ErrorCode.BAD_ARGS, f"wait must be between 0 and {MAX_WAIT:g} s")
        pusher = self._pusher
        if pusher is None:
            return []
        holders = []
        for charger_id in sorted(self._connected()):
            status = pusher.status(charger_id)
            caps = status.capabilities if status is not None else None
            if status is not None and status.connected and (caps is None or caps.supported):
                holders.append(charger_id)

        async def settle(charger_id: str) -> dict[str, Any]:
            confirmed = True
            if wait > 0:
                try:
                    await pusher.wait_idle(charger_id, timeout=wait)
                except (TimeoutError, KeyError):
                    confirmed = False
            status = pusher.status(charger_id)
            caps = status.capabilities if status is not None else None
            if status is None or (caps is not None and not caps.supported):
                return {"charger": charger_id, "state": "no_list", "detail": ""}
            if status.synced and confirmed:
                state, detail = "in_step", f"{status.entries} entries, version {status.version}"
            elif status.last_error:
                state, detail = "failed", f"{status.last_error}; the gateway keeps retrying"
            else:
                state = "pending"
                detail = "the update is on its way; the gateway keeps trying until it is taken"
            return {"charger": charger_id, "state": state, "detail": detail}

        reports = await asyncio.gather(*(settle(c) for c in holders))
        return [r for r in reports if r["state"] != "no_list"]

    def _look_alikes(self, card_id: CardId) -> list[str]:
        """Enrolled cards that some charger format reports exactly like ``card_id``."""
        if card_id.uid is None:
            return []
        others: dict[str, Card] = {}
        for text in set(variants(card_id).values()):
            for reading in interpretations(text).values():
                enrolled = self._auth.card(reading) if reading != card_id else None
                if enrolled is not None:
                    others[enrolled.key] = enrolled
        if not others:
            return []
        index = CardIndex([card_id, *(c.id for c in others.values())])
        shared: dict[str, list[str]] = {}
        for text, cards in sorted(index.clashes(card_id).items()):
            for other in cards:
                shared.setdefault(other.key, []).append(text)
        return [
            f"{card_id.canonical} and enrolled card {others[key].describe()} can both arrive "
            f"as {', '.join(texts[:3])} from a charger whose idTag format is not known; set the "
            "chargers' idtag_format so that they are told apart"
            for key, texts in shared.items()
            if key in others
        ]

    def _parse_new(self, args: dict[str, Any]) -> CardId:
        text = get_arg(args, "card", str)
        fmt = get_arg(args, "format", str, "")
        try:
            return parse_text(text, fmt)
        except CardIdError as exc:
            raise ControlError(ErrorCode.BAD_ARGS, f"card id {text!r}: {exc}") from None

    def _find(self, args: dict[str, Any]) -> tuple[Card, str | None]:
        """The enrolled card ``args["card"]`` names, and how the text was read if not plainly.

        Without a ``format``, a text that does not read as one card (a bare decimal number, a
        lost leading zero) is resolved when exactly one of its readings is enrolled.
        """
        text = get_arg(args, "card", str)
        fmt = get_arg(args, "format", str, "")
        auth = self._auth
        if fmt:
            try:
                card_id = parse_text(text, fmt)
            except CardIdError as exc:
                raise ControlError(ErrorCode.BAD_ARGS, f"card id {text!r}: {exc}") from None
            card = auth.card(card_id)
            if card is None:
                raise not_found(card_id.canonical)
            return card, None
        hit = by_key(auth, text)
        if hit is not None:
            return hit, None
        try:
            card_id = parse_card_id(text)
        except CardIdError as exc:
            readings = enrolled_readings(auth, text, exc)
            if len(readings) == 1:
                ((how, card),) = readings.items()
                return card, f"{text.strip()!r} read as {how}: card {card.id.canonical}"
            if readings:
                listed = "; ".join(f"{c.describe()} ({how})" for how, c in readings.items())
                raise ControlError(
                    ErrorCode.CONFLICT,
                    f"{text.strip()!r} reads as several enrolled cards: {listed}; give the "
                    "card's format (--format) or its canonical id",
                ) from None
            raise ControlError(ErrorCode.BAD_ARGS, f"card id {text!r}: {exc}") from None
        card = auth.card(card_id)
        if card is not None:
            return card, None
        readings = enrolled_readings(auth, text, None)
        hint = " `edgegw cards list` shows the enrolled cards."
        if readings:
            hint = " It matches " + "; ".join(
                f"enrolled card {c.describe()} when read as {how}" for how, c in readings.items()
            )
            hint += ": use that card's id, or give --format."
        raise ControlError(
            ErrorCode.NOT_FOUND,
            f"no enrolled card {card_id.canonical}.{hint}",
        )

    def _chargers_arg(self, args: dict[str, Any], warnings: list[str]) -> frozenset[str]:
        """Charger ids and charger groups (``@name``, or the names in ``charger_groups``)."""
        chargers = names_arg(args) | {group_ref(g) for g in names_arg(args, "charger_groups")}
        try:
            self._auth.access.check_chargers(chargers)
        except AccessError as exc:
            raise ControlError(ErrorCode.BAD_ARGS, str(exc)) from None
        known = {c.id for c in self._config.chargers}
        unknown = sorted(c for c in chargers - known if not c.startswith(GROUP_PREFIX))
        if unknown:
            warnings.append(
                f"{', '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} not configured "
                "(yet); the card works there once the charger is added"
            )
        return chargers

    # ------------------------------------------------------------------ access

    async def _access(self, change: Callable[[Access], Access]) -> None:
        try:
            await self._auth.change_access(change)
        except AccessError as exc:
            raise ControlError(ErrorCode.BAD_ARGS, str(exc)) from None

    def _unknown_groups(self, cards: list[Card]) -> list[str]:
        """Cards of an import naming charger groups that do not exist (yet)."""
        known = self._auth.access.charger_groups
        out: list[str] = []
        for card in cards:
            missing = sorted(
                c for c in card.chargers or () if c.startswith(GROUP_PREFIX) and c[1:] not in known
            )
            if missing:
                out.append(
                    f"card {card.id.canonical} names {', '.join(missing)}, which is no charger "
                    "group yet: it works there once the group is created "
                    "(`edgegw cards charger-group NAME CHARGER...`)"
                )
        return out

    def _charger_group_users(self, name: str) -> list[str]:
        ref = group_ref(name)
        access = self._auth.access
        users = [f"card {c.id.canonical}" for c in self._auth.cards() if ref in (c.chargers or ())]
        users += [
            f"card group {g.name}" for g in access.card_groups.values() if ref in (g.chargers or ())
        ]
        users += [f"share {s.id}" for s in access.shares if ref in s.chargers]
        return users
